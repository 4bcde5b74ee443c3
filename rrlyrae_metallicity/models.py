"""The shipped models: the registry of names and the ensembles that run them.

A facade over `rrlyrae_metallicity.registry` (which models ship) and
`rrlyrae_metallicity.ensemble` (ONNX Runtime sessions and the served
prediction), kept so that ``from rrlyrae_metallicity.models import
load_model`` goes on working.
"""

from .ensemble import FehEnsemble, load_model
from .registry import available_models, default_model_name, models_directory

__all__ = ["available_models", "default_model_name", "load_model", "models_directory",
           "FehEnsemble"]
