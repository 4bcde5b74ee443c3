"""One member of a fold: train it, predict with it, export it to ONNX.

`training.cv` decides which members to train and where their files go; this
module only does the work for one of them.
"""

import numpy as np

from rrlyrae_metallicity.preprocessing import PreprocessingConfig

from .errors import RunError
from .files import write_json
from .folds import strata

__all__ = ["train_member", "predict", "export_member"]


class _EpochProgress:
    """Keras callback showing one tqdm bar per trained member."""

    def __new__(cls, description, total):
        import keras
        from tqdm.auto import tqdm

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                # Drawn on a terminal only: in a log file a bar is hundreds of lines.
                self.bar = tqdm(total=total, desc=description, leave=False, disable=None)

            def on_epoch_end(self, epoch, logs=None):
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}", val=f"{logs['val_loss']:.4f}")

            def on_train_end(self, logs=None):
                self.bar.close()

        return Callback()


def train_member(config, inputs, feh, weights, train_idx, seed, description, augmented=None):
    """Train one model on the stars ``train_idx``, early-stopped on a stratified part of them.

    Parameters
    ----------
    config : `training.cv.TrainingConfig`
    inputs : ndarray, shape (n_stars, length, 2)
        Model inputs of every star.
    feh, weights : ndarray, shape (n_stars,)
        Labels and training weights of every star.
    train_idx : ndarray of int
        The fold's training stars; ``config.validation_fraction`` of them are
        held out for early stopping.
    seed : int
        Seed of the validation split and of the weights.
    description : str
        Label of the progress bar.
    augmented : ndarray, shape (copies, n_stars, length, 2), optional
        Re-sampled light curves, added to the fit set for the fit stars.

    Returns
    -------
    model : keras.Model
    history : dict
        Keras's history, as lists of floats.
    """
    import keras
    from sklearn.model_selection import train_test_split

    from .architectures import build_model

    try:
        fit_idx, val_idx = train_test_split(
            train_idx, test_size=config.validation_fraction, random_state=seed,
            stratify=strata(feh[train_idx], config.n_bins),
        )
    except ValueError as error:
        raise RunError(f"the {len(train_idx)} training stars of a fold cannot hold a validation "
                       f"set stratified on {config.n_bins} [Fe/H] bins ({error}); use more "
                       "stars or fewer --folds") from None
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


def predict(model, inputs, batch_size=2048):
    """Predictions of a Keras model, batch by batch.

    Parameters
    ----------
    model : keras.Model
    inputs : ndarray, shape (n, length, 2)
    batch_size : int

    Returns
    -------
    ndarray, shape (n,)
    """
    # Direct calls instead of model.predict, which traces a new graph per model.
    return np.concatenate([
        np.asarray(model(inputs[i:i + batch_size], training=False)).ravel()
        for i in range(0, len(inputs), batch_size)
    ]) if len(inputs) else np.empty(0)


def export_member(model, onnx_path, error_path, check_inputs, *, atol, export_errors,
                  native=False):
    """Export one member to ONNX and verify it, unless that was done before.

    Parameters
    ----------
    model : keras.Model
    onnx_path : path-like
        Where the verified ONNX model goes.
    error_path : path-like
        Where a failed check is recorded (with ``export_errors="record"``).
    check_inputs : ndarray, shape (n, length, 2)
        Inputs on which ONNX Runtime must reproduce Keras.
    atol : float
        Tolerance of the check, in dex (`training.export.export_onnx`).
    export_errors : {"raise", "record"}
        Raise a failed check, or record it and go on.
    native : bool
        Also write the export rewritten with native ONNX GRU nodes
        (`training.native_onnx`), checked against it, beside it as
        ``member_<s>.native.onnx``: the package runs it for a few stars
        (0.12 ms for one star instead of 2.7 ms).

    Returns
    -------
    str
        What happened, for the member's log line: the check's largest
        difference, that it was exported before, or why it was not.

    Raises
    ------
    training.export.ExportError
        If the check fails and ``export_errors`` is ``"raise"``.
    """
    # Looked up at call time, so that tests can replace export_onnx.
    from .export import ExportError, export_onnx

    if onnx_path.exists():
        return "ONNX exported before"
    if error_path.exists():
        return "NOT exported (failed its ONNX check before)"
    try:
        diff = export_onnx(model, onnx_path, check_inputs, atol=atol)
    except ExportError as error:
        if export_errors != "record":
            raise
        # The check is deterministic: record the failure once instead of retrying on resume.
        write_json(error_path, {"message": str(error), "max_diff": error.max_diff,
                                "keras_self_diff": error.keras_self_diff})
        return f"NOT exported: {error}"
    if native:
        from .native_onnx import convert_member, native_file

        rewrite = convert_member(onnx_path, native_file(onnx_path), check_inputs, atol=atol)
        return f"ONNX = Keras within {diff:.1e} dex (native GRU: {rewrite:.1e})"
    return f"ONNX = Keras within {diff:.1e} dex"
