"""What a study runs: its profile, and the runs a profile plans.

Each run is an architecture × data variant × grid point × repeat, trained as
one `training.cv.run_cross_validation` of its own (see `training.study`).
"""

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rrlyrae_metallicity.preprocessing import VARIANTS, PreprocessingConfig

from ..cv import TrainingConfig
from ..names import ARCHITECTURE_NAMES as ARCHITECTURES
from ..names import RECURRENT

__all__ = ["GRID_AXES", "DESIGNS", "StudyProfile", "PROFILES", "plan_runs"]

#: Grid axes understood by a profile, and what they set.
GRID_AXES = ("learning_rate", "batch_size", "dropout", "regularizer", "weight_power")

#: How a profile's grid becomes grid points (see `StudyProfile`).
DESIGNS = ("factorial", "one_at_a_time")


@dataclass
class StudyProfile:
    """What a study runs.

    Parameters
    ----------
    name : str
        Recorded with every result.
    architectures, variants : list of str
        Subsets of `training.architectures.ARCHITECTURES` and of the data variants.
    grid : dict
        Axis name (one of `GRID_AXES`) → list of values. ``dropout`` sets the
        rate of every dropout layer and ``regularizer`` (``"paper"``,
        ``"none"``, ``"l1=1e-5"``, ``"l2=1e-4"``) the kernel and recurrent
        penalties; both apply to recurrent architectures only and collapse to
        the builder's defaults for the others; ``weight_power`` is that of
        `~training.cv.TrainingConfig`. Missing axes keep the training defaults.
    design : {"factorial", "one_at_a_time"}
        ``factorial`` runs every combination of the grid's values;
        ``one_at_a_time`` runs the centre (the ``training`` settings and the
        builder's defaults) and then varies one axis at a time away from it,
        which costs the sum of the axes' lengths instead of their product.
    repeats : int
        Repeats of the K-fold split, each with its own seed.
    n_stars : int, optional
        Train on a stratified random subset of this many stars (smoke tests).
    training : dict
        Fields of `training.cv.TrainingConfig` common to every run (e.g.
        ``n_folds``, ``max_epochs``, ``patience``).
    overrides : dict
        Architecture name → `~training.cv.TrainingConfig` fields for that
        architecture only (e.g. fewer epochs for the costly convolutional nets).
    preprocessing : dict
        Fields of `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
        other than the variant (e.g. ``n_phases``, ``max_epochs``).
    export : bool
        Export and verify every member in ONNX.
    export_atol : float
        Tolerance of that check in dex (1e-5 for real runs).
    """

    name: str
    architectures: list = field(default_factory=lambda: list(ARCHITECTURES))
    variants: list = field(default_factory=lambda: list(VARIANTS))
    grid: dict = field(default_factory=dict)
    design: str = "factorial"
    repeats: int = 1
    n_stars: int | None = None
    training: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    export: bool = True
    export_atol: float = 1e-5

    def __post_init__(self):
        unknown = set(self.grid) - set(GRID_AXES)
        if unknown:
            raise ValueError(f"unknown grid axes {sorted(unknown)}; use {GRID_AXES}")
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, not {self.design!r}")
        bad = (set(self.architectures) | set(self.overrides)) - set(ARCHITECTURES)
        if bad:
            raise ValueError(f"unknown architectures {sorted(bad)}; use {sorted(ARCHITECTURES)}")

    @classmethod
    def from_json(cls, path):
        return cls(**json.loads(Path(path).read_text()))

    def to_dict(self):
        return asdict(self)


