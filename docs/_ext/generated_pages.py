"""Sphinx extension: write the pages that follow the shipped models and the CLI.

At ``builder-inited`` it writes, under ``docs/_generated/``:

``model_card_models.rst``
    One section per model shipped in ``rrlyrae_metallicity/data/models/``
    (the default marked), from its ``manifest.json``, the recorded
    cross-validation results ``training/results/<name>/metrics.json`` and the
    calibration summary ``docs/model_card/calibration-<name>.json`` (written by
    ``docs/measure_calibration.py``, ignored when the model files changed since).
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

# docs/ is on sys.path (conf.py): the script that writes the calibration files
# also owns the digest that ties them to the model files.
from measure_calibration import members_digest
from rrlyrae_metallicity import models

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
GENERATED = DOCS / "_generated"
RESULTS = REPO / "training" / "results"
CALIBRATION = DOCS / "model_card"

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


def _calibration_section(name, manifest, rmse):
    path = CALIBRATION / f"calibration-{name}.json"
    command = f"``python docs/measure_calibration.py --name {name}``"
    if not path.is_file():
        return [f"The calibration of this model's uncertainties has not been measured yet "
                f"(run {command} beside the shared training data).", ""]
    calibration = json.loads(path.read_text())
    if calibration.get("members_sha256") != members_digest(manifest):
        return [f"The calibration recorded in ``docs/model_card/{path.name}`` is for an earlier "
                f"version of this model; run {command} again.", ""]
    full, oof = calibration["full_ensemble"], calibration["out_of_fold"]
    well = full["fraction_within_1std"] > 0.6 and full["scale_for_68pct"] < 1.5
    verdict = ("roughly calibrated" if well else
               "**not calibrated**: they are much smaller than the errors")
    rows = [
        ["all members (what ``feh_phot_std`` reports)",
         f"{full['median_std']:.3f} dex", f"{100 * full['fraction_within_1std']:.0f} %",
         f"{100 * full['fraction_within_2std']:.0f} %", f"{full['scale_for_68pct']:.1f}"],
        [f"the {calibration['members_per_fold']} members of the star's own fold",
         f"{oof['median_std']:.3f} dex", f"{100 * oof['fraction_within_1std']:.0f} %",
         f"{100 * oof['fraction_within_2std']:.0f} %", f"{oof['scale_for_68pct']:.1f}"],
    ]
    lines = [
        f"``feh_phot_std`` is the standard deviation of the {calibration['n_members']} ensemble "
        f"members' predictions. Compared with the out-of-fold errors of the "
        f"{calibration['n_stars']} training stars (RMSE {rmse:.3f} dex), these uncertainties "
        f"are {verdict}. For a calibrated Gaussian uncertainty, 68 % of the stars would lie "
        "within one standard deviation of their label and 95 % within two.",
        "",
    ]
    lines += _table(["spread of", "median std", r"\|error\| < std", r"\|error\| < 2 std",
                     "factor for 68 %"], rows)
    lines += [
        "The last column is the factor by which the standard deviation would have to be "
        "multiplied for 68 % of the stars to fall within it. The members of one fold agree "
        "with each other far more than with the label: the spread measures how much models "
        "trained on the same light curves disagree, not how far the light curve is from "
        "determining [Fe/H] (photometric noise, sparse phase coverage, scatter of the labels "
        "themselves). **Use** ``feh_phot_std`` **as a relative quality indicator, not as an "
        "error bar**; the RMSE above is the better estimate of a typical error.",
        "",
    ]
    return lines


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
    lines += _calibration_section(name, manifest, metrics["pooled_out_of_fold"]["rmse"])
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
