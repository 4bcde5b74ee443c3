"""Every way into the package gives the same [Fe/H] as a raw-time TimeSeries (issue 16).

The reference is `predict_feh` on an astropy `TimeSeries` of raw times and
magnitudes. Each other form an astronomer holds (the output of
`TimeSeries.fold` in both phase conventions, tables of phases in cycles or
degrees, a mapping, a list, a period array of length 1) must give the same
value to 1e-6 dex, and masked values of every kind must never be used.
"""

import os

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table
from astropy.time import Time, TimeDelta
from astropy.timeseries import TimeSeries
from astropy.utils.masked import Masked

import rrlyrae_metallicity as rm
from rrlyrae_metallicity.adapters import epoch_times, magnitude_column, period_in_days
from rrlyrae_metallicity.exceptions import LightCurveError, LightCurveTypeError

TOLERANCE = 1e-6  # dex


@pytest.fixture(scope="module")
def star(simulated_stars, simulated_curves):
    """A raw-time light curve as astronomers hold it, its period, and its [Fe/H]."""
    sim, params = simulated_curves[2], simulated_stars[2]
    ts = TimeSeries(time=Time(sim.time.jd, format="jd", scale="tcb"),
                    data={"mag": sim["mag"], "mag_error": sim["mag_error"]})
    ts.meta["source_id"] = int(params["source_id"])
    period = params["pf"] * u.day
    return ts, period, rm.predict_feh(ts, period, return_std=True)


def _same(result, expected):
    assert result.unit == u.dex
    assert abs(result.value - expected.value) < TOLERANCE


@pytest.mark.parametrize("options", [
    {},                                        # TimeDelta in [-P/2, P/2)
    {"wrap_phase": 0.55 * u.day},               # TimeDelta in [0, P) for P = 0.55 d
    {"normalize_phase": True},                 # phase in [-0.5, 0.5)
    {"normalize_phase": True, "wrap_phase": 1},  # phase in [0, 1)
], ids=["timedelta", "timedelta-wrapped", "phase", "phase-wrapped"])
def test_timeseries_fold_output(star, options):
    ts, period, (expected, _) = star
    if "wrap_phase" in options and not options.get("normalize_phase"):
        options = {**options, "wrap_phase": period}
    folded = ts.fold(period=period, **options)
    _same(rm.predict_feh(folded, period), expected)


def test_fold_with_an_epoch(star):
    ts, period, (expected, _) = star
    folded = ts.fold(period=period, epoch_time=ts.time[7])
    _same(rm.predict_feh(folded, period), expected)


def _phase_cycles(ts, period):
    return (ts.time - ts.time[0]).to_value(u.day) / period.to_value(u.day) % 1.0


@pytest.mark.parametrize("unit", [None, u.cycle, u.deg, u.rad])
def test_table_of_phases(star, unit):
    ts, period, (expected, _) = star
    phase = _phase_cycles(ts, period)
    if unit is None:
        table = Table({"phase": phase, "mag": ts["mag"].value})
    else:
        table = QTable({"phase": (phase * u.cycle).to(unit), "mag": ts["mag"]})
    _same(rm.predict_feh(table, period), expected)


def test_phase_in_a_unit_that_is_not_an_angle_is_refused(star):
    ts, period, _ = star
    table = QTable({"phase": _phase_cycles(ts, period) * u.day, "mag": ts["mag"]})
    with pytest.raises(LightCurveTypeError, match="unit d"):
        rm.predict_feh(table, period)


def test_table_with_a_time_column(star):
    ts, period, (expected, _) = star
    table = QTable({"time": ts.time, "mag": ts["mag"]})
    _same(rm.predict_feh(table, period), expected)


def test_mapping_names_every_star(star):
    ts, period, (expected, expected_std) = star
    short = ts[:5]
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="star 4242: 5 usable epochs"):
        result = rm.predict_feh({"RR Lyr": ts, 4242: short},
                                [period.value, period.value] * u.day)
    assert isinstance(result, Table)
    assert list(result["source_id"]) == ["RR Lyr", "4242"]
    _same(result["feh_phot"].quantity[0], expected)
    _same(result["feh_phot_std"].quantity[0], expected_std)
    assert list(result["feh_status"]) == ["ok", "too_few_epochs"]
    assert 15 <= result["feh_n_epochs"][0] <= len(ts) and result["feh_n_epochs"][1] == 0


