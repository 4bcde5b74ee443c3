"""Issue 5, bad input: every case of the issue's list, in one place.

The contract: `predict_feh` on one light curve raises the package's own
exception (a `LightCurveError`, a `ValueError`; `LightCurveTypeError` is also a
`TypeError`) naming the star and the problem, while a batch `predict_feh`,
`add_feh` and ``rrlyrae-feh predict`` keep going and record a per-star
``feh_status`` with NaN values. Inputs that are messy but usable (NaN or
sentinel magnitudes among enough good ones, unsorted or duplicate times, a
period outside the training range, 10,000 epochs) give a finite answer.

Covered elsewhere, and only referenced here:

- unsorted (permuted) epochs change nothing: tests/test_properties.py
  ``test_permuting_the_epochs_changes_nothing``;
- a table/sequence mismatch in length, and missing table columns:
  tests/test_inference.py ``test_add_feh_with_sequence_and_other_column_names``;
- a period without a unit: tests/test_inference.py
  ``test_period_must_be_a_time_quantity`` (a `~astropy.units.UnitsError`, the
  caller's mistake rather than one star's; the CLI and ``add_feh`` read bare
  periods in days);
- Gaia files: missing columns and unreadable layouts (tests/test_gaia.py
  ``test_long_table_without_mag_raises``, ``test_unrelated_table_raises``; the
  CLI's exit code 1: tests/test_cli.py), rejected transits
  (``test_string_booleans``, ``test_masked_boolean_flags_count_as_false``),
  every transit rejected, 5 epochs and a negative period through the chunked CLI
  path (tests/test_catalogue.py ``test_bad_stars_keep_their_status``).
"""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table, vstack
from astropy.time import Time
from astropy.timeseries import TimeSeries

import rrlyrae_metallicity as rm
from rrlyrae_metallicity import simulate
from rrlyrae_metallicity.cli import main
from rrlyrae_metallicity.domain import FLAG_BITS
from rrlyrae_metallicity.exceptions import LightCurveError, LightCurveTypeError
from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.preprocessing import MIN_EPOCHS, fold_times

STAR_ID = 4242424242


@pytest.fixture(scope="module")
def good():
    """Three well-sampled simulated stars: (TimeSeries list, periods in days)."""
    stars = simulate.simulate_stars(3, seed=31)
    curves = [simulate.simulate_lightcurve(s, n_epochs=50, rng=i) for i, s in enumerate(stars)]
    return [TimeSeries(time=c.time, data={"mag": c["mag"]}) for c in curves], np.asarray(stars["pf"])


def _with_mags(curve, change):
    curve = curve.copy()
    mag = np.array(curve["mag"].value)
    change(mag)
    curve["mag"] = mag * u.mag
    return curve


def _set(index, value):
    def change(mag):
        mag[index] = value
    return change


# name: (make the bad light curve from a good one, period factor, status, words of the message)
FAILING = {
    "empty": (lambda c: c[:0], 1.0, "too_few_epochs", "empty"),
    "fewer epochs than MIN_EPOCHS": (lambda c: c[:MIN_EPOCHS - 1], 1.0, "too_few_epochs",
                                     f"at least {MIN_EPOCHS} are needed"),
    "all magnitudes NaN": (lambda c: _with_mags(c, _set(slice(None), np.nan)), 1.0,
                           "too_few_epochs", "0 usable epochs"),
    "too few left after inf and sentinels": (
        lambda c: _with_mags(c, _set(slice(10, None), [np.inf, 100.0] * 20)), 1.0,
        "too_few_epochs", "10 usable epochs"),
    "period zero": (lambda c: c, 0.0, "invalid_period", "positive finite number of days"),
    "period negative": (lambda c: c, -1.0, "invalid_period", "positive finite number of days"),
    "period NaN": (lambda c: c, np.nan, "invalid_period", "no period (missing, masked, or not a number)"),
    "flux instead of magnitudes": (
        lambda c: TimeSeries(time=c.time, data={"flux": np.ones(len(c)) * u.electron / u.s}),
        1.0, "missing_column", "cannot tell which column holds the magnitudes"),
    "no magnitude column": (lambda c: TimeSeries(time=c.time), 1.0, "missing_column",
                            "cannot tell which column holds the magnitudes"),
    "float times, no astropy Time": (
        lambda c: Table({"time": c.time.jd, "mag": c["mag"]}), 1.0, "invalid_lightcurve",
        "should be an astropy TimeSeries with a time column (astropy Time)"),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_single_light_curve_raises_naming_the_star_and_the_problem(case, good):
    make, factor, status, words = FAILING[case]
    curve = make(good[0][0].copy())
    curve.meta = {**curve.meta, "source_id": STAR_ID}  # a new dict: slices share meta
    with pytest.raises(LightCurveError) as info:
        rm.predict_feh(curve, factor * good[1][0] * u.day)
    assert isinstance(info.value, ValueError)
    assert info.value.status == status
    assert f"star {STAR_ID}: " in str(info.value) and words in str(info.value)


def test_a_light_curve_without_an_id_is_named_generically(good):
    with pytest.raises(LightCurveError, match=r"star \(the light curve given\): .*empty"):
        rm.predict_feh(good[0][0][:0], good[1][0] * u.day)


def test_float_times_are_also_a_type_error(good):
    curve = FAILING["float times, no astropy Time"][0](good[0][0])
    with pytest.raises(TypeError):
        rm.predict_feh(curve, good[1][0] * u.day)
    assert issubclass(LightCurveTypeError, LightCurveError)


@pytest.mark.parametrize("case", list(FAILING))
def test_batch_and_add_feh_keep_going(case, good):
    curves, periods = good
    make, factor, status, _ = FAILING[case]
    batch = [curves[0], make(curves[1]), curves[2]]
    batch_periods = periods * np.array([1.0, factor, 1.0])
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="1 of 3 light curves"):
        feh = rm.predict_feh(batch, batch_periods * u.day).value
    assert np.isfinite(feh[[0, 2]]).all() and np.isnan(feh[1])

    table = Table({"source_id": [11, 12, 13], "pf": batch_periods * u.day})
    out = rm.add_feh(table, dict(zip([11, 12, 13], batch)))
    assert list(out["source_id"]) == [11, 12, 13]
    assert list(out["feh_status"]) == ["ok", status, "ok"]
    assert np.isnan(out["feh_phot"][1]) and np.isnan(out["feh_phot_std"][1])
    np.testing.assert_allclose(out["feh_phot"][[0, 2]], feh[[0, 2]], atol=1e-6)


