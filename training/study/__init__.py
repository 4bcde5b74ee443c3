"""The architecture study of the paper (its Table 4), rebuilt on our data.

A study is architectures × data variants × a hyperparameter grid × repeats of a
stratified K-fold cross-validation. Each point of that product is one *run*:
a `training.cv.run_cross_validation` folder of its own. A run whose
``metrics.json`` exists is never recomputed, and an unfinished run resumes fold
by fold, so a study too long for one session continues in the next one with
the same command.

Layout of a study directory::

    study_dir/
      profile.json            the profile the study was started with
      cache/                  pre-processed inputs, one file per variant
      runs/<run_id>/          one cross-validation run (see training.cv)
      results.ecsv            one row per finished run
      summary.ecsv            one row per architecture × variant × grid point,
                              mean ± std over all folds of all repeats

The study's code, one module per step:

`training.study.plan`
    What a study runs: `StudyProfile`, the built-in `PROFILES`, `plan_runs`.
`training.study.run`
    Running and resuming it: `run_study`, `record_profile`.
`training.study.results`
    Its tables: `collect_results` (one row per run) and `summarise`.
`training.study.report`
    The summary table and figures for the documentation
    (``python -m training report``).
"""

from .plan import DESIGNS, GRID_AXES, PROFILES, StudyProfile, plan_runs
from .results import collect_results, summarise
from .run import record_profile, run_study

__all__ = ["StudyProfile", "PROFILES", "GRID_AXES", "DESIGNS", "plan_runs", "record_profile",
           "run_study", "collect_results", "summarise"]
