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

__all__ = ["COVERAGE", "ERROR_MODEL_FEATURES", "within_fold_spread", "component_spread",
           "fit_calibration", "calibrated_std", "coverage", "error_model_features",
           "error_model_std"]

#: What the per-star error model reads (`error_model_features`), in order.
ERROR_MODEL_FEATURES = ("log_epochs", "phase_gap", "log_scatter", "amplitude", "period",
                        "feh", "feh_squared", "log_spread", "epoch_influence")

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


def calibrated_std(spread, calibration, features=None):
    """Uncertainty of each star.

    Parameters
    ----------
    spread : array-like
        `within_fold_spread` of the stars (dex).
    calibration : dict or None
        The calibration stored with the model; `None` gives the spread
        itself (uncalibrated models).
    features : dict, optional
        `error_model_features` of the stars: with them, a calibration that
        holds an ``error_model`` gives `error_model_std`; otherwise
        ``scale * hypot(floor_dex, spread)``.

    Returns
    -------
    ndarray
    """
    spread = np.asarray(spread, dtype=float)
    if not calibration:
        return spread
    if features is not None and calibration.get("error_model"):
        return error_model_std(features, calibration["error_model"])
    return calibration["scale"] * np.hypot(calibration["floor_dex"], spread)


def error_model_features(feh, spread, curves, periods, influence=None):
    """What predicts a star's error, in the error model's terms.

    The one place that computes them, for fitting (``training``) and serving.

    Parameters
    ----------
    feh : array-like
        Predicted [Fe/H] (dex), stretched as served.
    spread : array-like
        `within_fold_spread` of the members (dex).
    curves : sequence of `~rrlyrae_metallicity.smoothing.SmoothedLightCurve`
    periods : array-like
        Days.
    influence : array-like, optional
        How far [Fe/H] moves without the star's most deviant epoch (dex;
        ``feh_epoch_influence``); NaN (too few epochs to drop one) counts as 0.

    Returns
    -------
    dict of str to ndarray
        The columns of `ERROR_MODEL_FEATURES`: log of the usable epochs, the
        largest phase gap, log of the scatter about the smooth curve, the
        amplitude, the period, [Fe/H] and its squared distance from -1.4 dex
        (the tails are pulled toward the crowded middle), log of the spread;
        also ``feh_abs``, the absolute distance from -1.4 dex, which a
        single network's model reads instead of the spread; with
        ``influence``, ``epoch_influence``, its absolute value.
    """
    feh = np.asarray(feh, dtype=float)
    features = {
        "log_epochs": np.log([curve.phase.size for curve in curves]),
        "phase_gap": np.array([curve.max_phase_gap for curve in curves]),
        "log_scatter": np.log(np.maximum([curve.scatter for curve in curves], 1e-3)),
        "amplitude": np.array([curve.amplitude for curve in curves]),
        "period": np.asarray(periods, dtype=float),
        "feh": feh,
        "feh_squared": (feh + 1.4) ** 2,
        "feh_abs": np.abs(feh + 1.4),
        "log_spread": np.log(np.maximum(np.asarray(spread, dtype=float), 1e-3)),
    }
    if influence is not None:
        features["epoch_influence"] = np.nan_to_num(np.abs(np.asarray(influence, dtype=float)))
    return features


def error_model_std(features, model):
    """σ of each star from the fitted error model: ``factor * exp(dot(x, w) / 2)``.

    Parameters
    ----------
    features : dict
        `error_model_features`.
    model : dict
        ``features`` (names), ``centre`` and ``scale`` (standardisation),
        ``coefficients`` (intercept first) and ``factor`` (the scale that
        makes 68 % of the training stars fall within 1σ, cross-fitted).

    Returns
    -------
    ndarray
    """
    x = np.column_stack([np.asarray(features[name], dtype=float) for name in model["features"]])
    x = (x - np.asarray(model["centre"])) / np.asarray(model["scale"])
    coefficients = np.asarray(model["coefficients"])
    log_variance = coefficients[0] + x @ coefficients[1:]
    return model["factor"] * np.exp(0.5 * log_variance)


def coverage(errors, std, k=1.0):
    """Fraction of stars with ``|error| < k * std``."""
    return float(np.mean(np.abs(np.asarray(errors)) < k * np.asarray(std)))
