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
3. Smooth (phase, mag) with a penalised fit, the penalty on the integrated
   squared second derivative chosen per star by generalised cross-validation
   (GCV), in `rrlyrae_metallicity.smoothing`. Two smoothers are available
   (`SMOOTHERS`):

   ``"batch"`` (the default)
       A periodic penalised Fourier series (`~rrlyrae_metallicity.smoothing.BATCH_HARMONICS` harmonics,
       penalty ``sum (2 pi k)^4 (a_k^2 + b_k^2)``, which is exactly the
       integral of ``f''^2``), fitted to many stars at once with array
       operations: one batched eigendecomposition per star makes every value
       of the penalty on a fine grid cost O(harmonics), so GCV is exhaustive
       rather than a local search. The fit is exactly shift-equivariant, so no
       re-fit is needed after re-alignment.
   ``"scipy_gcv"`` (the reference, what the first models were trained on)
       `scipy.interpolate.make_smoothing_spline` per star, on the epochs
       repeated 0.3 of a cycle beyond both ends of [0, 1) so that the fit sees
       the light curve continue across the 0/1 wrap instead of two free ends.
4. Find the phase of maximum light (minimum magnitude) on that curve and
   re-align the epochs so that it falls at phase 0. The same rule is applied to
   every light curve, whatever its original phase zero-point (the reference
   smoother re-fits on the re-aligned epochs until its own maximum is at 0).
5. Resample the curve on ``n_phases`` equally spaced phases and build the two
   input channels of equation 3 of the paper, ``(m - <m>, phase * P)``.
"""

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from .exceptions import LightCurveError
# SmoothedLightCurve and max_phase_gap stay importable from here, where they used to live.
from .smoothing import (  # noqa: F401
    SmoothedLightCurve,
    max_phase_gap,
    merge_groups,
    screen_epochs,
    smooth_batch,
    smooth_reference,
    smoothed_from_fit,
)

__all__ = [
    "VARIANTS",
    "SMOOTHERS",
    "MIN_EPOCHS",
    "PAD_VALUE",
    "MAX_REJECTED",
    "SENTINEL_MAGNITUDE",
    "is_magnitude",
    "PreprocessingConfig",
    "check_period",
    "fold_times",
    "clean_epochs",
    "smooth_lightcurve",
    "model_input",
    "prepare_inputs",
    "PreparedBatch",
    "prepare_batch",
    "same_input_format",
]

#: Data variants compared by the paper. ``spline_centered`` is equation 3
#: (the best); ``spline`` keeps the apparent magnitude; ``raw`` feeds the
#: aligned epochs themselves, padded with `PAD_VALUE` and masked.
VARIANTS = ("spline_centered", "spline", "raw")

#: Smoothers of step 3: the vectorised periodic penalised fit (``batch``) and
#: the per-star scipy reference (``scipy_gcv``).
SMOOTHERS = ("batch", "scipy_gcv")

#: Fewest usable epochs (finite magnitudes, distinct phases) accepted. The
#: training light curves have 21 to 80 epochs; below about 15 a GCV spline
#: through a sparse RRab light curve no longer resolves the rise to maximum.
MIN_EPOCHS = 15

#: Value used to pad the ``raw`` variant; masked by the recurrent models.
PAD_VALUE = -1.0

#: Most epochs of one star rejected as outliers (`PreprocessingConfig.outlier_threshold`).
MAX_REJECTED = 3

#: Magnitudes at or beyond this in absolute value are missing-data sentinels
#: (99, 99.999, 100, -99, 999, ...), not data. Anything closer to zero is a
#: magnitude: apparent, instrumental (about -12) or relative (about 0); the
#: models read only m - <m>.
SENTINEL_MAGNITUDE = 90.0
# Epochs closer than this in phase (cycles; 2e-3 is about 1.5 min for an RRab)
# are averaged before smoothing.
_MERGE_TOLERANCE = 2e-3
# A chain of epochs each within the tolerance of the next wider than this is
# cut into clusters of the tolerance's width (never seen in the training set).
_LONGEST_CHAIN = 0.02


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
    smoother : str
        One of `SMOOTHERS`: ``"batch"`` (vectorised, the default) or
        ``"scipy_gcv"`` (the per-star reference).
    outlier_threshold : float or None
        Reject, before smoothing, up to `MAX_REJECTED` epochs per star that lie
        more than this many standard deviations from the smooth curve of the
        others (`~rrlyrae_metallicity.smoothing.screen_epochs`); `None` keeps
        every epoch.
    """

    n_phases: int = 80
    variant: str = "spline_centered"
    max_epochs: int = 80
    alignment: str = "max_light"
    smoother: str = "batch"
    outlier_threshold: float | None = None

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {self.variant!r}")
        if self.smoother not in SMOOTHERS:
            raise ValueError(f"smoother must be one of {SMOOTHERS}, not {self.smoother!r}")
        if self.alignment != "max_light":
            raise ValueError(f"alignment must be 'max_light', not {self.alignment!r}")
        if self.n_phases < 8 or self.max_epochs < MIN_EPOCHS:
            raise ValueError("n_phases must be >= 8 and max_epochs >= MIN_EPOCHS")
        if self.outlier_threshold is not None and not self.outlier_threshold > 0:
            raise ValueError(f"outlier_threshold must be positive or None, not "
                             f"{self.outlier_threshold!r}")

    def to_dict(self):
        """Return the parameters as a JSON-serialisable dict.

        ``outlier_threshold`` is left out when it is `None`, so that the
        manifests of models made before it existed read back unchanged.
        """
        values = asdict(self)
        if values["outlier_threshold"] is None:
            del values["outlier_threshold"]
        return values

    @property
    def sequence_length(self):
        """Length of the model input along the phase axis."""
        return self.max_epochs if self.variant == "raw" else self.n_phases


