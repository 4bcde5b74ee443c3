"""Copy a finished cross-validation run's ONNX models into the package, with a manifest."""

import datetime
import json
import re
import shutil
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.manifest import MANIFEST_VERSION, ModelManifest
from rrlyrae_metallicity.preprocessing import PreprocessingConfig

from .cv import member_file
from .data import usable_epochs
from .export import INPUT_NAME, OPSET
from .files import git_commit, sha256
from .native_onnx import native_file
from .paths import MODELS_DIR, RESULTS_DIR
from .served import training_batch

__all__ = ["MANIFEST_KEYS", "ShipError", "ship_run", "record_results", "data_domain",
           "update_training_domain", "quality_check", "check_model_name", "shipped_data_dir",
           "checked_run_data", "training_data_entry", "run_training_domain", "check_replace",
           "read_run", "fresh_model_folder", "copy_network"]

# Columns of the out-of-fold table kept in the repository: our predictions only,
# never the shared data's labels or light curves (joined back on source_id).
_RECORDED_COLUMNS = ("source_id", "fold", "feh_pred", "feh_pred_members", "feh_teacher",
                     "amplitude")

#: Keys of a shipped ensemble's manifest, in the order written. Listed, so that
#: a run made before the uncertainty calibration existed, or a checkout without
#: git, still records ``uncertainty_calibration`` and ``training_commit`` (null).
MANIFEST_KEYS = ("name", "manifest_version", "architecture", "preprocessing", "onnx", "members",
                 "training_data", "training_domain", "training_config", "cv_metrics", "quality",
                 "uncertainty_calibration", "produced_by", "training_commit", "created")


class ShipError(ValueError):
    """A run that cannot be shipped as asked, said in one line."""


#: What the manifest says of the bundled training set (recognised by its tables' sha256).
TRAINING_DATA = {
    "name": "gaia_dr2_rrab_g",
    "description": "Gaia DR2 G-band light curves of 3772 RRab stars toward the bulge and "
                   "southern disk: the development set of Dekany & Grebel (2022, ApJS 261, 33)",
    "label": "photometric [Fe/H] from OGLE I-band light curves (Dekany, Grebel & Pojmanski "
             "2021), on the high-resolution spectroscopic scale of Crestani et al. (2021)",
    "label_unit": "dex",
}


