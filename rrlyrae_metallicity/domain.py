"""Is a star like the stars the model learned from? Flags a user can filter on.

Three kinds of answer, per star:

- **Not an RRab** (status ``not_rrab``, no prediction): a period outside
  `RRAB_PERIOD_RANGE`, a smoothed amplitude below `MIN_RRAB_AMPLITUDE` (a
  constant or barely variable light curve), or a classification column
  (Gaia DR3 ``best_classification``) that names another type (RRc, RRd).
  The models know fundamental-mode RR Lyrae only; any number for these
  stars would be meaningless.
- **Outside the training domain** (a prediction, an extrapolation): period
  or amplitude outside the training stars' ranges, fewer epochs than any
  training star, or a wider phase gap. ``feh_domain`` says why in words,
  ``feh_flags`` in bits, and ``feh_phot_std`` is NaN: the uncertainty was
  calibrated on the training stars and says nothing about an extrapolation.
- **Epochs rejected as outliers** before the fit (a flag only).
- **Sensitive to one epoch** (a flag only): without the kept epoch farthest
  from the smooth curve of the others, [Fe/H] moves by more than
  `EPOCH_SENSITIVITY` times its σ (``feh_epoch_influence`` holds the shift).

`FLAG_BITS` documents the bits of ``feh_flags``.
"""

import numpy as np

from .exceptions import LightCurveError

__all__ = ["FLAG_BITS", "EPOCH_SENSITIVITY", "RRAB_PERIOD_RANGE", "MIN_RRAB_AMPLITUDE",
           "NOT_RRAB", "RRAB_NAMES", "describe_flags", "domain_flags", "not_rrab_reason",
           "classification_errors"]

#: Bits of the ``feh_flags`` column: name -> (value, meaning).
FLAG_BITS = {
    "period": (1, "period outside the training stars' range"),
    "amplitude": (2, "amplitude outside the training stars' range"),
    "few_epochs": (4, "fewer epochs than any training star"),
    "phase_gap": (8, "a wider gap in phase than any training star's"),
    "rejected_epochs": (16, "epochs rejected as outliers before the fit"),
    "not_rrab": (32, "not an RRab (period, amplitude or classification); no prediction"),
    "no_prediction": (64, "no prediction (see feh_status)"),
    "epoch_sensitive": (128, "[Fe/H] moves by more than half its uncertainty without the "
                             "epoch farthest from the curve of the others"),
}
#: The flags that make a prediction an extrapolation (its σ is NaN).
OUT_OF_DOMAIN = FLAG_BITS["period"][0] | FLAG_BITS["amplitude"][0] | \
    FLAG_BITS["few_epochs"][0] | FLAG_BITS["phase_gap"][0]

#: The ``epoch_sensitive`` flag: [Fe/H] moves by more than this many σ without
#: the star's most deviant kept epoch (``feh_epoch_influence``).
EPOCH_SENSITIVITY = 0.5

#: Periods (days) of fundamental-mode RR Lyrae; outside, a star is not an RRab.
RRAB_PERIOD_RANGE = (0.28, 1.2)
#: Smallest peak-to-peak amplitude (mag) of the smoothed curve of an RRab.
MIN_RRAB_AMPLITUDE = 0.1
#: Status of a star that is not an RRab.
NOT_RRAB = "not_rrab"
#: How classification columns name an RRab (lower case): Gaia's RRab, survey tables' ab.
RRAB_NAMES = frozenset({"rrab", "ab", "rr ab", "rr_ab", "rr0"})
# Values that say nothing about the type.
_UNKNOWN = frozenset({"", "nan", "none", "null", "--", "masked", "?"})


def not_rrab_reason(period, curve):
    """Why a star cannot be an RRab from its period and smoothed curve ("" if it can)."""
    low, high = RRAB_PERIOD_RANGE
    if not low <= period <= high:
        return (f"period {period:.4g} d is outside the {low:g}-{high:g} d of fundamental-mode "
                "RR Lyrae")
    if curve.amplitude < MIN_RRAB_AMPLITUDE:
        return (f"amplitude {curve.amplitude:.3g} mag is below the {MIN_RRAB_AMPLITUDE:g} mag "
                "of an RRab (constant or barely variable light curve)")
    return ""


