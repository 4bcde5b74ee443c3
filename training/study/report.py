"""Report of an architecture study: its summary table and the paper's figures.

From a study directory made by ``python -m training study`` (see
`training.study`), finished or not::

    python -m training report --study-dir runs/screen --out docs/study

writes into ``--out``:

``summary.ecsv``
    One row per architecture × variant × grid point of the finished runs:
    mean ± std over folds of the validation and training metrics, the peer
    (``feh_dg22``) on the same validation folds, training time. Its ``meta``
    says how many runs are finished out of how many planned. No per-star data.
``profile.json``
    The profile of the study: the exact grid and reduced settings.
``*.png``
    The figures of `FIGURES`. Those that need the labelled light curves are
    skipped when the data are absent; those that need a finished run are
    skipped (and stale copies removed) while none is finished.

The documentation page ``docs/study.rst`` renders these files at build time.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from astropy.table import Table

from .plan import StudyProfile, plan_runs
from .results import collect_results, summarise

__all__ = ["FIGURES", "RUN_FIGURES", "best_run", "study_progress", "summary_table", "write_report",
           "plot_rmse_by_grid_point"]

#: File name → caption of every figure the report can make (the docs page shows them).
FIGURES = {
    "lightcurves.png": "Folded light curves of four training stars across the [Fe/H] range, "
                       "with the smoothed curve the model reads (the package's own "
                       "pre-processing) and the shipped default model's prediction; the "
                       "title starts with the star's label.",
    "feh_distribution.png": "[Fe/H] labels of the training set, raw and weighted by inverse "
                            "density, and the weights themselves (right axis).",
    "rmse_by_architecture.png": "Validation RMSE (mean ± std over folds) of every "
                                "architecture and data variant, best grid point of each; the "
                                "dashed line is the peer on the same folds.",
    "rmse_by_grid_point.png": "Validation RMSE (mean ± std over the folds of all repeats) of "
                              "every grid point, in the order of the grid's axes; the "
                              "dotted line is the centre (``default``), the dashed one the "
                              "peer on the same folds.",
    "loss_curves.png": "Training and validation loss per fold of the best run (from the Keras "
                       "histories of its members).",
    "true_vs_pred.png": "Best run: out-of-fold predicted against labelled [Fe/H], the "
                        "residuals (ours and the peer's on the same stars), and the "
                        "distributions of labels and predictions.",
}

#: Figures made from the finished runs; removed while none is finished, so
#: that a restarted study does not show another study's figures.
RUN_FIGURES = ("rmse_by_architecture.png", "rmse_by_grid_point.png", "loss_curves.png",
               "true_vs_pred.png")

_FIGSIZE = (6.4, 4.0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def study_progress(study_dir):
    """The study's profile, its planned run ids and the finished ones.

    Parameters
    ----------
    study_dir : path-like
        A study directory (``profile.json`` and ``runs/``).

    Returns
    -------
    profile : `training.study.StudyProfile`
    planned : list of str
        Every run id of the profile, in the study's order.
    finished : list of str
        The planned runs whose ``metrics.json`` exists.
    """
    study_dir = Path(study_dir)
    if not (study_dir / "profile.json").is_file():
        raise FileNotFoundError(f"{study_dir} has no profile.json: is it a study directory "
                                "made by 'python -m training study'?")
    try:
        profile = StudyProfile.from_json(study_dir / "profile.json")
    except TypeError as error:
        # A study started by an older version of training.study.
        raise ValueError(f"{study_dir / 'profile.json'} is not a profile of this version of "
                         f"training.study ({error}); rerun the study in a new folder") from None
    planned = [run_id for run_id, _, _ in plan_runs(profile)]
    finished = [r for r in planned if (study_dir / "runs" / r / "metrics.json").is_file()]
    return profile, planned, finished


def summary_table(study_dir):
    """The study's summary table, with its progress and commands in ``meta``.

    Parameters
    ----------
    study_dir : path-like

    Returns
    -------
    summary : `~astropy.table.Table`
        `training.study.summarise` of the finished runs (empty without any),
        sorted by validation RMSE.
    results : `~astropy.table.Table`
        `training.study.collect_results`: one row per finished run.
    """
    profile, planned, finished = study_progress(study_dir)
    results = collect_results(study_dir, profile)
    summary = summarise(study_dir, results)
    summary.meta.update({
        "profile": profile.name,
        "n_runs_planned": len(planned),
        "n_runs_finished": len(finished),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "study_command": f"python -m training study --profile {profile.name} "
                         f"--study-dir {study_dir}",
        "best_run": best_run(summary, results),
        "export_failures": export_failures(results),
    })
    return summary, results


def export_failures(results):
    """One line per member of the finished runs that failed the ONNX check.

    ``results`` is `training.study.collect_results`.
    """
    if len(results) == 0:
        return []
    lines = []
    for run_id, failures in zip(results["run_id"], results["export_failures"]):
        for failure in json.loads(failures):
            lines.append(f"{run_id}, fold {failure['fold']} member {failure['member']}: "
                         f"ONNX Runtime differs from Keras by {failure['max_diff']:.3g} dex; "
                         f"Keras itself, batched or alone, by {failure['keras_self_diff']:.3g} dex")
    return lines


def best_run(summary, results):
    """Run id of the best grid point's first repeat (lowest validation RMSE), or `None`."""
    if len(summary) == 0:
        return None
    best = summary[np.argmin(summary["val_rmse"])]
    same = results[(results["architecture"] == best["architecture"])
                   & (results["variant"] == best["variant"])
                   & (results["grid_point"] == best["grid_point"])]
    same.sort("repeat")
    return str(same["run_id"][0])


