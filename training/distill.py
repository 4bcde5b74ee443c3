"""Knowledge distillation of a shipped ensemble into one network (work in progress).

The plan ("One model as good as ten"), cross-fitted so that the reported
accuracy is out of fold:

1. For each outer fold k, the teacher is the ensemble's members of fold k:
   the only ones that never saw fold k's labels (`fold_teacher_labels`).
2. The student of fold k trains on the stars of the other folds: their own
   light curves and varied copies (`training.augment`: fewer epochs, noise, an
   outlier epoch, a phase shift), each pre-processed as the package serves a
   user's star (with the student's pre-processing, e.g. outlier rejection),
   and labelled by the teacher on the same copy (`student_training_set`).
3. The students' predictions on their held-out folds are the out-of-fold
   predictions reported against the ensemble's; a last student trained on
   every star with the whole ensemble as teacher is what ships, with its
   error model refitted (one member: no spread feature).

Steps 1 and 2 are here and tested; the resumable training loop (one student
per fold, checkpointed like `training.cv`), the export and the shipping are
not written yet.
"""

import numpy as np

from rrlyrae_metallicity.preprocessing import prepare_inputs

from .augment import varied_copies

__all__ = ["fold_teacher_labels", "student_training_set"]


def fold_teacher_labels(ensemble, fold, inputs):
    """The [Fe/H] of fold ``fold``'s members of ``ensemble`` (stretched, averaged).

    Parameters
    ----------
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        A plain ensemble (members by fold).
    fold : int or None
        The fold whose members teach; `None`: every member (the final student).
    inputs : ndarray, shape (n, length, 2)
        Model inputs made with the ensemble's pre-processing.

    Returns
    -------
    ndarray, shape (n,)
    """
    members = ensemble.stretch(ensemble.predict_members(inputs))
    if fold is None:
        return members.mean(axis=0)
    chosen = np.asarray(ensemble.member_folds) == fold
    if not chosen.any():
        raise ValueError(f"the ensemble has no members of fold {fold}")
    return members[chosen].mean(axis=0)


def student_training_set(dataset, ensemble, stars, fold, *, copies, seed, student_config):
    """Inputs and teacher labels of the student of one outer fold.

    Parameters
    ----------
    dataset : `training.data.Dataset`
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        The teacher ensemble.
    stars : ndarray of int
        Indices of the stars the student trains on (the other folds').
    fold : int or None
        The teacher's fold (see `fold_teacher_labels`).
    copies : int
        Varied copies per star, besides its own light curve.
    seed : int
    student_config : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
        The student's pre-processing.

    Returns
    -------
    inputs : ndarray, shape (m, length, 2)
        The student's inputs (copies a pre-processing refused are left out).
    labels : ndarray, shape (m,)
        The teacher's [Fe/H] for each.
    source : ndarray of int, shape (m,)
        The star (index into ``dataset``) each row comes from.
    """
    phases = [dataset.phases[i] for i in stars]
    mags = [dataset.mags[i] for i in stars]
    periods = dataset.periods[stars]
    versions = [(phases, mags)] + varied_copies(phases, mags, copies, seed)
    inputs, labels, source = [], [], []
    for version_phases, version_mags in versions:
        student, _, student_errors = prepare_inputs(version_phases, version_mags, periods,
                                                    student_config)
        teacher, _, teacher_errors = prepare_inputs(version_phases, version_mags, periods,
                                                    ensemble.preprocessing)
        ok = np.array([a is None and b is None for a, b in zip(student_errors, teacher_errors)])
        inputs.append(student[ok])
        labels.append(fold_teacher_labels(ensemble, fold, teacher[ok]))
        source.append(np.asarray(stars)[ok])
    return np.concatenate(inputs), np.concatenate(labels), np.concatenate(source)
