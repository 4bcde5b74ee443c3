"""Copy a finished cross-validation run's ONNX models into the package, with a manifest."""

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.manifest import MANIFEST_VERSION, ModelManifest
from rrlyrae_metallicity.preprocessing import PreprocessingConfig, prepare_inputs

from .cv import member_file
from .export import INPUT_NAME, OPSET
from .files import git_commit, sha256
from .paths import MODELS_DIR, RESULTS_DIR

__all__ = ["MANIFEST_KEYS", "ship_run", "record_results", "data_domain", "update_training_domain"]

# Columns of the out-of-fold table kept in the repository: our predictions only,
# never the shared data's labels or light curves (joined back on source_id).
_RECORDED_COLUMNS = ("source_id", "fold", "feh_pred", "feh_pred_members", "amplitude")

#: Keys of a shipped ensemble's manifest, in the order written. Listed, so that
#: a run made before the uncertainty calibration existed, or a checkout without
#: git, still records ``uncertainty_calibration`` and ``training_commit`` (null).
MANIFEST_KEYS = ("name", "manifest_version", "architecture", "preprocessing", "onnx", "members",
                 "training_data", "training_domain", "training_config", "cv_metrics",
                 "uncertainty_calibration", "produced_by", "training_commit", "created")

TRAINING_DATA = {
    "name": "gaia_dr2_rrab_g",
    "description": "Gaia DR2 G-band light curves of 3772 RRab stars toward the bulge and "
                   "southern disk: the development set of Dekany & Grebel (2022, ApJS 261, 33)",
    "label": "photometric [Fe/H] from OGLE I-band light curves (Dekany, Grebel & Pojmanski "
             "2021), on the high-resolution spectroscopic scale of Crestani et al. (2021)",
    "label_unit": "dex",
}


def _training_domain(run_dir, dataset):
    """Ranges of the training set, for out-of-domain flags at inference time."""
    oof = Table.read(Path(run_dir) / "oof_predictions.ecsv")
    domain = {
        "amplitude_mag": [float(np.min(oof["amplitude"])), float(np.max(oof["amplitude"]))],
        "feh_dex": [float(np.min(oof["feh"])), float(np.max(oof["feh"]))],
    }
    if dataset is not None:
        config = json.loads((Path(run_dir) / "metrics.json").read_text())["config"]
        domain.update(data_domain(dataset, config["preprocessing"]))
    return domain


def data_domain(dataset, preprocessing):
    """Ranges of period, epoch count and phase coverage of the training light curves.

    The phase coverage is measured as the package measures a user's star
    (`rrlyrae_metallicity.preprocessing.SmoothedLightCurve.max_phase_gap`, on
    the cleaned, merged epochs), so that the two compare like with like.

    Parameters
    ----------
    dataset : `training.data.Dataset`
        The training set.
    preprocessing : dict
        The model's `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
        parameters.

    Returns
    -------
    dict
        ``period_d``, ``n_epochs`` and ``max_phase_gap`` (cycles), each
        ``[min, max]``.
    """
    _, smoothed, errors = prepare_inputs(dataset.phases, dataset.mags, dataset.periods,
                                         PreprocessingConfig(**preprocessing))
    failed = [e for e in errors if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} training light curves failed: {failed[:3]}")
    gaps = [curve.max_phase_gap for curve in smoothed]
    return {"period_d": [float(np.min(dataset.periods)), float(np.max(dataset.periods))],
            "n_epochs": [int(np.min(dataset.stars["n_epochs"])),
                         int(np.max(dataset.stars["n_epochs"]))],
            "max_phase_gap": [float(np.min(gaps)), float(np.max(gaps))]}


def update_training_domain(name, dataset, *, models_dir=MODELS_DIR):
    """Recompute the data ranges in a shipped model's ``training_domain``.

    The amplitude and [Fe/H] ranges come from the run's out-of-fold table and
    are kept; period, epoch count and phase coverage are measured again on
    ``dataset``. The manifest's checksums cover the ONNX files only, so the
    members stay verified. ``python -m training domain --name NAME`` runs it.

    Parameters
    ----------
    name : str
        A model in ``models_dir``.
    dataset : `training.data.Dataset`
        The training set the model was trained on.
    models_dir : path-like
        Where the package keeps its models.

    Returns
    -------
    dict
        The ``training_domain`` written.
    """
    path = Path(models_dir) / name / "manifest.json"
    manifest = ModelManifest.read(path)
    if manifest.training_domain is None:
        manifest.training_domain = {}
    manifest.training_domain.update(data_domain(dataset, manifest.preprocessing))
    manifest.write(path)
    return manifest.training_domain


