"""Tests of the public prediction API and the shipped models, on simulated light curves."""

import hashlib
import json

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

import rrlyrae_metallicity as rm
from rrlyrae_metallicity import simulate
from rrlyrae_metallicity.domain import FLAG_BITS
from rrlyrae_metallicity.exceptions import LightCurveError, ModelError, ModelIntegrityError
from rrlyrae_metallicity.models import FehEnsemble, load_model
from rrlyrae_metallicity.registry import models_directory
from rrlyrae_metallicity.preprocessing import fold_times, prepare_inputs


@pytest.fixture(scope="module")
def stars(simulated_stars):
    return simulated_stars


@pytest.fixture(scope="module")
def curves(simulated_curves):
    return simulated_curves


def test_default_model_is_shipped_and_verified():
    names = rm.available_models()
    assert names, "no model shipped in rrlyrae_metallicity/data/models"
    model = load_model()
    assert model.name in names
    manifest = model.manifest
    assert len(model.sessions) == len(manifest["members"]) >= 1
    for member in manifest["members"] + manifest.get("crossfit_members", []):
        for file, digest in (("file", "sha256"), ("native_file", "native_sha256")):
            payload = (models_directory() / model.name / member[file]).read_bytes()
            assert hashlib.sha256(payload).hexdigest() == member[digest]
    for key in ("preprocessing", "training_data", "cv_metrics", "produced_by", "training_domain"):
        assert key in manifest
    assert model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")


def _is_composite(name):
    return "components" in json.loads((models_directory() / name / "manifest.json").read_text())


def _is_distilled(name):
    return "crossfit_members" in json.loads((models_directory() / name / "manifest.json")
                                            .read_text())


@pytest.mark.parametrize("name", [n for n in rm.available_models()
                                  if n != "gru" and not _is_composite(n)
                                  and not _is_distilled(n)])
def test_each_architecture_name_selects_its_own_ensemble(name, stars, curves):
    model = load_model(name)
    assert model.name == name and model.manifest["architecture"] == name
    feh, std = rm.predict_feh(curves[0], stars["pf"][0] * u.day, model=name, return_std=True)
    phase = fold_times(np.asarray(curves[0].time.jd), stars["pf"][0])
    inputs, _, _ = prepare_inputs([phase], [np.asarray(curves[0]["mag"].value)],
                                  [stars["pf"][0]], model.preprocessing)
    members = model.predict_members(inputs)
    assert members.shape == (len(model.manifest["members"]), 1)
    assert std.value > 0
    assert feh.value == pytest.approx(model.stretch(members).mean(), abs=1e-4)


def test_composite_model_is_the_weighted_mean_of_its_components(stars, curves):
    model = load_model("gru_inception")
    parts = [(load_model(c["name"]), c["weight"]) for c in model.manifest["components"]]
    assert [p.name for p, _ in parts] == ["gru", "inception"]
    # The composite shares its components' sessions instead of loading its own.
    assert model.sessions == parts[0][0].sessions + parts[1][0].sessions
    periods = np.asarray(stars["pf"][:3], dtype=float)
    feh, std = rm.predict_feh(curves[:3], periods * u.day, model="gru_inception",
                              return_std=True)
    phases = [fold_times(np.asarray(c.time.jd), p) for c, p in zip(curves[:3], periods)]
    inputs, _, _ = prepare_inputs(phases, [np.asarray(c["mag"].value) for c in curves[:3]],
                                  list(periods), model.preprocessing)
    stretch = model.manifest["output_stretch"]
    fold_means = []
    for part, _ in parts:
        members = part.predict_members(inputs)
        members = stretch["centre_dex"] + stretch["factor"] * (members - stretch["centre_dex"])
        folds = np.array(part.member_folds)
        fold_means.append(np.array([members[folds == k].mean(axis=0) for k in np.unique(folds)]))
    expected = sum(w * m.mean(axis=0) for m, (_, w) in zip(fold_means, parts))
    np.testing.assert_allclose(feh.value, expected, atol=1e-6)
    # Its uncertainty grows with the scatter of the single-fold means about the composite.
    spread = np.sqrt(sum(w * ((m - expected) ** 2).mean(axis=0)
                         for m, (_, w) in zip(fold_means, parts)))
    calibration = model.manifest["uncertainty_calibration"]
    np.testing.assert_allclose(
        std.value, calibration["scale"] * np.hypot(calibration["floor_dex"], spread), atol=1e-6)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ModelError, match="model must be one of"):
        load_model("transformer")


