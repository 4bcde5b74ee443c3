"""Files and the command line an astronomer can trust (issue 18).

Each case of the issue is a test: bad files end in one line naming the file
and a documented exit code; outputs never replace an input, are written whole
with the umask's permissions and carry their provenance in every format;
source ids stay exact; one unreadable star costs that star only; instrumental
magnitudes work; the command line talks through logging with plurals and
rounded numbers.
"""

import io
import json
import os
import re
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits, votable
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

import rrlyrae_metallicity as rm
from rrlyrae_metallicity import cli
from rrlyrae_metallicity.cli import EXIT_CODES, main
from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters
from rrlyrae_metallicity.outputs import FITS_KEYWORDS

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example(example_files):
    """The example as files of each format, its period table, and the in-memory result."""
    photometry, periods = example_files
    rows = Table.read(photometry)
    for column in rows.itercols():
        if column.unit == u.electron / u.s:
            column.unit = None  # FITS has no electron: keep the test files plain
    rows.meta.clear()
    stars = read_rrlyrae_parameters(periods)
    expected = rm.add_feh(stars, read_epoch_photometry(photometry))
    return {"rows": rows, "periods": periods, "stars": stars, "expected": expected,
            "photometry": photometry}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err, code_expected, code, *fragments):
    assert code == code_expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rrlyrae-feh")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------------
