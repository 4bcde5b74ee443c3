"""Photometric [Fe/H] of RRab stars from their light curves: the public API."""

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

from .exceptions import LightCurveError, LightCurveTypeError, RRLyraeMetallicityWarning
from .gaia import GAIA_TIME_ZERO
from .models import load_model
from .preprocessing import fold_times, prepare_inputs

__all__ = ["predict_feh", "add_feh", "STATUS_OK"]

#: Value of the ``feh_status`` column for a star with a prediction.
STATUS_OK = "ok"

# Stars per ONNX Runtime call. Each of the ensemble's sessions keeps an arena
# as large as its largest batch (about 40 kB per star, 0.4 MB per star for ten
# members), so this, not the catalogue or chunk size, bounds that memory; it is
# no slower than larger batches on a CPU.
_ONNX_BATCH = 1024



def _period_in_days(period, *, star=None):
    """Convert one period to days, insisting on a time unit."""
    if not isinstance(period, u.Quantity) or period.unit.physical_type != "time":
        raise u.UnitsError(
            f"period should be a Quantity in units of time, e.g. 0.55 * u.day; got {period!r}"
        )
    return float(period.to_value(u.day))


def _magnitudes(lightcurve, mag_column, star):
    """The magnitude column of a light curve as float mag, masked values as NaN."""
    if mag_column is None:
        if "mag" in lightcurve.colnames:
            mag_column = "mag"
        else:
            candidates = [name for name in lightcurve.colnames
                          if getattr(lightcurve[name], "unit", None) == u.mag]
            if len(candidates) != 1:
                raise LightCurveError(
                    f"cannot tell which column holds the magnitudes among {lightcurve.colnames}; "
                    "pass mag_column=...",
                    star=star, status="missing_column",
                )
            mag_column = candidates[0]
    if mag_column not in lightcurve.colnames:
        raise LightCurveError(
            f"no column {mag_column!r} in the light curve (columns: {lightcurve.colnames})",
            star=star, status="missing_column",
        )
    column = lightcurve[mag_column]
    unit = getattr(column, "unit", None)
    if unit is not None and unit != u.dimensionless_unscaled and unit != u.mag:
        raise LightCurveError(
            f"column {mag_column!r} has unit {unit}, not magnitudes; the models take magnitudes "
            "(convert fluxes with -2.5 log10(flux) + zero-point, or pass mag_column=...)",
            star=star, status="not_magnitudes",
        )
    values = column.value if isinstance(column, u.Quantity) else np.asarray(column)
    if np.ma.isMaskedArray(column):
        values = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)
    return np.asarray(values, dtype=float)


def _empty_lightcurve_error(star):
    return LightCurveError("the light curve is empty (0 epochs, e.g. all transits rejected)",
                           star=star, status="too_few_epochs")


def _phases(lightcurve, period_days, epoch, star):
    """Phases in [0, 1) of a TimeSeries (raw times) or a Table with a ``phase`` column."""
    if isinstance(lightcurve, Table) and len(lightcurve) == 0:
        raise _empty_lightcurve_error(star)
    if isinstance(lightcurve, TimeSeries) and isinstance(lightcurve.time, Time):
        reference = lightcurve.time[0] if epoch is None else epoch
        if not isinstance(reference, Time):
            raise LightCurveTypeError(f"epoch should be an astropy Time, got {epoch!r}",
                                      star=star)
        # Time - Time is a two-part TimeDelta: days since the epoch keep their
        # precision even 10 years away from it.
        elapsed = (lightcurve.time - reference).to_value(u.day)
        return fold_times(elapsed, period_days, star=star)
    if isinstance(lightcurve, Table) and "phase" in lightcurve.colnames:
        phase = lightcurve["phase"]
        return np.asarray(phase.value if isinstance(phase, u.Quantity) else phase, dtype=float)
    raise LightCurveTypeError(
        "a light curve should be an astropy TimeSeries with a time column (astropy Time) and "
        "magnitudes, or a Table with 'phase' and magnitude columns (already folded); got a "
        f"{type(lightcurve).__name__} with columns {getattr(lightcurve, 'colnames', None)}",
        star=star,
    )


def _predict_many(lightcurves, periods, epochs, ensemble, mag_column, stars):
    """Pre-process and predict many stars; never raises for one bad star.

    Returns
    -------
    See `_predict_phased`.
    """
    n_stars = len(lightcurves)
    phases, mags, errors = [np.empty(0)] * n_stars, [np.empty(0)] * n_stars, [None] * n_stars
    for i, (curve, period, epoch, star) in enumerate(zip(lightcurves, periods, epochs, stars)):
        try:
            # Both or neither: a star whose magnitudes fail keeps no phases.
            phases[i], mags[i] = (_phases(curve, period, epoch, star),
                                  _magnitudes(curve, mag_column, star))
        except LightCurveError as error:
            errors[i] = error
    return _predict_phased(phases, mags, periods, errors, ensemble, stars)


