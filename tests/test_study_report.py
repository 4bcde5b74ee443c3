"""The study report (``python -m training report``) and the docs page it feeds.

A small fake study directory is built file by file, in the layout that
`training.study` and `training.cv` write: two architectures × two variants, of
which three runs are finished and one has only its first fold.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("keras", reason="the study report needs the 'train' extra")
pytest.importorskip("matplotlib", reason="the study report draws with matplotlib")
pytest.importorskip("training", reason="run the tests from the repository root")

from training.data import DEFAULT_DATA_DIR, density_weights
from training.folds import stratified_folds
from training.metrics import regression_metrics, summarise_folds
from training.study import StudyProfile, plan_runs
from training.study.report import FIGURES, RUN_FIGURES, write_report

DOCS = Path(__file__).resolve().parents[1] / "docs"
N_STARS, N_FOLDS = 90, 2


def _write_json(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def _write_run(run_dir, config, feh, peer, folds, noise, rng, finished, export_failures=()):
    """One cross-validation run's files; only the first fold unless ``finished``."""
    _write_json(run_dir / "config.json", config.to_dict())
    np.save(run_dir / "folds.npy", folds)
    weights = density_weights(feh)
    pred = feh + rng.normal(0, noise, feh.size)
    per_fold = {"validation": [], "training": [], "peer": []}
    for k in range(N_FOLDS if finished else 1):
        test, train = folds == k, folds != k
        epochs = 5 + k
        loss = list(0.5 * np.exp(-np.arange(epochs) / 2) + noise**2)
        _write_json(run_dir / f"fold_{k}" / "member_0.json",
                    {"seed": 1, "wall_time_s": 10.0, "epochs": epochs,
                     "history": {"loss": loss, "val_loss": [v * 1.2 for v in loss]}})
        fold = {"validation": regression_metrics(feh[test], pred[test], weights[test]),
                "training": regression_metrics(feh[train], feh[train] + noise / 2,
                                               weights[train]),
                "peer": regression_metrics(feh[test], peer[test], weights[test])}
        _write_json(run_dir / f"fold_{k}" / "done.json", fold)
        for part, values in fold.items():
            per_fold[part].append(values)
    if not finished:
        return
    _write_json(run_dir / "metrics.json", {
        "config": config.to_dict(), "n_stars": int(feh.size),
        "validation": summarise_folds(per_fold["validation"]),
        "training": summarise_folds(per_fold["training"]),
        "peer_same_folds": summarise_folds(per_fold["peer"]),
        "pooled_out_of_fold": regression_metrics(feh, pred, weights),
        "pooled_peer": regression_metrics(feh, peer, weights),
        "wall_time_s": 20.0,
        "export_failures": list(export_failures),
    })
    Table({"source_id": np.arange(feh.size, dtype=np.int64), "feh": feh, "feh_pred": pred,
           "feh_dg22": peer, "fold": folds, "weight": weights}).write(
        run_dir / "oof_predictions.ecsv")


#: A member that failed the ONNX check, as `training.cv` records it.
UNEXPORTABLE = {"fold": 1, "member": 0, "message": "differs", "max_diff": 0.0251,
                "keras_self_diff": 0.0237}


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory):
    """A study of 4 planned runs, 3 finished; gru on spline_centered is the best."""
    study_dir = tmp_path_factory.mktemp("study")
    profile = StudyProfile(
        name="fake", architectures=["gru", "fcn"], variants=["spline_centered", "raw"],
        training={"n_folds": N_FOLDS, "max_epochs": 100, "patience": 12, "weight_power": 0.0},
        overrides={"fcn": {"max_epochs": 25, "patience": 5}}, export=False)
    _write_study(study_dir, profile, seed=3, noise_step=0.05, n_unfinished=1)
    return study_dir


def _write_study(study_dir, profile, *, seed, noise_step, n_unfinished):
    """Fake runs of every planned run, each noisier than the one before."""
    _write_json(study_dir / "profile.json", profile.to_dict())
    rng = np.random.default_rng(seed)
    feh = rng.normal(-1.4, 0.45, N_STARS)
    peer = feh + rng.normal(0, 0.18, N_STARS)
    folds = stratified_folds(feh, N_FOLDS, 3, seed=1)
    runs = plan_runs(profile)
    for i, (run_id, _, config) in enumerate(runs):
        _write_run(study_dir / "runs" / run_id, config, feh, peer, folds,
                   noise=0.12 + noise_step * i, rng=rng,
                   finished=i < len(runs) - n_unfinished,
                   export_failures=[UNEXPORTABLE] if i == 1 else [])
    return runs