def _drop_and_nan(curve, period):
    """The folded curve with three epochs NaN, inf and masked: they are dropped, not used."""
    mag = np.ma.MaskedArray(np.array(curve["mag"].value))
    mag[[3, 7]] = [np.nan, np.inf]
    mag[11] = np.ma.masked
    phase = (curve.time - curve.time[0]).to_value(u.day) / period % 1.0
    return Table({"phase": phase, "mag": mag})


# name: (make a usable light curve, make the same star with only its good epochs)
USABLE = {
    "NaN, inf and masked magnitudes": (
        lambda c: _with_mags(c, _set([3, 7], [np.nan, np.inf])),
        lambda c: c[np.setdiff1d(np.arange(len(c)), [3, 7])]),
    "sentinels mag = 100 (Stripe 82) and 99.999": (
        lambda c: _with_mags(c, _set([2, 5], [100.0, 99.999])),
        lambda c: c[np.setdiff1d(np.arange(len(c)), [2, 5])]),
    "unsorted times": (lambda c: c[::-1], lambda c: c),
    "magnitudes without a unit": (
        lambda c: TimeSeries(time=c.time, data={"mag": np.asarray(c["mag"].value)}),
        lambda c: c),
}


@pytest.mark.parametrize("case", list(USABLE))
def test_usable_light_curves_give_the_answer_of_their_good_epochs(case, good):
    curve, period = good[0][0], good[1][0] * u.day
    messy, clean = USABLE[case]
    assert rm.predict_feh(messy(curve), period).value == pytest.approx(
        rm.predict_feh(clean(curve), period).value, abs=1e-6)


def test_masked_magnitudes_in_a_folded_table_are_dropped(good):
    curve = good[0][0]
    table = _drop_and_nan(curve, good[1][0])
    keep = np.setdiff1d(np.arange(len(curve)), [3, 7, 11])
    expected = rm.predict_feh(Table({"phase": table["phase"][keep],
                                     "mag": np.asarray(curve["mag"].value)[keep]}),
                              good[1][0] * u.day)
    assert rm.predict_feh(table, good[1][0] * u.day).value == pytest.approx(expected.value,
                                                                          abs=1e-6)


def test_duplicate_times_are_merged_not_fatal(good):
    curve, period = good[0][0], good[1][0] * u.day
    doubled = vstack([curve, curve[:10]])  # ten epochs observed twice
    feh = rm.predict_feh(doubled, period).value
    assert np.isfinite(feh)
    assert feh == pytest.approx(rm.predict_feh(curve, period).value, abs=0.05)


def test_float_times_folded_by_hand_equal_astropy_times(good):
    curve, period = good[0][0], good[1][0]
    # The same times as plain floats (days), folded with the package's own function.
    phases = Table({"phase": fold_times(curve.time.jd, period), "mag": curve["mag"]})
    assert rm.predict_feh(phases, period * u.day).value == pytest.approx(
        rm.predict_feh(curve, period * u.day).value, abs=1e-5)


