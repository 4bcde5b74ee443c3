"""Photometric metallicity of fundamental-mode RR Lyrae stars from Gaia G-band light curves.

The models are small recurrent networks (Monti et al. 2024) trained by this
project on real Gaia light curves, exported to ONNX and run with ONNX Runtime.
"""

from .config import conf  # noqa: F401
from .ensemble import load_model  # noqa: F401
from .exceptions import *  # noqa: F401,F403
from .inference import *  # noqa: F401,F403
from .registry import available_models  # noqa: F401
from .version import version as __version__  # noqa: F401

__all__ = ["predict_feh", "add_feh", "available_models", "load_model", "conf", "__version__"]
