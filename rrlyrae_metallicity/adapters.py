"""Turn every light curve and period users hold into plain arrays, once.

This is the first step of every prediction (`~rrlyrae_metallicity.predict_feh`,
`~rrlyrae_metallicity.add_feh`, the catalogue runner, the Dask path, the
plots and the command line). Whatever the user passed, what leaves this
module is a `LightCurveBatch`: per star a name, phases in cycles, magnitudes
and a period in days, or the `~rrlyrae_metallicity.exceptions.LightCurveError`
that says why the star cannot be used. Nothing downstream looks at astropy
objects again.

Accepted light curves
---------------------
- a `~astropy.timeseries.TimeSeries` with raw times (astropy `~astropy.time.Time`);
- the output of `~astropy.timeseries.TimeSeries.fold` (a `~astropy.time.TimeDelta`
  relative to its epoch, or with ``normalize_phase=True`` a dimensionless phase;
  either wrapping convention);
- a `~astropy.table.Table` or `~astropy.table.QTable` with a ``phase`` column, in
  cycles when it has no unit, or in any angle unit (degrees, radians), which
  is converted; or with a ``time`` column of astropy `~astropy.time.Time`;
- many of them: a sequence, or a mapping ``{name: light curve}`` whose keys
  name the stars in every message and output.

Masked values of every kind (`numpy.ma`, `~astropy.table.MaskedColumn`,
astropy `~astropy.utils.masked.Masked` quantities, masked `~astropy.time.Time`)
are dropped, never used.

Numbers without units
---------------------
One rule, applied by `period_in_days` and `epoch_times` wherever a number
enters (arguments of `~rrlyrae_metallicity.predict_feh`, table columns of
`~rrlyrae_metallicity.add_feh`, the catalogue runner and the Dask path, the
command line's ``--period``): **a number without a unit is read in the unit
the Gaia archive documents for that quantity**, days for a period (``pf``)
and, for an epoch of maximum light (``epoch_g``), days of Gaia time,
BJD(TCB) − 2455197.5. A quantity with a unit is converted, and a unit of
the wrong kind raises `~astropy.units.UnitsError`. A period in another unit
given as a bare number (hours, say) is not guessed: it lands far outside the
training range and the star's ``feh_domain`` says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.table import Column, Table
from astropy.time import Time, TimeDelta
from astropy.timeseries import TimeSeries
from astropy.utils.masked import Masked

from .exceptions import LightCurveError, LightCurveTypeError
from .gaia import GAIA_TIME_ZERO
from .messages import plural
from .preprocessing import fold_times

__all__ = [
    "LightCurveBatch",
    "period_in_days",
    "epoch_times",
    "star_name",
    "lightcurve_batch",
    "gaia_arrays_batch",
    "magnitude_column",
    "as_table",
    "as_named_collection",
]

# Suffixes and prefixes of uncertainty columns, never taken for the magnitudes
# (VizieR writes e_Gmag).
_ERROR_SUFFIXES = ("_err", "_error", "err", "_unc", "_sigma")
_ERROR_PREFIXES = ("e_", "err_", "sigma_")
# Text that stands for a missing number in files users hold.
_NULL_TOKENS = frozenset({"", "null", "none", "nan", "--", "masked", "na", "n/a"})


@dataclass
class LightCurveBatch:
    """Plain arrays of many stars, ready for the pre-processing.

    Attributes
    ----------
    stars : list
        Name of each star, used in every message and output.
    phases : list of ndarray
        Phase of each epoch in cycles (any zero-point); NaN for an epoch
        whose time was masked. Empty where ``errors`` holds an error.
    mags : list of ndarray
        Magnitudes, NaN where masked or missing.
    periods : ndarray
        Days; NaN where missing or masked.
    errors : list
        `None`, or the `~rrlyrae_metallicity.exceptions.LightCurveError` met
        while reading the star.
    """

    stars: list
    phases: list
    mags: list
    periods: np.ndarray
    errors: list = field(default_factory=list)

    def __post_init__(self):
        if not self.errors:
            self.errors = [None] * len(self.stars)

    def __len__(self):
        return len(self.stars)

    def refuse(self, errors):
        """Record ``errors`` (one per star, `None` to keep it) for stars still readable."""
        for i, error in enumerate(errors):
            if error is not None and self.errors[i] is None:
                self.errors[i] = error


# --------------------------------------------------------------------------
# Numbers, units and masks
# --------------------------------------------------------------------------


def _mask_and_values(values):
    """Split any masked container into (mask or None, unmasked values)."""
    if isinstance(values, Masked):
        return np.asarray(values.mask, dtype=bool), values.unmasked
    if isinstance(values, np.ma.MaskedArray):  # also MaskedColumn
        unit = getattr(values, "unit", None)
        data = np.asarray(np.ma.getdata(values))
        # A plain column keeps the unit; its text, if any, is parsed by _in_unit.
        return np.ma.getmaskarray(values), Column(data, unit=unit) if unit is not None else data
    if isinstance(values, (list, tuple)) and any(v is None or v is np.ma.masked for v in values):
        mask = np.array([v is None or v is np.ma.masked for v in values])
        kept = [v for v in values if v is not None and v is not np.ma.masked]
        filler = kept[0] * 0 if kept and isinstance(kept[0], u.Quantity) else 0.0
        return mask, [filler if m else v for v, m in zip(values, mask)]
    return None, values


def _floats(values, what, *, unreadable="raise"):
    """Float array from numbers or text.

    Text that is not a number raises a ValueError naming ``what`` and the
    text, or becomes NaN with ``unreadable="nan"``.
    """
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(float)
    out = np.empty(array.shape, dtype=float)
    for i, value in enumerate(array.ravel()):
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if value is None or (isinstance(value, str) and value.strip().lower() in _NULL_TOKENS):
            out.flat[i] = np.nan
            continue
        try:
            out.flat[i] = float(value)
        except (TypeError, ValueError):
            if unreadable != "nan":
                raise ValueError(f"cannot read {value!r} in {what} as a number") from None
            out.flat[i] = np.nan
    return out


def _in_unit(values, unit, what, *, unreadable="raise"):
    """Float values of ``values`` in ``unit``; masked entries NaN; bare numbers taken in ``unit``.

    A list may mix quantities and bare numbers (each read by the rule for
    numbers without units); text columns with a unit are parsed first.
    """
    mask, values = _mask_and_values(values)
    if isinstance(values, (list, tuple)) and any(isinstance(v, u.Quantity) for v in values):
        return _masked(np.array([_in_unit(v, unit, what, unreadable=unreadable) for v in values],
                                dtype=float), mask)
    if isinstance(values, Column) and values.unit is not None:
        numbers = _floats(np.asarray(values), what, unreadable=unreadable)
        values = u.Quantity(numbers, values.unit)
    if isinstance(values, u.Quantity):
        if values.unit == u.dimensionless_unscaled:
            out = np.array(values.value, dtype=float)
        else:
            try:
                out = np.array(values.to_value(unit), dtype=float)
            except u.UnitConversionError:
                raise u.UnitsError(
                    f"{what} should be in units of {unit.physical_type} (e.g. {unit}), "
                    f"not {values.unit}") from None
    else:
        out = _floats(values, what, unreadable=unreadable)
    return _masked(out, mask)


def _masked(values, mask):
    """``values`` with NaN where ``mask`` is set."""
    if mask is None:
        return values
    values = np.array(values, dtype=float)
    values[np.broadcast_to(mask, values.shape)] = np.nan
    return values


def period_in_days(period, *, count=None, what="period"):
    """Periods as floats in days, by the package's one rule for numbers without units.

    Parameters
    ----------
    period : `~astropy.units.Quantity` ['time'], number, sequence or column
        A scalar, an array (also length 1), a list of quantities or numbers,
        a table column, masked or not. Numbers without a unit are days.
    count : int, optional
        The number of periods wanted: a scalar is refused when it is given
        (one period per light curve), an array must have that length.
    what : str
        How messages name the value (e.g. ``"column 'pf'"``).

    Returns
    -------
    ndarray of float
        Days, NaN where a value was masked or missing; 0-d for a scalar
        when ``count`` is `None`.

    Raises
    ------
    astropy.units.UnitsError
        If the unit is not a time.
    ValueError
        If the number of periods is not ``count``, or a value is unreadable text.
    """
    # One period that is not a number costs its star (invalid_period), not the batch.
    days = _in_unit(period, u.day, what, unreadable="nan" if count is not None else "raise")
    if count is None:
        if days.size != 1:
            raise ValueError(f"{what}: give one period for one light curve, got {days.size}")
        return days.reshape(())
    if days.ndim == 0:
        raise ValueError(f"{what}: give one period per light curve ({count}), e.g. a Quantity "
                         "array or a list, not a single value")
    days = days.ravel()
    if days.size != count:
        raise ValueError(f"got {count} light curves but {days.size} periods")
    return days


def epoch_times(epochs, count):
    """Epochs of maximum light as one `~astropy.time.Time` array and where they are set.

    Parameters
    ----------
    epochs : None, `~astropy.time.Time`, column, quantity, numbers or sequence
        `~astropy.time.Time` values are used as they are; numbers (with a
        time unit, or bare) are days of Gaia time, BJD(TCB) − 2455197.5.
        `None`, masked and non-finite entries mean "no epoch".
    count : int
        Number of stars.

    Returns
    -------
    times : `~astropy.time.Time` or None
        Shape ``(count,)``; `None` when no star has an epoch.
    has_epoch : ndarray of bool
    """
    if epochs is None:
        return None, np.zeros(count, dtype=bool)
    if isinstance(epochs, Time):
        times = epochs if epochs.shape else epochs.reshape((1,))
        if times.size == 1 and count != 1:
            raise ValueError(f"give one epoch per light curve ({count}), not a single one")
        has_epoch = ~np.broadcast_to(np.asarray(times.mask, dtype=bool), times.shape)
        return times.unmasked, has_epoch
    if isinstance(epochs, (list, tuple)) and any(isinstance(e, Time) for e in epochs):
        if len(epochs) != count:
            raise ValueError(f"got {count} light curves but {len(epochs)} epochs")
        has_epoch = np.array([isinstance(e, Time) and not np.any(e.mask) for e in epochs])
        if not has_epoch.any():
            return None, has_epoch
        filler = next(e for e, h in zip(epochs, has_epoch) if h)
        return Time([e if h else filler for e, h in zip(epochs, has_epoch)]), has_epoch
    days = np.atleast_1d(_in_unit(epochs, u.day, "epoch"))
    if days.size != count:
        raise ValueError(f"got {count} light curves but {days.size} epochs")
    has_epoch = np.isfinite(days)
    if not has_epoch.any():
        return None, has_epoch
    return Time(GAIA_TIME_ZERO, np.where(has_epoch, days, 0.0), format="jd",
                scale="tcb"), has_epoch


def star_name(lightcurve, default="(the light curve given)"):
    """How messages name one light curve: its ``meta`` id, or ``default``."""
    meta = getattr(lightcurve, "meta", None) or {}
    for key in ("source_id", "name", "id"):
        if meta.get(key) is not None:
            return meta[key]
    return default


# --------------------------------------------------------------------------
# One light curve
# --------------------------------------------------------------------------


def magnitude_column(lightcurve, mag_column=None, *, star=None):
    """Name of the column that holds the magnitudes.

    ``mag_column`` when given; else ``mag``; else the one column in
    magnitude units (mag, mmag, AB or ST magnitudes), or failing that the one
    named ``*mag``, never an uncertainty column (``*_err``, ``*_error``,
    ``e_*``).

    Raises
    ------
    LightCurveError
        With status ``missing_column`` when there is no such column or
        several candidates.
    """
    names = lightcurve.colnames
    if mag_column is not None:
        if mag_column not in names:
            raise LightCurveError(f"no column {mag_column!r} in the light curve (columns: "
                                  f"{names})", star=star, status="missing_column")
        return mag_column
    if "mag" in names:
        return "mag"
    candidates = [n for n in names if not n.lower().endswith(_ERROR_SUFFIXES)
                  and not n.lower().startswith(_ERROR_PREFIXES)]
    by_unit = [n for n in candidates if _is_magnitude_unit(_unit_of(lightcurve[n]))]
    by_name = [n for n in candidates if n.lower().endswith("mag")
               and _unit_of(lightcurve[n]) in (None, u.dimensionless_unscaled)]
    for found in (by_unit, by_name):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            break
    fluxes = [n for n in names if _unit_of(lightcurve[n]) is not None
              and not _is_magnitude_unit(_unit_of(lightcurve[n]))
              and _unit_of(lightcurve[n]).physical_type != "time"]
    hint = (f"; {fluxes} are not magnitudes: the models take magnitudes (convert fluxes with "
            "-2.5 log10(flux) + zero-point)" if fluxes else "")
    raise LightCurveError(f"cannot tell which column holds the magnitudes among {names}"
                          f"{hint}; pass mag_column=...", star=star, status="missing_column")


def _unit_of(column):
    return getattr(column, "unit", None)


def _is_magnitude_unit(unit):
    """mag, mmag, or a magnitude of a flux system (AB, ST, mag(ct/s))."""
    return unit is not None and (isinstance(unit, u.MagUnit) or unit.is_equivalent(u.mag))


def _magnitudes(lightcurve, mag_column, star):
    name = magnitude_column(lightcurve, mag_column, star=star)
    column = lightcurve[name]
    unit = _unit_of(column)
    if isinstance(unit, u.MagUnit):
        # AB or ST magnitudes: the numbers are magnitudes (only m - <m> is used).
        column = u.Quantity(getattr(column, "value", column), u.mag) if not isinstance(
            column, Masked) else Masked(u.Quantity(column.unmasked.value, u.mag), column.mask)
    elif unit is not None and unit != u.dimensionless_unscaled and not unit.is_equivalent(u.mag):
        raise LightCurveError(
            f"column {name!r} has unit {unit}, not magnitudes; the models take magnitudes "
            "(convert fluxes with -2.5 log10(flux) + zero-point, or pass mag_column=...)",
            star=star, status="not_magnitudes")
    try:
        return _in_unit(column, u.mag, f"column {name!r}")
    except ValueError as error:
        raise LightCurveError(str(error), star=star, status="not_magnitudes") from None


def _time_column(lightcurve):
    """The ``time`` of a light curve (TimeSeries or table), or None."""
    if isinstance(lightcurve, TimeSeries):
        return lightcurve.time
    if "time" in lightcurve.colnames:
        return lightcurve["time"]
    return None


def _phase_in_cycles(values, star, what):
    """Phases of a folded light curve in cycles; angles converted, other units refused."""
    unit = _unit_of(values)
    if unit is not None and unit != u.dimensionless_unscaled:
        if unit.physical_type != "angle":
            raise LightCurveTypeError(
                f"{what} has unit {unit}; give phases in cycles (no unit) or as an angle",
                star=star)
        values = u.Quantity(values) if not isinstance(values, Masked) else values
    try:
        return _in_unit(values, u.cycle, what)
    except ValueError as error:
        raise LightCurveError(str(error), star=star) from None


def _read_one(lightcurve, period_days, star, mag_column):
    """``(kind, values, mags)``: kind ``"time"`` (Time values) or ``"phase"`` (cycles)."""
    if not isinstance(lightcurve, Table):
        raise LightCurveTypeError(
            "a light curve should be an astropy TimeSeries (raw times, or the output of "
            "TimeSeries.fold) or a Table with 'phase' (or astropy Time 'time') and magnitude "
            f"columns; got a {type(lightcurve).__name__}", star=star)
    if len(lightcurve) == 0 and not lightcurve.meta.get("unreadable_transits"):
        raise LightCurveError("the light curve is empty (0 epochs, e.g. all transits rejected)",
                              star=star, status="too_few_epochs")
    unreadable = _unreadable_error(lightcurve.meta.get("unreadable_transits", 0), star)
    if unreadable is not None:
        raise unreadable
    time = _time_column(lightcurve)
    if isinstance(time, Time) and not isinstance(time, TimeDelta):
        return "time", time, _magnitudes(lightcurve, mag_column, star)
    if isinstance(time, TimeDelta):
        # TimeSeries.fold without normalize_phase: time since its epoch.
        elapsed = _in_unit(_masked_time_days(time), u.day, "time")
        _check_folded(np.abs(elapsed), period_days, "d", star)
        return "phase", elapsed / period_days, _magnitudes(lightcurve, mag_column, star)
    if "phase" in lightcurve.colnames:
        phase = _phase_in_cycles(lightcurve["phase"], star, "column 'phase'")
        return "phase", phase, _magnitudes(lightcurve, mag_column, star)
    if isinstance(time, u.Quantity) and time.unit in (u.dimensionless_unscaled, None):
        # TimeSeries.fold(normalize_phase=True): phase in cycles.
        phase = _phase_in_cycles(time, star, "time")
        _check_folded(np.abs(phase), 1.0, "cycles", star)
        return "phase", phase, _magnitudes(lightcurve, mag_column, star)
    raise LightCurveTypeError(
        "a light curve should be an astropy TimeSeries with a time column (astropy Time) and "
        "magnitudes, or a Table with 'phase' and magnitude columns (already folded); got a "
        f"{type(lightcurve).__name__} with columns {lightcurve.colnames}", star=star)


def _unreadable_error(count, star):
    """The error of a star whose file holds ``count`` cells that are not numbers, or None.

    Such a star is not predicted from what is left of it.
    """
    if not count:
        return None
    return LightCurveError(f"{plural(count, 'transit')} with a time or magnitude that is not a "
                           "number in the file", star=star, status="unreadable_values")


def _check_folded(distance, period, unit, star):
    """Refuse a "folded" light curve whose times run beyond one period from its epoch.

    `~astropy.timeseries.TimeSeries.fold` keeps every time within one
    period of the epoch. Anything farther was folded with another period, or
    not folded right (astropy 8.0 folds a TimeSeries with masked times into
    seconds labelled as days), and its phases would be wrong.
    """
    farthest = np.nanmax(distance) if np.isfinite(distance).any() else 0.0
    if np.isfinite(period) and farthest > period * (1 + 1e-6):
        raise LightCurveTypeError(
            f"this folded light curve reaches {farthest:.6g} {unit} from its epoch, more than "
            f"one period ({period:.6g} {unit}): it was not folded with this period (pass the "
            "raw-time TimeSeries instead, or fold it with this period)", star=star)


def _masked_time_days(delta):
    days = delta.unmasked.to_value(u.day) if delta.masked else delta.to_value(u.day)
    days = np.array(days, dtype=float)
    if delta.masked:
        days[np.asarray(delta.mask, dtype=bool)] = np.nan
    return days


# --------------------------------------------------------------------------
# Folding raw times: one path for TimeSeries and for Gaia arrays
# --------------------------------------------------------------------------


def _fold_group(times, counts, epochs, has_epoch, periods, stars):
    """Fold the raw times of many stars given as one concatenated `~astropy.time.Time`.

    Phase zero is the star's epoch when it has one, else its earliest
    unmasked time; the pre-processing re-aligns every curve on its maximum
    anyway. Differences of two-part Times keep their precision far from
    the reference.

    Returns
    -------
    list of ndarray or LightCurveError
    """
    mask = (np.broadcast_to(np.asarray(times.mask, dtype=bool), times.shape)
            if times.masked else np.zeros(times.shape, dtype=bool))
    times = times.unmasked if times.masked else times
    ends = np.cumsum(counts)
    starts = ends - counts
    owner = np.repeat(np.arange(len(counts)), counts)
    jd = np.where(mask, np.inf, times.jd1 + times.jd2)
    first = np.array([s + int(np.argmin(jd[s:e])) if e > s else 0 for s, e in zip(starts, ends)])
    if len(times):
        elapsed = (times - times[first[owner]]).to_value(u.day)
        if epochs is not None and has_epoch.any():
            since_epoch = (times - epochs[owner]).to_value(u.day)
            elapsed = np.where(has_epoch[owner], since_epoch, elapsed)
        elapsed = np.where(mask, np.nan, elapsed)
    else:
        elapsed = np.empty(0)
    results = []
    for star, start, end, period in zip(stars, starts, ends, periods):
        if not np.isfinite(elapsed[start:end]).any():
            results.append(LightCurveError("every time of the light curve is masked",
                                           star=star, status="too_few_epochs"))
        elif not (np.isfinite(period) and period > 0):
            # Not folded; the pre-processing's one period check gives the status.
            results.append(np.full(end - start, np.nan))
        else:
            results.append(fold_times(elapsed[start:end], period, star=star))
    return results


def _concatenate_times(times, scale):
    """Many `~astropy.time.Time` arrays of one scale as one (masked entries kept masked)."""
    jd1 = np.concatenate([t.unmasked.jd1 if t.masked else t.jd1 for t in times])
    jd2 = np.concatenate([t.unmasked.jd2 if t.masked else t.jd2 for t in times])
    joined = Time(jd1, jd2, format="jd", scale=scale)
    masks = [np.broadcast_to(np.asarray(t.mask, dtype=bool), t.shape) if t.masked
             else np.zeros(t.shape, dtype=bool) for t in times]
    mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
    if mask.any():
        joined[mask] = np.ma.masked
    return joined


# --------------------------------------------------------------------------
# Many light curves
# --------------------------------------------------------------------------


def lightcurve_batch(lightcurves, periods, *, epochs=None, stars=None, mag_column=None):
    """Read many light curves, in any accepted form, into a `LightCurveBatch`.

    Parameters
    ----------
    lightcurves : sequence
        Light curves (see the module docstring); `None` for a star without one.
    periods : array-like of float
        Days, one per light curve (see `period_in_days`).
    epochs : `~astropy.time.Time`, optional
        One per light curve (shape ``(n,)``), used where ``has_epoch``; see
        `epoch_times`. A tuple ``(times, has_epoch)`` as `epoch_times` returns.
    stars : sequence, optional
        Names of the stars; by default each light curve's ``meta`` id or its
        index.
    mag_column : str, optional
        Name of the magnitude column (see `magnitude_column`).

    Returns
    -------
    `LightCurveBatch`
        One star per light curve, never raising for one bad star.
    """
    curves = list(lightcurves)
    n_stars = len(curves)
    if stars is None:
        stars = [star_name(c, default=i) for i, c in enumerate(curves)]
    stars = list(stars)
    periods = np.asarray(periods, dtype=float)
    epoch_values, has_epoch = epochs if epochs is not None else (None, np.zeros(n_stars, bool))
    phases, mags = [np.empty(0)] * n_stars, [np.empty(0)] * n_stars
    errors = [None] * n_stars
    raw = {}  # scale -> list of (star index, Time)
    for i, (curve, star) in enumerate(zip(curves, stars)):
        if curve is None:
            errors[i] = LightCurveError("no light curve", star=star, status="no_lightcurve")
            continue
        try:
            kind, values, mag = _read_one(curve, periods[i], star, mag_column)
        except LightCurveError as error:
            errors[i] = error
            continue
        mags[i] = mag
        if kind == "phase":
            phases[i] = values
        else:
            raw.setdefault(values.scale, []).append((i, values))
    for scale, members in raw.items():
        rows = [i for i, _ in members]
        times = _concatenate_times([t for _, t in members], scale)
        counts = np.array([len(t) for _, t in members])
        group_epochs = None
        group_has = has_epoch[rows]
        if epoch_values is not None and group_has.any():
            group_epochs = getattr(epoch_values[rows], scale)
        folded = _fold_group(times, counts, group_epochs, group_has, periods[rows],
                             [stars[i] for i in rows])
        for i, result in zip(rows, folded):
            if isinstance(result, LightCurveError):
                errors[i], mags[i] = result, np.empty(0)
            else:
                phases[i] = result
    return LightCurveBatch(stars=stars, phases=phases, mags=mags, periods=periods,
                           errors=errors)


def gaia_arrays_batch(sources, periods, *, epochs=None, stars=None):
    """Fold Gaia epoch photometry held as arrays (the catalogue and Dask paths).

    Parameters
    ----------
    sources : sequence of dict
        Per star ``{"time": Gaia days, "mag": mag}`` as
        `rrlyrae_metallicity.gaia.epoch_arrays` returns them.
    periods : array-like of float
        Days.
    epochs : tuple, optional
        ``(times, has_epoch)`` as `epoch_times` returns.
    stars : sequence
        Names of the stars.

    Returns
    -------
    `LightCurveBatch`
        The same phases, element for element, as `lightcurve_batch` on the
        `~astropy.timeseries.TimeSeries` that
        `~rrlyrae_metallicity.gaia.read_epoch_photometry` makes of them.
    """
    n_stars = len(sources)
    ordered = []
    for values in sources:
        order = np.argsort(values["time"], kind="stable")
        ordered.append((np.asarray(values["time"], dtype=float)[order],
                        np.asarray(values["mag"], dtype=float)[order]))
    counts = np.array([len(t) for t, _ in ordered], dtype=int)
    times = Time(GAIA_TIME_ZERO, np.concatenate([t for t, _ in ordered]) if n_stars
                 else np.empty(0), format="jd", scale="tcb")
    epoch_values, has_epoch = epochs if epochs is not None else (None, np.zeros(n_stars, bool))
    periods = np.asarray(periods, dtype=float)
    folded = _fold_group(times, counts, epoch_values, has_epoch, periods, stars)
    phases, mags, errors = [], [], []
    unreadable = [int(np.count_nonzero(values.get("unreadable", ()))) for values in sources]
    for star, count, bad, (_, mag), result in zip(stars, counts, unreadable, ordered, folded):
        if bad:
            result = _unreadable_error(bad, star)
        elif count == 0:
            result = LightCurveError("the light curve is empty (0 epochs, e.g. all transits "
                                     "rejected)", star=star, status="too_few_epochs")
        failed = isinstance(result, LightCurveError)
        phases.append(np.empty(0) if failed else result)
        mags.append(np.empty(0) if failed else mag)
        errors.append(result if failed else None)
    return LightCurveBatch(stars=list(stars), phases=phases, mags=mags, periods=periods,
                           errors=errors)


def as_table(lightcurve):
    """A pandas DataFrame or numpy structured array as an astropy Table; others unchanged."""
    if isinstance(lightcurve, np.ndarray) and lightcurve.dtype.names:
        return Table(lightcurve)
    if type(lightcurve).__name__ == "DataFrame" and hasattr(lightcurve, "to_records"):
        return Table.from_pandas(lightcurve)
    return lightcurve


def as_named_collection(lightcurves):
    """``(curves, names, is_mapping)`` of a sequence or a mapping of light curves."""
    if isinstance(lightcurves, Mapping):
        names = list(lightcurves.keys())
        return [lightcurves[k] for k in names], [_plain(k) for k in names], True
    if isinstance(lightcurves, (str, bytes)) or not isinstance(lightcurves, Iterable):
        raise TypeError("lightcurve should be a light curve (TimeSeries or Table), a sequence "
                        f"of them or a mapping {{name: light curve}}, not a "
                        f"{type(lightcurves).__name__}")
    curves = list(lightcurves)
    return curves, None, False


def _plain(value):
    """Numpy scalars as plain, hashable Python values."""
    return value.item() if hasattr(value, "item") else value
