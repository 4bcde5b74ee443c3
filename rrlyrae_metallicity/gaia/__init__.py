"""Gaia epoch photometry and RR Lyrae parameters: from files, tables or the archive.

Gaia epoch photometry reaches users in three layouts, and each may be saved as
VOTable, ECSV, CSV or FITS:

``long``
    The DataLink ``EPOCH_PHOTOMETRY`` product as served before about December
    2024 (and for Gaia DR2): one row per transit *and band*, with columns
    ``source_id, transit_id, band, time, mag, flux, flux_error, ...,
    rejected_by_photometry, rejected_by_variability``.
``wide``
    The current DataLink product: one row per transit, one column set per band
    (``g_transit_time, g_transit_mag, ..., bp_obs_time, ..., rp_mag,
    variability_flag_g_reject, ..., rejected_by_photometry``).
``tap``
    The ``gaiadr3.epoch_photometry`` TAP table: one row per source, the
    quantities of the ``wide`` layout stored as arrays over transits.

The readers (`rrlyrae_metallicity.gaia.readers`) recognise the layout from the
column names and return the accepted G-band transits of every source. The
``fetch_*`` functions (`rrlyrae_metallicity.gaia.archive`) query the Gaia
archive and need the ``gaia`` extra (astroquery). Both submodules are
imported on first use, so that ``import rrlyrae_metallicity`` stays light.
"""

import importlib

__all__ = [
    "GAIA_TIME_ZERO",
    "LAYOUTS",
    "detect_layout",
    "read_epoch_photometry",
    "iter_epoch_photometry",
    "epoch_arrays",
    "iter_epoch_arrays",
    "read_rrlyrae_parameters",
    "fetch_epoch_photometry",
    "fetch_rrlyrae_parameters",
]

#: Julian date (TCB) of Gaia time zero: Gaia times are BJD(TCB) - 2455197.5 d.
GAIA_TIME_ZERO = 2455197.5

# Public name -> submodule that defines it.
_SUBMODULE = {
    "LAYOUTS": "readers",
    "detect_layout": "readers",
    "read_epoch_photometry": "readers",
    "iter_epoch_photometry": "readers",
    "epoch_arrays": "readers",
    "iter_epoch_arrays": "readers",
    "read_rrlyrae_parameters": "readers",
    "fetch_epoch_photometry": "archive",
    "fetch_rrlyrae_parameters": "archive",
}


def __getattr__(name):
    if name in _SUBMODULE:
        return getattr(importlib.import_module(f".{_SUBMODULE[name]}", __name__), name)
    if name in ("readers", "archive"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | {"readers", "archive"})
