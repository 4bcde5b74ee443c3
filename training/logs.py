"""Keep the training module's log to its own lines: TensorFlow, Keras and tf2onnx silenced.

A training run logs one line per member and per fold; without this, most of
its log is TensorFlow's start-up banners, tf2onnx's conversion steps and
warnings from inside those libraries.
"""

import contextlib
import logging
import os
import sys
import warnings

__all__ = ["NOISY_LOGGERS", "import_tensorflow_quietly", "keep_quiet", "quiet_tensorflow"]

#: Python loggers of the libraries whose INFO and WARNING lines are not ours to show.
NOISY_LOGGERS = ("tensorflow", "tf2onnx", "absl", "keras", "h5py", "onnx", "onnxruntime")

_quiet = False


def quiet_tensorflow():
    """Silence TensorFlow, Keras and tf2onnx below their errors; call before they are imported.

    ``TF_CPP_MIN_LOG_LEVEL`` (kept when the user set it) must be in the
    environment before TensorFlow loads its C++ core. The Python loggers and
    warnings are silenced below ERROR, so real failures still show.
    """
    global _quiet
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings(
        "ignore", module=r"(keras|tensorflow|tf2onnx|tf_keras|google\.protobuf|onnx)(\.|$)")
    keep_quiet()


def keep_quiet():
    """Silence the noisy loggers again, if `quiet_tensorflow` was called.

    tf2onnx sets its loggers' levels when it is imported, after
    `quiet_tensorflow` ran: the export calls this once it has imported it.
    """
    if not _quiet:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("tf2onnx."):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _no_native_stderr():
    """Send what C++ code writes to the standard error to /dev/null, for a moment."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow_quietly():
    """Import TensorFlow without its start-up lines.

    TensorFlow's C++ core prints a oneDNN notice (twice) through absl before
    ``TF_CPP_MIN_LOG_LEVEL`` is read; only a silenced file descriptor hides
    it. An import that fails still raises, with its message.
    """
    with _no_native_stderr():
        import tensorflow  # noqa: F401
