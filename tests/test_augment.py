"""Varied copies of light curves for the distilled model (training.augment)."""

import numpy as np
import pytest

augment = pytest.importorskip("training.augment", reason="run the tests from the repository root")


def _curve(n=40, seed=0):
    rng = np.random.default_rng(seed)
    phase = np.sort(rng.random(n))
    return phase, 15.0 + 0.4 * np.sin(2 * np.pi * phase)


def test_a_varied_copy_keeps_a_subset_of_epochs_between_the_sparse_end_and_all():
    phase, mag = _curve()
    rng = np.random.default_rng(1)
    sizes = []
    for _ in range(200):
        new_phase, new_mag = augment.vary_lightcurve(phase, mag, rng, max_noise=0.0,
                                                     outlier_rate=0.0)
        sizes.append(new_phase.size)
        assert new_phase.size == new_mag.size
        assert ((new_phase >= 0) & (new_phase < 1)).all()
        # Same epochs up to one common phase shift: the magnitudes are a subset.
        assert np.isin(new_mag, mag).all()
    assert min(sizes) == augment.SPARSEST_EPOCHS and max(sizes) == 40


def test_noise_and_outliers_are_what_they_say():
    phase, mag = _curve()
    rng = np.random.default_rng(2)
    signs = set()
    for _ in range(300):
        # Every epoch kept (in order), no noise: only the outlier differs.
        _, new_mag = augment.vary_lightcurve(phase, mag, rng, min_epochs=40, max_noise=0.0,
                                             outlier_rate=1.0, outlier_mag=(0.5, 0.6))
        moved = np.flatnonzero(new_mag != mag)
        assert moved.size == 1
        offset = new_mag[moved[0]] - mag[moved[0]]
        assert 0.5 <= abs(offset) <= 0.6
        signs.add(np.sign(offset))
    assert signs == {-1.0, 1.0}
    rng = np.random.default_rng(3)
    _, noisy = augment.vary_lightcurve(phase, mag, rng, min_epochs=40, max_noise=0.05,
                                       outlier_rate=0.0)
    assert 0 < np.std(noisy - mag) < 0.05


def test_copies_are_reproducible():
    phases, mags = zip(*(_curve(seed=s) for s in range(5)))
    first = augment.varied_copies(list(phases), list(mags), 3, seed=7)
    again = augment.varied_copies(list(phases), list(mags), 3, seed=7)
    assert len(first) == 3 and len(first[0][0]) == 5
    for (p1, m1), (p2, m2) in zip(first, again):
        assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
        assert all(np.array_equal(a, b) for a, b in zip(m1, m2))
