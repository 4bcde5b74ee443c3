"""Run or resume a study: every planned run, each a resumable cross-validation."""

import json
import time
from pathlib import Path

import numpy as np

from ..cv import TrainingConfig, run_cross_validation
from ..data import Dataset
from ..files import write_json
from ..folds import strata
from .plan import StudyProfile, plan_runs
from .results import collect_results, summarise

__all__ = ["record_profile", "run_study"]


def _subset(dataset, n_stars, seed):
    """A stratified random subset of ``n_stars`` stars, in the dataset's order."""
    from sklearn.model_selection import train_test_split

    if n_stars is None or n_stars >= len(dataset):
        return dataset
    keep, _ = train_test_split(np.arange(len(dataset)), train_size=n_stars, random_state=seed,
                               stratify=strata(dataset.feh, 3))
    keep = np.sort(keep)
    record = dict(dataset.record, n_stars=int(n_stars), subset_seed=seed) if dataset.record else {}
    return Dataset(stars=dataset.stars[keep], phases=[dataset.phases[i] for i in keep],
                   mags=[dataset.mags[i] for i in keep], peer_column=dataset.peer_column,
                   record=record)


def record_profile(study_dir, profile):
    """Write ``profile`` to ``study_dir/profile.json``, or check that it continues the study there.

    A study may only be continued with its own profile, or extended with more
    repeats: the runs already finished are then exactly the first repeats of
    the extended study, so none is recomputed or made stale.

    Raises
    ------
    ValueError
        If ``study_dir`` holds a study of another profile.
    """
    profile_path = Path(study_dir) / "profile.json"
    if profile_path.exists():
        # Fields added to StudyProfile since the study started take their defaults.
        started = StudyProfile(**json.loads(profile_path.read_text())).to_dict()
        wanted = profile.to_dict()
        if ({**started, "repeats": None} != {**wanted, "repeats": None}
                or wanted["repeats"] < started["repeats"]):
            raise ValueError(f"{study_dir} holds a study of another profile; use a new folder "
                             "(a study can only be extended with more repeats)")
    write_json(profile_path, profile.to_dict())


def run_study(dataset, profile, study_dir, *, log=print, only=None):
    """Run (or resume) every run of ``profile`` in ``study_dir``.

    Parameters
    ----------
    dataset : `training.data.Dataset`
    profile : `StudyProfile`
    study_dir : path-like
        See the module docstring for its layout.
    log : callable
        Receives one line of text per step.
    only : str, optional
        Run only the runs whose id contains this text (to share a study
        between processes).

    Returns
    -------
    `~astropy.table.Table`
        `collect_results` of the study so far.
    """
    from tqdm.auto import tqdm

    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    record_profile(study_dir, profile)
    dataset = _subset(dataset, profile.n_stars, seed=TrainingConfig().seed)
    runs = [r for r in plan_runs(profile) if only is None or only in r[0]]
    todo = [r for r in runs if not (study_dir / "runs" / r[0] / "metrics.json").exists()]
    log(f"study {profile.name}: {len(runs)} runs, {len(runs) - len(todo)} already finished")
    # The bar is drawn on a terminal only (disable=None): in a log it is noise.
    for run_id, _, config in tqdm(todo, desc=f"study {profile.name}", unit="run", disable=None):
        run_dir = study_dir / "runs" / run_id
        start = time.perf_counter()
        log(f"run {run_id}: starting")
        metrics = run_cross_validation(dataset, config, run_dir, export=profile.export,
                                       export_atol=profile.export_atol, export_errors="record",
                                       log=lambda line, rid=run_id: log(f"{rid}: {line}"),
                                       cache_dir=study_dir / "cache", progress=False)
        elapsed = time.perf_counter() - start
        write_json(run_dir / "elapsed.json", {"elapsed_s": elapsed})
        val, peer = metrics["validation"], metrics["peer_same_folds"]
        log(f"run {run_id}: done in {elapsed:.0f} s, validation RMSE "
            f"{val['rmse']['mean']:.4f} ± {val['rmse']['std']:.4f}"
            + ("" if peer is None else f", peer {peer['rmse']['mean']:.4f}"))
    results = collect_results(study_dir, profile)
    results.write(study_dir / "results.ecsv", overwrite=True)
    summarise(study_dir, results).write(study_dir / "summary.ecsv", overwrite=True)
    return results
