"""Light curves varied the way real Gaia light curves vary, for training robust students.

The distilled model of the default ensemble ("One model as good as ten") is
trained on copies of every training light curve that a teacher labels: copies
with fewer epochs (down to the sparse end of the training domain), more
photometric noise, an outlier epoch, and another phase zero point. The
pre-processing then runs on each copy as on a user's star, so the student
learns what the package will feed it.
"""

import numpy as np

__all__ = ["SPARSEST_EPOCHS", "vary_lightcurve", "varied_copies"]

#: Fewest epochs of a varied copy: the sparse end of the training domain (21 in
#: the Gaia DR2 training set).
SPARSEST_EPOCHS = 21


def vary_lightcurve(phase, mag, rng, *, min_epochs=SPARSEST_EPOCHS, max_noise=0.03,
                    outlier_rate=0.3, outlier_mag=(0.2, 2.0)):
    """One varied copy of a light curve.

    Parameters
    ----------
    phase, mag : ndarray
        The epochs (cycles, magnitudes).
    rng : numpy.random.Generator
    min_epochs : int
        Fewest epochs kept; the number kept is uniform between this (or all
        epochs, if fewer) and all of them.
    max_noise : float
        Gaussian noise of a standard deviation uniform in ``[0, max_noise]``
        mag is added to every epoch.
    outlier_rate : float
        Probability that one epoch is made an outlier.
    outlier_mag : tuple of float
        Range of the outlier's offset (mag; fainter or brighter at random).

    Returns
    -------
    phase, mag : ndarray
        New arrays; phases shifted by a random zero point, in [0, 1).
    """
    phase, mag = np.asarray(phase, dtype=float), np.asarray(mag, dtype=float)
    n_keep = int(rng.integers(min(min_epochs, phase.size), phase.size + 1))
    keep = np.sort(rng.choice(phase.size, n_keep, replace=False))
    phase, mag = phase[keep], mag[keep].copy()
    mag += rng.normal(0.0, rng.uniform(0.0, max_noise), mag.size)
    if rng.random() < outlier_rate:
        mag[rng.integers(mag.size)] += rng.choice([-1.0, 1.0]) * rng.uniform(*outlier_mag)
    return (phase + rng.random()) % 1.0, mag


def varied_copies(phases, mags, copies, seed, **kwargs):
    """``copies`` varied versions of every light curve, reproducibly.

    Parameters
    ----------
    phases, mags : list of ndarray
        The stars' epochs.
    copies : int
    seed : int
    **kwargs
        Passed to `vary_lightcurve`.

    Returns
    -------
    list of (list of ndarray, list of ndarray)
        For each copy, the phases and magnitudes of every star, in order.
    """
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(copies):
        varied = [vary_lightcurve(p, m, rng, **kwargs) for p, m in zip(phases, mags)]
        result.append(([v[0] for v in varied], [v[1] for v in varied]))
    return result
