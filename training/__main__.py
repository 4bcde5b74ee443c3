"""Command line of the training module: ``python -m training --help``.

Run it from the repository root (``training/`` is a folder of the repository,
not an installed package).

Examples
--------
Cross-validate on your own labels, export the fold models and ship them::

    python -m training cv --data-dir my_labels --run-dir runs/mine --label-description "..."
    python -m training ship --run-dir runs/mine --name mine

Recompute the training-domain ranges of a shipped model (out-of-domain flags)::

    python -m training domain --name gru

Ship the weighted mean of two shipped architectures as one model::

    python -m training composite --name gru_inception --components gru=0.5 inception=0.5
"""

import argparse
import json
import logging
import shlex
import signal
import sys
import time
from pathlib import Path

from rrlyrae_metallicity.exceptions import ModelError
from rrlyrae_metallicity.preprocessing import VARIANTS, PreprocessingConfig

from .cv import RunError, TrainingConfig
from .data import DEFAULT_DATA_DIR, TRAINING_DATA_FORMAT, TrainingDataError
from .logs import import_tensorflow_quietly, quiet_tensorflow
from .names import ARCHITECTURE_NAMES
from .native_onnx import NativeConversionError
from .paths import MODELS_DIR
from .ship import ShipError

log = logging.getLogger("training")

#: Errors that end a subcommand with one line and exit status 2: what the user
#: gave is wrong, not the code.
_USER_ERRORS = (TrainingDataError, RunError, ShipError, ModelError, NativeConversionError)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default appended to its help."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or not action.option_strings or action.default is None
                or action.nargs == 0  # a flag: its default is its absence
                or action.default == argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


def _add_parser(sub, name, **kwargs):
    return sub.add_parser(name, formatter_class=_HelpFormatter, **kwargs)


def _add_data_dir(parser, default=DEFAULT_DATA_DIR, help=None):
    parser.add_argument("--data-dir", type=Path, default=default, metavar="DIR",
                        help=help or "folder with the stars and light-curve tables (their "
                                     "columns: python -m training cv --help)")


def _cv_parser(sub, name):
    p = _add_parser(sub, name, help="stratified K-fold cross-validation, resumable fold by fold",
                    description="Train, cross-validate and export one architecture. "
                                "Re-running the same command resumes an interrupted run.",
                    epilog=TRAINING_DATA_FORMAT)
    _add_data_dir(p)
    p.add_argument("--run-dir", type=Path, required=True, metavar="DIR",
                   help="output and checkpoint folder (created)")
    p.add_argument("--label-description", default=None, metavar="TEXT",
                   help="what the labels are (sample, method, metallicity scale), recorded in "
                        "the run and in the manifest of the shipped model (default: none; the "
                        "manifest then says the labels are not described)")
    p.add_argument("--peer-column", default="auto", metavar="COLUMN",
                   help="column of the stars table with another method's [Fe/H], scored "
                        "beside the model ('auto': feh_dg22 when present; 'none': no peer)")
    p.add_argument("--architecture", default="gru", choices=ARCHITECTURE_NAMES,
                   help="network architecture (gru is the paper's)")
    p.add_argument("--variant", choices=VARIANTS, default="spline_centered",
                   help="pre-processing variant of the light curves")
    p.add_argument("--n-phases", type=int, default=PreprocessingConfig.n_phases,
                   help="phases of the smoothed light curve fed to the network")
    p.add_argument("--outlier-threshold", type=float, default=None, metavar="K",
                   help="reject up to 3 epochs per star lying more than K standard deviations "
                        "from the smooth curve of the others (default: keep every epoch)")
    p.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the fold split, the validation split and the weights")
    p.add_argument("--members-per-fold", type=int, default=1,
                   help="models per fold with different seeds, all shipped and averaged "
                        "(paper: 1)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, default=256, help="mini-batch size")
    p.add_argument("--max-epochs", type=int, default=1000, help="most training epochs")
    p.add_argument("--patience", type=int, default=50,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--reduce-lr-patience", type=int, default=0,
                   help="halve the learning rate after this many epochs without "
                        "improvement (0: fixed rate, as in the paper)")
    p.add_argument("--weight-power", type=float, default=1.0,
                   help="raise the paper's inverse-density training weights to this power "
                        "(1: paper, 0: unweighted); metrics always use the paper's weights")
    p.add_argument("--units", type=int, nargs="+", default=None,
                   help="units of the recurrent layers (default: the architecture's, e.g. "
                        "20 16 8 for the paper's GRU)")
    p.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                   help="train only these folds (to share a run between processes or "
                        "machines); run again without it to assemble the metrics")
    p.add_argument("--augment", type=int, default=0,
                   help="re-sampled copies of every training light curve (random subsets "
                        "of its epochs) added to the fit set")
    p.add_argument("--no-export", action="store_true",
                   help="skip the ONNX export (the run cannot be shipped)")


