"""The architecture study of the paper (its Table 4), rebuilt on our data.

A study is architectures × data variants × a hyperparameter grid × repeats of a
stratified K-fold cross-validation. Each point of that product is one *run*:
a `training.cv.run_cross_validation` folder of its own. A run whose
``metrics.json`` exists is never recomputed, and an unfinished run resumes fold
by fold, so a study too long for one session continues in the next one with
the same command.

Layout of a study directory::

    study_dir/
      profile.json            the profile the study was started with
      cache/                  pre-processed inputs, one file per variant
      runs/<run_id>/          one cross-validation run (see training.cv)
      results.ecsv            one row per finished run
      summary.ecsv            one row per architecture × variant × grid point,
                              mean ± std over all folds of all repeats
"""

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.preprocessing import VARIANTS, PreprocessingConfig

from .architectures import ARCHITECTURES, RECURRENT
from .cv import TrainingConfig, run_cross_validation
from .data import Dataset
from .files import write_json
from .folds import strata
from .metrics import METRICS

__all__ = ["StudyProfile", "PROFILES", "plan_runs", "record_profile", "run_study",
           "collect_results", "summarise"]

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
#: started with one and extended: see `record_profile`), at most 100 epochs
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


def _subset(dataset, n_stars, seed):
    """A stratified random subset of ``n_stars`` stars, in the dataset's order."""
    from sklearn.model_selection import train_test_split

    if n_stars is None or n_stars >= len(dataset):
        return dataset
    keep, _ = train_test_split(np.arange(len(dataset)), train_size=n_stars, random_state=seed,
                               stratify=strata(dataset.feh, 3))
    keep = np.sort(keep)
    return Dataset(stars=dataset.stars[keep], phases=[dataset.phases[i] for i in keep],
                   mags=[dataset.mags[i] for i in keep])


def record_profile(study_dir, profile):
    """Write ``profile`` to ``study_dir/profile.json``, or check that it continues the study there.

    A study may only be continued with its own profile, or extended with more
    repeats: the runs already finished are then exactly the first repeats of
    the extended study, so none is recomputed or made stale.

    Raises
    ------
    ValueError
        If ``study_dir`` holds a study of another profile.
    """
    profile_path = Path(study_dir) / "profile.json"
    if profile_path.exists():
        # Fields added to StudyProfile since the study started take their defaults.
        started = StudyProfile(**json.loads(profile_path.read_text())).to_dict()
        wanted = profile.to_dict()
        if ({**started, "repeats": None} != {**wanted, "repeats": None}
                or wanted["repeats"] < started["repeats"]):
            raise ValueError(f"{study_dir} holds a study of another profile; use a new folder "
                             "(a study can only be extended with more repeats)")
    write_json(profile_path, profile.to_dict())


def run_study(dataset, profile, study_dir, *, log=print, only=None):
    """Run (or resume) every run of ``profile`` in ``study_dir``.

    Parameters
    ----------
    dataset : `training.data.Dataset`
    profile : `StudyProfile`
    study_dir : path-like
        See the module docstring for its layout.
    log : callable
        Receives one line of text per step.
    only : str, optional
        Run only the runs whose id contains this text (to share a study
        between processes).

    Returns
    -------
    `~astropy.table.Table`
        `collect_results` of the study so far.
    """
    from tqdm.auto import tqdm

    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    record_profile(study_dir, profile)
    dataset = _subset(dataset, profile.n_stars, seed=TrainingConfig().seed)
    runs = [r for r in plan_runs(profile) if only is None or only in r[0]]
    todo = [r for r in runs if not (study_dir / "runs" / r[0] / "metrics.json").exists()]
    log(f"study {profile.name}: {len(runs)} runs, {len(runs) - len(todo)} already finished")
    for run_id, _, config in tqdm(todo, desc=f"study {profile.name}", unit="run"):
        run_dir = study_dir / "runs" / run_id
        start = time.perf_counter()
        log(f"run {run_id}: starting")
        metrics = run_cross_validation(dataset, config, run_dir, export=profile.export,
                                       export_atol=profile.export_atol, export_errors="record",
                                       log=lambda line, rid=run_id: log(f"{rid}: {line}"),
                                       cache_dir=study_dir / "cache", progress=False)
        elapsed = time.perf_counter() - start
        write_json(run_dir / "elapsed.json", {"elapsed_s": elapsed})
        val = metrics["validation"]
        log(f"run {run_id}: done in {elapsed:.0f} s, validation RMSE "
            f"{val['rmse']['mean']:.4f} ± {val['rmse']['std']:.4f}, "
            f"peer {metrics['peer_same_folds']['rmse']['mean']:.4f}")
    results = collect_results(study_dir, profile)
    results.write(study_dir / "results.ecsv", overwrite=True)
    summarise(study_dir, results).write(study_dir / "summary.ecsv", overwrite=True)
    return results


