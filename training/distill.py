"""Knowledge distillation of a shipped ensemble into one network, resumable epoch by epoch.

Cross-fitted, so that the accuracy reported is out of fold ("One model as
good as ten"):

1. The teacher of outer fold k is the ensemble's members of fold k, the only
   ones that never saw fold k's labels. Each labels every star from the star's
   own, complete light curve (`teacher_labels`).
2. The student of fold k trains on the other folds' stars, starting from
   the teacher's own member 0 of fold k (``init="teacher"``), on the
   teacher's pre-processing. Varied copies of the light curves
   (``copies``; `training.augment`: fewer epochs, more noise, an outlier
   epoch, another phase zero point) can be added, each carrying the
   teacher's label of the star's own curve: what the student then learns is
   the complete curve's [Fe/H] from a degraded one. On the Gaia training set
   they made it less accurate on real curves (docs: *Retraining*), so none
   are added by default.
3. Each student's predictions on its held-out fold are the out-of-fold
   predictions reported beside the teacher's; a final student, trained on
   every star with the whole ensemble as teacher, is what ships.

Layout of a run directory::

    run_dir/
      config.json                 the DistillConfig (a resumed run must match it)
      data.json, command.json     the data and the full command (as for ``cv``)
      folds.npy                   the teacher's recorded fold of every star
      teacher.npy                 teacher labels: row k from fold k's members, the
                                  last row from every member (unstretched)
      inputs.npz                  the student's inputs of every version of every
                                  star (``inputs``, ``source``, ``version``)
      student_<k>/ , student_final/
        checkpoint.keras, best.weights.h5, state.json
                                  written after every epoch while it trains
        student.keras, student.json
                                  the trained student (best epoch) and its history
        student.onnx, student.native.onnx
                                  its verified ONNX export and native GRU rewrite
      metrics.json                student and teacher out of fold, peer
      oof_predictions.ecsv        out-of-fold prediction of every star

An interrupted run continues from the last finished epoch of the student it
was training: the optimiser state, the learning rate, the early-stopping
counters and the best weights are all in the checkpoint, and every epoch's
shuffle is seeded by its number, so a resumed run ends as an uninterrupted one
would.
"""

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.preprocessing import PreprocessingConfig, same_input_format

from .augment import varied_copies
from .data import ignore_sigint, prepare_chunk, density_weights
from .cv import record_run_data
from .errors import RunError, differences
from .files import write_json
from .folds import strata
from .member import export_member, predict
from .metrics import median_baseline, regression_metrics
from .paths import RESULTS_DIR

__all__ = ["DistillConfig", "teacher_labels", "student_versions", "run_distillation",
           "FINAL"]

#: Name of the student trained on every star (the one that ships).
FINAL = "final"


@dataclass
class DistillConfig:
    """Everything that defines a distillation run.

    Parameters
    ----------
    teacher : str
        A shipped plain ensemble (`rrlyrae_metallicity.load_model` name or folder)
        with recorded folds (``training/results/<teacher>``).
    init : str
        Where the students start: ``"teacher"``, the teacher's own member 0 of
        fold k (which never saw fold k; rebuilt from its ONNX export,
        `training.native_onnx.keras_member`), fold 0's for the final student;
        the path of a finished ``cv`` run of the student's pre-processing
        (its fold k member 0, likewise); or ``"random"``.
    copies : int
        Varied copies of every training light curve, besides its own.
    seed : int
        Seed of the copies, the validation splits, the weights and the shuffles.
    preprocessing : dict or None
        The student's `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`;
        `None`: the teacher's (which ``init="teacher"`` requires).
    units : list of int
        Units of the student's three GRU layers (used with ``init="random"``).
    learning_rate, batch_size, max_epochs, patience, reduce_lr_patience : number
        Adam's starting rate, mini-batch size, epoch limit, early-stopping
        patience and the epochs without improvement after which the rate is
        halved.
    validation_fraction : float
        Fraction of a student's stars (all their versions) held out for early stopping.
    """

    teacher: str = "gru"
    init: str = "teacher"
    copies: int = 0
    seed: int = 1
    preprocessing: dict | None = None
    units: list = field(default_factory=lambda: [40, 32, 16])
    learning_rate: float = 0.002
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 8
    reduce_lr_patience: int = 4
    validation_fraction: float = 0.1

    def to_dict(self):
        return asdict(self)