def plot_lightcurves(dataset, path, n_stars=4):
    """Figure (1): folded and smoothed light curves of real training stars.

    Stars at evenly spaced [Fe/H] quantiles, among those with at least the
    median number of epochs, drawn by `rrlyrae_metallicity.plotting.plot_lightcurve`.
    """
    import astropy.units as u

    from rrlyrae_metallicity.plotting import plot_lightcurve

    plt = _pyplot()
    feh = np.asarray(dataset.feh)
    epochs = np.array([len(m) for m in dataset.mags])
    candidates = np.flatnonzero(epochs >= np.median(epochs))
    targets = np.quantile(feh[candidates], np.linspace(0.05, 0.95, n_stars))
    chosen = [candidates[np.argmin(np.abs(feh[candidates] - t))] for t in targets]
    fig, axes = plt.subplots(2, (n_stars + 1) // 2, figsize=(12, 8), squeeze=False)
    for ax, i in zip(axes.ravel(), chosen):
        curve = Table({"phase": dataset.phases[i], "mag": dataset.mags[i]})
        plot_lightcurve(curve, dataset.periods[i] * u.day, label=f"label {feh[i]:.2f}", ax=ax)
        ax.title.set_fontsize("small")
    _save(fig, path)


def plot_feh_distribution(feh, path):
    """Figure (2): the [Fe/H] labels and their inverse-density training weights."""
    from ..data import density_weights

    plt = _pyplot()
    feh = np.asarray(feh, dtype=float)
    weights = density_weights(feh)
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    bins = np.linspace(feh.min(), feh.max(), 41)
    ax.hist(feh, bins=bins, color="C0", alpha=0.7, label=f"labels ({feh.size} stars)")
    ax.hist(feh, bins=bins, weights=weights, histtype="step", color="C1", lw=1.5,
            label="weighted by inverse density")
    ax.set_xlabel("[Fe/H] label [dex]")
    ax.set_ylabel("stars")
    order = np.argsort(feh)
    right = ax.twinx()
    right.plot(feh[order], weights[order], color="C3", lw=1.2)
    right.set_ylabel("weight (mean 1)", color="C3")
    right.set_yscale("log")
    ax.legend(loc="upper left", fontsize="small")
    _save(fig, path)


def plot_loss_curves(run_dir, path):
    """Figure (3): training and validation loss per fold of one run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    histories = [p for p in sorted(Path(run_dir).glob("fold_*/member_*.json"))
                 if not p.name.endswith(".export_error.json")]
    for k, member in enumerate(histories):
        history = json.loads(member.read_text())["history"]
        label = f"{member.parent.name} {member.stem}"
        epochs = np.arange(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], "-", color=f"C{k % 10}", label=f"{label} training")
        ax.plot(epochs, history["val_loss"], "--", color=f"C{k % 10}",
                label=f"{label} validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Keras loss [dex²]")
    ax.set_title(Path(run_dir).name, fontsize="small")
    ax.legend(fontsize="x-small", ncol=2)
    _save(fig, path)


def plot_run_predictions(run_dir, path):
    """Figure (4): true vs predicted [Fe/H] of one run and the two histograms."""
    from rrlyrae_metallicity.plotting import plot_true_vs_pred

    plt = _pyplot()
    oof = Table.read(Path(run_dir) / "oof_predictions.ecsv")
    fig, (scatter, residuals, distributions) = plt.subplots(1, 3, figsize=(15, 4.6))
    plot_true_vs_pred(oof["feh"], oof["feh_pred"], ax=scatter, residual_ax=residuals,
                      label="out-of-fold")
    peer_column = json.loads((Path(run_dir) / "metrics.json").read_text()).get(
        "peer_column", "feh_dg22")
    if peer_column in oof.colnames:
        peer_error = np.asarray(oof[peer_column] - oof["feh"])
        peer_error = peer_error[np.isfinite(peer_error)]  # blank peer values are not scored
        residuals.hist(peer_error, bins="auto", histtype="step", color="C1", lw=1.5,
                       label=f"peer: std = {np.std(peer_error):.3f} dex")
    if residuals.get_legend_handles_labels()[0]:
        residuals.legend(fontsize="small")
    bins = np.linspace(min(oof["feh"].min(), oof["feh_pred"].min()),
                       max(oof["feh"].max(), oof["feh_pred"].max()), 41)
    distributions.hist(oof["feh"], bins=bins, color="0.6", label="labels")
    distributions.hist(oof["feh_pred"], bins=bins, histtype="step", color="C0", lw=1.5,
                       label="predicted")
    distributions.set_xlabel("[Fe/H] [dex]")
    distributions.set_ylabel("stars")
    distributions.legend(fontsize="small")
    fig.suptitle(Path(run_dir).name, fontsize="small")
    _save(fig, path)


def plot_rmse_by_architecture(summary, architectures, variants, path):
    """Validation RMSE of every architecture × variant (best grid point), with the peer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(architectures) + 1.5))
    offsets = np.linspace(-0.2, 0.2, len(variants)) if len(variants) > 1 else [0.0]
    for offset, variant, marker in zip(offsets, variants, "osD^v"):
        for y, architecture in enumerate(architectures):
            rows = summary[(summary["architecture"] == architecture)
                           & (summary["variant"] == variant)]
            if len(rows):
                row = rows[np.argmin(rows["val_rmse"])]
                ax.errorbar(row["val_rmse"], y + offset, xerr=row["val_rmse_std"], fmt=marker,
                            color=f"C{variants.index(variant)}", ms=5,
                            label=variant if y == _first(summary, architectures, variant) else None)
    ax.axvline(np.median(summary["peer_rmse"]), color="0.3", ls="--", lw=1,
               label=f"peer, same folds ({np.median(summary['peer_rmse']):.3f} dex)")
    ax.set_yticks(range(len(architectures)), architectures)
    ax.set_ylim(len(architectures) - 0.5, -0.5)
    ax.margins(x=0.1)
    ax.set_xlabel("validation RMSE [dex]")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    _save(fig, path)