# 1. Bad input files: one line, the file named, exit code 1
# --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".xml", ".fits", ".ecsv"])
def test_truncated_files(example, tmp_path, capsys, suffix):
    whole = tmp_path / f"whole{suffix}"
    with warnings.catch_warnings():
        # The archive's flux unit (electron / s) is not a VOUnit: astropy warns (W50).
        warnings.simplefilter("ignore", votable.exceptions.W50)
        example["rows"].write(whole, format={".xml": "votable", ".fits": "fits",
                                             ".ecsv": "ascii.ecsv"}[suffix])
    cut = tmp_path / f"cut{suffix}"
    payload = whole.read_bytes()
    cut.write_bytes(payload[: len(payload) // 3])
    code, _, err = _run(capsys, "predict", cut, "--periods", example["periods"], "-o",
                        tmp_path / "out.ecsv")
    _one_error_line(err, 1, code, str(cut))
    assert not (tmp_path / "out.ecsv").exists()


def test_a_directory(example, tmp_path, capsys):
    code, _, err = _run(capsys, "predict", tmp_path, "--periods", example["periods"])
    _one_error_line(err, 1, code, str(tmp_path), "is a directory")


def test_an_empty_file(example, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, _, err = _run(capsys, "predict", empty, "--periods", example["periods"])
    _one_error_line(err, 1, code, str(empty), "is empty")


def test_a_file_with_a_header_and_no_rows(example, tmp_path, capsys):
    header_only = tmp_path / "header.csv"
    example["rows"][:0].write(header_only, format="ascii.csv")
    code, _, err = _run(capsys, "predict", header_only, "--periods", example["periods"])
    _one_error_line(err, 1, code, str(header_only), "no epoch-photometry rows")


def test_an_unreadable_file(example, tmp_path, capsys, monkeypatch):
    # Root reads any file, so the operating system's refusal is simulated.
    path = tmp_path / "locked.csv"
    example["rows"].write(path, format="ascii.csv")

    from rrlyrae_metallicity.gaia import files

    real_open = files._open_text

    def refuse(name):
        if os.fspath(name) == os.fspath(path):
            raise PermissionError(13, "Permission denied")
        return real_open(name)

    monkeypatch.setattr(files, "_open_text", refuse)
    code, _, err = _run(capsys, "predict", path, "--periods", example["periods"])
    _one_error_line(err, 1, code, str(path), "permission denied")


def test_a_csv_named_txt_and_a_forced_format(example, tmp_path, capsys):
    as_txt = tmp_path / "photometry.txt"
    example["rows"].write(as_txt, format="ascii.csv")
    out = tmp_path / "out.ecsv"
    code, _, err = _run(capsys, "predict", as_txt, "--periods", example["periods"], "-o", out)
    assert code == 0, err
    np.testing.assert_allclose(Table.read(out)["feh_phot"], example["expected"]["feh_phot"],
                               atol=1e-6)
    ecsv_as_dat = tmp_path / "photometry.dat"
    example["rows"].write(ecsv_as_dat, format="ascii.ecsv")
    code, _, err = _run(capsys, "predict", ecsv_as_dat, "--format", "ascii.ecsv", "--periods",
                        example["periods"], "-o", tmp_path / "out2.ecsv")
    assert code == 0, err
    code, _, err = _run(capsys, "predict", ecsv_as_dat, "--format", "fits", "--periods",
                        example["periods"])
    _one_error_line(err, 1, code, str(ecsv_as_dat))


def test_a_csv_with_a_byte_order_mark(example, tmp_path, capsys):
    plain = tmp_path / "plain.csv"
    example["rows"].write(plain, format="ascii.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    periods = tmp_path / "periods.csv"
    example["stars"]["source_id", "pf"].write(periods, format="ascii.csv")
    periods.write_bytes(b"\xef\xbb\xbf" + periods.read_bytes())
    out = tmp_path / "out.ecsv"
    code, _, err = _run(capsys, "predict", bom, "--periods", periods, "-o", out)
    assert code == 0, err
    np.testing.assert_allclose(Table.read(out)["feh_phot"], example["expected"]["feh_phot"],
                               atol=1e-6)


# --------------------------------------------------------------------------
# 2. Outputs: never over an input, whole, readable by collaborators
# --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["photometry", "periods"])
def test_output_never_replaces_an_input(example, tmp_path, capsys, which):
    photometry = tmp_path / "photometry.ecsv"
    example["rows"].write(photometry)
    periods = tmp_path / "periods.ecsv"
    example["stars"].write(periods)
    target = {"photometry": photometry, "periods": periods}[which]
    before = target.read_bytes()
    code, _, err = _run(capsys, "predict", photometry, "--periods", periods, "-o", target)
    assert code == 2 and "is an input of this run" in err and str(target) in err
    assert target.read_bytes() == before


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits", ".xml"])
def test_outputs_get_the_permissions_the_umask_allows(example, tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    old = os.umask(0o022)
    try:
        code, _, err = _run(capsys, "predict", example["photometry"], "--periods",
                            example["periods"], "-o", out)
    finally:
        os.umask(old)
    assert code == 0, err
    written = [out] + ([Path(f"{out}.provenance.json")] if suffix == ".csv" else [])
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


# --------------------------------------------------------------------------
# 3. Provenance in every format; dex in VOTable without a warning
# --------------------------------------------------------------------------

PROVENANCE = ("feh_package", "feh_model", "feh_model_sha256", "feh_created", "feh_inputs",
              "feh_preprocessing", "feh_label_scale")


def _provenance_of(path):
    if path.suffix == ".ecsv":
        return dict(Table.read(path).meta)
    if path.suffix == ".csv":
        return json.loads(Path(f"{path}.provenance.json").read_text())
    if path.suffix == ".fits":
        header = fits.getheader(path, 1)
        return {key: header[keyword] for key, keyword in
                FITS_KEYWORDS.items() if keyword in header}
    table_file = votable.parse(path)
    return {info.name: info.value for info in table_file.resources[0].infos}


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits", ".xml"])
def test_provenance_in_every_format(example, tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods",
                        example["periods"], "-o", out)
    assert code == 0, err
    found = _provenance_of(out)
    assert set(PROVENANCE) <= set(found), found
    model = rm.load_model()
    assert found["feh_model"] == model.name
    assert found["feh_model_sha256"] == model.sha256 and len(model.sha256) == 64
    assert found["feh_package"] == f"rrlyrae_metallicity {rm.__version__}"
    assert example["photometry"] in found["feh_inputs"]
    assert example["periods"] in found["feh_inputs"]
    assert json.loads(found["feh_preprocessing"]) == model.preprocessing.to_dict()
    assert "Crestani" in found["feh_label_scale"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", found["feh_created"])


def test_votable_dex_convention_without_warnings(example, tmp_path, capsys):
    # pytest turns every warning into an error: writing and reading must raise none.
    out = tmp_path / "out.xml"
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods",
                        example["periods"], "-o", out)
    assert code == 0, err
    fields = {f.name: f for f in votable.parse(out).get_first_table().fields}
    assert fields["feh_phot"].unit is None and fields["feh_phot"].ucd == "phys.abund.Z"
    assert fields["feh_phot_std"].ucd == "stat.error;phys.abund.Z"
    assert fields["feh_phot"].description.startswith("[dex]")
    table = Table.read(out)
    np.testing.assert_allclose(table["feh_phot"], example["expected"]["feh_phot"], atol=1e-6)


def test_add_feh_results_carry_provenance(example):
    meta = example["expected"].meta
    assert {"feh_package", "feh_model", "feh_model_sha256", "feh_created",
            "feh_preprocessing", "feh_label_scale"} <= set(meta)


# --------------------------------------------------------------------------
# 4. One bad star never stops a batch; instrumental magnitudes
# --------------------------------------------------------------------------


def test_an_unreadable_cell_costs_its_star_only(example, tmp_path, capsys):
    rows = example["rows"].copy()
    rows["mag"] = rows["mag"].astype(object)
    first_g = int(np.flatnonzero((rows["source_id"] == example["stars"]["source_id"][0])
                                 & (rows["band"] == "G"))[0])
    rows["mag"][first_g] = "abc"
    path = tmp_path / "photometry.csv"
    rows.write(path, format="ascii.csv")
    out = tmp_path / "out.ecsv"
    code, _, err = _run(capsys, "predict", path, "--periods", example["periods"], "-o", out)
    assert code == 0, err
    result = Table.read(out)
    assert result["feh_status"][0] == "unreadable_values" and np.isnan(result["feh_phot"][0])
    assert (result["feh_status"][1:] == "ok").all()
    np.testing.assert_allclose(result["feh_phot"][1:], example["expected"]["feh_phot"][1:],
                               atol=1e-6)
    # The same through the Python readers and add_feh.
    curves = read_epoch_photometry(path)
    table = rm.add_feh(example["stars"], curves)
    assert table["feh_status"][0] == "unreadable_values"


def test_unparseable_magnitude_in_a_batch_is_that_stars_status(simulated_stars,
                                                              simulated_curves):
    bad = simulated_curves[1].copy()
    bad["mag"] = bad["mag"].value.astype(str)
    bad["mag"][3] = "?!"
    with pytest.warns(rm.RRLyraeMetallicityWarning, match="1 of 3"):
        feh = rm.predict_feh([simulated_curves[0], bad, simulated_curves[2]],
                             simulated_stars["pf"][:3].quantity)
    assert np.isfinite(feh[[0, 2]]).all() and np.isnan(feh[1])


@pytest.mark.parametrize("offset", [-30.0, -18.0])
def test_instrumental_and_relative_magnitudes(simulated_stars, simulated_curves, offset):
    curve, period = simulated_curves[0], simulated_stars["pf"][0] * u.day
    expected = rm.predict_feh(curve, period)
    shifted = curve.copy()
    shifted["mag"] = curve["mag"] + offset * u.mag   # about -12 mag, or about 0
    assert rm.predict_feh(shifted, period).value == pytest.approx(expected.value, abs=1e-6)


def test_sentinels_are_still_dropped(simulated_stars, simulated_curves):
    curve, period = simulated_curves[0], simulated_stars["pf"][0] * u.day
    expected = rm.predict_feh(curve[3:], period)
    marked = curve.copy()
    marked["mag"][:3] = [99.999, -99.0, 100.0] * u.mag
    assert rm.predict_feh(marked, period).value == pytest.approx(expected.value, abs=1e-6)


# --------------------------------------------------------------------------
# 5. Source ids kept exactly
# --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits", ".xml"])
def test_unsigned_source_ids_beyond_2_63(example, tmp_path, capsys, suffix):
    big = np.uint64(2**63) + np.arange(len(example["stars"]), dtype=np.uint64) * np.uint64(7)
    mapping = dict(zip(example["stars"]["source_id"].tolist(), big.tolist()))
    rows = example["rows"].copy()
    rows["source_id"] = np.array([mapping[i] for i in rows["source_id"].tolist()],
                                 dtype=np.uint64)
    stars = example["stars"]["source_id", "pf", "epoch_g"].copy()
    stars.meta.clear()
    stars["source_id"] = big
    photometry, periods = tmp_path / "photometry.fits", tmp_path / "periods.fits"
    rows.write(photometry)
    stars.write(periods)
    out = tmp_path / f"out{suffix}"
    code, _, err = _run(capsys, "predict", photometry, "--periods", periods, "-o", out)
    assert code == 0, err
    with warnings.catch_warnings():
        # astropy reads integers past 2**63 in a CSV as text (AstropyWarning): the
        # file holds the exact digits, which is what counts here.
        warnings.simplefilter("ignore", AstropyWarning)
        result = Table.read(out)
    assert [int(i) for i in result["source_id"]] == big.tolist()
    np.testing.assert_allclose(result["feh_phot"], example["expected"]["feh_phot"], atol=1e-6)
    # And without a star table (one period for all).
    code, _, err = _run(capsys, "predict", photometry, "--period", "0.55", "-o",
                        tmp_path / "single.ecsv")
    assert code == 0, err
    assert sorted(int(i) for i in Table.read(tmp_path / "single.ecsv")["source_id"]) == \
        sorted(big.tolist())


# --------------------------------------------------------------------------
# 6. The command line's manners
# --------------------------------------------------------------------------


def test_quiet_and_verbose(example, tmp_path, capsys):
    out = tmp_path / "out.ecsv"
    code, stdout, err = _run(capsys, "predict", example["photometry"], "--periods",
                             example["periods"], "-o", out, "--quiet")
    assert code == 0 and err == "" and stdout == ""
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods",
                        example["periods"], "-o", out, "--verbose", "--chunk-size", "7")
    assert code == 0
    assert "chunk 0: 7 sources done" in err and "3 chunks predicted" in err


def test_plurals_and_rounded_summaries(example, tmp_path, capsys):
    one = tmp_path / "one.ecsv"
    first = example["stars"]["source_id"][0]
    example["rows"][example["rows"]["source_id"] == first].write(one)
    code, stdout, err = _run(capsys, "predict", one, "--period", str(example["stars"]["pf"][0]))
    assert code == 0, err
    assert "1 chunk predicted" in err and "for 1 of 1 star " in err
    assert "chunks" not in err and "1 stars" not in err
    # The printed table is rounded for reading; files keep every digit.
    value = re.search(r"ok", stdout) and re.findall(r"-?\d+\.\d+", stdout)
    assert value and all(len(v.split(".")[1]) <= 5 for v in value)


def test_progress_bar_on_a_terminal(example, tmp_path, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["predict", example["photometry"], "--periods", example["periods"], "-o",
                 str(tmp_path / "out.ecsv"), "--chunk-size", "7"])
    assert code == 0
    text = terminal.getvalue()
    assert "\r[" in text and "20 of 20 stars (100 %)" in text
    assert "chunk 0:" not in text  # the bar replaces the per-chunk lines


def test_one_table_of_exit_codes_in_help_readme_and_docs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    readme = (REPOSITORY / "README.md").read_text()
    docs = (REPOSITORY / "docs" / "cli.rst").read_text()
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning)}$", help_text, re.M), meaning
        assert f"| {code} | {meaning} |" in readme, (code, meaning)
        assert re.search(rf"^\s+\* - {code}\n\s+- {re.escape(meaning)}$", docs, re.M), code
    assert cli.exit_code_lines()[0].strip().startswith("0")


# --------------------------------------------------------------------------
# What a new user found (a fresh seat, after the first version of this issue)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["photometry", "periods"])
def test_a_csv_cut_in_the_middle_of_a_row(example, tmp_path, capsys, which):
    photometry = tmp_path / "photometry.csv"
    example["rows"].write(photometry, format="ascii.csv")
    periods = tmp_path / "periods.csv"
    example["stars"]["source_id", "pf"].write(periods, format="ascii.csv")
    target = {"photometry": photometry, "periods": periods}[which]
    text = target.read_text()
    target.write_text(text[: int(len(text) * 0.6)])
    code, _, err = _run(capsys, "predict", photometry, "--periods", periods)
    _one_error_line(err, 1, code, str(target), "truncated")


@pytest.mark.parametrize("output, message", [
    ("nosuchdir/sub/out.fits", "no such folder"),
    ("photometry.ecsv/out.ecsv", "is not a folder"),
    ("folder.ecsv", "is a folder"),
])
def test_outputs_that_cannot_be_written_stop_before_the_work(example, tmp_path, capsys,
                                                             output, message):
    photometry = tmp_path / "photometry.ecsv"
    example["rows"].write(photometry)
    (tmp_path / "folder.ecsv").mkdir()
    code, _, err = _run(capsys, "predict", photometry, "--periods", example["periods"], "-o",
                        tmp_path / output)
    _one_error_line(err, 4, code, message)
    assert not (tmp_path / "nosuchdir").exists()
    assert not list(tmp_path.glob("*.parts"))


def test_period_table_problems(example, tmp_path, capsys):
    periods = tmp_path / "periods.csv"
    table = example["stars"]["source_id", "pf"].copy()
    table["pf"] = table["pf"].value.astype(str)
    table["pf"][2] = "abc"
    table.write(periods, format="ascii.csv")
    out = tmp_path / "out.ecsv"
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods", periods, "-o", out)
    assert code == 0, err
    result = Table.read(out)
    assert result["feh_status"][2] == "invalid_period"
    assert (np.delete(np.asarray(result["feh_status"]), 2) == "ok").all()
    metres = tmp_path / "metres.ecsv"
    table = example["stars"]["source_id", "pf"].copy()
    table["pf"] = table["pf"].value * u.m
    table.write(metres)
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods", metres)
    _one_error_line(err, 1, code, str(metres), "units of time")


def test_unmatched_sources_and_example_with_a_file(example, tmp_path, capsys):
    periods = tmp_path / "periods.ecsv"
    example["stars"]["source_id", "pf"][:18].write(periods)
    code, _, err = _run(capsys, "predict", example["photometry"], "--periods", periods, "-o",
                        tmp_path / "out.ecsv")
    assert code == 0 and "2 sources of" in err and "have no row in" in err
    code, _, err = _run(capsys, "predict", "--example", example["photometry"])
    assert code == 2 and "either --example or EPOCH_PHOTOMETRY_FILE" in err


def test_short_format_names(example, tmp_path, capsys):
    as_dat = tmp_path / "photometry.dat"
    example["rows"].write(as_dat, format="ascii.csv")
    code, _, err = _run(capsys, "predict", as_dat, "--format", "csv", "--periods",
                        example["periods"], "-o", tmp_path / "out.ecsv")
    assert code == 0, err


def test_the_progress_bar_ends_its_line_before_the_summary(example, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["predict", example["photometry"], "--periods", example["periods"], "-o",
                 str(tmp_path / "out.ecsv")]) == 0
    for line in terminal.getvalue().split("\n"):
        assert "rrlyrae-feh:" not in line or line.startswith("rrlyrae-feh:"), line


def test_reading_a_file_block_by_block_leaves_the_warning_filters_alone(example, tmp_path):
    # A generator suspended inside warnings.catch_warnings() and finalised later
    # restored stale filters over other code (tests saw warnings turn into errors).
    import gc

    from rrlyrae_metallicity.gaia.files import iter_table_blocks

    path = tmp_path / "photometry.csv"
    example["rows"].write(path, format="ascii.csv")
    before = list(warnings.filters)
    blocks = iter_table_blocks(str(path), block_rows=3)
    next(blocks)
    assert warnings.filters == before
    del blocks
    gc.collect()
    assert warnings.filters == before
