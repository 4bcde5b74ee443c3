"""A small labelled training set written as a user would bring one, for the docs and the tests.

The light curves are the package's simulated Gaia-like RRab stars
(`rrlyrae_metallicity.simulate`); the labels are their simulated [Fe/H] put
on another scale (stretched and shifted), as a new spectroscopic calibration
would be. The tables hold only what the documented input format requires:
``stars.ecsv`` (``source_id``, ``period`` in days without a unit, ``feh``)
and ``lightcurves.ecsv`` (``source_id``, ``phase``, ``mag``).
"""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

__all__ = ["EXAMPLE_SCALE", "write_example_training_set"]

#: The example labels: ``stretch * [Fe/H]_simulated + shift`` (dex).
EXAMPLE_SCALE = {"stretch": 1.1, "shift": 0.2}


def write_example_training_set(directory, n_stars=150, n_epochs=30, seed=3):
    """Write ``stars.ecsv`` and ``lightcurves.ecsv`` of ``n_stars`` simulated stars.

    Parameters
    ----------
    directory : path-like
        Created if needed.
    n_stars, n_epochs : int
        Stars, and epochs per star.
    seed : int
        Seed of the simulated stars and their sampling.

    Returns
    -------
    Path
        ``directory``.
    """
    from rrlyrae_metallicity import simulate

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stars = simulate.simulate_stars(n_stars, seed=seed)
    ids, phases, mags = [], [], []
    for i, star in enumerate(stars):
        curve = simulate.simulate_lightcurve(star, n_epochs=n_epochs, rng=seed * 100_000 + i)
        folded = curve.fold(period=star["pf"] * u.day, normalize_phase=True, wrap_phase=1)
        ids.append(np.full(len(curve), star["source_id"]))
        phases.append(np.asarray(folded.time.value) % 1.0)
        mags.append(np.asarray(curve["mag"].value))
    feh = EXAMPLE_SCALE["stretch"] * np.asarray(stars["feh_simulated"]) + EXAMPLE_SCALE["shift"]
    Table({"source_id": stars["source_id"], "period": np.asarray(stars["pf"], dtype=float),
           "feh": feh}).write(directory / "stars.ecsv", overwrite=True)
    Table({"source_id": np.concatenate(ids), "phase": np.concatenate(phases),
           "mag": np.concatenate(mags)}).write(directory / "lightcurves.ecsv", overwrite=True)
    return directory
