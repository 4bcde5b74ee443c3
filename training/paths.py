"""Where the training module keeps what it ships and records in the repository."""

from pathlib import Path

__all__ = ["MODELS_DIR", "RESULTS_DIR"]

#: The package's shipped models (``rrlyrae_metallicity/data/models``).
MODELS_DIR = Path(__file__).resolve().parents[1] / "rrlyrae_metallicity" / "data" / "models"
#: Metrics and out-of-fold predictions of every shipped model (``training/results``).
RESULTS_DIR = Path(__file__).resolve().parent / "results"
