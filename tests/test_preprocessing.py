"""Unit tests of the shared pre-processing, on simulated light curves."""

import numpy as np
import pytest

from rrlyrae_metallicity.exceptions import LightCurveError
from rrlyrae_metallicity.preprocessing import (
    MIN_EPOCHS,
    PAD_VALUE,
    PreprocessingConfig,
    fold_times,
    model_input,
    prepare_batch,
    prepare_inputs,
    smooth_lightcurve,
)
from rrlyrae_metallicity.smoothing import screen_epochs


def rrab_shape(phase):
    """A sawtooth-like RRab light curve with maximum light at phase 0.1."""
    x = 2 * np.pi * (phase - 0.1)
    return 15.0 - 0.4 * np.cos(x) - 0.15 * np.cos(2 * x) - 0.07 * np.cos(3 * x) + 0.25


@pytest.fixture
def epochs():
    rng = np.random.default_rng(42)
    phase = rng.uniform(0, 1, 45)
    mag = rrab_shape(phase) + rng.normal(0, 0.01, phase.size)
    return phase, mag


def test_fold_times_matches_definition():
    period, epoch = 0.5123, 2457000.123
    time = epoch + np.array([0.0, 0.25, 10 * period + 0.1, -0.3])
    phase = fold_times(time, period, epoch)
    expected = np.mod((time - epoch) / period, 1.0)
    np.testing.assert_allclose(phase, expected, atol=1e-9)
    assert np.all((phase >= 0) & (phase < 1))


def test_fold_times_keeps_precision_far_from_epoch():
    period = 0.5
    time = 2.4e6 + np.array([0.125, 0.375])
    np.testing.assert_allclose(fold_times(time, period), [0.25, 0.75], atol=1e-9)


def test_smoothing_aligns_maximum_at_phase_zero(epochs):
    phase, mag = epochs
    curve = smooth_lightcurve(phase, mag, 80)
    # Maximum light of the model curve is at 0.1 (+ the small shift from harmonics).
    grid = np.linspace(0, 1, 10001)
    true_max = grid[np.argmin(rrab_shape(grid))]
    assert abs(curve.phase_of_maximum - true_max) < 0.02
    assert np.argmin(curve.grid_mag) in (0, 1, 79)
    assert curve.grid_mag.shape == (80,)
    np.testing.assert_allclose(curve.amplitude, np.ptp(rrab_shape(grid)), atol=0.05)


def test_alignment_independent_of_phase_zero_point(epochs):
    phase, mag = epochs
    a = smooth_lightcurve(phase, mag, 80)
    b = smooth_lightcurve(phase + 0.3712, mag, 80)
    np.testing.assert_allclose(a.grid_mag, b.grid_mag, atol=1e-6)
    assert a.mean_mag == pytest.approx(b.mean_mag, abs=1e-7)
    offset = (b.phase_of_maximum - a.phase_of_maximum - 0.3712 + 0.5) % 1.0 - 0.5
    assert offset == pytest.approx(0, abs=1e-7)


def test_duplicate_and_near_duplicate_phases_are_merged(epochs):
    phase, mag = epochs
    # Near-duplicate pairs with different magnitudes used to make GCV choose a
    # straight line; the curve must keep its amplitude.
    phase2 = np.concatenate([phase, phase[:10] + 1e-4, phase[:5]])
    mag2 = np.concatenate([mag, mag[:10] + 0.02, mag[:5]])
    curve = smooth_lightcurve(phase2, mag2, 80)
    clean = smooth_lightcurve(phase, mag, 80)
    assert curve.phase.size == clean.phase.size
    assert curve.amplitude > 0.8 * clean.amplitude


def test_wrap_at_phase_one_is_continuous(epochs):
    phase, mag = epochs
    curve = smooth_lightcurve(phase, mag, 200)
    # The step across the wrap is as small as the steps inside the curve.
    steps = np.abs(np.diff(np.concatenate([curve.grid_mag, curve.grid_mag[:1]])))
    assert steps[-1] < 3 * np.median(steps) + 0.02


def test_sentinels_and_nan_are_dropped(epochs):
    phase, mag = epochs
    bad_phase = np.concatenate([phase, [0.5, 0.6, 0.7]])
    bad_mag = np.concatenate([mag, [np.nan, 99.999, np.inf]])
    a = smooth_lightcurve(bad_phase, bad_mag, 80)
    b = smooth_lightcurve(phase, mag, 80)
    np.testing.assert_allclose(a.grid_mag, b.grid_mag)