def teacher_labels(ensemble, inputs, folds):
    """The teacher's [Fe/H] of every star: of each fold's members, and of all members.

    Parameters
    ----------
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        A plain ensemble (members by fold).
    inputs : ndarray, shape (n, length, 2)
        The stars' own curves, pre-processed as the ensemble serves them.
    folds : ndarray of int
        The fold of every star (its members' held-out fold).

    Returns
    -------
    ndarray, shape (n_folds + 1, n)
        Row k: the mean of fold k's members (unstretched); last row: the
        mean of every member.
    """
    members = ensemble.predict_members(inputs)
    member_folds = np.asarray(ensemble.member_folds)
    rows = []
    for k in range(int(np.max(folds)) + 1):
        if not (member_folds == k).any():
            raise RunError(f"the teacher {ensemble.name!r} has no members of fold {k}")
        rows.append(members[member_folds == k].mean(axis=0))
    return np.vstack(rows + [members.mean(axis=0)])


def student_versions(dataset, config, *, workers=None):
    """The student's inputs of every star's own curve and of its varied copies.

    Parameters
    ----------
    dataset : `training.data.Dataset`
    config : `DistillConfig`
    workers : int, optional
        Processes (all cores by default).

    Returns
    -------
    inputs : ndarray, shape (m, length, 2)
    source : ndarray of int, shape (m,)
        The star (index into ``dataset``) of each row.
    version : ndarray of int, shape (m,)
        0 for the star's own curve, 1 to ``copies`` for a copy.
    amplitudes : ndarray, shape (n_stars,)
        Of the stars' own smoothed curves.

    Raises
    ------
    RunError
        If a star's own curve fails the pre-processing (a copy that fails is
        left out).
    """
    prep = PreprocessingConfig(**config.preprocessing)
    versions = [(dataset.phases, dataset.mags)] + varied_copies(
        dataset.phases, dataset.mags, config.copies, config.seed)
    chunk = 100
    jobs = [(phases[i:i + chunk], mags[i:i + chunk], dataset.periods[i:i + chunk],
             prep.to_dict(), None)
            for phases, mags in versions for i in range(0, len(dataset), chunk)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                             initializer=ignore_sigint) as pool:
        results = list(pool.map(prepare_chunk, jobs))
    inputs = np.concatenate([r[0] for r in results])
    failed = np.array([f is not None for r in results for f in r[2]])
    n = len(dataset)
    source = np.tile(np.arange(n), len(versions))
    version = np.repeat(np.arange(len(versions)), n)
    if failed[:n].any():
        first = next(f for r in results for f in r[2] if f is not None)
        raise RunError(f"{int(failed[:n].sum())} training light curves fail the student's "
                       f"pre-processing, e.g. {first}")
    amplitudes = np.concatenate([r[1] for r in results])[:n]
    keep = ~failed
    return inputs[keep], source[keep], version[keep], amplitudes


# --------------------------------------------------------------------------
# Training one student, checkpointed after every epoch
# --------------------------------------------------------------------------

def _initial_model(config, key, n_folds, inputs, y, teacher_directory):
    """The student before training: a fold member of the teacher or of a cv run, or new."""
    import keras

    from .architectures import build_model
    from .native_onnx import keras_member

    fold = 0 if key == FINAL else key
    if config.init == "teacher":
        members = [m for m in json.loads((teacher_directory / "manifest.json").read_text())
                   ["members"] if m["fold"] == fold]
        model = keras_member(teacher_directory / members[0]["file"], inputs[:256])
    elif config.init == "random":
        model = build_model("gru", inputs.shape[1:], label_mean=float(np.mean(y)),
                            label_std=float(np.std(y)), units=config.units)
    else:
        path = Path(config.init) / f"fold_{fold}" / "member_0.keras"
        if not path.exists():
            raise RunError(f"{path} is missing: --init must be 'teacher', 'random' or a "
                           f"finished cv run with {n_folds} folds")
        model = keras.models.load_model(path)
        if tuple(model.input_shape[1:]) != tuple(inputs.shape[1:]):
            raise RunError(f"the models of {config.init} take inputs of shape "
                           f"{model.input_shape[1:]}, the student's are {inputs.shape[1:]}")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse",
                  jit_compile=False)
    return model


