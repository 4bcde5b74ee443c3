"""Render cross-validation metrics as the Markdown table shown in the README."""

import re
from pathlib import Path

__all__ = ["cv_table", "update_readme"]

_LABELS = {"r2": "R²", "rmse": "RMSE", "mae": "MAE", "wrmse": "wRMSE", "wmae": "wMAE"}
_MARKER = re.compile(r"<!-- CV-TABLE -->.*?(?=\n## |\Z)", re.S)


def cv_table(metrics, name):
    """Markdown table: our out-of-fold metrics next to the peer's on the same stars.

    Parameters
    ----------
    metrics : dict
        Content of a run's ``metrics.json``.
    name : str
        Model name shown in the header.

    Returns
    -------
    str
    """
    ours, peer = metrics["validation"], metrics["peer_same_folds"]
    pooled, pooled_peer = metrics["pooled_out_of_fold"], metrics["pooled_peer"]
    config = metrics["config"]
    lines = [
        f"Stratified {config['n_folds']}-fold cross-validation on the "
        f"{metrics['n_stars']} labelled Gaia DR2 RRab stars (out-of-fold predictions; "
        "mean ± std over folds, and pooled over all stars). The peer is the published "
        "Dékány & Grebel (2022) BiLSTM ensemble's out-of-fold prediction for the same stars "
        "(`feh_dg22`). Units: dex (R² unitless); w = weighted by inverse [Fe/H] density.",
        "",
        f"| metric | {name} (folds) | peer (same folds) | {name} (pooled) | peer (pooled) |",
        "|---|---|---|---|---|",
    ]
    for key, label in _LABELS.items():
        lines.append(
            f"| {label} | {ours[key]['mean']:.4f} ± {ours[key]['std']:.4f} "
            f"| {peer[key]['mean']:.4f} ± {peer[key]['std']:.4f} "
            f"| {pooled[key]:.4f} | {pooled_peer[key]:.4f} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(readme, metrics, name, command):
    """Replace the README's ``<!-- CV-TABLE -->`` section with the current table."""
    readme = Path(readme)
    text = readme.read_text()
    block = (f"<!-- CV-TABLE -->\n{cv_table(metrics, name)}\nProduced by `{command}` "
             f"({metrics['wall_time_s'] / 60:.0f} min of training on 2 CPU cores).\n")
    if not _MARKER.search(text):
        raise ValueError(f"{readme} has no <!-- CV-TABLE --> marker")
    readme.write_text(_MARKER.sub(lambda _: block, text, count=1))
