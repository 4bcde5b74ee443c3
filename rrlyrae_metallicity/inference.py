"""Photometric [Fe/H] of RRab stars from their light curves: the public API.

Both functions are thin: `rrlyrae_metallicity.adapters` reads what the user
passed into plain arrays, `rrlyrae_metallicity.pipeline.predict_batch`
predicts every star once, and the result goes back in the form the user
passed (a `~astropy.units.Quantity`, or a `~astropy.table.Table`).
"""

import warnings
from collections.abc import Mapping

from astropy import units as u
from astropy.table import Table

from .adapters import (
    as_named_collection,
    as_table,
    epoch_times,
    lightcurve_batch,
    period_in_days,
    star_name,
)
from .domain import FLAG_BITS, classification_errors
from .exceptions import EpochSensitiveWarning, OutOfDomainWarning, RRLyraeMetallicityWarning
from .messages import plural
from .ensemble import load_model
from .pipeline import STATUS_OK, predict_batch
from .results import empty_feh_columns, fill_feh_columns, with_feh_columns

__all__ = ["predict_feh", "add_feh", "STATUS_OK"]


def predict_feh(lightcurve, period, *, epoch=None, model="default", return_std=False,
                mag_column=None, providers=None):
    """Photometric metallicity [Fe/H] of RRab stars from their G-band light curves.

    Parameters
    ----------
    lightcurve : `~astropy.timeseries.TimeSeries` or sequence of them
        A light curve with a ``time`` column and magnitudes (raw, unfolded
        times), or a `~astropy.table.Table` with a ``phase`` column in [0, 1)
        (already folded). A sequence predicts every star of it.
    period : `~astropy.units.Quantity` ['time'] or sequence of them
        Pulsation period of each star.
    epoch : `~astropy.time.Time` or sequence of them, optional
        Time of maximum light. Not needed: phase zero is re-derived from the
        light curve itself (maximum of the smoothed curve), the same rule the
        models were trained with.
    model : str or path-like
        ``"default"``, a name from `~rrlyrae_metallicity.available_models`,
        or the folder of a retrained model.
    return_std : bool
        Also return the uncertainty of each value (dex), calibrated on
        out-of-fold errors so that about 68 % of the training stars lie
        within it: the model's per-star error model where its manifest has
        one (the default ``gru_distilled`` and ``gru``), else the members'
        spread with a floor and a scale (see
        the model card); the raw spread for a model without a calibration.
        NaN outside the training domain.
    mag_column : str, optional
        Name of the magnitude column (default: ``mag``, or the one column in
        mag units, or the one named ``*mag``; uncertainty columns such as
        ``mag_error`` are never taken).
    providers : sequence of str, optional
        ONNX Runtime execution providers, most preferred first, e.g.
        ``["CPUExecutionProvider"]``; by default ``conf.providers``, or CUDA
        when ONNX Runtime offers it, then the CPU.

    Returns
    -------
    feh : `~astropy.units.Quantity` ['dex']
        A scalar for one light curve, an array for a sequence (NaN, with a
        warning, for the stars that could not be processed).
    feh_std : `~astropy.units.Quantity` ['dex']
        Only with ``return_std=True``.

    Raises
    ------
    LightCurveError
        For a single light curve that cannot be processed (too few epochs, ...);
        the message names the star (``lightcurve.meta["source_id"]``, set by
        `~rrlyrae_metallicity.gaia.read_epoch_photometry`, or ``"name"``).
        `~rrlyrae_metallicity.exceptions.LightCurveTypeError`, also a
        `TypeError`, for a table that is not a light curve.
    astropy.units.UnitsError
        If ``period`` is not a time Quantity.

    Examples
    --------
    >>> import astropy.units as u
    >>> from rrlyrae_metallicity import predict_feh, simulate
    >>> star = simulate.simulate_stars(1, seed=3)[0]
    >>> lc = simulate.simulate_lightcurve(star, n_epochs=60, rng=3)
    >>> feh = predict_feh(lc, star["pf"] * u.day)
    >>> feh.unit
    Unit("dex")
    """
    lightcurve = as_table(lightcurve)
    if isinstance(lightcurve, Table):
        return _predict_one(lightcurve, period, epoch, load_model(model, providers=providers),
                            return_std, mag_column)
    curves, names, is_mapping = as_named_collection(lightcurve)
    if isinstance(period, Mapping) and is_mapping:
        period = [period.get(name) for name in names]
    periods = period_in_days(period, count=len(curves))
    ensemble = load_model(model, providers=providers)
    result = predict_batch(
        lightcurve_batch(curves, periods, epochs=epoch_times(epoch, len(curves)), stars=names,
                         mag_column=mag_column), ensemble)
    failed = result.failed
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(curves)} light curves could not be processed (NaN returned); "
            f"first: {failed[0]}", RRLyraeMetallicityWarning, stacklevel=2)
    _warn_out_of_domain(result, stacklevel=3)
    _warn_epoch_sensitive(result, stacklevel=3)
    if is_mapping:
        columns = empty_feh_columns(len(curves))
        fill_feh_columns(columns, slice(None), result)
        return with_feh_columns(Table({"source_id": names}), columns, ensemble)
    if return_std:
        return result.feh * u.dex, result.feh_std * u.dex
    return result.feh * u.dex


