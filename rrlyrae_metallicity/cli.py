"""The ``rrlyrae-feh`` command.

Every problem ends in one line on standard error that names the file and the
problem, and an exit code of `EXIT_CODES` (the same table is printed by
``--help`` and written in the README and the documentation).
"""

import argparse
import logging
import sys
from importlib.resources import files

__all__ = ["EXIT_CODES", "main", "build_parser", "example_paths"]

#: Exit codes of ``rrlyrae-feh``, printed by ``--help`` and listed in the README and docs.
EXIT_CODES = {
    0: "success",
    1: "an input file cannot be used: missing, empty, truncated, unreadable, not a table, or "
       "without the columns of a Gaia layout",
    2: "wrong usage: bad options, or an output that would replace an input",
    3: "--resume found partial results made from another input or with other options",
    4: "the output cannot be written (no such folder, no permission, disk full)",
    5: "a shipped model file is missing or corrupt (reinstall the package)",
    130: "interrupted (Ctrl-C); with -o, rerun with --resume to continue",
}
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RESUME, EXIT_OUTPUT, EXIT_MODEL, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 5, 130)
_DEFAULT_CHUNK_SIZE = 10_000
# --format: astropy's names and the short ones people type.
_FORMATS = {"votable": "votable", "ascii.ecsv": "ascii.ecsv", "ascii.csv": "ascii.csv",
            "fits": "fits", "parquet": "parquet", "ecsv": "ascii.ecsv", "csv": "ascii.csv",
            "xml": "votable"}

log = logging.getLogger("rrlyrae_metallicity.cli")


def exit_code_lines():
    """The exit codes as ``"  CODE  meaning"`` lines (for ``--help``)."""
    return [f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items()]


def example_paths():
    """Paths of the embedded (simulated) example files.

    Returns
    -------
    epoch_photometry, vari_rrlyrae : Traversable
    """
    root = files("rrlyrae_metallicity") / "data" / "example"
    return root / "epoch_photometry.ecsv", root / "vari_rrlyrae.ecsv"


class _UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


# --------------------------------------------------------------------------
# Messages: logging, and a progress bar on a terminal
# --------------------------------------------------------------------------


def _configure_logging(verbosity):
    """Send the package's log records to standard error, ``rrlyrae-feh: message``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rrlyrae-feh: %(message)s"))
    logger = logging.getLogger("rrlyrae_metallicity")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel({-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG))


class _ProgressBar:
    """A one-line progress bar on a terminal's standard error; nothing elsewhere."""

    def __init__(self, enabled, width=30):
        self.enabled = enabled
        self.width = width
        self.shown = False

    def __call__(self, done, expected):
        if not self.enabled:
            return
        if expected:
            filled = min(self.width, round(self.width * done / expected))
            text = (f"[{'#' * filled}{'-' * (self.width - filled)}] "
                    f"{done:,} of {expected:,} stars ({100 * done / expected:.0f} %)")
        else:
            text = f"{done:,} sources done"
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------