def ship_run(run_dir, name, *, produced_by=None, make_default=False, data_dir=None,
             models_dir=MODELS_DIR):
    """Copy the ONNX members of ``run_dir`` to ``rrlyrae_metallicity/data/models/<name>``.

    Parameters
    ----------
    run_dir : path-like
        A finished run of `training.cv.run_cross_validation` (``metrics.json`` present).
    name : str
        Model name, as passed to ``predict_feh(model=...)``.
    produced_by : str, optional
        The command that produced the run, recorded in the manifest.
    make_default : bool
        Also record ``name`` as the package's default model.
    data_dir : path-like, optional
        The training data folder (for the period, epoch-count and phase-coverage
        ranges; left out of the manifest when the data are absent).
    models_dir : path-like
        Where the package keeps its models (tests point it elsewhere).

    Returns
    -------
    Path
        The written ``manifest.json``.
    """
    from .data import DEFAULT_DATA_DIR, load_dataset

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = metrics["config"]
    models_dir = Path(models_dir)
    target = models_dir / name
    sources = {(k, s): member_file(run_dir, k, s, ".onnx")
               for k in range(config["n_folds"]) for s in range(config["members_per_fold"])}
    # Check every member before touching the shipped model, which a failure must leave intact.
    if metrics.get("export_failures"):
        failure = metrics["export_failures"][0]
        raise ValueError(f"fold {failure['fold']} member {failure['member']} of {run_dir} failed "
                         f"the ONNX check and cannot be shipped: {failure['message']}")
    for source in sources.values():
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: run the cv command to the end first")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    members = []
    for (k, s), source in sources.items():
        file_name = f"fold{k}_member{s}.onnx"
        shutil.copyfile(source, target / file_name)
        history = json.loads(member_file(run_dir, k, s, ".json").read_text())
        members.append({"file": file_name, "fold": k, "member": s, "seed": history["seed"],
                        "sha256": sha256(target / file_name)})
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    has_data = (data_dir / "stars.ecsv").exists() and (data_dir / "lightcurves.ecsv").exists()
    dataset = load_dataset(data_dir) if has_data else None
    manifest = ModelManifest(
        name=name,
        manifest_version=MANIFEST_VERSION,
        architecture=config["architecture"],
        preprocessing=config["preprocessing"],
        onnx={"input_name": INPUT_NAME, "opset": OPSET},
        members=members,
        training_data=TRAINING_DATA,
        training_domain=_training_domain(run_dir, dataset),
        training_config=config,
        cv_metrics={key: metrics[key] for key in
                    ("validation", "training", "peer_same_folds", "pooled_out_of_fold",
                     "pooled_peer", "n_stars", "wall_time_s")},
        # Read by rrlyrae_metallicity.uncertainty at prediction time (null for
        # runs made before the calibration existed: the raw spread is reported).
        uncertainty_calibration=metrics.get("uncertainty"),
        produced_by=produced_by or f"python -m training cv --run-dir {run_dir}",
        training_commit=git_commit(),
        created=datetime.date.today().isoformat(),
        key_order=MANIFEST_KEYS,
    )
    manifest.write(target / "manifest.json")
    if make_default:
        (models_dir / "default.json").write_text(json.dumps({"default": name}, indent=2) + "\n")
    return target / "manifest.json"


def record_results(run_dir, name, *, results_dir=RESULTS_DIR):
    """Keep a run's metrics and out-of-fold predictions in ``training/results/<name>``.

    Parameters
    ----------
    run_dir : path-like
        A finished cross-validation run.
    name : str
        Model name.
    results_dir : path-like
        Parent folder of the recorded results.

    Returns
    -------
    Path
        The folder written.
    """
    run_dir = Path(run_dir)
    target = Path(results_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "metrics.json", target / "metrics.json")
    oof = Table.read(run_dir / "oof_predictions.ecsv")
    oof[[c for c in _RECORDED_COLUMNS if c in oof.colnames]].write(target / "oof_predictions.ecsv", overwrite=True)
    return target