def same_input_format(a, b):
    """Whether two `PreprocessingConfig` make inputs of the same form (the outlier rule aside).

    A model can read the other's inputs: the outlier rule only decides which
    epochs are fitted.
    """
    return dataclasses.replace(a, outlier_threshold=None) == dataclasses.replace(
        b, outlier_threshold=None)


def is_magnitude(mag):
    """Where ``mag`` holds a magnitude: finite and not a sentinel (`SENTINEL_MAGNITUDE`)."""
    return np.abs(np.asarray(mag, dtype=float)) < SENTINEL_MAGNITUDE


def check_period(period, *, star=None):
    """Raise `LightCurveError` (status ``invalid_period``) unless 0 < period < inf."""
    if np.isnan(period):
        raise LightCurveError("no period (missing, masked, or not a number)", star=star,
                              status="invalid_period")
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


def clean_epochs(phase, mag, star=None):
    """Drop unusable epochs, wrap phases into [0, 1), merge epochs close in phase.

    Parameters
    ----------
    phase, mag : array-like of float
        Phases (any zero-point) and magnitudes of one star.
    star : object, optional
        Identifier used in error messages.

    Returns
    -------
    phase, mag, weight : ndarray
        Sorted distinct phases, their (averaged) magnitudes and the number of
        epochs merged into each.

    Raises
    ------
    LightCurveError
        If fewer than `MIN_EPOCHS` usable epochs remain (``too_few_epochs``).
    """
    return _clean_epochs_and_members(phase, mag, star)[0]


def _clean_epochs_and_members(phase, mag, star=None):
    """`clean_epochs`, and the members of its merged epochs.

    Returns
    -------
    epochs : tuple
        ``(phase, mag, weight)`` as `clean_epochs` returns them.
    members : tuple or None
        ``(group, phase, mag)`` of every usable epoch: the index of the
        merged epoch it went into, and its own phase (unwrapped within its
        group) and magnitude, so that `~rrlyrae_metallicity.smoothing.screen_epochs`
        can judge each member of a merged epoch alone; `None` where no
        epochs were merged.
    """
    phase = np.asarray(phase, dtype=float)
    mag = np.asarray(mag, dtype=float)
    if phase.shape != mag.shape or phase.ndim != 1:
        raise LightCurveError(
            f"phase and magnitude must be 1-D arrays of the same length, "
            f"got shapes {phase.shape} and {mag.shape}",
            star=star,
        )
    # Surveys mark missing photometry with sentinels such as 99.999 or 100
    # (SDSS Stripe 82) or -99; no magnitude of any zero-point comes close.
    good = np.isfinite(phase) & is_magnitude(mag)
    phase = phase[good] - np.floor(phase[good])
    phase[phase >= 1.0] = 0.0  # -1e-17 wraps to 1.0 in floating point
    mag = mag[good]
    members = None
    if phase.size >= MIN_EPOCHS:
        (phase, mag, weight), members = _merge_close_phases(phase, mag)
    else:
        weight = np.ones_like(phase)
    if phase.size < MIN_EPOCHS:
        raise LightCurveError(
            f"{phase.size} usable epochs (finite magnitude, distinct phase); "
            f"at least {MIN_EPOCHS} are needed",
            star=star,
            status="too_few_epochs",
        )
    return (phase, mag, weight), members


