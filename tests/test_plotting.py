"""Tests of `rrlyrae_metallicity.plotting`, rendered on matplotlib's headless Agg backend."""

import builtins

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rrlyrae_metallicity import predict_feh, simulate  # noqa: E402
from rrlyrae_metallicity.exceptions import LightCurveError  # noqa: E402
from rrlyrae_metallicity.plotting import plot_lightcurve, plot_true_vs_pred  # noqa: E402

N_EPOCHS = 45


@pytest.fixture(scope="module")
def star():
    return simulate.simulate_stars(1, seed=3)[0]


@pytest.fixture(scope="module")
def lightcurve(star):
    return simulate.simulate_lightcurve(star, n_epochs=N_EPOCHS, rng=3)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _render(ax):
    """Draw the figure to an RGBA buffer, as saving it would."""
    canvas = ax.figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def test_lightcurve_plot_shows_every_epoch_the_curve_and_the_prediction(star, lightcurve):
    period = star["pf"] * u.day
    ax = plot_lightcurve(lightcurve, period, n_cycles=2, label="star 3")
    image = _render(ax)
    assert image.shape[2] == 4 and image.std() > 0  # something was drawn

    epochs, curve = ax.get_lines()
    assert len(epochs.get_xdata()) == 2 * N_EPOCHS
    # The magnitudes are the light curve's own, repeated for each cycle.
    np.testing.assert_allclose(np.sort(epochs.get_ydata()[:N_EPOCHS]),
                               np.sort(lightcurve["mag"].value))
    assert 0 <= epochs.get_xdata().min() and epochs.get_xdata().max() < 2
    # The smoothed curve: the model's 80-phase grid (closed at phase 1), per cycle.
    assert len(curve.get_xdata()) == 2 * 81
    assert ax.yaxis_inverted()

    feh, std = predict_feh(lightcurve, period, return_std=True)
    title = ax.get_title()
    assert title.startswith("star 3: [Fe/H] = ")
    assert f"{feh.value:.2f} ± {std.value:.2f} dex" in title
    assert f"P = {star['pf']:.4f} d" in title


def test_lightcurve_plot_marks_the_epochs_rejected_as_outliers(star, lightcurve):
    bad = lightcurve.copy()
    bad["mag"][7] += 2.0 * bad["mag"].unit
    ax = plot_lightcurve(bad, star["pf"] * u.day, n_cycles=2)
    epochs, rejected, curve = ax.get_lines()
    assert len(epochs.get_xdata()) == 2 * (N_EPOCHS - 1)
    np.testing.assert_allclose(rejected.get_ydata(), [bad["mag"][7].value] * 2)
    assert bad["mag"][7].value not in epochs.get_ydata()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert f"{N_EPOCHS - 1} epochs" in labels and "1 rejected as outliers" in labels


def test_lightcurve_maximum_light_is_at_phase_zero(star, lightcurve):
    ax = plot_lightcurve(lightcurve, star["pf"] * u.day, n_cycles=1)
    curve = ax.get_lines()[1]
    brightest = np.argmin(curve.get_ydata())
    assert curve.get_xdata()[brightest] in (0.0, 1.0)


def test_lightcurve_plot_accepts_folded_tables_and_given_axes(star, lightcurve):
    folded = Table({"phase": ((lightcurve.time.jd - lightcurve.time.jd[0]) / star["pf"]) % 1.0,
                    "mag": lightcurve["mag"]})
    fig, axes = plt.subplots(1, 2)
    ax = plot_lightcurve(folded, star["pf"] * u.day, n_cycles=1, ax=axes[1])
    assert ax is axes[1]
    assert len(ax.get_lines()[0].get_xdata()) == N_EPOCHS
    assert not axes[0].get_lines()


def test_lightcurve_plot_refuses_too_few_epochs(star):
    short = simulate.simulate_lightcurve(star, n_epochs=8, rng=1)
    with pytest.raises(LightCurveError, match="at least 15"):
        plot_lightcurve(short, star["pf"] * u.day)


def test_true_vs_pred_draws_points_the_one_to_one_line_and_residuals():
    rng = np.random.default_rng(5)
    true = rng.uniform(-2.5, -0.2, 50)
    pred = true + rng.normal(0.05, 0.2, 50)
    pred[3] = np.nan  # a star that could not be processed
    ax, residual_ax = plot_true_vs_pred(true * u.dex, pred * u.dex)
    _render(ax)

    one_to_one, points = ax.get_lines()
    np.testing.assert_allclose(one_to_one.get_xdata(), one_to_one.get_ydata())
    assert len(points.get_xdata()) == 49
    error = np.delete(pred - true, 3)
    title = ax.get_title()
    assert "N = 49" in title
    assert f"RMSE = {np.sqrt(np.mean(error**2)):.3f} dex" in title
    assert f"offset = {np.mean(error):+.3f} dex" in title
    counts = [patch.get_height() for patch in residual_ax.patches]
    assert sum(counts) == 49
    assert residual_ax.figure is ax.figure


def test_true_vs_pred_with_error_bars_on_one_axes():
    fig, ax = plt.subplots()
    out, residual_ax = plot_true_vs_pred([-1.0, -1.5, -2.0], [-1.1, -1.4, -2.2],
                                         pred_std=[0.1, 0.2, 0.1], ax=ax, residuals=False)
    assert out is ax and residual_ax is None
    assert len(ax.containers) == 1  # the errorbar container
    assert len(ax.containers[0].lines[0].get_xdata()) == 3


def test_true_vs_pred_checks_its_inputs():
    with pytest.raises(ValueError, match="same length"):
        plot_true_vs_pred([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no star has both"):
        plot_true_vs_pred([np.nan], [1.0])
    with pytest.raises(u.UnitsError, match="dex"):
        plot_true_vs_pred([1.0] * u.mag, [1.0] * u.dex)


def test_missing_matplotlib_names_the_extra(monkeypatch, star, lightcurve):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"rrlyrae_metallicity\[plot\]"):
        plot_lightcurve(lightcurve, star["pf"] * u.day)
