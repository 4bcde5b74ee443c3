"""Plots of light curves and of predicted against reference metallicities.

Matplotlib is optional: install it with the ``plot`` extra,
``pip install "rrlyrae_metallicity[plot]"``. It is imported only when a
function of this module is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from numpy.typing import ArrayLike

from .adapters import epoch_times, lightcurve_batch, period_in_days
from .ensemble import load_model
from .pipeline import predict_batch

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_lightcurve", "plot_true_vs_pred"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "rrlyrae_metallicity.plotting needs matplotlib; install it with "
            'pip install "rrlyrae_metallicity[plot]"'
        ) from None
    return plt


def plot_lightcurve(
    lightcurve: Table,
    period: u.Quantity,
    *,
    epoch: Time | None = None,
    model: str = "default",
    mag_column: str | None = None,
    n_cycles: int = 2,
    label: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Plot a folded light curve, its smoothed curve and its predicted [Fe/H].

    The light curve goes once through the package's own prediction
    (`~rrlyrae_metallicity.pipeline.predict_batch`), so the plot shows what
    the model sees: the epochs folded
    and aligned on maximum light (those the outlier rule rejected marked
    apart), and the smoothing spline resampled on the model's phase grid.

    Parameters
    ----------
    lightcurve : `~astropy.timeseries.TimeSeries` or `~astropy.table.Table`
        Raw times and magnitudes, or a table with a ``phase`` column (already
        folded), as accepted by `~rrlyrae_metallicity.predict_feh`.
    period : `~astropy.units.Quantity` ['time']
        Pulsation period.
    epoch : `~astropy.time.Time`, optional
        Epoch of maximum light, as for `~rrlyrae_metallicity.predict_feh`; phase zero is re-derived
        from the light curve anyway.
    model : str
        ``"default"`` or a name from `~rrlyrae_metallicity.available_models`.
    mag_column : str, optional
        Name of the magnitude column (default: ``mag``, or the one column in
        mag units).
    n_cycles : int
        Number of pulsation cycles drawn side by side (the epochs and the
        curve are repeated), so that the rise to maximum is seen whole.
    label : str, optional
        Name of the star, put in front of the title.
    ax : `matplotlib.axes.Axes`, optional
        Axes to draw on; a new figure is made by default.

    Returns
    -------
    ax : `matplotlib.axes.Axes`
        The axes, magnitude axis inverted (brighter up), with the predicted
        ``[Fe/H] = value ± std dex`` in its title.

    Raises
    ------
    rrlyrae_metallicity.exceptions.LightCurveError
        If the light curve cannot be processed (too few epochs, ...).
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import astropy.units as u
    >>> from rrlyrae_metallicity import simulate
    >>> from rrlyrae_metallicity.plotting import plot_lightcurve
    >>> star = simulate.simulate_stars(1, seed=3)[0]
    >>> lc = simulate.simulate_lightcurve(star, n_epochs=45, rng=3)
    >>> ax = plot_lightcurve(lc, star["pf"] * u.day)
    >>> ax.get_title().startswith("[Fe/H] =")
    True
    """
    plt = _pyplot()
    if n_cycles < 1:
        raise ValueError(f"n_cycles must be at least 1, not {n_cycles}")
    period_days = float(period_in_days(period))
    ensemble = load_model(model)
    batch = lightcurve_batch([lightcurve], [period_days], epochs=epoch_times(epoch, 1),
                             stars=[label], mag_column=mag_column)
    result = predict_batch(batch, ensemble)
    if result.failed:
        raise result.failed[0]
    smoothed, config = result.smoothed[0], ensemble.preprocessing
    phase, mag = batch.phases[0], batch.mags[0]

    # Every finite epoch, on the aligned phase scale of the smoothed curve
    # (the pre-processing merges epochs that share a phase; the plot does not),
    # the epochs rejected as outliers apart.
    good = np.isfinite(phase) & np.isfinite(mag)
    aligned = (phase[good] - smoothed.phase_of_maximum) % 1.0
    rejected = _rejected_epochs(aligned, mag[good], smoothed)
    cycles = np.arange(n_cycles)

    def repeated(at, values):
        return (at[None, :] + cycles[:, None]).ravel(), np.tile(values, n_cycles)

    epoch_phase, epoch_mag = repeated(aligned[~rejected], mag[good][~rejected])
    grid = np.append(smoothed.grid_phase, 1.0)
    curve = np.append(smoothed.grid_mag, smoothed.grid_mag[0])
    curve_phase = np.concatenate([grid + k for k in cycles])
    curve_mag = np.tile(curve, n_cycles)

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(epoch_phase, epoch_mag, "o", ms=4, color="0.3",
            label=f"{(~rejected).sum()} epochs")
    if rejected.any():
        ax.plot(*repeated(aligned[rejected], mag[good][rejected]), "x", ms=6, color="C0",
                label=f"{rejected.sum()} rejected as outliers")
    ax.plot(curve_phase, curve_mag, "-", color="C3", lw=1.5,
            label=f"smoothed ({config.n_phases} phases)")
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_xlabel("phase (maximum light at 0)")
    ax.set_ylabel("magnitude [mag]")
    value, spread = result.feh[0], result.feh_std[0]
    title = (f"[Fe/H] = {value:.2f} ± {spread:.2f} dex "
             f"(P = {period_days:.4f} d)")
    ax.set_title(f"{label}: {title}" if label else title)
    ax.legend(loc="best", fontsize="small")
    return ax


