"""Stratified K-fold cross-validation of one architecture, resumable fold by fold.

Layout of a run directory::

    run_dir/
      config.json                 the TrainingConfig (a resumed run must match it)
      folds.npy                   fold index of every star
      fold_<k>/member_<s>.keras   trained model of fold k, seed s
      fold_<k>/member_<s>.json    its training history and wall time
      fold_<k>/done.json          written last: the fold is complete
      fold_<k>/member_<s>.onnx    exported and verified model
      fold_<k>/member_<s>.native.onnx
                                  its native GRU rewrite (gru only), checked
      fold_<k>/member_<s>.export_error.json
                                  why it failed the ONNX check (studies only)
      data.json                   the data trained on (folder, sha256 of its tables,
                                  stars, label description, peer column)
      command.json                the full command that started the run
      metrics.json                CV metrics (mean ± std over folds), peer included
      oof_predictions.ecsv        out-of-fold prediction of every star

A fold is recomputed only if its ``done.json`` is missing, so an interrupted run
continues where it stopped and never redoes a finished fold.

`run_cross_validation` goes through named steps: record the configuration,
prepare the data, plan the folds, run each fold (load or train its members,
predict, export, score), then collect the out-of-fold metrics, calibrate the
uncertainty and write the results. `training.member` does the work for one
member.
"""

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.preprocessing import PreprocessingConfig

from .calibration import uncertainty_calibration
from .data import augmented_inputs, density_weights, preprocess
from .errors import RunError, differences
from .files import write_json
from .folds import stratified_folds
from .member import export_member, predict, train_member
from .metrics import median_baseline, regression_metrics, summarise_folds

__all__ = ["TrainingConfig", "RunError", "run_cross_validation", "member_file",
           "record_run_data"]




@dataclass
class TrainingConfig:
    """Everything that defines a cross-validation run.

    Parameters
    ----------
    architecture : str
        Name in `training.architectures.ARCHITECTURES`.
    preprocessing : dict
        Keyword arguments of `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`.
    n_folds : int
        K of the stratified K-fold.
    n_bins : int
        Number of [Fe/H] quantile bins used to stratify.
    seed : int
        Seed of the fold split, the validation split and the weight initialisation.
    members_per_fold : int
        Models trained per fold with different seeds and averaged (1 = paper).
    learning_rate, batch_size, max_epochs, patience : number
        Adam learning rate, mini-batch size, epoch limit and early-stopping
        patience (on the weighted validation loss).
    reduce_lr_patience : int
        Halve the learning rate after this many epochs without improvement
        (0 disables it; the paper keeps the rate fixed).
    validation_fraction : float
        Fraction of each training fold held out for early stopping.
    weight_power : float
        Training weights are the paper's inverse-density weights raised to this
        power (1 = paper, 0 = unweighted). The reported wRMSE and wMAE always
        use the paper's weights.
    model_kwargs : dict
        Extra keyword arguments of the architecture builder (e.g. ``units``);
        empty for the paper's architecture.
    augment : int
        Re-sampled copies of every training light curve added to the fit set
        (`training.data.augmented_inputs`); validation and test stars are
        never augmented. 0 (the paper) adds none.
    run_eagerly : bool
        Train without compiling a graph: slower per batch, but no tracing cost,
        which dominates the few-batch runs of smoke tests.
    """

    architecture: str = "gru"
    preprocessing: dict = field(default_factory=lambda: PreprocessingConfig().to_dict())
    n_folds: int = 5
    n_bins: int = 10
    seed: int = 1
    members_per_fold: int = 1
    learning_rate: float = 0.01
    batch_size: int = 256
    max_epochs: int = 1000
    patience: int = 50
    reduce_lr_patience: int = 0
    validation_fraction: float = 0.1
    weight_power: float = 1.0
    model_kwargs: dict = field(default_factory=dict)
    run_eagerly: bool = False
    augment: int = 0

    def to_dict(self):
        return asdict(self)


def member_file(run_dir, fold, member, suffix):
    """Path of one member's file in a run directory (see the module docstring).

    ``suffix`` is one of ``.keras``, ``.json``, ``.onnx``, ``.export_error.json``.
    """
    return Path(run_dir) / f"fold_{fold}" / f"member_{member}{suffix}"


