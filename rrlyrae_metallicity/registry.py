"""The one place that lists the models the package ships.

Each model is a folder ``data/models/<name>/`` holding a ``manifest.json``
(`~rrlyrae_metallicity.manifest.ModelManifest`) and, for a plain ensemble,
its ONNX members; ``data/models/default.json`` names the default.
"""

from importlib.resources import files

from .config import conf
from .exceptions import ModelError
from .manifest import ModelManifest

__all__ = ["models_directory", "available_models", "default_model_name", "resolve_model_name",
           "read_manifest"]


def models_directory():
    """Folder of the shipped models (a `~importlib.resources.abc.Traversable`)."""
    return files("rrlyrae_metallicity") / "data" / "models"


def available_models():
    """Names of the model ensembles shipped with the package.

    Returns
    -------
    list of str
    """
    root = models_directory()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file())


def default_model_name():
    """Name of the model used by ``model="default"``.

    ``conf.default_model`` when set, else the one the package marks as default.
    """
    if conf.default_model:
        return resolve_model_name(conf.default_model)
    import json

    return json.loads((models_directory() / "default.json").read_text())["default"]


def resolve_model_name(name):
    """``name``, or the default's name for ``"default"``; checked against `available_models`.

    Raises
    ------
    rrlyrae_metallicity.exceptions.ModelError
        For a name that is not shipped; the message lists those that are.
    """
    if name in (None, "default"):
        return default_model_name()
    names = available_models()
    if name not in names:
        raise ModelError(f"model must be one of {names} or 'default', not {name!r}")
    return name


def read_manifest(name):
    """The `~rrlyrae_metallicity.manifest.ModelManifest` of a shipped model."""
    return ModelManifest.read(models_directory() / resolve_model_name(name) / "manifest.json")
