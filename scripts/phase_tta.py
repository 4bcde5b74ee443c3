"""Test-time augmentation over the phase alignment: does averaging shifted inputs help?

Every light curve is aligned on its maximum light before it meets the model.
An alignment off by a fraction of a phase step could be averaged away by
predicting the curve shifted by a few grid steps either side and averaging.
This measures it for a shipped model on its out-of-fold predictions, through
the package's own pre-processing::

    python scripts/phase_tta.py --name gru --max-shift 3

It prints the out-of-fold RMSE of each single shift, then of the averages over
``-k..k`` steps, stretched and cross-fitted as the package serves them.

The answer was no (see ``docs/study.rst``), so this experiment lives here and
not in the ``training`` package.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.stretch import crossfit_stretch

# ``training`` is never installed: it is imported from the repository, which
# goes after site-packages so that an installed package is still the one used.
REPOSITORY = str(Path(__file__).resolve().parents[1])
if REPOSITORY not in sys.path:
    sys.path.append(REPOSITORY)

from training.data import DEFAULT_DATA_DIR, density_weights, load_dataset  # noqa: E402
from training.metrics import regression_metrics  # noqa: E402
from training.paths import RESULTS_DIR  # noqa: E402
from training.served import own_fold_members, recorded_folds, training_inputs  # noqa: E402

__all__ = ["shifted_out_of_fold", "phase_shift_table"]


def shifted_out_of_fold(ensemble, inputs, folds, shift):
    """Out-of-fold ensemble mean with the magnitudes rolled by ``shift`` grid steps.

    Parameters
    ----------
    ensemble : `rrlyrae_metallicity.models.FehEnsemble`
        A plain (not composite) ensemble, the same number of members per fold.
    inputs : ndarray, shape (n_stars, n_phases, 2)
        Model inputs of a phase-grid variant.
    folds : ndarray of int
        Fold of every star; each star is predicted by its own fold's members.
    shift : int
        Grid steps (1 step = 1 / n_phases of a cycle).

    Returns
    -------
    ndarray, shape (n_stars,)
    """
    shifted = inputs.copy()
    shifted[..., 0] = np.roll(inputs[..., 0], shift, axis=1)
    return own_fold_members(ensemble, shifted, folds).mean(axis=1)


def phase_shift_table(name, dataset, *, max_shift=3, results_dir=RESULTS_DIR):
    """Out-of-fold metrics of single shifts and of averages over ``-k..k`` shifts.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``shifts`` (e.g. ``"-1..1"``), ``stretched`` (whether the
        stretch was applied, cross-fitted) and the five metrics.
    """
    ensemble = load_model(name)
    if ensemble.is_composite or ensemble.preprocessing.variant == "raw":
        raise ValueError("phase shifts need a plain ensemble on a phase-grid variant")
    folds = recorded_folds(name, dataset, results_dir)
    inputs = training_inputs(dataset, ensemble.preprocessing)
    weights = density_weights(dataset.feh)
    predictions = {s: shifted_out_of_fold(ensemble, inputs, folds, s)
                   for s in range(-max_shift, max_shift + 1)}
    rows = [{"shifts": str(s), "stretched": False,
             **regression_metrics(dataset.feh, p, weights)} for s, p in predictions.items()]
    for k in range(max_shift + 1):
        mean = np.mean([predictions[s] for s in range(-k, k + 1)], axis=0)
        served, _ = crossfit_stretch(dataset.feh, mean, weights, folds)
        rows.append({"shifts": f"{-k}..{k}", "stretched": True,
                     **regression_metrics(dataset.feh, served, weights)})
    return Table(rows=rows, names=["shifts", "stretched", "r2", "rmse", "mae", "wrmse", "wmae"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python scripts/phase_tta.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="gru", help="a shipped plain ensemble")
    parser.add_argument("--max-shift", type=int, default=3, help="grid steps either side")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    table = phase_shift_table(args.name, load_dataset(args.data_dir), max_shift=args.max_shift)
    for column in ("r2", "rmse", "mae", "wrmse", "wmae"):
        table[column].info.format = ".4f"
    table.pprint_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
