"""Calibrated uncertainty of an ensemble's [Fe/H], from its out-of-fold errors.

The spread of the ensemble members alone is far too small to be an error bar
(about 0.02 dex against an RMS error of 0.17 dex): members trained on similar
data agree with each other much better than with the labels. The uncertainty
of a star is therefore modelled as

.. math::

    \\sigma^2 = c^2 \\left(a^2 + s^2\\right),

where :math:`s` is the *within-fold spread* of the members (the standard
deviation among the members of each fold, averaged in quadrature over the
folds), :math:`a` a floor fitted by maximum likelihood on the out-of-fold
errors of the training set, and :math:`c` chosen so that 68.3 % of those
errors are smaller than :math:`\\sigma`. Out-of-fold, a star's spread comes
from the members of its own fold only, which never saw it; at prediction
time every fold's members are out-of-sample, so the same statistic applies.
"""

import math

import numpy as np

__all__ = ["COVERAGE", "within_fold_spread", "component_spread", "fit_calibration",
           "calibrated_std", "coverage"]

#: Fraction of a Gaussian within one standard deviation.
COVERAGE = math.erf(1 / math.sqrt(2))


def within_fold_spread(member_predictions, member_folds):
    """Spread of the members around their own fold's mean, per star.

    Parameters
    ----------
    member_predictions : array-like, shape (n_members, n_stars)
        Prediction of every member for every star (dex).
    member_folds : array-like of int, shape (n_members,)
        Fold of every member.

    Returns
    -------
    ndarray, shape (n_stars,)
        ``sqrt(mean_k var_k)``, the variance among the members of fold ``k``
        (``ddof=1``) averaged over the folds with at least two members; zeros
        if no fold has two members.
    """
    predictions = np.atleast_2d(np.asarray(member_predictions, dtype=float))
    member_folds = np.asarray(member_folds)
    variances = [predictions[member_folds == k].var(axis=0, ddof=1)
                 for k in np.unique(member_folds) if np.sum(member_folds == k) > 1]
    if not variances:
        return np.zeros(predictions.shape[1])
    return np.sqrt(np.mean(variances, axis=0))


def component_spread(fold_means, weights):
    """Spread of a composite model: its components' fold means about its mean.

    Parameters
    ----------
    fold_means : list of array-like, shape (n_folds_c, n_stars) each
        For every component ensemble, the mean prediction of the members of
        each of its folds (one fold per component for out-of-fold predictions).
    weights : list of float
        Weight of every component in the composite mean (summing to 1).

    Returns
    -------
    ndarray, shape (n_stars,)
        ``sqrt(sum_c w_c mean_k (m_ck - m)**2)`` with ``m = sum_c w_c mean_k
        m_ck``. Out of fold a star has one fold of each component, so the
        statistic is how much the architectures disagree; at prediction time
        the average over folds adds the fold-to-fold scatter that a single
        fold's mean carries out of fold, so the same calibration applies.
    """
    fold_means = [np.atleast_2d(np.asarray(m, dtype=float)) for m in fold_means]
    centre = sum(w * m.mean(axis=0) for m, w in zip(fold_means, weights))
    return np.sqrt(sum(w * ((m - centre) ** 2).mean(axis=0) for m, w in zip(fold_means, weights)))


def fit_calibration(errors, spread):
    """Fit the floor ``a`` and scale ``c`` of the uncertainty model.

    Parameters
    ----------
    errors : array-like
        Out-of-fold errors, prediction minus label (dex).
    spread : array-like
        `within_fold_spread` of the same stars, from their own fold's members.

    Returns
    -------
    dict
        ``{"floor_dex": a, "scale": c}``.
    """
    errors = np.asarray(errors, dtype=float)
    spread = np.asarray(spread, dtype=float)

    def negative_log_likelihood(log_floor):
        variance = np.exp(2 * log_floor) + spread**2
        return 0.5 * np.sum(np.log(variance) + errors**2 / variance)

    rms = float(np.sqrt(np.mean(errors**2)))
    # Fitting happens in training only: scipy is not needed to serve predictions.
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(negative_log_likelihood, bounds=(np.log(1e-4), np.log(10 * rms)),
                           method="bounded")
    floor = float(np.exp(best.x))
    # The likelihood assumes Gaussian errors; real ones have heavier tails, so
    # the scale is set from the errors themselves to cover 68.3 % of them.
    scale = float(np.quantile(np.abs(errors) / np.hypot(floor, spread), COVERAGE))
    return {"floor_dex": floor, "scale": scale}


def calibrated_std(spread, calibration):
    """Uncertainty of each star from its members' spread.

    Parameters
    ----------
    spread : array-like
        `within_fold_spread` of the stars (dex).
    calibration : dict or None
        The result of `fit_calibration` stored with the model; `None` gives
        the spread itself (uncalibrated models).

    Returns
    -------
    ndarray
    """
    spread = np.asarray(spread, dtype=float)
    if not calibration:
        return spread
    return calibration["scale"] * np.hypot(calibration["floor_dex"], spread)


def coverage(errors, std, k=1.0):
    """Fraction of stars with ``|error| < k * std``."""
    return float(np.mean(np.abs(np.asarray(errors)) < k * np.asarray(std)))
