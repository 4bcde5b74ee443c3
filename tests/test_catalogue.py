"""Chunked, resumable catalogue processing: `predict_catalogue` and ``rrlyrae-feh --resume``."""

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table, vstack

from rrlyrae_metallicity import add_feh, simulate
from rrlyrae_metallicity.catalogue import ResumeError, predict_catalogue
from rrlyrae_metallicity.cli import main
from rrlyrae_metallicity.exceptions import InputFormatError, RRLyraeMetallicityWarning
from rrlyrae_metallicity.gaia import iter_epoch_photometry, read_epoch_photometry

try:
    import pyarrow  # noqa: F401  (Parquet: the dask extra)
    HAS_PYARROW = True
except ImportError:
    HAS_PYARROW = False

N_STARS = 40
NO_PHOTOMETRY = 2000000000000000009
FEH_COLUMNS = ("feh_phot", "feh_phot_std", "feh_status", "feh_domain")


def _catalogue(n_stars, seed):
    """Simulated periods table and long-layout photometry with a few bad stars."""
    stars = simulate.simulate_stars(n_stars, seed=seed, n_epochs_range=(20, 35))
    photometry = simulate.simulate_epoch_photometry(stars, seed=seed, bp_rp_fraction=0.2)
    # Star 1: every G transit rejected; star 2: only 5 epochs; star 3: negative period.
    sid = np.asarray(photometry["source_id"])
    is_g = np.asarray(photometry["band"]) == "G"
    photometry["rejected_by_photometry"][(sid == stars["source_id"][1]) & is_g] = True
    few = np.flatnonzero((sid == stars["source_id"][2]) & is_g)[5:]
    photometry.remove_rows(few)
    stars["pf"][3] = -0.5
    return stars, photometry


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalogue")
    stars, photometry = _catalogue(N_STARS, seed=11)
    paths = {}
    for suffix, fmt in ((".csv", "ascii.csv"), (".ecsv", "ascii.ecsv"),
                        (".parquet", "parquet"), (".fits", "fits")):
        if fmt == "parquet" and not HAS_PYARROW:
            continue
        paths[suffix] = directory / f"epoch_photometry{suffix}"
        with warnings.catch_warnings():
            # FITS: HIERARCH cards for long keywords and no native e-/s unit; both harmless.
            warnings.simplefilter("ignore")
            photometry.write(paths[suffix], format=fmt)
    # The star table: shuffled, with a star without photometry and a repeated row.
    rng = np.random.default_rng(5)
    table = vstack([stars[rng.permutation(len(stars))], stars[:1]])
    extra = stars[:1].copy()
    extra["source_id"] = NO_PHOTOMETRY
    table = vstack([table[:10], extra, table[10:]])
    table = table["source_id", "pf", "epoch_g"]
    table_path = directory / "vari_rrlyrae.ecsv"
    table.write(table_path)
    expected = add_feh(table, read_epoch_photometry(paths[".ecsv"]))
    return {"paths": paths, "stars": table, "stars_path": table_path, "expected": expected,
            "photometry": photometry}


def _assert_same(result, expected):
    assert result.colnames == expected.colnames
    assert list(result["source_id"]) == list(expected["source_id"])
    for name in ("feh_status", "feh_domain"):
        # ECSV reads an empty string back as a masked value.
        assert list(np.ma.filled(result[name], "").astype(str)) == list(expected[name])
    for name in ("feh_phot", "feh_phot_std"):
        got, want = np.asarray(result[name], float), np.asarray(expected[name], float)
        assert np.array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_bad_stars_keep_their_status(catalogue):
    status = dict(zip(catalogue["expected"]["source_id"], catalogue["expected"]["feh_status"]))
    stars = simulate.simulate_stars(N_STARS, seed=11, n_epochs_range=(20, 35))
    assert status[stars["source_id"][1]] == "too_few_epochs"
    assert status[stars["source_id"][2]] == "too_few_epochs"
    assert status[stars["source_id"][3]] == "invalid_period"
    assert status[NO_PHOTOMETRY] == "no_lightcurve"
    assert sum(s == "ok" for s in status.values()) == N_STARS - 3


@pytest.mark.parametrize("suffix, chunk_size", [(".csv", 1), (".csv", 1000), (".ecsv", 7),
                                               (".parquet", 7), (".fits", 7)])
def test_chunks_give_the_same_table_as_add_feh(catalogue, suffix, chunk_size):
    if suffix == ".parquet" and not HAS_PYARROW:
        pytest.skip("Parquet needs pyarrow (the dask extra)")
    # Tiny blocks: sources straddle the blocks read from the file.
    result = predict_catalogue(catalogue["paths"][suffix], catalogue["stars"],
                               chunk_size=chunk_size, block_rows=13)
    _assert_same(result, catalogue["expected"])
    assert result.meta["feh_model"] == catalogue["expected"].meta["feh_model"]


