"""Stratified K-fold cross-validation of one architecture, resumable fold by fold.

Layout of a run directory::

    run_dir/
      config.json                 the TrainingConfig (a resumed run must match it)
      folds.npy                   fold index of every star
      fold_<k>/member_<s>.keras   trained model of fold k, seed s
      fold_<k>/member_<s>.json    its training history and wall time
      fold_<k>/done.json          written last: the fold is complete
      fold_<k>/member_<s>.onnx    exported and verified model
      fold_<k>/member_<s>.export_error.json
                                  why it failed the ONNX check (studies only)
      metrics.json                CV metrics (mean ± std over folds), peer included
      oof_predictions.ecsv        out-of-fold prediction of every star

A fold is recomputed only if its ``done.json`` is missing, so an interrupted run
continues where it stopped and never redoes a finished fold.
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
from .files import write_json
from .folds import strata, stratified_folds
from .metrics import regression_metrics, summarise_folds

__all__ = ["TrainingConfig", "run_cross_validation", "member_file"]


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


class _EpochProgress:
    """Keras callback showing one tqdm bar per trained member."""

    def __new__(cls, description, total):
        import keras
        from tqdm.auto import tqdm

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.bar = tqdm(total=total, desc=description, leave=False)

            def on_epoch_end(self, epoch, logs=None):
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}", val=f"{logs['val_loss']:.4f}")

            def on_train_end(self, logs=None):
                self.bar.close()

        return Callback()


def _train_member(config, inputs, feh, weights, train_idx, seed, description, augmented=None):
    """Train one model on ``train_idx``; return it and its history.

    ``augmented`` (copies, n_stars, length, 2) adds re-sampled light curves of
    the fit stars to the fit set.
    """
    import keras
    from sklearn.model_selection import train_test_split

    from .architectures import build_model

    fit_idx, val_idx = train_test_split(
        train_idx, test_size=config.validation_fraction, random_state=seed,
        stratify=strata(feh[train_idx], config.n_bins),
    )
    # Free the graphs of earlier members: a study trains hundreds in one process.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    prep = PreprocessingConfig(**config.preprocessing)
    model = build_model(
        config.architecture, inputs.shape[1:], masked=prep.variant == "raw",
        label_mean=float(np.mean(feh[fit_idx])), label_std=float(np.std(feh[fit_idx])),
        **config.model_kwargs,
    )
    # XLA ("auto") made the GRU 4x slower per epoch on CPU and its compilation
    # dominates short runs; plain graphs are never slower here.
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse",
                  weighted_metrics=[], jit_compile=False,
                  run_eagerly=config.run_eagerly)
    callbacks = [
        keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
        _EpochProgress(description, config.max_epochs),
    ]
    if config.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            factor=0.5, patience=config.reduce_lr_patience, min_lr=1e-5))
    fit_x, fit_y, fit_w = inputs[fit_idx], feh[fit_idx], weights[fit_idx]
    if augmented is not None and len(augmented):
        fit_x = np.concatenate([fit_x, *augmented[:, fit_idx]])
        fit_y = np.tile(fit_y, len(augmented) + 1)
        fit_w = np.tile(fit_w, len(augmented) + 1)
    history = model.fit(
        fit_x, fit_y, sample_weight=fit_w,
        validation_data=(inputs[val_idx], feh[val_idx], weights[val_idx]),
        batch_size=config.batch_size, epochs=config.max_epochs, shuffle=True,
        callbacks=callbacks, verbose=0,
    )
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def member_file(run_dir, fold, member, suffix):
    """Path of one member's file in a run directory (see the module docstring).

    ``suffix`` is one of ``.keras``, ``.json``, ``.onnx``, ``.export_error.json``.
    """
    return Path(run_dir) / f"fold_{fold}" / f"member_{member}{suffix}"


def _export_member(model, run_dir, fold, member, check_inputs, atol, export_errors, log):
    """Export one member to ONNX unless done; with ``export_errors="record"`` a failure is recorded."""
    from .export import ExportError, export_onnx

    onnx_path = member_file(run_dir, fold, member, ".onnx")
    error_path = member_file(run_dir, fold, member, ".export_error.json")
    if onnx_path.exists() or error_path.exists():
        return
    try:
        diff = export_onnx(model, onnx_path, check_inputs, atol=atol)
    except ExportError as error:
        if export_errors != "record":
            raise
        # The check is deterministic: record the failure once instead of retrying on resume.
        write_json(error_path, {"message": str(error), "max_diff": error.max_diff,
                                 "keras_self_diff": error.keras_self_diff})
        log(f"fold {fold}: member {member} NOT exported: {error}")
        return
    log(f"fold {fold}: member {member} exported to ONNX, max |ONNX - Keras| = {diff:.2e} dex")


def _predict(model, inputs, batch_size=2048):
    # Direct calls instead of model.predict, which traces a new graph per model.
    return np.concatenate([
        np.asarray(model(inputs[i:i + batch_size], training=False)).ravel()
        for i in range(0, len(inputs), batch_size)
    ]) if len(inputs) else np.empty(0)


def run_cross_validation(dataset, config, run_dir, *, export=True, log=print, only_folds=None,
                         cache_dir=None, progress=True, export_atol=1e-5, export_errors="raise"):
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

    Returns
    -------
    dict or None
        The content of ``metrics.json``.
    """
    import keras

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        # Fields added to TrainingConfig since the run started take their
        # defaults, which reproduce the behaviour from before they existed.
        stored = TrainingConfig(**json.loads(config_path.read_text())).to_dict()
        if stored != config.to_dict():
            raise ValueError(
                f"{run_dir} holds a run with another configuration; resume it with the "
                f"same options or choose a new --run-dir.\nstored: {stored}\nasked: {config.to_dict()}"
            )
    else:
        write_json(config_path, config.to_dict())

    prep = PreprocessingConfig(**config.preprocessing)
    inputs, amplitudes = preprocess(dataset, prep, progress=progress,
                                    cache_dir=run_dir.parent / "cache" if cache_dir is None else cache_dir)
    augmented = (augmented_inputs(dataset, prep, config.augment, seed=config.seed,
                                  originals=inputs)
                 if config.augment else None)
    feh = dataset.feh
    weights = density_weights(feh)
    train_weights = weights**config.weight_power
    train_weights /= train_weights.mean()
    folds = stratified_folds(feh, config.n_folds, config.n_bins, config.seed)
    np.save(run_dir / "folds.npy", folds)

    oof = np.full((len(dataset), config.members_per_fold), np.nan)
    per_fold_val, per_fold_train = [], []
    for k in range(config.n_folds):
        if only_folds is not None and k not in only_folds:
            continue
        fold_dir = run_dir / f"fold_{k}"
        fold_dir.mkdir(exist_ok=True)
        test_idx = np.flatnonzero(folds == k)
        train_idx = np.flatnonzero(folds != k)
        done = fold_dir / "done.json"
        if done.exists():
            log(f"fold {k}: already complete, loading")
        train_preds = []
        for s in range(config.members_per_fold):
            member_path = member_file(run_dir, k, s, ".keras")
            if member_path.exists():
                model = keras.models.load_model(member_path)
            else:
                start = time.perf_counter()
                seed = config.seed + 1000 * k + s
                model, history = _train_member(
                    config, inputs, feh, train_weights, train_idx, seed,
                    f"fold {k + 1}/{config.n_folds} member {s + 1}/{config.members_per_fold}",
                    augmented=augmented,
                )
                wall = time.perf_counter() - start
                model.save(str(member_path) + ".tmp.keras")
                os.replace(str(member_path) + ".tmp.keras", member_path)
                write_json(member_file(run_dir, k, s, ".json"),
                            {"seed": seed, "wall_time_s": wall, "epochs": len(history["loss"]),
                             "history": history})
                log(f"fold {k}: member {s} trained in {wall:.0f} s, "
                    f"{len(history['loss'])} epochs, best val loss {min(history['val_loss']):.4f}")
            oof[test_idx, s] = _predict(model, inputs[test_idx])
            train_preds.append(_predict(model, inputs[train_idx]))
            if export:
                _export_member(model, run_dir, k, s, inputs[test_idx], export_atol,
                               export_errors, log)
        train_pred = np.mean(train_preds, axis=0)
        val_metrics = regression_metrics(feh[test_idx], oof[test_idx].mean(axis=1), weights[test_idx])
        train_metrics = regression_metrics(feh[train_idx], train_pred, weights[train_idx])
        peer_metrics = regression_metrics(feh[test_idx], dataset.feh_peer[test_idx], weights[test_idx])
        per_fold_val.append(val_metrics)
        per_fold_train.append(train_metrics)
        if not done.exists():
            write_json(done, {"validation": val_metrics, "training": train_metrics,
                               "peer": peer_metrics})
        log(f"fold {k}: validation RMSE {val_metrics['rmse']:.4f} MAE {val_metrics['mae']:.4f} "
            f"(peer on the same stars: RMSE {peer_metrics['rmse']:.4f} MAE {peer_metrics['mae']:.4f})")

    if only_folds is not None:
        return None
    prediction = oof.mean(axis=1)
    peer_per_fold = [regression_metrics(feh[folds == k], dataset.feh_peer[folds == k],
                                        weights[folds == k]) for k in range(config.n_folds)]
    metrics = {
        "config": config.to_dict(),
        "n_stars": len(dataset),
        "validation": summarise_folds(per_fold_val),
        "training": summarise_folds(per_fold_train),
        "peer_same_folds": summarise_folds(peer_per_fold),
        "pooled_out_of_fold": regression_metrics(feh, prediction, weights),
        "pooled_peer": regression_metrics(feh, dataset.feh_peer, weights),
        "wall_time_s": sum(
            json.loads(member_file(run_dir, k, s, ".json").read_text())["wall_time_s"]
            for k in range(config.n_folds) for s in range(config.members_per_fold)
        ),
        "uncertainty": uncertainty_calibration(feh, oof, folds),
        "export_failures": [
            {"fold": k, "member": s, **json.loads(path.read_text())}
            for k in range(config.n_folds) for s in range(config.members_per_fold)
            if (path := member_file(run_dir, k, s, ".export_error.json")).exists()
        ],
    }
    write_json(run_dir / "metrics.json", metrics)

    table = Table()
    table["source_id"] = dataset.stars["source_id"]
    table["feh"] = feh
    table["feh_pred"] = prediction
    table["feh_pred_members"] = oof
    table["feh_dg22"] = dataset.feh_peer
    table["fold"] = folds
    table["weight"] = weights
    table["amplitude"] = amplitudes
    table.write(run_dir / "oof_predictions.ecsv", overwrite=True)
    return metrics