def _rejected_epochs(aligned, mag, smoothed):
    """Which of the epochs (aligned phases, magnitudes) the outlier rule rejected."""
    rejected = np.zeros(aligned.size, dtype=bool)
    for at, value in zip(smoothed.rejected_phase, smoothed.rejected_mag):
        gap = np.abs((aligned - at + 0.5) % 1.0 - 0.5)
        match = np.flatnonzero(~rejected & (gap < 1e-7) & (mag == value))
        rejected[match[:1]] = True
    return rejected


def plot_true_vs_pred(
    true: ArrayLike | u.Quantity,
    pred: ArrayLike | u.Quantity,
    *,
    pred_std: ArrayLike | u.Quantity | None = None,
    ax: Axes | None = None,
    residual_ax: Axes | None = None,
    residuals: bool = True,
    label: str = "predicted",
) -> tuple[Axes, Axes | None]:
    """Plot predicted against reference [Fe/H], with the 1:1 line and the residuals.

    Parameters
    ----------
    true, pred : array-like or `~astropy.units.Quantity` ['dex']
        Reference and predicted [Fe/H] of the same stars, in dex. Pairs with a
        non-finite value (stars that could not be processed) are left out.
    pred_std : array-like or `~astropy.units.Quantity` ['dex'], optional
        Uncertainty of each prediction, drawn as error bars.
    ax : `matplotlib.axes.Axes`, optional
        Axes of the scatter plot.
    residual_ax : `matplotlib.axes.Axes`, optional
        Axes of the histogram of ``pred - true``. When neither axes is given,
        a new figure with both side by side is made.
    residuals : bool
        Draw the residual histogram (in ``residual_ax``, or in a new figure).
    label : str
        Legend label of the points.

    Returns
    -------
    ax : `matplotlib.axes.Axes`
        The scatter plot; its title gives N, the RMSE and the mean offset.
    residual_ax : `matplotlib.axes.Axes` or None
        The residual histogram, or `None` when ``residuals`` is false.

    Raises
    ------
    ValueError
        If ``true`` and ``pred`` differ in length or no finite pair is left.
    ImportError
        If matplotlib is not installed.
    """
    plt = _pyplot()
    true, pred = _dex(true, "true"), _dex(pred, "pred")
    std = None if pred_std is None else _dex(pred_std, "pred_std")
    if true.shape != pred.shape or (std is not None and std.shape != pred.shape):
        raise ValueError(
            f"true, pred (and pred_std) must have the same length; got {true.size}, {pred.size}"
            + ("" if std is None else f" and {std.size}")
        )
    keep = np.isfinite(true) & np.isfinite(pred)
    if not keep.any():
        raise ValueError("no star has both a finite reference and a finite predicted [Fe/H]")
    true, pred = true[keep], pred[keep]
    std = None if std is None else std[keep]
    error = pred - true
    rmse = float(np.sqrt(np.mean(error**2)))
    bias = float(np.mean(error))

    if ax is None and residual_ax is None:
        _, axes = plt.subplots(1, 2 if residuals else 1, figsize=(10 if residuals else 5, 4.4),
                               squeeze=False)
        ax = axes[0, 0]
        residual_ax = axes[0, 1] if residuals else None
        ax.figure.set_layout_engine("tight")
    elif ax is None:
        _, ax = plt.subplots(figsize=(5, 4.4))
    elif residuals and residual_ax is None:
        _, residual_ax = plt.subplots(figsize=(5, 4.4))

    low = min(true.min(), pred.min()) - 0.1
    high = max(true.max(), pred.max()) + 0.1
    ax.plot([low, high], [low, high], "--", color="0.5", lw=1, label="1:1")
    if std is None:
        ax.plot(true, pred, "o", ms=3, alpha=0.7, color="C0", label=label)
    else:
        ax.errorbar(true, pred, yerr=std, fmt="o", ms=3, alpha=0.7, color="C0", label=label)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("reference [Fe/H] [dex]")
    ax.set_ylabel("predicted [Fe/H] [dex]")
    ax.set_title(f"N = {true.size}, RMSE = {rmse:.3f} dex, offset = {bias:+.3f} dex")
    ax.legend(loc="upper left", fontsize="small")

    if residuals:
        residual_ax.hist(error, bins="auto", color="C0", alpha=0.8)
        residual_ax.axvline(0.0, color="0.5", ls="--", lw=1)
        residual_ax.set_xlabel("predicted - reference [Fe/H] [dex]")
        residual_ax.set_ylabel("stars")
        residual_ax.set_title(f"residuals: std = {np.std(error):.3f} dex")
    return ax, residual_ax if residuals else None


def _dex(values, name):
    """Values in dex as a 1-D float array (plain numbers are taken as dex)."""
    if isinstance(values, u.Quantity):
        if values.unit != u.dex and values.unit != u.dimensionless_unscaled:
            raise u.UnitsError(f"{name} should be in dex, not {values.unit}")
        values = values.value
    return np.atleast_1d(np.asarray(values, dtype=float)).ravel()