def test_too_few_epochs_raises_with_status():
    phase = np.linspace(0, 1, MIN_EPOCHS - 1, endpoint=False)
    with pytest.raises(LightCurveError, match="usable epochs") as info:
        smooth_lightcurve(phase, rrab_shape(phase), 80, star=123)
    assert info.value.status == "too_few_epochs"
    assert "star 123" in str(info.value)


@pytest.mark.parametrize("variant", ["spline_centered", "spline", "raw"])
def test_model_input_variants(epochs, variant):
    phase, mag = epochs
    config = PreprocessingConfig(n_phases=64, variant=variant, max_epochs=60)
    curve = smooth_lightcurve(phase, mag, config.n_phases)
    x = model_input(curve, 0.6, config)
    assert x.dtype == np.float32
    assert x.shape == (config.sequence_length, 2)
    if variant == "raw":
        n = curve.phase.size
        assert np.all(x[n:] == PAD_VALUE)
        np.testing.assert_allclose(x[:n, 1], curve.phase * 0.6, rtol=1e-6)
    else:
        # Equation 3 of the paper: channel 2 is phase * P on the regular grid.
        np.testing.assert_allclose(x[:, 1], np.arange(64) / 64 * 0.6, rtol=1e-6)
        if variant == "spline_centered":
            assert abs(x[:, 0].mean()) < 1e-3
        else:
            assert x[:, 0].mean() == pytest.approx(curve.mean_mag, abs=1e-3)


def test_prepare_inputs_reports_per_star_errors(epochs):
    phase, mag = epochs
    config = PreprocessingConfig()
    inputs, smoothed, errors = prepare_inputs(
        [phase, phase[:5], phase], [mag, mag[:5], mag], [0.6, 0.6, -1.0], config,
        stars=["a", "b", "c"],
    )
    assert inputs.shape == (3, config.n_phases, 2)
    assert errors[0] is None and smoothed[0] is not None
    assert errors[1].status == "too_few_epochs" and "star b" in str(errors[1])
    assert errors[2].status == "invalid_period"
    assert np.all(inputs[1:] == 0)


def test_config_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        PreprocessingConfig(variant="fourier")


@pytest.mark.parametrize("period, message", [(0.0, "positive finite"), (-0.5, "positive finite"),
                                             (np.nan, "no period"), (np.inf, "positive finite")])
def test_fold_times_rejects_bad_periods(period, message):
    with pytest.raises(LightCurveError, match=message) as info:
        fold_times([1.0, 2.0], period, star=7)
    assert info.value.status == "invalid_period" and "star 7" in str(info.value)


# The vectorised ("batch") smoother against the per-star scipy reference.

def _noisy_curves(n_stars, seed=0, n_epochs=(20, 90)):
    rng = np.random.default_rng(seed)
    phases, mags = [], []
    for _ in range(n_stars):
        phase = rng.uniform(0, 1, rng.integers(*n_epochs))
        shift, amp = rng.uniform(0, 1), rng.uniform(0.5, 1.5)
        mags.append(15 + amp * (rrab_shape(phase - shift) - 15) + rng.normal(0, 0.02, phase.size))
        phases.append(phase)
    return phases, mags


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_smoother_reproduces_the_scipy_reference(seed):
    phases, mags = _noisy_curves(12, seed)
    for phase, mag in zip(phases, mags):
        fast = smooth_lightcurve(phase, mag, 80, smoother="batch")
        ref = smooth_lightcurve(phase, mag, 80, smoother="scipy_gcv")
        offset = (fast.phase_of_maximum - ref.phase_of_maximum + 0.5) % 1.0 - 0.5
        assert abs(offset) < 0.01
        assert fast.mean_mag == pytest.approx(ref.mean_mag, abs=0.01)
        rms = np.sqrt(np.mean((fast.grid_mag - ref.grid_mag) ** 2))
        assert rms < 0.02, rms
        np.testing.assert_allclose(fast.phase, np.sort(fast.phase))


