"""Tests of `rrlyrae_metallicity.gaia`: every layout and file format users hold."""

import sys
import types

import astropy.units as u
import numpy as np
import pytest
from astropy.io.votable import from_table
from astropy.table import MaskedColumn, Table
from astropy.timeseries import TimeSeries

from rrlyrae_metallicity import gaia
from rrlyrae_metallicity.exceptions import InputFormatError
from rrlyrae_metallicity.gaia import (
    GAIA_TIME_ZERO,
    detect_layout,
    fetch_epoch_photometry,
    fetch_rrlyrae_parameters,
    read_epoch_photometry,
    read_rrlyrae_parameters,
)

# Deliberately not in sorted order: the reader keeps the order of the file.
SOURCE_IDS = [5978423365053786624, 4000000000000000001, 6000000000000000002, 1000000000000000003]
ALL_REJECTED = SOURCE_IDS[-1]
N_GOOD = 40
# Magnitudes that only rejected G transits carry; they must never come back.
MAG_REJECTED_VARIABILITY = 5.0
MAG_REJECTED_PHOTOMETRY = 30.0
# BP and RP magnitudes far from any G magnitude, so a leak cannot go unseen.
BP_OFFSET = 8.0
RP_OFFSET = -9.0

FORMATS = {"votable": "xml", "ascii.ecsv": "ecsv", "ascii.csv": "csv", "fits": "fits"}
BANDS = ("g", "bp", "rp")


def _make_stars(seed=42):
    """Per-transit records of the test stars, in file order, and the truth."""
    rng = np.random.default_rng(seed)
    stars = []
    for k, source_id in enumerate(SOURCE_IDS):
        if source_id == ALL_REJECTED:
            status = ["variability"] * 12 + ["photometry"] * 8
        else:
            # "nan": G magnitude missing; "no_g": a transit seen only by BP/RP.
            status = ["ok"] * N_GOOD + ["variability"] * 4 + ["photometry"] * 3
            status += ["nan", "no_g"]
        status = np.array(status)[rng.permutation(len(status))]
        n = len(status)
        # Full float64 precision, as in the archive (DR3 covers 1666-2704 d).
        time = rng.uniform(1666.0, 2704.0, n)
        phase = 2 * np.pi * ((time / (0.5 + 0.07 * k)) % 1.0)
        mag = (
            15.0
            + 0.5 * k
            + 0.35 * np.sin(phase)
            + 0.12 * np.sin(2 * phase + 1.0)
            + 0.05 * np.sin(3 * phase + 2.0)
            + rng.normal(0.0, 0.01, n)
        )
        g_mag = mag.copy()
        g_mag[status == "variability"] = MAG_REJECTED_VARIABILITY
        g_mag[status == "photometry"] = MAG_REJECTED_PHOTOMETRY
        g_mag[np.isin(status, ["nan", "no_g"])] = np.nan
        g_time = np.where(status == "no_g", np.nan, time)
        star = {
            "source_id": source_id,
            "status": status,
            "transit_id": 17_000_000_000_000_000 + 10_000 * k + rng.permutation(n),
            "g_time": g_time,
            "g_mag": g_mag,
            # BP and RP integrate the same transit a little later.
            "bp_time": time + 2.5e-5,
            "bp_mag": mag + BP_OFFSET,
            "rp_time": time + 3.0e-5,
            "rp_mag": mag + RP_OFFSET,
            "rejected_by_variability": status == "variability",
            "rejected_by_photometry": status == "photometry",
        }
        for band in BANDS:
            star[f"{band}_flux"] = 10 ** (-0.4 * (star[f"{band}_mag"] - 25.69))
            star[f"{band}_flux_error"] = star[f"{band}_flux"] / 200.0
        stars.append(star)
    return stars


def _truth(star):
    good = star["status"] == "ok"
    order = np.argsort(star["g_time"][good])
    return {
        "time": star["g_time"][good][order],
        "mag": star["g_mag"][good][order],
        "flux": star["g_flux"][good][order],
        "transit_id": star["transit_id"][good][order],
    }


