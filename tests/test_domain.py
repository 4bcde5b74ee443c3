"""Domain signals at every entry point (issue "Every number says how far to trust it", part 3)."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, Table
from astropy.timeseries import TimeSeries

import rrlyrae_metallicity as rm
from rrlyrae_metallicity.catalogue import predict_catalogue
from rrlyrae_metallicity.domain import FLAG_BITS, describe_flags
from rrlyrae_metallicity.exceptions import LightCurveError, OutOfDomainWarning
from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters


def _slowed(curve, factor):
    """The same light curve with its times stretched by ``factor`` about the first."""
    return TimeSeries(time=curve.time[0] + (curve.time - curve.time[0]) * factor,
                      data={"mag": curve["mag"]})


def test_a_20_day_period_is_not_an_rrab(simulated_stars, simulated_curves):
    period = float(simulated_stars["pf"][0])
    slow = _slowed(simulated_curves[0], 20.0 / period)
    with pytest.raises(LightCurveError, match="not_rrab|fundamental-mode") as info:
        rm.predict_feh(slow, 20.0 * u.day)
    assert info.value.status == "not_rrab"


def test_a_constant_light_curve_is_not_an_rrab(simulated_stars, simulated_curves):
    rng = np.random.default_rng(4)
    flat = TimeSeries(time=simulated_curves[0].time,
                      data={"mag": 15.0 + rng.normal(0, 0.01, len(simulated_curves[0]))})
    table = rm.add_feh(Table({"source_id": [1, 2], "pf": simulated_stars["pf"][:2]}),
                       {1: flat, 2: simulated_curves[1]})
    assert list(table["feh_status"]) == ["not_rrab", "ok"]
    assert np.isnan(table["feh_phot"][0]) and np.isfinite(table["feh_phot"][1])
    assert table["feh_flags"][0] & FLAG_BITS["not_rrab"][0]
    assert table["feh_flags"][0] & FLAG_BITS["no_prediction"][0]


def test_the_tables_own_classification(simulated_stars, simulated_curves):
    table = Table({"source_id": [1, 2, 3, 4], "pf": simulated_stars["pf"][:4],
                   "best_classification": MaskedColumn(["RRab", "RRc", "RRd", ""],
                                                       mask=[False, False, False, True])})
    result = rm.add_feh(table, dict(zip([1, 2, 3, 4], simulated_curves[:4])))
    assert list(result["feh_status"]) == ["ok", "not_rrab", "not_rrab", "ok"]
    assert np.isnan(result["feh_phot"][[1, 2]]).all()
    # Without the column, or with another name, every star is predicted.
    ignored = rm.add_feh(table, dict(zip([1, 2, 3, 4], simulated_curves[:4])),
                         classification_column=None)
    assert list(ignored["feh_status"]) == ["ok"] * 4


def test_the_catalogue_reads_the_classification_too(example_files):
    photometry, periods = example_files
    stars = read_rrlyrae_parameters(periods)
    stars["best_classification"] = ["RRab"] * len(stars)
    stars["best_classification"][3] = "RRc"
    result = predict_catalogue(photometry, stars)
    expected = rm.add_feh(stars, read_epoch_photometry(photometry))
    assert list(result["feh_status"]) == list(expected["feh_status"])
    assert result["feh_status"][3] == "not_rrab"


def test_predict_feh_warns_once_per_call_naming_the_stars(simulated_stars, simulated_curves):
    longest = rm.load_model().training_domain["period_d"][1]
    period = float(simulated_stars["pf"][1])
    slow = _slowed(simulated_curves[1], 1.2 * longest / period)
    periods = [float(simulated_stars["pf"][0]), 1.2 * longest] * u.day
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feh, std = rm.predict_feh({"good": simulated_curves[0], "slow": slow}, dict(
            zip(["good", "slow"], periods)))["feh_phot", "feh_phot_std"].itercols()
    domain = [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
    assert len(domain) == 1
    message = str(domain[0].message)
    assert "star slow: period" in message and "star good" not in message
    assert np.isfinite(std[0]) and np.isnan(std[1]) and np.isfinite(feh).all()
    with pytest.warns(OutOfDomainWarning, match="1 of 1 light curve outside"):
        rm.predict_feh(slow, 1.2 * longest * u.day)


def test_flag_bits_are_documented_and_distinct():
    values = [value for value, _ in FLAG_BITS.values()]
    assert len(set(values)) == len(values) and all(v & (v - 1) == 0 for v in values)
    assert describe_flags(FLAG_BITS["period"][0] | FLAG_BITS["phase_gap"][0]) == [
        FLAG_BITS["period"][1], FLAG_BITS["phase_gap"][1]]


# --------------------------------------------------------------------------
# What a second fresh seat found
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ascii.ecsv", "ascii.csv"])
def test_a_blank_classification_says_nothing_in_files(example_files, tmp_path, fmt):
    photometry, periods = example_files
    stars = read_rrlyrae_parameters(periods)["source_id", "pf"]
    stars["best_classification"] = MaskedColumn(["RRab"] * len(stars), mask=[False] * len(stars))
    stars["best_classification"].mask[2] = True
    stars["best_classification"][4] = "RRc"
    path = tmp_path / ("vari" + (".ecsv" if fmt == "ascii.ecsv" else ".csv"))
    stars.write(path, format=fmt)
    result = predict_catalogue(photometry, read_rrlyrae_parameters(str(path)))
    assert result["feh_status"][2] == "ok" and result["feh_status"][4] == "not_rrab"
    assert "classified as RRc" not in result["feh_domain"][2]


@pytest.mark.parametrize("values, expected", [
    (["RRab", "ab", "RRAB", "nan", None], ["ok"] * 5),
    (["RRc", "c", "RRd", "ACEP", "rrab?"], ["not_rrab"] * 5),
])
def test_classification_vocabulary(simulated_stars, simulated_curves, values, expected):
    table = Table({"source_id": np.arange(5), "pf": simulated_stars["pf"][:5],
                   "best_classification": np.array(values, dtype=object)})
    result = rm.add_feh(table, dict(zip(range(5), simulated_curves[:5])))
    assert list(result["feh_status"]) == expected


def test_periods_with_text_and_blank_cells_cost_their_stars(simulated_stars, simulated_curves):
    table = Table({"source_id": [1, 2, 3, 4],
                   "pf": MaskedColumn([str(p) for p in simulated_stars["pf"][:2]] + ["abc", ""],
                                      mask=[False, False, False, True], unit="d")})
    result = rm.add_feh(table, dict(zip([1, 2, 3, 4], simulated_curves[:4])))
    assert list(result["feh_status"]) == ["ok", "ok", "invalid_period", "invalid_period"]


def test_not_rrab_reason_is_in_feh_domain(simulated_stars, simulated_curves):
    slow = _slowed(simulated_curves[0], 20.0 / float(simulated_stars["pf"][0]))
    result = rm.add_feh(Table({"source_id": [1], "pf": [20.0] * u.day}), {1: slow})
    assert result["feh_status"][0] == "not_rrab"
    assert result["feh_domain"][0].startswith("not an RRab: period 20 d")


def test_a_gaia_file_in_millimagnitudes(example_files, tmp_path):
    photometry, periods = example_files
    rows = Table.read(photometry)
    rows["mag"] = rows["mag"].to(u.mmag)
    path = tmp_path / "mmag.ecsv"
    rows.write(path)
    stars = read_rrlyrae_parameters(periods)
    np.testing.assert_allclose(rm.add_feh(stars, read_epoch_photometry(str(path)))["feh_phot"],
                               rm.add_feh(stars, read_epoch_photometry(photometry))["feh_phot"],
                               atol=1e-6)


def test_a_failed_run_leaves_no_parts_behind(example_files, tmp_path):
    from rrlyrae_metallicity.cli import main

    photometry, periods = example_files
    bad = tmp_path / "cut.csv"
    Table.read(photometry).write(bad, format="ascii.csv")
    bad.write_text(bad.read_text()[:5000])
    out = tmp_path / "out.ecsv"
    assert main(["predict", str(bad), "--periods", periods, "-o", str(out), "-q"]) == 1
    assert not list(tmp_path.glob("*.parts")) and not out.exists()
