"""Distilling an ensemble into one network (training.distill, training.ship_student).

A small teacher is cross-validated and shipped on simulated stars; the
distillation, its resumption after an interruption, shipping the student
and serving it run for real on it.
"""

import json
import shutil

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

pytest.importorskip("tensorflow", reason="the training tests need the 'train' extra")
pytest.importorskip("training", reason="run the tests from the repository root")

import training.distill as distill  # noqa: E402
from training.cv import TrainingConfig, run_cross_validation  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.examples import write_example_training_set  # noqa: E402
from training.served import own_fold_members, training_inputs  # noqa: E402
from training.ship import ShipError, record_results, ship_run  # noqa: E402
from training.ship_student import is_distillation_run, ship_student  # noqa: E402

from rrlyrae_metallicity import load_model, predict_feh, simulate  # noqa: E402
from rrlyrae_metallicity.preprocessing import PreprocessingConfig  # noqa: E402

_QUIET = {"log": lambda line: None}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A 3-fold, 2-member GRU teacher trained briefly on 90 simulated stars, shipped."""
    root = tmp_path_factory.mktemp("distill")
    data = write_example_training_set(root / "data", n_stars=90)
    dataset = load_dataset(data)
    config = TrainingConfig(n_folds=3, n_bins=3, members_per_fold=2, max_epochs=3, patience=3,
                            model_kwargs={"units": [8, 6, 4]})
    run_cross_validation(dataset, config, root / "cv", progress=False, **_QUIET)
    ship_run(root / "cv", "teacher", models_dir=root / "models")
    # As `python -m training ship --models-dir` keeps them: beside the model.
    record_results(root / "cv", "results", results_dir=root / "models" / "teacher")
    robust = TrainingConfig(**{**config.to_dict(), "members_per_fold": 1, "preprocessing":
                               PreprocessingConfig(outlier_threshold=8.0).to_dict()})
    run_cross_validation(dataset, robust, root / "cv_robust", progress=False, **_QUIET)
    return {"root": root, "data": data, "dataset": dataset}


def _config(teacher, **kwargs):
    """A robust student started from a cv run of its own pre-processing."""
    return distill.DistillConfig(teacher=str(teacher["root"] / "models" / "teacher"),
                                 init=str(teacher["root"] / "cv_robust"), copies=1,
                                 max_epochs=3, patience=3,
                                 preprocessing=PreprocessingConfig(outlier_threshold=8.0)
                                 .to_dict(), **kwargs)


@pytest.fixture(scope="module")
def distilled(teacher):
    run = teacher["root"] / "student_run"
    metrics = distill.run_distillation(teacher["dataset"], _config(teacher), run,
                                       **_QUIET)
    return {"run": run, "metrics": metrics}


def test_each_fold_is_taught_by_its_own_members_on_the_stars_own_curves(teacher, distilled):
    ensemble = load_model(teacher["root"] / "models" / "teacher")
    # The teacher reads the robust student's input format, so it labels the
    # student's inputs: a star that lost an epoch is labelled without it.
    student = PreprocessingConfig(outlier_threshold=8.0)
    inputs = training_inputs(teacher["dataset"], student)
    assert not np.allclose(inputs, training_inputs(teacher["dataset"], ensemble.preprocessing))
    folds = np.load(distilled["run"] / "folds.npy")
    labels = np.load(distilled["run"] / "teacher.npy")
    members = ensemble.predict_members(inputs)
    member_folds = np.asarray(ensemble.member_folds)
    assert labels.shape == (4, len(inputs))
    for k in range(3):
        np.testing.assert_allclose(labels[k], members[member_folds == k].mean(axis=0))
    np.testing.assert_allclose(labels[-1], members.mean(axis=0))
    # The teacher's out-of-fold prediction: each star by the members that never saw it.
    oof = Table.read(distilled["run"] / "oof_predictions.ecsv")
    np.testing.assert_allclose(oof["feh_teacher"],
                               own_fold_members(ensemble, inputs, folds).mean(axis=1))


def test_every_copy_carries_the_label_of_its_stars_own_curve(teacher, distilled):
    with np.load(distilled["run"] / "inputs.npz") as stored:
        source, version, inputs = stored["source"], stored["version"], stored["inputs"]
    n = len(teacher["dataset"])
    assert np.array_equal(source[version == 0], np.arange(n))
    assert set(np.unique(version)) == {0, 1}
    # A copy is another input of the same star.
    copy = np.flatnonzero(version == 1)[0]
    assert not np.allclose(inputs[copy], inputs[source[copy]])


def test_the_student_starts_from_the_fold_member_that_never_saw_its_fold(teacher, distilled):
    import keras

    for k in range(3):
        state = json.loads((distilled["run"] / f"student_{k}" / "student.json").read_text())
        start = keras.models.load_model(teacher["root"] / "cv_robust" / f"fold_{k}" /
                                        "member_0.keras")
        assert state["start_val_loss"] > 0
        assert len(start.get_weights()) == len(
            keras.models.load_model(distilled["run"] / f"student_{k}" / "student.keras")
            .get_weights())


def test_an_interrupted_distillation_resumes_where_it_stopped(teacher, distilled, monkeypatch):
    run = teacher["root"] / "interrupted"
    saves = []
    real_save = distill._save_atomically

    def interrupt_at_second_epoch_of_fold_1(model, path):
        saves.append(path)
        if "student_1" in str(path) and sum("student_1" in str(p) for p in saves) == 2:
            raise KeyboardInterrupt
        real_save(model, path)

    monkeypatch.setattr(distill, "_save_atomically", interrupt_at_second_epoch_of_fold_1)
    with pytest.raises(KeyboardInterrupt):
        distill.run_distillation(teacher["dataset"], _config(teacher), run, **_QUIET)
    assert (run / "student_0" / "student.keras").exists()
    state = json.loads((run / "student_1" / "state.json").read_text())
    assert state["epoch"] == 1
    monkeypatch.setattr(distill, "_save_atomically", real_save)
    lines = []
    metrics = distill.run_distillation(teacher["dataset"], _config(teacher), run,
                                       log=lines.append)
    assert any("student 1: resuming after epoch 1" in line for line in lines)
    assert any("student 0: trained before, loaded" in line for line in lines)
    # Epochs seeded by number and the optimiser restored: as if never interrupted.
    resumed = Table.read(run / "oof_predictions.ecsv")["feh_pred"]
    straight = Table.read(distilled["run"] / "oof_predictions.ecsv")["feh_pred"]
    np.testing.assert_allclose(resumed, straight, atol=1e-5)
    assert metrics["n_stars"] == 90
    assert not (run / "student_1" / "checkpoint.keras").exists()


def test_a_resumed_run_with_other_options_is_refused(teacher, distilled):
    with pytest.raises(distill.RunError, match="copies 1 there, 2 asked"):
        distill.run_distillation(teacher["dataset"],
                                 distill.DistillConfig(**{**_config(teacher).to_dict(),
                                                          "copies": 2}),
                                 distilled["run"],
                                 **_QUIET)


def test_the_shipped_student_serves_one_network_and_reproduces_its_out_of_fold(
        teacher, distilled, monkeypatch):
    models = teacher["root"] / "models"
    assert is_distillation_run(distilled["run"])
    path = ship_student(distilled["run"], "student", models_dir=models)
    manifest = json.loads(path.read_text())
    assert len(manifest["members"]) == 1 and len(manifest["crossfit_members"]) == 3
    assert manifest["training_config"]["distilled_from"] == "teacher"
    assert manifest["preprocessing"]["outlier_threshold"] == 8.0
    with pytest.raises(ShipError, match="exists"):
        ship_student(distilled["run"], "student", models_dir=models)

    model = load_model(models / "student")
    assert model.is_distilled and len(model.sessions) == 1 and len(model.native_sessions) == 1
    inputs = training_inputs(teacher["dataset"], model.preprocessing)
    folds = np.load(distilled["run"] / "folds.npy")
    own = own_fold_members(model, inputs, folds)
    recorded = Table.read(distilled["run"] / "oof_predictions.ecsv")
    np.testing.assert_allclose(own[:, 0], recorded["feh_pred"], atol=1e-5)

    # Served: the final student alone, never a fold student.
    def no_fold_students(*args, **kwargs):
        raise AssertionError("a fold student was run to serve a prediction")

    monkeypatch.setattr(type(model), "predict_crossfit", no_fold_students)
    star = simulate.simulate_stars(1, seed=8)[0]
    curve = simulate.simulate_lightcurve(star, n_epochs=30, rng=2)
    feh, sigma = predict_feh(curve, period=star["pf"] * u.day, model=str(models / "student"),
                             return_std=True)
    assert np.isfinite(feh.value) and sigma.value > 0


def test_a_student_run_is_refused_by_ship_until_it_is_finished(distilled, tmp_path):
    unfinished = tmp_path / "run"
    shutil.copytree(distilled["run"], unfinished)
    (unfinished / "metrics.json").unlink()
    with pytest.raises(ShipError, match="unfinished"):
        ship_student(unfinished, "x", models_dir=tmp_path / "models")


def test_a_student_started_from_the_teachers_own_members(teacher, tmp_path):
    from training.native_onnx import keras_member

    from training.member import predict

    config = distill.DistillConfig(teacher=str(teacher["root"] / "models" / "teacher"),
                                   max_epochs=0, patience=3)
    metrics = distill.run_distillation(teacher["dataset"], config, tmp_path / "run",
                                       **_QUIET)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    ensemble = load_model(teacher["root"] / "models" / "teacher")
    assert stored["preprocessing"] == ensemble.preprocessing.to_dict()
    # Untrained (0 epochs), each fold student is its teacher's member 0 of that fold,
    # rebuilt in Keras from the ONNX export.
    inputs = training_inputs(teacher["dataset"], ensemble.preprocessing)
    members = ensemble.predict_members(inputs)
    first = [i for i, m in enumerate(ensemble.manifest["members"]) if m["member"] == 0]
    folds = np.load(tmp_path / "run" / "folds.npy")
    oof = Table.read(tmp_path / "run" / "oof_predictions.ecsv")["feh_pred"]
    for k, row in enumerate(first):
        np.testing.assert_allclose(oof[folds == k], members[row][folds == k], atol=1e-5)
    rebuilt = keras_member(teacher["root"] / "models" / "teacher" /
                           ensemble.manifest["members"][0]["file"], inputs)
    np.testing.assert_allclose(predict(rebuilt, inputs), members[0], atol=1e-5)
    assert metrics["pooled_out_of_fold"]["rmse"] > 0
    # A teacher-started student must read the teacher's input format; only the
    # outlier rule may differ.
    with pytest.raises(distill.RunError, match="teacher's input format"):
        distill.run_distillation(
            teacher["dataset"], distill.DistillConfig(**{**config.to_dict(), "preprocessing":
                                                         PreprocessingConfig(
                                                             n_phases=40).to_dict()}),
            tmp_path / "other", **_QUIET)
    robust = distill.DistillConfig(**{**config.to_dict(), "preprocessing": PreprocessingConfig(
        outlier_threshold=8.0).to_dict()})
    distill.run_distillation(teacher["dataset"], robust, tmp_path / "robust", **_QUIET)
    stored = json.loads((tmp_path / "robust" / "config.json").read_text())
    assert stored["preprocessing"]["outlier_threshold"] == 8.0


def test_a_teacher_shipped_with_models_dir_keeps_its_folds_beside_it(teacher, distilled,
                                                                       tmp_path):
    # What `python -m training ship --models-dir DIR` writes: the model and its results/.
    folder = tmp_path / "models" / "gru"
    shutil.copytree(teacher["root"] / "models" / "teacher", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(dict(manifest, name="gru")))
    config = distill.DistillConfig(teacher=str(folder), max_epochs=0)
    # Its own record is read, not that of the package's model of the same name.
    metrics = distill.run_distillation(teacher["dataset"], config, tmp_path / "run", **_QUIET)
    assert np.array_equal(np.load(tmp_path / "run" / "folds.npy"),
                          np.load(teacher["root"] / "cv" / "folds.npy"))
    assert metrics["n_stars"] == 90
    (folder / "results" / "oof_predictions.ecsv").unlink()
    with pytest.raises(distill.RunError, match="no recorded folds of the teacher"):
        distill.run_distillation(teacher["dataset"], config, tmp_path / "other", **_QUIET)


def test_a_distilled_model_cannot_teach(teacher, distilled, tmp_path):
    models = tmp_path / "models"
    ship_student(distilled["run"], "student", models_dir=models)
    config = distill.DistillConfig(teacher=str(models / "student"), max_epochs=0)
    with pytest.raises(distill.RunError, match="is a distilled model"):
        distill.run_distillation(teacher["dataset"], config, tmp_path / "run", **_QUIET)
