"""Shared pytest configuration and fixtures.

The tests run against the installed package (tox installs the wheel and runs
them from a folder outside the repository, as astropy's are run). The
repository's ``training/`` module is never installed: its folder is appended
to ``sys.path``, after site-packages, so that ``import training`` works while
``import rrlyrae_metallicity`` still finds the installed copy.

Tests that need the Gaia archive run on request (``--remote-data``); those
that need the real data of ``../shared/data`` skip, with the reason, where it
is absent.
"""

import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
#: The real data sets beside the repository (absent on a user's machine).
SHARED_DATA = REPOSITORY.parent / "shared" / "data"

if (REPOSITORY / "training").is_dir() and str(REPOSITORY) not in sys.path:
    sys.path.append(str(REPOSITORY))


def pytest_addoption(parser):
    try:
        parser.addoption(
            "--remote-data",
            action="store_true",
            default=False,
            help="run the tests marked remote_data (they query the Gaia archive)",
        )
    except ValueError:
        # pytest-remotedata (part of pytest-astropy) already defines it, as
        # --remote-data=none|astropy|any.
        pass


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data") in (True, "any", "astropy"):
        return
    skip = pytest.mark.skip(reason="needs --remote-data (Gaia archive)")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def simulated_stars():
    """Six simulated Gaia-like RRab stars (`rrlyrae_metallicity.simulate`, seed 11)."""
    from rrlyrae_metallicity import simulate

    return simulate.simulate_stars(6, seed=11)


@pytest.fixture(scope="session")
def simulated_curves(simulated_stars):
    """A 50-epoch raw-time `~astropy.timeseries.TimeSeries` of each of `simulated_stars`."""
    from rrlyrae_metallicity import simulate

    return [simulate.simulate_lightcurve(star, n_epochs=50, rng=i)
            for i, star in enumerate(simulated_stars)]


@pytest.fixture(scope="session")
def example_files():
    """Paths of the embedded example: (epoch photometry, vari_rrlyrae), as strings."""
    from rrlyrae_metallicity.cli import example_paths

    return tuple(str(path) for path in example_paths())


@pytest.fixture(scope="session")
def shared_gaia():
    """Folder of the labelled Gaia light curves in ../shared/data; skips where absent."""
    folder = SHARED_DATA / "gaia_dr2_rrab_g"
    if not (folder / "stars.ecsv").exists():
        pytest.skip(f"shared training data not found in {folder}")
    return folder


@pytest.fixture(scope="session")
def simulated_training_set():
    """60 simulated Gaia-like stars, folded, in the layout of the shared training set."""
    return make_simulated_training_set(60)


def make_simulated_training_set(n_stars, seed=5):
    """``n_stars`` simulated Gaia-like stars as a `training.data.Dataset` (30 epochs each)."""
    import numpy as np
    from astropy import units as u
    from astropy.table import Table

    data = pytest.importorskip("training.data", reason="run the tests from the repository root")
    from rrlyrae_metallicity import simulate

    stars = simulate.simulate_stars(n_stars, seed=seed)
    phases, mags = [], []
    for i, star in enumerate(stars):
        curve = simulate.simulate_lightcurve(star, n_epochs=30, rng=i)
        folded = curve.fold(period=star["pf"] * u.day, normalize_phase=True, wrap_phase=1)
        phases.append(np.asarray(folded.time.value) % 1.0)
        mags.append(np.asarray(curve["mag"].value))
    table = Table({"source_id": stars["source_id"], "period": stars["pf"],
                   "feh": stars["feh_simulated"], "feh_dg22": stars["feh_simulated"] + 0.1,
                   "n_epochs": [30] * len(stars)})
    return data.Dataset(stars=table, phases=phases, mags=mags)
