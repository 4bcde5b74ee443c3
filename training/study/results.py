"""A study's tables: one row per finished run, and the summary over repeats and folds."""

import json
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..cv import TrainingConfig
from ..metrics import METRICS
from .plan import plan_runs

__all__ = ["collect_results", "summarise"]


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
                # A data set without a peer column has no peer metrics: NaN.
                summary = metrics[part] or {metric: {"mean": np.nan, "std": np.nan}}
                row[f"{prefix}_{metric}"] = summary[metric]["mean"]
                row[f"{prefix}_{metric}_std"] = summary[metric]["std"]
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
                values = [np.nan if f is None else f[metric] for f in folds]
                row[f"{prefix}_{metric}"] = float(np.mean(values))
                row[f"{prefix}_{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row["train_time_s"] = float(np.sum(group["train_time_s"]))
        rows.append(row)
    summary = Table(rows=rows)
    summary.sort("val_rmse")
    return summary