def test_corrupt_model_file_is_refused(tmp_path, monkeypatch):
    source = models_directory() / load_model().name
    target = tmp_path / "models" / "broken"
    target.mkdir(parents=True)
    manifest = json.loads((source / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps(manifest))
    for member in manifest["members"]:
        (target / member["file"]).write_bytes((source / member["file"]).read_bytes())
    first = target / manifest["members"][0]["file"]
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr("rrlyrae_metallicity.registry.models_directory",
                        lambda: tmp_path / "models")
    with pytest.raises(ModelIntegrityError, match=manifest["members"][0]["file"]):
        FehEnsemble("broken")
    first.unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        FehEnsemble("broken")


def test_members_run_in_parallel_give_the_serial_result(monkeypatch):
    model = load_model("gru")
    rng = np.random.default_rng(3)
    inputs = rng.normal(0, 0.2, (300, model.preprocessing.sequence_length, 2))
    inputs[..., 1] = np.linspace(0, 0.6, inputs.shape[1])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    serial = model.predict_members(inputs, batch_size=128)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    parallel = model.predict_members(inputs, batch_size=128)
    assert serial.shape == (len(model.sessions), 300)
    np.testing.assert_array_equal(parallel, serial)
    # Each member's column equals a direct call of its own session.
    direct = model.sessions[3].run(None, {model.input_name: inputs[:128].astype(np.float32)})[0]
    np.testing.assert_array_equal(parallel[3, :128], direct.ravel())


def test_the_default_serves_one_distilled_network_with_its_own_sigma(stars, curves):
    from rrlyrae_metallicity.preprocessing import model_input, smooth_lightcurve

    model = load_model()
    assert model.is_distilled and model.name == "gru_distilled"
    assert len(model.sessions) == len(model.native_sessions) == 1
    assert len(model.manifest["crossfit_members"]) == 5
    feh, std = rm.predict_feh(curves[0], stars["pf"][0] * u.day, return_std=True)
    period = stars["pf"][0]
    phase = fold_times((curves[0].time - curves[0].time[0]).to_value(u.day), period)
    curve = smooth_lightcurve(phase, curves[0]["mag"].value, model.preprocessing.n_phases)
    raw = model.predict_members(model_input(curve, period, model.preprocessing)[None])
    assert raw.shape == (1, 1)
    stretch = model.manifest["output_stretch"]
    served = stretch["centre_dex"] + stretch["factor"] * (raw[0, 0] - stretch["centre_dex"])
    assert feh.value == pytest.approx(served, abs=1e-9)
    # One network has no spread: its σ reads |[Fe/H] + 1.4| instead, by hand here,
    # and how far [Fe/H] moves without the star's most deviant epoch, as reported.
    error_model = model.manifest["uncertainty_calibration"]["error_model"]
    assert error_model["features"] == ["log_epochs", "phase_gap", "log_scatter", "amplitude",
                                       "period", "feh", "feh_squared", "epoch_influence",
                                       "feh_abs"]
    reported = rm.predict_feh({"star": curves[0]}, {"star": stars["pf"][0] * u.day})
    assert reported["feh_n_rejected"][0] == 0  # the smoothing by hand above keeps every epoch
    grid = np.append(curve.grid_phase, 1.0)
    residual = curve.mag - np.interp(curve.phase, grid, np.append(curve.grid_mag, curve.grid_mag[0]))
    scatter = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    x = np.array([np.log(curve.phase.size), curve.max_phase_gap, np.log(scatter), curve.amplitude,
                  period, feh.value, (feh.value + 1.4) ** 2,
                  abs(reported["feh_epoch_influence"][0]), abs(feh.value + 1.4)])
    w = np.array(error_model["coefficients"])
    standardised = (x - np.array(error_model["centre"])) / np.array(error_model["scale"])
    expected = error_model["factor"] * np.exp(0.5 * (w[0] + standardised @ w[1:]))
    assert std.value == pytest.approx(expected, rel=1e-9)


def test_the_ten_member_ensemble_stays_available_by_name(stars, curves):
    ensemble = load_model("gru")
    assert len(ensemble.sessions) == 10 and not ensemble.is_distilled
    default = rm.predict_feh(curves[:5], stars["pf"][:5].quantity)
    by_name = rm.predict_feh(curves[:5], stars["pf"][:5].quantity, model="gru")
    # Two models, one answer within the labels' noise, not the same numbers.
    assert not np.allclose(default.value, by_name.value, atol=1e-6)
    np.testing.assert_allclose(default.value, by_name.value, atol=0.15)


def test_predict_single_lightcurve(stars, curves):
    feh = rm.predict_feh(curves[0], stars["pf"][0] * u.day)
    assert feh.unit == u.dex
    assert feh.isscalar and np.isfinite(feh.value)
    assert -3.5 < feh.value < 1.0


def test_predict_with_std_matches_members(stars, curves):
    feh, std = rm.predict_feh(curves[0], stars["pf"][0] * u.day, return_std=True, model="gru")
    assert std.unit == u.dex and std.value > 0
    model = load_model("gru")
    from rrlyrae_metallicity.preprocessing import model_input, smooth_lightcurve

    period = stars["pf"][0]
    phase = fold_times((curves[0].time - curves[0].time[0]).to_value(u.day), period)
    curve = smooth_lightcurve(phase, curves[0]["mag"].value, model.preprocessing.n_phases)
    members = model.predict_members(model_input(curve, period, model.preprocessing)[None])
    # The members' outputs are stretched about the median by the manifest's factor.
    stretch = model.manifest["output_stretch"]
    members = stretch["centre_dex"] + stretch["factor"] * (members - stretch["centre_dex"])
    assert feh.value == pytest.approx(members.mean(), abs=1e-9)
    # The uncertainty is the manifest's error model, written out here by hand:
    # log variance linear in the standardised features, times the coverage factor.
    error_model = model.manifest["uncertainty_calibration"]["error_model"]
    folds = np.array([m["fold"] for m in model.manifest["members"]])
    spread = np.sqrt(np.mean([members[folds == k, 0].var(ddof=1) for k in np.unique(folds)]))
    grid = np.append(curve.grid_phase, 1.0)
    residual = curve.mag - np.interp(curve.phase, grid, np.append(curve.grid_mag, curve.grid_mag[0]))
    scatter = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    # How far [Fe/H] moves without the star's most deviant epoch, as reported.
    influence = rm.predict_feh({"star": curves[0]}, {"star": stars["pf"][0] * u.day},
                               model="gru")["feh_epoch_influence"][0]
    x = np.array([np.log(curve.phase.size), curve.max_phase_gap, np.log(scatter), curve.amplitude,
                  period, feh.value, (feh.value + 1.4) ** 2, np.log(spread), abs(influence)])
    assert error_model["features"] == ["log_epochs", "phase_gap", "log_scatter", "amplitude",
                                       "period", "feh", "feh_squared", "log_spread",
                                       "epoch_influence"]
    w = np.array(error_model["coefficients"])
    standardised = (x - np.array(error_model["centre"])) / np.array(error_model["scale"])
    expected = error_model["factor"] * np.exp(0.5 * (w[0] + standardised @ w[1:]))
    assert std.value == pytest.approx(expected, rel=1e-9)


def test_uncalibrated_models_report_the_members_spread(monkeypatch):
    model = load_model("gru")
    monkeypatch.setitem(model.manifest, "uncertainty_calibration", None)
    members = np.array([[-1.0, -2.0], [-1.2, -2.0], [-1.1, -2.5], [-1.1, -2.5]] + [[-1.0, -2.0]] * 6)
    folds = np.array([m["fold"] for m in model.manifest["members"]])
    expected = np.sqrt(np.mean([members[folds == k].var(axis=0, ddof=1)
                                for k in np.unique(folds)], axis=0))
    np.testing.assert_allclose(model.uncertainty(members), expected)


def test_predict_sequence_equals_single_calls(stars, curves):
    periods = stars["pf"].quantity
    batch = rm.predict_feh(curves, periods)
    assert batch.shape == (len(curves),)
    singles = [rm.predict_feh(c, p).value for c, p in zip(curves, periods)]
    np.testing.assert_allclose(batch.value, singles, atol=1e-6)


def test_epoch_does_not_change_the_result(stars, curves):
    star = stars[0]
    epoch = Time(2455197.5, star["epoch_g"], format="jd", scale="tcb")
    with_epoch = rm.predict_feh(curves[0], star["pf"] * u.day, epoch=epoch)
    without = rm.predict_feh(curves[0], star["pf"] * u.day)
    assert with_epoch.value == pytest.approx(without.value, abs=0.01)


def test_raw_times_and_folded_phases_agree(stars, curves):
    star, curve = stars[1], curves[1]
    period = star["pf"] * u.day
    folded = curve.fold(period=period, normalize_phase=True, wrap_phase=1)
    phases = Table({"phase": np.asarray(folded.time.value) % 1.0, "mag": curve["mag"]})
    a = rm.predict_feh(curve, period)
    b = rm.predict_feh(phases, period)
    assert a.value == pytest.approx(b.value, abs=0.01)


def test_period_without_unit_is_days_and_other_units_are_refused(stars, curves):
    # The package's one rule for numbers without units (rrlyrae_metallicity.adapters).
    days = float(stars["pf"][0])
    assert rm.predict_feh(curves[0], days) == rm.predict_feh(curves[0], days * u.day)
    assert rm.predict_feh(curves[0], 24 * days * u.hour).value == pytest.approx(
        rm.predict_feh(curves[0], days * u.day).value, abs=1e-6)
    with pytest.raises(u.UnitsError, match="period should be in units of time"):
        rm.predict_feh(curves[0], 0.55 * u.m)


def test_single_bad_lightcurve_raises_clear_error(stars, curves):
    short = curves[0][:8]
    with pytest.raises(LightCurveError, match="usable epochs"):
        rm.predict_feh(short, stars["pf"][0] * u.day)


def test_batch_keeps_going_with_nan_and_warning(stars, curves):
    batch = [curves[0], curves[1][:5], curves[2]]
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="1 of 3 light curves"):
        feh = rm.predict_feh(batch, stars["pf"][:3].quantity)
    assert np.isfinite(feh.value[[0, 2]]).all() and np.isnan(feh.value[1])


