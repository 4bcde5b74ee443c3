"""Every calibration the training module fits: the output stretch and the uncertainty.

Two things are fitted on out-of-fold predictions and shipped in a model's
manifest, so that what a user gets is calibrated on stars the model never saw:

- the stretch of the predictions about their median
  (`rrlyrae_metallicity.stretch`, ``output_stretch``), which undoes the
  regression towards the mean of the labels;
- the uncertainty model (`rrlyrae_metallicity.uncertainty`,
  ``uncertainty_calibration``): ``feh_phot_std`` from the spread of the
  members (a plain ensemble) or of the components (a composite), checked
  cross-fitted, each fold scored with a calibration fitted on the others.

`training.cv` calibrates the uncertainty of every run on its own out-of-fold
members (`uncertainty_calibration`). `calibrate_shipped` does both fits again
for a model already in the package, through the package's own pre-processing
and ONNX members: what a user gets. It is needed when the serving
pre-processing differs from the one the model was trained with (the first
``gru`` model was trained with the ``scipy_gcv`` smoother and is served with
the vectorised one) and it checks the calibration of any shipped model::

    python -m training calibrate --name gru

It first fits the stretch (``--no-stretch`` removes it), then the uncertainty
on the stretched predictions. Each star is predicted by the members of the
fold that held it out (the manifest gives every member's fold;
``training/results/<name>`` every star's), so the errors are out-of-fold.
`training.composite` fits a composite's with `calibrate_composite`.
"""

from pathlib import Path

import numpy as np

from rrlyrae_metallicity import uncertainty
from rrlyrae_metallicity.manifest import ModelManifest
from rrlyrae_metallicity.stretch import apply_stretch, crossfit_stretch, fit_stretch

from .data import density_weights
from .metrics import regression_metrics
from .paths import MODELS_DIR, RESULTS_DIR
from .served import recorded_folds, served_out_of_fold, served_out_of_fold_with_influence

__all__ = ["MEMBER_SPREAD_MODEL", "COMPONENT_SPREAD_MODEL", "STRETCH_OBJECTIVE",
           "calibration_from_spread", "uncertainty_calibration", "fit_output_stretch",
           "weighted_mean", "calibrate_ensemble", "calibrate_composite", "calibrate_shipped",
           "ERROR_MODEL", "error_model_checks", "fit_error_model", "shipped_error_model",
           "stretch_helps"]

#: The uncertainty formula of a plain ensemble, recorded with its calibration.
MEMBER_SPREAD_MODEL = "std = scale * hypot(floor_dex, within-fold spread of the members)"
#: The uncertainty formula of a composite, recorded with its calibration.
COMPONENT_SPREAD_MODEL = ("std = scale * hypot(floor_dex, spread of the components' fold means "
                          "about their weighted mean)")
#: What the output stretch minimises, recorded with it.
STRETCH_OBJECTIVE = "mean squared error + density-weighted mean squared error"


def calibration_from_spread(errors, spread, folds, model):
    """Fit the uncertainty model on out-of-fold errors and spreads, and check it cross-fitted.

    Parameters
    ----------
    errors, spread : ndarray, shape (n_stars,)
        Out-of-fold error and spread statistic of every star (dex).
    folds : ndarray of int
        Fold of every star: each fold is scored with a calibration fitted on
        the other folds only.
    model : str
        The formula, recorded with the calibration.

    Returns
    -------
    dict
        The `~rrlyrae_metallicity.uncertainty.fit_calibration` fitted on all
        stars (what ships with the model), and the coverage of ``|error| <
        std`` and ``< 2 std`` when each fold is predicted with a calibration
        fitted on the other folds only (cross-fitted, so not flattered).
    """
    std = np.empty(len(errors))
    for k in np.unique(folds):
        held_out = folds == k
        fitted = uncertainty.fit_calibration(errors[~held_out], spread[~held_out])
        std[held_out] = uncertainty.calibrated_std(spread[held_out], fitted)
    return {
        **uncertainty.fit_calibration(errors, spread),
        "model": model,
        "crossfit_coverage_1std": uncertainty.coverage(errors, std),
        "crossfit_coverage_2std": uncertainty.coverage(errors, std, 2.0),
        "crossfit_median_std_dex": float(np.median(std)),
        "uncalibrated_coverage_1std": uncertainty.coverage(errors, spread),
        "uncalibrated_median_spread_dex": float(np.median(spread)),
    }


