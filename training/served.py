"""Out-of-fold predictions of shipped models: as recorded, and as the package serves them.

A shipped model's recorded results (``training/results/<name>``, written by
`training.ship.record_results`) give every training star's fold. Predicting a
star with the members of the fold that held it out, through the package's own
pre-processing and ONNX members, gives what a user gets for a star the model
never saw: the predictions the calibrations are fitted on.
"""

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.preprocessing import prepare_batch

from .paths import RESULTS_DIR

__all__ = ["recorded_column", "recorded_folds", "training_batch", "training_inputs",
           "own_fold_members", "served_out_of_fold", "served_out_of_fold_with_influence"]


def recorded_column(name, dataset, column, results_dir=RESULTS_DIR):
    """A column of the recorded out-of-fold table of model ``name``, in ``dataset``'s order.

    Parameters
    ----------
    name : str
        A model with recorded results in ``results_dir``.
    dataset : `training.data.Dataset`
    column : str
        e.g. ``"fold"`` or ``"feh_pred"``.
    results_dir : path-like

    Returns
    -------
    ndarray
    """
    recorded = Table.read(results_dir / name / "oof_predictions.ecsv")
    order = {int(s): i for i, s in enumerate(recorded["source_id"])}
    return np.asarray(recorded[column])[[order[int(s)] for s in dataset.stars["source_id"]]]


def recorded_folds(name, dataset, results_dir=RESULTS_DIR):
    """Fold of every star of ``dataset`` in the recorded run of shipped model ``name``."""
    return recorded_column(name, dataset, "fold", results_dir)


def training_batch(dataset, preprocessing, *, jackknife=False):
    """Every training star through the package's pre-processing (`prepare_batch`).

    Parameters
    ----------
    dataset : `training.data.Dataset`
    preprocessing : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
    jackknife : bool
        Also each star without its most deviant kept epoch.

    Returns
    -------
    `~rrlyrae_metallicity.preprocessing.PreparedBatch`

    Raises
    ------
    RuntimeError
        If any training light curve fails: every star must be predicted.
    """
    batch = prepare_batch(dataset.phases, dataset.mags, dataset.periods, preprocessing,
                          jackknife=jackknife)
    failed = [e for e in batch.errors if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} training light curves failed: {failed[:3]}")
    return batch


def training_inputs(dataset, preprocessing):
    """Model inputs of every training star, shape (n_stars, length, 2) (`training_batch`)."""
    return training_batch(dataset, preprocessing).inputs


def own_fold_members(ensemble, inputs, folds):
    """Prediction of every member of each star's own (held-out) fold.

    Parameters
    ----------
    ensemble : `rrlyrae_metallicity.models.FehEnsemble`
        A plain ensemble with the same number of members in every fold, or
        a distilled model (its fold students: one column).
    inputs : ndarray, shape (n_stars, length, 2)
    folds : ndarray of int
        Fold of every star.

    Returns
    -------
    ndarray, shape (n_stars, members_per_fold)
    """
    if ensemble.is_distilled:
        # One network served; its fold students give the out-of-fold predictions.
        student_folds, predictions = ensemble.predict_crossfit(inputs)
        own = np.full((len(inputs), 1), np.nan)
        for row, k in enumerate(student_folds):
            own[folds == k, 0] = predictions[row, folds == k]
        return own
    member_folds = np.array(ensemble.member_folds)
    predictions = ensemble.predict_members(inputs)
    per_fold = np.bincount(member_folds)
    if len(set(per_fold)) != 1:
        raise ValueError("every fold must have the same number of members")
    own = np.empty((len(inputs), per_fold[0]))
    for k in range(len(per_fold)):
        own[folds == k] = predictions[member_folds == k][:, folds == k].T
    return own


def served_out_of_fold(ensemble, dataset, folds):
    """Out-of-fold prediction of every member of a star's own fold, as served.

    Parameters
    ----------
    ensemble : `rrlyrae_metallicity.models.FehEnsemble`
    dataset : `training.data.Dataset`
    folds : ndarray of int
        Fold of every star of ``dataset``.

    Returns
    -------
    ndarray, shape (n_stars, members_per_fold)
    """
    return own_fold_members(ensemble, training_inputs(dataset, ensemble.preprocessing), folds)


def served_out_of_fold_with_influence(ensemble, dataset, folds):
    """Each training star as served, by the members of the fold that held it out.

    Through the package's pre-processing (with its jackknife) and the
    manifest's stretch.

    Returns
    -------
    prediction : ndarray
        The mean of the star's own-fold members.
    spread : ndarray
        Their standard deviation (0 for one network): what
        `~rrlyrae_metallicity.uncertainty.within_fold_spread` serves, out of fold.
    curves : list
        The smoothed light curves.
    influence : ndarray
        The same prediction without the star's most deviant epoch, minus
        ``prediction`` (NaN where none could be dropped), as
        `~rrlyrae_metallicity.pipeline.predict_batch` serves it.
    """
    batch = training_batch(dataset, ensemble.preprocessing, jackknife=True)
    own = ensemble.stretch(own_fold_members(ensemble, batch.inputs, folds))
    prediction = own.mean(axis=1)
    spread = own.std(axis=1, ddof=1) if own.shape[1] > 1 else np.zeros(len(own))
    dropped = np.isfinite(batch.jackknife[:, 0, 0])
    jackknife = np.where(dropped[:, None, None], batch.jackknife, batch.inputs)
    influence = ensemble.stretch(own_fold_members(ensemble, jackknife, folds)).mean(axis=1)
    influence = np.where(dropped, influence - prediction, np.nan)
    return prediction, spread, batch.smoothed, influence