def _seed_epoch(model, epoch_seed):
    """Seed an epoch's shuffle and dropout by its number alone.

    A resumed run then trains as an uninterrupted one would: Keras saves no
    dropout generator state (its counter restarts at 0 on loading).
    """
    import keras

    keras.utils.set_random_seed(epoch_seed)
    generators = [getattr(owner, "seed_generator", None)
                  for layer in model.layers for owner in (layer, getattr(layer, "cell", None))]
    for index, generator in enumerate(g for g in generators if g is not None):
        generator.state.assign(np.array([epoch_seed + index, 0], dtype="int64"))


def _save_atomically(model, path):
    tmp = str(path) + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _train_student(config, student_dir, key, n_folds, fit, validation, seed, log,
                   teacher_directory):
    """Train (or resume, or load) one student; returns the model and its log line."""
    import keras

    final_path = student_dir / "student.keras"
    if final_path.exists():
        return keras.models.load_model(final_path), "trained before, loaded"
    student_dir.mkdir(exist_ok=True)
    (x, y), (val_x, val_y) = fit, validation
    state_path = student_dir / "state.json"
    best_path = student_dir / "best.weights.h5"
    checkpoint = student_dir / "checkpoint.keras"
    if state_path.exists() and checkpoint.exists():
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(checkpoint)
        log(f"student {key}: resuming after epoch {state['epoch']}")
    else:
        keras.utils.set_random_seed(seed)
        model = _initial_model(config, key, n_folds, x, y, teacher_directory)
        start = float(np.mean((predict(model, val_x) - val_y) ** 2))
        state = {"epoch": 0, "best_val_loss": start, "best_epoch": 0, "wait": 0,
                 "lr_wait": 0, "learning_rate": config.learning_rate, "wall_time_s": 0.0,
                 "history": {"loss": [], "val_loss": []}, "start_val_loss": start}
        model.save_weights(best_path)
    while state["epoch"] < config.max_epochs and state["wait"] < config.patience:
        began = time.perf_counter()
        _seed_epoch(model, seed + 7919 * (state["epoch"] + 1))
        history = model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=True,
                            verbose=0)
        val_loss = float(np.mean((predict(model, val_x) - val_y) ** 2))
        state["epoch"] += 1
        state["history"]["loss"].append(float(history.history["loss"][-1]))
        state["history"]["val_loss"].append(val_loss)
        if val_loss < state["best_val_loss"]:
            state.update(best_val_loss=val_loss, best_epoch=state["epoch"], wait=0, lr_wait=0)
            model.save_weights(best_path)
        else:
            state["wait"] += 1
            state["lr_wait"] += 1
            if config.reduce_lr_patience and state["lr_wait"] >= config.reduce_lr_patience:
                state["learning_rate"] = max(state["learning_rate"] / 2, 1e-5)
                model.optimizer.learning_rate.assign(state["learning_rate"])
                state["lr_wait"] = 0
        state["wall_time_s"] += time.perf_counter() - began
        _save_atomically(model, checkpoint)
        write_json(state_path, state)
        if state["epoch"] % 10 == 0:
            log(f"student {key}: epoch {state['epoch']}, loss {state['history']['loss'][-1]:.4f}"
                f", val loss {val_loss:.4f} (best {state['best_val_loss']:.4f} at epoch "
                f"{state['best_epoch']}), learning rate {state['learning_rate']:.2g}")
    model.load_weights(best_path)
    _save_atomically(model, final_path)
    write_json(student_dir / "student.json", {"seed": seed, **state})
    for path in (checkpoint, best_path):
        path.unlink(missing_ok=True)
    return model, (f"{state['epoch']} epochs in {state['wall_time_s']:.0f} s, best val loss "
                   f"{state['best_val_loss']:.4f} (epoch {state['best_epoch']}; "
                   f"{state['start_val_loss']:.4f} before training)")


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

def _record(run_dir, config, dataset, command):
    """Write config.json, data.json and command.json, or check a resumed run against them."""
    path = run_dir / "config.json"
    if path.exists():
        stored = DistillConfig(**json.loads(path.read_text())).to_dict()
        if stored != config.to_dict():
            raise RunError(f"{run_dir} holds a distillation with another configuration "
                           f"({differences(stored, config.to_dict())}); resume it with the "
                           "same options or choose a new --run-dir")
    else:
        write_json(path, config.to_dict())
    record_run_data(run_dir, dataset, None, command)