def test_mapping_from_read_epoch_photometry_is_predicted_by_key(example_files):
    from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters

    photometry, parameters = example_files
    curves = read_epoch_photometry(photometry)
    stars = read_rrlyrae_parameters(parameters)
    periods = {int(s["source_id"]): s["pf"] for s in stars}
    result = rm.predict_feh(curves, periods)
    assert list(result["source_id"]) == list(curves)
    expected = rm.add_feh(stars, curves)
    by_id = dict(zip(expected["source_id"], expected["feh_phot"].value))
    np.testing.assert_allclose(result["feh_phot"].value,
                               [by_id[i] for i in result["source_id"]], atol=TOLERANCE)


def test_list_and_length_one_period(star):
    ts, period, (expected, _) = star
    _same(rm.predict_feh([ts], [period.value] * u.day)[0], expected)
    _same(rm.predict_feh(ts, [period.value] * u.day), expected)
    _same(rm.predict_feh([ts], [period])[0], expected)


def test_period_errors_name_the_period(star):
    ts, period, _ = star
    with pytest.raises(ValueError, match="2 periods"):
        rm.predict_feh([ts], [0.5, 0.6] * u.day)
    with pytest.raises(ValueError, match="one period per light curve"):
        rm.predict_feh([ts, ts], period)
    with pytest.raises(u.UnitsError, match="period should be in units of time"):
        rm.predict_feh([ts], [0.5] * u.m)


# --------------------------------------------------------------------------
# Masks of every kind are dropped, never used
# --------------------------------------------------------------------------


BAD = [3, 11, 12, 30]


@pytest.fixture(scope="module")
def without_bad(star):
    ts, period, _ = star
    keep = np.setdiff1d(np.arange(len(ts)), BAD)
    return rm.predict_feh(ts[keep], period)


def _garbage_mag(ts):
    mag = np.array(ts["mag"].value)
    mag[BAD] = 0.0  # what a masked cell hides after TimeSeries.read: a usable-looking number
    return mag


def test_numpy_masked_magnitudes(star, without_bad):
    ts, period, _ = star
    curve = TimeSeries(time=ts.time, data={"mag": np.ma.masked_array(
        _garbage_mag(ts), mask=np.isin(np.arange(len(ts)), BAD))})
    _same(rm.predict_feh(curve, period), without_bad)


def test_masked_column_magnitudes(star, without_bad):
    ts, period, _ = star
    mask = np.isin(np.arange(len(ts)), BAD)
    table = Table({"phase": _phase_cycles(ts, period),
                   "mag": MaskedColumn(_garbage_mag(ts), mask=mask, unit=u.mag)})
    _same(rm.predict_feh(table, period), without_bad)


def test_astropy_masked_quantity_magnitudes(star, without_bad):
    ts, period, _ = star
    mask = np.isin(np.arange(len(ts)), BAD)
    curve = TimeSeries(time=ts.time, data={"mag": Masked(_garbage_mag(ts) * u.mag, mask=mask)})
    _same(rm.predict_feh(curve, period), without_bad)


def test_ecsv_with_blank_magnitudes_read_by_timeseries(star, without_bad, tmp_path):
    ts, period, _ = star
    path = tmp_path / "blanks.ecsv"
    written = TimeSeries(time=ts.time)
    written["mag"] = MaskedColumn(ts["mag"].value, mask=np.isin(np.arange(len(ts)), BAD),
                                  unit=u.mag)
    written.write(path)
    assert path.read_text().count('""') == len(BAD)  # blank cells, as files have them
    read = TimeSeries.read(path, format="ascii.ecsv")
    assert isinstance(read["mag"], Masked) and read["mag"].mask.sum() == len(BAD)
    _same(rm.predict_feh(read, period), without_bad)


def test_masked_times(star, without_bad):
    ts, period, _ = star
    time = ts.time.copy()
    time[BAD] = np.ma.masked
    curve = TimeSeries(time=time, data={"mag": ts["mag"]})
    _same(rm.predict_feh(curve, period), without_bad)


def test_masked_period_in_a_qtable_is_not_used(star):
    ts, period, _ = star
    stars = QTable({"source_id": [1, 2],
                    "pf": Masked([period.value, period.value] * u.day, mask=[False, True])})
    result = rm.add_feh(stars, {1: ts, 2: ts})
    assert list(result["feh_status"]) == ["ok", "invalid_period"]
    assert np.isnan(result["feh_phot"][1])


def test_unreadable_magnitude_text_is_that_stars_status(star):
    ts, period, (expected, _) = star
    text = Table({"phase": _phase_cycles(ts, period), "mag": ts["mag"].value.astype(str)})
    text["mag"][4] = "abc"
    nulls = Table({"phase": _phase_cycles(ts, period), "mag": ts["mag"].value.astype(str)})
    nulls["mag"][4] = "null"
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="1 of 2"):
        feh = rm.predict_feh([text, nulls], [period.value] * 2 * u.day)
    assert np.isnan(feh[0]) and np.isfinite(feh[1])
    with pytest.raises(LightCurveError, match="'abc'"):
        rm.predict_feh(text, period)


