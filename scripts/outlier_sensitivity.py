"""How far one bad epoch moves the served [Fe/H] of real Gaia stars.

For every labelled star of ``../shared/data/gaia_dr2_rrab_g`` with at least
``--min-epochs`` epochs, one epoch (drawn at random, seeded) is made fainter
by each offset, and the star is predicted again through the public API
(`rrlyrae_metallicity.add_feh`). The script prints, per offset, the share of
stars whose [Fe/H] moved by more than 0.05 and 0.15 dex, the median shift,
the share whose bad epoch was rejected, and the share moved by more than the
σ served with the moved value without a flag (status not ok, or any bit of
``feh_flags``: outside the domain, epochs rejected, sensitive to one
epoch)::

    python scripts/outlier_sensitivity.py --model gru --offsets 0.2 0.5 1 2 5

With ``--clean`` it also reports how the clean stars' predictions compare
with the labels (RMSE), for a before/after comparison of a pre-processing.
With ``--n-bad N`` each star gets N bad epochs (distinct, drawn at random),
with ``--random-signs`` each made fainter or brighter at random. With
``--by-neighbour`` the one-bad-epoch results are split between stars whose
bad epoch lies within the merging tolerance (0.002 cycle) of another epoch
and the others. With ``--drop-good`` the chosen epochs are deleted instead
(all offsets are ignored): the floor that no outlier rule can go below,
since at best it removes the bad epoch.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from rrlyrae_metallicity import add_feh, load_model
from rrlyrae_metallicity.domain import FLAG_BITS
from rrlyrae_metallicity.preprocessing import _MERGE_TOLERANCE

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gaia_dr2_rrab_g"


def load(min_epochs):
    """The stars table and their light curves ``{source_id: Table(phase, mag)}``."""
    stars = Table.read(SHARED / "stars.ecsv")
    epochs = Table.read(SHARED / "lightcurves.ecsv")
    order = np.argsort(epochs["source_id"], kind="stable")
    epochs = epochs[order]
    ids, starts = np.unique(np.asarray(epochs["source_id"]), return_index=True)
    ends = np.append(starts[1:], len(epochs))
    curves = {int(i): (np.asarray(epochs["phase"][s:e], float), np.asarray(epochs["mag"][s:e],
                                                                            float))
              for i, s, e in zip(ids, starts, ends)}
    stars = stars[stars["n_epochs"] >= min_epochs]
    table = Table({"source_id": stars["source_id"], "pf": u.Quantity(stars["period"], u.day),
                   "feh": stars["feh"]})
    return table, curves


def predict(table, curves, model):
    lightcurves = {sid: Table({"phase": p, "mag": m}) for sid, (p, m) in curves.items()}
    return add_feh(table, lightcurves, model=model, epoch_column=None)


def flagged(result):
    return np.asarray((result["feh_status"] != "ok") | (result["feh_flags"] != 0))


def has_neighbour(phase, index):
    """Whether epoch ``index`` lies within the merging tolerance of another (on the circle)."""
    gap = np.abs(phase - phase[index]) % 1.0
    gap = np.minimum(gap, 1.0 - gap)
    gap[index] = np.inf
    return bool(gap.min() <= _MERGE_TOLERANCE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.2, 0.5, 1.0, 2.0, 5.0],
                        help="mag added to one epoch (default %(default)s)")
    parser.add_argument("--min-epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="also score the clean stars")
    parser.add_argument("--n-bad", type=int, default=1, help="bad epochs per star")
    parser.add_argument("--random-signs", action="store_true",
                        help="make each bad epoch fainter or brighter at random")
    parser.add_argument("--by-neighbour", action="store_true",
                        help="split the results by whether the bad epoch has a close neighbour")
    parser.add_argument("--drop-good", action="store_true",
                        help="delete the chosen epochs instead of moving them (the floor)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="serve the model with this outlier_threshold instead of its "
                             "manifest's (an experiment: the model was not trained with it)")
    args = parser.parse_args(argv)
    if args.threshold is not None:
        model = load_model(args.model)
        model.preprocessing = dataclasses.replace(model.preprocessing,
                                                  outlier_threshold=args.threshold)
    table, curves = load(args.min_epochs)
    curves = {int(s): curves[int(s)] for s in table["source_id"]}
    clean = predict(table, curves, args.model)
    feh0 = np.asarray(clean["feh_phot"])
    print(f"{len(table)} stars with >= {args.min_epochs} epochs; model {clean.meta['feh_model']}")
    if args.clean:
        error = feh0 - np.asarray(table["feh"])
        sensitive = (np.asarray(clean["feh_flags"]) & FLAG_BITS["epoch_sensitive"][0]) != 0
        print(f"clean: RMSE {np.sqrt(np.nanmean(error ** 2)):.4f} dex against the labels "
              f"(in sample); {int(flagged(clean).sum())} flagged, {int(sensitive.sum())} of "
              f"them sensitive to one epoch; epochs rejected from "
              f"{int((np.asarray(clean['feh_n_rejected']) > 0).sum())} stars")
    rng = np.random.default_rng(args.seed)
    chosen = {sid: rng.choice(len(p), size=args.n_bad, replace=False)
              for sid, (p, _) in curves.items()}
    signs = {sid: (rng.choice([-1.0, 1.0], size=args.n_bad) if args.random_signs
                   else np.ones(args.n_bad)) for sid in curves}
    groups = {"all": np.ones(len(table), dtype=bool)}
    if args.by_neighbour:
        close = np.array([has_neighbour(curves[int(s)][0], chosen[int(s)][0])
                          for s in table["source_id"]])
        groups.update({"close neighbour": close, "isolated": ~close})
        print(f"{close.mean():.1%} of the bad epochs lie within {_MERGE_TOLERANCE} cycle of "
              f"another epoch")
    print("offset  stars  >0.05 dex  >0.15 dex  median shift  bad epoch(s) rejected  "
          "none rejected  >sigma unflagged")
    for offset in [np.nan] if args.drop_good else args.offsets:
        bad = {}
        for sid, (phase, mag) in curves.items():
            mag = mag.copy()
            if args.drop_good:
                keep = np.ones(mag.size, dtype=bool)
                keep[chosen[sid]] = False
                bad[sid] = (phase[keep], mag[keep])
                continue
            mag[chosen[sid]] += offset * signs[sid]
            bad[sid] = (phase, mag)
        result = predict(table, bad, args.model)
        shift = np.abs(np.asarray(result["feh_phot"]) - feh0)
        std = np.asarray(result["feh_phot_std"])
        extra = np.asarray(result["feh_n_rejected"]) - np.asarray(clean["feh_n_rejected"])
        unflagged = ~flagged(result)
        for name, rows in groups.items():
            label = (" drop" if args.drop_good else f"{offset:5.1f}") if name == "all" else \
                f"  {name}"
            print(f"{label}  {rows.sum():5d}  {np.mean(shift[rows] > 0.05):9.1%}  "
                  f"{np.mean(shift[rows] > 0.15):9.1%}  {np.nanmedian(shift[rows]):12.4f}  "
                  f"{np.mean(extra[rows] >= args.n_bad):21.1%}  "
                  f"{np.mean(extra[rows] <= 0):13.1%}  "
                  f"{np.mean((shift > std)[rows] & unflagged[rows]):16.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