def test_batch_smoother_penalty_search_is_scipys_bounded_brent():
    from scipy.optimize import minimize_scalar

    from rrlyrae_metallicity.smoothing import bounded_brent

    centres = np.array([1e-6, 3e-4, 0.2, 2.9, 7.0])
    upper = np.array([10.0, 30.0, 50.0, 3.0, 8.0])

    def func(x):
        return np.log1p((x - centres) ** 2 * 1e6) + np.sin(40 * x) * 1e-3

    mine = bounded_brent(func, upper)
    for i in range(centres.size):
        ref = minimize_scalar(lambda x: func(np.full(centres.size, x))[i],
                              bounds=(0, upper[i]), method="bounded")
        assert mine[i] == ref.x
        # One star at a time (the scalar path of single-star calls): the same steps.
        alone = bounded_brent(lambda x, i=i: func(np.full(centres.size, x[0]))[i:i + 1],
                              upper[i:i + 1])
        assert alone.shape == (1,) and alone[0] == mine[i]


def test_batch_smoother_is_independent_of_the_other_stars_and_padding():
    phases, mags = _noisy_curves(30, seed=5, n_epochs=(20, 300))
    periods = np.full(30, 0.55)
    config = PreprocessingConfig()
    together, _, _ = prepare_inputs(phases, mags, periods, config)
    for i in (0, 7, 29):
        alone, _, _ = prepare_inputs(phases[i:i + 1], mags[i:i + 1], periods[i:i + 1], config)
        np.testing.assert_allclose(alone[0], together[i], atol=1e-6)


def test_batch_smoother_fits_sparse_curves_in_the_smaller_epoch_space():
    # Fewer epochs than basis columns (most Gaia curves) are decomposed through
    # the epochs x epochs Gram matrix; padding a star past the column count
    # sends it through the columns x columns one. Both must give the same fit.
    from rrlyrae_metallicity.smoothing import BATCH_HARMONICS, smooth_chunk

    phases, mags = _noisy_curves(4, seed=8, n_epochs=(20, 40))
    epochs = [(p, m, np.ones_like(p)) for p, m in zip(phases, mags)]
    small = smooth_chunk(epochs, 80)
    padding = np.zeros(2 * BATCH_HARMONICS + 5)
    wide = [(np.append(p, padding), np.append(m, padding), np.append(w, padding))
            for p, m, w in epochs]
    large = smooth_chunk(wide, 80)
    for a, b in zip(small, large):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)


def test_batch_smoother_exact_invariances(epochs):
    phase, mag = epochs
    a = smooth_lightcurve(phase, mag, 80)
    b = smooth_lightcurve(phase + 0.3712, mag + 3.0, 80)
    np.testing.assert_allclose(b.grid_mag - b.mean_mag, a.grid_mag - a.mean_mag, atol=1e-9)
    assert b.mean_mag - a.mean_mag == pytest.approx(3.0, abs=1e-9)


def test_batch_and_reference_report_the_same_statuses(epochs):
    phase, mag = epochs
    bad = [phase, phase[:MIN_EPOCHS - 1], phase, np.full(30, np.nan), phase]
    bad_mags = [mag, mag[:MIN_EPOCHS - 1], mag, np.zeros(30), mag]
    periods = [0.6, 0.6, 0.0, 0.6, 0.6]
    statuses = {}
    for smoother in ("batch", "scipy_gcv"):
        inputs, smoothed, errors = prepare_inputs(
            bad, bad_mags, periods, PreprocessingConfig(smoother=smoother))
        statuses[smoother] = [None if e is None else e.status for e in errors]
        assert np.all(inputs[1:4] == 0) and smoothed[1] is None
        np.testing.assert_array_equal(inputs[0], inputs[4])
    assert statuses["batch"] == statuses["scipy_gcv"] == [
        None, "too_few_epochs", "invalid_period", "too_few_epochs", None]


def test_config_rejects_unknown_smoother():
    with pytest.raises(ValueError, match="smoother must be one of"):
        PreprocessingConfig(smoother="lowess")
    with pytest.raises(ValueError, match="smoother must be one of"):
        smooth_lightcurve(np.linspace(0, 1, 30), np.ones(30), 80, smoother="lowess")


# --------------------------------------------------------------------------
# Outlier rejection (PreprocessingConfig.outlier_threshold)
# --------------------------------------------------------------------------


