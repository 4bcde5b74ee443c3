"""Command line of the training module: ``python -m training --help``.

Examples
--------
Cross-validate the paper's GRU, export the fold models and ship them::

    python -m training cv --run-dir runs/gru --members-per-fold 3
    python -m training ship --run-dir runs/gru --name gru

Recompute the training-domain ranges of a shipped model (out-of-domain flags)::

    python -m training domain --name gru

Ship the weighted mean of two shipped architectures as one model::

    python -m training composite --name gru_inception --components gru=0.5 inception=0.5
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from rrlyrae_metallicity.preprocessing import VARIANTS, PreprocessingConfig

from .cv import TrainingConfig
from .data import DEFAULT_DATA_DIR

log = logging.getLogger("training")


def _add_data_dir(parser):
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with stars.ecsv and lightcurves.ecsv (default: %(default)s)")


def _cv_parser(sub, name):
    p = sub.add_parser(name, help="stratified K-fold cross-validation, resumable fold by fold",
                       description="Train, cross-validate and export one architecture. "
                                   "Re-running the same command resumes an interrupted run.")
    _add_data_dir(p)
    p.add_argument("--run-dir", type=Path, required=True, help="output and checkpoint folder")
    p.add_argument("--architecture", default="gru")
    p.add_argument("--variant", choices=VARIANTS, default="spline_centered")
    p.add_argument("--n-phases", type=int, default=PreprocessingConfig.n_phases)
    p.add_argument("--outlier-threshold", type=float, default=None, metavar="K",
                   help="reject up to 3 epochs per star lying more than K robust scales from "
                        "the smooth curve of the others (default: keep every epoch)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--members-per-fold", type=int, default=1,
                   help="models per fold with different seeds, averaged (paper: 1)")
    p.add_argument("--learning-rate", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--reduce-lr-patience", type=int, default=0,
                   help="halve the learning rate after this many epochs without "
                        "improvement (0: fixed rate, as in the paper)")
    p.add_argument("--weight-power", type=float, default=1.0,
                   help="raise the paper's inverse-density training weights to this power "
                        "(1: paper, 0: unweighted); metrics always use the paper's weights")
    p.add_argument("--units", type=int, nargs="+", default=None,
                   help="units of the recurrent layers (paper's GRU: 20 16 8)")
    p.add_argument("--only-folds", type=int, nargs="+", default=None,
                   help="train only these folds (to share a run between processes or "
                        "machines); run again without it to assemble the metrics")
    p.add_argument("--augment", type=int, default=0,
                   help="re-sampled copies of every training light curve (random subsets "
                        "of its epochs) added to the fit set (default: none)")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export")


def _ship_parser(sub, name):
    p = sub.add_parser(name, help="copy a finished run's ONNX models into the package",
                       description="Copy the verified ONNX members of a finished run into "
                                   "rrlyrae_metallicity/data/models/NAME with a manifest.")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--name", required=True, help="model name, e.g. gru")
    p.add_argument("--produced-by", default=None,
                   help="the command that produced the run (recorded in the manifest)")
    p.add_argument("--default", action="store_true", help="make it the default model")


def _study_parser(sub, name):
    from .study import PROFILES

    p = sub.add_parser(name, help="the architecture × variant × grid study, resumable run by run",
                       description="Run or resume a study: every architecture, data variant, "
                                   "grid point and repeat of a profile, each a K-fold "
                                   "cross-validation run. Finished runs are never recomputed; "
                                   "results.ecsv and summary.ecsv are rewritten at the end.")
    _add_data_dir(p)
    p.add_argument("--study-dir", type=Path, required=True, help="output and checkpoint folder")
    p.add_argument("--profile", default="smoke",
                   help=f"one of {sorted(PROFILES)} or a JSON file of StudyProfile fields "
                        "(default: %(default)s)")
    p.add_argument("--only", default=None,
                   help="run only the runs whose id contains this text, e.g. 'gru-', or "
                        "--only=-raw- for text that starts with '-' (to share a study "
                        "between processes)")


def _shipped_model_parser(sub, name, help, description):
    """A subcommand that rewrites part of a shipped model's manifest from the training data."""
    p = sub.add_parser(name, help=help, description=description)
    _add_data_dir(p)
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