@pytest.fixture(scope="module")
def report(fake_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    summary = write_report(fake_study, out, data_dir=None, log=lambda line: None)
    return out, summary


def test_summary_table_has_the_finished_runs_and_the_progress(report):
    out, summary = report
    table = Table.read(out / "summary.ecsv")
    assert table.meta["n_runs_planned"] == 4 and table.meta["n_runs_finished"] == 3
    assert len(table) == 3
    # Best first; the unfinished run (fcn on raw, the last planned) is left out.
    assert (table["architecture"][0], table["variant"][0]) == ("gru", "spline_centered")
    assert table.meta["best_run"] == "gru-spline_centered-default-r0"
    assert ("fcn", "raw") not in set(zip(table["architecture"], table["variant"]))
    assert list(table["val_rmse"]) == sorted(table["val_rmse"])
    for prefix in ("val", "train", "peer"):
        for metric in ("r2", "rmse", "mae", "wrmse", "wmae"):
            assert np.all(np.isfinite(table[f"{prefix}_{metric}"]))
            assert np.all(table[f"{prefix}_{metric}_std"] >= 0)
    assert set(table["n_fold_results"]) == {N_FOLDS}
    assert np.all(table["train_time_s"] == 20.0)
    # The peer is scored on the same folds in every run.
    assert np.allclose(table["peer_rmse"], table["peer_rmse"][0])
    assert "python -m training study --profile fake" in table.meta["study_command"]
    # No per-star data.
    assert not {"source_id", "feh", "feh_pred"} & set(table.colnames)
    assert json.loads((out / "profile.json").read_text())["name"] == "fake"
    assert summary.meta["best_run"] == table.meta["best_run"]


def _assert_not_blank(path):
    assert path.stat().st_size > 10_000, path.name
    image = __import__("matplotlib.image").image.imread(path)
    assert image[..., :3].std() > 0.01, f"{path.name} is blank"


def test_every_run_figure_is_written_and_not_blank(report):
    out, summary = report
    # A study without a grid has no figure of its grid points.
    expected = set(RUN_FIGURES) - {"rmse_by_grid_point.png"}
    for name in expected:
        _assert_not_blank(out / name)
    assert set(summary.meta["figures"]) == expected
    assert not (out / "rmse_by_grid_point.png").exists()


def test_a_grid_study_shows_every_grid_point(tmp_path):
    profile = StudyProfile(
        name="fakegrid", architectures=["gru"], variants=["spline_centered"],
        grid={"learning_rate": [0.001, 0.01, 0.1], "batch_size": [64, 256]},
        design="one_at_a_time", training={"n_folds": N_FOLDS, "learning_rate": 0.01,
                                          "batch_size": 256}, export=False)
    runs = _write_study(tmp_path, profile, seed=4, noise_step=0.02, n_unfinished=0)
    assert [identity["grid_point"] for _, identity, _ in runs] == [
        "default", "batch_size=64", "learning_rate=0.001", "learning_rate=0.1"]
    out = tmp_path / "out"
    summary = write_report(tmp_path, out, data_dir=None, log=lambda line: None)
    assert len(summary) == 4 and summary.meta["best_run"] == "gru-spline_centered-default-r0"
    _assert_not_blank(out / "rmse_by_grid_point.png")
    assert "rmse_by_grid_point.png" in summary.meta["figures"]
    # One architecture on one variant: no comparison of architectures to draw.
    assert "rmse_by_architecture.png" not in summary.meta["figures"]


def test_data_figures_need_the_shared_data(fake_study, tmp_path):
    if not (DEFAULT_DATA_DIR / "stars.ecsv").is_file():
        pytest.skip("the labelled light curves (../shared/data) are absent")
    summary = write_report(fake_study, tmp_path, data_dir=DEFAULT_DATA_DIR, log=lambda line: None)
    assert set(summary.meta["figures"]) == set(FIGURES) - {"rmse_by_grid_point.png"}
    for name in ("lightcurves.png", "feh_distribution.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


def test_report_of_a_study_without_finished_runs(tmp_path):
    study_dir = tmp_path / "study"
    _write_json(study_dir / "profile.json", StudyProfile(name="empty").to_dict())
    out = tmp_path / "out"
    out.mkdir()
    (out / "loss_curves.png").write_bytes(b"from an older study")
    summary = write_report(study_dir, out, log=lambda line: None)
    assert len(summary) == 0 and summary.meta["n_runs_finished"] == 0
    assert summary.meta["n_runs_planned"] == 27 and summary.meta["best_run"] is None
    assert not (out / "loss_curves.png").exists()


def test_report_refuses_a_profile_of_another_version(tmp_path):
    _write_json(tmp_path / "profile.json", {"name": "old", "n_phases": 32})
    with pytest.raises(ValueError, match="not a profile of this version"):
        write_report(tmp_path, tmp_path / "out", log=lambda line: None)


@pytest.fixture
def generated_pages():
    if not (DOCS / "_ext" / "generated_pages.py").is_file():
        pytest.skip("the repository's docs/ are not here")
    sys.path.insert(0, str(DOCS / "_ext"))
    import generated_pages

    return generated_pages


def test_docs_page_renders_the_table_settings_and_figures(report, generated_pages, tmp_path):
    out, summary = report
    page = tmp_path / "study.rst"
    generated_pages.write_study_page(page, out)
    text = page.read_text()
    assert "**3 of 4 planned runs are finished**" in text
    assert "The best run so far is ``gru-spline_centered-default-r0``" in text
    # The second planned run has a member that failed the ONNX check.
    assert summary.meta["export_failures"] == [
        "fcn-spline_centered-default-r0, fold 1 member 0: ONNX Runtime differs from Keras "
        "by 0.0251 dex; Keras itself, batched or alone, by 0.0237 dex"]
    assert "failed the ONNX check" in text
    assert "- ``fcn-spline_centered-default-r0``, fold 1 member 0: ONNX Runtime" in text
    row = summary[0]
    assert f"{row['val_rmse']:.3f} ± {row['val_rmse_std']:.3f}" in text
    assert f"{row['peer_rmse']:.3f} ± {row['peer_rmse_std']:.3f}" in text
    assert f"{row['train_mae']:.3f} ± {row['train_mae_std']:.3f}" in text
    # The settings come from the profile, not from the page's text.
    assert "2-fold stratified cross-validation" in text and "at most 100 epochs" in text
    assert "unweighted loss" in text and "early stopping after 12 epochs" in text
    assert "**Instead** for ``fcn``: at most 25 epochs" in text
    assert "python -m training report --study-dir runs/screen --out docs/study" in text
    for name in set(RUN_FIGURES) - {"rmse_by_grid_point.png"}:
        assert f".. figure:: /study/{name}" in text
    assert ".. figure:: /study/lightcurves.png" not in text


def test_docs_page_of_a_complete_study_drops_so_far(report, generated_pages, tmp_path):
    out, summary = report
    # A copy, since the report is shared by the module's tests.
    complete = tmp_path / "study"
    shutil.copytree(out, complete)
    summary = summary.copy()
    summary.meta["n_runs_planned"] = summary.meta["n_runs_finished"]
    summary.write(complete / "summary.ecsv", overwrite=True)
    out = complete
    page = tmp_path / "study.rst"
    generated_pages.write_study_page(page, out)
    text = page.read_text()
    assert "**All 3 planned runs are finished**" in text
    assert "The best run is ``gru-spline_centered-default-r0``" in text
    assert "so far" not in text


def test_docs_page_says_when_the_study_has_not_been_run(generated_pages, tmp_path):
    page = tmp_path / "study.rst"
    generated_pages.write_study_page(page, tmp_path / "absent")
    text = page.read_text()
    assert "The study has not been run yet" in text
    assert "python -m training study --profile screen --study-dir runs/screen" in text


def test_grid_page_states_the_one_at_a_time_design(generated_pages, tmp_path):
    from training.study import PROFILES

    page = tmp_path / "grid.rst"
    generated_pages.write_study_page(page, tmp_path / "absent", profile="grid",
                                     docs_folder="grid")
    text = page.read_text()
    assert "python -m training study --profile grid --study-dir runs/grid" in text
    assert "python -m training report --study-dir runs/grid --out docs/grid" in text
    lines = "\n".join(generated_pages._profile_lines(PROFILES["grid"].to_dict()))
    assert "**Grid** (one axis at a time" in lines
    assert "``batch_size`` in [32, 64, 128, 256, 512]" in lines
    assert "2 repeats of the split" in lines