def test_an_outlier_epoch_is_rejected_and_the_fit_returns_to_the_clean_one():
    rng = np.random.default_rng(3)
    # Epochs apart in phase, so that no two are merged before the fit.
    phases = [(np.arange(n) + rng.uniform(0.2, 0.8, n)) / n for n in rng.integers(25, 60, 12)]
    mags = [15 + a * (rrab_shape(p - s) - 15) + rng.normal(0, 0.02, p.size)
            for p, a, s in zip(phases, rng.uniform(0.5, 1.5, 12), rng.uniform(0, 1, 12))]
    robust = PreprocessingConfig(outlier_threshold=8.0)
    clean_inputs, clean_curves, _ = prepare_inputs(phases, mags, np.full(12, 0.6), robust)
    assert all(c.n_rejected == 0 for c in clean_curves)  # nothing to reject in clean curves
    bad = [m.copy() for m in mags]
    for m in bad:
        m[len(m) // 2] += 1.5  # one epoch 1.5 mag too faint
    inputs, curves, _ = prepare_inputs(phases, bad, np.full(12, 0.6), robust)
    assert [c.n_rejected for c in curves] == [1] * 12
    for curve, clean, m in zip(curves, clean_curves, bad):
        assert curve.rejected_mag[0] == m[len(m) // 2]
        assert curve.phase.size == clean.phase.size - 1
    # The same inputs as the curves without that epoch, close to the clean ones...
    without = [np.delete(p, len(p) // 2) for p in phases]
    expected, _, _ = prepare_inputs(without, [np.delete(m, len(m) // 2) for m in mags],
                                    np.full(12, 0.6), robust)
    np.testing.assert_allclose(inputs, expected, atol=1e-6)
    assert np.abs(inputs - clean_inputs).max() < 0.02
    # ... while without rejection the outlier drags the smooth curve.
    plain, _, _ = prepare_inputs(phases, bad, np.full(12, 0.6), PreprocessingConfig())
    assert np.abs(plain - clean_inputs).max() > 0.05


def test_rejection_never_leaves_fewer_than_min_epochs():
    phase = np.linspace(0, 1, MIN_EPOCHS + 1, endpoint=False)
    mag = rrab_shape(phase)
    mag[[2, 7, 11]] += [1.0, -1.0, 1.5]
    _, (curve,), _ = prepare_inputs([phase], [mag], [0.6],
                                    PreprocessingConfig(outlier_threshold=5.0))
    assert curve.phase.size >= MIN_EPOCHS and curve.n_rejected == 1


def test_outlier_threshold_round_trips_and_stays_out_of_old_manifests():
    assert "outlier_threshold" not in PreprocessingConfig().to_dict()
    config = PreprocessingConfig(outlier_threshold=8.0)
    assert PreprocessingConfig(**config.to_dict()) == config
    with pytest.raises(ValueError, match="outlier_threshold"):
        PreprocessingConfig(outlier_threshold=0.0)


def test_an_epoch_alone_on_the_rise_is_not_rejected_while_the_same_miss_elsewhere_is():
    # 30 epochs spread over the cycle but none on the steep rise (phase 0.9-1.1)
    # except one: the others cannot say where the rise is, so that epoch lying
    # off their curve is no evidence against it (its leverage h0 is large).
    rng = np.random.default_rng(5)
    phase = np.sort(np.concatenate([rng.uniform(0.12, 0.88, 29), [0.97]]))
    mag = rrab_shape(phase) + rng.normal(0, 0.01, phase.size)
    screen = screen_epochs([(phase, mag, np.ones_like(phase))], 12.0, min_epochs=MIN_EPOCHS)
    assert screen.rejected[0][0].size == 0
    # The same star with one epoch among the well-sampled ones 0.3 mag off.
    bad = mag.copy()
    middle = int(np.argmin(np.abs(phase - 0.5)))
    bad[middle] += 0.3
    screen = screen_epochs([(phase, bad, np.ones_like(phase))], 12.0, min_epochs=MIN_EPOCHS)
    np.testing.assert_array_equal(screen.rejected[0][1], [bad[middle]])


def test_a_bad_epoch_merged_with_a_close_neighbour_is_rejected_alone():
    # 30 epochs, two of them 5e-4 cycle apart (merged into one of weight 2):
    # one of the pair 1 mag off. Averaged, it would be half as far off and
    # drag the fit towards it; judged alone, it is rejected and its good
    # neighbour stays.
    from rrlyrae_metallicity.preprocessing import _clean_epochs_and_members

    rng = np.random.default_rng(3)
    phase = (np.arange(29) + rng.uniform(0.2, 0.8, 29)) / 29
    phase = np.insert(phase, 10, phase[10] + 5e-4)
    mag = rrab_shape(phase) + rng.normal(0, 0.01, phase.size)
    bad = mag.copy()
    bad[11] += 1.0
    epochs, members = _clean_epochs_and_members(phase, bad)
    assert epochs[0].size == 29 and epochs[2].max() == 2
    screen = screen_epochs([epochs], 16.0, min_epochs=MIN_EPOCHS, members=[members])
    np.testing.assert_array_equal(screen.rejected[0][1], [bad[11]])
    kept_phase, kept_mag, kept_weight = screen.kept[0]
    assert kept_phase.size == 29 and np.all(kept_weight == 1)
    np.testing.assert_allclose(kept_mag[np.argmin(np.abs(kept_phase - phase[10]))], mag[10])
    # Judged only as the pair's mean, the good neighbour goes with it.
    whole = screen_epochs([epochs], 16.0, min_epochs=MIN_EPOCHS)
    np.testing.assert_allclose(whole.rejected[0][1], [(bad[10] + bad[11]) / 2])
    # The members round-trip: merging them again gives the cleaned epochs.
    from rrlyrae_metallicity.smoothing import merge_groups

    merged, _ = merge_groups(*members)
    for a, b in zip(merged, epochs):
        np.testing.assert_array_equal(a, b)


def test_leverage_of_a_new_epoch_is_that_of_the_fit_as_a_linear_smoother():
    # Against (A^T A + lam I)^-1 solved directly, with fewer epochs than the
    # Fourier columns (the thin eigendecomposition) and with more.
    from rrlyrae_metallicity import smoothing

    rng = np.random.default_rng(0)
    for n in (30, 70):
        phase = np.sort(rng.uniform(0, 1, n))[None]
        weight = np.ones_like(phase)
        weight[0, 3] = 2.0
        mag = rrab_shape(phase) + rng.normal(0, 0.01, phase.shape)
        problem, penalty, _ = smoothing._fit(phase, mag, weight)
        new = np.array([0.123])
        k, scale = smoothing._harmonics()

        def basis(x):
            angle = 2 * np.pi * x[:, None] * k
            return np.concatenate([np.cos(angle), np.sin(angle)], axis=1) * scale

        centred = basis(phase[0]) - problem["basis_mean"][0]
        design = np.sqrt(weight[0])[:, None] * centred
        a = basis(new)[0] - problem["basis_mean"][0]
        direct = 1 / weight.sum() + a @ np.linalg.solve(
            design.T @ design + penalty[0] * np.eye(a.size), a)
        np.testing.assert_allclose(
            smoothing._new_leverage(problem, penalty, new, weight), [direct], rtol=1e-6)


def test_the_jackknife_is_the_star_without_its_most_deviant_epoch():
    rng = np.random.default_rng(8)
    phase = (np.arange(45) + rng.uniform(0.2, 0.8, 45)) / 45  # none merged
    mag = rrab_shape(phase) + rng.normal(0, 0.01, 45)
    mag[10] += 0.5  # kept: this configuration rejects nothing
    config = PreprocessingConfig()
    short_phase = np.linspace(0, 1, MIN_EPOCHS, endpoint=False)
    batch = prepare_batch([phase, short_phase], [mag, rrab_shape(short_phase)], [0.6, 0.6],
                          config, jackknife=True)
    assert batch.smoothed[0].n_rejected == 0 and batch.deviation[0] > 12
    expected, _, _ = prepare_inputs([np.delete(phase, 10)], [np.delete(mag, 10)], [0.6], config)
    np.testing.assert_allclose(batch.jackknife[0], expected[0], atol=1e-6)
    # The same inputs as without the jackknife.
    plain, _, _ = prepare_inputs([phase, short_phase], [mag, rrab_shape(short_phase)],
                                 [0.6, 0.6], config)
    np.testing.assert_array_equal(batch.inputs, plain)
    # A star with MIN_EPOCHS epochs has none to spare.
    assert np.isnan(batch.jackknife[1]).all() and np.isnan(batch.deviation[1])
