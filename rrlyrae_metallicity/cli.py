"""The ``rrlyrae-feh`` command.

Exit codes: 0 success; 1 an input could not be read or has the wrong layout;
2 wrong command-line usage; 3 ``--resume`` found partial results made from
another input or with other options; 130 interrupted (Ctrl-C): with ``-o``,
the finished chunks are kept and ``--resume`` continues from them.
"""

import argparse
import sys
from importlib.resources import files

from .catalogue import OUTPUT_FORMATS, write_table_atomically

__all__ = ["main", "write_table_atomically"]

#: Exit codes of ``rrlyrae-feh`` (also in ``--help`` and the README).
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RESUME, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_EXIT_CODES = ("exit codes: 0 success; 1 an input could not be read or has the wrong layout; "
               "2 wrong usage; 3 --resume found partial results of another input or other "
               "options; 130 interrupted (rerun with --resume to continue)")
_DEFAULT_CHUNK_SIZE = 10_000


def example_paths():
    """Paths of the embedded (simulated) example files.

    Returns
    -------
    epoch_photometry, vari_rrlyrae : Traversable
    """
    root = files("rrlyrae_metallicity") / "data" / "example"
    return root / "epoch_photometry.ecsv", root / "vari_rrlyrae.ecsv"


def _predict(args):
    import astropy.units as u

    from .catalogue import predict_catalogue
    from .gaia import read_rrlyrae_parameters

    if args.example:
        photometry_path, periods_path = example_paths()
        photometry_path, periods_path = str(photometry_path), str(periods_path)
    else:
        if args.epoch_photometry is None:
            _usage_error("give EPOCH_PHOTOMETRY_FILE or --example")
        photometry_path, periods_path = args.epoch_photometry, args.periods
    if periods_path is None and args.period is None:
        _usage_error("give --periods VARI_RRLYRAE_FILE or --period P")
    if args.resume and args.output is None:
        _usage_error("--resume needs -o OUT: the finished chunks are kept next to it")
    if args.output is not None and _suffix(args.output) not in OUTPUT_FORMATS:
        _usage_error(f"cannot tell the output format of {args.output}; use one of "
                     f"{', '.join(sorted(OUTPUT_FORMATS))}")
    stars = read_rrlyrae_parameters(periods_path) if periods_path is not None else None
    result = predict_catalogue(
        photometry_path, stars, period=None if stars is not None else args.period * u.day,
        output=args.output, chunk_size=args.chunk_size, resume=args.resume, model=args.model,
        log=lambda message: print(f"rrlyrae-feh: {message}", file=sys.stderr, flush=True),
    )
    if args.output is not None:
        print(f"wrote {len(result)} rows to {args.output}", file=sys.stderr)
    else:
        shown = [c for c in ("source_id", "pf", "feh_phot", "feh_phot_std", "feh_status",
                             "feh_domain", "feh_n_epochs", "feh_simulated")
                 if c in result.colnames]
        result[shown].pprint(max_lines=-1, max_width=-1)
    n_ok = int((result["feh_status"] == "ok").sum())
    n_outside = int((result["feh_domain"] != "").sum())
    print(f"[Fe/H] predicted for {n_ok} of {len(result)} stars (model: {result.meta['feh_model']}); "
          f"{n_outside} outside the training domain (see feh_domain)", file=sys.stderr)
    return EXIT_OK


def _suffix(path):
    from pathlib import Path

    return Path(path).suffix.lower()


