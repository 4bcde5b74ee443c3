"""Measure how well a shipped ensemble's spread predicts its errors; write it for the model card.

Run from the repository root, with the shared training data beside it::

    python docs/measure_calibration.py --name gru [--inputs runs/cache/inputs-<hash>.npz]

The labels stay in ``../shared/data``; only summary numbers are written, to
``docs/model_card/calibration-<name>.json``, together with a digest of the
model files, so that the model card can tell when a retrained model has made
them stale. The out-of-fold predictions recorded by ``python -m training
ship`` (``training/results/<name>/oof_predictions.ecsv``) give each star's
fold; the script checks that the shipped ONNX members reproduce them.
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.preprocessing import prepare_inputs

REPO = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO / "docs" / "model_card"
# The shipped members must reproduce the recorded out-of-fold predictions to
# this many dex, or the inputs were pre-processed differently from training.
_REPRODUCTION_TOLERANCE = 1e-3
# Fraction of a Gaussian within one standard deviation.
_ONE_SIGMA = 0.6827


def members_digest(manifest):
    """One sha256 over the sha256 of every member file of a manifest."""
    return hashlib.sha256(
        "".join(member["sha256"] for member in manifest["members"]).encode()
    ).hexdigest()


def _summary(error, std):
    ratio = np.abs(error) / std
    return {
        "median_std": float(np.median(std)),
        "fraction_within_1std": float(np.mean(ratio < 1)),
        "fraction_within_2std": float(np.mean(ratio < 2)),
        # The factor by which std would have to be inflated for 68.27 % of
        # the stars to lie within one (inflated) std of their label.
        "scale_for_68pct": float(np.quantile(ratio, _ONE_SIGMA)),
    }


def _inputs(data_dir, stars, config, cache):
    if cache is not None:
        with np.load(cache) as stored:
            return stored["inputs"]
    curves = Table.read(data_dir / "lightcurves.ecsv").group_by("source_id")
    by_id = {int(key): i for i, key in enumerate(curves.groups.keys["source_id"])}
    groups = [curves.groups[by_id[int(s)]] for s in stars["source_id"]]
    periods = np.asarray(stars["period"].quantity.to_value("d"), dtype=float)
    inputs, _, errors = prepare_inputs([np.asarray(g["phase"], float) for g in groups],
                                       [np.asarray(g["mag"], float) for g in groups],
                                       periods, config, stars=list(stars["source_id"]))
    failed = [e for e in errors if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} training light curves failed, e.g. {failed[0]}")
    return inputs


def measure(name, data_dir, inputs_cache=None):
    """Calibration summary of ensemble ``name`` on its out-of-fold predictions.

    Returns
    -------
    dict
        ``out_of_fold``: the spread of the members of each star's fold
        (which never saw it) against the out-of-fold error; ``full_ensemble``:
        the spread of all members, which is what ``feh_phot_std`` reports,
        against the same error (most members saw the star in training, so
        this spread is, if anything, too small).
    """
    model = load_model(name)
    recorded = Table.read(REPO / "training" / "results" / name / "oof_predictions.ecsv")
    stars = Table.read(data_dir / "stars.ecsv")
    if list(stars["source_id"]) != list(recorded["source_id"]):
        raise ValueError("the recorded out-of-fold predictions are not for the shared stars")
    members = model.predict_members(_inputs(data_dir, stars, model.preprocessing, inputs_cache))
    folds = np.array([member["fold"] for member in model.manifest["members"]])
    star_fold = np.asarray(recorded["fold"])
    oof = np.empty(len(stars))
    oof_std = np.empty(len(stars))
    for k in np.unique(folds):
        held_out = star_fold == k
        fold_members = members[folds == k][:, held_out]
        oof[held_out] = fold_members.mean(axis=0)
        oof_std[held_out] = fold_members.std(axis=0, ddof=1)
    mismatch = float(np.max(np.abs(oof - recorded["feh_pred"])))
    if mismatch > _REPRODUCTION_TOLERANCE:
        raise RuntimeError(f"the shipped members miss the recorded out-of-fold predictions by "
                           f"up to {mismatch:.2g} dex: the inputs were not pre-processed as in "
                           "training (pass --inputs with the training cache, or check the "
                           "pre-processing parameters in the manifest)")
    error = oof - np.asarray(stars["feh"], dtype=float)
    return {
        "model": name,
        "members_sha256": members_digest(model.manifest),
        "n_stars": len(stars),
        "members_per_fold": int(np.sum(folds == folds[0])),
        "n_members": len(folds),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "reproduction_max_abs_dex": mismatch,
        "out_of_fold": _summary(error, oof_std),
        "full_ensemble": _summary(error, members.std(axis=0, ddof=1)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="shipped model name, e.g. gru")
    parser.add_argument("--data-dir", type=Path,
                        default=REPO.parent / "shared" / "data" / "gaia_dr2_rrab_g",
                        help="folder with stars.ecsv and lightcurves.ecsv (default: %(default)s)")
    parser.add_argument("--inputs", type=Path, default=None,
                        help="pre-processed inputs (.npz with an 'inputs' array in stars order, "
                             "e.g. the training cache) instead of pre-processing every star "
                             "(about 0.1 s a star)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = measure(args.name, args.data_dir, args.inputs)
    OUTPUT_DIR.mkdir(exist_ok=True)
    path = OUTPUT_DIR / f"calibration-{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
