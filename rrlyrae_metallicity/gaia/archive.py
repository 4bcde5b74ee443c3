"""Fetch Gaia epoch photometry and RR Lyrae parameters from the Gaia archive.

Needs the ``gaia`` extra (astroquery), imported only when a function is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
from astropy.table import Table, vstack
from astropy.timeseries import TimeSeries
from astropy.units import UnitsWarning

from .readers import RRLYRAE_COLUMNS, read_epoch_photometry, read_rrlyrae_parameters

__all__ = ["LOAD_DATA_CHUNK", "ADQL_CHUNK", "fetch_epoch_photometry", "fetch_rrlyrae_parameters"]

#: Sources per DataLink call: the archive accepts at most about 5000.
LOAD_DATA_CHUNK = 5000
#: Sources per ADQL ``IN (...)`` list, well below the archive's query-size limit.
ADQL_CHUNK = 2000

_GAIA_EXTRA_HINT = 'pip install "rrlyrae_metallicity[gaia]"'


def fetch_epoch_photometry(
    source_ids: int | Iterable[int], *, data_release: str = "Gaia DR3"
) -> dict[int, TimeSeries]:
    """Download Gaia epoch photometry and read its G band.

    Parameters
    ----------
    source_ids : int or iterable of int
        Gaia ``source_id`` values.
    data_release : str, optional
        Data release passed to the archive, ``"Gaia DR3"`` by default.

    Returns
    -------
    light_curves : dict of int to `~astropy.timeseries.TimeSeries`
        As returned by `read_epoch_photometry`, in the order of
        ``source_ids``. Sources for which the archive holds no epoch
        photometry are absent.

    Raises
    ------
    ImportError
        If astroquery (the ``gaia`` extra) is not installed.
    ValueError
        If ``source_ids`` is empty.

    Notes
    -----
    Uses ``astroquery.gaia.Gaia.load_data`` with
    ``retrieval_type="EPOCH_PHOTOMETRY"``, asking for at most 5000 sources
    per call, as the archive requires.
    """
    Gaia = _import_gaia()
    ids = _as_source_ids(source_ids)
    result: dict[int, TimeSeries] = {}
    for chunk in _chunks(ids, LOAD_DATA_CHUNK):
        products = Gaia.load_data(
            chunk,
            data_release=data_release,
            retrieval_type="EPOCH_PHOTOMETRY",
            data_structure="INDIVIDUAL",
            format="votable",
        )
        tables = []
        with warnings.catch_warnings():
            # Archive unit strings do not matter: the reader sets its own units.
            warnings.simplefilter("ignore", UnitsWarning)
            for entries in products.values():
                if not isinstance(entries, list):
                    entries = [entries]
                for entry in entries:
                    # VOTable products come as votable TableElement objects.
                    tables.append(entry.to_table() if hasattr(entry, "to_table") else entry)
        if not tables:
            continue
        # "outer" keeps files that lack an optional column, such as
        # rejected_by_photometry; the reader treats the masked flags as false.
        table = vstack(tables, join_type="outer", metadata_conflicts="silent")
        result.update(read_epoch_photometry(table))
    # Follow the caller's order rather than the archive's file order.
    ordered = {sid: result.pop(sid) for sid in ids if sid in result}
    ordered.update(result)
    return ordered


def fetch_rrlyrae_parameters(source_ids: int | Iterable[int]) -> Table:
    """Query ``gaiadr3.vari_rrlyrae`` for the given sources.

    Parameters
    ----------
    source_ids : int or iterable of int
        Gaia DR3 ``source_id`` values.

    Returns
    -------
    parameters : `~astropy.table.Table`
        Columns ``source_id, pf, p1_o, epoch_g, peak_to_peak_g,
        num_clean_epochs_g, metallicity, best_classification``, one row per
        source found in ``vari_rrlyrae``, with units as in
        `read_rrlyrae_parameters`.

    Raises
    ------
    ImportError
        If astroquery (the ``gaia`` extra) is not installed.
    ValueError
        If ``source_ids`` is empty.
    """
    Gaia = _import_gaia()
    ids = _as_source_ids(source_ids)
    tables = []
    for chunk in _chunks(ids, ADQL_CHUNK):
        query = (
            f"SELECT {', '.join(RRLYRAE_COLUMNS)} FROM gaiadr3.vari_rrlyrae "
            f"WHERE source_id IN ({', '.join(str(sid) for sid in chunk)})"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnitsWarning)
            tables.append(Gaia.launch_job_async(query).get_results())
    table = tables[0] if len(tables) == 1 else vstack(tables, metadata_conflicts="silent")
    return read_rrlyrae_parameters(table)


def _import_gaia():
    try:
        from astroquery.gaia import Gaia
    except ImportError as exc:
        raise ImportError(
            f"Reading from the Gaia archive needs astroquery: {_GAIA_EXTRA_HINT}"
        ) from exc
    return Gaia


def _as_source_ids(source_ids):
    if isinstance(source_ids, (int, np.integer, str)):
        source_ids = [source_ids]
    # dict.fromkeys drops repeats and keeps the caller's order.
    ids = list(dict.fromkeys(int(sid) for sid in source_ids))
    if not ids:
        raise ValueError("'source_ids' should hold at least one Gaia source_id")
    return ids


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]