def _distill_parser(sub, name):
    from .distill import DistillConfig

    defaults = DistillConfig()
    p = _add_parser(sub, name, help="distil a shipped ensemble into one network, resumable",
                    description="Train one student network per fold of a shipped ensemble, "
                                "taught by that fold's members (which never saw the fold) on "
                                "the other folds' stars: its out-of-fold predictions measure "
                                "the student. Then a final student on every star, taught by "
                                "every member: the network that 'ship' ships. Re-running the "
                                "same command resumes an interrupted run from its last epoch.")
    _add_data_dir(p, help="the teacher's training data folder")
    p.add_argument("--run-dir", type=Path, required=True, metavar="DIR",
                   help="output and checkpoint folder (created)")
    p.add_argument("--teacher", default=defaults.teacher, metavar="MODEL",
                   help="the shipped ensemble to distil: a name or a model folder; its "
                        "recorded folds are used")
    p.add_argument("--init", default=defaults.init, metavar="FROM",
                   help="where the students start: 'teacher' (the teacher's own fold k member "
                        "0, which never saw fold k), a finished cv run of the student's "
                        "pre-processing (its fold k member 0), or 'random'")
    p.add_argument("--copies", type=int, default=defaults.copies,
                   help="varied copies of every light curve (fewer epochs, noise, an outlier "
                        "epoch, a phase shift), each labelled by the teacher on the star's "
                        "own curve")
    p.add_argument("--outlier-threshold", type=float, default=None, metavar="K",
                   help="the student's outlier rejection (default: the teacher's); the "
                        "teacher then labels the student's inputs")
    p.add_argument("--units", type=int, nargs=3, default=defaults.units,
                   help="units of the student's GRU layers (with --init random)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of everything random")
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                   help="Adam's starting learning rate")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="mini-batch size")
    p.add_argument("--max-epochs", type=int, default=defaults.max_epochs,
                   help="most epochs per student")
    p.add_argument("--patience", type=int, default=defaults.patience,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--reduce-lr-patience", type=int, default=defaults.reduce_lr_patience,
                   help="halve the learning rate after this many epochs without improvement")


def _ship_parser(sub, name):
    p = _add_parser(sub, name, help="copy a finished run's ONNX models into the package",
                    description="Copy the verified ONNX members of a finished run into "
                                "MODELS_DIR/NAME with a manifest describing the data the run "
                                "recorded (folder, checksums, label description, training "
                                "domain), its command and its accuracy. An existing model is "
                                "replaced only with --replace; a model no better than "
                                "predicting the median label is shipped with a warning, "
                                "recorded in its manifest.")
    p.add_argument("--run-dir", type=Path, required=True, metavar="DIR",
                   help="a finished 'cv' run")
    p.add_argument("--name", required=True,
                   help="model name, as in predict_feh(model=NAME), e.g. gru")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR, metavar="DIR",
                   help="where the model folder goes; elsewhere than the package, use it as "
                        "predict_feh(model='DIR/NAME')")
    p.add_argument("--replace", action="store_true",
                   help="replace an existing model of the same name")
    _add_data_dir(p, None, "the run's data, to measure the training domain (default: the "
                           "folder the run recorded)")
    p.add_argument("--label-description", default=None, metavar="TEXT",
                   help="what the labels are (default: the one given to cv)")
    p.add_argument("--produced-by", default=None, metavar="COMMAND",
                   help="the command that produced the run (default: the one it recorded)")
    p.add_argument("--default", action="store_true",
                   help="make it the package's default model (and update the README's table)")


