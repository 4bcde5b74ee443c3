"""Tests of the light-curve simulator and of the shipped simulated example."""

import subprocess
import sys
from importlib.resources import files

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

from rrlyrae_metallicity import simulate
from rrlyrae_metallicity.simulate import (
    DR3_TIME_SPAN,
    EPOCH_PHOTOMETRY_COLUMNS,
    FOV_TRANSIT_DELAY,
    GAIA_TIME_ORIGIN_JD,
    calibration,
    gaia_cadence,
    lightcurve_model,
    noise_sigma,
    simulate_epoch_photometry,
    simulate_lightcurve,
    simulate_stars,
    write_example,
)

EXAMPLE = files("rrlyrae_metallicity") / "data" / "example"


@pytest.fixture(scope="module")
def stars():
    return simulate_stars(12, seed=3, n_epochs_range=(40, 70))


@pytest.fixture(scope="module")
def photometry(stars):
    return simulate_epoch_photometry(stars, seed=3)


def _gaia_days(time):
    return (time.tcb.jd1 - GAIA_TIME_ORIGIN_JD) + time.tcb.jd2


def _assert_tables_equal(a, b):
    assert a.colnames == b.colnames
    for name in a.colnames:
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name


def test_calibration_holds_what_the_simulator_needs():
    cal = calibration()
    for key in ("dataset", "command", "parameters", "mean", "covariance", "ranges", "n_epochs",
                "mean_g", "noise", "sharpening", "peak_to_peak_g", "feh_linear_relation"):
        assert key in cal, key
    names = cal["parameters"]
    assert names == ["log10_period", "feh", "log10_a1", "r21", "r31", "r41", "phi21", "phi31",
                     "phi41"]
    covariance = np.asarray(cal["covariance"])
    assert covariance.shape == (len(names), len(names))
    assert np.allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    for name in names:
        low, high = cal["ranges"][name]["clip"]
        assert cal["ranges"][name]["min"] <= low < high <= cal["ranges"][name]["max"], name
    for key in ("floor", "c0", "c1", "pivot", "star_scatter_dex", "max_sigma"):
        assert np.isfinite(cal["noise"][key]), key
    assert {"scale", "q_max"} <= cal["sharpening"].keys()
    assert 0.15 < cal["feh_linear_relation"]["rmse"] < 0.3
    # A copy: changing it leaves the simulator alone.
    cal["noise"]["floor"] = 10.0
    assert calibration()["noise"]["floor"] < 1.0


def test_noise_sigma_grows_towards_faint_stars():
    sigma = noise_sigma([14.0, 17.0, 19.5])
    assert np.all(np.diff(sigma) > 0)
    assert sigma[0] >= calibration()["noise"]["floor"]


def test_simulate_stars_is_seeded():
    _assert_tables_equal(simulate_stars(15, seed=7), simulate_stars(15, seed=7))
    other = simulate_stars(15, seed=8)
    assert not np.array_equal(simulate_stars(15, seed=7)["pf"], other["pf"])


def test_epoch_photometry_is_seeded(stars, photometry):
    _assert_tables_equal(photometry, simulate_epoch_photometry(stars, seed=3))
    other = simulate_epoch_photometry(stars, seed=4)
    assert len(other) != len(photometry) or not np.array_equal(other["mag"], photometry["mag"])


def test_stars_fall_within_the_real_ranges():
    stars = simulate_stars(500, seed=4)
    cal = calibration()
    assert np.all((stars["pf"] >= 0.35) & (stars["pf"] <= 0.92))
    assert np.all((stars["peak_to_peak_g"] >= 0.2) & (stars["peak_to_peak_g"] <= 1.4))
    low, high = cal["ranges"]["feh"]["clip"]
    assert np.all((stars["feh_simulated"] >= low) & (stars["feh_simulated"] <= high))
    assert np.all((stars["num_clean_epochs_g"] >= cal["n_epochs"]["min"])
                  & (stars["num_clean_epochs_g"] <= cal["n_epochs"]["max"]))
    assert stars["source_id"].dtype == np.int64
    assert len(np.unique(stars["source_id"])) == len(stars)
    assert all(len(str(s)) == 19 for s in stars["source_id"])
    assert set(stars["best_classification"]) == {"RRab"}
    assert stars["pf"].unit == u.d and stars["feh_simulated"].unit == u.dex
    assert stars.meta["simulated"] is True
    # [Fe/H] keeps the real anticorrelation with period.
    assert np.corrcoef(stars["pf"], stars["feh_simulated"])[0, 1] < -0.4