def test_mag_column_selection(stars, curves):
    curve = curves[0].copy()
    curve.rename_column("mag", "g_mag")
    expected = rm.predict_feh(curves[0], stars["pf"][0] * u.day)
    # 'mag_error' has unit mag too, but an uncertainty column is never the magnitudes.
    assert rm.predict_feh(curve, stars["pf"][0] * u.day).value == pytest.approx(expected.value)
    # Two magnitude columns: ambiguous without mag_column.
    curve["r_mag"] = curve["g_mag"] + 0.3 * u.mag
    with pytest.raises(LightCurveError, match="pass mag_column"):
        rm.predict_feh(curve, stars["pf"][0] * u.day)
    assert rm.predict_feh(curve, stars["pf"][0] * u.day, mag_column="g_mag").value == pytest.approx(
        expected.value
    )
    flux = TimeSeries(time=curve.time, data={"flux": np.ones(len(curve)) * u.electron / u.s})
    with pytest.raises(LightCurveError, match="not magnitudes"):
        rm.predict_feh(flux, stars["pf"][0] * u.day, mag_column="flux")


def test_add_feh_keeps_every_row_in_order(stars, curves):
    table = stars.copy()
    lightcurves = {int(s["source_id"]): c for s, c in zip(stars, curves)}
    # Row 1: light curve too short; row 3: no light curve; row 4: bad period.
    lightcurves[int(stars["source_id"][1])] = curves[1][:5]
    del lightcurves[int(stars["source_id"][3])]
    table["pf"][4] = 0.0
    out = rm.add_feh(table, lightcurves)
    assert len(out) == len(table)
    assert list(out["source_id"]) == list(table["source_id"])
    assert list(out["feh_status"]) == ["ok", "too_few_epochs", "ok", "no_lightcurve",
                                       "invalid_period", "ok"]
    good = out["feh_status"] == "ok"
    assert np.isfinite(out["feh_phot"][good]).all() and np.isnan(out["feh_phot"][~good]).all()
    assert out["feh_phot"].unit == u.dex and out["feh_phot_std"].unit == u.dex
    epoch = Time(2455197.5, stars["epoch_g"][0], format="jd", scale="tcb")
    expected = rm.predict_feh(curves[0], stars["pf"][0] * u.day, epoch=epoch)
    # Same star, same members; a batch of 6 and a batch of 1 differ only in float32 rounding.
    assert out["feh_phot"][0] == pytest.approx(expected.value, abs=1e-6)
    assert "feh_phot" not in table.colnames  # the input is not modified


