"""Read Gaia epoch photometry and RR Lyrae parameters from files or tables.

Gaia epoch photometry reaches users in three layouts (`LAYOUTS`), and each
may be saved as VOTable, ECSV, CSV or FITS (see `rrlyrae_metallicity.gaia`).
`detect_layout` recognises the layout from the column names;
`read_epoch_photometry` returns the accepted G-band transits of every source
as a `~astropy.timeseries.TimeSeries`, `iter_epoch_photometry` does so a
chunk of sources at a time, and `epoch_arrays`/`iter_epoch_arrays` give the
same transits as plain arrays (what the catalogue and Dask paths predict
from).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

from ..exceptions import InputFormatError
from . import GAIA_TIME_ZERO
from .files import iter_table_blocks, read_table, reading

__all__ = [
    "LAYOUTS",
    "RRLYRAE_COLUMNS",
    "detect_layout",
    "read_epoch_photometry",
    "iter_epoch_photometry",
    "epoch_arrays",
    "iter_epoch_arrays",
    "read_rrlyrae_parameters",
    "source_id_array",
]

#: Layouts understood by `read_epoch_photometry`.
LAYOUTS = ("long", "wide", "tap")

# Input column for each output quantity, per layout. ``source_id``, ``time``
# and ``mag`` are required; the others are copied when present.
_COLUMNS = {
    "long": {
        "source_id": "source_id",
        "time": "time",
        "mag": "mag",
        "flux": "flux",
        "flux_error": "flux_error",
        "transit_id": "transit_id",
    },
    "wide": {
        "source_id": "source_id",
        "time": "g_transit_time",
        "mag": "g_transit_mag",
        "flux": "g_transit_flux",
        "flux_error": "g_transit_flux_error",
        "transit_id": "transit_id",
    },
}
_COLUMNS["tap"] = _COLUMNS["wide"]
_REQUIRED = ("source_id", "time", "mag")
# A missing rejection column means "not rejected": some wide files lack
# ``rejected_by_photometry``, and the DR3 TAP table may lack it too.
_REJECT_COLUMNS = {
    "long": ("rejected_by_photometry", "rejected_by_variability"),
    "wide": ("rejected_by_photometry", "variability_flag_g_reject"),
    "tap": ("rejected_by_photometry", "variability_flag_g_reject"),
}

_FLUX_UNIT = u.electron / u.s

# Tokens that archive CSV/ECSV files and astropy use for a missing value.
_NULL_TOKENS = frozenset({"", "null", "none", "nan", "--", "masked"})
_TRUE_TOKENS = frozenset({"true", "t", "1", "yes", "y"})

#: Columns of ``gaiadr3.vari_rrlyrae`` the package knows (and names in lower case).
RRLYRAE_COLUMNS = (
    "source_id",
    "pf",
    "p1_o",
    "epoch_g",
    "peak_to_peak_g",
    "num_clean_epochs_g",
    "metallicity",
    "best_classification",
)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def detect_layout(table: Table) -> str:
    """Tell which Gaia epoch-photometry layout a table follows.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Epoch photometry as read from a file or returned by the archive.

    Returns
    -------
    layout : str
        ``"long"`` (one row per transit and band, with a ``band`` column),
        ``"wide"`` (one row per transit, ``g_transit_*`` columns) or ``"tap"``
        (one row per source, ``g_transit_*`` array columns).

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        If the columns match none of the layouts.

    Examples
    --------
    >>> from astropy.table import Table
    >>> detect_layout(Table(names=["source_id", "band", "time", "mag"]))
    'long'
    """
    names = _column_lookup(table)
    if "band" in names and {"time", "mag", "flux"} & names.keys():
        return "long"
    for key in ("g_transit_time", "g_transit_mag", "g_transit_flux"):
        if key in names:
            if "n_transits" in names or _is_array_column(table[names[key]]):
                return "tap"
            return "wide"
    raise InputFormatError(
        "This table is in none of the Gaia epoch-photometry layouts. "
        + _describe_columns(table)
    )


def read_epoch_photometry(
    source: str | os.PathLike | Table, *, format: str | None = None
) -> dict[int, TimeSeries]:
    """Read the accepted G-band transits of each source from Gaia epoch photometry.

    Parameters
    ----------
    source : str, path-like or `~astropy.table.Table`
        A file in VOTable (``.xml``, ``.vot``), ECSV, CSV or FITS format, or a
        table already in memory. Any of the layouts in `LAYOUTS` is accepted
        (see the module docstring).
    format : str, optional
        Format passed to `astropy.table.Table.read` (``"votable"``,
        ``"ascii.ecsv"``, ``"ascii.csv"``, ``"fits"``, ...). By default it is
        chosen from the file extension. Ignored when ``source`` is a table.

    Returns
    -------
    light_curves : dict of int to `~astropy.timeseries.TimeSeries`
        One entry per ``source_id`` found, in order of first appearance. Each
        time series is sorted by time and holds the columns ``time`` (TCB),
        ``mag`` (mag), and, when the input has them, ``flux`` and
        ``flux_error`` (electron / s) and ``transit_id``, and
        ``meta["source_id"]``. A source whose G
        transits were all rejected is still listed, with zero rows.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        If the table follows none of the layouts or lacks the G-band time or
        magnitude columns.

    Notes
    -----
    Only the G band is read; BP and RP are never mixed in. A transit is dropped
    when it was rejected by the photometric processing
    (``rejected_by_photometry``) or by the variability processing
    (``rejected_by_variability`` or ``variability_flag_g_reject``), or when its
    G time or magnitude is missing. Flags may be booleans or the strings
    ``"true"``/``"false"`` of CSV files; a missing flag counts as false.

    Gaia times are BJD(TCB) - 2455197.5 d; they are stored as a two-part
    Julian date, ``Time(2455197.5, t, format="jd", scale="tcb")``, so that no
    precision is lost.
    """
    with reading(source):
        arrays = epoch_arrays(read_table(source, format))
    return {sid: _make_timeseries(values, sid) for sid, values in arrays.items()}


def epoch_arrays(table):
    """Accepted G transits of each source as arrays, in order of first appearance.

    The light curves of `read_epoch_photometry` before they become
    `~astropy.timeseries.TimeSeries`: what the catalogue and Dask paths
    predict from, without building an astropy object per star.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Epoch photometry in any of `LAYOUTS`.

    Returns
    -------
    dict of int to dict of str to ndarray
        ``time`` (Gaia days), ``mag`` and the optional quantities of each
        source, in file order (not yet sorted by time).
    """
    layout = detect_layout(table)
    names = _column_lookup(table)
    wanted = _COLUMNS[layout]
    if layout == "long":
        required = ("source_id", "band", "time", "mag")
    else:
        required = tuple(wanted[key] for key in _REQUIRED)
    missing = [name for name in required if name not in names]
    if missing:
        raise InputFormatError(
            f"This table looks like the {layout!r} Gaia epoch-photometry layout "
            f"but lacks the column(s) {missing}. " + _describe_columns(table)
        )
    columns = {key: names[name] for key, name in wanted.items() if name in names}
    rejects = [names[name] for name in _REJECT_COLUMNS[layout] if name in names]
    if layout == "tap":
        return _read_tap(table, columns, rejects)
    band = names["band"] if layout == "long" else None
    return _read_rows(table, columns, rejects, band_column=band)


def iter_epoch_photometry(
    source: str | os.PathLike | Table,
    *,
    chunk_size: int = 10_000,
    format: str | None = None,
    block_rows: int = 200_000,
) -> Iterator[dict[int, TimeSeries]]:
    """Read Gaia epoch photometry a chunk of sources at a time.

    Parameters
    ----------
    source : str, path-like or `~astropy.table.Table`
        As for `read_epoch_photometry`.
    chunk_size : int, optional
        Number of sources per chunk (the last chunk may hold fewer).
    format : str, optional
        As for `read_epoch_photometry`.
    block_rows : int, optional
        Rows read from the file at a time.

    Yields
    ------
    light_curves : dict of int to `~astropy.timeseries.TimeSeries`
        The next ``chunk_size`` sources, in order of first appearance, each
        exactly as `read_epoch_photometry` would return it.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        As `read_epoch_photometry`, or when the rows of a source are split by
        rows of other sources over more than one block (a streamed file must
        hold each source's rows together, as the archive writes them).

    Notes
    -----
    CSV and ECSV (also gzip, bzip2 or xz compressed), FITS (memory-mapped)
    and Parquet files are read ``block_rows`` rows at a time, so memory does
    not grow with the file; a VOTable is parsed whole first.
    """
    for chunk in iter_epoch_arrays(source, chunk_size=chunk_size, format=format,
                                     block_rows=block_rows):
        yield {sid: _make_timeseries(values, sid) for sid, values in chunk.items()}


def iter_epoch_arrays(source, *, chunk_size, format=None, block_rows=200_000):
    """Chunks of ``{source_id: arrays}`` (see `epoch_arrays`) read block by block.

    The arrays behind `iter_epoch_photometry`; parameters and errors as there.

    The sources of a block are complete except the one of its last row, which
    may go on in the next block: it is held back and joined to it.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    finished, chunk = set(), {}
    held_id, held = None, None
    for block in iter_table_blocks(source, format, block_rows):
        if len(block) == 0:
            continue
        with reading(source):
            arrays = epoch_arrays(block)
            last_id = int(_to_int(block[_column_lookup(block)["source_id"]][-1:],
                                  "source_id")[0])
        complete = []
        for sid, values in arrays.items():
            if sid == held_id:
                values = {key: np.concatenate([held[key], values[key]]) for key in values}
            elif held_id is not None:
                complete.append((held_id, held))
            held_id = held = None
            if sid == last_id:
                held_id, held = sid, values
            else:
                complete.append((sid, values))
        yield from _fill_chunks(chunk, finished, complete, chunk_size, source)
    if held_id is not None:
        yield from _fill_chunks(chunk, finished, [(held_id, held)], chunk_size, source)
    if chunk:
        yield dict(chunk)


def _fill_chunks(chunk, finished, complete, chunk_size, source):
    """Add complete sources to ``chunk`` (in place); yield it each time it is full."""
    for sid, values in complete:
        if sid in finished or sid in chunk:
            raise InputFormatError(
                f"The rows of source {sid} are not together in {source}: they come "
                "back after rows of other sources. Sort the file by source_id "
                "(keeping the rows of each source in order) and run again."
            )
        chunk[sid] = values
        if len(chunk) == chunk_size:
            finished.update(chunk)
            yield dict(chunk)
            chunk.clear()


def read_rrlyrae_parameters(
    source: str | os.PathLike | Table, *, format: str | None = None
) -> Table:
    """Read a table of RR Lyrae parameters such as ``gaiadr3.vari_rrlyrae``.

    Parameters
    ----------
    source : str, path-like or `~astropy.table.Table`
        A VOTable, ECSV, CSV or FITS file, or a table in memory.
    format : str, optional
        Format passed to `astropy.table.Table.read`; by default chosen from
        the file extension.

    Returns
    -------
    parameters : `~astropy.table.Table`
        A copy of the table with lower-case names for the known
        ``vari_rrlyrae`` columns, ``source_id`` as 64-bit integers, and
        ``pf`` (and ``epoch_g``, when present) in days when they had no unit.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        If ``source_id`` or ``pf`` is missing.
    """
    with reading(source):
        return _with_rrlyrae_units(read_table(source, format))


# --------------------------------------------------------------------------
# Reading tables
# --------------------------------------------------------------------------


def _column_lookup(table):
    """Map lower-case column names to the table's own spelling."""
    return {name.lower(): name for name in table.colnames}


def _describe_columns(table):
    expected = []
    for layout in LAYOUTS:
        cols = _COLUMNS[layout]
        if layout == "long":
            required = ["source_id", "band", "time", "mag"]
        else:
            required = [cols[key] for key in _REQUIRED]
        optional = [
            name
            for name in (*cols.values(), *_REJECT_COLUMNS[layout])
            if name not in required
        ]
        kind = " (array columns, one row per source)" if layout == "tap" else ""
        expected.append(
            f"{layout}{kind}: {', '.join(required)} (optional: {', '.join(optional)})"
        )
    return f"Columns found: {list(table.colnames)}. Expected, per layout: " + "; ".join(
        expected
    )


def _is_array_column(column):
    """Whether a column holds one array per row (the TAP layout)."""
    if column.ndim > 1:
        return True
    data = np.ma.getdata(column)
    mask = np.ma.getmaskarray(column)
    if data.dtype.kind not in "OUS":
        return False
    for value, masked in zip(data, mask):
        if masked or value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in _NULL_TOKENS:
                continue
            # A CSV/ECSV cell such as "[1.0, 2.0]", "(1.0,2.0)" or "1.0 2.0".
            return text[:1] in "[({" or _SPLIT.search(text) is not None
        return np.ndim(value) > 0
    return False


# --------------------------------------------------------------------------
# Conversions robust to masks, strings and object columns
# --------------------------------------------------------------------------


def _to_bool(values):
    """Return a plain boolean array; masked, null or unknown values are False."""
    mask = np.ma.getmaskarray(values)
    data = np.asarray(np.ma.getdata(values))
    if data.dtype.kind == "b":
        out = data.copy()
    elif data.dtype.kind in "iu":
        out = data != 0
    elif data.dtype.kind == "f":
        out = np.nan_to_num(data, nan=0.0) != 0
    else:
        # Strings ("true"/"false", "True"/"False", "1"/"0") or objects.
        out = np.isin(np.char.lower(_stripped_text(data)), list(_TRUE_TOKENS))
    return out & ~mask


def _stripped_text(values):
    """Values as a unicode array without surrounding blanks (vectorised for text dtypes)."""
    data = np.asarray(np.ma.getdata(values))
    if data.dtype.kind == "S":
        data = np.char.decode(data, "ascii", "replace")
    elif data.dtype.kind != "U":
        data = np.array([_text(value) for value in data.ravel()], dtype=str).reshape(data.shape)
    return np.char.strip(data)


def _to_float(values, name, unreadable=None):
    """Return a float array; masked or null values become NaN.

    Text that is not a number raises `InputFormatError`, or, when a boolean
    array ``unreadable`` of the same shape is given, becomes NaN and is
    marked True there (one bad cell then costs its star, not the file).
    """
    mask = np.ma.getmaskarray(values)
    data = np.asarray(np.ma.getdata(values))
    if data.dtype.kind in "biuf":
        out = data.astype(float)
    else:
        out = np.empty(data.size, dtype=float)
        for i, value in enumerate(data.ravel()):
            try:
                out[i] = _parse_float(value)
            except ValueError:
                if unreadable is None:
                    raise InputFormatError(
                        f"Cannot read {_text(value).strip()!r} in column {name!r} as a number"
                    ) from None
                out[i] = np.nan
                unreadable.flat[i] = True
        out = out.reshape(data.shape)
    out[mask] = np.nan
    return out


def _to_int(values, name, *, fill=None):
    """Return an integer array that holds every value exactly; masked values become ``fill``.

    int64, or uint64 when a value is at or above 2**63 (an unsigned column, or
    text): source ids are never wrapped to negative numbers. A missing value
    is an error when ``fill`` is None.
    """
    mask = np.ma.getmaskarray(values)
    data = np.asarray(np.ma.getdata(values))
    if data.dtype.kind == "u" and data.dtype.itemsize == 8 and (data > _INT64_MAX).any():
        out = data.copy()
    elif data.dtype.kind in "biu":
        out = data.astype(np.int64)
    elif data.dtype.kind == "f":
        mask = mask | ~np.isfinite(data)
        out = np.where(mask, 0, data).astype(np.int64)
    else:
        numbers = []
        flat_mask = mask.ravel().copy()  # never write into the caller's mask
        for i, value in enumerate(data.ravel()):
            text = _text(value).strip()
            if flat_mask[i] or text.lower() in _NULL_TOKENS:
                flat_mask[i] = True
                numbers.append(0)
                continue
            try:
                numbers.append(int(text))
            except ValueError:
                raise InputFormatError(
                    f"Cannot read {text!r} in column {name!r} as an integer"
                ) from None
        out = source_id_array(numbers).reshape(data.shape)
        mask = flat_mask.reshape(data.shape)
    if mask.any():
        if fill is None:
            raise InputFormatError(f"Column {name!r} has missing values")
        out[mask] = fill
    return out


def source_id_array(ids):
    """Integer ids as an array that holds every one exactly.

    Parameters
    ----------
    ids : sequence of int

    Returns
    -------
    ndarray
        int64; uint64 when an id is at or above 2**63 (and none is negative).

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        For ids that no 64-bit integer type holds.
    """
    ids = [int(i) for i in ids]
    if not ids or max(ids) <= _INT64_MAX:
        return np.array(ids, dtype=np.int64)
    if min(ids) < 0 or max(ids) > np.iinfo(np.uint64).max:
        raise InputFormatError("source ids span more than a 64-bit integer can hold")
    return np.array(ids, dtype=np.uint64)


def _text(value):
    if value is None or value is np.ma.masked:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


def _parse_float(value):
    """A number from a cell; NaN for a null; ValueError for other text."""
    if value is None or value is np.ma.masked:
        return np.nan
    if isinstance(value, (bytes, str)):
        text = _text(value).strip()
        if text.lower() in _NULL_TOKENS:
            return np.nan
        return float(text)
    return float(value)


_SPLIT = re.compile(r"[,\s]+")
_INT64_MAX = np.iinfo(np.int64).max


def _cell_array(cell):
    """One TAP cell (array, masked array, list or string) as a 1-D array."""
    if cell is None or cell is np.ma.masked:
        return np.array([], dtype=float)
    if isinstance(cell, bytes):
        cell = cell.decode("ascii", "replace")
    if isinstance(cell, str):
        # Archive CSV/ECSV files may store arrays as "[1.0, 2.0]" or "(1.0,2.0)".
        text = cell.strip()
        if text[:1] in "[({" and text[-1:] in "])}":
            text = text[1:-1]
        elif text.lower() in _NULL_TOKENS:
            return np.array([], dtype=str)  # a null cell, not a one-element array
        tokens = [token for token in _SPLIT.split(text.strip()) if token]
        return np.array(tokens, dtype=str)
    if isinstance(cell, np.ma.MaskedArray):
        return cell.ravel()
    return np.asarray(cell).ravel()


# --------------------------------------------------------------------------
# Layout readers
# --------------------------------------------------------------------------


def _read_rows(table, columns, rejects, *, band_column):
    """Long and wide layouts: one row per transit (and band, for ``long``)."""
    source_ids = _to_int(table[columns["source_id"]], columns["source_id"])
    keep = np.ones(len(table), dtype=bool)
    if band_column is not None:
        bands = np.char.upper(_stripped_text(table[band_column]))
        keep &= (bands == "G") & ~np.ma.getmaskarray(table[band_column])
    for name in rejects:
        keep &= ~_to_bool(table[name])
    unreadable = np.zeros(len(table), dtype=bool)
    values = _quantities(table, columns, unreadable)
    values["unreadable"] = unreadable
    keep &= (np.isfinite(values["time"]) & np.isfinite(values["mag"])) | unreadable
    result = {}
    for sid, rows in _group_rows(source_ids):
        rows = rows[keep[rows]]
        result[sid] = {key: value[rows] for key, value in values.items()}
    return result


def _quantities(table, columns, unreadable):
    """Float (int for transit ids) arrays of each quantity; ``unreadable`` marks bad time/mag."""
    values = {}
    for key, name in columns.items():
        if key == "source_id":
            continue
        column = table[name]
        if key == "transit_id":
            values[key] = _to_int(column, name, fill=-1)
        else:
            values[key] = _to_float(column, name,
                                    unreadable if key in ("time", "mag") else np.zeros(
                                        np.shape(column), dtype=bool))
            if key == "mag":
                values[key] = values[key] * _magnitude_factor(column, name)
    return values


def _magnitude_factor(column, name):
    """What turns a magnitude column's numbers into mag (mmag files exist); 1 without a unit.

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        For a unit that is not a magnitude.
    """
    unit = getattr(column, "unit", None)
    if unit is None or unit in (u.mag, u.dimensionless_unscaled):
        return 1.0
    if isinstance(unit, u.MagUnit):
        return 1.0  # AB or ST magnitudes: the numbers are magnitudes
    try:
        return float(unit.to(u.mag))
    except (u.UnitConversionError, ValueError):
        raise InputFormatError(f"column {name!r} is in {unit}, not in magnitudes") from None


def _read_tap(table, columns, rejects):
    """TAP layout: one row per source, each quantity an array over transits."""
    source_ids = _to_int(table[columns["source_id"]], columns["source_id"])
    pieces: dict[int, list[dict[str, np.ndarray]]] = {}
    for row, sid in enumerate(source_ids):
        pieces.setdefault(int(sid), []).append(_tap_cells(table, row, columns, rejects))
    return {
        sid: {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        for sid, parts in pieces.items()
    }


def _tap_cells(table, row, columns, rejects):
    """The accepted transits of one TAP row; arrays that disagree make them unreadable."""
    unreadable = None
    cells = {}
    for key, name in columns.items():
        if key == "source_id":
            continue
        cell = _cell_array(table[name][row])
        if key == "transit_id":
            cells[key] = _to_int(cell, name, fill=-1)
        else:
            bad = np.zeros(cell.shape, dtype=bool)
            cells[key] = _to_float(cell, name, bad)
            if key == "mag":
                cells[key] = cells[key] * _magnitude_factor(table[name], name)
            if key in ("time", "mag"):
                unreadable = bad if unreadable is None or unreadable.shape != bad.shape else (
                    unreadable | bad)
    n_transits = len(cells["time"])
    lengths = {key: len(value) for key, value in cells.items()}
    flags = [_to_bool(_cell_array(table[name][row])) for name in rejects]
    flags = [f for f in flags if f.size]  # a null flag cell: nothing rejected
    if any(n != n_transits for n in lengths.values()) or any(f.size != n_transits for f in flags):
        # Arrays of one source that disagree in length cannot be paired
        # transit by transit: the whole star is unreadable, the file is not.
        return {key: np.full(n_transits, -1 if key == "transit_id" else np.nan)
                for key in cells} | {"unreadable": np.ones(n_transits, dtype=bool)}
    keep = (np.isfinite(cells["time"]) & np.isfinite(cells["mag"])) | unreadable
    for flag in flags:
        keep &= ~flag
    cells["unreadable"] = unreadable
    return {key: value[keep] for key, value in cells.items()}


def _group_rows(source_ids) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(source_id, row indices)`` in order of first appearance."""
    if len(source_ids) == 0:
        return
    unique, first, inverse = np.unique(source_ids, return_index=True, return_inverse=True)
    inverse = inverse.ravel()  # numpy 2.0.x returned it with the input's shape
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(unique)))[:-1])
    for k in np.argsort(first, kind="stable"):
        yield int(unique[k]), groups[k]


def _make_timeseries(values, source_id):
    unreadable = values.get("unreadable")
    if unreadable is not None and unreadable.any():
        values = {key: value[~unreadable] for key, value in values.items()}
    order = np.argsort(values["time"], kind="stable")
    time = Time(GAIA_TIME_ZERO, values["time"][order], format="jd", scale="tcb")
    ts = TimeSeries(time=time)
    ts["mag"] = values["mag"][order] * u.mag
    for key in ("flux", "flux_error"):
        if key in values:
            ts[key] = values[key][order] * _FLUX_UNIT
    if "transit_id" in values:
        ts["transit_id"] = values["transit_id"][order]
    ts.meta["band"] = "G"
    ts.meta["source_id"] = source_id  # names the star in error messages
    if unreadable is not None and unreadable.any():
        # Such a star is not predicted (status ``unreadable_values``), never
        # predicted from what is left of it.
        ts.meta["unreadable_transits"] = int(unreadable.sum())
    return ts


# --------------------------------------------------------------------------
# RR Lyrae parameters
# --------------------------------------------------------------------------


def _with_rrlyrae_units(table):
    table = table.copy(copy_data=False)
    names = _column_lookup(table)
    missing = [name for name in ("source_id", "pf") if name not in names]
    if missing:
        raise InputFormatError(
            f"An RR Lyrae parameter table (like gaiadr3.vari_rrlyrae) needs the "
            f"column(s) {missing}. Columns found: {list(table.colnames)}"
        )
    for name in RRLYRAE_COLUMNS:
        if name in names and names[name] != name:
            table.rename_column(names[name], name)
    table["source_id"] = _to_int(table["source_id"], "source_id")
    for name in ("pf", "epoch_g"):
        if name in table.colnames:
            unit = table[name].unit
            if unit is None or unit == u.dimensionless_unscaled:
                table[name].unit = u.day
    return table