@dataclass
class _RunData:
    """What every fold of a run reads, one entry per star of the dataset."""

    inputs: np.ndarray  # model inputs, (n_stars, length, 2)
    amplitudes: np.ndarray  # of the smoothed light curves, recorded with the predictions
    augmented: np.ndarray | None  # re-sampled inputs, (copies, n_stars, length, 2)
    feh: np.ndarray
    feh_peer: np.ndarray | None  # a peer's predictions, scored beside ours; None if none
    peer_column: str | None  # the stars table's column holding them
    weights: np.ndarray  # the paper's density weights: every metric uses them
    train_weights: np.ndarray  # those raised to config.weight_power, mean 1


def _record_config(run_dir, config):
    """Write ``config.json``, or check that a resumed run has the same configuration."""
    config_path = run_dir / "config.json"
    if config_path.exists():
        # Fields added to TrainingConfig since the run started take their
        # defaults, which reproduce the behaviour from before they existed.
        stored = TrainingConfig(**json.loads(config_path.read_text())).to_dict()
        asked = config.to_dict()
        if stored != asked:
            raise RunError(f"{run_dir} holds a run with another configuration "
                           f"({differences(stored, asked)}); "
                           "resume it with the same options or choose a new --run-dir")
    else:
        write_json(config_path, config.to_dict())


def _peer_metrics(feh, peer, weights):
    """`regression_metrics` of the peer on the stars it has a value for; `None` without any."""
    if peer is None:
        return None
    scored = np.isfinite(peer)
    if not scored.any():
        return None
    return regression_metrics(feh[scored], peer[scored], weights[scored])


def record_run_data(run_dir, dataset, label_description, command):
    """Write ``data.json`` and ``command.json``, or check that a resumed run reads the same data.

    The tables' checksums identify the data: resuming on other data would
    mix two training sets in one run.
    """
    data_path = run_dir / "data.json"
    record = {**dataset.record, "label_description": label_description}
    if data_path.exists():
        stored = json.loads(data_path.read_text())
        if dataset.record and stored.get("files") != record.get("files"):
            raise RunError(
                f"{run_dir} holds a run on other data ({stored.get('path')}, tables "
                f"{stored.get('files')}); resume it on the same data or choose a new --run-dir")
        if label_description is None or label_description == stored.get("label_description"):
            return
        stored["label_description"] = label_description
        record = stored
    write_json(data_path, record)
    if command is not None and not (run_dir / "command.json").exists():
        write_json(run_dir / "command.json", {"command": command})


def _prepare_data(dataset, config, cache_dir, progress):
    """Model inputs (cached), labels and weights of every star."""
    prep = PreprocessingConfig(**config.preprocessing)
    inputs, amplitudes = preprocess(dataset, prep, progress=progress, cache_dir=cache_dir)
    augmented = (augmented_inputs(dataset, prep, config.augment, seed=config.seed,
                                  originals=inputs)
                 if config.augment else None)
    feh = dataset.feh
    weights = density_weights(feh)
    train_weights = weights**config.weight_power
    train_weights /= train_weights.mean()
    return _RunData(inputs=inputs, amplitudes=amplitudes, augmented=augmented, feh=feh,
                    feh_peer=dataset.feh_peer, peer_column=dataset.peer_column,
                    weights=weights, train_weights=train_weights)


def _plan_folds(feh, config, run_dir):
    """Fold of every star, saved as ``folds.npy``."""
    if config.n_folds < 2:
        raise RunError(f"cross-validation needs at least 2 folds, not {config.n_folds}")
    try:
        folds = stratified_folds(feh, config.n_folds, config.n_bins, config.seed)
    except ValueError as error:
        raise RunError(f"{len(feh)} stars cannot be split into {config.n_folds} folds "
                       f"stratified on {config.n_bins} [Fe/H] bins ({error}); use fewer "
                       "--folds or more stars") from None
    np.save(run_dir / "folds.npy", folds)
    return folds