def test_add_feh_with_sequence_and_other_column_names(stars, curves):
    table = Table({"id": stars["source_id"], "period": stars["pf"]})
    out = rm.add_feh(table, curves, id_column="id", period_column="period", epoch_column=None)
    assert (out["feh_status"] == "ok").all()
    with pytest.raises(ValueError, match="light curves for a table"):
        rm.add_feh(table, curves[:2], id_column="id", period_column="period")
    with pytest.raises(KeyError, match="no column 'pf'"):
        rm.add_feh(table, curves)


def test_the_inference_package_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, astropy.units as u\n"
        "import rrlyrae_metallicity as rm\n"
        "from rrlyrae_metallicity import cli, gaia, simulate\n"
        "star = simulate.simulate_stars(1, seed=1)[0]\n"
        "rm.predict_feh(simulate.simulate_lightcurve(star, n_epochs=40), star['pf'] * u.day)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'training') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_add_feh_flags_stars_outside_the_training_domain(stars, curves):
    domain = load_model().training_domain
    table = stars[:3].copy()
    # Star 1 pulsates 20 % slower than any training star (its times stretched to match).
    new_period = domain["period_d"][1] * 1.2
    stretch = new_period / table["pf"][1]
    lightcurves = list(curves[:3])
    lightcurves[1] = TimeSeries(
        time=curves[1].time[0] + (curves[1].time - curves[1].time[0]) * stretch,
        data={"mag": curves[1]["mag"]})
    table["pf"][1] = new_period
    out = rm.add_feh(table, lightcurves, epoch_column=None)
    assert list(out["feh_status"]) == ["ok"] * 3
    assert out["feh_domain"][0] == "" and out["feh_domain"][2] == ""
    assert out["feh_domain"][1].startswith("period")
    assert np.isfinite(out["feh_phot"]).all()
    # An extrapolation has no calibrated uncertainty; its flags say why.
    assert np.isnan(out["feh_phot_std"][1]) and np.isfinite(out["feh_phot_std"][[0, 2]]).all()
    assert list(out["feh_flags"]) == [0, FLAG_BITS["period"][0], 0]