def _predict_phased(phases, mags, periods, errors, ensemble, stars):
    """Predict stars from their phases and magnitudes; never raises for one bad star.

    Parameters
    ----------
    phases, mags : list of ndarray
        Per star; ignored where ``errors`` already holds an error.
    periods : array-like of float
        Days.
    errors : list
        `None`, or the `LightCurveError` met while reading the star.
    ensemble : `~rrlyrae_metallicity.models.FehEnsemble`
    stars : list
        Identifiers used in messages.

    Returns
    -------
    feh, std : ndarray
        NaN where a star failed.
    errors : list
        `None` or the `LightCurveError` of each star.
    domain : list of str
        Per star, why it lies outside the training domain ("" when inside).
    """
    n_stars = len(errors)
    errors = list(errors)
    readable = [i for i in range(n_stars) if errors[i] is None]
    inputs = np.zeros((n_stars, ensemble.preprocessing.sequence_length, 2), dtype=np.float32)
    domain = [""] * n_stars
    prepared, smoothed, failures = prepare_inputs(
        [phases[i] for i in readable], [mags[i] for i in readable],
        [periods[i] for i in readable], ensemble.preprocessing,
        stars=[stars[i] for i in readable],
    )
    for j, i in enumerate(readable):
        errors[i] = failures[j]
        if failures[j] is None:
            inputs[i] = prepared[j]
            domain[i] = _outside_training_domain(ensemble.training_domain, periods[i],
                                                 smoothed[j])
    good = np.array([e is None for e in errors], dtype=bool)
    feh = np.full(n_stars, np.nan)
    std = np.full(n_stars, np.nan)
    if good.any():
        members = ensemble.stretch(ensemble.predict_members(inputs[good], batch_size=_ONNX_BATCH))
        feh[good] = ensemble.mean(members)
        std[good] = ensemble.uncertainty(members)
    return feh, std, errors, domain


def _outside_training_domain(domain, period, curve):
    """Comma-separated reasons why a star lies outside the training set's ranges."""
    reasons = []
    checks = (("period", period, domain.get("period_d"), "d"),
              ("amplitude", curve.amplitude, domain.get("amplitude_mag"), "mag"))
    for name, value, limits, unit in checks:
        if limits is not None and not limits[0] <= value <= limits[1]:
            reasons.append(f"{name} {value:.3g} {unit} outside {limits[0]:.3g}-{limits[1]:.3g}")
    n_epochs = domain.get("n_epochs")
    if n_epochs is not None and curve.phase.size < n_epochs[0]:
        reasons.append(f"{curve.phase.size} epochs, fewer than the {n_epochs[0]} of training")
    # Only a larger gap than any training star's matters: a well-covered curve is fine.
    gap = domain.get("max_phase_gap")
    if gap is not None and curve.max_phase_gap > gap[1]:
        reasons.append(f"phase gap {curve.max_phase_gap:.3g} cycles, wider than the "
                       f"{gap[1]:.3g} of training")
    return "; ".join(reasons)


def predict_feh(lightcurve, period, *, epoch=None, model="default", return_std=False,
                mag_column=None):
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
    model : str
        ``"default"`` or a name from `~rrlyrae_metallicity.available_models`.
    return_std : bool
        Also return the uncertainty of each value (dex): the members' spread
        calibrated on out-of-fold errors (about 68 % of the training stars
        lie within it; see the model card), or the raw spread for a model
        without a calibration in its manifest.
    mag_column : str, optional
        Name of the magnitude column (default: ``mag``, or the one column in
        mag units).

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
    single = isinstance(lightcurve, Table)
    if single:
        curves, periods, epochs = [lightcurve], [_period_in_days(period)], [epoch]
    else:
        if not isinstance(lightcurve, Sequence) and not hasattr(lightcurve, "__iter__"):
            raise TypeError("lightcurve should be a TimeSeries or a sequence of TimeSeries")
        curves = list(lightcurve)
        if isinstance(period, u.Quantity) and period.isscalar:
            raise ValueError("give one period per light curve (a Quantity array or a list)")
        periods = [_period_in_days(p) for p in period]
        epochs = [None] * len(curves) if epoch is None else list(epoch)
        if not len(curves) == len(periods) == len(epochs):
            raise ValueError(
                f"got {len(curves)} light curves, {len(periods)} periods and {len(epochs)} epochs"
            )
    ensemble = load_model(model)
    stars = [_star_name(lightcurve)] if single else list(range(len(curves)))
    feh, std, errors, _ = _predict_many(curves, periods, epochs, ensemble, mag_column, stars)
    failed = [e for e in errors if e is not None]
    if single and failed:
        raise failed[0]
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(curves)} light curves could not be processed (NaN returned); "
            f"first: {failed[0]}",
            RRLyraeMetallicityWarning,
            stacklevel=2,
        )
    if single:
        feh, std = feh[0], std[0]
    if return_std:
        return feh * u.dex, std * u.dex
    return feh * u.dex


def _star_name(lightcurve):
    """How messages name a single light curve: its ``meta`` id, or "the light curve"."""
    for key in ("source_id", "name", "id"):
        if lightcurve.meta.get(key) is not None:
            return lightcurve.meta[key]
    return "(the light curve given)"