def _long_table(stars):
    rows = []
    for star in stars:
        for i in range(len(star["status"])):
            for band in BANDS:
                label = band.upper()
                time_key = "g_time" if band == "g" else f"{band}_time"
                flux = star[f"{band}_flux"][i]
                rows.append(
                    (
                        star["source_id"],
                        star["transit_id"][i],
                        label,
                        star[time_key][i],
                        star[f"{band}_mag"][i],
                        flux,
                        star[f"{band}_flux_error"][i],
                        flux / star[f"{band}_flux_error"][i],
                        band == "g" and star["rejected_by_photometry"][i],
                        band == "g" and star["rejected_by_variability"][i],
                        0,
                        375316653866487564,
                    )
                )
    names = [
        "source_id", "transit_id", "band", "time", "mag", "flux", "flux_error",
        "flux_over_error", "rejected_by_photometry", "rejected_by_variability",
        "other_flags", "solution_id",
    ]  # fmt: skip
    table = Table(rows=rows, names=names)
    table["solution_id"] = table["solution_id"].astype(np.int64)
    return table


def _wide_columns(star, index=slice(None)):
    columns = {
        "solution_id": np.full(len(star["status"]), 375316653866487564)[index],
        "source_id": np.full(len(star["status"]), star["source_id"])[index],
        "transit_id": star["transit_id"][index],
    }
    for band in BANDS:
        prefix = "g_transit_" if band == "g" else f"{band}_"
        time_name = "g_transit_time" if band == "g" else f"{band}_obs_time"
        columns[time_name] = star[f"{band}_time"][index]
        columns[f"{prefix}flux"] = star[f"{band}_flux"][index]
        columns[f"{prefix}flux_error"] = star[f"{band}_flux_error"][index]
        columns[f"{prefix}flux_over_error"] = (
            star[f"{band}_flux"][index] / star[f"{band}_flux_error"][index]
        )
        columns[f"{prefix}mag"] = star[f"{band}_mag"][index]
    columns["variability_flag_g_reject"] = star["rejected_by_variability"][index]
    columns["variability_flag_bp_reject"] = np.zeros(len(star["status"]), bool)[index]
    columns["variability_flag_rp_reject"] = np.zeros(len(star["status"]), bool)[index]
    for band in BANDS:
        columns[f"{band}_other_flags"] = np.zeros(len(star["status"]), np.int64)[index]
    columns["rejected_by_photometry"] = star["rejected_by_photometry"][index]
    return columns


def _wide_table(stars):
    parts = [_wide_columns(star) for star in stars]
    return Table({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})


def _object_column(arrays):
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


def _tap_table(stars):
    """One row per source, each per-transit quantity an array (gaiadr3.epoch_photometry)."""
    parts = [_wide_columns(star) for star in stars]
    table = Table()
    table["source_id"] = np.array([star["source_id"] for star in stars], dtype=np.int64)
    table["solution_id"] = np.full(len(stars), 375316653866487564, dtype=np.int64)
    table["n_transits"] = np.array([len(star["status"]) for star in stars], dtype=np.int32)
    for name in parts[0]:
        if name not in ("source_id", "solution_id"):
            table[name] = _object_column([part[name] for part in parts])
    return table


