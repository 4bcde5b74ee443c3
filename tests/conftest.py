"""Shared pytest configuration: tests that need the Gaia archive run on request."""

import pytest


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