def test_add_feh_flags_stars_with_a_phase_gap_wider_than_training(stars, curves):
    widest = load_model().training_domain["max_phase_gap"][1]
    period = stars["pf"][0] * u.day
    phase = ((curves[0].time - curves[0].time[0]).to_value(u.day) / period.value) % 1.0
    # The same star with every epoch of a half-cycle stretch of phase dropped.
    gapped = curves[0][(phase < 0.2) | (phase > 0.7)]
    assert len(gapped) >= 15
    out = rm.add_feh(stars[:1].copy(), [gapped], epoch_column=None)
    assert out["feh_status"][0] == "ok" and np.isfinite(out["feh_phot"][0])
    assert "phase gap 0.5" in out["feh_domain"][0]
    assert f"wider than the {widest:.3g} of training" in out["feh_domain"][0]
    well_sampled = rm.add_feh(stars[:1].copy(), curves[:1], epoch_column=None)
    assert well_sampled["feh_domain"][0] == ""


def test_max_phase_gap_counts_the_wrap():
    from rrlyrae_metallicity.preprocessing import max_phase_gap

    assert max_phase_gap(np.arange(10) / 10) == pytest.approx(0.1)
    assert max_phase_gap([0.05, 0.3, 0.45]) == pytest.approx(0.6)  # 0.45 -> 1.05
    assert max_phase_gap([0.3, 1.3, 0.4]) == pytest.approx(0.9)
    assert max_phase_gap([0.2]) == 1.0


def test_a_value_resting_on_one_epoch_is_flagged_warned_and_its_shift_reported(stars, curves):
    # gru keeps every epoch: one epoch 2 mag too faint drags its smooth curve.
    period = stars["pf"][0] * u.day
    bad = curves[0].copy()
    bad["mag"][7] += 2.0 * bad["mag"].unit
    with pytest.warns(rm.exceptions.EpochSensitiveWarning,
                      match="without the epoch farthest") as record:
        feh = rm.predict_feh(bad, period, model="gru")
    assert record[0].filename == __file__  # it points at the caller
    result = rm.predict_feh({"bad": bad, "clean": curves[0]}, {"bad": period, "clean": period},
                            model="gru")
    bit = FLAG_BITS["epoch_sensitive"][0]
    assert result["feh_flags"][0] & bit and result["feh_n_rejected"][0] == 0
    assert result["feh_epoch_influence"].unit == u.dex
    shift = result["feh_epoch_influence"][0]
    assert abs(shift) > 0.5 * result["feh_phot_std"][0]
    # The shift is the prediction without that epoch, minus the prediction.
    without = rm.predict_feh(bad[np.arange(len(bad)) != 7], period, model="gru")
    assert feh.value + shift == pytest.approx(without.value, abs=1e-6)
    # The clean star rests on no single epoch, and σ grew with the shift.
    assert not result["feh_flags"][1] & bit
    assert abs(result["feh_epoch_influence"][1]) < abs(shift)