def run_training_domain(run_dir, dataset):
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
    smoothed = training_batch(dataset, PreprocessingConfig(**preprocessing)).smoothed
    gaps = [curve.max_phase_gap for curve in smoothed]
    n_epochs = [usable_epochs(p, m) for p, m in zip(dataset.phases, dataset.mags)]
    return {"period_d": [float(np.min(dataset.periods)), float(np.max(dataset.periods))],
            "n_epochs": [int(np.min(n_epochs)), int(np.max(n_epochs))],
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


#: What a model name may be: a folder name usable as ``predict_feh(model=NAME)``.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(name):
    """Refuse a name that is not a plain folder name, or that ``model=NAME`` could not reach.

    Raises
    ------
    ShipError
        For ``default`` (it names the default model), a path, or other characters.
    """
    if name == "default" or not _MODEL_NAME.match(name):
        raise ShipError(f"{name!r} cannot name a model: use letters, digits, '_', '.' and '-' "
                        "(not a path, and not 'default', which names the default model)")


def shipped_data_dir(name, *, models_dir=MODELS_DIR):
    """The data folder a shipped model records (``training_data.path``), or `None`."""
    manifest = ModelManifest.read(Path(models_dir) / name / "manifest.json")
    path = (manifest.training_data or {}).get("path")
    return Path(path) if path else None


def checked_run_data(run_dir, data_dir):
    """The run's data, read again and checked against the checksums it recorded.

    Returns the `training.data.Dataset` (`None` when the data are not on this
    machine) and the run's ``data.json`` record (empty for an older run).
    """
    from .data import DEFAULT_DATA_DIR, TrainingDataError, load_dataset

    record_path = Path(run_dir) / "data.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if data_dir is None and record_path.exists() and "path" not in record:
        return None, record  # a data set made in memory: no folder to measure again
    # Runs made before data.json existed were trained on the bundled set.
    data_dir = Path(data_dir or record.get("path") or DEFAULT_DATA_DIR)
    try:
        dataset = load_dataset(data_dir, peer_column=record.get("peer_column", "auto"))
    except TrainingDataError:
        if data_dir.exists():
            raise
        return None, record
    if "files" in record and dataset.record["files"] != record["files"]:
        raise ShipError(f"the tables in {data_dir} are not those {run_dir} was trained on "
                        "(their sha256 differ from data.json); give --data-dir the run's data")
    return dataset, record if "files" in record else {**dataset.record, **record}


def check_replace(models_dir, name, replace):
    """Refuse to overwrite model ``name`` in ``models_dir`` unless ``replace``."""
    if (Path(models_dir) / name).exists() and not replace:
        raise ShipError(f"a model called {name!r} exists in {models_dir}; choose another "
                        "--name or pass --replace to overwrite it")


def read_run(run_dir, data_dir):
    """What a finished run recorded, for its manifest.

    Returns
    -------
    dataset, record
        `checked_run_data`.
    oof : `~astropy.table.Table`
        Its ``oof_predictions.ecsv``.
    command : str or None
        The command in its ``command.json`` (`None` for an older run).
    """
    dataset, record = checked_run_data(run_dir, data_dir)
    oof = Table.read(Path(run_dir) / "oof_predictions.ecsv")
    command_path = Path(run_dir) / "command.json"
    command = (json.loads(command_path.read_text())["command"]
               if command_path.exists() else None)
    return dataset, record, oof, command


def copy_network(source, target_dir, file_name):
    """Copy one ONNX network, and its native GRU rewrite if it has one, into a model folder.

    Returns
    -------
    dict
        Its manifest entry's ``sha256``, and ``native_file`` and
        ``native_sha256`` with a rewrite (`training.native_onnx`: the graph
        the package runs for calls on a few stars).
    """
    shutil.copyfile(source, target_dir / file_name)
    entry = {"sha256": sha256(target_dir / file_name)}
    native = Path(native_file(source))
    if native.exists():
        entry["native_file"] = native_file(file_name)
        shutil.copyfile(native, target_dir / entry["native_file"])
        entry["native_sha256"] = sha256(target_dir / entry["native_file"])
    return entry


def fresh_model_folder(target):
    """Empty ``target`` (a model folder being replaced) or create it."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)


def training_data_entry(record, label_description):
    """The manifest's ``training_data``: what the run was trained on, from its record."""
    from .data import DEFAULT_DATA_DIR

    description = label_description or record.get("label_description")
    bundled = (DEFAULT_DATA_DIR / "stars.ecsv").exists() and record.get("files") == {
        name: sha256(DEFAULT_DATA_DIR / name) for name in ("stars.ecsv", "lightcurves.ecsv")}
    if not record or (bundled and not description):
        data = dict(TRAINING_DATA)
    elif "path" not in record:
        data = {"name": "in_memory",
                "description": "a training.data.Dataset made in memory (no data folder recorded)",
                "label": description or "not described", "label_unit": "dex"}
    else:
        folder = Path(record["path"])
        data = {"name": folder.name,
                "description": f"{record['n_stars']} labelled light curves from {folder} "
                               f"({', '.join(record['files'])})",
                "label": description or "not described (python -m training cv "
                                        "--label-description says what the labels are)",
                "label_unit": "dex"}
    if record:
        data.update({key: record[key] for key in ("path", "files", "n_stars", "peer_column")
                     if key in record})
    return data


def quality_check(oof, metrics):
    """The model's out-of-fold error against predicting every star by the median label.

    Parameters
    ----------
    oof : `~astropy.table.Table`
        A run's ``oof_predictions.ecsv`` (``feh``, ``fold``, ``weight``).
    metrics : dict
        Its ``metrics.json``.

    Returns
    -------
    dict
        ``rmse``, ``mae`` and ``r2`` out of fold, the median baseline's
        (`training.metrics.median_baseline`), ``better_than_median`` and, when
        it is not, a ``warning`` sentence.
    """
    from .metrics import median_baseline

    ours = metrics["pooled_out_of_fold"]
    baseline = median_baseline(oof["feh"], oof["fold"], oof["weight"])
    better = bool(ours["rmse"] < baseline["rmse"] and ours["mae"] < baseline["mae"])
    quality = {"rmse": ours["rmse"], "mae": ours["mae"], "r2": ours["r2"],
               "median_baseline_rmse": baseline["rmse"], "median_baseline_mae": baseline["mae"],
               "better_than_median": better}
    if not better:
        quality["warning"] = (
            f"no better than predicting the median label: out-of-fold RMSE "
            f"{ours['rmse']:.3f} dex and MAE {ours['mae']:.3f} dex against {baseline['rmse']:.3f} "
            f"and {baseline['mae']:.3f} dex for the median (R² {ours['r2']:.2f}); its [Fe/H] "
            "carry no information from the light curves (too few stars, too short a training, "
            "or labels unrelated to the light curves)")
    return quality


def ship_run(run_dir, name, *, produced_by=None, make_default=False, data_dir=None,
             models_dir=MODELS_DIR, replace=False, label_description=None):
    """Copy the ONNX members of ``run_dir`` to ``rrlyrae_metallicity/data/models/<name>``.

    The manifest describes the data the run recorded in ``data.json``
    (folder, tables and their sha256, stars, label description), its training
    domain measured on those data, the run's full command, and how the model
    compares with predicting the median label (``quality``).

    Parameters
    ----------
    run_dir : path-like
        A finished run of `training.cv.run_cross_validation` (``metrics.json`` present).
    name : str
        Model name, as passed to ``predict_feh(model=...)``.
    produced_by : str, optional
        The command that produced the run; by default the one recorded in
        ``command.json``.
    make_default : bool
        Also record ``name`` as the package's default model.
    data_dir : path-like, optional
        The training data folder; by default the one in ``data.json`` (for
        older runs, the bundled set). Its tables must be those the run
        recorded. Without the data on this machine the period, epoch-count
        and phase-coverage ranges are left out.
    models_dir : path-like
        Where the models go (the package's own by default).
    replace : bool
        Replace a model of the same name; without it an existing model is
        never overwritten.
    label_description : str, optional
        What the labels are; by default the one given to ``cv``.

    Returns
    -------
    Path
        The written ``manifest.json``.

    Raises
    ------
    ShipError
        If the model exists and ``replace`` is false, a member is missing or
        failed its ONNX check, or the data are not those of the run.
    """
    check_model_name(name)
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        raise ShipError(f"{run_dir} has no metrics.json: it is not a finished cv run (run the "
                        "cv command to the end first)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = metrics["config"]
    models_dir = Path(models_dir)
    target = models_dir / name
    check_replace(models_dir, name, replace)
    sources = {(k, s): member_file(run_dir, k, s, ".onnx")
               for k in range(config["n_folds"]) for s in range(config["members_per_fold"])}
    # Check every member before touching the shipped model, which a failure must leave intact.
    if metrics.get("export_failures"):
        failure = metrics["export_failures"][0]
        raise ShipError(f"fold {failure['fold']} member {failure['member']} of {run_dir} failed "
                        f"the ONNX check and cannot be shipped: {failure['message']}")
    for source in sources.values():
        if not source.exists():
            raise ShipError(f"{source} is missing: run the cv command to the end first "
                            "(without --no-export)")
    dataset, record, oof, recorded_command = read_run(run_dir, data_dir)
    fresh_model_folder(target)
    members = []
    for (k, s), source in sources.items():
        file_name = f"fold{k}_member{s}.onnx"
        history = json.loads(member_file(run_dir, k, s, ".json").read_text())
        members.append({"file": file_name, "fold": k, "member": s, "seed": history["seed"],
                        **copy_network(source, target, file_name)})
    manifest = ModelManifest(
        name=name,
        manifest_version=MANIFEST_VERSION,
        architecture=config["architecture"],
        preprocessing=config["preprocessing"],
        onnx={"input_name": INPUT_NAME, "opset": OPSET},
        members=members,
        training_data=training_data_entry(record, label_description),
        training_domain=run_training_domain(run_dir, dataset),
        training_config=config,
        cv_metrics={key: metrics[key] for key in
                    ("validation", "training", "peer_same_folds", "pooled_out_of_fold",
                     "pooled_peer", "n_stars", "wall_time_s")},
        quality=quality_check(oof, metrics),
        # Read by rrlyrae_metallicity.uncertainty at prediction time (null for
        # runs made before the calibration existed: the raw spread is reported).
        uncertainty_calibration=metrics.get("uncertainty"),
        produced_by=(produced_by or recorded_command
                     or f"python -m training cv --run-dir {run_dir}"),
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