def _teacher(run_dir, ensemble, dataset, log, results_dir, preprocessing):
    """The teacher's folds and labels, computed once and kept in the run.

    The teacher labels each star from the student's inputs where it can
    read them (the same input format; only the outlier rule may differ), so
    that a student that rejects an epoch learns the teacher's answer
    without it; otherwise from its own.
    """
    from rrlyrae_metallicity.registry import models_directory

    from .served import recorded_folds, training_inputs

    folds_path, labels_path = run_dir / "folds.npy", run_dir / "teacher.npy"
    if folds_path.exists() and labels_path.exists():
        return np.load(folds_path), np.load(labels_path)
    if ensemble.is_composite or ensemble.is_distilled:
        raise RunError(f"the teacher {ensemble.name!r} is a "
                       f"{'composite' if ensemble.is_composite else 'distilled model'}; distil "
                       "a plain ensemble (members by fold)")
    # A package model's results are in training/results; a model shipped with
    # --models-dir keeps them in its own folder (results/), and never borrows a
    # package model's of the same name.
    package = Path(str(models_directory())).resolve() == ensemble.directory.resolve().parent
    record = (Path(results_dir) / ensemble.name if package
              else ensemble.directory / "results") / "oof_predictions.ecsv"
    if not record.exists():
        raise RunError(f"no recorded folds of the teacher {ensemble.name!r} ({record} is "
                       "missing): ship it again from its cv run (python -m training ship "
                       "--run-dir RUN --name NAME --models-dir DIR --replace), which keeps "
                       "them beside the model")
    try:
        folds = recorded_folds(record.parent.name, dataset, record.parent.parent)
    except KeyError as error:
        raise RunError(f"the teacher {ensemble.name!r} was not trained on these stars (star "
                       f"{error} is not in {record}); give --data-dir the teacher's data") \
            from None
    log(f"teacher {ensemble.name!r}: {len(ensemble.sessions)} members, labelling "
        f"{len(dataset)} stars")
    readable = same_input_format(preprocessing, ensemble.preprocessing)
    labels = teacher_labels(ensemble, training_inputs(
        dataset, preprocessing if readable else ensemble.preprocessing), folds)
    np.save(folds_path, folds)
    np.save(labels_path, labels)
    return folds, labels


def _versions(run_dir, dataset, config, log):
    path = run_dir / "inputs.npz"
    if path.exists():
        with np.load(path) as stored:
            return (stored["inputs"], stored["source"], stored["version"],
                    stored["amplitudes"])
    log(f"pre-processing {len(dataset)} light curves and {config.copies} varied copies of each")
    inputs, source, version, amplitudes = student_versions(dataset, config)
    tmp = run_dir / "inputs.tmp.npz"
    np.savez(tmp, inputs=inputs, source=source, version=version, amplitudes=amplitudes)
    os.replace(tmp, path)
    return inputs, source, version, amplitudes


def _split(dataset, stars, config, seed):
    """Stars of a student's fit and validation sets, stratified on [Fe/H]."""
    from sklearn.model_selection import train_test_split

    # Up to 10 [Fe/H] bins, as cv; fewer when the validation set is smaller than that.
    n_bins = int(np.clip(len(stars) * config.validation_fraction, 1, 10))
    return train_test_split(stars, test_size=config.validation_fraction, random_state=seed,
                            stratify=strata(dataset.feh[stars], n_bins))


