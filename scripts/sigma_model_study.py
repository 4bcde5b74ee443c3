"""Can a per-star σ track the real error? A cross-fitted study on the shipped model.

Every labelled Gaia star is predicted out of fold (the members of the fold
that held it out, through the served pre-processing). A heteroscedastic
error model, ``log σ² = x · w`` with per-star features ``x``, is fitted by
Gaussian likelihood on the other folds and scored on each fold in turn
(cross-fitted), and compared with the shipped σ (the members' spread with a
floor and a scale). Printed: RMSE / RMS(σ) and RMSE in each fifth of stars
sorted by σ, and 1σ coverage overall and per group of epoch count and
predicted [Fe/H]::

    python scripts/sigma_model_study.py --name gru
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.append(str(REPOSITORY))  # training/ (never installed), after site-packages

from rrlyrae_metallicity import load_model  # noqa: E402
from rrlyrae_metallicity.preprocessing import prepare_inputs  # noqa: E402
from rrlyrae_metallicity.uncertainty import calibrated_std  # noqa: E402
from training.data import DEFAULT_DATA_DIR, load_dataset  # noqa: E402
from training.served import own_fold_members, recorded_folds  # noqa: E402

FEATURES = ("log_epochs", "phase_gap", "log_scatter", "amplitude", "period", "feh",
            "feh_squared", "log_spread")


def features(model, dataset, folds):
    """Out-of-fold [Fe/H], the members' spread and the features of every star."""
    inputs, curves, _ = prepare_inputs(dataset.phases, dataset.mags, dataset.periods,
                                       model.preprocessing)
    own = model.stretch(own_fold_members(model, inputs, folds))
    pred, spread = own.mean(axis=1), own.std(axis=1, ddof=1)
    scatter = []
    for curve in curves:
        grid = np.append(curve.grid_phase, 1.0)
        smooth = np.interp(curve.phase, grid, np.append(curve.grid_mag, curve.grid_mag[0]))
        residual = curve.mag - smooth
        scatter.append(1.4826 * np.median(np.abs(residual - np.median(residual))))
    columns = {
        "log_epochs": np.log([c.phase.size for c in curves]),
        "phase_gap": np.array([c.max_phase_gap for c in curves]),
        "log_scatter": np.log(np.maximum(scatter, 1e-3)),
        "amplitude": np.array([c.amplitude for c in curves]),
        "period": np.asarray(dataset.periods, float),
        "feh": pred,
        "feh_squared": (pred + 1.4) ** 2,
        "log_spread": np.log(np.maximum(spread, 1e-3)),
    }
    return pred, spread, columns


def design(columns, names, centre=None, scale=None):
    x = np.column_stack([columns[n] for n in names])
    centre = x.mean(axis=0) if centre is None else centre
    scale = x.std(axis=0) if scale is None else scale
    return np.column_stack([np.ones(len(x)), (x - centre) / scale]), centre, scale


def fit(x, errors, ridge=1e-3):
    def loss(w):
        log_var = x @ w
        return 0.5 * np.sum(log_var + errors ** 2 * np.exp(-log_var)) + ridge * np.sum(w[1:] ** 2)

    def grad(w):
        log_var = x @ w
        g = 0.5 * x.T @ (1 - errors ** 2 * np.exp(-log_var))
        g[1:] += 2 * ridge * w[1:]
        return g

    start = np.zeros(x.shape[1])
    start[0] = np.log(np.mean(errors ** 2))
    return minimize(loss, start, jac=grad, method="L-BFGS-B").x


def crossfit(columns, names, errors, folds):
    sigma = np.empty(len(errors))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        x, centre, scale = design({n: columns[n][train] for n in names}, names)
        w = fit(x, errors[train])
        xt, _, _ = design({n: columns[n][test] for n in names}, names, centre, scale)
        sigma[test] = np.exp(0.5 * xt @ w)
    return sigma


def report(label, errors, sigma, columns, n_epochs):
    order = np.argsort(sigma)
    fifths = np.array_split(order, 5)
    ratios = [np.sqrt(np.mean(errors[f] ** 2)) / np.sqrt(np.mean(sigma[f] ** 2)) for f in fifths]
    rmses = [np.sqrt(np.mean(errors[f] ** 2)) for f in fifths]
    inside = np.abs(errors) <= sigma
    groups = {"<30 epochs": n_epochs < 30, "30-39": (n_epochs >= 30) & (n_epochs < 40),
              ">=40": n_epochs >= 40}
    terciles = np.quantile(columns["feh"], [1 / 3, 2 / 3])
    groups |= {"[Fe/H] low": columns["feh"] < terciles[0],
               "[Fe/H] mid": (columns["feh"] >= terciles[0]) & (columns["feh"] < terciles[1]),
               "[Fe/H] high": columns["feh"] >= terciles[1]}
    print(f"{label}:")
    print("  RMSE/RMS(sigma) by fifth of sigma: " + " ".join(f"{r:.2f}" for r in ratios))
    print("  RMSE by fifth: " + " ".join(f"{r:.3f}" for r in rmses)
          + f"  (largest/smallest {rmses[-1] / rmses[0]:.2f})")
    print(f"  1-sigma coverage {inside.mean():.1%}; " + ", ".join(
        f"{name} {inside[mask].mean():.1%}" for name, mask in groups.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="gru")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    model = load_model(args.name)
    dataset = load_dataset(args.data_dir)
    folds = recorded_folds(model.name, dataset)
    pred, spread, columns = features(model, dataset, folds)
    errors = pred - dataset.feh
    n_epochs = np.exp(columns["log_epochs"]).round()
    shipped = calibrated_std(spread / np.sqrt(1.0), model.uncertainty_calibration)
    report("shipped sigma (scale x hypot(floor, spread))", errors, shipped, columns, n_epochs)
    sigma = crossfit(columns, FEATURES, errors, folds)
    report("error model, log sigma^2 = x.w (cross-fitted)", errors, sigma, columns, n_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