# --------------------------------------------------------------------------
# The adapter's pieces
# --------------------------------------------------------------------------


def test_magnitude_column_skips_uncertainties():
    table = QTable({"phase": [0.1], "g_mag_err": [0.01] * u.mag, "g_mag": [15.0] * u.mag,
                    "g_mag_error": [0.01] * u.mag})
    assert magnitude_column(table) == "g_mag"
    bare = Table({"phase": [0.1], "Gmag": [15.0], "Gmag_err": [0.1]})
    assert magnitude_column(bare) == "Gmag"


def test_one_rule_for_numbers_without_units():
    assert period_in_days(0.5) == 0.5
    assert period_in_days(12 * u.hour) == 0.5
    np.testing.assert_array_equal(period_in_days([0.5, 0.6], count=2), [0.5, 0.6])
    column = Table({"pf": [0.5, 0.6]})["pf"]
    np.testing.assert_array_equal(period_in_days(column, count=2), [0.5, 0.6])
    masked = MaskedColumn([0.5, 0.6], mask=[False, True], unit=u.day)
    assert np.isnan(period_in_days(masked, count=2)[1])
    times, has_epoch = epoch_times([1000.0, np.nan], 2)
    assert list(has_epoch) == [True, False]
    assert times[0].jd == pytest.approx(2455197.5 + 1000.0)


def test_thread_settings_from_the_environment_never_crash(star, monkeypatch):
    ts, period, (expected, _) = star
    for value in ("4,2", "", "abc", "0", "-3"):
        monkeypatch.setitem(os.environ, "OMP_NUM_THREADS", value)
        _same(rm.predict_feh([ts, ts], [period.value] * 2 * u.day)[0], expected)


# --------------------------------------------------------------------------
# What a new user found (a fresh seat)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("unit, scale", [(u.mmag, 1000.0), (u.ABmag, 1.0)])
def test_magnitude_units_are_converted(star, unit, scale):
    ts, period, (expected, _) = star
    table = QTable({"time": ts.time, "g": ts["mag"].value * scale * unit})
    _same(rm.predict_feh(table, period), expected)


def test_vizier_error_columns_and_flux_hints(star):
    assert magnitude_column(Table({"Gmag": [1.0], "e_Gmag": [0.1]})) == "Gmag"
    ts, period, _ = star
    flux = QTable({"time": ts.time, "flux": np.ones(len(ts)) * u.electron / u.s})
    with pytest.raises(LightCurveError, match=r"-2.5 log10\(flux\)") as info:
        rm.predict_feh(flux, period)
    assert info.value.status == "missing_column"


def test_a_fold_that_is_not_one_period_is_refused(star):
    ts, period, _ = star
    days = ts.fold(period=period).time.to_value(u.day)
    # What astropy 8.0 makes of a TimeSeries with masked times: seconds labelled days.
    folded = TimeSeries(time=TimeDelta(days * 86400, format="jd"), data={"mag": ts["mag"]})
    with pytest.raises(LightCurveTypeError, match="not folded with this period"):
        rm.predict_feh(folded, period)
    with pytest.raises(LightCurveTypeError, match="not folded with this period"):
        rm.predict_feh(ts.fold(period=3 * period), period)


def test_mixed_periods_dataframes_rows_and_missing_keys(star):
    ts, period, (expected, _) = star
    mixed = rm.predict_feh([ts, ts], [period.value, period])
    np.testing.assert_allclose(mixed.value, expected.value, atol=TOLERANCE)
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="no period"):
        table = rm.predict_feh({"a": ts, "b": ts}, {"a": period})
    assert list(table["feh_status"]) == ["ok", "invalid_period"]
    frame = Table({"phase": _phase_cycles(ts, period), "mag": ts["mag"].value}).to_pandas()
    _same(rm.predict_feh(frame, period), expected)
    _same(rm.predict_feh(frame.to_records(index=False), period), expected)
    stars = Table({"source_id": [1], "pf": [period.value]})
    with pytest.raises(TypeError, match="not a Row"):
        rm.add_feh(stars[0], {1: ts})


def test_providers_given_as_a_name_or_unknown(star):
    ts, period, (expected, _) = star
    _same(rm.predict_feh(ts, period, providers="CPUExecutionProvider"), expected)
    with pytest.raises(rm.ModelError, match="does not offer.*Nope"):
        rm.predict_feh(ts, period, providers=["NopeExecutionProvider"])
