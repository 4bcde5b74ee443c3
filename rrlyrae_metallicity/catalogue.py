"""[Fe/H] for a whole epoch-photometry catalogue, a chunk of stars at a time.

`predict_catalogue` reads a Gaia epoch-photometry file block by block (see
`~rrlyrae_metallicity.gaia.iter_epoch_photometry`), predicts each chunk of
sources and keeps only the four result columns of the stars already done, so
that memory does not grow with the catalogue beyond the star table and its
results. With an ``output`` path every finished chunk is committed to a part
file in a sidecar directory (``<output>.parts``), so that an interrupted run
resumes from its last finished chunk; the parts are merged into ``output``
(written atomically) at the end and then removed.

The result is the same table, row for row, as `~rrlyrae_metallicity.add_feh`
on the whole file read into memory.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from .adapters import epoch_times, gaia_arrays_batch, period_in_days
from .domain import classification_errors
from .ensemble import load_model
from .exceptions import InputFormatError, OutputError, RRLyraeMetallicityError
from .gaia import iter_epoch_arrays
from .gaia.files import reading
from .gaia.readers import source_id_array
from .messages import plural
from .outputs import check_not_an_input, check_writable, output_format, write_table_atomically
from .pipeline import predict_batch
from .results import FEH_COLUMNS, as_arrays, empty_feh_columns, fill_feh_columns, with_feh_columns

__all__ = ["ResumeError", "StarPlan", "predict_catalogue", "predict_chunk"]

# Version of the part files and their manifest; a change makes old parts unusable
# (2: the feh_n_epochs column; 3: feh_n_rejected; 4: feh_flags; 5: feh_epoch_influence).
_PARTS_VERSION = 5


class ResumeError(RRLyraeMetallicityError, ValueError):
    """Partial results on disk were made from another input or with other options."""


def predict_catalogue(epoch_photometry, stars=None, *, period=None, output=None,
                      chunk_size=10_000, resume=False, model="default", id_column="source_id",
                      period_column="pf", epoch_column="epoch_g", format=None,
                      block_rows=200_000, log=None, inputs=None, progress=None):
    """Predict [Fe/H] for every star of an epoch-photometry catalogue, chunk by chunk.

    Parameters
    ----------
    epoch_photometry : str, path-like or `~astropy.table.Table`
        Gaia epoch photometry in any layout of `rrlyrae_metallicity.gaia`.
        CSV, ECSV (also compressed), FITS and Parquet files are read a block of
        rows at a time and must keep the rows of each source together (as the
        archive writes them); a VOTable is parsed whole.
    stars : `~astropy.table.Table`, optional
        One row per star (e.g. ``gaiadr3.vari_rrlyrae``), as for
        `~rrlyrae_metallicity.add_feh`; the result keeps its rows in order.
    period : `~astropy.units.Quantity` ['time'] or float, optional
        One period (days if a bare number) for every source, instead of
        ``stars``; the result then has one row per source, in file order.
    output : str or path-like, optional
        Table to write (format from the extension, see
        `~rrlyrae_metallicity.outputs.OUTPUT_FORMATS`), atomically, with its
        provenance; never one of ``inputs``. Finished chunks are kept in ``<output>.parts`` until then.
    chunk_size : int
        Sources per chunk: peak memory grows with it, not with the catalogue.
    resume : bool
        Reuse the finished chunks in ``<output>.parts`` of an interrupted run
        with the same input and options instead of starting over.
    model : str or path-like
        ``"default"``, a name from `~rrlyrae_metallicity.available_models`,
        or the folder of a retrained model.
    id_column, period_column, epoch_column : str
        Columns of ``stars``, as for `~rrlyrae_metallicity.add_feh`.
    format : str, optional
        astropy format of ``epoch_photometry``; by default from its extension.
    block_rows : int
        Rows of ``epoch_photometry`` read at a time.
    log : callable, optional
        Called with one line of progress text per chunk.
    inputs : sequence of str, optional
        The input files, recorded in the result's provenance and never
        overwritten by ``output``; by default ``epoch_photometry`` when it
        is a path.
    progress : callable, optional
        Called after each chunk with the number of sources done so far and
        the number expected (the rows of ``stars``, or `None` without a
        star table).

    Returns
    -------
    `~astropy.table.Table`
        What `~rrlyrae_metallicity.add_feh` returns for the whole catalogue:
        ``stars`` (or ``source_id, pf``) with ``feh_phot``, ``feh_phot_std``,
        ``feh_status`` and ``feh_domain``.

    Raises
    ------
    ResumeError
        If ``resume`` finds parts made from another input or with other options.
    rrlyrae_metallicity.exceptions.InputFormatError
        If the epoch photometry cannot be read (see
        `~rrlyrae_metallicity.gaia.iter_epoch_photometry`).
    """
    log = log or (lambda message: None)
    if inputs is None:
        inputs = [] if isinstance(epoch_photometry, Table) else [os.fspath(epoch_photometry)]
    if output is not None:
        # Fail before the work, not after it.
        output_format(output)
        check_not_an_input(output, inputs)
        check_writable(output)
    ensemble = load_model(model)
    plan = StarPlan(stars, period, id_column, period_column, epoch_column)
    store = _PartStore(output, log) if output is not None else _MemoryStore()
    done = store.start(_fingerprint(epoch_photometry, plan, chunk_size, ensemble), resume)
    chunks = iter_epoch_arrays(epoch_photometry, chunk_size=chunk_size, format=format,
                               block_rows=block_rows)
    try:
        n_predicted, n_reused = _run_chunks(chunks, done, store, plan, ensemble, chunk_size,
                                            len(stars) if stars is not None else None, log,
                                            progress or (lambda done, expected: None))
        if n_predicted + n_reused == 0 and inputs and not isinstance(epoch_photometry, Table):
            raise InputFormatError(f"{os.fspath(epoch_photometry)}: holds no epoch-photometry "
                                   "rows (0 sources)")
    except BaseException:
        # An input found bad before any chunk was finished leaves nothing behind
        # (a later --resume would otherwise find the parts of a run that never began).
        store.discard_if_empty()
        raise
    log(f"{plural(n_predicted, 'chunk')} predicted, {n_reused} reused from an earlier run")
    result = _merge(store, plan, ensemble, inputs)
    if output is not None:
        write_table_atomically(result, output, inputs=inputs)
        store.remove()
    return result


def _run_chunks(chunks, done, store, plan, ensemble, chunk_size, expected, log, progress):
    """Predict (or reuse) every chunk; return how many were predicted and reused."""
    n_reused = n_predicted = n_sources = 0
    for index, sources in enumerate(chunks):
        n_sources += len(sources)
        if index in done:
            n_reused += 1
            log(f"chunk {index}: done by an earlier run, reused")
            progress(n_sources, expected)
            continue
        start = time.perf_counter()
        unmatched = plan.unmatched(sources)
        if unmatched:
            log(f"chunk {index}: {plural(len(unmatched), 'source')} without a row in the star "
                f"table, not predicted (e.g. {unmatched[:3]})")
        store.save(index, predict_chunk(sources, index * chunk_size, plan, ensemble))
        n_predicted += 1
        seconds = time.perf_counter() - start
        log(f"chunk {index}: {plural(len(sources), 'source')} done in {seconds:.1f} s "
            f"({len(sources) / max(seconds, 1e-9):,.0f} sources/s)")
        progress(n_sources, expected)
    return n_predicted, n_reused


# --------------------------------------------------------------------------
# Which rows of the star table a chunk of sources fills
# --------------------------------------------------------------------------


class StarPlan:
    """The star table (or the single period) and how its rows map to sources.

    Parameters
    ----------
    stars : `~astropy.table.Table` or None
        One row per star; `None` to use ``period`` for every source.
    period : `~astropy.units.Quantity` ['time'] or float, optional
        One period for every source (days when a bare number).
    id_column, period_column, epoch_column, classification_column : str
        Columns of ``stars``, as for `~rrlyrae_metallicity.add_feh`.
    """

    def __init__(self, stars, period, id_column="source_id", period_column="pf",
                 epoch_column="epoch_g", classification_column="best_classification"):
        if (stars is None) == (period is None):
            raise TypeError("give either a star table (stars=...) or one period (period=...)")
        self.stars = stars
        if stars is None:
            self.period = float(period_in_days(period))
            return
        for name in (id_column, period_column):
            if name not in stars.colnames:
                raise KeyError(f"table has no column {name!r} (columns: {stars.colnames})")
        self.ids = np.asarray(stars[id_column])
        self.order = np.argsort(self.ids, kind="stable")
        self.sorted_ids = self.ids[self.order]
        if self.ids.dtype.kind == "i":
            # Keep a uint64 copy for chunks whose ids reach 2**63 (see as_ids).
            self.sorted_unsigned = self.sorted_ids.astype(np.uint64)
        self.periods = period_in_days(stars[period_column], count=len(stars),
                                      what=f"column {period_column!r}")
        self.epochs, self.has_epoch = epoch_times(
            stars[epoch_column] if epoch_column in stars.colnames else None, len(stars))
        # A type per star (Gaia DR3 best_classification): RRc and RRd are not predicted.
        self.classes = None
        if classification_column in stars.colnames:
            column = stars[classification_column]
            # Masked cells hide placeholders ('0' from the text readers): blank them.
            self.classes = np.asarray(column.filled("") if hasattr(column, "filled")
                                      else column, dtype=object)

    def unmatched(self, source_ids):
        """The ids of ``source_ids`` with no row in the star table (none without a table)."""
        if self.stars is None:
            return []
        ids = self.as_ids(source_ids)
        table_ids = self.sorted_unsigned if ids.dtype.kind == "u" and self.ids.dtype.kind == "i" \
            else self.sorted_ids
        return ids[~np.isin(ids, table_ids)].tolist()

    def as_ids(self, source_ids):
        """``source_ids`` as an exact integer array comparable with the table's ids.

        int64 and uint64 ids compared as they are would go through floats and
        lose digits; where the two kinds meet, both are compared as uint64
        (source ids are never negative).
        """
        ids = source_id_array(source_ids)
        if self.stars is not None and ids.dtype != self.sorted_ids.dtype:
            return ids.astype(np.uint64)
        return ids

    def rows(self, source_ids):
        """Rows of the star table whose id is one of ``source_ids``, in table order."""
        sorted_ids = self.sorted_ids
        if source_ids.dtype.kind == "u" and sorted_ids.dtype.kind == "i":
            sorted_ids = self.sorted_unsigned
        low = np.searchsorted(sorted_ids, source_ids, "left")
        high = np.searchsorted(sorted_ids, source_ids, "right")
        counts = high - low
        first = np.repeat(low - np.cumsum(counts) + counts, counts)
        return np.sort(self.order[first + np.arange(counts.sum())])


# --------------------------------------------------------------------------
# One chunk
# --------------------------------------------------------------------------


def predict_chunk(sources, first_row, plan, ensemble):
    """Predict one chunk of ``{source_id: arrays}``; return its rows and result columns.

    Parameters
    ----------
    sources : dict
        ``{source_id: {"time": Gaia days, "mag": mag, ...}}`` as
        `~rrlyrae_metallicity.gaia.iter_epoch_arrays` yields them.
    first_row : int
        Output row of the chunk's first source (used without a star table).
    plan : `StarPlan`
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`

    Returns
    -------
    dict of str to ndarray
        ``row`` (of the output table), ``source_id`` and the
        `~rrlyrae_metallicity.results.FEH_COLUMNS`.
    """
    source_ids = plan.as_ids(list(sources))
    if plan.stars is None:
        rows = first_row + np.arange(len(sources))
        curves = list(sources.values())
        periods = np.full(len(rows), plan.period)
        epochs = (None, np.zeros(len(rows), dtype=bool))
        ids = source_ids
    else:
        rows = plan.rows(source_ids)
        ids = plan.ids[rows]
        curves = [sources[i.item()] for i in ids]
        periods = plan.periods[rows]
        epochs = (plan.epochs[rows] if plan.epochs is not None else None, plan.has_epoch[rows])
    batch = gaia_arrays_batch(curves, periods, epochs=epochs, stars=[i.item() for i in ids])
    if plan.stars is not None and plan.classes is not None:
        batch.refuse(classification_errors(plan.classes[rows], batch.stars))
    columns = empty_feh_columns(len(rows))
    fill_feh_columns(columns, slice(None), predict_batch(batch, ensemble))
    return {"row": rows, "source_id": source_id_array(ids), **as_arrays(columns)}


# --------------------------------------------------------------------------
# Where the finished chunks are kept
# --------------------------------------------------------------------------


class _MemoryStore:
    """Finished chunks kept in memory (no output file, nothing to resume)."""

    def __init__(self):
        self.parts = {}

    def start(self, fingerprint, resume):
        if resume:
            raise TypeError("resume=True needs an output path: the partial results are kept "
                            "next to it")
        return set()

    def save(self, index, part):
        self.parts[index] = part

    def indices(self):
        return sorted(self.parts)

    def load(self, index):
        return self.parts[index]

    def remove(self):
        self.parts.clear()

    def discard_if_empty(self):
        """Nothing to discard in memory."""


class _PartStore:
    """Finished chunks as ``.npz`` part files in ``<output>.parts``, each committed atomically.

    ``manifest.json`` records the input and options the parts were made with;
    a resumed run must match it.
    """

    def __init__(self, output, log):
        self.directory = Path(f"{os.fspath(output)}.parts")
        self.log = log

    def _path(self, index):
        return self.directory / f"chunk-{index:06d}.npz"

    def start(self, fingerprint, resume):
        manifest = self.directory / "manifest.json"
        if resume and manifest.is_file():
            found = json.loads(manifest.read_text())
            if found != fingerprint:
                changed = sorted(k for k in fingerprint.keys() | found.keys()
                                 if fingerprint.get(k) != found.get(k))
                raise ResumeError(
                    f"the partial results in {self.directory} were made from another input "
                    f"or with other options (different: {', '.join(changed)}); rerun with the "
                    "same input and options, or without --resume to start over"
                )
            done = set(self.indices())
            self.log(f"resuming: {len(done)} finished chunks found in {self.directory}")
            return done
        if self.directory.exists():
            self.log(f"starting over: removing the partial results in {self.directory} "
                     "(use --resume to continue them)")
            shutil.rmtree(self.directory)
        try:
            self.directory.mkdir()
        except OSError as error:
            raise OutputError(f"{self.directory}: cannot be made to keep the finished chunks "
                              f"({error.strerror or error})") from None
        _write_atomically(manifest, lambda f: f.write(json.dumps(fingerprint, indent=1).encode()))
        return set()

    def save(self, index, part):
        _write_atomically(self._path(index), lambda f: np.savez(f, **part))

    def indices(self):
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("chunk-*.npz"))

    def load(self, index):
        with np.load(self._path(index), allow_pickle=False) as part:
            return {name: part[name] for name in part.files}

    def remove(self):
        shutil.rmtree(self.directory)

    def discard_if_empty(self):
        """Remove the folder when no chunk was finished in it."""
        if self.directory.is_dir() and not self.indices():
            shutil.rmtree(self.directory)


def _write_atomically(path, write):
    """Call ``write(file)`` on a temporary file, flush it to disk, rename it to ``path``."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fingerprint(epoch_photometry, plan, chunk_size, ensemble):
    """What the parts depend on: the input file, the star table, the chunking, the model."""
    if isinstance(epoch_photometry, Table):
        source = {"table_rows": len(epoch_photometry)}
    else:
        with reading(epoch_photometry):
            stat = os.stat(epoch_photometry)
        source = {"path": os.path.abspath(epoch_photometry), "size": stat.st_size,
                  "mtime_ns": stat.st_mtime_ns}
    if plan.stars is None:
        stars = {"period_d": plan.period}
    else:
        digest = hashlib.sha256()
        for values in (np.asarray(plan.ids), plan.periods, plan.has_epoch,
                       plan.epochs.jd1 if plan.epochs is not None else np.empty(0),
                       plan.epochs.jd2 if plan.epochs is not None else np.empty(0)):
            digest.update(np.ascontiguousarray(values).tobytes())
        stars = {"rows": len(plan.ids), "sha256": digest.hexdigest()}
    return {"version": _PARTS_VERSION, "epoch_photometry": source, "stars": stars,
            "chunk_size": int(chunk_size), "model": ensemble.name}


# --------------------------------------------------------------------------
# Merging the chunks
# --------------------------------------------------------------------------


def _merge(store, plan, ensemble, inputs):
    """The output table: every star-table row, in order, filled from the parts."""
    indices = store.indices()
    if plan.stars is None:
        parts = [store.load(i) for i in indices]
        # Chunks may differ in id dtype (int64, or uint64 past 2**63): join them exactly.
        source_ids = source_id_array([i for p in parts for i in p["source_id"].tolist()])
        table = Table({"source_id": source_ids,
                       "pf": np.full(len(source_ids), plan.period)})
        table["pf"].unit = u.day
    else:
        table = plan.stars
    columns = empty_feh_columns(len(table))
    for index in indices:
        part = store.load(index)
        for name in FEH_COLUMNS:
            columns[name][part["row"]] = part[name]
    return with_feh_columns(table, columns, ensemble, inputs=inputs)
