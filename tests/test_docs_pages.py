"""The generated documentation pages follow the shipped models and the CLI (docs/_ext)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from rrlyrae_metallicity import models, registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
if not (DOCS / "_ext" / "generated_pages.py").is_file():
    pytest.skip("the repository's docs/ are not here", allow_module_level=True)
sys.path[:0] = [str(DOCS), str(DOCS / "_ext")]
import generated_pages


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    """The shipped ``gru`` ensemble plus a second one, ``fcn``, made the default."""
    shipped = "gru"
    root = tmp_path / "models"
    (root / shipped).mkdir(parents=True)
    manifest = json.loads((registry.models_directory() / shipped / "manifest.json").read_text())
    (root / shipped / "manifest.json").write_text(json.dumps(manifest))
    # fcn has no uncertainty calibration: its page must say so.
    other = dict(manifest, name="fcn", architecture="fcn",
                 members=[dict(m, sha256="0" * 64) for m in manifest["members"]])
    other.pop("uncertainty_calibration", None)
    other.pop("output_stretch", None)
    (root / "fcn").mkdir()
    (root / "fcn" / "manifest.json").write_text(json.dumps(other))
    (root / "default.json").write_text(json.dumps({"default": "fcn"}))
    monkeypatch.setattr(registry, "models_directory", lambda: root)
    # No recorded training results for fcn: the page falls back to the manifest.
    results = tmp_path / "results"
    if (generated_pages.RESULTS / shipped).is_dir():
        shutil.copytree(generated_pages.RESULTS / shipped, results / shipped)
    monkeypatch.setattr(generated_pages, "RESULTS", results)
    return shipped


def test_model_card_lists_every_shipped_model_and_marks_the_default(two_models, tmp_path):
    out = tmp_path / "card.rst"
    generated_pages.write_model_card(out)
    text = out.read_text()
    assert "The package ships 2 models" in text
    assert "``fcn`` (default)\n-----" in text
    assert f"``{two_models}``\n-----" in text
    # Both get the accuracy table next to the peer's, from results or manifest.
    assert text.count("peer (pooled)") == 2
    rmse = json.loads((registry.models_directory() / two_models / "manifest.json").read_text())
    rmse = rmse["cv_metrics"]["pooled_out_of_fold"]["rmse"]
    assert f"{rmse:.3f} dex" in text


def _sections(shipped, tmp_path):
    """The generated model-card text of the ``fcn`` model, of the shipped one, and its manifest."""
    out = tmp_path / "card.rst"
    generated_pages.write_model_card(out)
    text = out.read_text()
    fcn = text.split("``fcn`` (default)")[1].split(f"``{shipped}``")[0]
    manifest = json.loads((registry.models_directory() / shipped / "manifest.json").read_text())
    return fcn, text.split(f"``{shipped}``\n")[1], manifest


def test_calibrated_model_shows_its_coverage(two_models, tmp_path):
    _, shipped, manifest = _sections(two_models, tmp_path)
    calibration = manifest["uncertainty_calibration"]
    for key in ("crossfit_coverage_1std", "crossfit_coverage_2std",
                "uncalibrated_coverage_1std"):
        assert f"{100 * calibration[key]:.1f} %" in shipped
    assert f"{calibration['crossfit_median_std_dex']:.3f} dex" in shipped
    assert f":math:`a = {calibration['floor_dex']:.3f}` dex" in shipped
    assert f":math:`c = {calibration['scale']:.2f}`" in shipped
    assert "not calibrated" not in shipped


def test_model_without_calibration_says_it_is_not_calibrated(two_models, tmp_path):
    fcn, _, _ = _sections(two_models, tmp_path)
    assert "no uncertainty calibration" in fcn and "**not calibrated**" in fcn
    assert "python -m training calibrate --name fcn" in fcn
    assert "cross-fitted" not in fcn


def test_model_card_shows_the_stretch_and_what_it_gains(two_models, tmp_path):
    fcn, shipped, manifest = _sections(two_models, tmp_path)
    stretch = manifest["output_stretch"]
    assert f"by a factor {stretch['factor']:.3f}" in shipped
    for key in ("rmse", "wrmse", "wmae"):
        assert f"{stretch['crossfit_out_of_fold'][key]:.4f} dex" in shipped
        assert f"{stretch['unstretched_out_of_fold'][key]:.4f} dex" in shipped
    assert "no ``output_stretch``" in fcn


def test_cli_help_page_has_every_subcommand(tmp_path):
    out = tmp_path / "cli.rst"
    generated_pages.write_cli_help(out)
    text = out.read_text()
    for command in ("rrlyrae-feh --help", "rrlyrae-feh predict --help",
                    "rrlyrae-feh models --help"):
        assert f"``{command}``" in text
    assert "--periods VARI_RRLYRAE_FILE" in text and "exit codes" in text


def test_model_card_describes_the_composite_by_its_components(tmp_path):
    out = tmp_path / "card.rst"
    generated_pages.write_model_card(out)
    section = out.read_text().split("``gru_inception``\n-----")[1].split("\n``inception``\n")[0]
    manifest = models.load_model("gru_inception").manifest
    assert "weighted mean of the shipped models ``gru`` (weight 0.5) and ``inception``" in section
    # Each component alone, the composite and the peer, pooled out of fold.
    components = manifest["cv_metrics"]["components_out_of_fold"]
    assert f"{components['inception']['rmse']:.4f} dex" in section
    assert f"{manifest['cv_metrics']['pooled_out_of_fold']['rmse']:.4f} dex" in section
    served = manifest["output_stretch"]["crossfit_out_of_fold"]
    assert f"{served['wrmse']:.4f} dex" in section
    assert "components' single-fold means" in section


def test_model_card_describes_the_distilled_default_against_its_teacher(tmp_path):
    out = tmp_path / "card.rst"
    generated_pages.write_model_card(out)
    text = out.read_text()
    assert "``gru_distilled`` (default)\n-----" in text
    section = text.split("``gru_distilled`` (default)\n")[1].split("``gru_inception``\n")[0]
    manifest = models.load_model("gru_distilled").manifest
    assert "One ONNX network of the ``gru`` architecture distilled from the ensemble ``gru``" \
        in section
    assert "5 fold students" in section
    metrics = manifest["cv_metrics"]
    for key in ("rmse", "wrmse"):
        assert f"{metrics['pooled_out_of_fold'][key]:.4f} dex" in section
        assert f"{metrics['teacher_out_of_fold'][key]:.4f} dex" in section
        assert f"{manifest['output_stretch']['crossfit_out_of_fold'][key]:.4f} dex" in section
    assert "a single network has no members" in section


def _code_blocks(text):
    """The lines of every fenced (Markdown) or indented code-block (rst) of ``text``."""
    blocks, current, fenced = [], None, False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            if fenced:
                current = []
                blocks.append(current)
            continue
        if fenced:
            current.append(line.strip())
        elif line.startswith("   python -m training"):
            blocks.append([line.strip()])
    return [line for block in blocks for line in block]


def test_readme_and_retraining_page_agree_on_how_to_retrain():
    readme = (DOCS.parent / "README.md").read_text()
    page = (DOCS / "retraining.rst").read_text()
    for text in (readme, page):
        assert "from the repository root" in " ".join(text.split())
        assert "calibrate and domain need not be run after ship" in " ".join(text.split())
    # The commands that made the shipped default, in the same order in both.
    made = ["python -m training cv --run-dir runs/gru --members-per-fold 2 --reduce-lr-patience "
            "20 --patience 50 --max-epochs 800 --weight-power 0 --units 40 32 16",
            "python -m training ship --run-dir runs/gru --name gru",
            "python -m training calibrate --name gru",
            "python -m training error-model --name gru",
            "python -m training distill --run-dir runs/gru_distilled_m16 --teacher gru "
            "--outlier-threshold 16 --seed 2",
            "python -m training ship --run-dir runs/gru_distilled_m16 --name gru_distilled "
            "--default",
            "python -m training calibrate --name gru_distilled",
            "python -m training error-model --name gru_distilled"]
    for text in (readme, page):
        lines = _code_blocks(text)
        start = lines.index(made[0])
        assert lines[start:start + len(made)] == made
    assert registry.default_model_name() == "gru_distilled"
    teacher, student = registry.read_manifest("gru"), registry.read_manifest("gru_distilled")
    assert teacher.produced_by == made[0]
    assert student.training_config["teacher_produced_by"] == made[0]
    # The manifest records the distill command with every option spelt out.
    recorded, documented = student.produced_by.split(), _explicit(made[4])
    assert recorded[4] == documented[4] == "--data-dir"
    assert recorded[:4] + recorded[6:] == documented[:4] + documented[6:]
    for manifest in (teacher, student):
        assert manifest.output_stretch is not None  # made by calibrate
        assert "error_model" in manifest.uncertainty_calibration  # made by error-model


def _explicit(line):
    """``line`` with every option spelt out, as a run records it (data folder aside)."""
    pytest.importorskip("training", reason="run the tests from the repository root")
    from training.__main__ import build_parser, explicit_command

    args = build_parser().parse_args(line.split()[3:])
    return explicit_command(args.subparser, args).split()


def test_retraining_page_documents_every_column_of_the_training_data():
    pytest.importorskip("training", reason="run the tests from the repository root")
    from training.data import TRAINING_DATA_FORMAT

    page = (DOCS / "retraining.rst").read_text()
    for column in ("source_id", "period", "feh", "mag", "phase", "time", "--peer-column"):
        assert f"``{column}``" in page and column in TRAINING_DATA_FORMAT
