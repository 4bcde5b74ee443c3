"""Does the per-star σ track the real error better than the spread-based one? Cross-fitted.

Every labelled Gaia star is predicted out of fold (the members of the fold
that held it out, through the served pre-processing). The script prints the
checks of `training.calibration.error_model_checks` (RMSE / RMS(σ) and RMSE in
each fifth of stars sorted by σ, 1σ coverage overall and per group of epoch
count and predicted [Fe/H]) for the spread-based σ (``scale * hypot(floor,
spread)``) and for the error model fitted with
`training.calibration.fit_error_model`, each fold scored with a model fitted
on the others::

    python scripts/sigma_model_study.py --name gru
"""

import argparse
import json
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.append(str(REPOSITORY))  # training/ (never installed), after site-packages

from rrlyrae_metallicity import load_model  # noqa: E402
from rrlyrae_metallicity.preprocessing import prepare_inputs  # noqa: E402
from rrlyrae_metallicity.uncertainty import error_model_features  # noqa: E402
from training.calibration import error_model_checks, fit_error_model  # noqa: E402
from training.data import DEFAULT_DATA_DIR, load_dataset  # noqa: E402
from training.served import own_fold_members, recorded_folds  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="gru")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    model = load_model(args.name)
    dataset = load_dataset(args.data_dir)
    folds = recorded_folds(model.name, dataset)
    inputs, curves, _ = prepare_inputs(dataset.phases, dataset.mags, dataset.periods,
                                       model.preprocessing)
    own = model.stretch(own_fold_members(model, inputs, folds))
    prediction, spread = own.mean(axis=1), own.std(axis=1, ddof=1)
    features = error_model_features(prediction, spread, curves, dataset.periods)
    errors = prediction - dataset.feh
    calibration = model.uncertainty_calibration
    spread_std = calibration["scale"] * (calibration["floor_dex"] ** 2 + spread ** 2) ** 0.5
    _, crossfit_std = fit_error_model(errors, features, folds)
    for label, std in (("spread-based sigma", spread_std), ("error model", crossfit_std)):
        print(label + ":")
        print(json.dumps(error_model_checks(errors, std, features), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