def _member_model(data, config, run_dir, fold, member, train_idx):
    """Member ``member`` of fold ``fold``: loaded if saved, else trained and saved.

    Returns the model and what its log line says of the training.
    """
    import keras

    member_path = member_file(run_dir, fold, member, ".keras")
    if member_path.exists():
        return keras.models.load_model(member_path), "trained before, loaded"
    start = time.perf_counter()
    seed = config.seed + 1000 * fold + member
    model, history = train_member(
        config, data.inputs, data.feh, data.train_weights, train_idx, seed,
        f"fold {fold + 1}/{config.n_folds} member {member + 1}/{config.members_per_fold}",
        augmented=data.augmented,
    )
    wall = time.perf_counter() - start
    # Saved under a temporary name first: a killed run must not leave a half-written model.
    model.save(str(member_path) + ".tmp.keras")
    os.replace(str(member_path) + ".tmp.keras", member_path)
    write_json(member_file(run_dir, fold, member, ".json"),
               {"seed": seed, "wall_time_s": wall, "epochs": len(history["loss"]),
                "history": history})
    best = int(np.argmin(history["val_loss"]))
    return model, (f"{len(history['loss'])} epochs in {wall:.0f} s, best val loss "
                   f"{history['val_loss'][best]:.4f} (epoch {best + 1})")


def _native(config):
    """Whether the members are rewritten with native GRU nodes: unmasked ``gru`` stacks."""
    return (config.architecture == "gru"
            and PreprocessingConfig(**config.preprocessing).variant != "raw")


def _run_fold(data, config, run_dir, folds, fold, oof, *, export, export_atol, export_errors,
              log):
    """Load or train, predict and export every member of one fold, and score the fold.

    Fills the fold's rows of ``oof`` (out-of-fold prediction of every member)
    and writes ``done.json`` once.

    Returns
    -------
    validation, training : dict
        `training.metrics.regression_metrics` of the fold's members' mean on
        its held-out and on its training stars.
    """
    fold_dir = run_dir / f"fold_{fold}"
    fold_dir.mkdir(exist_ok=True)
    test_idx = np.flatnonzero(folds == fold)
    train_idx = np.flatnonzero(folds != fold)
    done = fold_dir / "done.json"
    if done.exists():
        log(f"fold {fold}: already complete, loading")
    train_preds = []
    for member in range(config.members_per_fold):
        model, trained = _member_model(data, config, run_dir, fold, member, train_idx)
        oof[test_idx, member] = predict(model, data.inputs[test_idx])
        train_preds.append(predict(model, data.inputs[train_idx]))
        check = "no ONNX export"
        if export:
            check = export_member(model, member_file(run_dir, fold, member, ".onnx"),
                                  member_file(run_dir, fold, member, ".export_error.json"),
                                  data.inputs[test_idx], atol=export_atol,
                                  export_errors=export_errors, native=_native(config))
        log(f"fold {fold} member {member}: {trained}; {check}")
    feh, weights = data.feh, data.weights
    validation = regression_metrics(feh[test_idx], oof[test_idx].mean(axis=1), weights[test_idx])
    training = regression_metrics(feh[train_idx], np.mean(train_preds, axis=0),
                                  weights[train_idx])
    peer = _peer_metrics(feh[test_idx], None if data.feh_peer is None
                         else data.feh_peer[test_idx], weights[test_idx])
    if not done.exists():
        write_json(done, {"validation": validation, "training": training, "peer": peer})
    versus = ("" if peer is None else
              f" (peer on the same stars: RMSE {peer['rmse']:.4f} MAE {peer['mae']:.4f})")
    log(f"fold {fold}: validation RMSE {validation['rmse']:.4f} MAE {validation['mae']:.4f}"
        + versus)
    return validation, training


def _out_of_fold_metrics(data, config, run_dir, folds, oof, per_fold_val, per_fold_train):
    """The metrics of the whole run: per-fold summaries, pooled out-of-fold, training time."""
    feh, weights = data.feh, data.weights
    peer = data.feh_peer
    return {
        "config": config.to_dict(),
        "n_stars": len(feh),
        "validation": summarise_folds(per_fold_val),
        "training": summarise_folds(per_fold_train),
        "peer_same_folds": None if peer is None or not np.isfinite(peer).any() else
        summarise_folds([m for k in range(config.n_folds) if (m := _peer_metrics(
            feh[folds == k], peer[folds == k], weights[folds == k])) is not None]),
        "peer_n_stars": None if peer is None else int(np.isfinite(peer).sum()),
        "pooled_out_of_fold": regression_metrics(feh, oof.mean(axis=1), weights),
        "pooled_peer": _peer_metrics(feh, peer, weights),
        "median_baseline": median_baseline(feh, folds, weights),
        "peer_column": None if peer is None else data.peer_column,
        "wall_time_s": sum(
            json.loads(member_file(run_dir, k, s, ".json").read_text())["wall_time_s"]
            for k in range(config.n_folds) for s in range(config.members_per_fold)
        ),
    }