def test_period_outside_the_training_range_warns_but_predicts(good):
    # add_feh's flag for the same case: tests/test_inference.py
    # test_add_feh_flags_stars_outside_the_training_domain.
    longest = load_model().training_domain["period_d"][1]
    # The same star, its times stretched so that it pulsates with a period 20 %
    # longer than any training star's (and still an RRab's).
    curve, period = good[0][0], good[1][0]
    stretch = 1.2 * longest / period
    slow = TimeSeries(time=curve.time[0] + (curve.time - curve.time[0]) * stretch,
                      data={"mag": curve["mag"]})
    with pytest.warns(rm.OutOfDomainWarning, match=r"period 1.102 d outside the 0.3302-0.9186 d"):
        feh, std = rm.predict_feh(slow, 1.2 * longest * u.day, return_std=True)
    assert np.isfinite(feh.value) and np.isnan(std.value)
    out = rm.add_feh(Table({"source_id": [1], "pf": [1.2 * longest] * u.day}), {1: slow})
    assert out["feh_status"][0] == "ok" and out["feh_domain"][0].startswith("period")
    assert out["feh_flags"][0] & FLAG_BITS["period"][0]


def test_huge_light_curve_of_10000_epochs(good):
    from test_preprocessing import rrab_shape

    period = good[1][0]
    days = np.sort(np.random.default_rng(3).uniform(0.0, 3000.0, 10_000))
    mag = rrab_shape(days / period % 1.0) + np.random.default_rng(4).normal(0, 0.02, days.size)
    curve = TimeSeries(time=Time(2457000.0 + days, format="jd"), data={"mag": mag * u.mag})
    # Every epoch has neighbours closer than the merge tolerance; merging must not chain
    # them into a handful of points ("too few epochs").
    feh = rm.predict_feh(curve, period * u.day)
    assert np.isfinite(feh.value) and -3.5 < feh.value < 1.0


def test_add_feh_reports_light_curves_without_a_row(good):
    curves, periods = good
    table = Table({"source_id": [13, 11, 99], "pf": [periods[2], periods[0], 0.6] * u.day})
    with pytest.warns(rm.RRLyraeMetallicityWarning,
                      match=r"1 light curves have no row in the table .*\[12\]"):
        out = rm.add_feh(table, dict(zip([11, 12, 13], curves)))
    assert list(out["source_id"]) == [13, 11, 99]
    assert list(out["feh_status"]) == ["ok", "ok", "no_lightcurve"]
    assert np.isnan(out["feh_phot"][2])


def test_cli_gaia_file_with_bad_stars_and_unmatched_ids(tmp_path, capsys):
    """Mixed bands, rejected transits, sentinels, NaN, too few epochs and unmatched ids."""
    stars = simulate.simulate_stars(6, seed=33, n_epochs_range=(30, 40))
    photometry = simulate.simulate_epoch_photometry(stars, seed=33, bp_rp_fraction=0.5)
    sid, is_g = np.asarray(photometry["source_id"]), np.asarray(photometry["band"]) == "G"
    rows = [np.flatnonzero((sid == s) & is_g) for s in stars["source_id"]]
    photometry["rejected_by_photometry"][rows[0]] = True            # every G transit rejected
    photometry["mag"][rows[1][:3]] = [100.0, np.nan, 99.999]          # kept: enough remain
    photometry["mag"][rows[2][MIN_EPOCHS - 2:]] = 100.0                # too few remain
    assert set(photometry["band"]) > {"G"}                             # BP and RP rows too
    photometry_path = tmp_path / "epoch_photometry.ecsv"
    photometry.write(photometry_path)
    # The star table: star 5 missing (its light curve has no row), an id with no photometry.
    table = stars["source_id", "pf"][[4, 3, 2, 1, 0]]
    table.add_row({"source_id": 7, "pf": 0.6})
    table_path = tmp_path / "vari_rrlyrae.ecsv"
    table.write(table_path)
    out = tmp_path / "out.ecsv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rm.RRLyraeMetallicityWarning)
        assert main(["predict", str(photometry_path), "--periods", str(table_path),
                     "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert (f"1 source without a row in the star table, not predicted "
            f"(e.g. [{stars['source_id'][5]}])") in err
    result = Table.read(out)
    assert list(result["source_id"]) == list(table["source_id"])
    assert list(result["feh_status"]) == ["ok", "ok", "too_few_epochs", "ok", "too_few_epochs",
                                          "no_lightcurve"]
    assert np.isfinite(result["feh_phot"][[0, 1, 3]]).all()
    assert np.isnan(result["feh_phot"][[2, 4, 5]]).all()
