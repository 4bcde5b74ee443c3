"""Sphinx extension: write the pages that follow the shipped models and the CLI.

At ``builder-inited`` it writes, under ``docs/_generated/``:

``model_card_models.rst``
    One section per model shipped in ``rrlyrae_metallicity/data/models/``
    (the default marked), from its ``manifest.json`` (uncertainty calibration
    included) and the recorded cross-validation results
    ``training/results/<name>/metrics.json``.
``cli_help.rst``
    The ``--help`` text of ``rrlyrae-feh`` and of each subcommand.
``study.rst``, ``grid.rst``
    The architecture study's and the grid search's summary tables, settings
    and figures, from ``docs/study/`` and ``docs/grid/`` (written by
    ``python -m training report``).

Nothing is copied by hand, so a retrained or newly shipped model shows up on
the next build.
"""

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

from rrlyrae_metallicity import models, registry

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
GENERATED = DOCS / "_generated"
RESULTS = REPO / "training" / "results"

_METRICS = {"r2": ("R²", ""), "rmse": ("RMSE", " dex"), "mae": ("MAE", " dex"),
            "wrmse": ("wRMSE", " dex"), "wmae": ("wMAE", " dex")}
# Width of the generated --help text (argparse reads COLUMNS).
_HELP_COLUMNS = "88"


def _heading(text, char):
    return [text, char * len(text), ""]


def _indent(text, prefix="   "):
    return [prefix + line if line else "" for line in text.splitlines()]