def _column_values(table, name, unit):
    """A column as float values in ``unit`` (unitless columns assumed in it), NaN where masked."""
    column = table[name]
    if getattr(column, "unit", None) is not None:
        values = u.Quantity(column).to_value(unit)
    else:
        values = np.asarray(column, dtype=float)
    mask = np.ma.getmaskarray(column) if np.ma.isMaskedArray(column) else np.zeros(len(table), bool)
    values = np.array(values, dtype=float)
    values[mask] = np.nan
    return values


def _epochs(table, epoch_column):
    """Epochs of maximum light; bare numbers follow Gaia's BJD(TCB) − 2455197.5 d."""
    if epoch_column is None or epoch_column not in table.colnames:
        return [None] * len(table)
    column = table[epoch_column]
    if isinstance(column, Time):
        return [None if np.ma.is_masked(t.jd) else t for t in column]
    days = _column_values(table, epoch_column, u.day)
    return [Time(GAIA_TIME_ZERO, d, format="jd", scale="tcb") if np.isfinite(d) else None
            for d in days]


def add_feh(table, lightcurves, *, id_column="source_id", period_column="pf",
            epoch_column="epoch_g", model="default", mag_column=None):
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
    model : str
        ``"default"`` or a name from `~rrlyrae_metallicity.available_models`.
    mag_column : str, optional
        Magnitude column of the light curves.

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
    for name in (period_column,) + ((id_column,) if isinstance(lightcurves, Mapping) else ()):
        if name not in table.colnames:
            raise KeyError(f"table has no column {name!r} (columns: {table.colnames})")
    if isinstance(lightcurves, Mapping):
        ids = list(table[id_column])
        curves = [lightcurves.get(_plain(i)) for i in ids]
        _warn_unmatched(lightcurves.keys() - {_plain(i) for i in ids}, id_column)
    else:
        curves = list(lightcurves)
        if len(curves) != len(table):
            raise ValueError(f"got {len(curves)} light curves for a table of {len(table)} rows")
        ids = list(table[id_column]) if id_column in table.colnames else list(range(len(table)))
    periods = _column_values(table, period_column, u.day)
    epochs = _epochs(table, epoch_column)

    present = [i for i, c in enumerate(curves) if c is not None]
    ensemble = load_model(model)
    columns = _empty_feh_columns(len(table))
    if present:
        _fill_feh_columns(columns, present,
                          _predict_many([curves[i] for i in present], periods[present],
                                        [epochs[i] for i in present], ensemble, mag_column,
                                        [_plain(ids[i]) for i in present]))
    return _with_feh_columns(table, columns, ensemble)


def _warn_unmatched(unmatched, id_column):
    """Report light curves whose star has no row in the table (they are not predicted)."""
    if unmatched:
        warnings.warn(
            f"{len(unmatched)} light curves have no row in the table (no {id_column} matches; "
            f"not predicted), e.g. {sorted(unmatched, key=str)[:5]}",
            RRLyraeMetallicityWarning, stacklevel=3)


def _empty_feh_columns(n_rows):
    """``feh_phot, feh_phot_std, feh_status, feh_domain`` of rows without a light curve."""
    return {"feh_phot": np.full(n_rows, np.nan), "feh_phot_std": np.full(n_rows, np.nan),
            "feh_status": np.array(["no_lightcurve"] * n_rows, dtype=object),
            "feh_domain": np.array([""] * n_rows, dtype=object)}


def _fill_feh_columns(columns, rows, predicted):
    """Write the output of `_predict_many` for ``rows`` into ``columns``."""
    feh, std, errors, outside = predicted
    columns["feh_phot"][rows] = feh
    columns["feh_phot_std"][rows] = std
    columns["feh_status"][rows] = [STATUS_OK if e is None else e.status for e in errors]
    columns["feh_domain"][rows] = outside


def _with_feh_columns(table, columns, ensemble):
    """A copy of ``table`` with the [Fe/H] columns, their units and descriptions."""
    feh, std = columns["feh_phot"], columns["feh_phot_std"]
    status, domain = columns["feh_status"], columns["feh_domain"]
    out = table.copy()
    out["feh_phot"] = feh * u.dex
    out["feh_phot_std"] = std * u.dex
    out["feh_status"] = status.astype(str)
    out["feh_domain"] = domain.astype(str)
    out["feh_phot"].description = f"photometric [Fe/H], mean of the {ensemble.name} ensemble"
    out["feh_phot_std"].description = (
        "uncertainty of feh_phot: the members' spread calibrated on out-of-fold errors"
        if ensemble.uncertainty_calibration else
        "spread of the ensemble members' predictions (not calibrated)")
    out["feh_status"].description = "'ok', or why no [Fe/H] was predicted"
    out["feh_domain"].description = ("empty, or why the star lies outside the period, amplitude, "
                                     "epoch-count or phase-coverage range of the training set")
    out.meta["feh_model"] = ensemble.name
    return out


def _plain(value):
    """Numpy scalars and Python ints as hashable plain Python values."""
    return value.item() if hasattr(value, "item") else value