def _predict_one(lightcurve, period, epoch, ensemble, return_std, mag_column):
    """`predict_feh` of a single light curve: raises instead of returning NaN."""
    name = star_name(lightcurve)
    days = period_in_days(period).reshape(1)
    result = predict_batch(
        lightcurve_batch([lightcurve], days, epochs=epoch_times(epoch, 1), stars=[name],
                         mag_column=mag_column), ensemble)
    if result.failed:
        raise result.failed[0]
    _warn_out_of_domain(result, stacklevel=4)
    _warn_epoch_sensitive(result, stacklevel=4)
    if return_std:
        return result.feh[0] * u.dex, result.feh_std[0] * u.dex
    return result.feh[0] * u.dex


def _warn_epoch_sensitive(result, stacklevel):
    """One warning per call naming the stars whose [Fe/H] rests on one epoch."""
    bit = FLAG_BITS["epoch_sensitive"][0]
    _warn_naming([f"star {star}: {shift:+.2f} dex" for star, shift, flags in
                  zip(result.stars, result.epoch_influence, result.flags) if flags & bit],
                 len(result), ": [Fe/H] moves by more than half its uncertainty without the "
                 "epoch farthest from the smooth curve of the others (check that epoch)",
                 EpochSensitiveWarning, stacklevel + 1)


def _warn_out_of_domain(result, stacklevel):
    """One warning per call naming the stars predicted outside the training domain."""
    _warn_naming([f"star {star}: {reason}" for star, reason, status in
                  zip(result.stars, result.domain, result.status)
                  if reason and status == STATUS_OK],
                 len(result), " outside the model's training domain: the [Fe/H] is an "
                 "extrapolation and its uncertainty NaN", OutOfDomainWarning, stacklevel + 1)


def _warn_naming(stars, total, what, category, stacklevel):
    """Warn once that ``stars`` (texts naming them) of ``total`` light curves are ``what``."""
    if stars:
        more = f" (and {len(stars) - 5} more)" if len(stars) > 5 else ""
        warnings.warn(f"{len(stars)} of {plural(total, 'light curve')}{what}: "
                      f"{'; '.join(stars[:5])}{more}", category, stacklevel=stacklevel)


