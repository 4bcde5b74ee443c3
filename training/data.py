"""Read a labelled training set and turn it into model inputs.

A training set is a folder with two tables (`TRAINING_DATA_FORMAT` says
what they hold; ECSV, CSV, FITS or VOTable, told by the extension):

``stars.<ext>``
    One row per star: ``source_id``, ``period`` (days; a unit is converted,
    none means days) and ``feh`` (the label, dex). An optional peer column
    (``feh_dg22`` in the bundled set, or ``--peer-column``) is scored beside
    the model on the same stars. Other columns are ignored.
``lightcurves.<ext>``
    One row per epoch: ``source_id``, ``mag`` and either ``phase`` (cycles,
    any zero point; or an angle) or ``time`` (days, or an astropy Time; folded
    with the star's period).

Everything else (epoch counts, the ranges of the training domain) is derived
from those. The pre-processing itself lives in
`rrlyrae_metallicity.preprocessing`; this module reads the tables through the
package's own readers and adapters, calls the pre-processing (in parallel,
with a cache), and computes the density weights of the paper.
"""

import hashlib
import json
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from scipy.stats import gaussian_kde

from rrlyrae_metallicity.adapters import lightcurve_batch
from rrlyrae_metallicity.exceptions import InputFormatError, LightCurveError
from rrlyrae_metallicity.gaia.files import FORMATS, read_table
from rrlyrae_metallicity.messages import agree, plural
from rrlyrae_metallicity.preprocessing import (MIN_EPOCHS, PreprocessingConfig, is_magnitude,
                                               prepare_inputs)

__all__ = ["DEFAULT_DATA_DIR", "TRAINING_DATA_FORMAT", "TrainingDataError", "Dataset",
           "load_dataset", "usable_epochs", "data_record", "density_weights", "preprocess",
           "augmented_inputs", "ignore_sigint", "prepare_chunk"]

#: Where the shared data live relative to the repository root.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gaia_dr2_rrab_g"

#: The columns of a training set, as ``python -m training cv --help`` and the
#: documentation describe them.
TRAINING_DATA_FORMAT = """\
--data-dir holds two tables (ECSV, CSV, FITS or VOTable; told by the extension):
  stars.<ext>        one row per star: source_id, period (days; a unit is converted,
                     none means days), feh (the label, dex); optionally a peer column
                     (--peer-column) scored beside the model; other columns are ignored
  lightcurves.<ext>  one row per epoch: source_id, mag, and phase (cycles, any zero point;
                     degrees or radians only with an angle unit) or time (days, or an
                     astropy Time in ECSV), folded with the period; phase is used when
                     both are there, rows of stars not in the stars table are ignored
source_id is any identifier (an integer or text). Blank peer values are not scored.
Epoch counts and the training domain are derived from them."""

#: Name of the bundled set's peer column, scored when present and no other is named.
DEFAULT_PEER_COLUMN = "feh_dg22"


class TrainingDataError(ValueError):
    """A training set that cannot be used, said in one line."""


@dataclass
class Dataset:
    """The labelled light curves, one entry per star, in ``stars`` order.

    Attributes
    ----------
    stars : `~astropy.table.Table`
        ``source_id``, ``period`` (d), ``feh``, ``n_epochs`` (usable epochs,
        derived) and the peer column, if any.
    phases, mags : list of ndarray
        Each star's epochs: phase in cycles, magnitude.
    peer_column : str or None
        Column of ``stars`` holding a peer's predictions, scored beside ours.
    record : dict
        Where the data came from (`data_record`); empty for a set made in
        memory.
    """

    stars: Table
    phases: list
    mags: list
    peer_column: str | None = DEFAULT_PEER_COLUMN
    record: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.peer_column is not None and self.peer_column not in self.stars.colnames:
            self.peer_column = None

    @property
    def periods(self):
        period = self.stars["period"]
        if getattr(period, "unit", None) is None:
            return np.asarray(period, dtype=float)
        return np.asarray(u.Quantity(period).to_value(u.day), dtype=float)

    @property
    def feh(self):
        return np.asarray(self.stars["feh"], dtype=float)

    @property
    def feh_peer(self):
        """The peer's predictions, or `None` when the set has none."""
        if self.peer_column is None:
            return None
        return np.asarray(self.stars[self.peer_column], dtype=float)

    def __len__(self):
        return len(self.stars)


def _table_path(data_dir, stem):
    """The one ``stem.<ext>`` table of ``data_dir``."""
    found = sorted(p for p in data_dir.glob(f"{stem}.*")
                   if p.suffix.lower() in FORMATS and p.is_file())
    if not found:
        raise TrainingDataError(
            f"{data_dir} has no {stem} table: expected {stem}.ecsv (or .csv, .fits, .vot); "
            "see 'python -m training cv --help' for the columns")
    if len(found) > 1:
        raise TrainingDataError(f"{data_dir} has {len(found)} {stem} tables "
                                f"({', '.join(p.name for p in found)}); keep one")
    return found[0]