def _study_parser(sub, name):
    from .study import PROFILES

    p = _add_parser(sub, name, help="the architecture × variant × grid study, resumable run by run",
                       description="Run or resume a study: every architecture, data variant, "
                                   "grid point and repeat of a profile, each a K-fold "
                                   "cross-validation run. Finished runs are never recomputed; "
                                   "results.ecsv and summary.ecsv are rewritten at the end.")
    _add_data_dir(p)
    p.add_argument("--study-dir", type=Path, required=True, metavar="DIR",
                   help="output and checkpoint folder")
    p.add_argument("--profile", default="smoke",
                   help=f"one of {sorted(PROFILES)} or a JSON file of StudyProfile fields")
    p.add_argument("--only", default=None,
                   help="run only the runs whose id contains this text, e.g. 'gru-', or "
                        "--only=-raw- for text that starts with '-' (to share a study "
                        "between processes)")


def _shipped_model_parser(sub, name, help, description):
    """A subcommand that rewrites part of a shipped model's manifest from the training data."""
    p = _add_parser(sub, name, help=help, description=description)
    _add_data_dir(p, None, "the model's training data (default: the folder its manifest "
                           "records, else the bundled set)")
    p.add_argument("--name", required=True, help="shipped model name, e.g. gru")
    return p


def _calibrate_parser(sub, name):
    p = _shipped_model_parser(
        sub, name, "calibrate a shipped model's uncertainty as the package serves it",
        "Predict the training set with a shipped model through the package's own "
        "pre-processing (each star by the members of the fold that held it out), fit the "
        "stretch of the predictions about their median (output_stretch) and the "
        "uncertainty calibration on those errors, and write both into the model's manifest.")
    p.add_argument("--no-stretch", dest="stretch", action="store_false",
                   help="leave the predictions unstretched (removes output_stretch)")


def _error_model_parser(sub, name):
    _shipped_model_parser(
        sub, name, "fit a shipped model's per-star error model as the package serves it",
        "Predict the training set with a shipped model through the package's own "
        "pre-processing (each star by the members of the fold that held it out), fit "
        "log sigma^2 linear in the star's features (epochs, phase gap, scatter about the "
        "smooth curve, amplitude, period, predicted [Fe/H], the members' spread) by Gaussian "
        "likelihood, check it cross-fitted, and write it into the model's manifest "
        "(uncertainty_calibration.error_model).")


def _domain_parser(sub, name):
    _shipped_model_parser(
        sub, name, "recompute a shipped model's training-domain ranges",
        "Measure the period, epoch-count and phase-coverage ranges of the training light "
        "curves through the package's own pre-processing and write them into the shipped "
        "model's manifest (training_domain), used for the feh_domain flags.")


def _native_parser(sub, name):
    p = _shipped_model_parser(
        sub, name, "add native ONNX GRU graphs to a shipped gru ensemble, for single stars",
        "Rewrite each ONNX member of a shipped gru ensemble (exported by tf2onnx as one "
        "Loop per layer, about 6,000 operator calls per prediction) with one native GRU "
        "node per layer and the same weights, check it against the member on the training "
        "inputs (1e-5 dex), and ship it beside the member (native_file in the manifest). "
        "The package runs these for calls on a few stars: one star costs 0.12 ms per "
        "member instead of 2.7 ms; batches keep the loops, faster there.")
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR, metavar="DIR",
                   help="where the model is")


def _composite_parser(sub, name):
    p = _add_parser(sub, name, help="ship a weighted mean of shipped models of "
                                  "different architectures",
                       description="Write the manifest of a composite model: the weighted "
                                   "mean of shipped ensembles, with its own output stretch "
                                   "and uncertainty calibration fitted on their served "
                                   "out-of-fold predictions.")
    _add_data_dir(p)
    p.add_argument("--name", help="name of the composite, e.g. gru_inception")
    p.add_argument("--components", nargs="+", metavar="NAME=WEIGHT",
                   help="shipped models and their weights, summing to 1")
    p.add_argument("--search", nargs="+", metavar="NAME",
                   help="instead, rank every equal-weight combination of these recorded "
                        "models by cross-fitted out-of-fold RMSE (the first one's folds)")
    p.add_argument("--max-size", type=int, default=4,
                   help="largest combination for --search")