def collect_results(study_dir, profile):
    """One row per finished run of ``profile`` found in ``study_dir``.

    Columns: the run's identity (architecture, variant, grid point, repeat,
    seed, the exact grid and training settings as JSON), validation and
    training metrics (mean and std over folds), the peer on the same folds,
    pooled out-of-fold metrics, the members that failed the ONNX check (JSON),
    training time and elapsed time.
    """
    rows = []
    for run_id, identity, config in plan_runs(profile):
        run_dir = Path(study_dir) / "runs" / run_id
        if not (run_dir / "metrics.json").exists():
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        # The configuration the run really used (the code's defaults may have moved since).
        config = TrainingConfig(**metrics["config"])
        elapsed_path = run_dir / "elapsed.json"
        row = {"run_id": run_id, **identity, "seed": config.seed, "profile": profile.name,
               "grid": json.dumps(profile.grid, sort_keys=True),
               "config": json.dumps(config.to_dict(), sort_keys=True),
               "n_stars": metrics["n_stars"], "n_folds": config.n_folds}
        for part in ("validation", "training", "peer_same_folds"):
            prefix = {"validation": "val", "training": "train", "peer_same_folds": "peer"}[part]
            for metric in METRICS:
                row[f"{prefix}_{metric}"] = metrics[part][metric]["mean"]
                row[f"{prefix}_{metric}_std"] = metrics[part][metric]["std"]
        for metric in METRICS:
            row[f"pooled_{metric}"] = metrics["pooled_out_of_fold"][metric]
        row["export_failures"] = json.dumps(metrics.get("export_failures", []))
        row["train_time_s"] = metrics["wall_time_s"]
        row["elapsed_s"] = (json.loads(elapsed_path.read_text())["elapsed_s"]
                            if elapsed_path.exists() else np.nan)
        rows.append(row)
    return Table(rows=rows) if rows else Table()


def summarise(study_dir, results):
    """Mean ± std over all folds of all repeats, per architecture × variant × grid point."""
    if len(results) == 0:
        return Table()
    rows = []
    groups = results.group_by(["architecture", "variant", "grid_point"])
    for key, group in zip(groups.groups.keys, groups.groups):
        per_fold = {"val": [], "train": [], "peer": []}
        for run_id in group["run_id"]:
            run_dir = Path(study_dir) / "runs" / run_id
            for done in sorted(run_dir.glob("fold_*/done.json")):
                fold = json.loads(done.read_text())
                per_fold["val"].append(fold["validation"])
                per_fold["train"].append(fold["training"])
                per_fold["peer"].append(fold["peer"])
        row = {"architecture": key["architecture"], "variant": key["variant"],
               "grid_point": key["grid_point"], "n_repeats": len(group),
               "n_fold_results": len(per_fold["val"])}
        for prefix, folds in per_fold.items():
            for metric in METRICS:
                values = [f[metric] for f in folds]
                row[f"{prefix}_{metric}"] = float(np.mean(values))
                row[f"{prefix}_{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row["train_time_s"] = float(np.sum(group["train_time_s"]))
        rows.append(row)
    summary = Table(rows=rows)
    summary.sort("val_rmse")
    return summary