def _table(header, rows):
    """Return the lines of an rst list-table."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines + [""]


def _metrics_section(name, metrics):
    ours, peer = metrics["validation"], metrics["peer_same_folds"]
    pooled, pooled_peer = metrics["pooled_out_of_fold"], metrics["pooled_peer"]
    rows = []
    for key, (label, unit) in _METRICS.items():
        row = [label, f"{ours[key]['mean']:.3f} ± {ours[key]['std']:.3f}{unit}"]
        if peer is not None:
            row.append(f"{peer[key]['mean']:.3f} ± {peer[key]['std']:.3f}{unit}")
        row.append(f"{pooled[key]:.3f}{unit}")
        if pooled_peer is not None:
            row.append(f"{pooled_peer[key]:.3f}{unit}")
        rows.append(row)
    n_folds = metrics["config"]["n_folds"]
    peer_column = metrics.get("peer_column", "feh_dg22")
    versus = ("The peer is the published Dékány & Grebel (2022) BiLSTM ensemble's own "
              "out-of-fold prediction for the same stars (``feh_dg22``), scored on the same "
              "folds. " if peer_column == "feh_dg22" else
              f"The peer is the training set's ``{peer_column}`` column, scored on the same "
              "folds. ") if peer is not None else "The training set has no peer column. "
    lines = [
        f"Stratified {n_folds}-fold cross-validation on the {metrics['n_stars']} labelled stars: "
        "every star is predicted by the models of the one fold that held it out. " + versus
        + "Fold columns give the "
        "mean ± standard deviation over the folds; pooled columns score all stars at once. "
        "The w-metrics weight each star by the inverse density of its label, so that the "
        "metal-poor and metal-rich tails count as much as the crowded middle.",
        "",
    ]
    header = ["metric", f"{name} (folds)", "peer (folds)", f"{name} (pooled)", "peer (pooled)"]
    if peer is None:
        header = [header[0], header[1], header[3]]
    lines += _table(header, rows)
    if "wall_time_s" in metrics:
        lines += [f"Training took {metrics['wall_time_s'] / 60:.0f} min (wall clock).", ""]
    return lines


def _calibration_section(manifest):
    calibration = manifest.get("uncertainty_calibration")
    if not calibration:
        return [
            "This model has **no uncertainty calibration** in its manifest: its "
            "``feh_phot_std`` is the raw standard deviation of the members' predictions, "
            "which measures how much the members disagree and is **not calibrated** (it is "
            "typically several times smaller than the real errors). Calibrate it with "
            f"``python -m training calibrate --name {manifest['name']}`` beside the shared "
            "training data.",
            "",
        ]
    floor, scale = calibration["floor_dex"], calibration["scale"]
    lines = [
        "``feh_phot_std`` is calibrated on the out-of-fold errors of the training stars: "
        "for each star,",
        "",
        ".. math::",
        "",
        r"   \sigma = c\,\sqrt{a^2 + s^2},",
        "",
        f"where :math:`s` is {_spread_words(manifest)}, "
        f":math:`a = {floor:.3f}` dex a floor fitted by maximum likelihood and "
        f":math:`c = {scale:.2f}` a scale that makes 68.3 % of the errors smaller than "
        ":math:`\\sigma` (`rrlyrae_metallicity.uncertainty`). The coverage below is "
        "cross-fitted: each fold's stars are scored with a calibration fitted on the other "
        "folds only.",
        "",
    ]
    rows = [
        ["calibrated ``feh_phot_std``", f"{calibration['crossfit_median_std_dex']:.3f} dex",
         _percent(calibration["crossfit_coverage_1std"]),
         _percent(calibration["crossfit_coverage_2std"])],
        [("spread of the components' single-fold means (uncalibrated)"
          if "components" in manifest else
          "spread of the members of the star's fold alone (uncalibrated)"),
         f"{calibration['uncalibrated_median_spread_dex']:.3f} dex",
         _percent(calibration["uncalibrated_coverage_1std"]), "—"],
    ]
    lines += _table(["uncertainty", "median", r"\|error\| < 1σ", r"\|error\| < 2σ"], rows)
    lines.append("A Gaussian would put 68.3 % of the stars within 1σ and 95.4 % within 2σ.")
    if calibration["crossfit_coverage_2std"] < 0.94:
        lines[-1] += (" The errors have heavier tails than a Gaussian, so 2σ intervals hold "
                      "fewer stars than a Gaussian's would.")
    served = calibration.get("served_preprocessing")
    if served:
        lines += ["", "It was measured through the pre-processing the package serves ("
                  + ", ".join(f"``{k}={v!r}``" for k, v in served.items()) + ")"
                  + _served_rmse(calibration) + "."]
    return lines + [""]


def _spread_words(manifest):
    if manifest.get("crossfit_members"):
        return "zero: a single network has no members whose spread could be measured"
    if "components" in manifest:
        return ("the spread of the components' single-fold means about the composite mean "
                "(out of fold, how much the architectures disagree; at prediction time "
                "the folds' scatter adds to it)")
    return "the spread of the ensemble members within each cross-validation fold"


def _served_rmse(calibration):
    metrics = calibration.get("served_out_of_fold")
    return f", with an out-of-fold RMSE of {metrics['rmse']:.3f} dex" if metrics else ""


def _percent(fraction):
    return f"{100 * fraction:.1f} %"


def _model_section(name, default):
    manifest = registry.read_manifest(name).to_dict()
    title = f"``{name}``" + (" (default)" if name == default else "")
    lines = _heading(title, "-")
    data = manifest["training_data"]
    domain = manifest.get("training_domain", {})
    pre = manifest["preprocessing"]
    made = (f"made on {manifest.get('created', '?')} from commit "
            f"``{manifest.get('training_commit', '?')[:10]}`` by::")
    if "components" in manifest:
        parts = " and ".join(f"``{c['name']}`` (weight {c['weight']:g})"
                             for c in manifest["components"])
        lines += [f"An ensemble across architectures: the weighted mean of the shipped "
                  f"models {parts}, whose ONNX members it shares (it has no files of its "
                  f"own), with its own stretch and uncertainty calibration; {made}"]
    elif manifest.get("crossfit_members"):
        config = manifest["training_config"]
        lines += [f"One ONNX network of the ``{manifest['architecture']}`` architecture "
                  f"distilled from the ensemble ``{config['distilled_from']}``: it was taught "
                  f"the ensemble's predictions (`training.distill`), starting from a fold model "
                  f"of a cross-validation run with this model's pre-processing. Its "
                  f"{len(manifest['crossfit_members'])} fold students, each taught by the "
                  "members of one fold on the other folds' stars, are shipped beside it for "
                  "checks and never serve a prediction: they give the out-of-fold predictions "
                  f"below (ONNX opset {manifest['onnx']['opset']}); {made}"]
    else:
        n_members = len(manifest["members"])
        folds = len({m["fold"] for m in manifest["members"]})
        lines += [f"An ensemble of {n_members} ONNX models of the ``{manifest['architecture']}`` "
                  f"architecture ({folds} cross-validation folds × {n_members // max(folds, 1)} "
                  f"seeds; ONNX opset {manifest['onnx']['opset']}), {made}"]
    lines += [
        "",
        *_indent(manifest.get("produced_by", "(command not recorded)")),
        "",
    ]
    warning = (manifest.get("quality") or {}).get("warning")
    if warning:
        lines += [".. warning::", "", f"   This model is {warning}.", ""]
    lines += [
        *_heading("Training data", "^"),
        f"- **Light curves**: {data['description']}.",
        f"- **Labels** ({data.get('label_unit', 'dex')}): {data['label']}.",
    ]
    ranges = {"period_d": ("period", "d"), "amplitude_mag": ("G amplitude", "mag"),
              "n_epochs": ("epochs", ""), "feh_dex": ("[Fe/H]", "dex")}
    spans = [f"{label} from {domain[key][0]:.3g} to {domain[key][1]:.3g} {unit}".rstrip()
             for key, (label, unit) in ranges.items() if key in domain]
    if spans:
        lines.append("- **Training domain**: " + "; ".join(spans) + ". Stars outside the "
                     "period, amplitude or epoch-count range get a non-empty ``feh_domain``.")
    lines += [
        "",
        *_heading("Pre-processing", "^"),
        "Parameters (`~rrlyrae_metallicity.preprocessing.PreprocessingConfig`): "
        + ", ".join(f"``{key}={value!r}``" for key, value in pre.items()) + ".",
        "",
        *_heading("Cross-validated accuracy", "^"),
    ]
    metrics_path = RESULTS / name / "metrics.json"
    if "components" in manifest:
        metrics = manifest["cv_metrics"]
        lines += _composite_metrics_section(manifest)
    elif manifest.get("crossfit_members"):
        metrics = manifest["cv_metrics"]
        lines += _distilled_metrics_section(manifest)
    else:
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
        else:
            # The manifest keeps the same numbers, without the training configuration.
            metrics = dict(manifest["cv_metrics"], config=manifest["training_config"])
        lines += _metrics_section(name, metrics)
    lines += _heading("Stretch of the predictions", "^")
    lines += _stretch_section(manifest, metrics["pooled_peer"])
    lines += _heading("Calibration of the uncertainties", "^")
    lines += _calibration_section(manifest)
    return lines


def _composite_metrics_section(manifest):
    """Pooled out-of-fold metrics of a composite, of its components and of the peer."""
    metrics = manifest["cv_metrics"]
    components = metrics["components_out_of_fold"]
    header = ["metric (pooled)", *(f"``{c}`` alone (unstretched)" for c in components),
              "composite (unstretched)", "peer"]
    rows = [[label, *(f"{components[c][key]:.4f}{unit}" for c in components),
             f"{metrics['pooled_out_of_fold'][key]:.4f}{unit}",
             f"{metrics['pooled_peer'][key]:.4f}{unit}"] for key, (label, unit) in _METRICS.items()]
    return [
        f"Every one of the {metrics['n_stars']} labelled stars is predicted by the members of "
        "its own held-out fold of each component (the components may have different "
        "folds), so the composite's predictions are out-of-fold too. The served, stretched "
        "accuracy follows in the next section.",
        "",
        *_table(header, rows),
    ]


def _distilled_metrics_section(manifest):
    """Pooled out-of-fold metrics of a distilled model, of its teacher and of the peer."""
    metrics = manifest["cv_metrics"]
    teacher = manifest["training_config"]["distilled_from"]
    peer = metrics.get("pooled_peer")
    header = ["metric (pooled)", "student (unstretched)", f"teacher ``{teacher}`` "
              "(unstretched)"] + ([] if peer is None else ["peer"])
    rows = [[label, f"{metrics['pooled_out_of_fold'][key]:.4f}{unit}",
             f"{metrics['teacher_out_of_fold'][key]:.4f}{unit}"]
            + ([] if peer is None else [f"{peer[key]:.4f}{unit}"])
            for key, (label, unit) in _METRICS.items()]
    return [
        f"Every one of the {metrics['n_stars']} labelled stars is predicted by the fold "
        "student that never saw it, taught by the teacher's members that never saw it "
        "either; the teacher column is those members' mean. The fold students' predictions "
        f"and the teacher's differ by {metrics['student_minus_teacher_rms_dex']:.3f} dex RMS. "
        "The served, stretched accuracy follows in the next section.",
        "",
        *_table(header, rows),
    ]


def _stretch_section(manifest, peer):
    stretch = manifest.get("output_stretch")
    if not stretch:
        return ["The predictions are served as the members output them (no "
                "``output_stretch`` in the manifest).", ""]
    raw, crossfit = stretch["unstretched_out_of_fold"], stretch["crossfit_out_of_fold"]
    rows = [[label, f"{raw[key]:.4f}{unit}", f"{crossfit[key]:.4f}{unit}"]
            + ([] if peer is None else [f"{peer[key]:.4f}{unit}"])
            for key, (label, unit) in _METRICS.items()]
    lines = [
        f"The members' predictions are stretched about the median prediction, "
        f"{stretch['centre_dex']:.3f} dex, by a factor {stretch['factor']:.3f} "
        "(`rrlyrae_metallicity.stretch`), fitted to minimise the sum of the mean squared "
        "error and the density-weighted one, so that the metal-poor and metal-rich tails are "
        "pulled less towards the crowded middle. The table scores the served out-of-fold "
        "predictions without it and with it, cross-fitted (each fold stretched by the factor "
        f"fitted on the other folds: {', '.join(f'{f:.3f}' for f in stretch['crossfit_factors'])}).",
        "",
    ]
    header = ["metric (pooled)", "unstretched", "stretched (cross-fitted)", "peer"]
    return lines + _table(header if peer is not None else header[:3], rows)


def write_model_card(path):
    """Write the per-model sections of the model card to ``path``."""
    names = models.available_models()
    default = models.default_model_name()
    lines = [f"The package ships {len(names)} model{'s' if len(names) != 1 else ''}: "
             + ", ".join(f"``{n}``" + (" (the default)" if n == default else "") for n in names)
             + ". ``rrlyrae-feh models`` lists them too.", ""]
    for name in names:
        lines += _model_section(name, default)
    _write_if_changed(path, "\n".join(lines) + "\n")


def _study_commands(profile, docs_folder):
    return (f"python -m training study --profile {profile} --study-dir runs/{profile}",
            f"python -m training report --study-dir runs/{profile} --out docs/{docs_folder}")


def _fold_metric(row, prefix, metric):
    return f"{row[f'{prefix}_{metric}']:.3f} ± {row[f'{prefix}_{metric}_std']:.3f}"


def _study_tables(summary):
    """The validation (with the peer) and training tables of a study summary."""
    labels = [label for label, _ in _METRICS.values()]
    identity = ["architecture", "variant", "grid point", "runs"]
    validation, training = [], []
    for row in summary:
        first = [f"``{row['architecture']}``", row["variant"], f"``{row['grid_point']}``",
                 str(row["n_repeats"])]
        validation.append(first + [_fold_metric(row, "val", m) for m in _METRICS]
                          + [_fold_metric(row, "peer", "rmse"),
                             f"{row['train_time_s'] / 60:.0f}"])
        training.append(first + [_fold_metric(row, "train", m) for m in _METRICS])
    lines = _heading("Validation folds", "-")
    lines += [
        "Mean ± standard deviation over the validation folds of all repeats (R² unitless, "
        "the others in dex; w = weighted by inverse [Fe/H] density), best first. The peer "
        "is ``feh_dg22`` scored on the same folds; the time is the wall-clock training time "
        "of all repeats.",
        "",
    ]
    lines += _table(identity + labels + ["peer RMSE", "minutes"], validation)
    lines += _heading("Training folds", "-")
    lines += ["The same metrics on the training folds: the gap to the validation folds "
              "shows how much each network over-fits.", ""]
    return lines + _table(identity + labels, training)


def _setting_text(key, value):
    texts = {
        "n_folds": f"{value}-fold stratified cross-validation",
        "max_epochs": f"at most {value} epochs",
        "patience": f"early stopping after {value} epochs without improvement",
        "reduce_lr_patience": (f"learning rate halved after {value} epochs without improvement"
                               if value else "fixed learning rate"),
        "learning_rate": f"Adam learning rate {value}",
        "batch_size": f"batches of {value}",
        "weight_power": ("unweighted loss" if value == 0 else
                         "the paper's inverse-density weights in the loss" if value == 1 else
                         f"inverse-density weights to the power {value} in the loss"),
    }
    return texts.get(key, f"``{key}={value!r}``")


def _profile_lines(profile):
    """Sentences stating a study profile's settings, read from its JSON."""
    settings = "; ".join(_setting_text(k, v) for k, v in profile["training"].items())
    lines = [
        f"- **Profile** ``{profile['name']}``: {len(profile['architectures'])} architectures "
        f"({', '.join(f'``{a}``' for a in profile['architectures'])}) × "
        f"{len(profile['variants'])} data variants "
        f"({', '.join(f'``{v}``' for v in profile['variants'])}), "
        f"{profile['repeats']} repeat{'s' if profile['repeats'] != 1 else ''} of the split, "
        + (f"a stratified subset of {profile['n_stars']} stars." if profile.get("n_stars")
           else "all labelled stars."),
        f"- **Every run**: {settings or 'the training defaults'}.",
    ]
    groups = {}
    for architecture, override in profile.get("overrides", {}).items():
        groups.setdefault(json.dumps(override, sort_keys=True), []).append(architecture)
    for override, architectures in groups.items():
        text = "; ".join(_setting_text(k, v) for k, v in json.loads(override).items())
        lines.append(f"- **Instead** for {', '.join(f'``{a}``' for a in architectures)}: {text}.")
    grid = profile.get("grid") or {}
    design = (" (one axis at a time: the settings above, then each value below with the "
              "other axes left there)" if profile.get("design") == "one_at_a_time" else "")
    lines.append(f"- **Grid**{design}: "
                 + ("; ".join(f"``{k}`` in {v}" for k, v in grid.items())
                    if grid else "none: the paper's hyperparameters") + ".")
    if profile.get("preprocessing"):
        lines.append("- **Pre-processing**: " + ", ".join(
            f"``{k}={v!r}``" for k, v in profile["preprocessing"].items()) + ".")
    lines.append("- Other settings are the defaults of ``training.cv.TrainingConfig``.")
    return lines + [""]


