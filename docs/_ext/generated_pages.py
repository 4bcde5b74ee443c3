"""Sphinx extension: write the pages that follow the shipped models and the CLI.

At ``builder-inited`` it writes, under ``docs/_generated/``:

``model_card_models.rst``
    One section per model shipped in ``rrlyrae_metallicity/data/models/``
    (the default marked), from its ``manifest.json`` (uncertainty calibration
    included) and the recorded cross-validation results
    ``training/results/<name>/metrics.json``.
``cli_help.rst``
    The ``--help`` text of ``rrlyrae-feh`` and of each subcommand.

Nothing is copied by hand, so a retrained or newly shipped model shows up on
the next build.
"""

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

from rrlyrae_metallicity import models

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
        rows.append([label,
                     f"{ours[key]['mean']:.3f} ± {ours[key]['std']:.3f}{unit}",
                     f"{peer[key]['mean']:.3f} ± {peer[key]['std']:.3f}{unit}",
                     f"{pooled[key]:.3f}{unit}", f"{pooled_peer[key]:.3f}{unit}"])
    n_folds = metrics["config"]["n_folds"]
    lines = [
        f"Stratified {n_folds}-fold cross-validation on the {metrics['n_stars']} labelled stars: "
        "every star is predicted by the models of the one fold that held it out. The peer is "
        "the published Dékány & Grebel (2022) BiLSTM ensemble's own out-of-fold prediction "
        "for the same stars (``feh_dg22``), scored on the same folds. Fold columns give the "
        "mean ± standard deviation over the folds; pooled columns score all stars at once. "
        "The w-metrics weight each star by the inverse density of its label, so that the "
        "metal-poor and metal-rich tails count as much as the crowded middle.",
        "",
    ]
    lines += _table(["metric", f"{name} (folds)", "peer (folds)", f"{name} (pooled)",
                     "peer (pooled)"], rows)
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
        "where :math:`s` is the spread of the ensemble members within each cross-validation "
        f"fold, :math:`a = {floor:.3f}` dex a floor fitted by maximum likelihood and "
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
        ["spread of the members of the star's fold alone (uncalibrated)",
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


def _served_rmse(calibration):
    metrics = calibration.get("served_out_of_fold")
    return f", with an out-of-fold RMSE of {metrics['rmse']:.3f} dex" if metrics else ""


def _percent(fraction):
    return f"{100 * fraction:.1f} %"


def _model_section(name, default):
    manifest = json.loads((models._models_dir() / name / "manifest.json").read_text())
    title = f"``{name}``" + (" (default)" if name == default else "")
    lines = _heading(title, "-")
    data = manifest["training_data"]
    domain = manifest.get("training_domain", {})
    pre = manifest["preprocessing"]
    n_members = len(manifest["members"])
    folds = len({m["fold"] for m in manifest["members"]})
    lines += [
        f"An ensemble of {n_members} ONNX models of the ``{manifest['architecture']}`` "
        f"architecture ({folds} cross-validation folds × {n_members // max(folds, 1)} seeds; "
        f"ONNX opset {manifest['onnx']['opset']}), made on {manifest.get('created', '?')} from "
        f"commit ``{manifest.get('training_commit', '?')[:10]}`` by::",
        "",
        *_indent(manifest.get("produced_by", "(command not recorded)")),
        "",
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
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
    else:
        # The manifest keeps the same numbers, without the training configuration.
        metrics = dict(manifest["cv_metrics"], config=manifest["training_config"])
    lines += _metrics_section(name, metrics)
    lines += _heading("Calibration of the uncertainties", "^")
    lines += _calibration_section(manifest)
    return lines


def write_model_card(path):
    """Write the per-model sections of the model card to ``path``."""
    names = models.available_models()
    default = models.default_model_name()
    lines = [f"The package ships {len(names)} model ensemble{'s' if len(names) != 1 else ''}: "
             + ", ".join(f"``{n}``" + (" (the default)" if n == default else "") for n in names)
             + ". ``rrlyrae-feh models`` lists them too.", ""]
    for name in names:
        lines += _model_section(name, default)
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


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
