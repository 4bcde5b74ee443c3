"""Compose a shipped model from other shipped ensembles: an ensemble across architectures.

A composite model has no ONNX files of its own. Its manifest names its
components (shipped ensembles of other architectures) and their weights; the
package averages their members' predictions with those weights
(`rrlyrae_metallicity.models.FehEnsemble`). It gets its own output stretch and
uncertainty calibration, fitted on the components' served out-of-fold
predictions (`training.calibration`)::

    python -m training composite --name gru_inception --components gru=0.5 inception=0.5

Every star is predicted by the members of its own held-out fold of every
component (the components may have different folds), so the composite's
metrics are out-of-fold too. The stretch and the uncertainty are cross-fitted
on the folds of the first component (`training.calibration.calibrate_composite`).
"""

import datetime
import itertools
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.manifest import MANIFEST_VERSION, ModelManifest
from rrlyrae_metallicity.stretch import crossfit_stretch

from .calibration import calibrate_composite, weighted_mean
from .data import density_weights
from .files import git_commit
from .metrics import regression_metrics
from .paths import MODELS_DIR, RESULTS_DIR
from .served import own_fold_members, recorded_column, recorded_folds, training_inputs

__all__ = ["MANIFEST_KEYS", "compose", "parse_components", "rank_combinations"]

#: Keys of a composite's manifest, in the order written (``training_commit`` is
#: null outside a git checkout).
MANIFEST_KEYS = ("name", "manifest_version", "architecture", "components", "preprocessing", "onnx",
                 "training_data", "training_domain", "cv_metrics", "produced_by",
                 "training_commit", "created", "output_stretch", "uncertainty_calibration")


def parse_components(texts):
    """``["gru=0.5", "inception=0.5"]`` → ``{"gru": 0.5, "inception": 0.5}``."""
    components = {}
    for text in texts:
        name, sep, weight = text.partition("=")
        if not sep:
            raise ValueError(f"give each component as NAME=WEIGHT, not {text!r}")
        components[name] = float(weight)
    return components


def _common_domain(domains):
    """The ranges every component was trained on (the narrowest of each)."""
    keys = set.intersection(*(set(d) for d in domains))
    return {key: [max(d[key][0] for d in domains), min(d[key][1] for d in domains)]
            for key in sorted(keys)}


def compose(name, components, dataset, *, produced_by=None, models_dir=MODELS_DIR,
            results_dir=RESULTS_DIR):
    """Write the manifest of a composite model and record its out-of-fold predictions.

    The components are loaded from the package and their manifests read from
    `training.paths.MODELS_DIR`, where the package keeps them.

    Parameters
    ----------
    name : str
        Name of the new model (a folder of ``models_dir``).
    components : dict
        Shipped model name → weight; the weights must sum to 1.
    dataset : `training.data.Dataset`
        The training set the components were cross-validated on.
    produced_by : str, optional
        The command, recorded in the manifest.

    Returns
    -------
    `~rrlyrae_metallicity.manifest.ModelManifest`
        The manifest written.
    """
    from rrlyrae_metallicity.models import load_model

    if not components or abs(sum(components.values()) - 1) > 1e-9:
        raise ValueError(f"the weights of the components must sum to 1, not {components}")
    parts = {c: load_model(c) for c in components}
    manifests = {c: ModelManifest.read(MODELS_DIR / c / "manifest.json") for c in components}
    composites = [c for c, manifest in manifests.items() if manifest.is_composite]
    if composites:
        raise ValueError(f"components must be plain ensembles; {composites} are composite")
    first = next(iter(parts.values()))
    if any(part.preprocessing != first.preprocessing for part in parts.values()):
        raise ValueError("the components must share their pre-processing")

    feh = dataset.feh
    weights = density_weights(feh)
    folds = {c: recorded_folds(c, dataset, results_dir) for c in components}
    # The components share their pre-processing: the inputs are made once.
    inputs = training_inputs(dataset, first.preprocessing)
    own_means = {c: own_fold_members(part, inputs, folds[c]).mean(axis=1)
                 for c, part in parts.items()}
    stretch_folds = folds[next(iter(components))]
    output_stretch, calibration, served = calibrate_composite(
        feh, own_means, components, weights, stretch_folds, first.preprocessing)

    first_manifest = next(iter(manifests.values()))
    manifest = ModelManifest(
        name=name,
        manifest_version=MANIFEST_VERSION,
        architecture="+".join(components),
        components=[{"name": c, "weight": w} for c, w in components.items()],
        preprocessing=first.preprocessing.to_dict(),
        onnx=first_manifest.onnx,
        training_data=first_manifest.training_data,
        training_domain=_common_domain([m.training_domain or {} for m in manifests.values()]),
        cv_metrics={
            "pooled_out_of_fold": regression_metrics(feh, weighted_mean(own_means, components),
                                                     weights),
            "pooled_peer": (None if dataset.feh_peer is None
                            else regression_metrics(feh, dataset.feh_peer, weights)),
            "components_out_of_fold": {c: regression_metrics(feh, m, weights)
                                       for c, m in own_means.items()},
            "n_stars": len(dataset),
        },
        produced_by=produced_by or "python -m training composite --name " + name
        + " --components " + " ".join(f"{c}={w}" for c, w in components.items()),
        training_commit=git_commit(),
        created=datetime.date.today().isoformat(),
        output_stretch=output_stretch,
        uncertainty_calibration=calibration,
        key_order=MANIFEST_KEYS,
    )
    target = Path(models_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    manifest.write(target / "manifest.json")

    recorded = Table({"source_id": dataset.stars["source_id"], "fold": stretch_folds})
    for c in components:
        recorded[f"feh_{c}"] = own_means[c]
        recorded[f"fold_{c}"] = folds[c]
    recorded["feh_pred"] = served
    (Path(results_dir) / name).mkdir(parents=True, exist_ok=True)
    recorded.write(Path(results_dir) / name / "oof_predictions.ecsv", overwrite=True)
    return manifest


def rank_combinations(names, dataset, *, max_size=4, results_dir=RESULTS_DIR):
    """Score every equal-weight mean of up to ``max_size`` recorded models, best first.

    Uses the out-of-fold predictions recorded in ``results_dir/<name>``, each
    combination stretched and cross-fitted on the folds of the first name, as
    `compose` does.

    Parameters
    ----------
    names : list of str
        Models with recorded results; the first one's folds cross-fit the stretch.
    dataset : `training.data.Dataset`
    max_size : int
        Largest number of models in a combination.

    Returns
    -------
    `~astropy.table.Table`
        One row per combination (``models``, R², RMSE, MAE, wRMSE, wMAE),
        sorted by RMSE.
    """
    feh = dataset.feh
    weights = density_weights(feh)
    predictions = {name: recorded_column(name, dataset, "feh_pred", results_dir)
                   for name in names}
    folds = recorded_folds(names[0], dataset, results_dir)
    rows = []
    for size in range(1, max_size + 1):
        for combination in itertools.combinations(names, size):
            mean = np.mean([predictions[n] for n in combination], axis=0)
            served, _ = crossfit_stretch(feh, mean, weights, folds)
            rows.append({"models": "+".join(combination),
                         **regression_metrics(feh, served, weights)})
    table = Table(rows=rows, names=["models", "r2", "rmse", "mae", "wrmse", "wmae"])
    table.sort("rmse")
    return table