def _predict(args):
    import astropy.units as u
    import numpy as np

    from .catalogue import predict_catalogue
    from .exceptions import InputFormatError, OutputError
    from .gaia import read_rrlyrae_parameters
    from .messages import plural
    from .outputs import OUTPUT_FORMATS, check_not_an_input, check_writable

    if args.example:
        if args.epoch_photometry is not None or args.periods is not None:
            raise _UsageError("--example runs on the embedded files: give either --example or "
                              "EPOCH_PHOTOMETRY_FILE, not both")
        photometry_path, periods_path = (str(p) for p in example_paths())
    else:
        if args.epoch_photometry is None:
            raise _UsageError("give EPOCH_PHOTOMETRY_FILE or --example")
        photometry_path, periods_path = args.epoch_photometry, args.periods
    if periods_path is None and args.period is None:
        raise _UsageError("give --periods VARI_RRLYRAE_FILE or --period P")
    if args.resume and args.output is None:
        raise _UsageError("--resume needs -o OUT: the finished chunks are kept next to it")
    inputs = [p for p in (photometry_path, periods_path) if p is not None]
    if args.output is not None:
        if _suffix(args.output) not in OUTPUT_FORMATS:
            raise _UsageError(f"cannot tell the output format of {args.output}; use one of "
                              f"{', '.join(sorted(OUTPUT_FORMATS))}")
        try:
            check_not_an_input(args.output, inputs)
        except OutputError as error:
            raise _UsageError(str(error)) from None
        check_writable(args.output)  # exit code 4 before any work
    stars = read_rrlyrae_parameters(periods_path) if periods_path is not None else None
    bar = _ProgressBar(sys.stderr.isatty() and args.verbosity >= 0)
    unmatched = []

    def report(message):
        # On a terminal the bar shows the chunks; elsewhere (logs) one line each.
        if message.startswith("chunk "):
            if "without a row in the star table" in message:
                unmatched.append(int(message.split(": ", 1)[1].split()[0].replace(",", "")))
            log.log(logging.DEBUG if bar.enabled else logging.INFO, message)
            return
        bar.close()
        log.info(message)

    try:
        result = predict_catalogue(
            photometry_path, stars, period=None if stars is not None else args.period * u.day,
            output=args.output, chunk_size=args.chunk_size, resume=args.resume,
            model=args.model, format=_FORMATS.get(args.format), inputs=inputs, progress=bar,
            log=report)
    except u.UnitsError as error:
        # A column of the period table in a unit that is not a time.
        raise InputFormatError(f"{periods_path}: {error}") from None
    finally:
        bar.close()
    if unmatched:
        count = sum(unmatched)
        log.warning(f"{plural(count, 'source')} of {photometry_path} "
                    f"{'has' if count == 1 else 'have'} no row in {periods_path}: not predicted")
    if args.output is not None:
        log.info(f"wrote {plural(len(result), 'row')} to {args.output}")
    else:
        _print_rounded(result)
    ok = np.asarray(result["feh_status"]) == "ok"
    n_outside = int((ok & (np.asarray(result["feh_domain"]) != "")).sum())
    n_not_rrab = int((np.asarray(result["feh_status"]) == "not_rrab").sum())
    not_rrab = f"; {n_not_rrab:,} not RRab (status not_rrab)" if n_not_rrab else ""
    log.info(f"[Fe/H] predicted for {int(ok.sum()):,} of {plural(len(result), 'star')} (model: "
             f"{result.meta['feh_model']}); {n_outside:,} of them outside the training domain "
             f"(see feh_domain, feh_flags){not_rrab}")
    return EXIT_OK


def _print_rounded(result):
    """The result table on standard output, [Fe/H] rounded for reading (files keep all digits)."""
    shown = [c for c in ("source_id", "pf", "feh_phot", "feh_phot_std", "feh_status",
                         "feh_domain", "feh_n_epochs", "feh_simulated") if c in result.colnames]
    table = result[shown]
    for name in ("feh_phot", "feh_phot_std", "feh_simulated"):
        if name in table.colnames:
            table[name].info.format = ".3f"
    if "pf" in table.colnames:
        table["pf"].info.format = ".5f"
    table.pprint(max_lines=-1, max_width=-1)


def _suffix(path):
    from pathlib import Path

    return Path(path).suffix.lower()


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


def _model_stage_speed(model, n_stars=256):
    """Stars per second through a model's networks alone (measured now, after a warm-up).

    The pre-processing costs the same for every model; this is what
    differs between them.
    """
    import time

    import numpy as np

    inputs = np.zeros((n_stars, model.preprocessing.n_phases, 2), dtype=np.float32)
    model.predict_members(inputs[:8])
    start = time.perf_counter()
    model.predict_members(inputs)
    return n_stars / (time.perf_counter() - start)


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
        elif model.is_distilled:
            what = ("1 network distilled from "
                    f"{manifest['training_config']['distilled_from']}")
        else:
            what = f"{len(model.sessions)} members ({len(set(model.member_folds))} folds)"
        print(f"{name}{mark}: {what}, cross-validated RMSE {metrics['rmse']:.3f} dex, "
              f"wRMSE {metrics['wrmse']:.3f} dex on {manifest['cv_metrics']['n_stars']:,} "
              f"stars; {_model_stage_speed(model):,.0f} stars/s in the network on this machine")
        warning = (manifest.get("quality") or {}).get("warning")
        if warning:
            print(f"  WARNING: {warning}")
    return EXIT_OK


