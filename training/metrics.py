"""Regression metrics of the paper: R², RMSE, MAE and their density-weighted forms."""

import numpy as np

__all__ = ["METRICS", "median_baseline", "regression_metrics", "summarise_folds"]

METRICS = ("r2", "rmse", "mae", "wrmse", "wmae")


def regression_metrics(true, pred, weights):
    """R², RMSE, MAE, wRMSE and wMAE of one set of predictions.

    Parameters
    ----------
    true, pred : array-like
        Labels and predictions (dex).
    weights : array-like
        Density weights of the stars (see `training.data.density_weights`).

    Returns
    -------
    dict
        Keys `METRICS`, values floats.
    """
    true, pred, weights = (np.asarray(a, dtype=float) for a in (true, pred, weights))
    error = pred - true
    return {
        "r2": float(1.0 - np.sum(error**2) / np.sum((true - true.mean()) ** 2)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "wrmse": float(np.sqrt(np.average(error**2, weights=weights))),
        "wmae": float(np.average(np.abs(error), weights=weights)),
    }


def summarise_folds(per_fold):
    """Mean and standard deviation over folds of each metric.

    Parameters
    ----------
    per_fold : list of dict
        One `regression_metrics` result per fold.

    Returns
    -------
    dict
        ``{metric: {"mean": ..., "std": ...}}``.
    """
    return {
        name: {
            "mean": float(np.mean([m[name] for m in per_fold])),
            "std": float(np.std([m[name] for m in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0,
        }
        for name in METRICS
    }


def median_baseline(feh, folds, weights):
    """`regression_metrics` of predicting each star by the median label of the other folds.

    The floor any model must beat: a network that does no better has learnt
    nothing from the light curves (too few stars or epochs, or a failed
    training).

    Parameters
    ----------
    feh : array-like
        Labels (dex).
    folds : array-like of int
        Fold of every star.
    weights : array-like
        Density weights of the stars.

    Returns
    -------
    dict
        Keys `METRICS`.
    """
    feh, folds = np.asarray(feh, dtype=float), np.asarray(folds)
    pred = np.empty_like(feh)
    for fold in np.unique(folds):
        pred[folds == fold] = np.median(feh[folds != fold])
    return regression_metrics(feh, pred, weights)
