"""Turn one RR Lyrae light curve into the fixed-length input of the models.

This module is the single pre-processing code path of the project: the
training module (``training/``) and the inference functions call the same
functions, so that a light curve meets the model in the same form whether it
was used for training or handed over by a user.

The steps (Monti et al. 2024, section 3, with the alignment made explicit):

1. Fold raw times with the period (and the epoch of maximum light when one is
   given), or take already-folded phases.
2. Drop non-finite magnitudes and survey sentinels (e.g. 99.999), and average
   epochs that (nearly) share a phase.
3. Fit a smoothing spline through (phase, mag), the penalty chosen by
   generalised cross-validation (`scipy.interpolate.make_smoothing_spline`).
   The curve is periodic, so the epochs are repeated 0.3 of a cycle beyond
   both ends of [0, 1) before fitting: the fit then sees the light curve
   continue across the 0/1 wrap instead of two free ends.
4. Find the phase of maximum light (minimum magnitude) on that curve and
   re-align the epochs so that it falls at phase 0. The same rule is applied to
   every light curve, whatever its original phase zero-point, then the spline
   is fitted again on the re-aligned epochs and its own maximum taken as the
   final phase zero.
5. Resample the curve on ``n_phases`` equally spaced phases and build the two
   input channels of equation 3 of the paper, ``(m - <m>, phase * P)``.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.interpolate import make_smoothing_spline
from scipy.optimize import minimize_scalar

from .exceptions import LightCurveError

__all__ = [
    "VARIANTS",
    "MIN_EPOCHS",
    "PreprocessingConfig",
    "SmoothedLightCurve",
    "check_period",
    "fold_times",
    "smooth_lightcurve",
    "model_input",
    "prepare_inputs",
]

#: Data variants compared by the paper. ``spline_centered`` is equation 3
#: (the best); ``spline`` keeps the apparent magnitude; ``raw`` feeds the
#: aligned epochs themselves, padded with `PAD_VALUE` and masked.
VARIANTS = ("spline_centered", "spline", "raw")

#: Fewest usable epochs (finite magnitudes, distinct phases) accepted. The
#: training light curves have 21 to 80 epochs; below about 15 a GCV spline
#: through a sparse RRab light curve no longer resolves the rise to maximum.
MIN_EPOCHS = 15

#: Value used to pad the ``raw`` variant; masked by the recurrent models.
PAD_VALUE = -1.0

# Fraction of a cycle repeated beyond each end of [0, 1) before fitting.
_WRAP_MARGIN = 0.3
# Magnitudes outside this open interval are missing-data sentinels, not data.
_VALID_MAG_RANGE = (-5.0, 40.0)
# Epochs closer than this in phase (cycles; 2e-3 is about 1.5 min for an RRab)
# are averaged before smoothing.
_MERGE_TOLERANCE = 2e-3
# The spline is re-fitted on re-aligned epochs until its maximum moves by less
# than this (cycles), at most _MAX_REALIGNMENTS times: the epochs repeated
# across the wrap, and so the GCV penalty, then no longer depend on the phase
# zero-point of the input.
_ALIGNMENT_TOLERANCE = 1e-5
_MAX_REALIGNMENTS = 4
# Resolution of the grid on which the minimum magnitude is first located,
# before a bounded scalar minimisation refines it.
_SEARCH_GRID = 512


@dataclass(frozen=True)
class PreprocessingConfig:
    """Parameters of the pre-processing, stored with every model.

    Parameters
    ----------
    n_phases : int
        Number of equally spaced phases at which the smoothed light curve is
        resampled (the paper uses the largest epoch count of its sample).
    variant : str
        One of `VARIANTS`.
    max_epochs : int
        Padded length of the ``raw`` variant; longer light curves are thinned
        to this many epochs, evenly in phase order.
    alignment : str
        The rule that fixes phase zero. Only ``"max_light"`` (minimum of the
        smoothed magnitude) is implemented.
    """

    n_phases: int = 80
    variant: str = "spline_centered"
    max_epochs: int = 80
    alignment: str = "max_light"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")
        if self.alignment != "max_light":
            raise ValueError(f"alignment must be 'max_light', not {self.alignment!r}")
        if self.n_phases < 8 or self.max_epochs < MIN_EPOCHS:
            raise ValueError("n_phases must be >= 8 and max_epochs >= MIN_EPOCHS")

    def to_dict(self):
        """Return the parameters as a JSON-serialisable dict."""
        return asdict(self)

    @property
    def sequence_length(self):
        """Length of the model input along the phase axis."""
        return self.max_epochs if self.variant == "raw" else self.n_phases


@dataclass(frozen=True)
class SmoothedLightCurve:
    """A light curve aligned on maximum light and smoothed.

    Attributes
    ----------
    phase : ndarray
        Phases of the distinct epochs, aligned so that maximum light is 0, sorted.
    mag : ndarray
        Magnitudes at those phases (duplicates averaged).
    grid_phase : ndarray
        The ``n_phases`` equally spaced phases in [0, 1).
    grid_mag : ndarray
        The smoothing spline evaluated at ``grid_phase``.
    mean_mag : float
        Phase-averaged magnitude of the smoothed curve.
    phase_of_maximum : float
        Phase of maximum light in the input's own phase convention.
    """

    phase: np.ndarray
    mag: np.ndarray
    grid_phase: np.ndarray
    grid_mag: np.ndarray
    mean_mag: float
    phase_of_maximum: float

    @property
    def amplitude(self):
        """Peak-to-peak amplitude of the smoothed curve (mag)."""
        return float(np.ptp(self.grid_mag))


def check_period(period, *, star=None):
    """Raise `LightCurveError` (status ``invalid_period``) unless 0 < period < inf."""
    if not (np.isfinite(period) and period > 0):
        raise LightCurveError(f"period must be a positive finite number of days, got {period}",
                              star=star, status="invalid_period")


def fold_times(time, period, epoch=None, *, star=None):
    """Fold observation times into phases in [0, 1).

    Parameters
    ----------
    time : array-like of float
        Observation times in days (any zero-point).
    period : float
        Period in days.
    epoch : float, optional
        Time of maximum light, in the same system as ``time``. Without it,
        phase zero is arbitrary; `smooth_lightcurve` re-aligns it anyway.
    star : object, optional
        Identifier used in error messages.

    Returns
    -------
    phase : ndarray
        ``frac((time - epoch) / period)``.

    Raises
    ------
    LightCurveError
        If the period is not positive and finite.
    """
    check_period(period, star=star)
    time = np.asarray(time, dtype=float)
    reference = 0.0 if epoch is None else float(epoch)
    # Subtract a reference near the data before dividing, so that the phase of
    # times ~1e4-1e6 days keeps its precision.
    offset = np.floor((np.nanmin(time) - reference) / period) * period if time.size else 0.0
    cycles = (time - reference - offset) / period
    return cycles - np.floor(cycles)


def _clean_epochs(phase, mag, star):
    """Drop non-finite epochs, wrap phases into [0, 1), merge epochs close in phase."""
    phase = np.asarray(phase, dtype=float)
    mag = np.asarray(mag, dtype=float)
    if phase.shape != mag.shape or phase.ndim != 1:
        raise LightCurveError(
            f"phase and magnitude must be 1-D arrays of the same length, "
            f"got shapes {phase.shape} and {mag.shape}",
            star=star,
        )
    # Surveys mark missing photometry with sentinels such as 99.999 or 100
    # (SDSS Stripe 82); no real apparent magnitude lies outside this range.
    good = np.isfinite(phase) & (mag > _VALID_MAG_RANGE[0]) & (mag < _VALID_MAG_RANGE[1])
    phase = phase[good] - np.floor(phase[good])
    mag = mag[good]
    if phase.size >= MIN_EPOCHS:
        phase, mag, weight = _merge_close_phases(phase, mag, np.ones_like(phase))
    else:
        weight = np.ones_like(phase)
    if phase.size < MIN_EPOCHS:
        raise LightCurveError(
            f"{phase.size} usable epochs (finite magnitude, distinct phase); "
            f"at least {MIN_EPOCHS} are needed",
            star=star,
            status="too_few_epochs",
        )
    return phase, mag, weight


def _merge_close_phases(phase, mag, weight):
    """Replace epochs closer than `_MERGE_TOLERANCE` in phase by their weighted mean.

    Two epochs a few 1e-4 of a cycle apart with different magnitudes make the
    GCV criterion of the smoothing spline prefer a nearly straight line (seen
    on real Gaia light curves: amplitude 0.01 mag for a 0.4 mag RRab), so such
    pairs are averaged, on the circle of phases so that 0.9995 and 0.0003 are
    neighbours too. Only phase differences matter, which keeps the result
    independent of the phase zero-point.
    """
    order = np.argsort(phase)
    phase, mag, weight = phase[order], mag[order], weight[order]
    # Cut the circle at its widest gap, which no cluster can span.
    gaps = np.diff(np.concatenate([phase, [phase[0] + 1.0]]))
    start = (int(np.argmax(gaps)) + 1) % phase.size
    phase, mag, weight = (np.roll(a, -start) for a in (phase, mag, weight))
    phase = phase[0] + (phase - phase[0]) % 1.0
    new_cluster = np.concatenate([[True], np.diff(phase) > _MERGE_TOLERANCE])
    cluster = np.cumsum(new_cluster) - 1
    total = np.bincount(cluster, weights=weight)
    merged_phase = (np.bincount(cluster, weights=weight * phase) / total) % 1.0
    merged_mag = np.bincount(cluster, weights=weight * mag) / total
    order = np.argsort(merged_phase)
    return merged_phase[order], merged_mag[order], total[order]


def _periodic_spline(phase, mag, weight, star=None):
    """Fit a GCV smoothing spline to epochs repeated across the 0/1 wrap."""
    low = phase >= 1.0 - _WRAP_MARGIN
    high = phase < _WRAP_MARGIN
    x = np.concatenate([phase[low] - 1.0, phase, phase[high] + 1.0])
    y = np.concatenate([mag[low], mag, mag[high]])
    w = np.concatenate([weight[low], weight, weight[high]])
    try:
        return make_smoothing_spline(x, y, w=w)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise LightCurveError(
            f"the smoothing spline could not be fitted ({error})", star=star,
            status="spline_failed",
        ) from error


def _phase_of_minimum(spline):
    """Phase in [0, 1) where the periodic spline reaches its minimum."""
    grid = np.arange(_SEARCH_GRID) / _SEARCH_GRID
    start = grid[np.argmin(spline(grid))]
    step = 1.0 / _SEARCH_GRID
    result = minimize_scalar(
        lambda p: float(spline(p)),
        bounds=(start - step, start + step),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(result.x % 1.0)


def smooth_lightcurve(phase, mag, n_phases, *, star=None):
    """Align a folded light curve on maximum light and smooth it.

    Parameters
    ----------
    phase : array-like of float
        Phases of the epochs (any zero-point; values outside [0, 1) are wrapped).
    mag : array-like of float
        Magnitudes. Non-finite values are dropped.
    n_phases : int
        Number of equally spaced output phases.
    star : object, optional
        Identifier used in error messages.

    Returns
    -------
    `SmoothedLightCurve`

    Raises
    ------
    LightCurveError
        If fewer than `MIN_EPOCHS` usable epochs remain.
    """
    phase, mag, weight = _clean_epochs(phase, mag, star)
    phase_max = _phase_of_minimum(_periodic_spline(phase, mag, weight, star))
    for attempt in range(_MAX_REALIGNMENTS + 1):
        aligned = (phase - phase_max) % 1.0
        order = np.argsort(aligned)
        x, y, w = aligned[order], mag[order], weight[order]
        spline = _periodic_spline(x, y, w, star)
        if attempt == _MAX_REALIGNMENTS:
            # Two bumps of equal depth keep trading places: keep this fit as it is.
            shift = 0.0
            break
        # The previous fit saw the 0/1 wrap elsewhere, so the maximum of this
        # one is off by ~1e-4 of a cycle (or, for a flat-topped sparse curve,
        # sits on another bump).
        shift = _phase_of_minimum(spline)
        shift = shift - 1.0 if shift > 0.5 else shift
        if abs(shift) < _ALIGNMENT_TOLERANCE:
            break
        phase_max = (phase_max + shift) % 1.0
    phase_max = (phase_max + shift) % 1.0
    x = (x - shift) % 1.0
    order = np.argsort(x)

    grid = np.arange(n_phases) / n_phases
    grid_mag = spline(shift + grid)
    # The mean of a periodic curve sampled evenly in phase, whatever the
    # sampling of the epochs.
    mean_mag = float(np.mean(spline(shift + np.arange(4 * n_phases) / (4 * n_phases))))
    return SmoothedLightCurve(
        phase=x[order],
        mag=y[order],
        grid_phase=grid,
        grid_mag=grid_mag,
        mean_mag=mean_mag,
        phase_of_maximum=phase_max,
    )


def model_input(smoothed, period, config):
    """Build the model input of one star from its smoothed light curve.

    Parameters
    ----------
    smoothed : `SmoothedLightCurve`
        Output of `smooth_lightcurve`.
    period : float
        Period in days.
    config : `PreprocessingConfig`
        Selects the variant and lengths.

    Returns
    -------
    ndarray, shape (config.sequence_length, 2), float32
        Channels ``(m - <m>, phase * P)``; ``(m, phase * P)`` for the
        ``spline`` variant; for ``raw`` the aligned epochs, padded with
        `PAD_VALUE`.
    """
    if config.variant == "raw":
        phase, mag = smoothed.phase, smoothed.mag
        if phase.size > config.max_epochs:
            keep = np.round(np.linspace(0, phase.size - 1, config.max_epochs)).astype(int)
            phase, mag = phase[keep], mag[keep]
        out = np.full((config.max_epochs, 2), PAD_VALUE, dtype=np.float32)
        out[: phase.size, 0] = mag - smoothed.mean_mag
        out[: phase.size, 1] = phase * period
        return out
    mag = smoothed.grid_mag
    if config.variant == "spline_centered":
        mag = mag - smoothed.mean_mag
    return np.stack([mag, smoothed.grid_phase * period], axis=-1).astype(np.float32)


def prepare_inputs(phases, mags, periods, config, *, stars=None):
    """Pre-process many folded light curves into one model-input batch.

    Parameters
    ----------
    phases, mags : sequence of array-like
        Per-star phases and magnitudes.
    periods : array-like of float
        Per-star periods in days.
    config : `PreprocessingConfig`
        Pre-processing parameters of the model.
    stars : sequence, optional
        Per-star identifiers used in status messages.

    Returns
    -------
    inputs : ndarray, shape (n_stars, config.sequence_length, 2), float32
        Model inputs; rows of failed stars are filled with zeros.
    smoothed : list
        The `SmoothedLightCurve` of each star, or `None` where it failed.
    errors : list
        `None` for each star that succeeded, else the `LightCurveError`.
    """
    periods = np.asarray(periods, dtype=float)
    n_stars = len(periods)
    if stars is None:
        stars = range(n_stars)
    inputs = np.zeros((n_stars, config.sequence_length, 2), dtype=np.float32)
    smoothed, errors = [], []
    for i, (phase, mag, period, star) in enumerate(zip(phases, mags, periods, stars)):
        try:
            check_period(period, star=star)
            curve = smooth_lightcurve(phase, mag, config.n_phases, star=star)
        except LightCurveError as error:
            smoothed.append(None)
            errors.append(error)
            continue
        inputs[i] = model_input(curve, period, config)
        smoothed.append(curve)
        errors.append(None)
    return inputs, smoothed, errors