# Relative margin on the training ranges of period and amplitude: their ends are
# the extreme training stars, measured once (an amplitude of 0.218 mag served
# against a recorded 0.219 is not an extrapolation).
_MARGIN = 0.01


def domain_flags(training_domain, period, curve, n_epochs=None):
    """Bits of ``feh_flags`` and the reasons in words for one predicted star.

    Parameters
    ----------
    training_domain : dict
        The model's ``training_domain`` (ranges of period, amplitude, epoch
        count and largest phase gap).
    period : float
        Days.
    curve : `~rrlyrae_metallicity.smoothing.SmoothedLightCurve`
    n_epochs : int, optional
        The star's epochs with a usable magnitude, counted as the training
        set's epoch range was (before epochs at the same phase are merged);
        by default the curve's distinct epochs.

    Returns
    -------
    flags : int
    reasons : str
        Why the star lies outside the training domain, ``"; "``-separated
        ("" when inside).
    """
    flags, reasons = 0, []
    checks = (("period", period, training_domain.get("period_d"), "d"),
              ("amplitude", curve.amplitude, training_domain.get("amplitude_mag"), "mag"))
    for name, value, limits, unit in checks:
        if limits is not None and not (limits[0] * (1 - _MARGIN) <= value
                                       <= limits[1] * (1 + _MARGIN)):
            flags |= FLAG_BITS[name][0]
            reasons.append(f"{name} {value:.4g} {unit} outside the {limits[0]:.4g}-"
                           f"{limits[1]:.4g} {unit} of training")
    count = curve.phase.size if n_epochs is None else int(n_epochs)
    epoch_range = training_domain.get("n_epochs")
    if epoch_range is not None and count < epoch_range[0]:
        flags |= FLAG_BITS["few_epochs"][0]
        reasons.append(f"{count} epochs, fewer than the {epoch_range[0]} of training")
    # Only a larger gap than any training star's matters: a well-covered curve is fine.
    gap = training_domain.get("max_phase_gap")
    if gap is not None and curve.max_phase_gap > gap[1]:
        flags |= FLAG_BITS["phase_gap"][0]
        reasons.append(f"phase gap {curve.max_phase_gap:.3g} cycles, wider than the "
                       f"{gap[1]:.3g} of training")
    if curve.n_rejected:
        flags |= FLAG_BITS["rejected_epochs"][0]
    return flags, "; ".join(reasons)


def describe_flags(flags):
    """The meanings of the bits set in one ``feh_flags`` value.

    Examples
    --------
    >>> describe_flags(9)
    ["period outside the training stars' range", "a wider gap in phase than any training star's"]
    """
    return [meaning for value, meaning in FLAG_BITS.values() if int(flags) & value]


def classification_errors(classifications, stars):
    """`LightCurveError` (status ``not_rrab``) for rows classified as another type.

    Parameters
    ----------
    classifications : sequence or None
        Per star, e.g. Gaia DR3 ``best_classification`` (``RRab``, ``RRc``,
        ``RRd``); masked, empty, NaN or missing values say nothing; any
        other value than one of `RRAB_NAMES` (case-insensitive) makes the
        star ``not_rrab``.
    stars : sequence
        Names of the stars.

    Returns
    -------
    list
        `None`, or the error of each star.
    """
    if classifications is None:
        return [None] * len(stars)
    if hasattr(classifications, "filled"):
        # A masked text cell hides a placeholder ('0' from the ascii readers).
        classifications = classifications.filled("")
    values = np.ma.filled(np.ma.asarray(classifications, dtype=object), "")
    errors = []
    for value, star in zip(values, stars):
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        if text.strip().lower() not in _UNKNOWN and text.strip().lower() not in RRAB_NAMES:
            errors.append(LightCurveError(
                f"classified as {text.strip()}, not RRab: the models know fundamental-mode "
                "RR Lyrae only", star=star, status=NOT_RRAB))
        else:
            errors.append(None)
    return errors
