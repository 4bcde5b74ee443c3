"""Integration tests on the real light curves in ``../shared/data``.

Skipped, with the reason, when the shared data are not beside the repository
(e.g. on a user's machine).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

import rrlyrae_metallicity as rm
from rrlyrae_metallicity.models import load_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
GAIA = SHARED / "gaia_dr2_rrab_g"
STRIPE82 = SHARED / "sdss_stripe82_rrlyrae"
RESULTS = REPO / "training" / "results"

needs_gaia = pytest.mark.skipif(not (GAIA / "stars.ecsv").exists(),
                                reason=f"shared training data not found in {GAIA}")
needs_stripe82 = pytest.mark.skipif(not (STRIPE82 / "stars.ecsv").exists(),
                                    reason=f"shared Stripe 82 data not found in {STRIPE82}")


@pytest.fixture(scope="module")
def shipped():
    """The ten-member ``gru`` ensemble (the default's teacher) and its recorded results."""
    model = load_model("gru")
    results = RESULTS / model.name
    if not (results / "oof_predictions.ecsv").exists():
        pytest.skip(f"no recorded training results in {results}")
    return model, Table.read(results / "oof_predictions.ecsv")


@pytest.fixture(scope="module")
def gaia_dataset(shared_gaia):
    training = pytest.importorskip("training.data", reason="needs the repository's training/")
    return training.load_dataset(shared_gaia)


def _preprocess(dataset, config, cache_dir):
    from training.data import preprocess

    return preprocess(dataset, config, progress=False, cache_dir=cache_dir)[0]


@pytest.fixture(scope="module")
def gaia_inputs(shipped, gaia_dataset, tmp_path_factory):
    """Inputs of the reference smoother, which the shipped models were trained on."""
    model, _ = shipped
    config = dataclasses.replace(model.preprocessing, smoother="scipy_gcv")
    return gaia_dataset, _preprocess(gaia_dataset, config, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def gaia_served_inputs(shipped, gaia_dataset):
    """Inputs of the smoother the shipped manifest serves with."""
    model, _ = shipped
    return _preprocess(gaia_dataset, model.preprocessing, None)


@needs_gaia
@pytest.mark.slow
def test_shipped_models_reproduce_the_recorded_out_of_fold_metrics(shipped, gaia_inputs):
    model, recorded = shipped
    dataset, inputs = gaia_inputs
    assert list(recorded["source_id"]) == list(dataset.stars["source_id"])
    # ONNX Runtime + the package's pre-processing reproduce the Keras training run.
    _assert_reproduces_the_training_run(model, inputs, dataset, recorded)


def _assert_reproduces_the_training_run(model, inputs, dataset, recorded):
    """Out-of-fold predictions and metrics of ``model`` on ``inputs`` equal the recorded ones."""
    from training.data import density_weights
    from training.metrics import regression_metrics

    members = model.predict_members(inputs)
    folds = np.array([m["fold"] for m in model.manifest["members"]])
    oof = np.empty(len(dataset))
    for k in np.unique(folds):
        held_out = np.asarray(recorded["fold"]) == k
        oof[held_out] = members[folds == k][:, held_out].mean(axis=0)
    np.testing.assert_allclose(oof, recorded["feh_pred"], atol=1e-4)
    metrics = regression_metrics(dataset.feh, oof, density_weights(dataset.feh))
    stored = model.manifest["cv_metrics"]["pooled_out_of_fold"]
    for name in ("rmse", "mae", "r2", "wrmse", "wmae"):
        assert metrics[name] == pytest.approx(stored[name], abs=1e-4)


def _models_trained_on_the_served_smoother():
    """Shipped models whose training inputs came from the smoother they serve with."""
    names = []
    for name in rm.available_models():
        manifest = load_model(name).manifest
        if "components" in manifest or "crossfit_members" in manifest:
            continue
        trained = manifest["training_config"]["preprocessing"].get("smoother", "scipy_gcv")
        if trained == manifest["preprocessing"]["smoother"]:
            names.append(name)
    return names


@needs_gaia
@pytest.mark.slow
@pytest.mark.parametrize("name", _models_trained_on_the_served_smoother())
def test_architecture_ensembles_reproduce_their_out_of_fold_predictions(name, gaia_dataset):
    # The study's ensembles (one per architecture) were trained on the inputs
    # the package serves, so the package alone must give their recorded
    # out-of-fold predictions and metrics.
    model = load_model(name)
    assert model.manifest["architecture"] == name
    recorded = Table.read(RESULTS / name / "oof_predictions.ecsv")
    inputs = _preprocess(gaia_dataset, model.preprocessing, None)
    _assert_reproduces_the_training_run(model, inputs, gaia_dataset, recorded)


@needs_gaia
@pytest.mark.slow
def test_batch_smoother_moves_predictions_by_less_than_0p01_dex(shipped, gaia_inputs,
                                                                 gaia_served_inputs):
    model, _ = shipped
    dataset, reference = gaia_inputs
    assert model.preprocessing.smoother == "batch"
    shift = (model.predict_members(gaia_served_inputs).mean(axis=0)
             - model.predict_members(reference).mean(axis=0))
    assert len(shift) == len(dataset) == 3772
    # The manifest records 0.0081 dex RMS (max 0.27 dex, a handful of sparse stars).
    assert np.sqrt(np.mean(shift ** 2)) < 0.01
    assert abs(shift.mean()) < 0.003
    np.testing.assert_allclose(gaia_served_inputs, reference, atol=1.0)
    assert np.sqrt(np.mean((gaia_served_inputs - reference) ** 2)) < 0.005


@needs_gaia
@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru", "default"])
def test_public_api_matches_the_training_inputs(name, gaia_dataset, gaia_served_inputs):
    model = load_model(name)
    dataset = gaia_dataset
    # The training module's inputs for the model's own pre-processing (the
    # default rejects outlying epochs; gru keeps them all).
    inputs = (gaia_served_inputs if model.preprocessing == load_model("gru").preprocessing
              else _preprocess(dataset, model.preprocessing, None))
    rows = np.arange(0, len(dataset), 40)
    curves = [Table({"phase": dataset.phases[i], "mag": dataset.mags[i] * u.mag}) for i in rows]
    api = rm.predict_feh(curves, dataset.periods[rows] * u.day, model=name)
    direct = model.stretch(model.predict_members(inputs[rows])).mean(axis=0)
    np.testing.assert_allclose(api.value, direct, atol=1e-6)


def _stripe82_lightcurves(band="g"):
    stars = Table.read(STRIPE82 / "stars.ecsv")
    epochs = Table.read(STRIPE82 / "lightcurves.ecsv")
    epochs = epochs[epochs["band"] == band]
    ab = stars[stars["type"] == "ab"]
    curves = []
    for star in ab:
        rows = epochs[epochs["id"] == star["id"]]
        curves.append(TimeSeries(time=Time(rows["time"], format="mjd"),
                                 data={"mag": rows["mag"], "mag_error": rows["magerr"]}))
    return ab, curves


@needs_stripe82
@pytest.mark.parametrize("band", ["g", "r", "i"])
def test_stripe82_raw_times_give_finite_feh_for_every_rrab(band):
    ab, curves = _stripe82_lightcurves(band)
    if band == "i":
        # The i-band light curve of star 1399304 holds the survey's 99.99 sentinels.
        assert any((c["mag"].value > 90).any() for c in curves)
    feh, std = rm.predict_feh(curves, ab["period"].quantity, return_std=True)
    assert len(feh) == len(ab) == 48
    assert np.isfinite(feh.value).all() and (feh.value > -4).all() and (feh.value < 1).all()
    # SDSS bands are not Gaia G: amplitudes beyond the training range make some
    # stars extrapolations, whose uncertainty is NaN; the others have one.
    table = rm.add_feh(Table({"id": ab["id"], "pf": ab["period"]}), curves, id_column="id",
                       epoch_column=None)
    outside = np.asarray(table["feh_domain"]) != ""
    np.testing.assert_array_equal(np.isnan(std.value), outside)
    assert (~outside).sum() >= 10


@needs_stripe82
def test_stripe82_raw_times_and_folded_phases_agree():
    ab, curves = _stripe82_lightcurves()
    table = rm.add_feh(Table({"id": ab["id"][:8], "pf": ab["period"][:8]}), curves[:8],
                       id_column="id", epoch_column=None, mag_column="mag")
    for star, curve, from_times in zip(ab[:8], curves[:8], table["feh_phot"]):
        period = star["period"] * u.day
        folded = curve.fold(period=period, normalize_phase=True, wrap_phase=1)
        phases = Table({"phase": np.asarray(folded.time.value) % 1.0, "mag": folded["mag"]})
        from_phases = rm.predict_feh(phases, period)
        assert from_phases.value == pytest.approx(from_times, abs=1e-6)


@needs_gaia
def test_shipped_manifest_records_the_cv_against_the_peer():
    model = load_model()
    metrics = model.manifest["cv_metrics"]
    assert metrics["n_stars"] == 3772
    recorded = json.loads((RESULTS / model.name / "metrics.json").read_text())
    assert recorded["pooled_out_of_fold"] == metrics["pooled_out_of_fold"]
    assert metrics["pooled_peer"]["rmse"] == pytest.approx(0.1777, abs=1e-3)


@needs_gaia
def test_default_model_beats_the_peer_on_every_metric_as_served():
    # Cross-fitted: each fold's stretch was fitted on the other folds' errors.
    manifest = load_model().manifest
    served = manifest["output_stretch"]["crossfit_out_of_fold"]
    peer = manifest["cv_metrics"]["pooled_peer"]
    assert served["r2"] > peer["r2"]
    for name in ("rmse", "mae", "wrmse", "wmae"):
        assert served[name] < peer[name], name
    assert manifest["output_stretch"]["factor"] > 1.0


@needs_gaia
@pytest.mark.slow
def test_composite_model_reproduces_its_out_of_fold_metrics_and_beats_gru(gaia_dataset):
    # gru_inception: each star predicted by the members of its own held-out
    # fold of each component (the two have different folds), then averaged
    # with the manifest's weights and stretched, as the package serves it.
    from training.data import density_weights
    from training.metrics import regression_metrics

    model = load_model("gru_inception")
    recorded = Table.read(RESULTS / "gru_inception" / "oof_predictions.ecsv")
    assert list(recorded["source_id"]) == list(gaia_dataset.stars["source_id"])
    inputs = _preprocess(gaia_dataset, model.preprocessing, None)
    blend = np.zeros(len(gaia_dataset))
    for component in model.manifest["components"]:
        part = load_model(component["name"])
        members = part.predict_members(inputs)
        member_folds = np.array(part.member_folds)
        star_folds = np.asarray(recorded[f"fold_{part.name}"])
        own = np.empty(len(gaia_dataset))
        for k in np.unique(member_folds):
            own[star_folds == k] = members[member_folds == k][:, star_folds == k].mean(axis=0)
        blend += component["weight"] * own
    stretch = model.manifest["output_stretch"]
    served = stretch["centre_dex"] + stretch["factor"] * (blend - stretch["centre_dex"])
    np.testing.assert_allclose(served, recorded["feh_pred"], atol=1e-6)
    weights = density_weights(gaia_dataset.feh)
    metrics = regression_metrics(gaia_dataset.feh, served, weights)
    calibration = model.manifest["uncertainty_calibration"]
    for name in ("rmse", "mae", "r2", "wrmse", "wmae"):
        assert metrics[name] == pytest.approx(calibration["served_out_of_fold"][name], abs=1e-6)
    # Cross-fitted, it is better than the default gru on all five metrics.
    ours = stretch["crossfit_out_of_fold"]
    gru = load_model("gru").manifest["output_stretch"]["crossfit_out_of_fold"]
    assert ours["r2"] > gru["r2"]
    for name in ("rmse", "mae", "wrmse", "wmae"):
        assert ours[name] < gru[name], name
    assert 0.65 < calibration["crossfit_coverage_1std"] < 0.72


@needs_gaia
@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru_distilled", "gru"])
def test_the_error_model_tracks_the_real_error_out_of_fold(name, gaia_dataset):
    """The targets of the per-star σ, cross-fitted on the 3772 stars as served."""
    from training.calibration import error_model_checks, fit_error_model
    from training.served import recorded_folds, served_out_of_fold_with_influence

    model = load_model(name)
    folds = recorded_folds(model.name, gaia_dataset)
    # A distilled model: one column, its fold students' out-of-fold predictions;
    # the influence of each star's most deviant epoch, out of fold too.
    prediction, spread, curves, influence = served_out_of_fold_with_influence(
        model, gaia_dataset, folds)
    features = rm.uncertainty.error_model_features(prediction, spread, curves,
                                                   gaia_dataset.periods, influence)
    errors = prediction - gaia_dataset.feh
    refitted, crossfit_std = fit_error_model(
        errors, features, folds, names=model.uncertainty_calibration["error_model"]["features"])
    checks = error_model_checks(errors, crossfit_std, features)
    assert all(0.9 <= r <= 1.1 for r in checks["rmse_over_rms_std_by_fifth"])
    assert checks["rmse_largest_over_smallest_fifth"] >= 1.4
    assert checks["coverage_1std"] == pytest.approx(0.68, abs=0.02)
    for group, covered in checks["coverage_1std_by_group"].items():
        assert covered == pytest.approx(0.68, abs=0.02), group
    # The shipped model is this fit, and the package serves it.
    shipped_model = model.uncertainty_calibration["error_model"]
    np.testing.assert_allclose(shipped_model["coefficients"], refitted["coefficients"],
                               rtol=1e-6, atol=1e-9)
    inputs, _, _ = rm.preprocessing.prepare_inputs(
        gaia_dataset.phases[:50], gaia_dataset.mags[:50], gaia_dataset.periods[:50],
        model.preprocessing)
    served = model.uncertainty(model.stretch(model.predict_members(inputs)), curves[:50],
                               gaia_dataset.periods[:50], influence[:50])
    assert np.isfinite(served).all() and served.std() > 0.01


@needs_gaia
def test_the_distilled_default_reproduces_its_recorded_out_of_fold_predictions(gaia_dataset):
    """Its fold students, run by the package on its own inputs, give what distill recorded."""
    from training.data import density_weights
    from training.metrics import regression_metrics
    from training.served import own_fold_members, recorded_folds, training_inputs

    model = load_model()
    assert model.is_distilled
    recorded = Table.read(RESULTS / model.name / "oof_predictions.ecsv")
    assert list(recorded["source_id"]) == list(gaia_dataset.stars["source_id"])
    folds = recorded_folds(model.name, gaia_dataset)
    own = own_fold_members(model, training_inputs(gaia_dataset, model.preprocessing), folds)
    np.testing.assert_allclose(own[:, 0], recorded["feh_pred"], atol=1e-5)
    metrics = regression_metrics(gaia_dataset.feh, own[:, 0], density_weights(gaia_dataset.feh))
    stored = model.manifest["cv_metrics"]
    for key in ("rmse", "mae", "r2", "wrmse", "wmae"):
        assert metrics[key] == pytest.approx(stored["pooled_out_of_fold"][key], abs=1e-6)
    # Within 0.002 dex of its teacher out of fold, unstretched and as served.
    for key in ("rmse", "mae", "wrmse"):
        assert metrics[key] - stored["teacher_out_of_fold"][key] < 0.002
        served = model.manifest["output_stretch"]["crossfit_out_of_fold"][key]
        teacher = load_model("gru").manifest["output_stretch"]["crossfit_out_of_fold"][key]
        assert served - teacher < 0.002


@needs_gaia
def test_no_training_star_is_flagged_outside_the_training_domain(gaia_dataset):
    """The training domain is the training stars' own: none of them is an extrapolation."""
    curves = {int(i): Table({"phase": p, "mag": m}) for i, p, m in
              zip(gaia_dataset.stars["source_id"], gaia_dataset.phases, gaia_dataset.mags)}
    table = Table({"source_id": gaia_dataset.stars["source_id"], "pf": gaia_dataset.periods})
    result = rm.add_feh(table, curves, epoch_column=None)
    # (Other bits may be set: epochs rejected, a value resting on one epoch.)
    outside = (np.asarray(result["feh_flags"]) & rm.domain.OUT_OF_DOMAIN) != 0
    assert not outside.any(), set(result["feh_domain"])
    assert (result["feh_status"] == "ok").all() and (result["feh_domain"] == "").all()
    assert np.isfinite(np.asarray(result["feh_phot_std"])).all()


@needs_gaia
@pytest.mark.slow
def test_bad_epochs_are_rejected_or_flagged_on_the_real_stars(gaia_dataset):
    """The default's outlier rule on the real stars with 25 or more epochs.

    Bad epochs (drawn at random, seeded) are moved and the star goes through
    `add_feh` again. The rule rejects nearly every epoch 1 mag off or more,
    also one within 0.002 cycle of another epoch (merged with it before the
    fit) and also two or three of them in one star; whatever the offset, a
    value that moved by more than the σ served with it carries a flag
    (epochs rejected, sensitive to one epoch, out of domain).
    """
    from rrlyrae_metallicity.preprocessing import _MERGE_TOLERANCE

    many = np.array([len(p) >= 25 for p in gaia_dataset.phases])
    ids = np.asarray(gaia_dataset.stars["source_id"])[many]
    phases = [p for p, k in zip(gaia_dataset.phases, many) if k]
    mags = [m for m, k in zip(gaia_dataset.mags, many) if k]
    table = Table({"source_id": ids, "pf": gaia_dataset.periods[many] * u.day})

    def predict(magnitudes):
        curves = {int(i): Table({"phase": p, "mag": m}) for i, p, m in
                  zip(ids, phases, magnitudes)}
        return rm.add_feh(table, curves, epoch_column=None)

    def with_bad_epochs(offsets):
        # One epoch made fainter; two or three moved either way.
        bad = [m.copy() for m in mags]
        for m, j, sign in zip(bad, chosen, signs):
            m[j] += offsets * (sign if np.count_nonzero(offsets) > 1 else 1.0)
        return predict(bad)

    clean = predict(mags)
    assert np.mean(clean["feh_n_rejected"] > 0) < 0.05  # real epochs are kept
    rng = np.random.default_rng(7)
    chosen = [rng.choice(len(p), size=3, replace=False) for p in phases]
    signs = [rng.choice([-1.0, 1.0], size=3) for _ in phases]
    close = np.array([np.any(np.abs((p - p[j[0]] + 0.5) % 1.0 - 0.5)[np.arange(p.size) != j[0]]
                             <= _MERGE_TOLERANCE) for p, j in zip(phases, chosen)])
    assert 0.08 < close.mean() < 0.2  # about one bad epoch in eight has a close neighbour
    for offsets, min_rejected, min_steady, min_close in (
            ([0.2, 0, 0], 0.0, 0.0, 0.0), ([1.0, 0, 0], 0.93, 0.88, 0.87),
            ([5.0, 0, 0], 0.99, 0.94, 0.99), ([1.0, 1.0, 0], 0.85, 0.8, 0.0),
            ([1.0, 1.0, 1.0], 0.7, 0.65, 0.0)):
        n_bad = np.count_nonzero(offsets)
        result = with_bad_epochs(np.array(offsets))
        shift = np.abs(np.asarray(result["feh_phot"] - clean["feh_phot"]))
        extra = np.asarray(result["feh_n_rejected"]) - np.asarray(clean["feh_n_rejected"])
        assert np.mean(extra >= n_bad) >= min_rejected, offsets
        assert np.mean(extra[close] >= n_bad) >= min_close, offsets
        assert np.mean(shift < 0.05) >= min_steady, offsets
        flagged = (np.asarray(result["feh_flags"]) != 0) | (result["feh_status"] != "ok")
        moved = shift > np.asarray(result["feh_phot_std"])
        assert np.mean(moved & ~flagged) < (0.03 if n_bad < 3 else 0.04), offsets
