"""Measure outlier rejection on the shipped model, out of fold, before deciding to retrain.

For each ``--thresholds`` value (``none`` for no rejection) the shipped model
(its recorded folds) predicts every labelled Gaia star of
``../shared/data/gaia_dr2_rrab_g`` with the members that never saw it, through
the package's pre-processing with that ``outlier_threshold``, and the script
prints the out-of-fold RMSE and wRMSE against the labels (all stars, and the
stars that lost an epoch), how many stars lost epochs, and how far one bad
epoch (``--offsets`` mag, added to one random epoch of each star with at
least 25 epochs) moves each star's out-of-fold [Fe/H]::

    python scripts/robust_preprocessing.py --name gru --thresholds none 8 6
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.append(str(REPOSITORY))  # training/ (never installed), after site-packages

from rrlyrae_metallicity import load_model  # noqa: E402
from rrlyrae_metallicity.preprocessing import prepare_inputs  # noqa: E402
from training.data import DEFAULT_DATA_DIR, density_weights, load_dataset  # noqa: E402
from training.served import own_fold_members, recorded_folds  # noqa: E402


def out_of_fold(model, config, phases, mags, periods, folds):
    """Each star's stretched own-fold mean, and its number of rejected epochs."""
    inputs, smoothed, errors = prepare_inputs(phases, mags, periods, config)
    if any(e is not None for e in errors):
        raise RuntimeError(f"light curves failed: {[e for e in errors if e][:3]}")
    members = model.stretch(own_fold_members(model, inputs, folds))
    return members.mean(axis=1), np.array([s.n_rejected for s in smoothed])


def rmse(error, weights=None):
    weights = np.ones_like(error) if weights is None else weights
    return float(np.sqrt(np.sum(weights * error ** 2) / np.sum(weights)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="gru")
    parser.add_argument("--thresholds", nargs="+", default=["none", "8", "6"])
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.2, 0.5, 1.0, 5.0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    model = load_model(args.name)
    dataset = load_dataset(args.data_dir)
    folds = recorded_folds(model.name, dataset)
    feh = dataset.feh
    weights = density_weights(feh)
    rng = np.random.default_rng(args.seed)
    chosen = [int(rng.integers(len(p))) for p in dataset.phases]
    many = np.array([len(p) >= 25 for p in dataset.phases])
    print(f"{model.name}: {len(feh)} stars, {many.sum()} with >= 25 epochs")
    for text in args.thresholds:
        threshold = None if text == "none" else float(text)
        config = dataclasses.replace(model.preprocessing, outlier_threshold=threshold)
        pred, lost = out_of_fold(model, config, dataset.phases, dataset.mags, dataset.periods,
                                 folds)
        error = pred - feh
        hit = lost > 0
        line = (f"threshold {text:>5}: OOF RMSE {rmse(error):.4f}, wRMSE "
                f"{rmse(error, weights):.4f}; {hit.sum()} stars lost epochs"
                + (f" (their RMSE {rmse(error[hit]):.4f})" if hit.any() else ""))
        print(line, flush=True)
        for offset in args.offsets:
            mags = [m.copy() for m in dataset.mags]
            for m, j in zip(mags, chosen):
                m[j] += offset
            moved, lost_bad = out_of_fold(model, config, dataset.phases, mags, dataset.periods,
                                          folds)
            shift = np.abs(moved - pred)[many]
            print(f"    one epoch +{offset:g} mag: moved > 0.05 dex {np.mean(shift > 0.05):.1%}, "
                  f"> 0.15 dex {np.mean(shift > 0.15):.1%}, median {np.median(shift):.4f}; "
                  f"the bad epoch's star lost epochs: {np.mean(lost_bad[many] > 0):.1%}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
