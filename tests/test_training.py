"""Tests of the training module: architecture, weights, folds, CV with resume, export, shipping.

They need the ``train`` extra (TensorFlow, tf2onnx, scikit-learn) and the
repository's ``training/`` folder on the path; they are skipped otherwise.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

pytest.importorskip("tensorflow", reason="the training tests need the 'train' extra")
pytest.importorskip("tf2onnx", reason="the training tests need the 'train' extra")
training = pytest.importorskip("training", reason="run the tests from the repository root")

from training.architectures import ARCHITECTURES, build_gru, build_model  # noqa: E402
from training.cv import TrainingConfig, run_cross_validation  # noqa: E402
from training.data import density_weights  # noqa: E402
from training.export import ExportError, export_onnx, keras_self_difference  # noqa: E402
from training.folds import stratified_folds  # noqa: E402
from training.metrics import regression_metrics, summarise_folds  # noqa: E402
from training.ship import ship_run  # noqa: E402

from rrlyrae_metallicity.preprocessing import PreprocessingConfig  # noqa: E402


def test_gru_parameter_counts_match_the_paper():
    model = build_gru((80, 2))
    counts = [layer.count_params() for layer in model.layers if layer.count_params()]
    assert counts == [1440, 1824, 624, 9]


# Parameter counts from the layer formulas, so that a wrong layer shows up.
def _conv(c_in, c_out, k, bias=True):
    return c_in * k * c_out + (c_out if bias else 0)


def _bn(c):
    return 4 * c


def _lstm(c_in, u):
    return 4 * (u * (c_in + u) + u)


def _gru(c_in, u):  # reset_after=True, Keras' default
    return 3 * (u * (c_in + u) + 2 * u)


def _fcn_body():
    return (_conv(2, 128, 8) + _bn(128) + _conv(128, 256, 5) + _bn(256)
            + _conv(256, 128, 3) + _bn(128))


def _resnet_count():
    total, c_in = 0, 2
    for c in (64, 128, 128):
        total += _conv(c_in, c, 8) + _conv(c, c, 5) + _conv(c, c, 3) + 3 * _bn(c)
        total += (_conv(c_in, c, 1) if c_in != c else 0) + _bn(c)
        c_in = c
    return total + 129


def _inception_count():
    total, c_in, residual_in = 0, 2, 2
    for d in range(6):
        bottleneck = _conv(c_in, 32, 1, bias=False) if c_in > 1 else 0
        c_mid = 32 if c_in > 1 else c_in
        total += bottleneck + sum(_conv(c_mid, 32, k, bias=False) for k in (40, 20, 10))
        total += _conv(c_in, 32, 1, bias=False) + _bn(128)
        c_in = 128
        if d % 3 == 2:
            total += _conv(residual_in, 128, 1, bias=False) + _bn(128)
            residual_in = 128
    return total + 129


EXPECTED_PARAMETERS = {
    "fcn": _fcn_body() + 129,
    "resnet": _resnet_count(),
    "inception": _inception_count(),
    "lstm": _lstm(2, 20) + _lstm(20, 16) + _lstm(16, 8) + 9,
    "bilstm": 2 * (_lstm(2, 20) + _lstm(40, 16) + _lstm(32, 8)) + 17,
    "gru": _gru(2, 20) + _gru(20, 16) + _gru(16, 8) + 9,
    "bigru": 2 * (_gru(2, 20) + _gru(40, 16) + _gru(32, 8)) + 17,
    "convlstm": _fcn_body() + _lstm(128, 8) + _lstm(8, 4) + 5,
    "convgru": _fcn_body() + _gru(128, 8) + _gru(8, 4) + 5,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_architecture_shape_and_parameter_count(name):
    model = build_model(name, (80, 2), label_mean=-1.4, label_std=0.5)
    assert model.count_params() == EXPECTED_PARAMETERS[name]
    x = np.random.default_rng(0).normal(size=(3, 80, 2)).astype(np.float32)
    assert tuple(model(x, training=False).shape) == (3, 1)
    # Raw-variant inputs are shorter or longer than N and padded; every model accepts them.
    assert tuple(build_model(name, (57, 2), masked=True)(x[:, :57]).shape) == (3, 1)


def test_architecture_registry_is_the_contract():
    assert set(ARCHITECTURES) == {"fcn", "resnet", "inception", "lstm", "bilstm", "gru",
                                  "bigru", "convlstm", "convgru"}
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_model("transformer", (80, 2))
    with pytest.raises(ValueError, match="not both"):
        build_model("gru", (80, 2), kernel_l1=1e-5, kernel_l2=1e-5)


@pytest.mark.parametrize("name", ["lstm", "bilstm", "gru", "bigru"])
def test_masked_recurrent_models_ignore_the_padding(name):
    model = build_model(name, (None, 2), masked=True)
    assert any(layer.__class__.__name__ == "Masking" for layer in model.layers)
    data = np.random.default_rng(0).normal(size=(2, 30, 2)).astype(np.float32)
    padded = np.full((2, 60, 2), -1.0, dtype=np.float32)
    padded[:, :30] = data
    # A padded light curve gives what the unpadded one gives, in both
    # directions of a bidirectional layer.
    np.testing.assert_allclose(np.asarray(model(padded, training=False)),
                               np.asarray(model(data, training=False)), atol=1e-6)


def test_density_weights_favour_the_tails():
    rng = np.random.default_rng(1)
    feh = np.concatenate([rng.normal(-1.4, 0.2, 900), rng.uniform(-2.7, 0, 100)])
    w = density_weights(feh)
    assert w.mean() == pytest.approx(1.0)
    assert w[np.argmin(np.abs(feh + 1.4))] < w[np.argmin(feh)]


def test_stratified_folds_are_balanced_and_seeded():
    feh = np.random.default_rng(2).normal(-1.4, 0.4, 500)
    folds = stratified_folds(feh, 5, 10, seed=3)
    assert np.bincount(folds).tolist() == [100] * 5
    np.testing.assert_array_equal(folds, stratified_folds(feh, 5, 10, seed=3))
    # Every fold spans the [Fe/H] range.
    for k in range(5):
        assert feh[folds == k].min() < -2.0 and feh[folds == k].max() > -0.8


def test_metrics_and_summary():
    m = regression_metrics([0.0, 1.0, 2.0], [0.0, 1.0, 3.0], [1.0, 1.0, 2.0])
    assert m["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["wrmse"] == pytest.approx(np.sqrt(2 / 4))
    assert m["wmae"] == pytest.approx(2 / 4)
    assert m["r2"] == pytest.approx(1 - 1 / 2)
    summary = summarise_folds([m, {k: 2 * v for k, v in m.items()}])
    assert summary["rmse"]["mean"] == pytest.approx(1.5 * m["rmse"])


@pytest.fixture(scope="module")
def small_dataset(simulated_training_set):
    return simulated_training_set


def test_cross_validation_resumes_exports_and_ships(tmp_path, small_dataset):
    config = TrainingConfig(preprocessing=PreprocessingConfig(n_phases=32).to_dict(), n_folds=2,
                            n_bins=3, max_epochs=2, patience=2, batch_size=32)
    run_dir = tmp_path / "run"
    metrics = run_cross_validation(small_dataset, config, run_dir, log=lambda line: None)
    for key in ("validation", "training", "peer_same_folds", "pooled_out_of_fold"):
        assert set(metrics[key]) == {"r2", "rmse", "mae", "wrmse", "wmae"}
    oof = Table.read(run_dir / "oof_predictions.ecsv")
    assert len(oof) == 60 and np.isfinite(oof["feh_pred"]).all()
    assert metrics["pooled_peer"]["rmse"] == pytest.approx(0.1)

    # Resuming never retrains a finished fold.
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("fold_*/member_*.keras")}
    assert len(stamps) == 2
    run_cross_validation(small_dataset, config, run_dir, log=lambda line: None)
    assert stamps == {p: p.stat().st_mtime_ns for p in run_dir.glob("fold_*/member_*.keras")}

    # An interrupted run (a fold without done.json and model) redoes only that fold.
    (run_dir / "fold_1" / "done.json").unlink()
    (run_dir / "fold_1" / "member_0.keras").unlink()
    (run_dir / "fold_1" / "member_0.onnx").unlink()
    run_cross_validation(small_dataset, config, run_dir, log=lambda line: None)
    assert (run_dir / "fold_0" / "member_0.keras").stat().st_mtime_ns == stamps[
        run_dir / "fold_0" / "member_0.keras"]
    assert (run_dir / "fold_1" / "done.json").exists()

    # Another configuration in the same folder is refused.
    other = TrainingConfig(**{**config.to_dict(), "learning_rate": 0.1})
    with pytest.raises(ValueError, match="another configuration"):
        run_cross_validation(small_dataset, other, run_dir, log=lambda line: None)

    # Shipping writes the members and a manifest with checksums.
    manifest_path = ship_run(run_dir, "tiny", models_dir=tmp_path / "models", make_default=True)
    manifest = json.loads(manifest_path.read_text())
    assert [m["file"] for m in manifest["members"]] == ["fold0_member0.onnx", "fold1_member0.onnx"]
    assert manifest["preprocessing"]["n_phases"] == 32
    assert json.loads((tmp_path / "models" / "default.json").read_text()) == {"default": "tiny"}


def test_export_fails_loudly_when_onnx_disagrees(tmp_path):
    model = build_gru((16, 2))
    x = np.random.default_rng(0).normal(size=(4, 16, 2)).astype(np.float32)
    assert export_onnx(model, tmp_path / "ok.onnx", x) < 1e-5
    with pytest.raises(ExportError, match="differs from Keras") as error:
        export_onnx(model, tmp_path / "bad.onnx", x, atol=-1.0)
    assert not (tmp_path / "bad.onnx").exists()
    # A sound model gives the same output batched or alone, and the message says nothing else.
    assert error.value.keras_self_diff < 1e-6
    assert "Keras itself" not in str(error.value)


def test_keras_self_difference_measures_batch_dependence():
    class BatchDependent:
        # Stands for a model that amplifies float32 rounding: its output for a
        # star moves with the batch it is computed in.
        def __call__(self, x, training=False):
            return x.sum(axis=(1, 2)) + 1e-3 * len(x)

    x = np.random.default_rng(1).normal(size=(5, 8, 2)).astype(np.float32)
    assert keras_self_difference(BatchDependent(), x) == pytest.approx(4e-3, rel=1e-4)
    assert keras_self_difference(build_gru((8, 2)), x) < 1e-6


def test_a_study_records_an_unexportable_member_and_goes_on(tmp_path, small_dataset, monkeypatch):
    import training.export

    config = TrainingConfig(preprocessing=PreprocessingConfig(n_phases=32).to_dict(), n_folds=2,
                            n_bins=3, max_epochs=1, patience=1, batch_size=32)
    real_export = training.export.export_onnx
    calls = []

    def export_failing_fold_1(model, path, check_inputs, **kwargs):
        calls.append(path)
        if "fold_1" in str(path):
            raise ExportError("ONNX Runtime differs from Keras by 0.025 dex", max_diff=0.025,
                              keras_self_diff=0.024)
        return real_export(model, path, check_inputs, **kwargs)

    monkeypatch.setattr(training.export, "export_onnx", export_failing_fold_1)
    with pytest.raises(ExportError):  # the default: a run to ship must export
        run_cross_validation(small_dataset, config, tmp_path / "strict", log=lambda line: None)

    run_dir = tmp_path / "study_run"
    metrics = run_cross_validation(small_dataset, config, run_dir, log=lambda line: None,
                                   export_errors="record")
    assert metrics["export_failures"] == [{
        "fold": 1, "member": 0, "message": "ONNX Runtime differs from Keras by 0.025 dex",
        "max_diff": 0.025, "keras_self_diff": 0.024}]
    assert (run_dir / "fold_0" / "member_0.onnx").exists()
    assert not (run_dir / "fold_1" / "member_0.onnx").exists()
    assert np.isfinite(metrics["validation"]["rmse"]["mean"])
    # Resuming does not retry the deterministic check.
    n_calls = len(calls)
    run_cross_validation(small_dataset, config, run_dir, log=lambda line: None,
                         export_errors="record")
    assert len(calls) == n_calls

    # Such a run cannot be shipped, and trying leaves the shipped model intact.
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    (models / "tiny" / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="failed the ONNX check"):
        ship_run(run_dir, "tiny", models_dir=models, replace=True)
    assert (models / "tiny" / "manifest.json").read_text() == "{}"


def test_composite_needs_weights_summing_to_one():
    from training.composite import compose, parse_components

    assert parse_components(["gru=0.75", "inception=0.25"]) == {"gru": 0.75, "inception": 0.25}
    with pytest.raises(ValueError, match="NAME=WEIGHT"):
        parse_components(["gru"])
    with pytest.raises(ValueError, match="must sum to 1"):
        compose("bad", {"gru": 0.5, "inception": 0.6}, dataset=None)


def test_combinations_are_ranked_by_their_cross_fitted_error(tmp_path):
    # Two models with independent errors average to a better one; a third, biased
    # and noisier, spoils any combination it joins.
    from training.composite import rank_combinations
    from training.data import Dataset

    rng = np.random.default_rng(5)
    n = 600
    feh = rng.normal(-1.4, 0.4, n)
    stars = Table({"source_id": np.arange(n) + 10, "feh": feh})
    folds = np.arange(n) % 3
    noisy = {"a": feh + rng.normal(0, 0.15, n), "b": feh + rng.normal(0, 0.15, n),
             "c": feh + 0.3 + rng.normal(0, 0.3, n)}
    for name, pred in noisy.items():
        (tmp_path / name).mkdir()
        # Recorded in another order than the dataset's: matched by source_id.
        Table({"source_id": stars["source_id"][::-1], "fold": folds[::-1],
               "feh_pred": pred[::-1]}).write(tmp_path / name / "oof_predictions.ecsv")
    ranked = rank_combinations(["a", "b", "c"], Dataset(stars, [], []), max_size=3,
                               results_dir=tmp_path)
    assert len(ranked) == 3 + 3 + 1
    assert ranked["models"][0] == "a+b"
    assert ranked["rmse"][0] < 0.15 / np.sqrt(2) * 1.15
    assert list(ranked["rmse"]) == sorted(ranked["rmse"])
    assert ranked["models"][-1] == "c"


def test_phase_shifts_roll_the_magnitudes_and_keep_out_of_fold_members():
    from scripts.phase_tta import shifted_out_of_fold

    from rrlyrae_metallicity.models import load_model

    model = load_model("gru")
    rng = np.random.default_rng(2)
    n_phases = model.preprocessing.n_phases
    inputs = np.zeros((12, n_phases, 2), dtype=np.float32)
    grid = np.arange(n_phases) / n_phases
    inputs[..., 0] = 0.4 * np.sin(2 * np.pi * (grid + rng.uniform(0, 1, (12, 1))))
    inputs[..., 1] = grid * 0.55
    folds = np.arange(12) % 5
    unshifted = shifted_out_of_fold(model, inputs, folds, 0)
    members = model.predict_members(inputs)
    member_folds = np.array(model.member_folds)
    for i in range(12):
        assert unshifted[i] == pytest.approx(members[member_folds == folds[i], i].mean(), abs=1e-12)
    # A whole cycle is no shift; one step is the curve rolled by 1/n_phases.
    np.testing.assert_allclose(shifted_out_of_fold(model, inputs, folds, n_phases), unshifted)
    rolled = inputs.copy()
    rolled[..., 0] = np.roll(inputs[..., 0], 1, axis=1)
    np.testing.assert_allclose(shifted_out_of_fold(model, inputs, folds, 1),
                               shifted_out_of_fold(model, rolled, folds, 0))


def test_readme_table_is_rendered_and_replaced(tmp_path):
    from training.readme import cv_table, update_readme

    metric = {k: {"mean": 0.1, "std": 0.01} for k in ("r2", "rmse", "mae", "wrmse", "wmae")}
    pooled = {k: 0.1 for k in ("r2", "rmse", "mae", "wrmse", "wmae")}
    metrics = {"validation": metric, "peer_same_folds": metric, "pooled_out_of_fold": pooled,
               "pooled_peer": pooled, "config": {"n_folds": 5}, "n_stars": 3772,
               "wall_time_s": 600.0}
    table = cv_table(metrics, "gru")
    assert "| RMSE | 0.1000 ± 0.0100 |" in table and "3772" in table
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Accuracy\n\n<!-- CV-TABLE -->\nSTALE\n\n## Retraining\n\nkeep\n")
    update_readme(readme, metrics, "gru", "python -m training cv")
    text = readme.read_text()
    assert "STALE" not in text and "| wMAE |" in text and "## Retraining\n\nkeep" in text
    update_readme(readme, metrics, "gru", "python -m training cv")
    assert readme.read_text() == text


def test_augmented_inputs_resample_epochs_reproducibly(small_dataset):
    from training.data import augmented_inputs, preprocess

    config = PreprocessingConfig(n_phases=32)
    originals, _ = preprocess(small_dataset, config, progress=False)
    copies = augmented_inputs(small_dataset, config, 2, seed=3, originals=originals)
    assert copies.shape == (2, *originals.shape)
    # Different epochs give a different smoothed curve, but the same star.
    differences = np.sqrt(np.mean((copies[:, :, :, 0] - originals[None, :, :, 0]) ** 2, axis=2))
    assert np.median(differences) > 1e-3
    assert np.median(differences) < 0.1
    np.testing.assert_array_equal(copies[:, :, :, 1], np.broadcast_to(originals[:, :, 1], copies.shape[:-1]))
    np.testing.assert_array_equal(
        copies, augmented_inputs(small_dataset, config, 2, seed=3, originals=originals))


def test_cross_validation_with_augmentation(tmp_path, small_dataset):
    config = TrainingConfig(preprocessing=PreprocessingConfig(n_phases=32).to_dict(), n_folds=2,
                            n_bins=3, max_epochs=1, patience=1, batch_size=1000, augment=2,
                            run_eagerly=True)
    metrics = run_cross_validation(small_dataset, config, tmp_path / "aug", export=False,
                                   log=lambda line: None)
    assert np.isfinite(metrics["pooled_out_of_fold"]["rmse"])
    assert metrics["config"]["augment"] == 2


def test_training_domain_is_recomputed_into_a_shipped_manifest(tmp_path, small_dataset):
    from rrlyrae_metallicity.preprocessing import max_phase_gap
    from training.ship import update_training_domain

    manifest = tmp_path / "tiny" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"preprocessing": PreprocessingConfig().to_dict(),
                                    "training_domain": {"amplitude_mag": [0.2, 1.2]}}))
    domain = update_training_domain("tiny", small_dataset, models_dir=tmp_path)
    assert json.loads(manifest.read_text())["training_domain"] == domain
    assert domain["amplitude_mag"] == [0.2, 1.2]  # from the run's out-of-fold table: kept
    assert domain["n_epochs"] == [30, 30]
    assert domain["period_d"] == [small_dataset.periods.min(), small_dataset.periods.max()]
    # Measured on the cleaned epochs: merging epochs closer than 2e-3 cycles moves a gap
    # by less than that.
    raw = [max_phase_gap(p) for p in small_dataset.phases]
    assert 1 / 30 <= domain["max_phase_gap"][0] <= domain["max_phase_gap"][1]
    assert domain["max_phase_gap"][1] == pytest.approx(max(raw), abs=3e-3)


def _write_training_set(dataset, directory):
    """Write ``dataset`` in the shared data's layout (see `training.data.load_dataset`)."""
    directory.mkdir()
    dataset.stars.write(directory / "stars.ecsv")
    Table({"source_id": np.repeat(dataset.stars["source_id"], [p.size for p in dataset.phases]),
           "phase": np.concatenate(dataset.phases),
           "mag": np.concatenate(dataset.mags)}).write(directory / "lightcurves.ecsv")


