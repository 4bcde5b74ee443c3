"""Version of the installed package."""

import warnings

try:
    from ._version import version
except ImportError:
    version = "0.0.0"
    warnings.warn(
        "could not determine rrlyrae_metallicity's version; this indicates a broken installation",
        stacklevel=2,
    )

__all__ = ["version"]
