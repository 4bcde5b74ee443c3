"""Stratified folds: every fold and every validation split spans the [Fe/H] range."""

import numpy as np

__all__ = ["strata", "stratified_folds"]


def strata(feh, n_bins):
    """Quantile bin (0..n_bins-1) of every label, the classes stratified splits balance.

    Parameters
    ----------
    feh : array-like
        Labels.
    n_bins : int
        Number of [Fe/H] quantile bins.

    Returns
    -------
    ndarray of int
    """
    edges = np.quantile(feh, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.digitize(feh, edges)


def stratified_folds(feh, n_folds, n_bins, seed):
    """Fold index (0..n_folds-1) of every star, stratified on binned [Fe/H].

    Parameters
    ----------
    feh : array-like
        Labels.
    n_folds, n_bins, seed : int
        Number of folds, number of quantile bins, random seed.

    Returns
    -------
    ndarray of int
    """
    from sklearn.model_selection import StratifiedKFold

    feh = np.asarray(feh, dtype=float)
    folds = np.empty(feh.size, dtype=int)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(feh, strata(feh, n_bins))):
        folds[test] = k
    return folds