@pytest.mark.slow
def test_killed_training_run_resumes_without_retraining(tmp_path):
    """SIGKILL ``python -m training cv`` after its first fold; the rerun keeps that fold."""
    from conftest import make_simulated_training_set

    # Enough stars that the validation split holds one star of each of the 10 [Fe/H] strata.
    dataset = make_simulated_training_set(240)
    _write_training_set(dataset, tmp_path / "data")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "training", "cv", "--data-dir", str(tmp_path / "data"),
               "--run-dir", str(run_dir), "--folds", "2", "--max-epochs", "4",
               "--patience", "4", "--batch-size", "32", "--n-phases", "32", "--units", "8",
               "4", "2", "--no-export"]
    repository = Path(__file__).resolve().parents[1]  # so that `training` imports
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(command, cwd=repository, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = run_dir / "fold_0" / "member_0.keras"
    deadline = time.monotonic() + 120
    while not (run_dir / "fold_0" / "done.json").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the first fold took too long"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    stamp, content = first.stat().st_mtime_ns, first.read_bytes()

    finished = subprocess.run(command, cwd=repository, env=env, capture_output=True,
                              text=True, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "fold 0: already complete" in finished.stderr
    assert first.stat().st_mtime_ns == stamp and first.read_bytes() == content
    assert not list(run_dir.rglob("*.tmp*"))
    import keras

    for path in sorted(run_dir.glob("fold_*/member_*.keras")):
        assert keras.models.load_model(path) is not None, path
    assert len(list(run_dir.glob("fold_*/member_*.keras"))) == 2
    assert json.loads((run_dir / "metrics.json").read_text())["n_stars"] == len(dataset)


def test_a_gru_export_is_rewritten_with_native_gru_nodes(tmp_path):
    import onnx
    import onnxruntime as ort

    from training.native_onnx import NativeConversionError, convert_member, gru_weights

    rng = np.random.default_rng(3)
    model = build_gru((16, 2), units=(5, 4, 3), label_mean=-1.4, label_std=0.5)
    x = rng.normal(size=(64, 16, 2)).astype(np.float32)
    loop = tmp_path / "loop.onnx"
    export_onnx(model, loop, x)
    native = tmp_path / "native.onnx"
    diff = convert_member(loop, native, x)
    assert diff < 1e-5
    ops = [node.op_type for node in onnx.load(str(native)).graph.node]
    assert ops.count("GRU") == 3 and "Loop" not in ops
    session = ort.InferenceSession(str(native), providers=["CPUExecutionProvider"])
    keras_out = np.asarray(model(x, training=False)).ravel()
    one_by_one = np.concatenate([session.run(None, {"lightcurve": x[i:i + 1]})[0].ravel()
                                 for i in range(len(x))])
    assert np.max(np.abs(one_by_one - keras_out)) < 1e-5
    layers, dense, (scale, offset) = gru_weights(onnx.load(str(loop)))
    assert [layer["recurrent"].shape[0] for layer in layers] == [5, 4, 3]
    assert (scale, offset) == pytest.approx((0.5, -1.4))

    fcn = build_model("fcn", (16, 2), filters=(4, 4, 4))
    export_onnx(fcn, tmp_path / "fcn.onnx", x)
    with pytest.raises(NativeConversionError, match="not a tf2onnx export of the gru"):
        convert_member(tmp_path / "fcn.onnx", tmp_path / "fcn_native.onnx", x)
    assert not (tmp_path / "fcn_native.onnx").exists()