def _composite_parser(sub, name):
    p = sub.add_parser(name, help="ship a weighted mean of shipped models of "
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
                   help="largest combination for --search (default: %(default)s)")


def _report_parser(sub, name):
    p = sub.add_parser(name, help="summary table and figures of a study, finished or not",
                       description="Write a study's summary table (summary.ecsv), its profile "
                                   "and the paper's figures remade from its finished runs "
                                   "(PNG) into --out, for the documentation. The light-curve "
                                   "and [Fe/H] figures need --data-dir; they are skipped "
                                   "when it is absent.")
    p.add_argument("--study-dir", type=Path, required=True, help="a folder made by 'study'")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. docs/study")
    _add_data_dir(p)


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
    start = time.perf_counter()
    metrics = run_cross_validation(load_dataset(args.data_dir), config, args.run_dir,
                                   export=not args.no_export, log=log.info,
                                   only_folds=args.only_folds)
    log.info("finished in %.0f s (this invocation)", time.perf_counter() - start)
    if metrics is None:  # only some folds were trained: nothing to report yet
        return
    print(json.dumps({"validation": metrics["validation"],
                      "pooled_out_of_fold": metrics["pooled_out_of_fold"],
                      "pooled_peer": metrics["pooled_peer"]}, indent=2))


def _run_study(args, parser):
    from .data import load_dataset
    from .study import PROFILES, StudyProfile, run_study

    profile = (PROFILES[args.profile] if args.profile in PROFILES
               else StudyProfile.from_json(args.profile))
    results = run_study(load_dataset(args.data_dir), profile, args.study_dir, log=log.info,
                        only=args.only)
    log.info("%d runs finished; see %s", len(results), args.study_dir / "summary.ecsv")


def _run_report(args, parser):
    from .study.report import write_report

    write_report(args.study_dir, args.out, data_dir=args.data_dir, log=log.info)


def _run_calibrate(args, parser):
    from .calibration import calibrate_shipped
    from .data import load_dataset

    calibration = calibrate_shipped(args.name, load_dataset(args.data_dir), stretch=args.stretch)
    print(json.dumps(calibration, indent=2))


def _run_error_model(args, parser):
    from .calibration import shipped_error_model
    from .data import load_dataset

    model = shipped_error_model(args.name, load_dataset(args.data_dir))
    print(json.dumps(model["crossfit"], indent=2))


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

    print(json.dumps(update_training_domain(args.name, load_dataset(args.data_dir)), indent=2))


def _run_ship(args, parser):
    from .readme import update_readme
    from .ship import record_results, ship_run

    command = args.produced_by or f"python -m training cv --run-dir {args.run_dir}"
    path = ship_run(args.run_dir, args.name, produced_by=command, make_default=args.default)
    log.info("shipped %s", path)
    log.info("results recorded in %s", record_results(args.run_dir, args.name))
    if args.default:
        metrics = json.loads((args.run_dir / "metrics.json").read_text())
        readme = Path(__file__).resolve().parents[1] / "README.md"
        update_readme(readme, metrics, args.name, command)
        log.info("README accuracy table updated")


#: Every subcommand: name → (adds the subcommand's parser, given the subparsers
#: and the name; runs it, given the parsed arguments and the main parser). The
#: help lists them in this order.
COMMANDS = {
    "cv": (_cv_parser, _run_cv),
    "ship": (_ship_parser, _run_ship),
    "study": (_study_parser, _run_study),
    "calibrate": (_calibrate_parser, _run_calibrate),
    "error-model": (_error_model_parser, _run_error_model),
    "domain": (_domain_parser, _run_domain),
    "composite": (_composite_parser, _run_composite),
    "report": (_report_parser, _run_report),
}


def main(argv=None):
    """Run one subcommand of ``python -m training``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status (0; argument errors exit through `argparse`).
    """
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_parser, _) in COMMANDS.items():
        add_parser(sub, name)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    _, run = COMMANDS[args.command]
    run(args, parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