def build_parser():
    """The argument parser of ``rrlyrae-feh``."""
    from .version import version

    epilog = "exit codes:\n" + "\n".join(exit_code_lines())
    parser = argparse.ArgumentParser(
        prog="rrlyrae-feh",
        description="Photometric metallicity [Fe/H] of RRab stars from Gaia G-band epoch "
                    "photometry, with ONNX models trained on real Gaia light curves.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser(
        "predict", help="predict [Fe/H] for the stars of an epoch-photometry file",
        description="Read a Gaia epoch-photometry file (DataLink EPOCH_PHOTOMETRY or the "
                    "gaiadr3.epoch_photometry TAP table; VOTable, ECSV, CSV, FITS or "
                    "Parquet), keep the unrejected G transits, and write the star table "
                    "with feh_phot, feh_phot_std (dex), feh_status, feh_domain, feh_flags, "
                    "feh_n_epochs, feh_n_rejected and feh_epoch_influence columns and its "
                    "provenance (package version, model and "
                    "its sha256, time, inputs, pre-processing, label scale). The periods "
                    "come from --periods (one row per star) or --period (one for all, in "
                    "days); every star of the period table is kept, in order. The "
                    "catalogue is processed in chunks of stars; the output is written "
                    "atomically (temporary file, then rename), never over an input.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
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
                              ".xml); printed to the terminal (rounded) when omitted")
    predict.add_argument("--format", choices=list(_FORMATS), default=None,
                         help="format of EPOCH_PHOTOMETRY_FILE (default: from the extension, "
                              "else from the file's first bytes)")
    predict.add_argument("--model", default="default",
                         help="model ensemble to use: a name listed by 'rrlyrae-feh models' "
                              "(default: the one it marks default), or the folder of a "
                              "retrained model")
    predict.add_argument("--chunk-size", type=_chunk_size, default=_DEFAULT_CHUNK_SIZE,
                         metavar="N",
                         help="sources read and predicted at a time (default %(default)s): "
                              "memory grows "
                              "with N, not with the catalogue. CSV, ECSV, FITS and Parquet "
                              "files are read a block at a time and must keep each source's "
                              "rows together, as the archive writes them; a VOTable is read "
                              "whole")
    predict.add_argument("--resume", action="store_true",
                         help="continue an interrupted run with the same input and options "
                              "from its finished chunks, kept in OUT.parts until OUT is "
                              "written; without --resume a run starts over")
    loudness = predict.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                          default=0, help="print only warnings and errors")
    loudness.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                          help="also print a line per chunk on a terminal")
    predict.set_defaults(handler=_predict)

    models = sub.add_parser("models", help="list the shipped models",
                            description="List the shipped models, their cross-validated "
                                        "accuracy and the speed of their networks on this "
                                        "machine (stars per second, pre-processing aside).")
    models.set_defaults(handler=_models, verbosity=0)
    return parser


def _exit_codes_of_errors():
    """The package's errors and their exit codes, most specific first."""
    from .catalogue import ResumeError
    from .exceptions import InputFormatError, ModelError, ModelIntegrityError, OutputError

    # ModelIntegrityError is a ModelError: it must come first. A plain
    # ModelError is an unknown --model name (its message lists the shipped ones).
    return ((ResumeError, EXIT_RESUME), (InputFormatError, EXIT_INPUT),
            (OutputError, EXIT_OUTPUT), (ModelIntegrityError, EXIT_MODEL),
            (ModelError, EXIT_USAGE))


def main(argv=None):
    """Entry point of ``rrlyrae-feh``; returns the exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbosity)
    codes = _exit_codes_of_errors()
    try:
        return args.handler(args)
    except _UsageError as error:
        print(f"rrlyrae-feh {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except tuple(kind for kind, _ in codes) as error:
        log.error(f"error: {error}")
        return next(code for kind, code in codes if isinstance(error, kind))
    except KeyboardInterrupt:
        resume = " (rerun with --resume to continue from the finished chunks)" \
            if getattr(args, "output", None) else ""
        log.error(f"interrupted{resume}")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
