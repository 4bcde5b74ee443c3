"""Retraining on one's own labels, as a new user does it from the documentation.

A data folder holding only what the documented format requires (``stars.ecsv``:
``source_id``, ``period`` without a unit, ``feh``; ``lightcurves.ecsv``:
``source_id``, ``phase``, ``mag``) goes through ``python -m training cv`` and
``ship`` from the repository root, and the shipped model predicts. Each
failure a new user met is a test here.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

pytest.importorskip("tensorflow", reason="the training tests need the 'train' extra")
pytest.importorskip("tf2onnx", reason="the training tests need the 'train' extra")
pytest.importorskip("training", reason="run the tests from the repository root")

from training.__main__ import build_parser  # noqa: E402
from training.cv import RunError, TrainingConfig, run_cross_validation  # noqa: E402
from training.data import TrainingDataError, load_dataset  # noqa: E402
from training.examples import EXAMPLE_SCALE, write_example_training_set  # noqa: E402
from training.metrics import regression_metrics  # noqa: E402
from training.ship import ShipError, quality_check, ship_run  # noqa: E402

from rrlyrae_metallicity import load_model, predict_feh, simulate  # noqa: E402
from rrlyrae_metallicity.exceptions import RRLyraeMetallicityWarning  # noqa: E402
from rrlyrae_metallicity.preprocessing import PreprocessingConfig  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]  # where `python -m training` runs
LABELS = "simulated [Fe/H] on a test scale: 1.1 x [Fe/H] + 0.2 dex"
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def _training(*args, **kwargs):
    """Run ``python -m training ARGS`` from the repository root, as the docs say.

    TF_CPP_MIN_LOG_LEVEL is removed from the environment: the module must
    quiet TensorFlow by itself.
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], cwd=REPOSITORY,
                          env=env, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example data, one ``cv`` run on them (3 folds, 10 epochs) and its output."""
    root = tmp_path_factory.mktemp("retrain")
    data = write_example_training_set(root / "data")
    run = root / "run"
    cv = _training("cv", "--data-dir", data, "--run-dir", run, "--folds", 3, "--max-epochs", 10,
                   "--label-description", LABELS)
    assert cv.returncode == 0, cv.stderr[-3000:]
    return {"root": root, "data": data, "run": run, "cv": cv}


def test_the_data_folder_holds_only_the_documented_columns(trained):
    stars = Table.read(trained["data"] / "stars.ecsv")
    curves = Table.read(trained["data"] / "lightcurves.ecsv")
    assert stars.colnames == ["source_id", "period", "feh"] and stars["period"].unit is None
    assert curves.colnames == ["source_id", "phase", "mag"]
    assert sorted(p.name for p in trained["data"].iterdir()) == ["lightcurves.ecsv", "stars.ecsv"]


def test_cv_then_ship_then_predict_with_ones_own_labels(trained):
    models = trained["root"] / "models"
    ship = _training("ship", "--run-dir", trained["run"], "--name", "my_scale",
                     "--models-dir", models)
    assert ship.returncode == 0, ship.stderr[-3000:]
    manifest = json.loads((models / "my_scale" / "manifest.json").read_text())

    # The manifest describes the data of the run, not the bundled Gaia set.
    dataset = load_dataset(trained["data"])
    data = manifest["training_data"]
    assert data["path"] == str(trained["data"].resolve())
    assert str(trained["data"].resolve()) in data["description"]
    assert "Dekany" not in json.dumps(data)
    assert data["label"] == LABELS and data["n_stars"] == len(dataset) == 150
    assert data["peer_column"] is None
    domain = manifest["training_domain"]
    assert domain["period_d"] == [dataset.periods.min(), dataset.periods.max()]
    assert domain["n_epochs"] == [30, 30]
    assert domain["feh_dex"] == pytest.approx([dataset.feh.min(), dataset.feh.max()])
    # The full command, data folder and options included.
    command = manifest["produced_by"]
    for part in (f"--data-dir {trained['data'].resolve()}", "--folds 3", "--max-epochs 10",
                 "--architecture gru", f"--run-dir {trained['run']}"):
        assert part in command
    assert manifest["cv_metrics"]["pooled_peer"] is None
    # GRU members are shipped with their native ONNX GRU rewrite (fast single-star calls).
    for member in manifest["members"]:
        assert member["native_file"] == member["file"].replace(".onnx", ".native.onnx")
        assert (models / "my_scale" / member["native_file"]).is_file()
    model = load_model(models / "my_scale")
    assert len(model.native_sessions) == len(model.sessions) == 3
    assert manifest["quality"]["better_than_median"] is True

    star = simulate.simulate_stars(1, seed=21)[0]
    curve = simulate.simulate_lightcurve(star, n_epochs=30, rng=4)
    feh, sigma = predict_feh(curve, period=star["pf"] * u.day,
                             model=str(models / "my_scale"), return_std=True)
    assert np.isfinite(feh.value) and np.isfinite(sigma.value) and sigma.value > 0
    # The labels' scale: predictions land inside the stretched training range.
    assert domain["feh_dex"][0] - 0.5 < feh.value < domain["feh_dex"][1] + 0.5


def test_cv_logs_one_line_per_member_and_no_tensorflow_noise(trained):
    lines = trained["cv"].stderr.splitlines()
    assert lines and all(_TIMESTAMP.match(line) for line in lines), lines
    members = [line for line in lines if "member 0:" in line]
    assert len(members) == 3
    for fold, line in enumerate(members):
        assert re.search(rf"fold {fold} member 0: 10 epochs in \d+ s, best val loss [\d.]+ "
                         r"\(epoch \d+\); ONNX = Keras within [\d.e+-]+ dex \(native GRU: [\d.e+-]+\)$",
                         line), line
    assert "no peer" in lines[0]


def test_ship_never_replaces_a_model_without_replace(trained, tmp_path):
    models = tmp_path / "models"
    first = _training("ship", "--run-dir", trained["run"], "--name", "twice", "--models-dir",
                      models)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = models / "twice" / "manifest.json"
    before = manifest.read_bytes()
    again = _training("ship", "--run-dir", trained["run"], "--name", "twice", "--models-dir",
                      models)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"python -m training ship: error: a model called 'twice' exists in {models}; choose "
        "another --name or pass --replace to overwrite it"]
    assert manifest.read_bytes() == before
    replaced = _training("ship", "--run-dir", trained["run"], "--name", "twice", "--models-dir",
                         models, "--replace")
    assert replaced.returncode == 0, replaced.stderr[-2000:]


def _run_no_better_than_the_median(trained, tmp_path):
    """A copy of the run whose out-of-fold predictions are the median label (no skill)."""
    run = tmp_path / "flat_run"
    shutil.copytree(trained["run"], run)
    oof = Table.read(run / "oof_predictions.ecsv")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["pooled_out_of_fold"] = regression_metrics(
        oof["feh"], np.full(len(oof), np.median(oof["feh"]) + 0.05), oof["weight"])
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_a_model_no_better_than_the_median_is_shipped_with_a_loud_warning(trained, tmp_path):
    run = _run_no_better_than_the_median(trained, tmp_path)
    shipped = _training("ship", "--run-dir", run, "--name", "flat", "--models-dir",
                        tmp_path / "models")
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    assert "WARNING: model 'flat' is no better than predicting the median label" in shipped.stderr
    quality = json.loads((tmp_path / "models" / "flat" / "manifest.json").read_text())["quality"]
    assert quality["better_than_median"] is False
    assert quality["rmse"] >= quality["median_baseline_rmse"]
    assert "no better than predicting the median label" in quality["warning"]
    with pytest.warns(RRLyraeMetallicityWarning, match="no better than predicting the median"):
        load_model(tmp_path / "models" / "flat")


def test_rrlyrae_feh_models_shows_the_warning(trained, tmp_path, monkeypatch, capsys):
    from rrlyrae_metallicity import cli, registry

    run = _run_no_better_than_the_median(trained, tmp_path)
    ship_run(run, "flat_listed", models_dir=tmp_path / "models", make_default=True)
    monkeypatch.setattr(registry, "models_directory", lambda: tmp_path / "models")
    with pytest.warns(RRLyraeMetallicityWarning):
        assert cli.main(["models"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("flat_listed (default): 3 members (3 folds)")
    assert listed[1].startswith("  WARNING: no better than predicting the median label")


def test_quality_check_compares_with_the_median_of_the_other_folds():
    feh = np.array([-2.0, -1.0, 0.0, -1.5, -0.5, -1.0])
    oof = Table({"feh": feh, "fold": [0, 0, 0, 1, 1, 1], "weight": np.ones(6)})
    skilled = quality_check(oof, {"pooled_out_of_fold": regression_metrics(feh, feh + 0.01,
                                                                           np.ones(6))})
    assert skilled["better_than_median"] is True and "warning" not in skilled
    # Each fold predicted by the median of the other: -1.0 for both folds here.
    assert skilled["median_baseline_rmse"] == pytest.approx(np.sqrt(np.mean((feh + 1.0)**2)))
    flat = quality_check(oof, {"pooled_out_of_fold": regression_metrics(feh, np.full(6, -1.0),
                                                                        np.ones(6))})
    assert flat["better_than_median"] is False


def test_load_model_takes_a_model_folder_and_refuses_one_without_a_manifest(tmp_path):
    from rrlyrae_metallicity.exceptions import ModelError

    with pytest.raises(ModelError, match="not a model folder"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="or the path of a model folder"):
        load_model("no_such_model")


def _write(directory, stars, curves, suffix=".ecsv"):
    directory.mkdir(exist_ok=True)
    fmt = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits"}[suffix]
    stars.write(directory / f"stars{suffix}", format=fmt, overwrite=True)
    curves.write(directory / f"lightcurves{suffix}", format=fmt, overwrite=True)
    return directory


@pytest.fixture(scope="module")
def example_tables(tmp_path_factory):
    folder = write_example_training_set(tmp_path_factory.mktemp("tables") / "data", n_stars=12)
    return Table.read(folder / "stars.ecsv"), Table.read(folder / "lightcurves.ecsv")


def test_any_table_format_and_a_period_with_a_unit(example_tables, tmp_path):
    stars, curves = example_tables
    reference = load_dataset(_write(tmp_path / "ecsv", stars, curves))
    assert reference.peer_column is None and reference.feh_peer is None
    assert list(reference.stars["n_epochs"]) == [30] * 12  # derived from the light curves
    for suffix in (".csv", ".fits"):
        other = load_dataset(_write(tmp_path / suffix[1:], stars, curves, suffix))
        assert np.array_equal(other.periods, reference.periods)
        assert all(np.array_equal(a, b) for a, b in zip(other.phases, reference.phases))
    in_hours = stars.copy()
    in_hours["period"] = np.asarray(stars["period"]) * 24 * u.hour
    converted = load_dataset(_write(tmp_path / "hours", in_hours, curves))
    assert np.allclose(converted.periods, reference.periods, rtol=1e-12)


def test_raw_times_are_folded_with_the_period(example_tables, tmp_path):
    stars, curves = example_tables
    period = dict(zip(np.asarray(stars["source_id"]).tolist(), np.asarray(stars["period"])))
    times = curves.copy()
    # Times in days: 17 cycles after an arbitrary zero point, plus the phase.
    times["time"] = 2457000.0 + np.array([period[s] for s in times["source_id"].tolist()]) * (
        17 + np.asarray(curves["phase"]))
    times.remove_column("phase")
    folded = load_dataset(_write(tmp_path / "times", stars, times))
    reference = load_dataset(_write(tmp_path / "phases", stars, curves))
    for a, b in zip(folded.phases, reference.phases):
        # The same phases up to a zero point (the alignment removes it).
        shift = (a - b) % 1.0
        assert np.allclose((shift - shift[0] + 0.5) % 1.0 - 0.5, 0, atol=1e-6)


def _broken(stars, curves, case):
    stars, curves = stars.copy(), curves.copy()
    if case == "no feh":
        stars.remove_column("feh")
    elif case == "period in mag":
        stars["period"].unit = u.mag
    elif case == "text label":
        stars["feh"] = ["metal-poor"] * len(stars)
    elif case == "missing label":
        stars["feh"][3] = np.nan
    elif case == "duplicate star":
        stars["source_id"][1] = stars["source_id"][0]
    elif case == "star without epochs":
        curves = curves[curves["source_id"] != stars["source_id"][2]]
    elif case == "too few epochs":
        keep = (curves["source_id"] != stars["source_id"][4]) | (np.arange(len(curves)) % 30 < 4)
        curves = curves[keep]
    elif case == "no phase or time":
        curves.rename_column("phase", "cycle")
    elif case == "negative period":
        stars["period"][0] = -0.5
    elif case == "blank phases":
        star = curves["source_id"] == stars["source_id"][5]
        phase = np.ma.MaskedArray(np.asarray(curves["phase"]), mask=False)
        phase.mask[np.flatnonzero(star)[:20]] = True  # 10 of its 30 epochs keep a phase
        curves["phase"] = phase
    elif case == "no rows":
        curves = curves[:0]
    return stars, curves


@pytest.mark.parametrize("case, message", [
    ("no feh", r"stars.ecsv lacks the column feh \(source_id, period in days, feh in dex\); "
               r"it has source_id, period"),
    ("period in mag", "column 'period' has unit mag, which is not a time"),
    ("text label", "column 'feh' holds text, not numbers"),
    ("missing label", r"1 star has no valid 'feh' \(e.g. source_id \d+\)"),
    ("duplicate star", r"source_id \d+ appears 2 times"),
    ("star without epochs", r"1 star of the stars table has no epochs in lightcurves.ecsv"),
    ("too few epochs", r"1 star has fewer than \d+ epochs with a phase"),
    ("no phase or time", "lightcurves.ecsv has neither a 'phase' nor a 'time' column"),
    ("negative period", "1 period is not positive"),
    ("blank phases", r"1 star has fewer than 15 epochs with a phase \(or time\) and a magnitude"),
    ("no rows", "lightcurves.ecsv has no rows"),
])
def test_unusable_training_data_is_refused_in_one_line(example_tables, tmp_path, case, message):
    folder = _write(tmp_path / "data", *_broken(*example_tables, case))
    with pytest.raises(TrainingDataError, match=message) as error:
        load_dataset(folder)
    assert "\n" not in str(error.value)


def test_a_missing_folder_or_table_is_refused_in_one_line(tmp_path):
    with pytest.raises(TrainingDataError, match="is not a folder"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(TrainingDataError, match="has no stars table: expected stars.ecsv"):
        load_dataset(tmp_path)


def test_a_named_peer_column_must_exist(example_tables, tmp_path):
    folder = _write(tmp_path / "data", *example_tables)
    with pytest.raises(TrainingDataError, match="lacks the column feh_other"):
        load_dataset(folder, peer_column="feh_other")


def test_the_command_line_says_what_is_wrong_with_the_data_in_one_line(example_tables,
                                                                       tmp_path):
    folder = _write(tmp_path / "data", *_broken(*example_tables, "no feh"))
    result = _training("cv", "--data-dir", folder, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m training cv: error: stars.ecsv lacks the column feh (source_id, period in "
        "days, feh in dex); it has source_id, period"]


def test_a_resumed_run_refuses_other_data(example_tables, tmp_path):
    config = TrainingConfig(preprocessing=PreprocessingConfig(n_phases=32).to_dict(), n_folds=2,
                            n_bins=3, max_epochs=1)
    first = load_dataset(_write(tmp_path / "a", *example_tables))
    run = tmp_path / "run"
    # only_folds=[] records the run and trains nothing.
    run_cross_validation(first, config, run, only_folds=[], log=lambda line: None,
                         label_description="mine", command="python -m training cv ...")
    recorded = json.loads((run / "data.json").read_text())
    assert recorded == {**first.record, "label_description": "mine"}
    assert json.loads((run / "command.json").read_text()) == {
        "command": "python -m training cv ..."}
    stars, curves = example_tables
    changed = stars.copy()
    changed["feh"] = np.asarray(stars["feh"]) + 0.1
    other = load_dataset(_write(tmp_path / "b", changed, curves))
    with pytest.raises(RunError, match="holds a run on other data"):
        run_cross_validation(other, config, run, only_folds=[], log=lambda line: None)


def test_ctrl_c_ends_with_one_line_saying_how_to_resume(trained, tmp_path):
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "training", "cv", "--data-dir", str(trained["data"]),
         "--run-dir", str(run), "--folds", "3", "--max-epochs", "500"],
        cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while not (run / "folds.npy").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(2)  # in the first member's training
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted; run the same command again to resume: what {run} holds is kept")
    assert len(stderr.strip().splitlines()) <= 4


def test_every_option_has_help_and_shows_its_default():
    from training.architectures import ARCHITECTURES

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subcommands.items():
        # Without any whitespace: argparse wraps long defaults, also at hyphens.
        text = "".join(sub.format_help().split())
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings[-1]} has no help"
            if (action.default is not None and action.nargs != 0
                    and "%(default)" not in action.help):
                assert f"(default:{action.default})".replace(" ", "") in text, (
                    name, action.option_strings[-1])
    cv = subcommands["cv"]
    architecture = next(a for a in cv._actions if a.dest == "architecture")
    assert tuple(architecture.choices) == tuple(ARCHITECTURES)
    # The training data format is in the cv help.
    assert "stars.<ext>" in cv.format_help() and "lightcurves.<ext>" in cv.format_help()
    assert "--architecture {fcn,resnet,inception,lstm,bilstm,gru,bigru,convlstm,convgru}" in (
        cv.format_usage().replace("\n", " ").replace("  ", " ") + cv.format_help())


def test_report_works_on_a_cv_folder(trained, tmp_path):
    for option in ("--run-dir", "--study-dir"):
        out = tmp_path / option.strip("-")
        result = _training("report", option, trained["run"], "--out", out)
        assert result.returncode == 0, result.stderr[-2000:]
        summary = Table.read(out / "summary.ecsv")
        metrics = json.loads((trained["run"] / "metrics.json").read_text())
        rmse = summary[summary["metric"] == "rmse"][0]
        assert rmse["pooled"] == pytest.approx(metrics["pooled_out_of_fold"]["rmse"])
        assert rmse["median_pooled"] == pytest.approx(metrics["median_baseline"]["rmse"])
        assert np.isnan(rmse["peer_pooled"])
        assert (out / "true_vs_pred.png").stat().st_size > 0
        assert (out / "loss_curves.png").stat().st_size > 0


def test_ship_describes_the_data_a_run_was_trained_on_even_from_python(example_tables,
                                                                        tmp_path):
    """The data folder's tables changed after the run: ship refuses to describe them."""
    folder = _write(tmp_path / "data", *example_tables)
    run = tmp_path / "run"
    run_cross_validation(load_dataset(folder), TrainingConfig(n_folds=2, n_bins=3), run,
                         only_folds=[], log=lambda line: None)
    (run / "metrics.json").write_text(json.dumps({"config": TrainingConfig(n_folds=2).to_dict()}))
    stars, curves = example_tables
    changed = stars.copy()
    changed["feh"] = np.asarray(stars["feh"]) - 0.3
    _write(folder, changed, curves)
    with pytest.raises(ShipError, match="fold_0/member_0.onnx is missing"):
        ship_run(run, "x", models_dir=tmp_path / "models")
    for k in range(2):
        (run / f"fold_{k}").mkdir(exist_ok=True)
        (run / f"fold_{k}" / "member_0.onnx").write_bytes(b"")
    with pytest.raises(ShipError, match="are not those .* was trained on"):
        ship_run(run, "x", models_dir=tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_the_example_labels_are_on_another_scale(example_tables):
    stars, _ = example_tables
    truth = simulate.simulate_stars(12, seed=3)["feh_simulated"]
    assert np.allclose(stars["feh"], EXAMPLE_SCALE["stretch"] * truth + EXAMPLE_SCALE["shift"])


def test_the_cache_of_model_inputs_follows_the_light_curves(example_tables, tmp_path):
    """Other magnitudes for the same stars, periods and epoch counts are other inputs."""
    from training.data import preprocess

    stars, curves = example_tables
    noisy = curves.copy()
    noisy["mag"] = 15.0 + np.random.default_rng(1).normal(0, 0.3, len(curves))
    config = PreprocessingConfig(n_phases=32)
    cache = tmp_path / "cache"
    first, _ = preprocess(load_dataset(_write(tmp_path / "a", stars, curves)), config,
                          cache_dir=cache, progress=False)
    second, _ = preprocess(load_dataset(_write(tmp_path / "b", stars, noisy)), config,
                           cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 2
    assert not np.allclose(first, second)


def test_text_identifiers_are_accepted(example_tables, tmp_path):
    from training.data import preprocess

    stars, curves = example_tables
    names = {s: f"Gaia DR3 {s}" for s in np.asarray(stars["source_id"]).tolist()}
    stars, curves = stars.copy(), curves.copy()
    stars["source_id"] = [names[s] for s in stars["source_id"].tolist()]
    curves["source_id"] = [names[s] for s in curves["source_id"].tolist()]
    dataset = load_dataset(_write(tmp_path / "text_ids", stars, curves))
    inputs, _ = preprocess(dataset, PreprocessingConfig(n_phases=32),
                           cache_dir=tmp_path / "cache", progress=False)
    assert inputs.shape == (12, 32, 2) and np.isfinite(inputs).all()


def test_blank_peer_values_are_not_scored(simulated_training_set, tmp_path):
    from training.data import Dataset

    stars = simulated_training_set.stars.copy()
    peer = np.asarray(stars["feh_dg22"], dtype=float)
    peer[::3] = np.nan  # blank for a third of the stars; the others are feh + 0.1
    stars["feh_dg22"] = peer
    dataset = Dataset(stars=stars, phases=simulated_training_set.phases,
                      mags=simulated_training_set.mags)
    config = TrainingConfig(preprocessing=PreprocessingConfig(n_phases=32).to_dict(), n_folds=2,
                            n_bins=3, max_epochs=1, patience=1, batch_size=64, run_eagerly=True)
    metrics = run_cross_validation(dataset, config, tmp_path / "run", export=False,
                                   log=lambda line: None, cache_dir=tmp_path / "cache")
    assert metrics["pooled_peer"]["rmse"] == pytest.approx(0.1)
    assert metrics["peer_same_folds"]["rmse"]["mean"] == pytest.approx(0.1)
    assert metrics["peer_n_stars"] == np.isfinite(peer).sum()


def test_a_peer_column_of_text_is_refused_in_one_line(example_tables, tmp_path):
    stars, curves = example_tables
    stars = stars.copy()
    stars["mypeer"] = ["x"] * len(stars)
    folder = _write(tmp_path / "data", stars, curves)
    with pytest.raises(TrainingDataError, match="the peer column 'mypeer' holds text"):
        load_dataset(folder, peer_column="mypeer")


@pytest.mark.parametrize("n_folds, message", [
    (1, "cross-validation needs at least 2 folds, not 1"),
    (5, "12 stars cannot be split into 5 folds stratified on 10 \\[Fe/H\\] bins"),
])
def test_folds_that_cannot_be_made_are_refused_in_one_line(example_tables, tmp_path, n_folds,
                                                           message):
    dataset = load_dataset(_write(tmp_path / "data", *example_tables))
    with pytest.raises(RunError, match=message) as error:
        run_cross_validation(dataset, TrainingConfig(n_folds=n_folds), tmp_path / "run",
                             log=lambda line: None, cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["../elsewhere", "default", "a/b", ""])
def test_ship_refuses_names_that_model_name_could_not_reach(trained, tmp_path, name):
    with pytest.raises(ShipError, match="cannot name a model"):
        ship_run(trained["run"], name, models_dir=tmp_path / "models")
    assert not (tmp_path / "models").exists() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("command", ["calibrate", "error-model", "domain"])
def test_refining_an_unknown_model_is_refused_in_one_line(command):
    result = _training(command, "--name", "no_such_model")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python -m training {command}: error: no model called 'no_such_model' in "
        f"{REPOSITORY / 'rrlyrae_metallicity' / 'data' / 'models'}: give the name of a model "
        "shipped into the package (python -m training ship --name NAME)"]


def test_a_stretch_is_kept_only_when_it_helps_out_of_fold():
    from training.calibration import stretch_helps

    def stretch(crossfit, unstretched):
        return {"crossfit_out_of_fold": {"rmse": crossfit, "wrmse": crossfit},
                "unstretched_out_of_fold": {"rmse": unstretched, "wrmse": unstretched}}

    assert stretch_helps(stretch(0.17, 0.18))
    assert not stretch_helps(stretch(0.425, 0.371))  # a weak model's stretch, made worse
    # The shipped default's own numbers: the stretch helps.
    from rrlyrae_metallicity.registry import read_manifest

    assert stretch_helps(read_manifest("gru").output_stretch)


def test_flags_do_not_claim_a_default():
    cv_help = " ".join(build_parser().parse_known_args(["calibrate", "--name", "x"])[0]
                       .subparser.format_help().split())
    assert "--no-stretch leave the predictions unstretched (removes output_stretch)" in cv_help
    assert "(default: True)" not in cv_help


def test_a_few_stars_run_on_the_native_graphs_and_agree_with_the_batch(trained):
    """Below SERIAL_BELOW stars the native GRU graphs run; they agree with the loops to 1e-5."""
    from rrlyrae_metallicity.ensemble import SERIAL_BELOW

    models = trained["root"] / "models"
    if not (models / "my_scale").is_dir():
        ship_run(trained["run"], "my_scale", models_dir=models)
    model = load_model(models / "my_scale")
    rng = np.random.default_rng(2)
    inputs = rng.normal(0, 0.3, size=(SERIAL_BELOW + 8, 80, 2)).astype(np.float32)
    inputs[..., 0] = np.linspace(0, 1, 80, endpoint=False)
    batch = model.predict_members(inputs)  # the loops
    few = np.concatenate([model.predict_members(inputs[i:i + 4]) for i in range(0, 16, 4)],
                         axis=1)  # the native graphs
    assert np.max(np.abs(few - batch[:, :16])) < 1e-5
    # Which graphs ran: the native ones for a few stars only.
    calls = []

    class Counted:
        def __init__(self, session):
            self.session = session

        def run(self, *args):
            calls.append(len(args[1]["lightcurve"]))
            return self.session.run(*args)

    natives = model.native_sessions
    try:
        model.native_sessions = [Counted(s) for s in natives]
        model.predict_members(inputs[:4])
        assert calls == [4, 4, 4]
        model.predict_members(inputs)
        assert calls == [4, 4, 4]
    finally:
        model.native_sessions = natives