def _read(path):
    try:
        return read_table(path)
    except InputFormatError as error:
        raise TrainingDataError(str(error)) from None


def _require(table, path, columns, what):
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise TrainingDataError(
            f"{path.name} lacks the column{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"({what}); it has {', '.join(table.colnames) or 'none'}")


def _float_values(table, name, path, *, label, what=None, unit=None):
    """Column ``name`` as floats (in ``unit`` when it carries one), NaN where masked.

    ``label`` names the column in the message for text; ``what`` names the
    kind of quantity ``unit`` measures, in the message for a wrong unit.
    """
    column = table[name]
    values = np.ma.getdata(column)
    if unit is not None and getattr(column, "unit", None) is not None:
        try:
            values = u.Quantity(values, column.unit).to_value(unit)
        except u.UnitConversionError:
            raise TrainingDataError(f"{path.name}: column {name!r} has unit {column.unit}, "
                                    f"which is not a {what}") from None
    try:
        values = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise TrainingDataError(f"{path.name}: {label} holds text, not numbers") from None
    values[np.ma.getmaskarray(column)] = np.nan
    return values


def _finite_column(table, name, path, what, unit=None):
    """Column ``name`` as floats (in ``unit`` when it carries one), every value finite."""
    values = _float_values(table, name, path, label=f"column {name!r}", what=what, unit=unit)
    bad = ~np.isfinite(values)
    if bad.any():
        ids = [str(i) for i in np.asarray(table["source_id"])[bad][:3]]
        raise TrainingDataError(f"{path.name}: {plural(bad.sum(), 'star')} "
                                f"{agree(bad.sum(), 'has')} no valid {name!r} "
                                f"(e.g. source_id {', '.join(ids)}); remove them or fill it in")
    return values


def _checked_stars(stars, path, peer_column):
    _require(stars, path, ["source_id", "period", "feh"], "source_id, period in days, feh in dex")
    ids = np.asarray(stars["source_id"])
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise TrainingDataError(f"{path.name}: source_id {unique[counts > 1][0]} appears "
                                f"{counts[counts > 1][0]} times; each star needs one row")
    period = _finite_column(stars, "period", path, "time", u.day)
    if (period <= 0).any():
        raise TrainingDataError(f"{path.name}: {plural(np.sum(period <= 0), 'period')} "
                                f"{agree(np.sum(period <= 0), 'is')} not positive")
    feh = _finite_column(stars, "feh", path, "metallicity")
    if peer_column == "auto":
        peer_column = DEFAULT_PEER_COLUMN if DEFAULT_PEER_COLUMN in stars.colnames else None
    elif peer_column is not None:
        _require(stars, path, [peer_column], "the peer column named by --peer-column")
    checked = Table({"source_id": stars["source_id"], "period": period * u.day, "feh": feh})
    if peer_column is not None:
        checked[peer_column] = _peer_values(stars, peer_column, path)
    return checked, peer_column


def _peer_values(stars, name, path):
    """The peer's [Fe/H] as floats; blank or masked cells are NaN (those stars are not scored)."""
    return _float_values(stars, name, path, label=f"the peer column {name!r}")


def _epoch_tables(curves, path):
    """The light-curve table as the adapters take it: ``phase`` or Time ``time``, and ``mag``."""
    _require(curves, path, ["source_id", "mag"], "source_id, mag, and phase or time")
    if len(curves) == 0:
        raise TrainingDataError(f"{path.name} has no rows")
    if "phase" in curves.colnames:
        columns = {"phase": curves["phase"]}
    elif "time" in curves.colnames:
        time = curves["time"]
        if not isinstance(time, Time):
            # Bare numbers are days (any zero point: only the folded phase is used).
            time = Time(_finite_column(curves, "time", path, "time", u.day), format="jd",
                        scale="tdb")
        columns = {"time": time}
    else:
        raise TrainingDataError(f"{path.name} has neither a 'phase' nor a 'time' column; it has "
                                f"{', '.join(curves.colnames)}")
    return Table({"source_id": curves["source_id"], **columns, "mag": curves["mag"]})


def _read_lightcurves(curves, path, stars):
    """Phases and magnitudes of every star of ``stars``, in its order."""
    epochs = _epoch_tables(curves, path).group_by("source_id")
    by_id = {key: i for i, key in enumerate(np.asarray(epochs.groups.keys["source_id"]).tolist())}
    ids = np.asarray(stars["source_id"]).tolist()
    missing = [s for s in ids if s not in by_id]
    if missing:
        raise TrainingDataError(f"{plural(len(missing), 'star')} of the stars table "
                                f"{agree(len(missing), 'has')} no epochs in "
                                f"{path.name}, e.g. source_id {', '.join(map(str, missing[:3]))}")
    groups = [epochs.groups[by_id[s]] for s in ids]
    try:
        batch = lightcurve_batch(groups, stars["period"].quantity.to_value(u.day), stars=ids,
                                 mag_column="mag")
    except LightCurveError as error:
        raise TrainingDataError(f"{path.name}: {error}") from None
    failed = [(s, e) for s, e in zip(ids, batch.errors) if e is not None]
    if failed:
        raise TrainingDataError(f"{path.name}: {len(failed)} light curves cannot be read, e.g. "
                                f"source_id {failed[0][0]}: {failed[0][1]}")
    return batch.phases, batch.mags


def usable_epochs(phase, mag):
    """Epochs with a finite phase and a magnitude (`~rrlyrae_metallicity.preprocessing.is_magnitude`)."""
    return int(np.count_nonzero(np.isfinite(phase) & is_magnitude(mag)))


def data_record(data_dir, paths, n_stars, peer_column):
    """What a run records about its data: folder, files and their sha256, stars, peer.

    Parameters
    ----------
    data_dir : path-like
    paths : sequence of path-like
        The tables read.
    n_stars : int
    peer_column : str or None

    Returns
    -------
    dict
    """
    return {"path": str(Path(data_dir).resolve()),
            "files": {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
                      for p in paths},
            "n_stars": int(n_stars), "peer_column": peer_column}


def load_dataset(data_dir=DEFAULT_DATA_DIR, *, peer_column="auto"):
    """Read a training set: a stars table and a light-curve table (see the module docstring).

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``stars.<ext>`` and ``lightcurves.<ext>``.
    peer_column : str, None or "auto"
        Column of the stars table holding a peer's predictions, scored beside
        the model's; ``"auto"`` takes ``feh_dg22`` when present, `None` none.

    Returns
    -------
    `Dataset`

    Raises
    ------
    TrainingDataError
        In one line, for a missing folder, table or column, a value that is
        not a number, a star without epochs or with fewer than the
        pre-processing needs.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TrainingDataError(f"{data_dir} is not a folder; --data-dir names the folder with "
                                "stars.ecsv and lightcurves.ecsv")
    stars_path = _table_path(data_dir, "stars")
    curves_path = _table_path(data_dir, "lightcurves")
    stars, peer_column = _checked_stars(_read(stars_path), stars_path, peer_column)
    phases, mags = _read_lightcurves(_read(curves_path), curves_path, stars)
    n_epochs = np.array([usable_epochs(p, m) for p, m in zip(phases, mags)])
    few = n_epochs < MIN_EPOCHS
    if few.any():
        ids = np.asarray(stars["source_id"])[few][:3]
        raise TrainingDataError(
            f"{plural(few.sum(), 'star')} {agree(few.sum(), 'has')} fewer than "
            f"{MIN_EPOCHS} epochs with a phase (or time) and a magnitude (e.g. source_id "
            f"{', '.join(map(str, ids))}); remove them from {stars_path.name}")
    # Derived, as the package counts a user's star for the domain check.
    stars["n_epochs"] = n_epochs
    return Dataset(stars=stars, phases=phases, mags=mags, peer_column=peer_column,
                   record=data_record(data_dir, [stars_path, curves_path], len(stars),
                                      peer_column))


def density_weights(feh, bandwidth=None):
    """Inverse-density sample weights of the paper, normalised to mean 1.

    Parameters
    ----------
    feh : array-like
        Labels.
    bandwidth : float or str, optional
        Passed to `scipy.stats.gaussian_kde` as ``bw_method`` (Scott's rule by
        default).

    Returns
    -------
    ndarray
        ``w_i ∝ 1 / kde(feh_i)``, with ``mean(w) = 1``.
    """
    feh = np.asarray(feh, dtype=float)
    density = gaussian_kde(feh, bw_method=bandwidth)(feh)
    weights = 1.0 / density
    return weights / weights.mean()


def ignore_sigint():
    """In a worker: leave Ctrl-C to the main process, which says how to resume."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def prepare_chunk(args):
    """In a worker: `prepare_inputs` on one chunk of stars.

    ``args`` is ``(phases, mags, periods, config_dict, stars)``; returns the
    inputs, the smoothed curves' amplitudes (NaN where a star failed) and
    each star's failure as text (`None` where it did not fail).
    """
    phases, mags, periods, config_dict, stars = args
    config = PreprocessingConfig(**config_dict)
    inputs, smoothed, errors = prepare_inputs(phases, mags, periods, config, stars=stars)
    amplitudes = np.array([np.nan if s is None else s.amplitude for s in smoothed])
    failures = [None if e is None else str(e) for e in errors]
    return inputs, amplitudes, failures


def preprocess(dataset, config, *, cache_dir=None, workers=None, progress=True):
    """Model inputs of every star, computed once per configuration and cached.

    Parameters
    ----------
    dataset : `Dataset`
    config : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
    cache_dir : path-like, optional
        Where to keep ``inputs-<hash>.npz``; no cache if `None`.
    workers : int, optional
        Processes to use (all cores by default).
    progress : bool
        Show a progress bar.

    Returns
    -------
    inputs : ndarray, shape (n_stars, length, 2)
    amplitudes : ndarray
        Peak-to-peak amplitude of each smoothed light curve.
    """
    key = hashlib.sha256(
        json.dumps(
            {"config": config.to_dict(), "ids": [str(s) for s in dataset.stars["source_id"]],
             "periods": dataset.periods.round(10).tolist(),
             "n": [len(p) for p in dataset.phases], "code": _code_version(),
             # The epochs themselves: other light curves of the same stars are other inputs.
             "epochs": _epochs_digest(dataset)},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"inputs-{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return stored["inputs"], stored["amplitudes"]

    from tqdm.auto import tqdm

    chunk = 50
    ids = list(np.asarray(dataset.stars["source_id"]).tolist())
    jobs = [
        (dataset.phases[i:i + chunk], dataset.mags[i:i + chunk], dataset.periods[i:i + chunk],
         config.to_dict(), ids[i:i + chunk])
        for i in range(0, len(dataset), chunk)
    ]
    pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count(), initializer=ignore_sigint)
    try:
        # The bar is drawn on a terminal only (disable=None): in a log it is noise.
        results = list(tqdm(pool.map(prepare_chunk, jobs), total=len(jobs),
                            desc=f"pre-processing ({config.variant})",
                            disable=None if progress else True))
    except KeyboardInterrupt:
        # Ctrl-C: stop at once instead of finishing the queued chunks.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    inputs = np.concatenate([r[0] for r in results])
    amplitudes = np.concatenate([r[1] for r in results])
    failures = [f for r in results for f in r[2] if f is not None]
    if failures:
        raise RuntimeError(f"{len(failures)} training light curves failed: {failures[:3]}")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, inputs=inputs, amplitudes=amplitudes)
        os.replace(tmp, cache)
    return inputs, amplitudes


def augmented_inputs(dataset, config, copies, *, seed, originals, keep_fraction=(0.6, 1.0)):
    """Model inputs of ``copies`` re-sampled versions of every light curve.

    Each copy keeps a random subset of the star's epochs (a fraction drawn
    uniformly from ``keep_fraction``, never fewer than the pre-processing's
    minimum) and is pre-processed like the originals, so the network sees how
    the smoothed curve of the same star varies with the sampling.

    Parameters
    ----------
    dataset : `Dataset`
    config : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
    copies : int
        Number of re-sampled versions per star.
    seed : int
        Seed of the epoch selection.
    originals : ndarray, shape (n_stars, length, 2)
        The stars' own inputs (`preprocess`), used where a copy fails.
    keep_fraction : tuple of float
        Range of the fraction of epochs kept.

    Returns
    -------
    ndarray, shape (copies, n_stars, length, 2)
        Where a copy cannot be pre-processed, the original input is used.
    """
    rng = np.random.default_rng(seed)
    result = np.repeat(originals[None], copies, axis=0)
    for c in range(copies):
        phases, mags = [], []
        for phase, mag in zip(dataset.phases, dataset.mags):
            n_keep = max(MIN_EPOCHS + 2, int(round(rng.uniform(*keep_fraction) * phase.size)))
            keep = np.sort(rng.choice(phase.size, min(n_keep, phase.size), replace=False))
            phases.append(phase[keep])
            mags.append(mag[keep])
        inputs, _, errors = prepare_inputs(phases, mags, dataset.periods, config)
        ok = np.array([e is None for e in errors])
        result[c, ok] = inputs[ok]
    return result


def _epochs_digest(dataset):
    """sha256 of every star's phases and magnitudes, in order."""
    digest = hashlib.sha256()
    for phase, mag in zip(dataset.phases, dataset.mags):
        digest.update(np.ascontiguousarray(phase, dtype=float).tobytes())
        digest.update(np.ascontiguousarray(mag, dtype=float).tobytes())
    return digest.hexdigest()


def _code_version():
    """Hash of the pre-processing source, so that a change invalidates the cache.

    The smoothers live in their own module since the pre-processing was split:
    both are hashed, or a changed smoother would reuse stale inputs.
    """
    import rrlyrae_metallicity.preprocessing as preprocessing
    import rrlyrae_metallicity.smoothing as smoothing

    source = b"".join(Path(m.__file__).read_bytes() for m in (preprocessing, smoothing))
    return hashlib.sha256(source).hexdigest()[:16]
