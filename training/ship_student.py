"""Ship a finished distillation run (`training.distill`) as one package model.

The model folder holds the final student, the one network served, and the
fold students (``crossfit_members``), never served: they reproduce the
out-of-fold predictions that the model's accuracy, stretch and uncertainty
are measured on (`training.served.own_fold_members`), so ``calibrate`` and
``error-model`` work on a distilled model as on an ensemble.
"""

import datetime
import json
from pathlib import Path

import numpy as np

from rrlyrae_metallicity.manifest import MANIFEST_VERSION, ModelManifest

from .calibration import uncertainty_calibration
from .distill import FINAL
from .export import INPUT_NAME, OPSET
from .files import git_commit
from .paths import MODELS_DIR
from .ship import (ShipError, check_model_name, check_replace, copy_network,
                   fresh_model_folder, quality_check, read_run, run_training_domain,
                   training_data_entry)

__all__ = ["is_distillation_run", "ship_student", "STUDENT_MANIFEST_KEYS"]

#: Keys of a distilled model's manifest, in the order written.
STUDENT_MANIFEST_KEYS = ("name", "manifest_version", "architecture", "preprocessing", "onnx",
                         "members", "crossfit_members", "training_data", "training_domain",
                         "training_config", "cv_metrics", "quality", "uncertainty_calibration",
                         "produced_by", "training_commit", "created")


def is_distillation_run(run_dir):
    """Whether ``run_dir`` is a `training.distill` run (it holds the teacher's labels)."""
    return (Path(run_dir) / "teacher.npy").exists()


def ship_student(run_dir, name, *, produced_by=None, make_default=False, data_dir=None,
                 models_dir=MODELS_DIR, replace=False, label_description=None):
    """Copy a distillation run's students to ``models_dir/<name>`` with a manifest.

    Parameters are those of `training.ship.ship_run`; ``run_dir`` is a
    finished `training.distill.run_distillation` run.

    Returns
    -------
    Path
        The written ``manifest.json``.

    Raises
    ------
    ShipError
        If the run is unfinished, a student is missing, the model exists and
        ``replace`` is false, or the data are not those of the run.
    """
    check_model_name(name)
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        raise ShipError(f"{run_dir} has no metrics.json: the distillation is unfinished (run "
                        "the distill command to the end first)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = metrics["config"]
    folds = np.load(run_dir / "folds.npy")
    keys = [*range(int(folds.max()) + 1), FINAL]
    sources = {key: run_dir / f"student_{key}" / "student.onnx" for key in keys}
    for source in sources.values():
        if not source.exists():
            raise ShipError(f"{source} is missing: run the distill command to the end first")
    models_dir = Path(models_dir)
    target = models_dir / name
    check_replace(models_dir, name, replace)
    dataset, record, oof, recorded_command = read_run(run_dir, data_dir)
    fresh_model_folder(target)
    served = {"file": "student.onnx",
              **copy_network(sources[FINAL], target, "student.onnx")}
    crossfit = [{"file": f"fold{k}_student.onnx",
                 **copy_network(sources[k], target, f"fold{k}_student.onnx"), "fold": k}
                for k in keys if k != FINAL]
    teacher = ModelManifest.read(_teacher_manifest(config["teacher"]))
    manifest = ModelManifest(
        name=name,
        manifest_version=MANIFEST_VERSION,
        architecture="gru",
        preprocessing=config["preprocessing"],
        onnx={"input_name": INPUT_NAME, "opset": OPSET},
        members=[{**served, "trained_on": "every star, taught by every teacher member"}],
        crossfit_members=crossfit,
        training_data=training_data_entry(record, label_description),
        training_domain=run_training_domain(run_dir, dataset),
        training_config={"distilled_from": teacher.name, "teacher_produced_by":
                         teacher.produced_by, **config},
        cv_metrics={key: metrics[key] for key in
                    ("pooled_out_of_fold", "teacher_out_of_fold", "student_minus_teacher_rms_dex",
                     "pooled_peer", "median_baseline", "n_stars", "wall_time_s")},
        quality=quality_check(oof, metrics),
        # A single network has no members' spread: σ is the floor until
        # `calibrate` and `error-model` fit it on the fold students' predictions.
        uncertainty_calibration=uncertainty_calibration(
            np.asarray(oof["feh"]), np.asarray(oof["feh_pred"])[:, None], folds),
        produced_by=produced_by or recorded_command,
        training_commit=git_commit(),
        created=datetime.date.today().isoformat(),
        key_order=STUDENT_MANIFEST_KEYS,
    )
    manifest.write(target / "manifest.json")
    if make_default:
        (models_dir / "default.json").write_text(json.dumps({"default": name}, indent=2) + "\n")
    return target / "manifest.json"


def _teacher_manifest(teacher):
    from rrlyrae_metallicity.registry import model_directory, resolve_model_name

    return model_directory(resolve_model_name(teacher)) / "manifest.json"
