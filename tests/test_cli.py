"""Tests of the ``rrlyrae-feh`` command line."""

import re

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

import rrlyrae_metallicity as rm
from rrlyrae_metallicity.cli import example_paths, main
from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters


@pytest.fixture(scope="module")
def example_result():
    photometry, periods = example_paths()
    return rm.add_feh(read_rrlyrae_parameters(periods), read_epoch_photometry(photometry))


def test_predict_example_prints_table(capsys):
    assert main(["predict", "--example"]) == 0
    captured = capsys.readouterr()
    assert "feh_phot" in captured.out
    assert "[Fe/H] predicted for 20 of 20 stars" in captured.err


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits"])
def test_predict_writes_enriched_table(tmp_path, suffix, example_result):
    photometry, periods = example_paths()
    out = tmp_path / f"result{suffix}"
    assert main(["predict", str(photometry), "--periods", str(periods), "-o", str(out)]) == 0
    table = Table.read(out)
    assert list(table["source_id"]) == list(example_result["source_id"])
    np.testing.assert_allclose(table["feh_phot"], example_result["feh_phot"], atol=1e-6)
    assert (np.asarray(table["feh_status"]).astype(str) == "ok").all()
    # Nothing but the result (and a CSV's provenance) is left behind: the write goes
    # through a temporary file.
    expected = {out.name} | ({f"{out.name}.provenance.json"} if suffix == ".csv" else set())
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_example_predictions_track_the_simulated_truth(example_result):
    # The example is simulated with shapes and [Fe/H] drawn jointly from the
    # real data's distribution; the model must see the link between them.
    error = example_result["feh_phot"] - example_result["feh_simulated"]
    assert np.sqrt(np.mean(np.square(error))) < 0.5


def test_single_period_option(tmp_path):
    photometry, periods = example_paths()
    stars = read_rrlyrae_parameters(periods)
    curves = read_epoch_photometry(photometry)
    source_id = int(stars["source_id"][0])
    one = curves[source_id]
    path = tmp_path / "one.ecsv"
    rows = Table.read(photometry)
    rows[rows["source_id"] == source_id].write(path)
    out = tmp_path / "out.ecsv"
    assert main(["predict", str(path), "--period", str(stars["pf"][0]), "-o", str(out)]) == 0
    result = Table.read(out)
    expected = rm.predict_feh(one, stars["pf"][0] * u.day)
    assert result["feh_phot"][0] == pytest.approx(expected.value, abs=1e-6)


def test_unreadable_layout_exits_with_code_1(tmp_path, capsys):
    bad = tmp_path / "bad.ecsv"
    Table({"a": [1, 2], "b": [3, 4]}).write(bad)
    assert main(["predict", str(bad), "--period", "0.5"]) == 1
    assert "rrlyrae-feh: error:" in capsys.readouterr().err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "rrlyrae-feh" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "--periods" in capsys.readouterr().out


def test_models_subcommand(capsys):
    from rrlyrae_metallicity.models import available_models, load_model

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "(default)" in out
    lines = out.splitlines()
    assert len(lines) == len(available_models())
    for name, line in zip(available_models(), lines):
        # The served accuracy: with the output stretch, cross-fitted.
        manifest = load_model(name).manifest
        served = manifest["output_stretch"]["crossfit_out_of_fold"]
        assert line.startswith(name) and f"RMSE {served['rmse']:.3f} dex" in line
        if "components" in manifest:
            assert "weighted mean of 0.5 gru + 0.5 inception" in line
        elif manifest.get("crossfit_members"):
            assert f"1 network distilled from {manifest['training_config']['distilled_from']}" \
                in line
        else:
            assert f"{len(manifest['members'])} members" in line
        # The speed of its networks, measured now.
        speed = re.search(r"; ([\d,]+) stars/s in the network on this machine$", line)
        assert speed and int(speed.group(1).replace(",", "")) > 0


@pytest.mark.parametrize("argv, code, message", [
    (["predict", "--example", "--model", "transformer"], 2, "model must be one of"),
    (["predict", "missing.xml", "--period", "0.5"], 1, "missing.xml: no such file"),
])
def test_errors_are_sentences_with_the_right_exit_code(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("rrlyrae-feh: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option, value, message", [
    ("--period", "-1", "must be a positive number of days, not -1"),
    ("--period", "x", "must be a number of days, not 'x'"),
    ("--chunk-size", "1.5", "must be a whole number of stars, not '1.5'"),
])
def test_bad_option_values_are_usage_errors(option, value, message, capsys):
    photometry, _ = example_paths()
    with pytest.raises(SystemExit) as info:
        main(["predict", str(photometry), option, value])
    assert info.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err