def add_feh(table, lightcurves, *, id_column="source_id", period_column="pf",
            epoch_column="epoch_g", model="default", mag_column=None, providers=None,
            classification_column="best_classification"):
    """Return ``table`` with photometric [Fe/H] columns added, every row kept in order.

    Parameters
    ----------
    table : `~astropy.table.Table`
        One row per star, e.g. rows of Gaia DR3 ``vari_rrlyrae``.
    lightcurves : mapping or sequence
        ``{star id: TimeSeries}`` (as returned by
        `~rrlyrae_metallicity.gaia.read_epoch_photometry`), looked up with
        ``id_column``; or a sequence with one light curve per row.
    id_column : str
        Column of ``table`` holding the star ids (used with a mapping).
    period_column : str
        Column holding the period (days when it has no unit).
    epoch_column : str or None
        Column holding the epoch of maximum light: a `~astropy.time.Time`
        column, or numbers in Gaia's convention (BJD(TCB) − 2455197.5 d).
        Optional; ignored when absent.
    model : str or path-like
        ``"default"``, a name from `~rrlyrae_metallicity.available_models`,
        or the folder of a retrained model.
    mag_column : str, optional
        Magnitude column of the light curves.
    providers : sequence of str, optional
        ONNX Runtime execution providers, as for `predict_feh`.
    classification_column : str or None
        Column with each star's type (Gaia DR3 ``best_classification``); a
        row classed as anything but RRab (RRc, RRd) gets the status
        ``not_rrab`` and no prediction. Ignored when absent.

    Returns
    -------
    `~astropy.table.Table`
        A copy of ``table`` with ``feh_phot`` and ``feh_phot_std`` (dex; NaN
        where no prediction was made), ``feh_status`` (``"ok"`` or the
        reason: ``no_lightcurve``, ``invalid_period``, ``too_few_epochs``, ...)
        and ``feh_domain`` (empty, or why the star lies outside the training
        set's period, amplitude, epoch-count or phase-coverage range: a
        prediction is still made, but it is an extrapolation).
    """
    table = as_table(table)
    if not isinstance(table, Table):
        raise TypeError(f"table should be an astropy Table of stars, not a "
                        f"{type(table).__name__} (for one row, use table[[i]])")
    for name in (period_column,) + ((id_column,) if isinstance(lightcurves, Mapping) else ()):
        if name not in table.colnames:
            raise KeyError(f"table has no column {name!r} (columns: {table.colnames})")
    if isinstance(lightcurves, Mapping):
        ids = [_plain(i) for i in table[id_column]]
        curves = [lightcurves.get(i) for i in ids]
        _warn_unmatched(lightcurves.keys() - set(ids), id_column)
    else:
        curves = list(lightcurves)
        if len(curves) != len(table):
            raise ValueError(f"got {len(curves)} light curves for a table of {len(table)} rows")
        ids = ([_plain(i) for i in table[id_column]] if id_column in table.colnames
               else list(range(len(table))))
    periods = period_in_days(table[period_column], count=len(table),
                             what=f"column {period_column!r}")
    epochs, has_epoch = epoch_times(
        table[epoch_column] if epoch_column in table.colnames else None, len(table))
    ensemble = load_model(model, providers=providers)
    columns = empty_feh_columns(len(table))
    present = [i for i, c in enumerate(curves) if c is not None]
    if present:
        batch = lightcurve_batch(
            [curves[i] for i in present], periods[present],
            epochs=(epochs[present] if epochs is not None else None, has_epoch[present]),
            stars=[ids[i] for i in present], mag_column=mag_column)
        if classification_column in table.colnames:
            batch.refuse(classification_errors(table[classification_column][present],
                                               batch.stars))
        fill_feh_columns(columns, present, predict_batch(batch, ensemble))
    return with_feh_columns(table, columns, ensemble)


def _warn_unmatched(unmatched, id_column):
    """Report light curves whose star has no row in the table (they are not predicted)."""
    if unmatched:
        warnings.warn(
            f"{len(unmatched)} light curves have no row in the table (no {id_column} matches; "
            f"not predicted), e.g. {sorted(unmatched, key=str)[:5]}",
            RRLyraeMetallicityWarning, stacklevel=3)


def _plain(value):
    """Numpy scalars as plain, hashable Python values."""
    return value.item() if hasattr(value, "item") else value