def test_cadence_follows_the_scanning_law_pattern():
    times = gaia_cadence(60, rng=1)
    assert times.shape == (60,)
    assert np.all(np.diff(times) >= 0)
    assert DR3_TIME_SPAN[0] <= times[0] and times[-1] <= DR3_TIME_SPAN[1]
    gaps = np.diff(times)
    pairs = np.abs(gaps - FOV_TRANSIT_DELAY) < 1.0 / 86400
    assert FOV_TRANSIT_DELAY * 1440 == pytest.approx(106.5)
    assert pairs.sum() >= 10
    assert np.any(gaps > 5.0)
    assert len(gaia_cadence(400, rng=2)) == 400
    with pytest.raises(ValueError, match="n_epochs must be at least 1"):
        gaia_cadence(0)


def test_epoch_g_is_an_epoch_of_maximum_light(stars):
    phase = np.arange(200_000) / 200_000
    for star in stars:
        best = phase[np.argmin(lightcurve_model(star, phase))]
        assert min(best, 1.0 - best) < 1e-3
        # The same through the time axis: brightest at epoch_g itself.
        t = star["epoch_g"] + star["pf"] * (np.arange(-500, 501) / 1000)
        series = simulate_lightcurve(star, times=t, rng=0)
        assert series["mag"].unit == u.mag


def test_lightcurve_noise_matches_the_calibration(stars):
    star = stars[0]
    series = simulate_lightcurve(star, n_epochs=3000, rng=5)
    t = _gaia_days(series.time)
    phase = np.mod((t - star["epoch_g"]) / star["pf"], 1.0)
    residual = series["mag"].to_value(u.mag) - lightcurve_model(star, phase)
    error = series["mag_error"].to_value(u.mag)
    assert np.std(residual) == pytest.approx(np.median(error), rel=0.2)
    assert np.std(residual / error) == pytest.approx(1.0, rel=0.2)
    assert np.median(error) == pytest.approx(star["sigma_g"], rel=0.2)

    # Without a sigma_g of its own, a star gets the calibrated sigma(G).
    params = {name: star[name] for name in ("pf", "epoch_g", "mean_g", "a1", "r21", "r31", "r41",
                                             "phi21", "phi31", "phi41")}
    series = simulate_lightcurve(params, n_epochs=3000, rng=6)
    phase = np.mod((_gaia_days(series.time) - star["epoch_g"]) / star["pf"], 1.0)
    residual = series["mag"].to_value(u.mag) - lightcurve_model(params, phase)
    assert np.std(residual) == pytest.approx(float(noise_sigma(star["mean_g"])), rel=0.2)


def test_lightcurve_is_a_timeseries_in_gaia_time(stars):
    star = stars[1]
    series = simulate_lightcurve(star)
    assert isinstance(series, TimeSeries)
    assert series.colnames == ["time", "mag", "mag_error"]
    assert len(series) == star["num_clean_epochs_g"]
    assert series.time.scale == "tcb" and series.time.format == "jd"
    t = _gaia_days(series.time)
    assert DR3_TIME_SPAN[0] <= t.min() and t.max() <= DR3_TIME_SPAN[1]
    # Seeded by source_id by default: the same light curve twice.
    assert np.array_equal(series["mag"], simulate_lightcurve(star)["mag"])
    # Times given as astropy Time are used as they are.
    given = Time(GAIA_TIME_ORIGIN_JD, [1700.0, 1800.5], format="jd", scale="tcb")
    again = simulate_lightcurve(star, times=given, rng=1)
    assert np.allclose(_gaia_days(again.time), [1700.0, 1800.5], rtol=0, atol=1e-9)
    with pytest.raises(TypeError, match="'times' and 'n_epochs'"):
        simulate_lightcurve(star, times=[1700.0], n_epochs=3)