def test_iter_epoch_photometry_matches_the_whole_file_reader(catalogue):
    whole = read_epoch_photometry(catalogue["paths"][".csv"])
    chunks = list(iter_epoch_photometry(catalogue["paths"][".csv"], chunk_size=6, block_rows=17))
    assert [len(c) for c in chunks] == [6] * (N_STARS // 6) + [N_STARS % 6]
    merged = {sid: ts for chunk in chunks for sid, ts in chunk.items()}
    assert list(merged) == list(whole)
    for sid, ts in whole.items():
        assert np.array_equal(merged[sid]["mag"], ts["mag"])
        assert np.array_equal(merged[sid].time.jd2, ts.time.jd2)


def test_single_period_keeps_file_order(catalogue):
    result = predict_catalogue(catalogue["paths"][".fits"], period=0.55 * u.day,
                               chunk_size=4, block_rows=29)
    curves = read_epoch_photometry(catalogue["paths"][".fits"])
    assert list(result["source_id"]) == list(curves)
    ids = list(curves)[5:8]
    expected = add_feh(Table({"source_id": ids, "pf": [0.55] * 3 * u.day}),
                       {i: curves[i] for i in ids})
    np.testing.assert_allclose(result["feh_phot"][5:8], expected["feh_phot"], atol=1e-6)


def test_rows_of_a_source_must_be_together(tmp_path, catalogue):
    photometry = catalogue["photometry"]
    first = photometry["source_id"][0]
    rows = np.asarray(photometry["source_id"]) == first
    # Move the last transit of the first source to the end of the file.
    order = np.concatenate([np.flatnonzero(~rows | (np.cumsum(rows) < rows.sum())),
                            np.flatnonzero(rows)[-1:]])
    path = tmp_path / "split.csv"
    photometry[order].write(path)
    with pytest.raises(InputFormatError, match=f"rows of source {first} are not together"):
        predict_catalogue(path, period=0.5, block_rows=50)


def test_resume_reuses_finished_chunks(tmp_path, catalogue):
    out = tmp_path / "out.ecsv"
    messages = []

    def stop_after_three_chunks(message):
        messages.append(message)
        if len(messages) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(catalogue["paths"][".csv"], catalogue["stars"], output=out,
                          chunk_size=5, log=stop_after_three_chunks)
    assert not out.exists()
    parts = sorted((tmp_path / "out.ecsv.parts").glob("chunk-*.npz"))
    assert [p.name for p in parts] == [f"chunk-{i:06d}.npz" for i in range(3)]
    messages.clear()
    result = predict_catalogue(catalogue["paths"][".csv"], catalogue["stars"], output=out,
                               chunk_size=5, resume=True, log=messages.append)
    assert sum("reused" in m and m.startswith("chunk") for m in messages) == 3
    assert f"{N_STARS // 5 - 3} chunks predicted, 3 reused" in messages[-1]
    _assert_same(result, catalogue["expected"])
    _assert_same(Table.read(out), catalogue["expected"])
    assert not (tmp_path / "out.ecsv.parts").exists()


def test_resume_with_other_options_is_refused(tmp_path, catalogue, capsys):
    out = tmp_path / "out.ecsv"
    args = ["predict", str(catalogue["paths"][".csv"]), "--periods",
            str(catalogue["stars_path"]), "-o", str(out), "--chunk-size", "5"]
    with pytest.raises(KeyboardInterrupt):
        predict_catalogue(catalogue["paths"][".csv"], catalogue["stars"], output=out,
                          chunk_size=5, log=_raise(KeyboardInterrupt))
    assert main(args[:-1] + ["6", "--resume"]) == 3
    assert "different: chunk_size" in capsys.readouterr().err
    with pytest.raises(ResumeError):
        predict_catalogue(catalogue["paths"][".csv"], period=0.5, output=out, chunk_size=5,
                          resume=True)
    # Without --resume the run starts over and succeeds.
    assert main(args) == 0
    assert "starting over" in capsys.readouterr().err


def _raise(error):
    def log(message):
        raise error
    return log


def test_resume_needs_an_output(catalogue, capsys):
    assert main(["predict", str(catalogue["paths"][".csv"]), "--period", "0.5", "--resume"]) == 2
    assert "--resume needs -o" in capsys.readouterr().err


def _cli(*args):
    return [sys.executable, "-m", "rrlyrae_metallicity.cli", "predict", *map(str, args)]


def test_killed_run_resumes_without_recomputing(tmp_path):
    """SIGKILL the CLI after a few chunks; --resume predicts only the rest."""
    stars, photometry = _catalogue(300, seed=12)
    photometry_path, stars_path = tmp_path / "photometry.csv", tmp_path / "stars.ecsv"
    photometry.write(photometry_path)
    stars["source_id", "pf", "epoch_g"].write(stars_path)
    out = tmp_path / "out.fits"
    parts = tmp_path / "out.fits.parts"
    args = (photometry_path, "--periods", stars_path, "-o", out, "--chunk-size", 5)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(_cli(*args), env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(parts.glob("chunk-*.npz"))) < 3:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.npz")}
    assert not out.exists() and 3 <= len(done) < 60

    resumed = subprocess.run(_cli(*args, "--resume"), env=env, capture_output=True, text=True,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("done by an earlier run, reused") == len(done)
    assert resumed.stderr.count("sources done in") + resumed.stderr.count("source done in") == \
        60 - len(done)
    assert f"{60 - len(done)} chunks predicted, {len(done)} reused" in resumed.stderr
    after_resume = Table.read(out)

    fresh_out = tmp_path / "fresh.fits"
    fresh = subprocess.run(_cli(photometry_path, "--periods", stars_path, "-o", fresh_out,
                                "--chunk-size", 5), env=env, capture_output=True, text=True,
                           check=False)
    assert fresh.returncode == 0, fresh.stderr
    uninterrupted = Table.read(fresh_out)
    assert list(after_resume["source_id"]) == list(stars["source_id"])
    for name in FEH_COLUMNS:
        a, b = np.asarray(after_resume[name]), np.asarray(uninterrupted[name])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
        else:
            assert list(a) == list(b)
    assert not parts.exists()


def test_sources_missing_from_the_star_table_are_skipped(catalogue):
    # Chunks of 4 sources, most of them with no row in the star table.
    stars = catalogue["stars"][15:20]
    result = predict_catalogue(catalogue["paths"][".csv"], stars, chunk_size=4)
    with pytest.warns(RRLyraeMetallicityWarning, match="light curves have no row in the table"):
        expected = add_feh(stars, read_epoch_photometry(catalogue["paths"][".csv"]))
    _assert_same(result, expected)