def write_study_page(path, study=None, *, profile="screen", docs_folder="study"):
    """Write a study's results (``docs/<docs_folder>/``, made by ``python -m training report``).

    ``profile`` and ``docs_folder`` name the commands that make it and the
    folder its figures are served from.
    """
    from astropy.table import Table

    study = DOCS / docs_folder if study is None else Path(study)
    commands = [".. code-block:: bash", "",
                *(f"   {c}" for c in _study_commands(profile, docs_folder)), ""]
    if not (study / "summary.ecsv").is_file():
        lines = ["The study has not been run yet: no ``docs/study/summary.ecsv``. Run", "",
                 *commands, "and build the documentation again.", ""]
        _write_if_changed(path, "\n".join(lines) + "\n")
        return
    summary = Table.read(study / "summary.ecsv")
    meta = summary.meta
    complete = meta["n_runs_finished"] == meta["n_runs_planned"]
    progress = (f"**All {meta['n_runs_planned']} planned runs are finished** "
                f"(report of {meta['created']}). " if complete else
                f"**{meta['n_runs_finished']} of {meta['n_runs_planned']} planned runs are "
                f"finished** (report of {meta['created']}); the table and figures show the "
                "finished runs only. ")
    lines = [progress + "Made by:", "", *commands]
    if (study / "profile.json").is_file():
        lines += _profile_lines(json.loads((study / "profile.json").read_text()))
    if len(summary):
        lines += _study_tables(summary)
    else:
        lines += ["No run has finished yet.", ""]
    if meta.get("export_failures"):
        # Their Keras metrics are in the tables; only the ONNX files are missing.
        lines += ["Members that failed the ONNX check (their Keras metrics are in the table; "
                  "no ONNX file was written for them):", "",
                  *(f"- ``{line.split(',')[0]}``,{line.split(',', 1)[1]}"
                    for line in meta["export_failures"]), ""]
    lines += _heading("Figures", "-")
    if meta.get("best_run"):
        lines += [f"The best run{'' if complete else ' so far'} is ``{meta['best_run']}``.", ""]
    for name, caption in meta.get("figures", {}).items():
        if (study / name).is_file():
            lines += [f".. figure:: /{docs_folder}/{name}", "   :width: 100%", "",
                      f"   {caption}", ""]
    _write_if_changed(path, "\n".join(lines) + "\n")


def write_cli_help(path):
    """Write the ``--help`` text of ``rrlyrae-feh`` and its subcommands to ``path``."""
    from rrlyrae_metallicity.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _HELP_COLUMNS
    try:
        parser = build_parser()
        subparsers = next(action for action in parser._actions
                          if isinstance(action, argparse._SubParsersAction))
        lines = []
        for words, sub in [([], parser)] + [([n], p) for n, p in subparsers.choices.items()]:
            command = " ".join(["rrlyrae-feh", *words, "--help"])
            lines += _heading(f"``{command}``", "^")
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                sub.print_help()
            lines += [".. code-block:: text", "", *_indent(buffer.getvalue()), ""]
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    _write_if_changed(path, "\n".join(lines) + "\n")


def _write_if_changed(path, text):
    # Rewriting an unchanged file would make Sphinx rebuild every page that includes it.
    path.parent.mkdir(exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _generate(app):
    write_model_card(GENERATED / "model_card_models.rst")
    write_cli_help(GENERATED / "cli_help.rst")
    write_study_page(GENERATED / "study.rst")
    write_study_page(GENERATED / "grid.rst", profile="grid", docs_folder="grid")


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
