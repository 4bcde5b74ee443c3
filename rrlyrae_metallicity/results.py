"""Per-star results as table columns: the last step of every prediction.

`~rrlyrae_metallicity.add_feh`, the catalogue runner and the Dask path fill
the same columns (`FEH_COLUMNS`) from
`~rrlyrae_metallicity.pipeline.StarPredictions` and attach them to the
user's table with `with_feh_columns`, with units and descriptions.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from .domain import FLAG_BITS
from .outputs import provenance

__all__ = ["FEH_COLUMNS", "TEXT_COLUMNS", "empty_feh_columns", "fill_feh_columns", "as_arrays",
           "with_feh_columns"]

#: Columns added to a star table, in order.
FEH_COLUMNS = ("feh_phot", "feh_phot_std", "feh_status", "feh_domain", "feh_flags",
               "feh_n_epochs", "feh_n_rejected", "feh_epoch_influence")
#: Those of `FEH_COLUMNS` that hold text.
TEXT_COLUMNS = ("feh_status", "feh_domain")

_DTYPES = {"feh_phot": float, "feh_phot_std": float, "feh_status": object,
           "feh_domain": object, "feh_flags": np.int64, "feh_n_epochs": np.int64,
           "feh_n_rejected": np.int64, "feh_epoch_influence": float}


def empty_feh_columns(n_rows):
    """The result columns of ``n_rows`` stars without a light curve.

    Returns
    -------
    dict of str to ndarray
        NaN values, status ``no_lightcurve``, no domain reason, 0 epochs.
    """
    return {"feh_phot": np.full(n_rows, np.nan), "feh_phot_std": np.full(n_rows, np.nan),
            "feh_status": np.array(["no_lightcurve"] * n_rows, dtype=object),
            "feh_domain": np.array([""] * n_rows, dtype=object),
            "feh_flags": np.full(n_rows, FLAG_BITS["no_prediction"][0], dtype=np.int64),
            "feh_n_epochs": np.zeros(n_rows, dtype=np.int64),
            "feh_n_rejected": np.zeros(n_rows, dtype=np.int64),
            "feh_epoch_influence": np.full(n_rows, np.nan)}


def fill_feh_columns(columns, rows, predictions):
    """Write ``predictions`` into ``columns`` (in place) at ``rows``.

    Parameters
    ----------
    columns : dict
        As made by `empty_feh_columns`.
    rows : array-like of int or slice
        Rows of the table that the stars of ``predictions`` fill, in order.
    predictions : `~rrlyrae_metallicity.pipeline.StarPredictions`
    """
    columns["feh_phot"][rows] = predictions.feh
    columns["feh_phot_std"][rows] = predictions.feh_std
    columns["feh_status"][rows] = predictions.status
    columns["feh_domain"][rows] = predictions.domain
    columns["feh_flags"][rows] = predictions.flags
    columns["feh_n_epochs"][rows] = predictions.n_epochs
    columns["feh_n_rejected"][rows] = predictions.n_rejected
    columns["feh_epoch_influence"][rows] = predictions.epoch_influence


def as_arrays(columns):
    """``columns`` as plain arrays (text as unicode), e.g. to store them in a file."""
    return {name: np.asarray(columns[name], dtype=str if name in TEXT_COLUMNS
                             else _DTYPES[name]) for name in FEH_COLUMNS}


def with_feh_columns(table, columns, ensemble, *, inputs=()):
    """A copy of ``table`` with the [Fe/H] columns, their units and descriptions.

    Parameters
    ----------
    table : `~astropy.table.Table`
        One row per star.
    columns : dict
        As made by `empty_feh_columns` and filled by `fill_feh_columns`.
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        The model, named in the table's ``meta["feh_model"]``.
    inputs : sequence of str, optional
        Input files, recorded in ``meta["feh_inputs"]``.

    Returns
    -------
    `~astropy.table.Table`
        With the provenance of `~rrlyrae_metallicity.outputs.provenance` in
        its ``meta`` (model, its sha256, package version, time, inputs,
        pre-processing, label scale).
    """
    out = table.copy()
    out["feh_phot"] = np.asarray(columns["feh_phot"], dtype=float) * u.dex
    out["feh_phot_std"] = np.asarray(columns["feh_phot_std"], dtype=float) * u.dex
    out["feh_status"] = np.asarray(columns["feh_status"]).astype(str)
    out["feh_domain"] = np.asarray(columns["feh_domain"]).astype(str)
    out["feh_flags"] = np.asarray(columns["feh_flags"], dtype=np.int64)
    out["feh_n_epochs"] = np.asarray(columns["feh_n_epochs"], dtype=np.int64)
    out["feh_n_rejected"] = np.asarray(columns["feh_n_rejected"], dtype=np.int64)
    out["feh_epoch_influence"] = np.asarray(columns["feh_epoch_influence"], dtype=float) * u.dex
    out["feh_phot"].description = f"photometric [Fe/H], mean of the {ensemble.name} ensemble"
    calibration = ensemble.uncertainty_calibration or {}
    out["feh_phot_std"].description = (
        "uncertainty of feh_phot: a per-star error model fitted on out-of-fold errors"
        if calibration.get("error_model") else
        "uncertainty of feh_phot: the members' spread calibrated on out-of-fold errors"
        if calibration else
        "spread of the ensemble members' predictions (not calibrated)") + (
        "; NaN outside the training domain (see feh_domain)")
    out["feh_status"].description = "'ok', or why no [Fe/H] was predicted"
    out["feh_domain"].description = ("empty, or why the star lies outside the period, amplitude, "
                                     "epoch-count or phase-coverage range of the training set")
    out["feh_flags"].description = "bits: " + ", ".join(
        f"{value} {meaning}" for value, meaning in FLAG_BITS.values())
    out["feh_n_epochs"].description = ("usable epochs (finite, at distinct phases) the "
                                       "prediction was made from")
    out["feh_n_rejected"].description = ("epochs rejected as outliers (far from the smooth "
                                         "curve of the others) before the fit")
    out["feh_epoch_influence"].description = (
        "feh_phot without the kept epoch farthest from the smooth curve of the others, minus "
        "feh_phot: how much the value rests on that one epoch (NaN: too few epochs to drop one)")
    out.meta.update(provenance(ensemble, inputs=inputs))
    return out
