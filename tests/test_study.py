"""Tests of the architecture study: its plan, and the ``smoke`` profile end to end.

The smoke profile trains every architecture on every data variant (2 folds, 2
epochs, 60 stars), exports every member to ONNX and checks it against Keras:
the whole machinery of the paper's Table 4 in a few minutes (320 s on 2 cores).
"""

import json

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("tensorflow", reason="the study tests need the 'train' extra")
pytest.importorskip("tf2onnx", reason="the study tests need the 'train' extra")
pytest.importorskip("training", reason="run the tests from the repository root")

from training.architectures import ARCHITECTURES, RECURRENT  # noqa: E402
from training.data import DEFAULT_DATA_DIR, load_dataset  # noqa: E402
from training.study import (  # noqa: E402
    PROFILES, StudyProfile, plan_runs, record_profile, run_study)

from rrlyrae_metallicity.preprocessing import VARIANTS  # noqa: E402


def test_plan_collapses_recurrent_axes_for_convolutional_nets():
    profile = StudyProfile(
        name="t", architectures=["fcn", "gru"], variants=["raw", "spline_centered"],
        grid={"learning_rate": [0.001, 0.01], "dropout": [0.1, 0.4]}, repeats=2,
        training={"max_epochs": 7}, overrides={"fcn": {"max_epochs": 3}},
    )
    runs = plan_runs(profile)
    ids = [run_id for run_id, _, _ in runs]
    assert len(ids) == len(set(ids))
    # fcn: 2 learning rates × 2 repeats per variant; gru: 2 × 2 dropouts × 2 repeats.
    assert len(runs) == 2 * (2 * 2 + 2 * 2 * 2)
    # Variant-major: every architecture on the first variant before the second.
    assert [identity["variant"] for _, identity, _ in runs[:12]] == ["raw"] * 12
    gru = [config for _, identity, config in runs if identity["architecture"] == "gru"]
    assert {c.model_kwargs["dropouts"][0] for c in gru} == {0.1, 0.4}
    assert {c.seed for c in gru} == {1, 2}
    assert {c.max_epochs for c in gru} == {7}
    fcn = [config for _, identity, config in runs if identity["architecture"] == "fcn"]
    assert all(c.model_kwargs == {} and c.max_epochs == 3 for c in fcn)


def test_one_at_a_time_design_varies_each_axis_alone_around_the_centre():
    profile = StudyProfile(
        name="t", architectures=["gru", "fcn"], variants=["spline_centered"],
        grid={"learning_rate": [0.001, 0.01, 0.1], "dropout": [0.1, 0.4],
              "regularizer": ["none", "paper"]},
        design="one_at_a_time", repeats=2, training={"learning_rate": 0.01},
    )
    runs = plan_runs(profile)
    gru = [(identity, config) for _, identity, config in runs
           if identity["architecture"] == "gru" and identity["repeat"] == 0]
    # The centre, then 2 other rates, 2 dropouts and 1 other regulariser.
    assert [identity["grid_point"] for identity, _ in gru] == [
        "default", "dropout=0.1", "dropout=0.4", "learning_rate=0.001", "learning_rate=0.1",
        "regularizer=none"]
    centre = gru[0][1]
    for identity, config in gru[1:]:
        axis = identity["grid_point"].split("=")[0]
        assert (config.learning_rate != centre.learning_rate) == (axis == "learning_rate")
        assert (config.model_kwargs != centre.model_kwargs) == (axis in ("dropout", "regularizer"))
    # fcn has no dropout or regulariser axis: the centre and the two rates.
    assert sum(identity["architecture"] == "fcn" for _, identity, _ in runs) == 2 * 3
    # Repeat-major: every point once before any point twice.
    assert [identity["repeat"] for _, identity, _ in runs] == [0] * 9 + [1] * 9
    with pytest.raises(ValueError, match="design must be one of"):
        StudyProfile(name="bad", design="latin")


def test_a_study_can_be_extended_with_more_repeats_only(tmp_path):
    started = StudyProfile(name="t", architectures=["gru"], variants=["raw"], repeats=1)
    record_profile(tmp_path, started)
    extended = StudyProfile(**{**started.to_dict(), "repeats": 3})
    # The first repeat's runs keep their ids and settings in the extended plan.
    assert plan_runs(extended)[:1] == plan_runs(started)
    record_profile(tmp_path, extended)
    assert json.loads((tmp_path / "profile.json").read_text())["repeats"] == 3
    for other in (started,  # fewer repeats than recorded
                  StudyProfile(**{**extended.to_dict(), "training": {"max_epochs": 5}})):
        with pytest.raises(ValueError, match="another profile"):
            record_profile(tmp_path, other)
    assert json.loads((tmp_path / "profile.json").read_text())["repeats"] == 3


def test_profiles_cover_every_architecture_and_variant():
    for name in ("smoke", "screen"):
        assert set(PROFILES[name].architectures) == set(ARCHITECTURES)
        assert set(PROFILES[name].variants) == set(VARIANTS)
    # The grid search covers the paper's axes and values (METHOD.md).
    assert PROFILES["grid"].grid == {
        "dropout": [0.1, 0.2, 0.4, 0.6], "learning_rate": [0.001, 0.01, 0.1],
        "batch_size": [32, 64, 128, 256, 512], "regularizer": ["none", "paper", "l2=1e-4"]}
    assert set(RECURRENT) < set(ARCHITECTURES)
    with pytest.raises(ValueError, match="unknown grid axes"):
        StudyProfile(name="bad", grid={"momentum": [0.9]})


@pytest.mark.slow
def test_smoke_profile_trains_and_exports_every_architecture_and_variant(
        tmp_path, simulated_training_set):
    profile = PROFILES["smoke"]
    # The real training set when the shared data are present (a subset of
    # profile.n_stars is drawn from it), else simulated stars.
    real = (DEFAULT_DATA_DIR / "stars.ecsv").exists()
    dataset = load_dataset() if real else simulated_training_set
    study_dir = tmp_path / "study"
    results = run_study(dataset, profile, study_dir, log=lambda line: None)

    assert len(results) == len(ARCHITECTURES) * len(VARIANTS)
    assert sorted(set(results["architecture"])) == sorted(ARCHITECTURES)
    for column in ("val_rmse", "val_rmse_std", "train_mae", "peer_wrmse", "pooled_r2"):
        assert np.isfinite(results[column]).all(), column
    assert (results["n_stars"] == profile.n_stars).all()
    # Every member of every run was exported and verified against Keras.
    onnx_files = list(study_dir.glob("runs/*/fold_*/member_0.onnx"))
    assert len(onnx_files) == len(results) * profile.training["n_folds"]
    # Each row records exactly which grid and settings made it.
    config = json.loads(results["config"][0])
    assert config["max_epochs"] == profile.training["max_epochs"]
    assert json.loads(results["grid"][0]) == profile.grid
    summary = Table.read(study_dir / "summary.ecsv")
    assert len(summary) == len(results)
    assert (summary["n_fold_results"] == profile.training["n_folds"]).all()
    assert np.all(np.diff(summary["val_rmse"]) >= 0)

    # Resuming recomputes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in study_dir.glob("runs/*/fold_*/member_0.keras")}
    lines = []
    run_study(dataset, profile, study_dir, log=lines.append)
    assert lines[0].endswith(f"{len(results)} runs, {len(results)} already finished")
    assert stamps == {p: p.stat().st_mtime_ns
                      for p in study_dir.glob("runs/*/fold_*/member_0.keras")}
