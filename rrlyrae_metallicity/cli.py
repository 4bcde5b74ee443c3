"""The ``rrlyrae-feh`` command.

Exit codes: 0 success; 1 an input could not be read or has the wrong layout;
2 wrong command-line usage (argparse).
"""

import argparse
import os
import sys
import tempfile
import warnings
from importlib.resources import files
from pathlib import Path

__all__ = ["main"]

_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits",
            ".xml": "votable", ".vot": "votable"}


def example_paths():
    """Paths of the embedded (simulated) example files.

    Returns
    -------
    epoch_photometry, vari_rrlyrae : Traversable
    """
    root = files("rrlyrae_metallicity") / "data" / "example"
    return root / "epoch_photometry.ecsv", root / "vari_rrlyrae.ecsv"


def write_table_atomically(table, path):
    """Write ``table`` to ``path`` (format from the extension) via a temporary file.

    An interrupted run therefore never leaves a half-written table behind.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the output format of {path}; use one of {sorted(_FORMATS)}")
    if fmt == "fits":
        table = _fits_compatible(table)
    handle, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                   prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            # Long metadata keys become HIERARCH cards in FITS: valid, and expected.
            warnings.filterwarnings("ignore", message=".*HIERARCH card will be created")
            table.write(tmp, format=fmt, overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fits_compatible(table):
    """FITS has no 'dex' unit: keep the values, move the unit into the description."""
    import astropy.units as u

    table = table.copy(copy_data=False)
    for column in table.itercols():
        if column.unit == u.dex:
            column.unit = None
            column.description = f"[dex] {column.description or ''}".strip()
    return table


def _predict(args):
    import astropy.units as u
    from astropy.table import Table

    from .gaia import read_epoch_photometry, read_rrlyrae_parameters
    from .inference import add_feh

    if args.example:
        photometry_path, periods_path = example_paths()
    else:
        if args.epoch_photometry is None:
            raise SystemExit("rrlyrae-feh predict: give EPOCH_PHOTOMETRY_FILE or --example")
        photometry_path, periods_path = args.epoch_photometry, args.periods
    lightcurves = read_epoch_photometry(photometry_path)
    if periods_path is not None:
        stars = read_rrlyrae_parameters(periods_path)
    elif args.period is not None:
        stars = Table({"source_id": list(lightcurves), "pf": [args.period] * len(lightcurves)})
        stars["pf"].unit = u.day
    else:
        raise SystemExit("rrlyrae-feh predict: give --periods VARI_RRLYRAE_FILE or --period P")
    result = add_feh(stars, lightcurves, model=args.model)
    if args.output is not None:
        write_table_atomically(result, args.output)
        print(f"wrote {len(result)} rows to {args.output}", file=sys.stderr)
    else:
        shown = [c for c in ("source_id", "pf", "feh_phot", "feh_phot_std", "feh_status",
                             "feh_domain", "feh_simulated") if c in result.colnames]
        result[shown].pprint(max_lines=-1, max_width=-1)
    n_ok = int((result["feh_status"] == "ok").sum())
    n_outside = int((result["feh_domain"] != "").sum())
    print(f"[Fe/H] predicted for {n_ok} of {len(result)} stars (model: {result.meta['feh_model']}); "
          f"{n_outside} outside the training domain (see feh_domain)", file=sys.stderr)
    return 0


def _models(args):
    from .models import available_models, default_model_name, load_model

    default = default_model_name()
    for name in available_models():
        manifest = load_model(name).manifest
        rmse = manifest["cv_metrics"]["pooled_out_of_fold"]["rmse"]
        mark = " (default)" if name == default else ""
        print(f"{name}{mark}: {len(manifest['members'])} members, "
              f"cross-validated RMSE {rmse:.3f} dex on {manifest['cv_metrics']['n_stars']} stars")
    return 0


def build_parser():
    """The argument parser of ``rrlyrae-feh``."""
    from .version import version

    parser = argparse.ArgumentParser(
        prog="rrlyrae-feh",
        description="Photometric metallicity [Fe/H] of RRab stars from Gaia G-band epoch "
                    "photometry, with ONNX models trained on real Gaia light curves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser(
        "predict", help="predict [Fe/H] for the stars of an epoch-photometry file",
        description="Read a Gaia epoch-photometry file (DataLink EPOCH_PHOTOMETRY or the "
                    "gaiadr3.epoch_photometry TAP table; VOTable, ECSV, CSV or FITS), keep the "
                    "unrejected G transits, and write the star table with feh_phot, "
                    "feh_phot_std and feh_status columns. Every star of the period table is "
                    "kept, in order.",
    )
    predict.add_argument("epoch_photometry", nargs="?", metavar="EPOCH_PHOTOMETRY_FILE",
                         help="Gaia epoch photometry of one or more sources")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--periods", metavar="VARI_RRLYRAE_FILE",
                        help="table with source_id, pf (days) and optionally epoch_g, like "
                             "gaiadr3.vari_rrlyrae")
    source.add_argument("--period", type=float, metavar="P",
                        help="one period in days for every source in the file")
    predict.add_argument("--example", action="store_true",
                         help="run on the embedded example (20 simulated Gaia-like RRab stars)")
    predict.add_argument("-o", "--output", metavar="OUT",
                         help="output table; format from the extension (.ecsv, .csv, .fits, "
                              ".xml); printed to the terminal when omitted")
    predict.add_argument("--model", default="default",
                         help="model ensemble to use (see 'rrlyrae-feh models')")
    predict.set_defaults(handler=_predict)

    models = sub.add_parser("models", help="list the shipped model ensembles",
                            description="List the shipped model ensembles and their "
                                        "cross-validated accuracy.")
    models.set_defaults(handler=_models)
    return parser


def main(argv=None):
    """Entry point of ``rrlyrae-feh``; returns the exit code."""
    from .exceptions import InputFormatError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (InputFormatError, FileNotFoundError, KeyError) as error:
        print(f"rrlyrae-feh: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