def _format_cell(value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        # The archive writes missing array elements as null.
        return "null" if np.isnan(value) else repr(float(value))
    return str(value)


def _as_archive_csv(table):
    """Booleans as "true"/"false" and arrays as "(a,b,...)", as archive CSV files have them."""
    table = table.copy()
    for name in table.colnames:
        column = table[name]
        if column.dtype.kind == "b":
            table[name] = np.where(column, "true", "false")
        elif column.dtype.kind == "O":
            table[name] = [
                "(" + ",".join(_format_cell(value) for value in cell) + ")" for cell in column
            ]
    return table


BUILDERS = {"long": _long_table, "wide": _wide_table, "tap": _tap_table}


def _write(table, path, format):
    if format == "ascii.csv":
        table = _as_archive_csv(table)
    table.write(path, format=format)
    return path


@pytest.fixture(scope="module")
def stars():
    return _make_stars()


@pytest.fixture(scope="module")
def files(stars, tmp_path_factory):
    """Every layout written in every format, once per module."""
    folder = tmp_path_factory.mktemp("epoch_photometry")
    written = {}
    for layout, build in BUILDERS.items():
        table = build(stars)
        for format, extension in FORMATS.items():
            path = folder / f"EPOCH_PHOTOMETRY-{layout}.{extension}"
            written[layout, format] = _write(table, path, format)
    return written


def _gaia_days(ts):
    """Times of a TimeSeries as Gaia days (BJD(TCB) - 2455197.5), without precision loss."""
    time = ts.time.tcb
    return (time.jd1 - GAIA_TIME_ZERO) + time.jd2


def _check_light_curves(result, stars):
    assert list(result) == SOURCE_IDS
    for star in stars:
        ts = result[star["source_id"]]
        assert isinstance(ts, TimeSeries)
        assert ts.time.scale == "tcb"
        assert ts["mag"].unit == u.mag
        assert ts["flux"].unit == u.electron / u.s
        assert ts["flux_error"].unit == u.electron / u.s
        if star["source_id"] == ALL_REJECTED:
            assert len(ts) == 0
            continue
        truth = _truth(star)
        days = _gaia_days(ts)
        assert len(ts) == N_GOOD
        assert np.all(np.diff(days) > 0)
        np.testing.assert_allclose(days, truth["time"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ts["mag"].value, truth["mag"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ts["flux"].value, truth["flux"], rtol=1e-14)
        np.testing.assert_array_equal(ts["transit_id"], truth["transit_id"])
        # Rejected transits and BP/RP magnitudes lie far outside this range.
        assert np.all((ts["mag"].value > 14.0) & (ts["mag"].value < 17.0))


@pytest.mark.parametrize("format", list(FORMATS))
@pytest.mark.parametrize("layout", list(BUILDERS))
def test_read_every_layout_and_format(files, stars, layout, format):
    path = files[layout, format]
    result = read_epoch_photometry(path)
    _check_light_curves(result, stars)
    # The layout is found again from the file, and format= overrides the guess.
    assert detect_layout(Table.read(path, format=format)) == layout
    _check_light_curves(read_epoch_photometry(str(path), format=format), stars)


@pytest.mark.parametrize("layout", list(BUILDERS))
def test_read_table_in_memory(stars, layout):
    table = BUILDERS[layout](stars)
    assert detect_layout(table) == layout
    _check_light_curves(read_epoch_photometry(table), stars)


def test_upper_case_column_names(stars):
    table = _wide_table(stars)
    table.rename_columns(table.colnames, [name.upper() for name in table.colnames])
    _check_light_curves(read_epoch_photometry(table), stars)


def test_long_band_labels_are_normalised(stars):
    table = _long_table(stars)
    table["band"] = [f" {band.lower()} " for band in table["band"]]
    _check_light_curves(read_epoch_photometry(table), stars)


def test_missing_rejected_by_photometry_counts_as_accepted(stars):
    table = _wide_table(stars)
    del table["rejected_by_photometry"]
    ts = read_epoch_photometry(table)[SOURCE_IDS[0]]
    assert len(ts) == N_GOOD + 3
    assert np.sum(ts["mag"].value == MAG_REJECTED_PHOTOMETRY) == 3
    assert not np.any(ts["mag"].value == MAG_REJECTED_VARIABILITY)


def test_string_booleans():
    flags = ["true", "false", "True", "False", "1", "0", "false"]
    table = Table(
        {
            "source_id": np.full(7, 7, dtype=np.int64),
            "transit_id": np.arange(7),
            "g_transit_time": 1700.0 + np.arange(7.0),
            "g_transit_mag": 15.0 + np.arange(7.0) / 10,
            "variability_flag_g_reject": flags,
            # A masked flag counts as "not rejected".
            "rejected_by_photometry": MaskedColumn(
                ["false", "false", "false", "true", "false", "false", "x"],
                mask=[False, False, False, False, False, False, True],
            ),
        }
    )
    ts = read_epoch_photometry(table)[7]
    np.testing.assert_array_equal(ts["transit_id"], [1, 5, 6])
    assert "flux" not in ts.colnames


def test_masked_boolean_flags_count_as_false():
    table = Table(
        {
            "source_id": [1, 1, 1],
            "band": ["G", "G", "G"],
            "time": [1700.0, 1701.0, 1702.0],
            "mag": [15.0, 15.1, 15.2],
            "rejected_by_variability": MaskedColumn([True, False, True], mask=[True, False, False]),
        }
    )
    ts = read_epoch_photometry(table)[1]
    np.testing.assert_allclose(ts["mag"].value, [15.0, 15.1])


@pytest.mark.parametrize(
    "cells",
    [
        ("[1700.5, 1699.5, 1701.5]", "[15.2, 15.1, null]", "[false, false, false]"),
        ("(1700.5,1699.5,1701.5)", "(15.2,15.1,NaN)", "(False,False,False)"),
        ("1700.5 1699.5 1701.5", "15.2 15.1 nan", "0 0 0"),
    ],
)
def test_tap_arrays_as_strings(cells, tmp_path):
    time, mag, flags = cells
    table = Table(
        {
            "source_id": np.array([11, 12], dtype=np.int64),
            "g_transit_time": [time, "[1700.0]"],
            "g_transit_mag": [mag, "[15.5]"],
            "variability_flag_g_reject": [flags, "[true]"],
        }
    )
    path = tmp_path / "tap_strings.ecsv"
    table.write(path, format="ascii.ecsv")
    for source in (table, path):
        assert detect_layout(Table.read(path)) == "tap"
        result = read_epoch_photometry(source)
        np.testing.assert_allclose(_gaia_days(result[11]), [1699.5, 1700.5], atol=1e-9)
        np.testing.assert_allclose(result[11]["mag"].value, [15.1, 15.2])
        assert len(result[12]) == 0


def test_tap_fixed_length_arrays():
    table = Table(
        {
            "source_id": np.array([3], dtype=np.int64),
            "g_transit_time": np.array([[1701.0, 1700.0, np.nan]]),
            "g_transit_mag": np.array([[15.3, 15.2, 15.1]]),
            "variability_flag_g_reject": np.array([[False, False, False]]),
        }
    )
    assert detect_layout(table) == "tap"
    ts = read_epoch_photometry(table)[3]
    np.testing.assert_allclose(ts["mag"].value, [15.2, 15.3])


def test_tap_inconsistent_array_lengths_cost_that_star_only():
    table = Table(
        {
            "source_id": np.array([3, 4], dtype=np.int64),
            "g_transit_time": ["[1700.0, 1701.0]", "[1700.0, 1701.0]"],
            "g_transit_mag": ["[15.0]", "[15.0, 15.1]"],
        }
    )
    curves = read_epoch_photometry(table)
    assert len(curves[3]) == 0 and curves[3].meta["unreadable_transits"] == 2
    assert len(curves[4]) == 2 and "unreadable_transits" not in curves[4].meta


def test_unrelated_table_raises():
    table = Table({"ra": [1.0], "dec": [2.0], "phot_g_mean_mag": [15.0]})
    found = r"Columns found: \['ra', 'dec', 'phot_g_mean_mag'\]"
    with pytest.raises(InputFormatError, match=found):
        read_epoch_photometry(table)
    with pytest.raises(InputFormatError, match=found) as info:
        detect_layout(table)
    # The message spells out what each layout needs.
    for expected in ("long: source_id, band, time, mag", "wide: source_id, g_transit_time"):
        assert expected in str(info.value)
    assert "tap (array columns, one row per source)" in str(info.value)


def test_long_table_without_mag_raises(stars):
    table = _long_table(stars)
    del table["mag"]
    with pytest.raises(InputFormatError, match=r"'long'.*\['mag'\].*Columns found: \['source_id'"):
        read_epoch_photometry(table)


def test_wide_table_without_g_mag_raises(stars):
    table = _wide_table(stars)
    del table["g_transit_mag"]
    with pytest.raises(InputFormatError, match=r"\['g_transit_mag'\]"):
        read_epoch_photometry(table)


def test_source_must_be_path_or_table():
    with pytest.raises(TypeError, match="'source' should be a path or an astropy Table"):
        read_epoch_photometry(42)


@pytest.mark.parametrize("format", ["ascii.ecsv", "ascii.csv"])
def test_read_rrlyrae_parameters(tmp_path, format):
    table = Table(
        {
            "SOURCE_ID": np.array([5978423365053786624, 4000000000000000001], dtype=np.int64),
            "pf": [0.5867, np.nan],
            "p1_o": [np.nan, 0.31],
            "epoch_g": [1710.123456789, 1720.5],
            "best_classification": ["RRab", "RRc"],
        }
    )
    path = tmp_path / f"vari_rrlyrae.{FORMATS[format]}"
    table.write(path, format=format)
    params = read_rrlyrae_parameters(path)
    assert params["source_id"].dtype == np.int64
    assert list(params["source_id"]) == [5978423365053786624, 4000000000000000001]
    assert params["pf"].unit == u.day
    assert params["epoch_g"].unit == u.day
    assert params["p1_o"].unit is None
    np.testing.assert_allclose(params["pf"][0], 0.5867)


def test_read_rrlyrae_parameters_keeps_units_and_requires_pf():
    table = Table({"source_id": [1], "pf": [13.2] * u.hour})
    params = read_rrlyrae_parameters(table)
    assert params["pf"].unit == u.hour
    assert table["pf"].unit == u.hour
    with pytest.raises(InputFormatError, match=r"\['pf'\].*Columns found: \['source_id', 'p'\]"):
        read_rrlyrae_parameters(Table({"source_id": [1], "p": [0.5]}))


# --------------------------------------------------------------------------
# Archive access, with a stand-in for astroquery.gaia (no network)
# --------------------------------------------------------------------------


class _FakeGaia:
    def __init__(self, stars):
        self.stars = {star["source_id"]: star for star in stars}
        self.load_data_calls = []
        self.queries = []

    def load_data(self, ids, *, data_release, retrieval_type, data_structure, format):
        assert (retrieval_type, data_structure, format) == (
            "EPOCH_PHOTOMETRY",
            "INDIVIDUAL",
            "votable",
        )
        self.load_data_calls.append(list(ids))
        products = {}
        for sid in reversed(ids):  # the archive's file order is arbitrary
            if sid in self.stars:
                table = Table(_wide_columns(self.stars[sid]))
                if sid == SOURCE_IDS[1]:
                    del table["rejected_by_photometry"]  # some files lack it
                votable = from_table(table).get_first_table()
                products[f"EPOCH_PHOTOMETRY-{data_release} {sid}.xml"] = [votable]
        return products

    def launch_job_async(self, query):
        self.queries.append(query)
        result = Table(
            {
                "source_id": np.array([SOURCE_IDS[0]], dtype=np.int64),
                "pf": [0.5867],
                "epoch_g": [1710.1],
            }
        )
        return types.SimpleNamespace(get_results=lambda: result)


@pytest.fixture
def fake_gaia(monkeypatch, stars):
    fake = _FakeGaia(stars)
    monkeypatch.setitem(sys.modules, "astroquery.gaia", types.SimpleNamespace(Gaia=fake))
    return fake


def test_fetch_epoch_photometry_offline(fake_gaia, monkeypatch, stars):
    monkeypatch.setattr(gaia.archive, "LOAD_DATA_CHUNK", 2)
    unknown = 42
    result = fetch_epoch_photometry(SOURCE_IDS + [unknown, SOURCE_IDS[0]])
    assert fake_gaia.load_data_calls == [SOURCE_IDS[:2], SOURCE_IDS[2:], [unknown]]
    assert list(result) == SOURCE_IDS
    ts = result[SOURCE_IDS[1]]  # its file lacks rejected_by_photometry
    assert len(ts) == N_GOOD + 3
    for star in stars[::2]:
        truth = _truth(star)
        ts = result[star["source_id"]]
        np.testing.assert_allclose(_gaia_days(ts), truth["time"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ts["mag"].value, truth["mag"])
    assert len(result[ALL_REJECTED]) == 0


def test_fetch_rrlyrae_parameters_offline(fake_gaia):
    params = fetch_rrlyrae_parameters([SOURCE_IDS[0], SOURCE_IDS[1]])
    (query,) = fake_gaia.queries
    assert "FROM gaiadr3.vari_rrlyrae" in query
    assert f"WHERE source_id IN ({SOURCE_IDS[0]}, {SOURCE_IDS[1]})" in query
    assert params["pf"].unit == u.day
    assert params["epoch_g"].unit == u.day


def test_fetch_needs_source_ids(fake_gaia):
    with pytest.raises(ValueError, match="at least one"):
        fetch_epoch_photometry([])


def test_fetch_without_astroquery(monkeypatch):
    # None in sys.modules makes the import fail as if astroquery were absent.
    monkeypatch.setitem(sys.modules, "astroquery.gaia", None)
    with pytest.raises(ImportError, match=r'pip install "rrlyrae_metallicity\[gaia\]"'):
        fetch_epoch_photometry([SOURCE_IDS[0]])
    with pytest.raises(ImportError, match=r'pip install "rrlyrae_metallicity\[gaia\]"'):
        fetch_rrlyrae_parameters([SOURCE_IDS[0]])


# --------------------------------------------------------------------------
# The real archive
# --------------------------------------------------------------------------

REAL_RRAB = 5978423365053786624


@pytest.mark.remote_data
def test_fetch_epoch_photometry_remote():
    result = fetch_epoch_photometry([REAL_RRAB])
    ts = result[REAL_RRAB]
    assert len(ts) > 20
    assert ts["mag"].unit == u.mag
    assert np.all(np.isfinite(ts["mag"].value))
    assert np.all(np.diff(ts.time.jd) > 0)


@pytest.mark.remote_data
def test_fetch_rrlyrae_parameters_remote():
    params = fetch_rrlyrae_parameters([REAL_RRAB])
    assert list(params["source_id"]) == [REAL_RRAB]
    period = params["pf"][0] if not np.ma.is_masked(params["pf"][0]) else params["p1_o"][0]
    assert 0.2 < period < 1.0
    assert params["pf"].unit == u.day


# ---------------------------------------------------------------------------
# End to end: every layout and format through the CLI gives the same [Fe/H].

NO_PHOTOMETRY = 2000000000000000009


@pytest.fixture(scope="module")
def clean_feh(stars):
    """[Fe/H] of the good stars predicted from clean TimeSeries built from the truth."""
    import astropy.units as u
    from astropy.time import Time
    from astropy.timeseries import TimeSeries

    from rrlyrae_metallicity import predict_feh

    result = {}
    for k, star in enumerate(stars):
        if star["source_id"] == ALL_REJECTED:
            continue
        truth = _truth(star)
        ts = TimeSeries(time=Time(2455197.5, truth["time"], format="jd", scale="tcb"),
                        data={"mag": truth["mag"] * u.mag})
        result[star["source_id"]] = predict_feh(ts, (0.5 + 0.07 * k) * u.day).value
    return result


@pytest.mark.parametrize("format", list(FORMATS))
@pytest.mark.parametrize("layout", list(BUILDERS))
def test_cli_gives_identical_feh_for_every_layout_and_format(files, stars, clean_feh, layout,
                                                              format, tmp_path):
    from rrlyrae_metallicity import add_feh
    from rrlyrae_metallicity.cli import main

    periods = Table({"source_id": np.array(SOURCE_IDS + [NO_PHOTOMETRY], dtype=np.int64),
                     "pf": [0.5 + 0.07 * k for k in range(len(SOURCE_IDS))] + [0.6]})
    periods["pf"].unit = "d"
    periods_path = tmp_path / "vari_rrlyrae.ecsv"
    periods.write(periods_path)
    out = tmp_path / "out.ecsv"
    assert main(["predict", str(files[layout, format]), "--periods", str(periods_path),
                 "-o", str(out)]) == 0
    result = Table.read(out)
    # Every vari_rrlyrae row is kept, in order, with a status.
    assert list(result["source_id"]) == list(periods["source_id"])
    status = dict(zip(result["source_id"], result["feh_status"]))
    assert status[ALL_REJECTED] == "too_few_epochs"
    assert status[NO_PHOTOMETRY] == "no_lightcurve"
    feh = dict(zip(result["source_id"], result["feh_phot"]))
    assert np.isnan(feh[ALL_REJECTED]) and np.isnan(feh[NO_PHOTOMETRY])
    for source_id, expected in clean_feh.items():
        assert status[source_id] == "ok"
        assert feh[source_id] == pytest.approx(expected, abs=1e-6)
    # The Python reader gives the same numbers as the CLI.
    in_memory = add_feh(periods, read_epoch_photometry(files[layout, format]))
    np.testing.assert_allclose(in_memory["feh_phot"], result["feh_phot"], atol=1e-6)