def plot_rmse_by_grid_point(summary, profile, path):
    """Validation RMSE of every grid point of a study with a grid, with the centre and the peer."""
    plt = _pyplot()
    # Every (architecture, variant, grid point) once, in the order the study plans them.
    planned = list(dict.fromkeys((i["architecture"], i["variant"], i["grid_point"])
                                 for _, i, _ in plan_runs(StudyProfile(**profile))))
    several = len({key[:2] for key in planned}) > 1
    points = []
    for architecture, variant, point in planned:
        rows = summary[(summary["architecture"] == architecture)
                       & (summary["variant"] == variant) & (summary["grid_point"] == point)]
        if len(rows):
            label = f"{architecture} {variant} {point}" if several else point
            points.append((label, rows[0]))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(points) + 1.5))
    for y, (label, row) in enumerate(points):
        ax.errorbar(row["val_rmse"], y, xerr=row["val_rmse_std"], fmt="o", color="C0", ms=5)
        if row["grid_point"] == "default":
            ax.axvline(row["val_rmse"], color="C0", ls=":", lw=1)
    peer = np.median(summary["peer_rmse"])
    ax.axvline(peer, color="0.3", ls="--", lw=1, label=f"peer, same folds ({peer:.3f} dex)")
    ax.set_yticks(range(len(points)), [label for label, _ in points])
    ax.set_ylim(len(points) - 0.5, -0.5)
    ax.margins(x=0.1)
    ax.set_xlabel("validation RMSE [dex]")
    ax.legend(fontsize="small", loc="lower right")
    _save(fig, path)