def uncertainty_calibration(feh, oof_members, folds):
    """Calibrate an ensemble's uncertainty on out-of-fold errors, and check it.

    Parameters
    ----------
    feh : ndarray, shape (n_stars,)
        Labels.
    oof_members : ndarray, shape (n_stars, members_per_fold)
        Out-of-fold prediction of each member of the star's own fold.
    folds : ndarray of int
        Fold of every star.

    Returns
    -------
    dict
        See `calibration_from_spread`; the spread is that of the members of
        the star's fold (0 with one member per fold).
    """
    errors = oof_members.mean(axis=1) - feh
    if oof_members.shape[1] > 1:
        spread = oof_members.std(axis=1, ddof=1)
    else:
        spread = np.zeros(len(feh))
    return calibration_from_spread(errors, spread, folds, MEMBER_SPREAD_MODEL)


def fit_output_stretch(feh, prediction, weights, folds):
    """Fit the output stretch on out-of-fold predictions, and score it cross-fitted.

    Parameters
    ----------
    feh, prediction, weights : ndarray, shape (n_stars,)
        Labels, out-of-fold predictions and density weights.
    folds : ndarray of int
        Fold of every star, for the cross-fitted check.

    Returns
    -------
    dict
        `~rrlyrae_metallicity.stretch.fit_stretch` fitted on all stars (what
        ships), with the objective, the factors fitted without each fold, and
        the metrics of the cross-fitted and of the unstretched predictions.
    """
    stretch = fit_stretch(feh, prediction, weights)
    crossfit, factors = crossfit_stretch(feh, prediction, weights, folds)
    stretch.update(
        objective=STRETCH_OBJECTIVE,
        crossfit_factors=factors,
        crossfit_out_of_fold=regression_metrics(feh, crossfit, weights),
        unstretched_out_of_fold=regression_metrics(feh, prediction, weights),
    )
    return stretch


def weighted_mean(predictions, components):
    """The weighted mean a composite serves.

    Parameters
    ----------
    predictions : dict
        Component name → predictions.
    components : dict
        Component name → weight (summing to 1), in the composite's order.

    Returns
    -------
    ndarray
    """
    return sum(weight * predictions[name] for name, weight in components.items())


def _with_served(calibration, preprocessing, feh, served, weights):
    """Record the pre-processing and the out-of-fold metrics the calibration was fitted with."""
    calibration["served_preprocessing"] = preprocessing.to_dict()
    calibration["served_out_of_fold"] = regression_metrics(feh, served, weights)
    return calibration


def stretch_helps(output_stretch):
    """Whether a fitted stretch lowers its own objective out of fold (cross-fitted).

    The objective is the one the stretch minimises: the mean squared error
    plus the density-weighted one. On a small or weak training set the factor
    fitted on all stars can make the cross-fitted predictions worse; it is
    then not applied.
    """
    def objective(metrics):
        return metrics["rmse"] ** 2 + metrics["wrmse"] ** 2

    return (objective(output_stretch["crossfit_out_of_fold"])
            < objective(output_stretch["unstretched_out_of_fold"]))


def calibrate_ensemble(feh, own, folds, weights, preprocessing, *, stretch=True):
    """Output stretch and uncertainty of a plain ensemble from its served out-of-fold members.

    Parameters
    ----------
    feh, weights : ndarray, shape (n_stars,)
        Labels and density weights.
    own : ndarray, shape (n_stars, members_per_fold)
        Served prediction of every member of each star's own fold
        (`training.served.served_out_of_fold`).
    folds : ndarray of int
        Fold of every star.
    preprocessing : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
        The pre-processing the predictions were served with (recorded).
    stretch : bool
        Fit the output stretch; if false, the predictions stay unstretched.

    Returns
    -------
    output_stretch : dict or None
        `fit_output_stretch`, or `None` without ``stretch``.
    calibration : dict
        `uncertainty_calibration` of the (stretched) members, with
        ``served_preprocessing`` and ``served_out_of_fold``.
    """
    output_stretch = None
    if stretch:
        output_stretch = fit_output_stretch(feh, own.mean(axis=1), weights, folds)
        if stretch_helps(output_stretch):
            own = apply_stretch(own, output_stretch)
        else:
            output_stretch = None
    calibration = uncertainty_calibration(feh, own, folds)
    return output_stretch, _with_served(calibration, preprocessing, feh, own.mean(axis=1),
                                        weights)


