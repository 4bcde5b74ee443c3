"""Copy a finished cross-validation run's ONNX models into the package, with a manifest."""

import datetime
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from astropy.table import Table

from .export import INPUT_NAME, OPSET

__all__ = ["MODELS_DIR", "RESULTS_DIR", "ship_run", "record_results"]

MODELS_DIR = Path(__file__).resolve().parents[1] / "rrlyrae_metallicity" / "data" / "models"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Columns of the out-of-fold table kept in the repository: our predictions only,
# never the shared data's labels or light curves (joined back on source_id).
_RECORDED_COLUMNS = ("source_id", "fold", "feh_pred", "feh_pred_members", "amplitude")

TRAINING_DATA = {
    "name": "gaia_dr2_rrab_g",
    "description": "Gaia DR2 G-band light curves of 3772 RRab stars toward the bulge and "
                   "southern disk: the development set of Dekany & Grebel (2022, ApJS 261, 33)",
    "label": "photometric [Fe/H] from OGLE I-band light curves (Dekany, Grebel & Pojmanski "
             "2021), on the high-resolution spectroscopic scale of Crestani et al. (2021)",
    "label_unit": "dex",
}


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                               check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _training_domain(run_dir, periods_table):
    """Ranges of the training set, for out-of-domain flags at inference time."""
    oof = Table.read(Path(run_dir) / "oof_predictions.ecsv")
    domain = {
        "amplitude_mag": [float(np.min(oof["amplitude"])), float(np.max(oof["amplitude"]))],
        "feh_dex": [float(np.min(oof["feh"])), float(np.max(oof["feh"]))],
    }
    if periods_table is not None:
        domain["period_d"] = [float(np.min(periods_table["period"])),
                              float(np.max(periods_table["period"]))]
        domain["n_epochs"] = [int(np.min(periods_table["n_epochs"])),
                              int(np.max(periods_table["n_epochs"]))]
    return domain


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
        The training data folder (for the period and epoch-count ranges).
    models_dir : path-like
        Where the package keeps its models (tests point it elsewhere).

    Returns
    -------
    Path
        The written ``manifest.json``.
    """
    from .data import DEFAULT_DATA_DIR

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = metrics["config"]
    models_dir = Path(models_dir)
    target = models_dir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    members = []
    for k in range(config["n_folds"]):
        for s in range(config["members_per_fold"]):
            source = run_dir / f"fold_{k}" / f"member_{s}.onnx"
            if not source.exists():
                raise FileNotFoundError(f"{source} is missing: run the cv command to the end first")
            file_name = f"fold{k}_member{s}.onnx"
            shutil.copyfile(source, target / file_name)
            history = json.loads((run_dir / f"fold_{k}" / f"member_{s}.json").read_text())
            members.append({"file": file_name, "fold": k, "member": s, "seed": history["seed"],
                            "sha256": _sha256(target / file_name)})
    stars_path = Path(data_dir or DEFAULT_DATA_DIR) / "stars.ecsv"
    stars = Table.read(stars_path) if stars_path.exists() else None
    manifest = {
        "name": name,
        "manifest_version": 1,
        "architecture": config["architecture"],
        "preprocessing": config["preprocessing"],
        "onnx": {"input_name": INPUT_NAME, "opset": OPSET},
        "members": members,
        "training_data": TRAINING_DATA,
        "training_domain": _training_domain(run_dir, stars),
        "training_config": config,
        "cv_metrics": {key: metrics[key] for key in
                       ("validation", "training", "peer_same_folds", "pooled_out_of_fold",
                        "pooled_peer", "n_stars", "wall_time_s")},
        # Read by rrlyrae_metallicity.uncertainty at prediction time (absent for
        # runs made before the calibration existed: the raw spread is reported).
        "uncertainty_calibration": metrics.get("uncertainty"),
        "produced_by": produced_by or f"python -m training cv --run-dir {run_dir}",
        "training_commit": _git_commit(),
        "created": datetime.date.today().isoformat(),
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
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
