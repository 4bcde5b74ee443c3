"""Record, or compare against a record, the [Fe/H] the package serves on the shared stars.

A refactoring must not move a served number. This script predicts every
labelled Gaia star of ``../shared/data/gaia_dr2_rrab_g`` (already-folded
phases), the RRab stars of ``../shared/data/sdss_stripe82_rrlyrae`` (raw
times, g band) and the embedded example (Gaia files with epochs, through
``add_feh`` and the chunked catalogue runner) through the public API, and writes value, σ, status and domain
of each star to an ``.npz`` file, or compares them with one written before::

    python scripts/served_predictions.py record runs/served_before.npz
    python scripts/served_predictions.py compare runs/served_before.npz   # 1e-6 dex

It exits with 1 when a value moved by more than the tolerance or a status changed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries

from rrlyrae_metallicity import add_feh, available_models
from rrlyrae_metallicity.catalogue import predict_catalogue
from rrlyrae_metallicity.cli import example_paths
from rrlyrae_metallicity.gaia import read_epoch_photometry, read_rrlyrae_parameters

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _gaia_inputs():
    stars = Table.read(SHARED / "gaia_dr2_rrab_g" / "stars.ecsv")
    epochs = Table.read(SHARED / "gaia_dr2_rrab_g" / "lightcurves.ecsv")
    order = np.argsort(epochs["source_id"], kind="stable")
    epochs = epochs[order]
    ids, starts = np.unique(np.asarray(epochs["source_id"]), return_index=True)
    ends = np.append(starts[1:], len(epochs))
    curves = {int(i): Table({"phase": epochs["phase"][s:e], "mag": epochs["mag"][s:e]})
              for i, s, e in zip(ids, starts, ends)}
    table = Table({"source_id": stars["source_id"], "pf": u.Quantity(stars["period"], u.day)})
    return table, curves


def _stripe82_inputs():
    stars = Table.read(SHARED / "sdss_stripe82_rrlyrae" / "stars.ecsv")
    epochs = Table.read(SHARED / "sdss_stripe82_rrlyrae" / "lightcurves.ecsv")
    stars = stars[stars["type"] == "ab"]
    curves = {}
    for star in stars:
        rows = epochs[(epochs["id"] == star["id"]) & (epochs["band"] == "g")]
        curves[int(star["id"])] = TimeSeries(
            time=Time(np.asarray(rows["time"], dtype=float), format="mjd"),
            data={"mag": np.asarray(rows["mag"], dtype=float)})
    table = Table({"source_id": stars["id"], "pf": u.Quantity(stars["period"], u.day)})
    return table, curves


def _example_results(model):
    """The embedded example through add_feh (with epochs) and the chunked catalogue runner."""
    photometry, parameters = (str(p) for p in example_paths())
    stars = read_rrlyrae_parameters(parameters)
    yield "example-add_feh", add_feh(stars, read_epoch_photometry(photometry), model=model)
    yield "example-catalogue", predict_catalogue(photometry, stars, model=model, chunk_size=7)


def served(models):
    """Every model's value, σ, status and domain on every data set, by array name."""
    out = {}
    inputs = (("gaia", _gaia_inputs()), ("stripe82", _stripe82_inputs()))
    for model in models:
        results = [(label, add_feh(table, curves, model=model, epoch_column=None))
                   for label, (table, curves) in inputs]
        for label, result in results + list(_example_results(model)):
            prefix = f"{label}.{model}"
            out[f"{prefix}.feh"] = np.asarray(result["feh_phot"].value, dtype=float)
            out[f"{prefix}.std"] = np.asarray(result["feh_phot_std"].value, dtype=float)
            out[f"{prefix}.status"] = np.asarray(result["feh_status"], dtype=str)
            out[f"{prefix}.domain"] = np.asarray(result["feh_domain"], dtype=str)
    return out


def compare(before, after, tolerance):
    """Lines describing every difference; empty when none."""
    problems = []
    for name in sorted(before):
        if name not in after:
            problems.append(f"{name}: missing")
            continue
        old, new = before[name], after[name]
        if old.dtype.kind == "f":
            same_nan = np.isnan(old) == np.isnan(new)
            diff = np.abs(np.nan_to_num(old - new))
            if not same_nan.all() or diff.max() > tolerance:
                problems.append(f"{name}: max |diff| {diff.max():.3g} dex, "
                                f"{(~same_nan).sum()} NaN changes")
        elif not np.array_equal(old, new):
            changed = np.flatnonzero(old != new)
            problems.append(f"{name}: {changed.size} differ, e.g. {old[changed[0]]!r} -> "
                            f"{new[changed[0]]!r}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("path")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="dex (default %(default)s)")
    parser.add_argument("--models", nargs="*", default=None,
                        help="models to predict with (default: every shipped one)")
    args = parser.parse_args(argv)
    models = args.models or available_models()
    values = served(models)
    if args.action == "record":
        Path(args.path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.path, **values)
        print(f"recorded {len(values)} arrays for {len(models)} models in {args.path}")
        return 0
    with np.load(args.path) as recorded:
        before = {name: recorded[name] for name in recorded.files
                  if name.split(".")[1] in models}
    problems = compare(before, values, args.tolerance)
    for line in problems:
        print(line)
    print("unchanged" if not problems else f"{len(problems)} arrays changed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
