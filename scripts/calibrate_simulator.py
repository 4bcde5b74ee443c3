"""Calibrate `rrlyrae_metallicity.simulate` on the real Gaia DR2 G-band RRab light curves.

Run from the repository root::

    python scripts/calibrate_simulator.py [--data-dir DIR] [--output FILE]

Every star's folded light curve is fitted with a 4th-order Fourier series by
linear least squares,

    m(phase) = A0 + sum_k a_k cos(2 pi k phase) + b_k sin(2 pi k phase)
             = A0 + sum_k A_k sin(2 pi k phase + phi_k),

giving ``A_k = hypot(a_k, b_k)``, ``phi_k = atan2(a_k, b_k)``, ``R_k1 = A_k / A_1``
and ``phi_k1 = phi_k - k phi_1`` (sine convention, wrapped into the 2-pi interval
centred on the sample's circular mean so that no distribution is cut in two).
Only summary statistics are written (means, covariances, quantiles, fitted
coefficients): no light curve leaves the shared data folder.

The output, ``rrlyrae_metallicity/data/simulator_calibration.json``, holds:

- mean vector, covariance and ranges (min, max, and the 0.5-99.5 percentiles to
  which the simulator clips its draws) of ``z = (log10 P, [Fe/H], log10 A1, R21,
  R31, R41, phi21, phi31, phi41)`` over the stars whose fit did not fail;
- quantiles of the epoch count and of the mean magnitude;
- the noise relation ``sigma(G) = sqrt(floor**2 + (10**(c0 + c1 (G - 17)))**2)``
  fitted to the binned median residual scatter, and the star-to-star scatter
  about it;
- the sharpening scale of harmonics 5-8 (see `rrlyrae_metallicity.simulate`):
  those harmonics cannot be fitted star by star from 21-80 epochs, so they are
  extrapolated from harmonics 3 and 4 and one global scale is fitted;
- the range of peak-to-peak amplitudes (the simulator draws again outside it);
- a linear ``[Fe/H] = a + b P + c phi31`` relation and its RMSE, for reference.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import astropy
import numpy as np
import scipy
from scipy.optimize import least_squares
from scipy.stats import chi2

from rrlyrae_metallicity import simulate

# ``training`` is never installed: it is imported from the repository, which
# goes after site-packages so that an installed package is still the one used.
REPOSITORY = str(Path(__file__).resolve().parents[1])
if REPOSITORY not in sys.path:
    sys.path.append(REPOSITORY)

from training.data import DEFAULT_DATA_DIR, load_dataset  # noqa: E402

# The sharpening must be the simulator's own rule, so it is taken from the
# package rather than copied.
harmonics = simulate.harmonics

__all__ = ["calibrate", "fourier_fit", "main"]

DEFAULT_OUTPUT = (Path(__file__).resolve().parents[1] / "rrlyrae_metallicity" / "data"
                  / "simulator_calibration.json")

#: Order of the Fourier fits and statistics: with 21-80 epochs per star, higher
#: orders overfit the phase gaps.
ORDER = 4
PARAMETERS = ["log10_period", "feh", "log10_a1", "r21", "r31", "r41", "phi21", "phi31", "phi41"]
# Cap on the amplitude ratio A4/A3 used to extrapolate harmonics 5-8: beyond it
# the extrapolated harmonics no longer decay fast enough to stay a small correction.
Q_MAX = 0.8
# Stars used to fit the sharpening scale: many epochs and little noise.
SHARPENING_MIN_EPOCHS = 45
SHARPENING_MAX_SIGMA = 0.03
# Failed-fit cuts, then iterative Mahalanobis clipping at this tail probability.
CLIP_PROBABILITY = 1e-4
# The simulator clips each drawn parameter to these percentiles of the real
# stars: robust to the few extreme stars, and keeps the period in 0.36-0.80 d.
CLIP_PERCENTILE = 0.5
NOISE_PIVOT = 17.0
NOISE_BIN = 0.5
NOISE_MIN_STARS_PER_BIN = 20
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 51)


def _design(phase, order):
    columns = [np.ones_like(phase)]
    for k in range(1, order + 1):
        columns += [np.cos(2 * np.pi * k * phase), np.sin(2 * np.pi * k * phase)]
    return np.column_stack(columns)


def fourier_fit(phase, mag, order=ORDER):
    """Least-squares Fourier fit of one folded light curve.

    Parameters
    ----------
    phase, mag : ndarray
        Folded light curve.
    order : int
        Number of harmonics.

    Returns
    -------
    dict
        ``a0``, ``amplitude`` (A_k), ``phase`` (phi_k, sine convention),
        ``coefficients`` (A0, a_1, b_1, ...), ``sigma`` (residual scatter with
        ``n - 2 order - 1`` degrees of freedom) and ``ptp`` of the model.
    """
    x = _design(phase, order)
    coefficients = np.linalg.lstsq(x, mag, rcond=None)[0]
    residual = mag - x @ coefficients
    a, b = coefficients[1::2], coefficients[2::2]
    grid = np.arange(1000) / 1000
    return {
        "a0": coefficients[0],
        "amplitude": np.hypot(a, b),
        "phase": np.arctan2(a, b),
        "coefficients": coefficients,
        "sigma": np.sqrt(residual @ residual / (len(mag) - x.shape[1])),
        "ptp": np.ptp(_design(grid, order) @ coefficients),
    }


def _sharpened_fit(phase, mag, fit):
    """Refit with the extrapolated harmonics 5-8 as one extra regressor.

    Returns the fitted scale of the extrapolated harmonics and the residual
    scatter of the sharpened model (``n - 10`` degrees of freedom).
    """
    amp, ph = fit["amplitude"], fit["phase"]
    phi_k1 = [ph[k - 1] - k * ph[0] for k in (2, 3, 4)]
    extra_amp, extra_phase = harmonics(amp[0], amp[1] / amp[0], amp[2] / amp[0], amp[3] / amp[0],
                                        *phi_k1, sharpening={"scale": 1.0, "q_max": Q_MAX})
    k = np.arange(5, 9)
    extra = np.sum(extra_amp[4:] * np.sin(2 * np.pi * k * phase[:, None] + extra_phase[4:]
                                          + k * ph[0]), axis=1)
    x = np.column_stack([_design(phase, ORDER), extra])
    coefficients = np.linalg.lstsq(x, mag, rcond=None)[0]
    residual = mag - x @ coefficients
    return coefficients[-1], np.sqrt(residual @ residual / (len(mag) - x.shape[1]))


def _wrap_about_mean(angles):
    """Wrap angles into [mu - pi, mu + pi), mu being their circular mean."""
    mu = np.angle(np.mean(np.exp(1j * angles))) % (2 * np.pi)
    return (angles - mu + np.pi) % (2 * np.pi) + mu - np.pi, mu


def _mahalanobis_clip(z, keep):
    """Iteratively drop vectors with improbably large Mahalanobis distance."""
    threshold = chi2.isf(CLIP_PROBABILITY, z.shape[1])
    while True:
        mean = z[keep].mean(axis=0)
        inv = np.linalg.inv(np.cov(z[keep], rowvar=False))
        d2 = np.einsum("ij,jk,ik->i", z - mean, inv, z - mean)
        new_keep = keep & (d2 < threshold)
        if new_keep.sum() == keep.sum():
            return new_keep
        keep = new_keep


def _sigma_model(params, g):
    floor, c0, c1 = params
    return np.sqrt(floor**2 + (10 ** (c0 + c1 * (g - NOISE_PIVOT))) ** 2)


def _fit_noise(mean_g, sigma, n_epochs):
    """Fit sigma(G) to the binned medians of the per-star residual scatter."""
    edges = np.arange(np.floor(mean_g.min() / NOISE_BIN) * NOISE_BIN, mean_g.max() + NOISE_BIN,
                      NOISE_BIN)
    centres, medians, counts = [], [], []
    for low in edges[:-1]:
        inside = (mean_g >= low) & (mean_g < low + NOISE_BIN)
        if inside.sum() >= NOISE_MIN_STARS_PER_BIN:
            centres.append(np.median(mean_g[inside]))
            medians.append(np.median(sigma[inside]))
            counts.append(int(inside.sum()))
    centres, medians, counts = map(np.asarray, (centres, medians, counts))
    result = least_squares(
        lambda p: np.sqrt(counts) * (np.log10(_sigma_model(p, centres)) - np.log10(medians)),
        x0=[0.02, -1.5, 0.2], bounds=([1e-4, -4.0, 0.0], [0.2, 0.0, 1.0]),
    )
    params = result.x
    log_ratio = np.log10(sigma / _sigma_model(params, mean_g))
    robust_std = 1.4826 * np.median(np.abs(log_ratio - np.median(log_ratio)))
    # Part of the spread is only the sampling error of a standard deviation
    # from n - 10 degrees of freedom: remove it to keep the intrinsic scatter.
    sampling_var = np.mean(1.0 / (2.0 * (n_epochs - 10))) / np.log(10) ** 2
    intrinsic = np.sqrt(max(robust_std**2 - sampling_var, 0.0))
    return {
        "model": "sigma(G) = sqrt(floor**2 + (10**(c0 + c1*(G - pivot)))**2), mag",
        "floor": float(params[0]),
        "c0": float(params[1]),
        "c1": float(params[2]),
        "pivot": NOISE_PIVOT,
        "star_scatter_dex": float(intrinsic),
        "max_sigma": float(np.percentile(sigma, 99.5)),
        "measured_on": ("residual scatter about the order-4 + sharpened fit of each star "
                        "(n - 10 degrees of freedom), so it includes crowding and model "
                        "mismatch as well as photon noise"),
        "binned": {"mean_g": centres.tolist(), "median_sigma": medians.tolist(),
                   "n_stars": counts.tolist()},
    }


def _round(value, digits=8):
    """Round floats (recursively) to ``digits`` significant digits for a readable file."""
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.{digits}g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrate(data_dir=DEFAULT_DATA_DIR):
    """Measure the simulator's calibration on the real light curves.

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``stars.ecsv`` and ``lightcurves.ecsv``.

    Returns
    -------
    dict
        The calibration, ready to be written as JSON.
    """
    data_dir = Path(data_dir)
    dataset = load_dataset(data_dir)
    n_all = len(dataset)
    periods = dataset.periods
    feh = dataset.feh
    n_epochs = np.array([len(p) for p in dataset.phases])

    fits = [fourier_fit(p, m) for p, m in zip(dataset.phases, dataset.mags)]
    amp = np.array([f["amplitude"] for f in fits])
    ph = np.array([f["phase"] for f in fits])
    a0 = np.array([f["a0"] for f in fits])
    sigma4 = np.array([f["sigma"] for f in fits])
    ptp = np.array([f["ptp"] for f in fits])
    data_ptp = np.array([np.ptp(m) for m in dataset.mags])
    sharpened = np.array([_sharpened_fit(p, m, f)
                          for p, m, f in zip(dataset.phases, dataset.mags, fits)])
    scale, sigma_sharp = sharpened.T

    ratios = amp[:, 1:] / amp[:, :1]
    phases = {}
    centres = {}
    for k in (2, 3, 4):
        phases[k], centres[f"phi{k}1"] = _wrap_about_mean((ph[:, k - 1] - k * ph[:, 0]))
    z = np.column_stack([np.log10(periods), feh, np.log10(amp[:, 0]), ratios[:, 0], ratios[:, 1],
                         ratios[:, 2], phases[2], phases[3], phases[4]])

    # Obvious failures: an order-4 fit through phase gaps that swings far
    # beyond the data, harmonics larger than the fundamental, or huge residuals.
    sane = ((amp[:, 0] > 0.05) & np.all(ratios < 1.0, axis=1) & (sigma4 < 0.2)
            & (ptp < 1.3 * data_ptp + 0.05) & np.all(np.isfinite(z), axis=1))
    good = _mahalanobis_clip(z, sane)
    zg = z[good]

    ranges = {}
    for name, column in zip(PARAMETERS, zg.T):
        clip = np.percentile(column, [CLIP_PERCENTILE, 100 - CLIP_PERCENTILE])
        ranges[name] = {"min": float(column.min()), "max": float(column.max()),
                        "clip": clip.tolist()}

    well_sampled = good & (n_epochs >= SHARPENING_MIN_EPOCHS) & (sigma4 < SHARPENING_MAX_SIGMA)
    # Order-6 fits of the same well-sampled stars check the extrapolation of
    # harmonics 5 and 6 (too noisy to be used star by star).
    check = [fourier_fit(dataset.phases[i], dataset.mags[i], order=6)
             for i in np.flatnonzero(well_sampled)]
    r51_fit = np.median([f["amplitude"][4] / f["amplitude"][0] for f in check])
    phi51_fit = np.angle(np.mean([np.exp(1j * (f["phase"][4] - 5 * f["phase"][0]))
                                  for f in check])) % (2 * np.pi)
    q = np.minimum(ratios[well_sampled, 2] / ratios[well_sampled, 1], Q_MAX)
    step = np.angle(np.exp(1j * (phases[4] - phases[3])))[well_sampled]
    scale_median = float(np.median(scale[well_sampled]))
    r51_extrapolated = np.median(scale_median * ratios[well_sampled, 2] * q)
    phi51_extrapolated = np.angle(np.mean(np.exp(1j * (phases[4][well_sampled] + step))))
    phi51_extrapolated %= 2 * np.pi
    sharpening = {
        "harmonics": [5, 6, 7, 8],
        "rule": "A_k = scale * A4 * q**(k-4), q = min(R41/R31, q_max); "
                "phi_k1 = phi41 + (k-4)*wrap(phi41 - phi31)",
        "scale": scale_median,
        "q_max": Q_MAX,
        "n_stars": int(well_sampled.sum()),
        "selection": f"n_epochs >= {SHARPENING_MIN_EPOCHS} and order-4 residual < "
                     f"{SHARPENING_MAX_SIGMA} mag",
        "scale_quantiles_16_50_84": np.percentile(scale[well_sampled], [16, 50, 84]).tolist(),
        "median_residual_order4": float(np.median(sigma4[well_sampled])),
        "median_residual_sharpened": float(np.median(sigma_sharp[well_sampled])),
        "check_order6_median_r51": float(r51_fit),
        "check_extrapolated_median_r51": float(r51_extrapolated),
        "check_order6_mean_phi51": float(phi51_fit),
        "check_extrapolated_mean_phi51": float(phi51_extrapolated),
    }

    # Reference linear relation on the same stars.
    x = np.column_stack([np.ones(good.sum()), periods[good], phases[3][good]])
    coef = np.linalg.lstsq(x, feh[good], rcond=None)[0]
    rmse = float(np.sqrt(np.mean((feh[good] - x @ coef) ** 2)))

    return {
        "description": ("Calibration of rrlyrae_metallicity.simulate: summary statistics of "
                        "real Gaia DR2 G-band RRab light curves (no light curve is stored)."),
        "dataset": {
            "name": "gaia_dr2_rrab_g",
            "reference": "Dekany & Grebel (2022, ApJS 261, 33); Gaia Collaboration (2018)",
            "n_stars": int(n_all),
            "n_used": int(good.sum()),
            "n_failed_fits": int((~sane).sum()),
            "n_clipped_outliers": int((sane & ~good).sum()),
            "sha256": {name: _sha256(data_dir / name)
                       for name in ("stars.ecsv", "lightcurves.ecsv")},
        },
        "software": {"numpy": np.__version__, "scipy": scipy.__version__,
                     "astropy": astropy.__version__},
        "fourier": {
            "order": ORDER,
            "convention": "m(phase) = A0 + sum_k A_k sin(2 pi k phase + phi_k); "
                          "R_k1 = A_k/A_1; phi_k1 = phi_k - k phi_1 (rad)",
            "phase_centres": centres,
            "phase_wrap": "each phi_k1 wrapped into [centre - pi, centre + pi)",
        },
        "parameters": PARAMETERS,
        "mean": zg.mean(axis=0).tolist(),
        "covariance": np.cov(zg, rowvar=False).tolist(),
        "std": zg.std(axis=0, ddof=1).tolist(),
        "ranges": ranges,
        "quality_cuts": ("A1 > 0.05 mag; R21, R31, R41 < 1; residual < 0.2 mag; model "
                         "peak-to-peak < 1.3 x data peak-to-peak + 0.05 mag; then iterative "
                         f"Mahalanobis clipping at chi2 tail probability {CLIP_PROBABILITY}"),
        "n_epochs": {
            "quantile_levels": QUANTILE_LEVELS.tolist(),
            "quantiles": np.percentile(n_epochs, 100 * QUANTILE_LEVELS).tolist(),
            "min": int(n_epochs.min()), "max": int(n_epochs.max()),
        },
        "mean_g": {
            "quantile_levels": QUANTILE_LEVELS.tolist(),
            "quantiles": np.percentile(a0[good], 100 * QUANTILE_LEVELS).tolist(),
            "min": float(a0[good].min()), "max": float(a0[good].max()),
        },
        "noise": _fit_noise(a0[good], sigma_sharp[good], n_epochs[good]),
        "sharpening": sharpening,
        "peak_to_peak_g": {
            "description": "peak-to-peak amplitude of the order-4 fits, mag",
            "min": float(ptp[good].min()), "max": float(ptp[good].max()),
            "percentiles_0.5_99.5": np.percentile(ptp[good], [0.5, 99.5]).tolist(),
        },
        "feh_linear_relation": {
            "formula": "feh = a + b * P[d] + c * phi31[rad] (sine convention, wrapped as above)",
            "a": float(coef[0]), "b": float(coef[1]), "c": float(coef[2]),
            "rmse": rmse,
            "n_stars": int(good.sum()),
        },
    }


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python scripts/calibrate_simulator.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with stars.ecsv and lightcurves.ecsv of gaia_dr2_rrab_g")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="JSON file to write (default: the package's "
                             "data/simulator_calibration.json)")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    result = {"command": " ".join(["python scripts/calibrate_simulator.py", *argv])}
    result.update(calibrate(args.data_dir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_round(result), indent=1) + "\n", encoding="utf-8")
    noise, relation = result["noise"], result["feh_linear_relation"]
    print(f"wrote {args.output}: {result['dataset']['n_used']} of {result['dataset']['n_stars']} "
          f"stars used; sigma(G) floor {noise['floor']:.4f} mag, c0 {noise['c0']:.3f}, "
          f"c1 {noise['c1']:.3f}; [Fe/H] = {relation['a']:.3f} + {relation['b']:.3f} P "
          f"+ {relation['c']:.3f} phi31 (RMSE {relation['rmse']:.3f} dex); sharpening scale "
          f"{result['sharpening']['scale']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