def _merge_close_phases(phase, mag):
    """Replace epochs closer than `_MERGE_TOLERANCE` in phase by their mean.

    Two epochs a few 1e-4 of a cycle apart with different magnitudes make the
    GCV criterion of the smoothing spline prefer a nearly straight line (seen
    on real Gaia light curves: amplitude 0.01 mag for a 0.4 mag RRab), so such
    pairs are averaged, on the circle of phases so that 0.9995 and 0.0003 are
    neighbours too. Only phase differences matter, which keeps the result
    independent of the phase zero-point.

    Returns
    -------
    epochs : tuple
        The merged ``(phase, mag, weight)``, sorted by phase.
    members : tuple or None
        ``(group, phase, mag)`` of the input epochs (see
        `_clean_epochs_and_members`), `None` if nothing was merged.
    """
    order = np.argsort(phase)
    sorted_phase = phase[order]
    gaps = np.empty_like(sorted_phase)
    gaps[:-1] = sorted_phase[1:] - sorted_phase[:-1]
    gaps[-1] = sorted_phase[0] + 1.0 - sorted_phase[-1]
    if gaps.min() > _MERGE_TOLERANCE:
        return (sorted_phase, mag[order], np.ones_like(sorted_phase)), None
    # Cut the circle at its widest gap, which no cluster can span. (Slicing
    # instead of np.roll: this runs once per star, on a few dozen epochs.)
    start = (int(np.argmax(gaps)) + 1) % phase.size
    order = np.concatenate((order[start:], order[:start]))
    phase, mag = phase[order], mag[order]
    phase = phase[0] + (phase - phase[0]) % 1.0
    new_cluster = np.empty(phase.size, dtype=bool)
    new_cluster[0] = True
    new_cluster[1:] = (phase[1:] - phase[:-1]) > _MERGE_TOLERANCE
    _split_long_chains(phase, new_cluster)
    merged, group = merge_groups(np.cumsum(new_cluster) - 1, phase, mag)
    return merged, (group, phase, mag)


def _split_long_chains(phase, new_cluster):
    """Cut clusters wider than `_MERGE_TOLERANCE` in place, greedily from their first epoch.

    Densely sampled light curves (thousands of epochs) have every neighbour
    within the tolerance, so chaining would merge the whole cycle into a few
    points. Chains up to `_LONGEST_CHAIN` wide, as sparse Gaia curves have (the
    models were trained on them merged), are left as they are.
    """
    starts = np.flatnonzero(new_cluster)
    ends = np.append(starts[1:], phase.size)
    long = phase[ends - 1] - phase[starts] > _LONGEST_CHAIN
    for start, end in zip(starts[long], ends[long]):
        first = phase[start]
        for i in range(start + 1, end):
            if phase[i] - first > _MERGE_TOLERANCE:
                new_cluster[i] = True
                first = phase[i]


def smooth_lightcurve(phase, mag, n_phases, *, star=None, smoother="batch"):
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
    smoother : str
        One of `SMOOTHERS`; use the one of the model (its
        ``PreprocessingConfig.smoother``).

    Returns
    -------
    `SmoothedLightCurve`

    Raises
    ------
    LightCurveError
        If fewer than `MIN_EPOCHS` usable epochs remain, or the fit fails.
    """
    if smoother not in SMOOTHERS:
        raise ValueError(f"smoother must be one of {SMOOTHERS}, not {smoother!r}")
    epochs = clean_epochs(phase, mag, star)
    if smoother == "scipy_gcv":
        return smooth_reference(*epochs, n_phases, star)
    result = smooth_batch([epochs], n_phases, [star])[0]
    if isinstance(result, LightCurveError):
        raise result
    return result


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
    inputs, smoothed, errors
        As the attributes of `PreparedBatch` of those names: the model
        inputs (zeros for failed stars), each star's `SmoothedLightCurve`
        (`None` where it failed) and its `LightCurveError` (or `None`).
    """
    batch = prepare_batch(phases, mags, periods, config, stars=stars)
    return batch.inputs, batch.smoothed, batch.errors


@dataclass
class PreparedBatch:
    """Model inputs of many stars (`prepare_batch`).

    Attributes
    ----------
    inputs : ndarray, shape (n_stars, config.sequence_length, 2), float32
        Model inputs; rows of failed stars are filled with zeros.
    smoothed : list
        The `SmoothedLightCurve` of each star, or `None` where it failed.
    errors : list
        `None` for each star that succeeded, else the `LightCurveError`.
    jackknife : ndarray or None
        With ``jackknife=True``: the inputs of each star without its kept
        epoch farthest from the smooth curve of the others
        (`~rrlyrae_metallicity.smoothing.screen_epochs`), to measure how much
        the prediction rests on it; NaN rows where there is none (failed
        stars, or too few epochs to drop one).
    deviation : ndarray or None
        With ``jackknife=True``: that epoch's distance from the curve of the
        others, in standard deviations of its prediction (NaN where none).
    """

    inputs: np.ndarray
    smoothed: list
    errors: list
    jackknife: np.ndarray | None = None
    deviation: np.ndarray | None = None


