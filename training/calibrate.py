"""Calibrate a shipped ensemble's outputs and uncertainty on the pre-processing the package serves.

`training.cv` calibrates every run on its own out-of-fold predictions. This
module does it again for a model already in the package, through the
package's own pre-processing and ONNX members: what a user gets. It is needed
when the serving pre-processing differs from the one the model was trained
with (the first ``gru`` model was trained with the ``scipy_gcv`` smoother and
is served with the vectorised one) and it checks the calibration of any
shipped model::

    python -m training calibrate --name gru

It first fits the stretch of the predictions about their median
(`rrlyrae_metallicity.stretch`; ``--no-stretch`` removes it), then the
uncertainty on the stretched predictions. Each star is predicted by the
members of the fold that held it out (the manifest gives every member's fold;
``training/results/<name>`` every star's), so the errors are out-of-fold.
"""

import json

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.preprocessing import prepare_inputs
from rrlyrae_metallicity.stretch import apply_stretch, crossfit_stretch, fit_stretch

from .cv import uncertainty_calibration
from .data import density_weights
from .metrics import regression_metrics
from .ship import MODELS_DIR, RESULTS_DIR

__all__ = ["recorded_column", "recorded_folds", "training_inputs", "own_fold_members",
           "served_out_of_fold", "calibrate_shipped"]


def recorded_column(name, dataset, column, results_dir=RESULTS_DIR):
    """A column of the recorded out-of-fold table of model ``name``, in ``dataset``'s order."""
    recorded = Table.read(results_dir / name / "oof_predictions.ecsv")
    order = {int(s): i for i, s in enumerate(recorded["source_id"])}
    return np.asarray(recorded[column])[[order[int(s)] for s in dataset.stars["source_id"]]]


def recorded_folds(name, dataset, results_dir=RESULTS_DIR):
    """Fold of every star of ``dataset`` in the recorded run of shipped model ``name``."""
    return recorded_column(name, dataset, "fold", results_dir)


def training_inputs(dataset, preprocessing):
    """Model inputs of every training star through the package's pre-processing."""
    inputs, _, errors = prepare_inputs(dataset.phases, dataset.mags, dataset.periods,
                                       preprocessing)
    failed = [e for e in errors if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} training light curves failed: {failed[:3]}")
    return inputs


def own_fold_members(ensemble, inputs, folds):
    """Prediction of every member of each star's own (held-out) fold.

    Parameters
    ----------
    ensemble : `rrlyrae_metallicity.models.FehEnsemble`
        A plain ensemble with the same number of members in every fold.
    inputs : ndarray, shape (n_stars, length, 2)
    folds : ndarray of int
        Fold of every star.

    Returns
    -------
    ndarray, shape (n_stars, members_per_fold)
    """
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


def calibrate_shipped(name, dataset, *, stretch=True, models_dir=MODELS_DIR,
                      results_dir=RESULTS_DIR):
    """Write ``output_stretch`` and ``uncertainty_calibration`` into a shipped manifest.

    Parameters
    ----------
    name : str
        A model in ``models_dir``, with recorded results in ``results_dir``.
    dataset : `training.data.Dataset`
        The training set the model was cross-validated on.
    stretch : bool
        Fit the output stretch; if false, remove any from the manifest.

    Returns
    -------
    dict
        ``output_stretch`` (or `None`) and ``uncertainty_calibration`` as written.
    """
    folds = recorded_folds(name, dataset, results_dir)
    ensemble = load_model(name)
    own = served_out_of_fold(ensemble, dataset, folds)
    weights = density_weights(dataset.feh)
    mean = own.mean(axis=1)
    raw_metrics = regression_metrics(dataset.feh, mean, weights)

    output_stretch = None
    if stretch:
        output_stretch = fit_stretch(dataset.feh, mean, weights)
        crossfit, factors = crossfit_stretch(dataset.feh, mean, weights, folds)
        output_stretch.update(
            objective="mean squared error + density-weighted mean squared error",
            crossfit_factors=factors,
            crossfit_out_of_fold=regression_metrics(dataset.feh, crossfit, weights),
            unstretched_out_of_fold=raw_metrics,
        )
        own = apply_stretch(own, output_stretch)
    calibration = uncertainty_calibration(dataset.feh, own, folds)
    calibration["served_preprocessing"] = ensemble.preprocessing.to_dict()
    calibration["served_out_of_fold"] = regression_metrics(dataset.feh, own.mean(axis=1),
                                                           weights)

    path = models_dir / name / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("output_stretch", None)
    if output_stretch:
        manifest["output_stretch"] = output_stretch
    manifest["uncertainty_calibration"] = calibration
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return {"output_stretch": output_stretch, "uncertainty_calibration": calibration}
