"""Tests of the calibrated uncertainty model."""

import numpy as np
import pytest

from rrlyrae_metallicity.uncertainty import (
    component_spread,
    COVERAGE,
    calibrated_std,
    coverage,
    fit_calibration,
    within_fold_spread,
)


def test_within_fold_spread_ignores_differences_between_folds():
    # Two folds whose members disagree by 1 dex between folds but 0.1 dex within.
    predictions = np.array([[0.0, 0.0], [0.1, 0.1], [1.0, 1.0], [1.1, 1.1]])
    folds = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(within_fold_spread(predictions, folds),
                               np.std([0.0, 0.1], ddof=1))
    # A fold with a single member carries no spread information.
    np.testing.assert_allclose(within_fold_spread(predictions[:3], folds[:3]),
                               np.std([0.0, 0.1], ddof=1))
    assert np.all(within_fold_spread(predictions[[0, 2]], [0, 1]) == 0)


def test_component_spread_is_the_disagreement_of_single_folds():
    # Out of fold: one fold per component; two equal weights give |a - b| / 2.
    gru, inception = np.array([-1.0, -2.0]), np.array([-1.4, -2.0])
    np.testing.assert_allclose(component_spread([gru[None], inception[None]], [0.5, 0.5]),
                               [0.2, 0.0])
    # At prediction time the fold-to-fold scatter of each component adds in
    # quadrature to the disagreement of the component means.
    gru_folds = np.array([[-0.9], [-1.1]])
    inception_folds = np.array([[-1.4], [-1.4], [-1.4]])
    expected = np.sqrt(0.5 * (0.2**2 + 0.1**2) + 0.5 * 0.2**2)
    np.testing.assert_allclose(component_spread([gru_folds, inception_folds], [0.5, 0.5]),
                               [expected])
    # Unequal weights move the centre towards the heavier component.
    np.testing.assert_allclose(component_spread([[[0.0]], [[1.0]]], [0.75, 0.25]),
                               [np.sqrt(0.75 * 0.25**2 + 0.25 * 0.75**2)])


def test_fit_recovers_a_gaussian_floor_and_covers_68_percent():
    rng = np.random.default_rng(3)
    spread = rng.uniform(0.0, 0.1, 20000)
    errors = rng.normal(0.0, np.hypot(0.15, spread))
    fitted = fit_calibration(errors, spread)
    assert fitted["floor_dex"] == pytest.approx(0.15, rel=0.03)
    assert fitted["scale"] == pytest.approx(1.0, abs=0.03)
    std = calibrated_std(spread, fitted)
    assert coverage(errors, std) == pytest.approx(COVERAGE, abs=0.002)
    assert coverage(errors, std, 2.0) == pytest.approx(0.954, abs=0.01)


def test_heavy_tails_are_covered_by_the_scale():
    rng = np.random.default_rng(4)
    errors = rng.laplace(0.0, 0.1, 20000)
    spread = np.zeros_like(errors)
    std = calibrated_std(spread, fit_calibration(errors, spread))
    # A Gaussian fit alone would cover about 76 % of Laplace errors.
    assert coverage(errors, std) == pytest.approx(COVERAGE, abs=0.002)


def test_uncalibrated_models_report_the_spread():
    np.testing.assert_array_equal(calibrated_std([0.1, 0.2], None), [0.1, 0.2])


def test_error_model_recovers_a_heteroscedastic_error_and_covers_68_percent():
    fit_error_model = pytest.importorskip("training.calibration").fit_error_model
    from rrlyrae_metallicity.uncertainty import ERROR_MODEL_FEATURES, error_model_std

    rng = np.random.default_rng(2)
    n = 3000
    features = {name: rng.normal(0, 1, n) for name in ERROR_MODEL_FEATURES}
    true_std = 0.15 * np.exp(0.4 * features["phase_gap"] - 0.3 * features["log_epochs"])
    errors = rng.normal(0, true_std)
    folds = np.arange(n) % 5
    model, crossfit = fit_error_model(errors, features, folds)
    assert np.corrcoef(np.log(crossfit), np.log(true_std))[0, 1] > 0.95
    assert model["crossfit"]["coverage_1std"] == pytest.approx(0.683, abs=0.02)
    ratios = model["crossfit"]["rmse_over_rms_std_by_fifth"]
    assert all(0.9 < r < 1.1 for r in ratios)
    assert np.median(np.abs(error_model_std(features, model) / true_std - 1.0)) < 0.05