def prepare_batch(phases, mags, periods, config, *, stars=None, jackknife=False):
    """Pre-process many folded light curves: `prepare_inputs`, optionally with a jackknife.

    Parameters
    ----------
    phases, mags, periods, config, stars
        As for `prepare_inputs`.
    jackknife : bool
        Also prepare each star without its most deviant kept epoch
        (``PreparedBatch.jackknife``).

    Returns
    -------
    `PreparedBatch`
    """
    periods = np.asarray(periods, dtype=float)
    n_stars = len(periods)
    if stars is None:
        stars = range(n_stars)
    stars = list(stars)
    errors = [None] * n_stars
    epochs, members = {}, {}
    for i, (phase, mag, period, star) in enumerate(zip(phases, mags, periods, stars)):
        try:
            check_period(period, star=star)
            epochs[i], members[i] = _clean_epochs_and_members(phase, mag, star)
        except LightCurveError as error:
            errors[i] = error
    rows = list(epochs)
    rejected, fits, others, others_fits = {}, {}, {}, {}
    deviation = np.full(n_stars, np.nan)
    if (config.outlier_threshold is not None or jackknife) and rows:
        screen = screen_epochs([epochs[i] for i in rows], config.outlier_threshold,
                               min_epochs=MIN_EPOCHS, max_rejected=MAX_REJECTED,
                               members=[members[i] for i in rows])
        epochs.update(zip(rows, screen.kept))
        rejected = dict(zip(rows, screen.rejected))
        fits = dict(zip(rows, screen.kept_fit))
        others = {i: e for i, e in zip(rows, screen.jackknife) if e is not None}
        others_fits = dict(zip(rows, screen.jackknife_fit))
        deviation[rows] = screen.deviation
    curves = _smooth(epochs, fits, rows, config, stars)
    inputs = np.zeros((n_stars, config.sequence_length, 2), dtype=np.float32)
    smoothed = [None] * n_stars
    for i, curve in curves.items():
        if isinstance(curve, LightCurveError):
            errors[i] = curve
            continue
        if i in rejected and rejected[i][0].size:
            curve = dataclasses.replace(
                curve, rejected_phase=(rejected[i][0] - curve.phase_of_maximum) % 1.0,
                rejected_mag=rejected[i][1])
        inputs[i] = model_input(curve, periods[i], config)
        smoothed[i] = curve
    batch = PreparedBatch(inputs=inputs, smoothed=smoothed, errors=errors)
    if jackknife:
        batch.jackknife = np.full_like(inputs, np.nan)
        usable = [i for i in others if errors[i] is None]
        for i, curve in _smooth(others, others_fits, usable, config, stars).items():
            if not isinstance(curve, LightCurveError):
                batch.jackknife[i] = model_input(curve, periods[i], config)
        deviation[[i for i in range(n_stars) if errors[i] is not None]] = np.nan
        batch.deviation = deviation
    return batch


def _smooth(epochs, fits, rows, config, stars):
    """``{i: smoothed curve or LightCurveError}`` of ``epochs[i]`` for each ``i`` of ``rows``.

    The ``batch`` smoother starts from ``fits[i]`` where `screen_epochs`
    already fitted those epochs.
    """
    if config.smoother == "scipy_gcv":
        return {i: _try_scipy(epochs[i], config.n_phases, stars[i]) for i in rows}
    fitted = [i for i in rows if fits.get(i) is not None]
    unfitted = [i for i in rows if fits.get(i) is None]
    curves = dict(zip(fitted, smoothed_from_fit([epochs[i] for i in fitted],
                                                [fits[i] for i in fitted], config.n_phases,
                                                [stars[i] for i in fitted])))
    curves.update(zip(unfitted, smooth_batch([epochs[i] for i in unfitted], config.n_phases,
                                             [stars[i] for i in unfitted])))
    return curves


def _try_scipy(epochs, n_phases, star):
    """`smooth_reference`, returning the `LightCurveError` instead of raising it."""
    try:
        return smooth_reference(*epochs, n_phases, star)
    except LightCurveError as error:
        return error