def test_epoch_photometry_long_layout(stars, photometry):
    assert tuple(photometry.colnames) == EPOCH_PHOTOMETRY_COLUMNS
    for name in ("source_id", "transit_id", "other_flags", "solution_id"):
        assert photometry[name].dtype == np.int64, name
    for name in ("rejected_by_photometry", "rejected_by_variability"):
        assert photometry[name].dtype == bool, name
    assert photometry["band"].dtype.kind == "U"
    assert set(photometry["band"]) == {"G", "BP", "RP"}
    assert photometry["time"].unit == u.d and photometry["mag"].unit == u.mag
    assert photometry["flux"].unit == u.electron / u.s
    assert photometry["flux_error"].unit == u.electron / u.s
    assert len(set(photometry["solution_id"])) == 1

    g = photometry[photometry["band"] == "G"]
    expected = 10 ** (-0.4 * (np.asarray(g["mag"]) - 25.6874))
    assert np.allclose(g["flux"], expected, rtol=1e-9)
    assert np.allclose(g["flux_over_error"], g["flux"] / g["flux_error"], rtol=1e-5)
    assert g["rejected_by_variability"].sum() >= len(stars)

    for star in stars:
        mine = photometry[photometry["source_id"] == star["source_id"]]
        for band in ("G", "BP", "RP"):
            rows = mine[mine["band"] == band]
            assert np.all(np.diff(rows["transit_id"]) > 0)
            assert np.all(np.diff(rows["time"]) > 0)
        rows = mine[mine["band"] == "G"]
        clean = rows[~rows["rejected_by_variability"]]
        assert len(clean) == star["num_clean_epochs_g"]
        # Rejected transits are outliers: a reader that keeps them is visibly wrong.
        bad = rows[rows["rejected_by_variability"]]
        phase = np.mod((np.asarray(bad["time"]) - star["epoch_g"]) / star["pf"], 1.0)
        assert np.all(np.abs(np.asarray(bad["mag"]) - lightcurve_model(star, phase)) > 0.3)
        bp = np.median(mine["mag"][mine["band"] == "BP"])
        rp = np.median(mine["mag"][mine["band"] == "RP"])
        g_median = np.median(clean["mag"])
        assert bp > g_median > rp
        # BP and RP rows belong to G transits, a few seconds later.
        bp_rows = mine[mine["band"] == "BP"]
        index = np.searchsorted(rows["transit_id"], bp_rows["transit_id"])
        assert np.array_equal(rows["transit_id"][index], bp_rows["transit_id"])
        delay = (np.asarray(bp_rows["time"]) - np.asarray(rows["time"][index])) * 86400
        assert np.all((delay > 0) & (delay < 30))

    only_g = simulate_epoch_photometry(stars[:2], seed=1, include_bp_rp=False, reject_fraction=0)
    assert set(only_g["band"]) == {"G"}
    assert not only_g["rejected_by_variability"].any()


def test_shipped_example_is_simulated_and_readable():
    photometry_path = EXAMPLE / "epoch_photometry.ecsv"
    vari_path = EXAMPLE / "vari_rrlyrae.ecsv"
    assert photometry_path.is_file() and vari_path.is_file()
    size = len(photometry_path.read_bytes()) + len(vari_path.read_bytes())
    assert size < 300_000
    photometry = Table.read(str(photometry_path), format="ascii.ecsv")
    vari = Table.read(str(vari_path), format="ascii.ecsv")
    for table in (photometry, vari):
        assert table.meta["simulated"] is True
        assert "SIMULATED" in table.meta["description"]
        assert "rrlyrae_metallicity.simulate" in table.meta["command"]
    assert tuple(photometry.colnames) == EPOCH_PHOTOMETRY_COLUMNS
    assert vari.colnames == ["source_id", "pf", "epoch_g", "peak_to_peak_g", "num_clean_epochs_g",
                             "best_classification", "feh_simulated"]
    assert "truth" in vari["feh_simulated"].description
    assert len(vari) == 20
    assert set(photometry["source_id"]) == set(vari["source_id"])
    assert photometry["rejected_by_variability"].any()
    assert {"BP", "RP"} <= set(photometry["band"])
    for star in vari:
        rows = photometry[(photometry["source_id"] == star["source_id"])
                          & (photometry["band"] == "G")
                          & ~photometry["rejected_by_variability"]
                          & ~photometry["rejected_by_photometry"]]
        assert 40 <= len(rows) <= 70
        assert len(rows) == star["num_clean_epochs_g"]


def test_shipped_example_is_up_to_date(tmp_path):
    # The shipped files are what write_example makes now (to rounding).
    write_example(tmp_path)
    for name in ("epoch_photometry.ecsv", "vari_rrlyrae.ecsv"):
        shipped = Table.read(str(EXAMPLE / name), format="ascii.ecsv")
        fresh = Table.read(tmp_path / name, format="ascii.ecsv")
        assert shipped.colnames == fresh.colnames and len(shipped) == len(fresh)
        for column in shipped.colnames:
            a, b = np.asarray(shipped[column]), np.asarray(fresh[column])
            if a.dtype.kind == "f":
                assert np.allclose(a, b, rtol=1e-4, atol=2e-6), column
            else:
                assert np.array_equal(a, b), column


def test_command_line_writes_an_example(tmp_path, capsys):
    assert simulate.main(["--example", str(tmp_path / "ex"), "--n-stars", "3", "--seed", "5"]) == 0
    assert "wrote" in capsys.readouterr().out
    vari = Table.read(tmp_path / "ex" / "vari_rrlyrae.ecsv", format="ascii.ecsv")
    assert len(vari) == 3 and vari.meta["seed"] == 5


def test_simulator_stays_light():
    heavy = ("tensorflow", "keras", "training")
    code = ("import sys, rrlyrae_metallicity.simulate; "
            f"bad = [m for m in sys.modules if m.split('.')[0] in {heavy!r}]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
