"""Export a trained Keras model to ONNX and prove that ONNX Runtime reproduces it."""

import os
from pathlib import Path

import numpy as np

__all__ = ["ExportError", "export_onnx", "keras_self_difference", "INPUT_NAME", "OPSET"]

#: Name of the ONNX graph input (read back from the session at inference time).
INPUT_NAME = "lightcurve"
#: ONNX opset used for every exported model.
OPSET = 17


class ExportError(RuntimeError):
    """ONNX Runtime does not reproduce the Keras model within tolerance.

    Attributes
    ----------
    max_diff : float
        Largest |ONNX − Keras| found, in dex.
    keras_self_diff : float
        Largest change of Keras's own output for the worst inputs when they
        are computed one at a time instead of in one batch, in dex. Above the
        tolerance, the model itself amplifies float32 rounding (a diverged or
        unstable training) and no runtime can reproduce it.
    """

    def __init__(self, message, *, max_diff=np.nan, keras_self_diff=np.nan):
        super().__init__(message)
        self.max_diff = max_diff
        self.keras_self_diff = keras_self_diff


def keras_self_difference(model, inputs):
    """Largest change of ``model``'s output when ``inputs`` are fed one at a time instead of together.

    A well-conditioned model changes by a few float32 roundings (~1e-7 dex);
    a model that amplifies rounding cannot be reproduced by any runtime.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    together = np.asarray(model(inputs, training=False)).ravel()
    alone = np.array([np.asarray(model(inputs[i:i + 1], training=False)).ravel()[0]
                      for i in range(len(inputs))])
    return float(np.max(np.abs(alone - together))) if len(inputs) else 0.0


def export_onnx(model, path, check_inputs, *, atol=1e-5, rtol=1e-6):
    """Convert ``model`` with tf2onnx, write it to ``path`` and verify it.

    Parameters
    ----------
    model : keras.Model
        Trained model with one input of shape ``(None, length, 2)``.
    path : path-like
        Destination ``.onnx`` file; written atomically.
    check_inputs : ndarray, shape (n, length, 2)
        Real model inputs on which Keras and ONNX Runtime are compared.
    atol, rtol : float
        The check is ``|ONNX - Keras| <= atol + rtol * |Keras|`` for every input
        (dex). ``rtol`` is a few float32 roundings: it matters only for the
        barely trained models of smoke tests, whose outputs can reach 100 dex;
        for real [Fe/H] values the bound stays below 1.3e-5 dex.

    Returns
    -------
    float
        The largest absolute difference found.

    Raises
    ------
    ExportError
        If the difference exceeds ``atol``; the file is then not written.
    """
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from .logs import keep_quiet

    keep_quiet()

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    payload = proto.SerializeToString()

    session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    check_inputs = np.asarray(check_inputs, dtype=np.float32)
    onnx_out = session.run(None, {session.get_inputs()[0].name: check_inputs})[0].ravel()
    keras_out = np.asarray(model(check_inputs, training=False)).ravel()
    diff = np.abs(onnx_out - keras_out)
    max_diff = float(np.max(diff))
    if not np.all(diff <= atol + rtol * np.abs(keras_out)):
        worst = np.argsort(diff)[-20:]
        self_diff = keras_self_difference(model, check_inputs[worst])
        message = (f"ONNX Runtime differs from Keras by {max_diff:.3g} dex (tolerance {atol:g} + "
                   f"{rtol:g} × |value|) on {len(check_inputs)} inputs; {path} was not written")
        if self_diff > max(atol, 1e-6):  # a sound model moves by ~1e-7 dex at most
            message += (f". Keras itself changes by up to {self_diff:.3g} dex on the worst inputs "
                        "when they are computed one at a time instead of in one batch: the model "
                        "amplifies float32 rounding (a diverged or unstable training), so no "
                        "runtime can reproduce it")
        raise ExportError(message, max_diff=max_diff, keras_self_diff=self_diff)
    path = Path(path)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return max_diff
