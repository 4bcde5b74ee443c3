"""Tests of the linear stretch of predictions about their median."""

import numpy as np
import pytest

from rrlyrae_metallicity.stretch import apply_stretch, crossfit_stretch, fit_stretch


def _shrunk_predictions(n=4000, seed=0):
    """Labels crowded at -1.4 dex, predictions pulled 10 % towards the centre."""
    rng = np.random.default_rng(seed)
    feh = np.concatenate([rng.normal(-1.4, 0.25, n - n // 5), rng.uniform(-2.6, -0.2, n // 5)])
    pred = -1.4 + (feh + 1.4) / 1.1 + rng.normal(0, 0.1, n)
    counts, edges = np.histogram(feh, bins=20)
    weights = 1.0 / counts[np.clip(np.digitize(feh, edges) - 1, 0, 19)]
    return feh, pred, weights


def test_no_stretch_leaves_predictions_alone():
    np.testing.assert_array_equal(apply_stretch([-1.0, -2.0], None), [-1.0, -2.0])


def test_stretch_is_linear_so_the_mean_of_members_commutes():
    stretch = {"centre_dex": -1.5, "factor": 1.2}
    members = np.array([[-1.0, -2.0], [-1.2, -1.8]])
    np.testing.assert_allclose(apply_stretch(members, stretch).mean(axis=0),
                               apply_stretch(members.mean(axis=0), stretch))
    np.testing.assert_allclose(apply_stretch([-1.5, -1.0], stretch), [-1.5, -0.9])


def test_fit_undoes_a_pull_towards_the_centre_and_helps_the_weighted_error():
    feh, pred, weights = _shrunk_predictions()
    stretch = fit_stretch(feh, pred, weights)
    assert stretch["centre_dex"] == pytest.approx(np.median(pred))
    assert 1.02 < stretch["factor"] < 1.15

    def wmse(p):
        return np.sum(weights * (p - feh) ** 2) / weights.sum()

    assert wmse(apply_stretch(pred, stretch)) < wmse(pred)


def test_no_pull_gives_a_factor_near_one():
    rng = np.random.default_rng(1)
    feh = rng.normal(-1.4, 0.4, 4000)
    pred = feh + rng.normal(0, 0.01, feh.size)
    assert fit_stretch(feh, pred, np.ones_like(feh))["factor"] == pytest.approx(1.0, abs=0.01)


def test_crossfit_stretches_each_fold_with_the_others_fit():
    feh, pred, weights = _shrunk_predictions()
    folds = np.arange(feh.size) % 4
    stretched, factors = crossfit_stretch(feh, pred, weights, folds)
    assert len(factors) == 4
    for k, factor in enumerate(factors):
        others = folds != k
        expected = fit_stretch(feh[others], pred[others], weights[others])
        assert factor == expected["factor"]
        np.testing.assert_allclose(stretched[~others], apply_stretch(pred[~others], expected))