def _report_parser(sub, name):
    p = _add_parser(sub, name, help="summary table and figures of a cv run or of a study",
                    description="For a cv run (--run-dir): its metrics beside the peer's and "
                                "the median label's (summary.ecsv, printed) and its figures "
                                "(out-of-fold predictions, loss curves). For a study "
                                "(--study-dir), finished or not: its summary table "
                                "(summary.ecsv), its profile and the paper's figures remade "
                                "from its finished runs, for the documentation; the "
                                "light-curve and [Fe/H] figures need --data-dir.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, metavar="DIR", help="a folder made by 'cv'")
    source.add_argument("--study-dir", type=Path, metavar="DIR",
                        help="a folder made by 'study' (or by 'cv')")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder, e.g. docs/study")
    _add_data_dir(p)


def explicit_command(subparser, args, skip=("only_folds",)):
    """The command line of a subcommand with every option spelt out, defaults included.

    What a run records, so that the manifest of a shipped model names
    everything that made it (the data folder as an absolute path).

    Parameters
    ----------
    subparser : argparse.ArgumentParser
        The subcommand's parser.
    args : argparse.Namespace
        Its parsed arguments.
    skip : sequence of str
        Destinations left out (``--only-folds`` trains part of a run).

    Returns
    -------
    str
    """
    words = ["python", "-m", "training", subparser.prog.split()[-1]]
    for action in subparser._actions:  # argparse has no public list of a parser's options
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in skip or value is None or value is False:
            continue
        if action.dest == "help":
            continue
        option = action.option_strings[-1]
        if value is True:
            words.append(option)
        elif isinstance(value, (list, tuple)):
            words += [option, *map(str, value)]
        else:
            words += [option, str(Path(value).resolve() if action.dest == "data_dir" else value)]
    return shlex.join(words)


def _run_cv(args, parser):
    from .cv import run_cross_validation
    from .data import load_dataset

    config = TrainingConfig(
        architecture=args.architecture,
        preprocessing=PreprocessingConfig(n_phases=args.n_phases, variant=args.variant,
                                          outlier_threshold=args.outlier_threshold).to_dict(),
        n_folds=args.folds, seed=args.seed, members_per_fold=args.members_per_fold,
        learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_epochs=args.max_epochs, patience=args.patience,
        reduce_lr_patience=args.reduce_lr_patience, weight_power=args.weight_power,
        model_kwargs={"units": args.units} if args.units else {},
        augment=args.augment,
    )
    peer = None if args.peer_column.lower() == "none" else args.peer_column
    dataset = load_dataset(args.data_dir, peer_column=peer)
    log.info("%d stars from %s%s", len(dataset), args.data_dir,
             f"; peer column {dataset.peer_column}" if dataset.peer_column else "; no peer")
    start = time.perf_counter()
    metrics = run_cross_validation(dataset, config, args.run_dir, export=not args.no_export,
                                   log=log.info, only_folds=args.only_folds,
                                   label_description=args.label_description,
                                   command=explicit_command(args.subparser, args))
    log.info("finished in %.0f s (this invocation)", time.perf_counter() - start)
    if metrics is None:  # only some folds were trained: nothing to report yet
        return
    print(json.dumps({"validation": metrics["validation"],
                      "pooled_out_of_fold": metrics["pooled_out_of_fold"],
                      "pooled_peer": metrics["pooled_peer"],
                      "median_baseline": metrics["median_baseline"]}, indent=2))


def _run_distill(args, parser):
    from .data import load_dataset
    from .distill import DistillConfig, run_distillation

    init = args.init if args.init in ("teacher", "random") else str(Path(args.init).resolve())
    config = DistillConfig(
        teacher=args.teacher, init=init, copies=args.copies, seed=args.seed,
        preprocessing=None if args.outlier_threshold is None else PreprocessingConfig(
            outlier_threshold=args.outlier_threshold).to_dict(),
        units=list(args.units), learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_epochs=args.max_epochs, patience=args.patience,
        reduce_lr_patience=args.reduce_lr_patience)
    dataset = load_dataset(args.data_dir)
    start = time.perf_counter()
    metrics = run_distillation(dataset, config, args.run_dir, log=log.info,
                               command=explicit_command(args.subparser, args))
    log.info("finished in %.0f s (this invocation)", time.perf_counter() - start)
    print(json.dumps({key: metrics[key] for key in
                      ("pooled_out_of_fold", "teacher_out_of_fold",
                       "student_minus_teacher_rms_dex", "pooled_peer")}, indent=2))


def _run_study(args, parser):
    from .data import load_dataset
    from .study import PROFILES, StudyProfile, run_study

    profile = (PROFILES[args.profile] if args.profile in PROFILES
               else StudyProfile.from_json(args.profile))
    results = run_study(load_dataset(args.data_dir), profile, args.study_dir, log=log.info,
                        only=args.only)
    log.info("%d runs finished; see %s", len(results), args.study_dir / "summary.ecsv")


def _run_report(args, parser):
    from .run_report import is_cv_run, write_run_report
    from .study.report import write_report

    run_dir = args.run_dir or (args.study_dir if is_cv_run(args.study_dir) else None)
    if run_dir is not None:
        summary = write_run_report(run_dir, args.out, log=log.info)
        summary.pprint_all()
        return
    write_report(args.study_dir, args.out, data_dir=args.data_dir, log=log.info)


def _model_data_dir(args, *, needs_results=False):
    """``--data-dir``, else the folder the shipped model's manifest records, else the bundled set.

    Also checks that ``--name`` is a model shipped in the package (and, with
    ``needs_results``, that its out-of-fold results are recorded), in one line.
    """
    from .paths import RESULTS_DIR
    from .ship import shipped_data_dir

    models_dir = Path(getattr(args, "models_dir", MODELS_DIR))
    if not (models_dir / args.name / "manifest.json").is_file():
        raise ShipError(f"no model called {args.name!r} in {models_dir}: give the name of a "
                        "model shipped into the package (python -m training ship --name NAME)")
    if needs_results and not (RESULTS_DIR / args.name / "oof_predictions.ecsv").is_file():
        raise ShipError(f"{args.name!r} has no recorded results in {RESULTS_DIR / args.name} "
                        "(which star each member held out): calibrate and error-model work on "
                        "models shipped into the package by python -m training ship")
    if args.data_dir is not None:
        return args.data_dir
    return shipped_data_dir(args.name, models_dir=models_dir) or DEFAULT_DATA_DIR


def _run_calibrate(args, parser):
    from .calibration import calibrate_shipped
    from .data import load_dataset

    dataset = load_dataset(_model_data_dir(args, needs_results=True))
    calibration = calibrate_shipped(args.name, dataset, stretch=args.stretch)
    print(json.dumps(calibration, indent=2))
    if calibration.get("stretch_rejected"):
        log.warning("WARNING: the stretch fitted for %r made the cross-fitted error worse; "
                    "the predictions stay unstretched", args.name)
    if calibration.get("error_model_dropped"):
        log.warning("WARNING: %r's error model was fitted on the previous calibration and has "
                    "been removed; run python -m training error-model --name %s again",
                    args.name, args.name)


def _run_error_model(args, parser):
    from .calibration import shipped_error_model
    from .data import load_dataset

    model = shipped_error_model(args.name,
                                load_dataset(_model_data_dir(args, needs_results=True)))
    print(json.dumps(model["crossfit"], indent=2))


def _run_native(args, parser):
    from .data import load_dataset
    from .native_onnx import nativize_shipped

    worst = nativize_shipped(args.name, load_dataset(_model_data_dir(args)),
                             models_dir=args.models_dir)
    log.info("%s: every member has its native rewrite; largest difference %.2g dex",
             args.name, worst)


def _run_composite(args, parser):
    from .composite import compose, parse_components, rank_combinations
    from .data import load_dataset

    if args.search:
        ranked = rank_combinations(args.search, load_dataset(args.data_dir),
                                   max_size=args.max_size)
        for column in ("r2", "rmse", "mae", "wrmse", "wmae"):
            ranked[column].info.format = ".4f"
        ranked.pprint_all()
        return
    if not (args.name and args.components):
        parser.error("composite needs --name and --components (or --search)")
    manifest = compose(args.name, parse_components(args.components), load_dataset(args.data_dir))
    print(json.dumps({"output_stretch": manifest.output_stretch,
                      "uncertainty_calibration": manifest.uncertainty_calibration}, indent=2))


def _run_domain(args, parser):
    from .data import load_dataset
    from .ship import update_training_domain

    print(json.dumps(update_training_domain(args.name, load_dataset(_model_data_dir(args))),
                     indent=2))


def _run_ship(args, parser):
    from .readme import update_readme
    from .ship import record_results, ship_run
    from .ship_student import is_distillation_run, ship_student

    distilled = is_distillation_run(args.run_dir)
    path = (ship_student if distilled else ship_run)(
        args.run_dir, args.name, produced_by=args.produced_by, make_default=args.default,
        data_dir=args.data_dir, models_dir=args.models_dir, replace=args.replace,
        label_description=args.label_description)
    manifest = json.loads(path.read_text())
    what = (f"one student distilled from {manifest['training_config']['distilled_from']!r}, "
            f"{len(manifest['crossfit_members'])} fold students for checks" if distilled
            else f"{len(manifest['members'])} members")
    log.info("shipped %s (%s; trained on %s)", path.parent, what,
             manifest["training_data"]["description"])
    warning = manifest["quality"].get("warning")
    if warning:
        log.warning("WARNING: model %r is %s", args.name, warning)
    if Path(args.models_dir).resolve() != MODELS_DIR.resolve():
        # Kept beside the model (a distillation reads the teacher's folds there).
        record_results(args.run_dir, "results", results_dir=path.parent)
        log.info("use it as predict_feh(..., model=%r)", str(path.parent))
        return
    log.info("use it as predict_feh(..., model=%r) (in an editable install; otherwise "
             "reinstall the package)", args.name)
    log.info("results recorded in %s", record_results(args.run_dir, args.name))
    if args.default and not distilled:
        metrics = json.loads((args.run_dir / "metrics.json").read_text())
        readme = Path(__file__).resolve().parents[1] / "README.md"
        update_readme(readme, metrics, args.name, manifest["produced_by"])
        log.info("README accuracy table updated")


#: Every subcommand: name → (adds the subcommand's parser, given the subparsers
#: and the name; runs it, given the parsed arguments and the main parser). The
#: help lists them in this order.
COMMANDS = {
    "cv": (_cv_parser, _run_cv),
    "distill": (_distill_parser, _run_distill),
    "ship": (_ship_parser, _run_ship),
    "study": (_study_parser, _run_study),
    "calibrate": (_calibrate_parser, _run_calibrate),
    "error-model": (_error_model_parser, _run_error_model),
    "domain": (_domain_parser, _run_domain),
    "native": (_native_parser, _run_native),
    "composite": (_composite_parser, _run_composite),
    "report": (_report_parser, _run_report),
}


def build_parser():
    """The parser of ``python -m training`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m training", formatter_class=_HelpFormatter,
        description=__doc__.split("Examples")[0].strip(),
        epilog="Each subcommand has its own --help. Training data: see "
               "'python -m training cv --help'.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_parser, _) in COMMANDS.items():
        add_parser(sub, name)
    for name, subparser in sub.choices.items():
        subparser.set_defaults(subparser=subparser)
    return parser


def main(argv=None):
    """Run one subcommand of ``python -m training``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, 2 for a usage or data error (one line on
        standard error), 130 when interrupted (one line saying how to resume).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    quiet_tensorflow()
    _, run = COMMANDS[args.command]
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    # Ctrl-C while TensorFlow traces a graph surfaces as some other error:
    # the flag tells an interruption from a failure.
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        if args.command in ("cv", "study", "distill"):
            import_tensorflow_quietly()
        run(args, parser)
    except _USER_ERRORS as error:
        if not interrupted:
            args.subparser.exit(2, f"{args.subparser.prog}: error: {error}\n")
        return _interrupted(args)
    except BaseException:
        if not interrupted:
            raise
        return _interrupted(args)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _interrupted(args):
    """Say in one line that the run stopped and how to resume it; the exit status 130."""
    where = getattr(args, "run_dir", None) or getattr(args, "study_dir", None)
    resume = (f"; run the same command again to resume: what {where} holds is kept"
              if where and args.command in ("cv", "study", "distill") else "")
    print(f"\ninterrupted{resume}", file=sys.stderr)
    return 130

if __name__ == "__main__":
    sys.exit(main())
