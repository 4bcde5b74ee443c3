"""The one place that lists the models the package ships, and finds any model folder.

Each model is a folder ``data/models/<name>/`` holding a ``manifest.json``
(`~rrlyrae_metallicity.manifest.ModelManifest`) and, for a plain ensemble,
its ONNX members; ``data/models/default.json`` names the default. A model
retrained by a user (``python -m training ship --models-dir DIR``) can be
used from its folder: a path instead of a name.
"""

import functools
import json
import os
from importlib.resources import files
from pathlib import Path

from .config import conf
from .exceptions import ModelError
from .manifest import ModelManifest

__all__ = ["models_directory", "available_models", "default_model_name", "resolve_model_name",
           "model_directory", "read_manifest"]


@functools.lru_cache(maxsize=1)
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
    path = models_directory() / "default.json"
    # Read again only when the file changes: a single-star call spent 0.3 ms here.
    return _default_in(str(path), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _default_in(path, mtime_ns):
    """The ``default`` named by the ``default.json`` at ``path`` (as it was at ``mtime_ns``)."""
    return json.loads(Path(path).read_text())["default"]


def _is_path(name):
    return isinstance(name, os.PathLike) or (isinstance(name, str) and (
        os.sep in name or "/" in name or name.startswith(".")))


def resolve_model_name(name):
    """The shipped model ``name`` (the default's name for ``"default"``), or a model folder.

    Parameters
    ----------
    name : str or path-like
        ``"default"``, a name from `available_models`, or the path of a
        folder holding a model's ``manifest.json`` (a path-like object, or a
        string with a ``/``).

    Returns
    -------
    str
        The shipped model's name, or the folder's absolute path.

    Raises
    ------
    rrlyrae_metallicity.exceptions.ModelError
        For a name that is not shipped (the message lists those that are),
        or a folder without a manifest.
    """
    if name in (None, "default"):
        return default_model_name()
    if _is_path(name):
        folder = Path(name).expanduser()
        if not (folder / "manifest.json").is_file():
            raise ModelError(f"{os.fspath(name)} is not a model folder (no manifest.json in it; "
                             "python -m training ship writes one)")
        return str(folder.resolve())
    names = available_models()
    if name not in names:
        raise ModelError(f"model must be one of {names}, 'default' or the path of a model "
                         f"folder, not {name!r}")
    return name


def model_directory(name):
    """The folder of the model ``name`` (see `resolve_model_name`)."""
    resolved = resolve_model_name(name)
    return Path(resolved) if os.path.isabs(resolved) else models_directory() / resolved


def read_manifest(name):
    """The `~rrlyrae_metallicity.manifest.ModelManifest` of a model (see `resolve_model_name`)."""
    return ModelManifest.read(model_directory(name) / "manifest.json")
