"""The report of one cross-validation run: its metrics beside the peer's and the median's, and figures.

``python -m training report --run-dir RUN --out DIR`` writes it; a study's
report (`training.study.report`) covers many runs.
"""

import json
from pathlib import Path

from astropy.table import Table

from .metrics import METRICS
from .study.report import plot_loss_curves, plot_run_predictions

__all__ = ["is_cv_run", "run_summary", "write_run_report"]


def is_cv_run(folder):
    """Whether ``folder`` was made by ``python -m training cv`` (not by ``study``)."""
    folder = Path(folder)
    return (folder / "config.json").is_file() and not (folder / "profile.json").is_file()


def run_summary(metrics):
    """One row per metric: ours per fold and pooled, the peer's, predicting the median.

    Parameters
    ----------
    metrics : dict
        A run's ``metrics.json``.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``metric``, ``folds_mean``, ``folds_std``, ``pooled``,
        ``peer_pooled`` and ``median_pooled`` (NaN where the run has no peer,
        or predates the median baseline).
    """
    nan = float("nan")
    peer = metrics.get("pooled_peer") or {}
    median = metrics.get("median_baseline") or {}
    rows = [(name, metrics["validation"][name]["mean"], metrics["validation"][name]["std"],
             metrics["pooled_out_of_fold"][name], peer.get(name, nan), median.get(name, nan))
            for name in METRICS]
    table = Table(rows=rows, names=("metric", "folds_mean", "folds_std", "pooled", "peer_pooled",
                                    "median_pooled"))
    for name in table.colnames[1:]:
        table[name].info.format = ".4f"
    table.meta["n_stars"] = metrics["n_stars"]
    table.meta["peer_column"] = metrics.get("peer_column")
    table.meta["units"] = "dex, except r2"
    return table


def write_run_report(run_dir, out, *, log=print):
    """Write ``summary.ecsv``, ``true_vs_pred.png`` and ``loss_curves.png`` of a cv run into ``out``.

    Parameters
    ----------
    run_dir : path-like
        A folder made by ``python -m training cv``.
    out : path-like
        Output folder (created).
    log : callable
        Receives one line of text per file written.

    Returns
    -------
    `~astropy.table.Table`
        The summary (`run_summary`).

    Raises
    ------
    training.cv.RunError
        If the run has not finished (no ``metrics.json``).
    """
    from .errors import RunError

    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a folder: give the --run-dir of a cv run")
    if not (run_dir / "metrics.json").is_file():
        raise RunError(f"{run_dir} has no metrics.json: the run has not finished (run the same "
                       "cv command again to finish it)")
    summary = run_summary(json.loads((run_dir / "metrics.json").read_text()))
    summary.meta["run_dir"] = str(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary.write(out / "summary.ecsv", overwrite=True)
    log(f"wrote {out / 'summary.ecsv'}")
    for name, plot in (("true_vs_pred.png", plot_run_predictions),
                       ("loss_curves.png", plot_loss_curves)):
        plot(run_dir, out / name)
        log(f"wrote {out / name}")
    return summary