def calibrate_composite(feh, own_means, components, weights, folds, preprocessing):
    """Output stretch and uncertainty of a weighted mean of shipped ensembles.

    Parameters
    ----------
    feh, weights : ndarray, shape (n_stars,)
        Labels and density weights.
    own_means : dict
        Component name → its out-of-fold mean (each star by its own fold's
        members of that component).
    components : dict
        Component name → weight (summing to 1).
    folds : ndarray of int
        The folds the stretch and the uncertainty are cross-fitted on.
    preprocessing : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
        The components' shared pre-processing (recorded).

    Returns
    -------
    output_stretch : dict
        `fit_output_stretch` of the weighted mean.
    calibration : dict
        `calibration_from_spread` on the spread of the stretched components
        about their weighted mean, with ``served_preprocessing`` and
        ``served_out_of_fold``.
    served : ndarray, shape (n_stars,)
        The stretched weighted mean: what the composite serves.
    """
    output_stretch = fit_output_stretch(feh, weighted_mean(own_means, components), weights,
                                        folds)
    stretched = {c: apply_stretch(m, output_stretch) for c, m in own_means.items()}
    served = weighted_mean(stretched, components)
    spread = uncertainty.component_spread([stretched[c] for c in components],
                                          list(components.values()))
    calibration = calibration_from_spread(served - feh, spread, folds, COMPONENT_SPREAD_MODEL)
    return output_stretch, _with_served(calibration, preprocessing, feh, served, weights), served


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
        ``output_stretch`` (or `None`, also when the fitted stretch did not
        help out of fold: `stretch_helps`) and ``uncertainty_calibration`` as
        written; ``stretch_rejected`` and ``error_model_dropped`` (an error
        model fitted on the previous calibration is removed: refit it).
    """
    from rrlyrae_metallicity.models import load_model

    folds = recorded_folds(name, dataset, results_dir)
    ensemble = load_model(name)
    own = served_out_of_fold(ensemble, dataset, folds)
    output_stretch, calibration = calibrate_ensemble(
        dataset.feh, own, folds, density_weights(dataset.feh), ensemble.preprocessing,
        stretch=stretch)

    path = Path(models_dir) / name / "manifest.json"
    manifest = ModelManifest.read(path)
    dropped = "error_model" in (manifest.uncertainty_calibration or {})
    # Dropped first, so that a new stretch is written last, after the file's keys.
    manifest.drop("output_stretch")
    manifest.output_stretch = output_stretch
    manifest.uncertainty_calibration = calibration
    manifest.write(path)
    return {"output_stretch": output_stretch, "uncertainty_calibration": calibration,
            "stretch_rejected": bool(stretch and output_stretch is None),
            "error_model_dropped": dropped}


# --------------------------------------------------------------------------
# The per-star error model
# --------------------------------------------------------------------------

#: The error model's formula, recorded with it.
ERROR_MODEL = ("std = factor * exp(x . w / 2): log variance linear in the standardised "
               "features, fitted by Gaussian likelihood on out-of-fold errors")
# One standard deviation of a Gaussian holds this fraction.
_ONE_SIGMA = uncertainty.COVERAGE


#: What a single network's error model reads: no members' spread; instead the
#: absolute distance of [Fe/H] from -1.4 dex besides its square, chosen by the
#: cross-fitted checks of gru_distilled (with the square alone the middle third
#: of [Fe/H] held 71.4 % of its stars within 1σ and the fourth fifth of σ had
#: RMSE / RMS(σ) = 1.11; with both, 69.8 % and 1.10).
SINGLE_NETWORK_ERROR_FEATURES = tuple(
    n for n in uncertainty.ERROR_MODEL_FEATURES if n != "log_spread") + ("feh_abs",)


def _fit_log_variance(x, errors, ridge):
    """Coefficients ``w`` maximising the Gaussian likelihood of ``errors`` with log σ² = x·w."""
    from scipy.optimize import minimize

    def loss(w):
        log_var = x @ w
        return 0.5 * np.sum(log_var + errors ** 2 * np.exp(-log_var)) + ridge * np.sum(w[1:] ** 2)

    def gradient(w):
        log_var = x @ w
        g = 0.5 * x.T @ (1.0 - errors ** 2 * np.exp(-log_var))
        g[1:] += 2.0 * ridge * w[1:]
        return g

    start = np.zeros(x.shape[1])
    start[0] = np.log(np.mean(errors ** 2))
    return minimize(loss, start, jac=gradient, method="L-BFGS-B").x


def _error_model(features, errors, ridge, names):
    """The error model fitted on these stars (a dict for the manifest)."""
    x = np.column_stack([features[name] for name in names])
    centre, scale = x.mean(axis=0), x.std(axis=0)
    design = np.column_stack([np.ones(len(x)), (x - centre) / scale])
    coefficients = _fit_log_variance(design, errors, ridge)
    model = {"model": ERROR_MODEL, "features": list(names), "centre": centre.tolist(),
             "scale": scale.tolist(), "coefficients": coefficients.tolist(), "factor": 1.0}
    # Heavier tails than a Gaussian's: scale σ so that 68 % of the stars lie within it.
    raw = uncertainty.error_model_std(features, model)
    model["factor"] = float(np.quantile(np.abs(errors) / raw, _ONE_SIGMA))
    return model


def error_model_checks(errors, std, features):
    """How well ``std`` tracks ``errors``: by fifth of σ, and coverage per group.

    Returns
    -------
    dict
        ``rmse_over_rms_std_by_fifth`` and ``rmse_by_fifth`` (stars sorted by
        σ), ``rmse_largest_over_smallest_fifth``, ``coverage_1std`` overall and
        ``coverage_1std_by_group`` (epoch count < 30, 30-39, >= 40; predicted
        [Fe/H] terciles).
    """
    fifths = np.array_split(np.argsort(std), 5)
    rmse = [float(np.sqrt(np.mean(errors[f] ** 2))) for f in fifths]
    ratio = [r / float(np.sqrt(np.mean(std[f] ** 2))) for r, f in zip(rmse, fifths)]
    inside = np.abs(errors) <= std
    n_epochs = np.exp(features["log_epochs"])
    low, high = np.quantile(features["feh"], [1 / 3, 2 / 3])
    groups = {"epochs < 30": n_epochs < 29.5,
              "epochs 30-39": (n_epochs > 29.5) & (n_epochs < 39.5),
              "epochs >= 40": n_epochs > 39.5, "[Fe/H] lowest third": features["feh"] < low,
              "[Fe/H] middle third": (features["feh"] >= low) & (features["feh"] < high),
              "[Fe/H] highest third": features["feh"] >= high}
    return {"rmse_over_rms_std_by_fifth": ratio, "rmse_by_fifth": rmse,
            "rmse_largest_over_smallest_fifth": rmse[-1] / rmse[0],
            "coverage_1std": float(inside.mean()),
            "coverage_1std_by_group": {name: float(inside[mask].mean())
                                       for name, mask in groups.items() if mask.any()}}


def fit_error_model(errors, features, folds, *, ridge=1e-3,
                    names=uncertainty.ERROR_MODEL_FEATURES):
    """Fit the per-star error model and check it cross-fitted.

    Parameters
    ----------
    errors : ndarray
        Out-of-fold errors (served prediction minus label), dex.
    features : dict
        `rrlyrae_metallicity.uncertainty.error_model_features` of the stars.
    folds : ndarray of int
        Fold of every star: each fold is scored with a model fitted on the others.
    ridge : float
        L2 penalty on the standardised coefficients.
    names : sequence of str
        The features the model reads (a single network has no members'
        spread: ``log_spread`` is left out).

    Returns
    -------
    model : dict
        The model fitted on every star, with ``crossfit`` (`error_model_checks`
        of the cross-fitted σ), for the manifest.
    crossfit_std : ndarray
        The cross-fitted σ of every star.
    """
    crossfit_std = np.empty(len(errors))
    for k in np.unique(folds):
        train = folds != k
        model = _error_model({n: v[train] for n, v in features.items()}, errors[train], ridge,
                             names)
        crossfit_std[~train] = uncertainty.error_model_std(
            {n: v[~train] for n, v in features.items()}, model)
    model = _error_model(features, errors, ridge, names)
    model["crossfit"] = error_model_checks(errors, crossfit_std, features)
    return model, crossfit_std


def shipped_error_model(name, dataset, *, models_dir=MODELS_DIR, results_dir=RESULTS_DIR):
    """Fit a shipped plain ensemble's error model as served and write it into its manifest.

    Each training star is predicted by the members of the fold that held it
    out, through the package's pre-processing and the manifest's stretch;
    the model goes into ``uncertainty_calibration["error_model"]``.

    Returns
    -------
    dict
        The error model as written.
    """
    from rrlyrae_metallicity.models import load_model

    folds = recorded_folds(name, dataset, results_dir)
    ensemble = load_model(name)
    prediction, spread, curves, influence = served_out_of_fold_with_influence(
        ensemble, dataset, folds)
    features = uncertainty.error_model_features(prediction, spread, curves, dataset.periods,
                                                influence)
    names = (uncertainty.ERROR_MODEL_FEATURES if len(ensemble.member_folds) > len(set(
        ensemble.member_folds)) else SINGLE_NETWORK_ERROR_FEATURES)
    model, _ = fit_error_model(prediction - dataset.feh, features, folds, names=names)
    path = Path(models_dir) / name / "manifest.json"
    manifest = ModelManifest.read(path)
    manifest.uncertainty_calibration = dict(manifest.uncertainty_calibration or {},
                                            error_model=model)
    manifest.write(path)
    return model