def _first(summary, architectures, variant):
    """Index of the first architecture with a result for ``variant`` (one legend entry)."""
    done = set(summary["architecture"][summary["variant"] == variant])
    return next(i for i, a in enumerate(architectures) if a in done)


def _save(fig, path):
    fig.set_layout_engine("tight")
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)


def write_report(study_dir, out, *, data_dir=None, log=print):
    """Write the summary table, the profile and the figures of a study into ``out``.

    Parameters
    ----------
    study_dir : path-like
        A study directory, finished or not (only finished runs are reported).
    out : path-like
        Output folder (created).
    data_dir : path-like, optional
        The labelled light curves (``stars.ecsv`` and ``lightcurves.ecsv``) for
        figures (1) and (2); they are skipped when `None` or absent.
    log : callable
        Receives one line of text per step.

    Returns
    -------
    summary : `~astropy.table.Table`
        The table written to ``summary.ecsv``.
    """
    study_dir, out = Path(study_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary, _ = summary_table(study_dir)
    profile = json.loads((study_dir / "profile.json").read_text())
    (out / "profile.json").write_text(json.dumps(profile, indent=2) + "\n")
    log(f"{summary.meta['n_runs_finished']} of {summary.meta['n_runs_planned']} runs finished; "
        f"summary of {len(summary)} architecture × variant × grid points")

    figures = {}
    if data_dir is not None and (Path(data_dir) / "stars.ecsv").is_file():
        from ..data import load_dataset

        dataset = load_dataset(data_dir)
        figures["lightcurves.png"] = lambda path: plot_lightcurves(dataset, path)
        figures["feh_distribution.png"] = lambda path: plot_feh_distribution(dataset.feh, path)
    else:
        log("no labelled light curves: light-curve and [Fe/H]-distribution figures skipped")
    best = summary.meta["best_run"]
    if best is not None:
        run_dir = study_dir / "runs" / best
        if len(profile["architectures"]) * len(profile["variants"]) > 1:
            figures["rmse_by_architecture.png"] = lambda path: plot_rmse_by_architecture(
                summary, profile["architectures"], profile["variants"], path)
        if profile.get("grid"):
            figures["rmse_by_grid_point.png"] = lambda path: plot_rmse_by_grid_point(
                summary, profile, path)
        figures["loss_curves.png"] = lambda path: plot_loss_curves(run_dir, path)
        figures["true_vs_pred.png"] = lambda path: plot_run_predictions(run_dir, path)
        log(f"best run so far: {best}")
    for name in FIGURES:
        path = out / name
        if name in figures:
            figures[name](path)
            log(f"wrote {path}")
        elif name in RUN_FIGURES and path.exists():
            path.unlink()
    # The docs page shows the figures listed here that are on disk.
    summary.meta["figures"] = {name: caption for name, caption in FIGURES.items()
                               if (out / name).is_file()}
    summary.meta["report_command"] = (f"python -m training report --study-dir {study_dir} "
                                      f"--out {out}")
    summary.write(out / "summary.ecsv", overwrite=True)
    log(f"wrote {out / 'summary.ecsv'}")
    return summary