def _usage_error(message):
    print(f"rrlyrae-feh predict: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _chunk_size(text):
    value = _number(text, int, "a whole number of stars")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of stars, not {value}")
    return value


def _number(text, kind, what):
    # argparse would otherwise name the converter: "invalid _chunk_size value".
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None


def _period_days(text):
    value = _number(text, float, "a number of days")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of days, not {text}")
    return value


def _models(args):
    from .ensemble import load_model
    from .registry import available_models, default_model_name

    default = default_model_name()
    for name in available_models():
        model = load_model(name)
        manifest = model.manifest
        # What the package serves: with the output stretch when there is one.
        stretch = manifest.get("output_stretch")
        metrics = (stretch["crossfit_out_of_fold"] if stretch
                   else manifest["cv_metrics"]["pooled_out_of_fold"])
        mark = " (default)" if name == default else ""
        if model.is_composite:
            what = "weighted mean of " + " + ".join(
                f"{weight:g} {part.name}" for part, weight in model.components)
        else:
            what = f"{len(model.sessions)} members ({len(set(model.member_folds))} folds)"
        print(f"{name}{mark}: {what}, cross-validated RMSE {metrics['rmse']:.3f} dex, "
              f"wRMSE {metrics['wrmse']:.3f} dex on {manifest['cv_metrics']['n_stars']} stars")
    return 0


def build_parser():
    """The argument parser of ``rrlyrae-feh``."""
    from .version import version

    parser = argparse.ArgumentParser(
        prog="rrlyrae-feh",
        description="Photometric metallicity [Fe/H] of RRab stars from Gaia G-band epoch "
                    "photometry, with ONNX models trained on real Gaia light curves.",
        epilog=_EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser(
        "predict", help="predict [Fe/H] for the stars of an epoch-photometry file",
        description="Read a Gaia epoch-photometry file (DataLink EPOCH_PHOTOMETRY or the "
                    "gaiadr3.epoch_photometry TAP table; VOTable, ECSV, CSV or FITS), keep the "
                    "unrejected G transits, and write the star table with feh_phot, "
                    "feh_phot_std (dex), feh_status, feh_domain and feh_n_epochs columns. The "
                    "periods come from --periods (one row per star) or --period (one for all, "
                    "in days); every star "
                    "of the period table is kept, in order. The catalogue is processed in "
                    "chunks of stars; the output is written atomically (temporary file, then "
                    "rename).",
        epilog=_EXIT_CODES,
    )
    predict.add_argument("epoch_photometry", nargs="?", metavar="EPOCH_PHOTOMETRY_FILE",
                         help="Gaia epoch photometry of one or more sources")
    source = predict.add_mutually_exclusive_group()
    source.add_argument("--periods", metavar="VARI_RRLYRAE_FILE",
                        help="table with source_id, pf (days) and optionally epoch_g, like "
                             "gaiadr3.vari_rrlyrae")
    source.add_argument("--period", type=_period_days, metavar="P",
                        help="one period in days for every source in the file")
    predict.add_argument("--example", action="store_true",
                         help="run on the embedded example (20 simulated Gaia-like RRab stars)")
    predict.add_argument("-o", "--output", metavar="OUT",
                         help="output table; format from the extension (.ecsv, .csv, .fits, "
                              ".xml); printed to the terminal when omitted")
    predict.add_argument("--model", default="default",
                         help="model ensemble to use (default: the one marked default by "
                              "'rrlyrae-feh models', which lists them)")
    predict.add_argument("--chunk-size", type=_chunk_size, default=_DEFAULT_CHUNK_SIZE,
                         metavar="N",
                         help="sources predicted at a time (default %(default)s): memory grows "
                              "with N, not with the catalogue. CSV, ECSV, FITS and Parquet "
                              "files are read a block at a time and must keep each source's "
                              "rows together, as the archive writes them; a VOTable is read "
                              "whole")
    predict.add_argument("--resume", action="store_true",
                         help="continue an interrupted run with the same input and options "
                              "from its finished chunks, kept in OUT.parts until OUT is "
                              "written; without --resume a run starts over")
    predict.set_defaults(handler=_predict)

    models = sub.add_parser("models", help="list the shipped model ensembles",
                            description="List the shipped model ensembles and their "
                                        "cross-validated accuracy.")
    models.set_defaults(handler=_models)
    return parser


def main(argv=None):
    """Entry point of ``rrlyrae-feh``; returns the exit code."""
    from .catalogue import ResumeError
    from .exceptions import InputFormatError, ModelError, ModelIntegrityError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ResumeError as error:
        print(f"rrlyrae-feh: error: {error}", file=sys.stderr)
        return EXIT_RESUME
    except FileNotFoundError as error:
        print(f"rrlyrae-feh: error: no such file: {error.filename or error}", file=sys.stderr)
        return EXIT_INPUT
    except (InputFormatError, ModelIntegrityError, KeyError) as error:
        print(f"rrlyrae-feh: error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as error:
        # An unknown --model name; the message lists the shipped ones.
        print(f"rrlyrae-feh: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        resume = " (rerun with --resume to continue from the finished chunks)" \
            if getattr(args, "output", None) else ""
        print(f"rrlyrae-feh: interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