def run_distillation(dataset, config, run_dir, *, log=print, command=None, export=True,
                     export_atol=1e-5, results_dir=RESULTS_DIR):
    """Distil ``config.teacher`` into one student per fold and a final one, resuming.

    Parameters
    ----------
    dataset : `training.data.Dataset`
        The teacher's training set.
    config : `DistillConfig`
    run_dir : path-like
        Output folder (see the module docstring).
    log : callable
        Receives one line per step.
    command : str, optional
        The command that started the run (``command.json``).
    export : bool
        Export every student to ONNX (and its native GRU rewrite), checked
        against Keras to ``export_atol`` dex.
    results_dir : path-like
        Where a package teacher's recorded folds are
        (``<teacher>/oof_predictions.ecsv``); a teacher in a model folder keeps
        them in its own ``results/``.

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    from rrlyrae_metallicity import load_model

    run_dir = Path(run_dir)
    teacher = load_model(config.teacher)
    if config.preprocessing is None:
        config = replace(config, preprocessing=teacher.preprocessing.to_dict())
    elif config.init == "teacher" and not same_input_format(
            PreprocessingConfig(**config.preprocessing), teacher.preprocessing):
        raise RunError("a student started from the teacher's members must read the teacher's "
                       "input format (only the outlier rule may differ); start it from a cv "
                       "run of its own pre-processing (--init RUN) or at random")
    run_dir.mkdir(parents=True, exist_ok=True)
    _record(run_dir, config, dataset, command)
    folds, labels = _teacher(run_dir, teacher, dataset, log, Path(results_dir),
                             PreprocessingConfig(**config.preprocessing))
    inputs, source, version, amplitudes = _versions(run_dir, dataset, config, log)
    own = np.flatnonzero(version == 0)[np.argsort(source[version == 0])]
    n_folds = int(folds.max()) + 1
    oof = np.full(len(dataset), np.nan)
    wall = 0.0
    for key in [*range(n_folds), FINAL]:
        stars = np.arange(len(dataset)) if key == FINAL else np.flatnonzero(folds != key)
        labels_k = labels[-1] if key == FINAL else labels[key]
        seed = config.seed + 1000 * (n_folds if key == FINAL else key)
        fit_stars, val_stars = _split(dataset, stars, config, seed)
        fit_rows = np.flatnonzero(np.isin(source, fit_stars))
        val_rows = np.flatnonzero(np.isin(source, val_stars))
        model, trained = _train_student(
            config, run_dir / f"student_{key}", key, n_folds,
            (inputs[fit_rows], labels_k[source[fit_rows]]),
            (inputs[val_rows], labels_k[source[val_rows]]), seed, log, teacher.directory)
        wall += json.loads((run_dir / f"student_{key}" / "student.json").read_text())[
            "wall_time_s"]
        held_out = own[folds == key] if key != FINAL else own[:512]
        if key != FINAL:
            oof[folds == key] = predict(model, inputs[held_out])
        check = "no ONNX export"
        if export:
            student_dir = run_dir / f"student_{key}"
            check = export_member(model, student_dir / "student.onnx",
                                  student_dir / "student.export_error.json", inputs[held_out],
                                  atol=export_atol, export_errors="raise", native=True)
        log(f"student {key}: {trained}; {check}")
    metrics = _metrics(dataset, config, folds, labels, oof, wall)
    _write_results(run_dir, dataset, folds, labels, oof, amplitudes, metrics)
    return metrics


def _metrics(dataset, config, folds, labels, oof, wall):
    feh, weights = dataset.feh, density_weights(dataset.feh)
    teacher_oof = labels[folds, np.arange(len(feh))]
    peer = dataset.feh_peer
    scored = None if peer is None else np.isfinite(peer)
    return {
        "config": config.to_dict(),
        "n_stars": len(feh),
        "pooled_out_of_fold": regression_metrics(feh, oof, weights),
        "teacher_out_of_fold": regression_metrics(feh, teacher_oof, weights),
        "student_minus_teacher_rms_dex": float(np.sqrt(np.mean((oof - teacher_oof) ** 2))),
        "pooled_peer": (None if scored is None or not scored.any() else
                        regression_metrics(feh[scored], peer[scored], weights[scored])),
        "median_baseline": median_baseline(feh, folds, weights),
        "peer_column": dataset.peer_column,
        "wall_time_s": wall,
    }


def _write_results(run_dir, dataset, folds, labels, oof, amplitudes, metrics):
    write_json(run_dir / "metrics.json", metrics)
    table = Table()
    table["source_id"] = dataset.stars["source_id"]
    table["feh"] = dataset.feh
    table["feh_pred"] = oof
    table["feh_teacher"] = labels[folds, np.arange(len(oof))]
    if dataset.feh_peer is not None:
        table[dataset.peer_column] = dataset.feh_peer
    table["fold"] = folds
    table["weight"] = density_weights(dataset.feh)
    table["amplitude"] = amplitudes
    table.write(run_dir / "oof_predictions.ecsv", overwrite=True)