#: Built-in profiles. ``smoke`` checks the whole machinery in minutes (CI).
#: ``screen`` is the study that fits a few 2-core sessions: every architecture
#: and variant with the paper's hyperparameters, 2 repeats of 3 folds (it was
#: started with one and extended: see `training.study.run.record_profile`), at most 100 epochs
#: (25 for the convolutional nets, which cost 10-40 s per epoch here against
#: 2-5 s for the recurrent ones; they get batches of 64 and a rate of 0.001,
#: both in the paper's grid, so that batch normalisation settles in 25 epochs).
#: ``grid`` is the paper's grid search for the default architecture, one axis at
#: a time, with 2 repeats of the 3-fold split.
PROFILES = {
    "smoke": StudyProfile(
        name="smoke", n_stars=60, preprocessing={"n_phases": 32, "max_epochs": 32},
        # Two epochs leave batch normalisation at its initial statistics, and the
        # un-centred ``spline`` variant feeds magnitudes of ~15: float32 rounding
        # alone then reaches 5e-5 dex (inception). A wrong conversion is off by
        # orders of magnitude more; trained models are held to 1e-5.
        export_atol=1e-3,
        training={"n_folds": 2, "n_bins": 3, "max_epochs": 2, "patience": 2,
                  "batch_size": 32, "validation_fraction": 0.2, "run_eagerly": True},
    ),
    "screen": StudyProfile(
        name="screen", variants=["spline_centered", "raw", "spline"], repeats=2,
        # Cheapest and most promising first, so that a study cut short has them.
        architectures=["gru", "lstm", "bigru", "bilstm", "convgru", "convlstm",
                       "fcn", "resnet", "inception"],
        training={"n_folds": 3, "max_epochs": 100, "patience": 12, "reduce_lr_patience": 5,
                  "learning_rate": 0.01, "batch_size": 256, "weight_power": 0.0},
        # Batch normalisation needs many steps for its moving averages: with 12
        # batches of 256 per epoch, 25 epochs left them stale and the validation
        # loss erratic (FCN stopped at 13 epochs with RMSE 0.35 dex).
        overrides={name: {"max_epochs": 25, "patience": 6, "reduce_lr_patience": 3,
                          "batch_size": 64, "learning_rate": 0.001}
                   for name in ("fcn", "resnet", "inception", "convlstm", "convgru")},
    ),
    "grid": StudyProfile(
        name="grid", architectures=["gru"], variants=["spline_centered"],
        # The paper's axes and values, one at a time around the screen's gru
        # settings: 13 points instead of the 180 of the full product, which
        # would take ~45 CPU hours per repeat here.
        grid={"dropout": [0.1, 0.2, 0.4, 0.6], "learning_rate": [0.001, 0.01, 0.1],
              "batch_size": [32, 64, 128, 256, 512], "regularizer": ["none", "paper", "l2=1e-4"]},
        design="one_at_a_time", repeats=2,
        training={"n_folds": 3, "max_epochs": 100, "patience": 12, "reduce_lr_patience": 5,
                  "learning_rate": 0.01, "batch_size": 256, "weight_power": 0.0},
    ),
}


def _grid_points(profile, architecture, base):
    axes = {k: v for k, v in profile.grid.items()
            if architecture in RECURRENT or k not in ("dropout", "regularizer")}
    names = sorted(axes)
    if profile.design == "factorial":
        return [dict(zip(names, values))
                for values in itertools.product(*(axes[n] for n in names))]
    # One at a time: the centre, then each axis's other values. The centre's
    # dropout is the builder's per-layer default, which no single grid value equals.
    centre = {"learning_rate": base.learning_rate, "batch_size": base.batch_size,
              "weight_power": base.weight_power, "regularizer": "paper"}
    return [{}] + [{name: value} for name in names for value in axes[name]
                   if value != centre.get(name)]


def _point_label(point):
    return "_".join(f"{k}={v}" for k, v in sorted(point.items())) or "default"


def _model_kwargs(architecture, point):
    kwargs = {}
    if "dropout" in point:
        n_layers = 2 if architecture.startswith("conv") else 3
        kwargs["dropouts"] = [point["dropout"]] * n_layers
    regularizer = point.get("regularizer", "paper")
    if regularizer == "none":
        kwargs.update(kernel_l2=0.0, recurrent_l2=0.0)
    elif regularizer != "paper":
        kind, value = regularizer.split("=")
        kwargs.update({f"kernel_{kind}": float(value), f"recurrent_{kind}": float(value)})
    return kwargs


def plan_runs(profile):
    """Every run of ``profile``, as ``(run_id, description, TrainingConfig)``."""
    runs = []
    # Variant-major, then repeat-major, so that a study cut short has compared
    # every architecture and grid point on the first variant, once.
    for variant in profile.variants:
        for repeat in range(profile.repeats):
            for architecture in profile.architectures:
                base = TrainingConfig(**{**profile.training,
                                         **profile.overrides.get(architecture, {})})
                for point in _grid_points(profile, architecture, base):
                    config = TrainingConfig(**{
                        **base.to_dict(),
                        "architecture": architecture,
                        "preprocessing": PreprocessingConfig(
                            **{**profile.preprocessing, "variant": variant}).to_dict(),
                        "seed": base.seed + repeat,
                        "learning_rate": point.get("learning_rate", base.learning_rate),
                        "batch_size": point.get("batch_size", base.batch_size),
                        "weight_power": point.get("weight_power", base.weight_power),
                        "model_kwargs": {**base.model_kwargs,
                                         **_model_kwargs(architecture, point)},
                    })
                    run_id = f"{architecture}-{variant}-{_point_label(point)}-r{repeat}"
                    runs.append((run_id, {"architecture": architecture, "variant": variant,
                                          "grid_point": _point_label(point), "repeat": repeat},
                                 config))
    return runs