def _export_failures(config, run_dir):
    """Every member that failed the ONNX check, with why (``export_errors="record"``)."""
    return [
        {"fold": k, "member": s, **json.loads(path.read_text())}
        for k in range(config.n_folds) for s in range(config.members_per_fold)
        if (path := member_file(run_dir, k, s, ".export_error.json")).exists()
    ]


def _write_results(dataset, data, run_dir, folds, oof, metrics):
    """Write ``metrics.json`` and ``oof_predictions.ecsv``."""
    write_json(run_dir / "metrics.json", metrics)
    table = Table()
    table["source_id"] = dataset.stars["source_id"]
    table["feh"] = data.feh
    table["feh_pred"] = oof.mean(axis=1)
    table["feh_pred_members"] = oof
    if data.feh_peer is not None:
        table[data.peer_column] = data.feh_peer
    table["fold"] = folds
    table["weight"] = data.weights
    table["amplitude"] = data.amplitudes
    table.write(run_dir / "oof_predictions.ecsv", overwrite=True)


def run_cross_validation(dataset, config, run_dir, *, export=True, log=print, only_folds=None,
                         cache_dir=None, progress=True, export_atol=1e-5, export_errors="raise",
                         label_description=None, command=None):
    """Cross-validate ``config`` on ``dataset``, resuming from ``run_dir``.

    Parameters
    ----------
    dataset : `training.data.Dataset`
    config : `TrainingConfig`
    run_dir : path-like
        Output folder (see the module docstring for its layout).
    export : bool
        Export every member to ONNX and verify it against Keras.
    log : callable
        Receives one line of text per step.
    only_folds : sequence of int, optional
        Train only these folds (e.g. in a second process sharing ``run_dir``)
        and return `None`; a later call without it assembles the metrics.
    cache_dir : path-like, optional
        Where pre-processed inputs are cached (default: ``run_dir/../cache``).
    export_atol : float
        Tolerance of the ONNX check, in dex (see `training.export.export_onnx`).
    export_errors : {"raise", "record"}
        What a member that fails the ONNX check does: stop the run (the
        default: a model to ship must export), or leave its ONNX file out,
        record why in ``member_<s>.export_error.json`` and under
        ``export_failures`` in ``metrics.json``, and go on (a study: the
        run's Keras metrics stay valid).
    progress : bool
        Show a progress bar for the pre-processing (each member always shows
        one for its epochs).
    label_description : str, optional
        What the labels are (sample, method, scale), recorded in ``data.json``
        and, by ``ship``, in the manifest.
    command : str, optional
        The command that started the run, recorded in ``command.json``.

    Returns
    -------
    dict or None
        The content of ``metrics.json``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _record_config(run_dir, config)
    record_run_data(run_dir, dataset, label_description, command)
    data = _prepare_data(dataset, config, run_dir.parent / "cache" if cache_dir is None
                         else cache_dir, progress)
    folds = _plan_folds(data.feh, config, run_dir)

    oof = np.full((len(dataset), config.members_per_fold), np.nan)
    per_fold_val, per_fold_train = [], []
    for k in range(config.n_folds):
        if only_folds is not None and k not in only_folds:
            continue
        validation, training = _run_fold(data, config, run_dir, folds, k, oof, export=export,
                                         export_atol=export_atol, export_errors=export_errors,
                                         log=log)
        per_fold_val.append(validation)
        per_fold_train.append(training)
    if only_folds is not None:
        return None

    metrics = _out_of_fold_metrics(data, config, run_dir, folds, oof, per_fold_val,
                                   per_fold_train)
    metrics["uncertainty"] = uncertainty_calibration(data.feh, oof, folds)
    metrics["export_failures"] = _export_failures(config, run_dir)
    _write_results(dataset, data, run_dir, folds, oof, metrics)
    return metrics
