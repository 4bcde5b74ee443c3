"""Smooth a folded light curve and align it on maximum light: step 3-4 of the pre-processing.

Both smoothers fit (phase, mag) with a penalty on the integrated squared
second derivative, chosen per star by generalised cross-validation (GCV),
then find the phase of maximum light (minimum magnitude) on the fitted curve
and re-align the epochs so that it falls at phase 0, and resample the curve on
equally spaced phases (`SmoothedLightCurve`). They take epochs already cleaned
by `rrlyrae_metallicity.preprocessing` (finite, merged, weighted).

`smooth_batch` (``"batch"``, the default)
    A periodic penalised Fourier series (`BATCH_HARMONICS` harmonics,
    penalty ``sum (2 pi k)^4 (a_k^2 + b_k^2)``, which is exactly the
    integral of ``f''^2``), fitted to many stars at once with array
    operations: one batched eigendecomposition per star makes every value of
    the penalty cost O(harmonics). The fit is exactly shift-equivariant, so
    no re-fit is needed after re-alignment.
`smooth_reference` (``"scipy_gcv"``, what the first models were trained on)
    `scipy.interpolate.make_smoothing_spline` per star, on the epochs repeated
    0.3 of a cycle beyond both ends of [0, 1) so that the fit sees the light
    curve continue across the 0/1 wrap instead of two free ends; re-fitted on
    re-aligned epochs until its own maximum is at 0. scipy is imported only
    when it is used.
"""

import contextlib
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .exceptions import LightCurveError

__all__ = [
    "BATCH_HARMONICS",
    "SmoothedLightCurve",
    "max_phase_gap",
    "smooth_batch",
    "smoothed_from_fit",
    "smooth_chunk",
    "smooth_reference",
    "screen_epochs",
    "EpochScreen",
    "merge_groups",
    "bounded_brent",
]

#: Harmonics of the ``batch`` smoother. GCV keeps ~5-15 effective parameters
#: on Gaia light curves, and the penalty damps harmonic k by (2 pi k)^4, so
#: more harmonics change the fit by far less than the noise.
BATCH_HARMONICS = 24

# Fraction of a cycle repeated beyond each end of [0, 1) before fitting.
_WRAP_MARGIN = 0.3
# The spline is re-fitted on re-aligned epochs until its maximum moves by less
# than this (cycles), at most _MAX_REALIGNMENTS times: the epochs repeated
# across the wrap, and so the GCV penalty, then no longer depend on the phase
# zero-point of the input.
_ALIGNMENT_TOLERANCE = 1e-5
_MAX_REALIGNMENTS = 4
# Resolution of the grid on which the minimum magnitude is first located,
# before a bounded scalar minimisation (Newton steps for ``batch``) refines it.
_SEARCH_GRID = 512
# Stars smoothed together: bounds the memory of the (stars, penalties,
# harmonics) arrays of GCV to ~15 MB each.
_BATCH_SIZE = 256
# A penalty lam of the reference smoother (a natural spline fitted to epochs
# repeated across the wrap) smooths a Gaia light curve like a penalty of about
# 0.52 lam of the periodic fit (least-squares match of the two curves on real
# light curves at lam = 3e-6 to 3e-5).
_REFERENCE_PENALTY_SCALE = 0.52
# Newton steps that refine the phase of maximum light of the Fourier series.
_NEWTON_STEPS = 4
# `screen_epochs` judges the most suspect epochs together when the next ones
# score above this (robust standard deviations in the fit of every epoch): the
# second does so in about 18 % of clean Gaia stars with 25 or more epochs, so
# the extra fit is rare. At most _MOST_SUSPECTS epochs are judged together.
_JOINT_SCORE = 5.0
_MOST_SUSPECTS = 3


@dataclass(frozen=True)
class SmoothedLightCurve:
    """A light curve aligned on maximum light and smoothed.

    Attributes
    ----------
    phase : ndarray
        Phases of the distinct epochs, aligned so that maximum light is 0, sorted.
    mag : ndarray
        Magnitudes at those phases (duplicates averaged).
    grid_phase : ndarray
        The ``n_phases`` equally spaced phases in [0, 1).
    grid_mag : ndarray
        The smoothing spline evaluated at ``grid_phase``.
    mean_mag : float
        Phase-averaged magnitude of the smoothed curve.
    phase_of_maximum : float
        Phase of maximum light in the input's own phase convention.
    rejected_phase, rejected_mag : ndarray
        Epochs rejected as outliers (`screen_epochs`), aligned like ``phase``;
        empty when none was.
    """

    phase: np.ndarray
    mag: np.ndarray
    grid_phase: np.ndarray
    grid_mag: np.ndarray
    mean_mag: float
    phase_of_maximum: float
    rejected_phase: np.ndarray = field(default_factory=lambda: np.empty(0))
    rejected_mag: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def n_rejected(self):
        """Number of epochs rejected as outliers before the fit."""
        return int(self.rejected_phase.size)

    @property
    def amplitude(self):
        """Peak-to-peak amplitude of the smoothed curve (mag)."""
        return float(np.ptp(self.grid_mag))

    @property
    def max_phase_gap(self):
        """Largest gap in phase between the distinct epochs (cycles); see `max_phase_gap`."""
        return max_phase_gap(self.phase)

    @property
    def scatter(self):
        """Robust scatter (mag) of the epochs about the smooth curve.

        1.4826 times the median absolute deviation of the epochs' residuals
        from the resampled curve (interpolated periodically between its grid
        phases): the photometric noise plus what the smooth curve misses.
        """
        grid = np.append(self.grid_phase, 1.0)
        curve = np.interp(self.phase, grid, np.append(self.grid_mag, self.grid_mag[0]))
        residual = self.mag - curve
        return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def max_phase_gap(phase):
    """Largest gap between consecutive phases on the circle, in cycles.

    A measure of phase coverage: 1 / n for n evenly spread epochs, close to 1
    when all epochs bunch together. The gap across the 0/1 wrap counts, so the
    value does not depend on the phase zero-point.

    Parameters
    ----------
    phase : array-like of float
        Phases (any zero-point; values outside [0, 1) are wrapped).

    Returns
    -------
    float
        In (0, 1]; 1.0 for fewer than two epochs.
    """
    phase = np.sort(np.asarray(phase, dtype=float) % 1.0)
    if phase.size < 2:
        return 1.0
    return float(np.max(np.diff(np.concatenate([phase, [phase[0] + 1.0]]))))


def _periodic_spline(phase, mag, weight, star=None):
    """Fit a GCV smoothing spline to epochs repeated across the 0/1 wrap."""
    low = phase >= 1.0 - _WRAP_MARGIN
    high = phase < _WRAP_MARGIN
    x = np.concatenate([phase[low] - 1.0, phase, phase[high] + 1.0])
    y = np.concatenate([mag[low], mag, mag[high]])
    w = np.concatenate([weight[low], weight, weight[high]])
    from scipy.interpolate import make_smoothing_spline

    try:
        return make_smoothing_spline(x, y, w=w)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise LightCurveError(
            f"the smoothing spline could not be fitted ({error})", star=star,
            status="spline_failed",
        ) from error


def _phase_of_minimum(spline):
    """Phase in [0, 1) where the periodic spline reaches its minimum."""
    from scipy.optimize import minimize_scalar

    grid = np.arange(_SEARCH_GRID) / _SEARCH_GRID
    start = grid[np.argmin(spline(grid))]
    step = 1.0 / _SEARCH_GRID
    result = minimize_scalar(
        lambda p: float(spline(p)),
        bounds=(start - step, start + step),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(result.x % 1.0)


def smooth_reference(phase, mag, weight, n_phases, star=None):
    """The reference smoother: a scipy GCV spline per star, re-fitted until aligned.

    Parameters
    ----------
    phase, mag, weight : ndarray
        Cleaned epochs of one star (see
        `rrlyrae_metallicity.preprocessing.clean_epochs`).
    n_phases : int
        Number of equally spaced output phases.
    star : object, optional
        Identifier used in error messages.

    Returns
    -------
    `SmoothedLightCurve`

    Raises
    ------
    rrlyrae_metallicity.exceptions.LightCurveError
        If the spline cannot be fitted (status ``spline_failed``).
    """
    phase_max = _phase_of_minimum(_periodic_spline(phase, mag, weight, star))
    for attempt in range(_MAX_REALIGNMENTS + 1):
        aligned = (phase - phase_max) % 1.0
        order = np.argsort(aligned)
        x, y, w = aligned[order], mag[order], weight[order]
        spline = _periodic_spline(x, y, w, star)
        if attempt == _MAX_REALIGNMENTS:
            # Two bumps of equal depth keep trading places: keep this fit as it is.
            shift = 0.0
            break
        # The previous fit saw the 0/1 wrap elsewhere, so the maximum of this
        # one is off by ~1e-4 of a cycle (or, for a flat-topped sparse curve,
        # sits on another bump).
        shift = _phase_of_minimum(spline)
        shift = shift - 1.0 if shift > 0.5 else shift
        if abs(shift) < _ALIGNMENT_TOLERANCE:
            break
        phase_max = (phase_max + shift) % 1.0
    phase_max = (phase_max + shift) % 1.0
    x = (x - shift) % 1.0
    order = np.argsort(x)

    grid = np.arange(n_phases) / n_phases
    grid_mag = spline(shift + grid)
    # The mean of a periodic curve sampled evenly in phase, whatever the
    # sampling of the epochs.
    mean_mag = float(np.mean(spline(shift + np.arange(4 * n_phases) / (4 * n_phases))))
    return SmoothedLightCurve(
        phase=x[order],
        mag=y[order],
        grid_phase=grid,
        grid_mag=grid_mag,
        mean_mag=mean_mag,
        phase_of_maximum=phase_max,
    )


def smooth_batch(epochs, n_phases, stars):
    """Smooth and align many cleaned light curves with the periodic penalised fit.

    Parameters
    ----------
    epochs : list of tuple
        ``(phase, mag, weight)`` of each star, as returned by
        `rrlyrae_metallicity.preprocessing.clean_epochs`.
    n_phases : int
        Number of equally spaced output phases.
    stars : sequence
        Identifiers used in error messages.

    Returns
    -------
    list
        A `SmoothedLightCurve`, or the `LightCurveError` of the star.

    Notes
    -----
    Stars are grouped by epoch count so that little padding is needed; padded
    epochs have weight 0 and every operation is per star, so a star's result
    does not depend on the other stars of the batch (beyond rounding).
    """
    fitted = _in_chunks(lambda chunk: list(zip(*smooth_chunk(chunk, n_phases))), epochs)
    return [_batch_result(e, coef, phase_max, grid_mag, n_phases, star)
            for e, (coef, phase_max, grid_mag), star in zip(epochs, fitted, stars)]


def smoothed_from_fit(epochs, coefs, n_phases, stars):
    """`smooth_batch` of stars already fitted (``EpochScreen.kept_fit``): align and resample.

    Parameters
    ----------
    epochs, n_phases, stars
        As for `smooth_batch`.
    coefs : list of ndarray
        The Fourier coefficients of each star's fit of those epochs.

    Returns
    -------
    list
        As `smooth_batch` returns.
    """
    if not epochs:
        return []
    coef = np.array(coefs)
    return [_batch_result(*args, n_phases, star)
            for *args, star in zip(epochs, coef, *_aligned_curve(coef, n_phases), stars)]


def _workers(n_chunks):
    """Threads for the chunks: numpy releases the GIL in the heavy array operations."""
    return max(1, min(n_chunks, _cpu_count()))


@functools.lru_cache(maxsize=1)
def _cpu_count():
    return os.cpu_count() or 1


def _single_threaded_blas():
    """Limit BLAS/LAPACK to one thread (when threadpoolctl is installed).

    A multi-threaded LAPACK spends far longer synchronising than computing on
    matrices of ~50 x 50 (10-20 times slower on a loaded 2-core machine);
    the chunks run in parallel threads instead.
    """
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once (`None` without it).

    Finding them scans every loaded shared library (about 2 ms): per call, it
    cost a single-star prediction more than its smoothing.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@dataclass(frozen=True)
class EpochScreen:
    """Each star's epochs after `screen_epochs`.

    Attributes
    ----------
    kept : list of tuple
        ``(phase, mag, weight)`` of each star without its rejected epochs.
    rejected : list of tuple
        ``(phase, mag)`` of each star's rejected epochs (empty arrays if none).
    jackknife : list
        ``(phase, mag, weight)`` of ``kept`` without the kept epoch farthest
        from the smooth curve of the others, or `None` where dropping an
        epoch would leave fewer than ``min_epochs``.
    deviation : ndarray
        How far that epoch lies from the curve of the others, in standard
        deviations of its prediction (NaN without a jackknife).
    kept_fit, jackknife_fit : list
        The Fourier coefficients of the fits of ``kept`` and ``jackknife``
        (`None` where not fitted), for `smoothed_from_fit`.
    """

    kept: list
    rejected: list
    jackknife: list
    deviation: np.ndarray
    kept_fit: list
    jackknife_fit: list


def screen_epochs(epochs, threshold, *, min_epochs, max_rejected=3, scale_floor=0.01,
                  members=None):
    """Reject epochs that the smooth curve of the others cannot reach, star by star.

    Each round fits every star with the ``batch`` smoother (GCV penalty, as
    in `smooth_batch`) and picks its most suspect epoch: the largest
    studentized residual ``r * sqrt(w / (1 - h))`` (``h`` its leverage, ``w``
    its weight) in units of the star's robust scale. The star is fitted
    again without that epoch (its own GCV penalty: a large outlier drags the
    first fit's penalty and scale, which hides it), and the epoch's deviation
    is its distance from that curve of the others over the standard
    deviation of the prediction, ``s * sqrt(1 / w + h0)``: ``s`` the robust
    scale (1.4826 times the median absolute deviation of the studentized
    residuals, at least ``scale_floor`` mag), ``w`` the epoch's weight
    (merged epochs) and ``h0`` the leverage of its phase in the fit of the
    others. An epoch in a sparse part of the cycle, which the others
    constrain poorly, has a large ``h0`` and so is not rejected for lying off
    their curve. The epoch is rejected when its deviation exceeds
    ``threshold``, and the next round starts from the others: up to
    ``max_rejected`` epochs, never below ``min_epochs``. The last candidate,
    not rejected, gives the jackknife.

    Two more tests keep a bad epoch from hiding:

    - A merged epoch (``w > 1``) is also judged member by member, each
      against ``s * sqrt(1 + h0)`` at its own phase, and only its farthest
      member is rejected: averaged with a good neighbour, a bad epoch would
      otherwise be diluted below the threshold, or take its neighbour with it.
    - When the candidate stands but the next most suspect epochs (up to
      `_MOST_SUSPECTS` in all) also score above `_JOINT_SCORE`, they are
      dropped together and each is judged against the curve of the rest;
      the farthest is rejected if beyond ``threshold``. Bad epochs hide each
      other otherwise: one left in makes GCV choose a far stiffer curve, and
      the scale of the residuals grows several-fold.

    Parameters
    ----------
    epochs : list of tuple
        ``(phase, mag, weight)`` of each star (cleaned epochs).
    threshold : float or None
        Deviation beyond which an epoch is rejected; `None` rejects nothing
        (the jackknife is still found).
    min_epochs : int
        Fewest epochs a star keeps.
    max_rejected : int
        Most epochs rejected per star.
    scale_floor : float
        Smallest robust scale (mag): photometry is never better than this
        against a smooth curve, so tiny scatter does not make normal epochs
        outliers.
    members : list, optional
        ``(group, phase, mag)`` of the epochs merged into each star's
        ``epochs`` (`None` for a star without merged epochs): the index of
        the merged epoch each went into, its phase (unwrapped within its
        group) and magnitude. Without them, merged epochs are judged whole.

    Returns
    -------
    `EpochScreen`
    """
    kept = list(epochs)
    members = [None] * len(epochs) if members is None else list(members)
    rejected = [(np.empty(0), np.empty(0)) for _ in epochs]
    jackknife = [None] * len(epochs)
    deviation = np.full(len(epochs), np.nan)
    kept_fit, jackknife_fit = [None] * len(epochs), [None] * len(epochs)

    def reject(i, test, which):
        """Reject the ``which``-th dropped epoch of ``test`` (its farthest member if merged)."""
        index, member = test.dropped[which], test.worst_member[which]
        if member is None:
            phase, mag, _ = kept[i]
            rejected_epoch = (phase[index], mag[index])
            if members[i] is not None:
                members[i] = _without_member(members[i], members[i][0] == index)
            if len(test.dropped) == 1:  # the others and their fit are at hand
                kept[i], kept_fit[i] = test.others, test.others_fit
                return rejected_epoch
            drop = np.arange(phase.size) == index
            kept[i] = tuple(a[~drop] for a in kept[i])
        else:  # one member of a merged epoch: the rest are merged again
            group, phase, mag = members[i]
            rejected_epoch = (phase[member] % 1.0, mag[member])
            members[i] = _without_member(members[i], np.arange(group.size) == member)
            kept[i], members[i] = _merge_regrouped(members[i])
        kept_fit[i] = None
        return rejected_epoch

    active = [i for i, e in enumerate(epochs) if e[0].size > min_epochs]
    for round_ in range(max_rejected + 1):
        if not active:
            break
        can_reject = threshold is not None and round_ < max_rejected
        screened = _in_chunks(_screen_chunk, [kept[i] for i in active], scale_floor)
        tests = {i: _judge_members(test, members[i]) for i, test in zip(active, screened)}
        joint = {}
        for i, test in tests.items():
            if can_reject and test.deviation[0] > threshold:
                continue
            kept_fit[i] = test.fit
            jackknife[i], deviation[i] = test.others, test.deviation[0]
            jackknife_fit[i] = test.others_fit
            # The next suspects, as many as leave `min_epochs` to fit (each
            # is judged; only the farthest can be rejected this round).
            room = kept[i][0].size - min_epochs - 1
            if can_reject and room > 0 and test.next_suspects:
                joint[i] = test.dropped + test.next_suspects[:room]
        retested = _in_chunks(_joint_chunk, [kept[i] + (drop,) for i, drop in joint.items()],
                              scale_floor)
        for i, test in zip(joint, retested):
            test = _judge_members(test, members[i])
            if test.deviation.max() > threshold:
                tests[i] = test
                jackknife[i], deviation[i], jackknife_fit[i] = None, np.nan, None
        next_active = []
        for i, test in tests.items():
            if not (can_reject and test.deviation.max() > threshold):
                continue
            gone = reject(i, test, int(np.argmax(test.deviation)))
            rejected[i] = tuple(np.append(r, g) for r, g in zip(rejected[i], gone))
            if kept[i][0].size > min_epochs:
                next_active.append(i)
        active = next_active
    return EpochScreen(kept=kept, rejected=rejected, jackknife=jackknife, deviation=deviation,
                       kept_fit=kept_fit, jackknife_fit=jackknife_fit)


@dataclass
class _DroppedTest:
    """Epochs of one star judged against the fit of the others (see `screen_epochs`).

    ``dropped`` holds their indices, ``deviation`` their deviations (raised
    to the farthest member's for merged epochs by `_judge_members`, which
    also fills ``worst_member``), ``member_spread`` the standard deviation of
    a unit-weight epoch about the curve of the others at each; ``fit`` is
    the fit of every epoch, ``next_suspects`` the next most suspect epochs
    (by score, those above `_JOINT_SCORE`).
    """

    dropped: tuple
    deviation: np.ndarray
    member_spread: np.ndarray
    others: tuple
    others_fit: np.ndarray
    fit: np.ndarray = None
    next_suspects: tuple = ()
    worst_member: list = field(default_factory=list)


def _judge_members(test, members):
    """``test`` with each dropped merged epoch judged by its farthest member too."""
    test.worst_member = [None] * len(test.dropped)
    if members is None:
        return test
    group, phase, mag = members
    for k, index in enumerate(test.dropped):
        in_group = np.flatnonzero(group == index)
        if in_group.size < 2:
            continue
        # Each member against the curve of the others at its own phase.
        predicted = _fourier_eval_at(test.others_fit[None], phase[in_group][None] % 1.0)[0]
        member_z = np.abs(mag[in_group] - predicted) / test.member_spread[k]
        test.worst_member[k] = in_group[np.argmax(member_z)]
        test.deviation[k] = max(test.deviation[k], member_z.max())
    return test


def _without_member(members, drop):
    """``(group, phase, mag)`` without the epochs ``drop``, groups renumbered from 0."""
    group, phase, mag = (a[~drop] for a in members)
    _, group = np.unique(group, return_inverse=True)
    return group, phase, mag


def _merge_regrouped(members):
    """The merged ``(phase, mag, weight)`` of ``members``, and the members numbered for it."""
    merged, group = merge_groups(*members)
    return merged, (group, members[1], members[2])


def merge_groups(group, phase, mag):
    """The mean phase (wrapped into [0, 1)) and magnitude and the size of each group.

    Parameters
    ----------
    group : ndarray of int
        The group of each epoch, numbered from 0 without gaps.
    phase, mag : ndarray
        Each epoch's phase (unwrapped within its group) and magnitude.

    Returns
    -------
    merged : tuple
        ``(phase, mag, weight)`` of the groups, sorted by phase.
    group : ndarray of int
        Each epoch's group, numbered in that order.
    """
    total = np.bincount(group).astype(float)
    merged_phase = (np.bincount(group, weights=phase) / total) % 1.0
    merged_mag = np.bincount(group, weights=mag) / total
    order = np.argsort(merged_phase)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return (merged_phase[order], merged_mag[order], total[order]), rank[group]


def _screen_chunk(epochs, scale_floor):
    """One round of `screen_epochs` for a chunk of stars: a `_DroppedTest` of each.

    Each star's most suspect epoch is judged against the fit of the others;
    the test also keeps the fit of every epoch and the next most suspect.
    """
    phase, mag, weight = _pad_epochs(epochs)
    problem, penalty, coef = _fit(phase, mag, weight)
    residual = _studentized_residuals(problem, penalty, coef, mag, weight)
    real = weight > 0
    centre = _row_median(np.where(real, residual, np.nan))
    scale = np.maximum(_robust_scale(residual, real), scale_floor)
    score = np.where(real, np.abs(residual - centre[:, None]), -np.inf) / scale[:, None]
    ranked = np.argsort(-score, axis=1, kind="stable")[:, :_MOST_SUSPECTS]
    tests = _dropped_chunk(epochs, ranked[:, :1], scale_floor)
    for test, star_fit, suspects, star_score in zip(tests, coef, ranked, score):
        test.fit = star_fit
        test.next_suspects = tuple(int(j) for j in suspects[1:] if star_score[j] > _JOINT_SCORE)
    return tests


def _joint_chunk(items, scale_floor):
    """`_DroppedTest` of the epochs ``drop`` of each ``(phase, mag, weight, drop)``.

    Stars are grouped by how many epochs they drop, which `_dropped_chunk`
    needs the same across a chunk.
    """
    tests = [None] * len(items)
    for count in {len(item[3]) for item in items}:
        rows = [k for k, item in enumerate(items) if len(item[3]) == count]
        done = _dropped_chunk([items[k][:3] for k in rows],
                              np.array([items[k][3] for k in rows]), scale_floor)
        for k, test in zip(rows, done):
            tests[k] = test
    return tests


def _dropped_chunk(epochs, dropped, scale_floor):
    """Judge the epochs ``dropped[s]`` of each star ``s`` against the fit of its others."""
    rows = np.arange(len(epochs))[:, None]
    phase, mag, weight = _pad_epochs(epochs)
    at, value, its_weight = phase[rows, dropped], mag[rows, dropped], weight[rows, dropped]
    others = []
    for e, drop in zip(epochs, dropped):
        keep = np.ones(e[0].size, dtype=bool)
        keep[drop] = False
        others.append(tuple(a[keep] for a in e))
    phase, mag, weight = _pad_epochs(others)
    problem, penalty, others_coef = _fit(phase, mag, weight)
    residual = _studentized_residuals(problem, penalty, others_coef, mag, weight)
    scale = np.maximum(_robust_scale(residual, weight > 0), scale_floor)[:, None]
    predicted = _fourier_eval_at(others_coef, at)
    leverage = _new_leverage(problem, penalty, at, weight)
    deviation = np.abs(value - predicted) / (scale * np.sqrt(1.0 / its_weight + leverage))
    member_spread = scale * np.sqrt(1.0 + leverage)
    return [_DroppedTest(dropped=tuple(int(j) for j in drop), deviation=z, member_spread=spread,
                         others=o, others_fit=c)
            for drop, z, spread, o, c in zip(dropped, deviation, member_spread, others,
                                             others_coef)]


def _in_chunks(work, epochs, *args):
    """``work(chunk, *args)`` on chunks of stars of similar epoch counts, in threads.

    Each chunk holds up to `_BATCH_SIZE` stars so that little padding is
    needed; ``work`` returns one item per star, and the items come back in
    the order of ``epochs``.
    """
    if not epochs:
        return []
    order = np.argsort([e[0].size for e in epochs], kind="stable")
    chunks = [order[i:i + _BATCH_SIZE] for i in range(0, order.size, _BATCH_SIZE)]
    results = [None] * len(epochs)

    def run(rows):
        return work([epochs[i] for i in rows], *args)

    with _single_threaded_blas():
        workers = _workers(len(chunks))
        if workers == 1:  # one chunk (a few stars): a thread would only cost its start
            done = map(run, chunks)
        else:
            pool = ThreadPoolExecutor(workers)
            done = pool.map(run, chunks)
        try:
            for rows, items in zip(chunks, done):
                for i, item in zip(rows, items):
                    results[i] = item
        finally:
            if workers > 1:
                pool.shutdown()
    return results


def _new_leverage(problem, penalty, phase, weight):
    """Leverage of a new epoch at ``phase`` in each star's penalised fit.

    ``1 / sum(w) + a^T (A^T A + lam I)^-1 a``, with ``A`` the weight-centred
    scaled design of `_decompose` and ``a`` the scaled basis at ``phase``
    minus the design's weighted mean: the variance of the fitted curve at
    ``phase``, in units of the noise variance of a unit-weight epoch.
    ``phase`` holds one phase per star, shape (n_stars,), or several,
    shape (n_stars, n); the result has its shape.
    """
    k, scale = _harmonics()
    per_star = (slice(None),) + (None,) * (np.ndim(phase) - 1)  # spread over the phases
    angle = 2 * np.pi * phase[..., None] * k
    new = (np.concatenate([np.cos(angle), np.sin(angle)], axis=-1) * scale
           - problem["basis_mean"][per_star])
    # (A^T A + lam)^-1 from the eigendecomposition: on the eigenvectors'
    # span 1 / (s + lam), and 1 / lam on the rest (fewer epochs than columns).
    along = np.einsum("s...k,skj->s...j", new, _eigenvectors(problem))
    inverse = 1.0 / (problem["eigval"] + penalty[:, None])
    rest = np.clip((new ** 2).sum(axis=-1) - (along ** 2).sum(axis=-1), 0.0, None)
    return (1.0 / weight.sum(axis=1)[per_star] + (along ** 2 * inverse[per_star]).sum(axis=-1)
            + rest / penalty[per_star])


def _eigenvectors(problem):
    """Orthonormal eigenvectors of ``A^T A`` (columns) with non-zero eigenvalues, per star.

    With fewer epochs than columns `_decompose` keeps ``A^T U`` instead
    (``= V S``); columns of vanishing eigenvalue are zero here.
    """
    if not problem["thin"]:
        return problem["to_scaled"]
    root = np.sqrt(problem["eigval"])
    usable = root > 1e-10 * root.max(axis=1, keepdims=True)
    inverse = np.where(usable, 1.0 / np.where(usable, root, 1.0), 0.0)
    return problem["to_scaled"] * inverse[:, None, :]


def _robust_scale(residual, real):
    """1.4826 times the median absolute deviation of each star's residuals."""
    residual = np.where(real, residual, np.nan)
    centre = _row_median(residual)
    return 1.4826 * _row_median(np.abs(residual - centre[:, None]))


def _row_median(values):
    """The median of each row, NaN (padding) left out: `numpy.nanmedian` along axis 1.

    Sorting puts the NaN last, so the middle of each row's finite values is
    found by index; `numpy.nanmedian` goes through masked arrays and cost a
    single-star call more than its fit.
    """
    ordered = np.sort(values, axis=1)
    count = np.isfinite(values).sum(axis=1)
    rows = np.arange(len(values))
    low = ordered[rows, np.maximum((count - 1) // 2, 0)]
    high = ordered[rows, count // 2]
    return np.where(count > 0, 0.5 * (low + high), np.nan)


def _studentized_residuals(problem, penalty, coef, mag, weight):
    """``(mag - fit) * sqrt(w / (1 - leverage))`` of every epoch (NaN for padding).

    A merged epoch of weight ``w`` has ``1 / w`` the noise variance of one,
    so its residual counts ``sqrt(w)`` times: otherwise a bad epoch averaged
    with a good neighbour would hide behind the epochs its weight pulls the
    fit towards.
    """
    # The fit at the epochs from the basis `_decompose` already evaluated there.
    _, scale = _harmonics()
    fitted = problem["mag_mean"][:, None] + np.einsum("snk,sk->sn", problem["centred"],
                                                      coef[:, 1:] / scale)
    leverage = problem["constant_leverage"] + np.einsum(
        "snk,sk->sn", problem["rotated"] ** 2, 1.0 / (problem["eigval"] + penalty[:, None]))
    residual = (mag - fitted) * np.sqrt(weight) / np.sqrt(np.clip(1.0 - leverage, 1e-9, None))
    return np.where(weight > 0, residual, np.nan)


def _fit(phase, mag, weight):
    """The ``batch`` smoother's fit of padded epochs: (problem, penalty, coefficients)."""
    problem = _decompose(phase, mag, weight)
    # As the reference does, search the penalty again once the epochs are
    # aligned, with the epoch count the reference repeats across the wrap.
    coef = _coefficients(problem, _gcv_penalty(problem, _repeats(weight, None)))
    phase_max = _fourier_minimum(coef)
    repeats = _repeats(weight, (phase - phase_max[:, None]) % 1.0)
    penalty = _gcv_penalty(problem, repeats)
    return problem, penalty, _coefficients(problem, penalty)


def smooth_chunk(epochs, n_phases):
    """Fourier coefficients, phase of maximum and resampled curve of a chunk of stars.

    Parameters
    ----------
    epochs : list of tuple
        ``(phase, mag, weight)`` of each star.
    n_phases : int
        Number of equally spaced output phases.

    Returns
    -------
    coef : ndarray, shape (n_stars, 1 + 2 * BATCH_HARMONICS)
    phase_max : ndarray, shape (n_stars,)
    grid_mag : ndarray, shape (n_stars, n_phases)
    """
    _, _, coef = _fit(*_pad_epochs(epochs))
    return (coef, *_aligned_curve(coef, n_phases))


def _aligned_curve(coef, n_phases):
    """Phase of maximum light of each fitted star, and its curve resampled from there on."""
    phase_max = _fourier_minimum(coef)
    grid = np.arange(n_phases) / n_phases
    return phase_max, _fourier_eval(_fourier_shift(coef, phase_max), grid)


def _batch_result(epochs, coef, phase_max, grid_mag, n_phases, star):
    """The `SmoothedLightCurve` of one star of a batch, or its error."""
    if not (np.isfinite(coef).all() and np.isfinite(phase_max)):
        return LightCurveError("the periodic smoother could not be fitted (non-finite fit)",
                               star=star, status="spline_failed")
    phase, mag, _ = epochs
    aligned = (phase - phase_max) % 1.0
    order = np.argsort(aligned)
    return SmoothedLightCurve(
        phase=aligned[order],
        mag=mag[order],
        grid_phase=np.arange(n_phases) / n_phases,
        grid_mag=grid_mag,
        # The mean over a cycle of a Fourier series is its constant term.
        mean_mag=float(coef[0]),
        phase_of_maximum=float(phase_max),
    )


def _repeats(weight, aligned):
    """How many times the reference fit counts each epoch.

    Twice within `_WRAP_MARGIN` of the wrap of the ``aligned`` phases, once
    elsewhere; without them, the expected ``1 + 2 * _WRAP_MARGIN``.
    """
    real = (weight > 0).astype(float)
    if aligned is None:
        return (1.0 + 2.0 * _WRAP_MARGIN) * real
    return real * (1 + ((aligned >= 1.0 - _WRAP_MARGIN) | (aligned < _WRAP_MARGIN)))


def _pad_epochs(epochs):
    """Stack per-star (phase, mag, weight) into (stars, epochs) arrays, weight 0 for padding."""
    length = max(e[0].size for e in epochs)
    phase = np.zeros((len(epochs), length))
    mag = np.zeros((len(epochs), length))
    weight = np.zeros((len(epochs), length))
    for i, (p, m, w) in enumerate(epochs):
        phase[i, :p.size], mag[i, :p.size], weight[i, :p.size] = p, m, w
    return phase, mag, weight


@functools.lru_cache(maxsize=1)
def _harmonics():
    """Harmonic numbers k and the penalty scale (2 pi k)^-2 of each basis column (read-only)."""
    k = np.arange(1, BATCH_HARMONICS + 1)
    scale = np.tile((2 * np.pi * k) ** -2.0, 2)
    k.setflags(write=False)
    scale.setflags(write=False)
    return k, scale


def _decompose(phase, mag, weight):
    """Eigendecomposition of each star's penalised Fourier least-squares problem.

    The fit minimises ``sum w (mag - f)^2 + lam * integral_0^1 f''^2`` over
    Fourier series ``f`` of `BATCH_HARMONICS` harmonics. Scaling each basis
    column by ``(2 pi k)^-2`` turns the penalty into a ridge, and the
    eigendecomposition ``A^T A = V diag(s) V^T`` of the scaled, weight-centred
    design then gives the fit, the trace of the hat matrix and the residuals
    for any ``lam`` in O(harmonics) per star.

    Parameters
    ----------
    phase, mag, weight : ndarray, shape (n_stars, n_epochs)
        Padded epochs; padding has weight 0.

    Returns
    -------
    dict
        Per star: ``eigval`` (``s``), ``rotated`` (``A V``), ``proj``
        (``V^T A^T y``), ``target`` (``y``), ``to_scaled`` and ``numerator``
        (the scaled coefficients are ``to_scaled @ (numerator / (s + lam))``),
        ``thin`` (fewer epochs than columns: ``to_scaled`` is ``A^T U``, not
        ``V``), ``centred`` (the scaled basis at the epochs minus its weighted
        mean), ``constant_leverage``, ``mag_mean`` and ``basis_mean``.
    """
    k, scale = _harmonics()
    angle = 2 * np.pi * phase[..., None] * k
    basis = np.concatenate([np.cos(angle), np.sin(angle)], axis=-1) * scale
    total = weight.sum(axis=1)
    # The constant is not penalised: profile it out with weighted means, which
    # also makes the fit exactly independent of a magnitude offset.
    mag_mean = (weight * mag).sum(axis=1) / total
    basis_mean = np.einsum("sn,snk->sk", weight, basis) / total[:, None]
    root = np.sqrt(weight)
    centred = basis - basis_mean[:, None, :]
    design = root[..., None] * centred
    target = root * (mag - mag_mean[:, None])
    n_epochs, n_columns = design.shape[1:]
    if n_epochs < n_columns:
        # Fewer epochs than basis columns, as for most Gaia curves: the
        # non-zero spectrum of A^T A = V S^2 V^T is that of the smaller
        # A A^T = U S^2 U^T (3x cheaper for 34 epochs), with A V = U S.
        eigval, left = np.linalg.eigh(np.matmul(design, design.transpose(0, 2, 1)))
        eigval = np.clip(eigval, 0.0, None)
        along = np.einsum("snk,sn->sk", left, target)
        rotated = left * np.sqrt(eigval)[:, None, :]
        proj = np.sqrt(eigval) * along
        # V (S U^T y) / (S^2 + lam) = A^T U (U^T y) / (S^2 + lam): no 1/S.
        to_scaled, numerator = np.matmul(design.transpose(0, 2, 1), left), along
    else:
        eigval, eigvec = np.linalg.eigh(np.matmul(design.transpose(0, 2, 1), design))
        eigval = np.clip(eigval, 0.0, None)
        rotated = np.matmul(design, eigvec)
        proj = np.einsum("snk,sn->sk", rotated, target)
        to_scaled, numerator = eigvec, proj
    return dict(eigval=eigval, rotated=rotated, proj=proj, target=target,
                to_scaled=to_scaled, numerator=numerator, thin=n_epochs < n_columns,
                centred=centred,
                constant_leverage=weight / total[:, None], mag_mean=mag_mean,
                basis_mean=basis_mean)


def _coefficients(problem, penalty):
    """Fourier coefficients ``(a_0, a_1..a_K, b_1..b_K)`` of each star at its penalty."""
    _, scale = _harmonics()
    ridge = problem["numerator"] / (problem["eigval"] + penalty[:, None])
    scaled = np.einsum("skj,sj->sk", problem["to_scaled"], ridge)
    constant = problem["mag_mean"] - (problem["basis_mean"] * scaled).sum(axis=1)
    return np.concatenate([constant[:, None], scaled * scale], axis=1)


def _gcv_penalty(problem, repeats):
    """Penalty of each star chosen by GCV the way the reference smoother does.

    The reference (`scipy.interpolate.make_smoothing_spline`) fits the epochs
    with those within `_WRAP_MARGIN` of the 0/1 wrap repeated, and runs
    scipy's bounded Brent search (``minimize_scalar(method="bounded")``,
    absolute tolerance 1e-5) on ``[0, n]``, ``n`` the repeated epoch count. On
    sparse Gaia light curves the GCV minimum often lies below that tolerance,
    so the search ends near its lower end rather than at the global minimum.
    The models were trained on those fits, so the same search is run here on
    the same GCV score, vectorised over stars: a repeated epoch counts twice
    in the residuals and in the trace of the hat matrix (its copy has about
    the same residual and leverage). Each step costs O(harmonics^2) per star.

    Parameters
    ----------
    problem : dict
        Output of `_decompose`.
    repeats : ndarray, shape (n_stars, n_epochs)
        How many times each epoch counts (see `_repeats`; 0 for padding).

    Returns
    -------
    ndarray
        The penalty of each star, in the units of the periodic fit.
    """
    rotated, target, eigval = problem["rotated"], problem["target"], problem["eigval"]
    n_total = repeats.sum(axis=1)
    base_trace = (repeats * problem["constant_leverage"]).sum(axis=1)
    leverage = np.einsum("sn,snk->sk", repeats, rotated ** 2)
    target_sq = (repeats * target ** 2).sum(axis=1)
    cross = np.einsum("sn,snk->sk", repeats * target, rotated)
    gram = np.matmul((repeats[..., None] * rotated).transpose(0, 2, 1), rotated)
    proj = problem["proj"]
    scale = _REFERENCE_PENALTY_SCALE

    if len(n_total) == 1:
        return scale * np.array([_gcv_search_one(
            eigval[0], proj[0], cross[0], gram[0], leverage[0], float(target_sq[0]),
            float(base_trace[0]), float(n_total[0]), scale)])

    def gcv(lam):
        inverse = 1.0 / (eigval + scale * lam[:, None])
        coef = proj * inverse
        rss = (target_sq - 2 * (cross * coef).sum(axis=1)
               + np.einsum("sk,sk->s", np.matmul(gram, coef[..., None])[..., 0], coef))
        dof = 1.0 - (base_trace + (leverage * inverse).sum(axis=1)) / n_total
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.clip(rss, 0.0, None) / n_total / dof ** 2
        return np.where(dof * n_total > 0.5, score, np.inf)

    return scale * bounded_brent(gcv, n_total)


def _gcv_search_one(eigval, proj, cross, gram, leverage, target_sq, base_trace, n_total,
                    scale):
    """`_gcv_penalty`'s search for one star, on 1-D arrays and Python floats.

    The same score and the same Brent steps: a single-star call spent most
    of its time in numpy's per-call cost on arrays of one star. Its sums run
    in another order, so the penalty may differ from the batch's in the last
    bits (the inputs agree to 1e-6, tested).
    """
    def gcv(lam):
        inverse = 1.0 / (eigval + scale * lam)
        coef = proj * inverse
        dof = 1.0 - (base_trace + float(leverage @ inverse)) / n_total
        if not dof * n_total > 0.5:
            return math.inf
        rss = target_sq - 2.0 * float(cross @ coef) + float(coef @ (gram @ coef))
        return max(rss, 0.0) / n_total / dof ** 2

    golden_mean, sqrt_eps = 0.5 * (3.0 - np.sqrt(5.0)), np.sqrt(2.2e-16)
    return _bounded_brent_scalar(gcv, n_total, 1e-5, 500, golden_mean, sqrt_eps)


def bounded_brent(func, upper, xatol=1e-5, maxiter=500):
    """`scipy.optimize.minimize_scalar` ``method="bounded"`` on ``[0, upper]``, vectorised.

    The same steps as scipy's ``_minimize_scalar_bounded``, with every scalar
    of its state an array over stars; a star stops moving once converged.

    Parameters
    ----------
    func : callable
        Maps an array of one abscissa per star to one value per star.
    upper : ndarray
        Upper bound of each star's search.
    xatol : float
        Absolute tolerance, as scipy's.
    maxiter : int
        Most iterations.

    Returns
    -------
    ndarray
        The minimising abscissa of each star.
    """
    golden_mean, sqrt_eps = 0.5 * (3.0 - np.sqrt(5.0)), np.sqrt(2.2e-16)
    if upper.size == 1:
        return np.array([_bounded_brent_one(func, float(upper[0]), xatol, maxiter, golden_mean,
                                            sqrt_eps)])
    lower = np.zeros_like(upper)
    xf = lower + golden_mean * (upper - lower)
    fx = func(xf)
    st = dict(a=lower, b=upper.copy(), xf=xf, fx=fx, nfc=xf.copy(), fnfc=fx.copy(),
              fulc=xf.copy(), ffulc=fx.copy(), e=np.zeros_like(xf), rat=np.zeros_like(xf))
    for _ in range(maxiter):
        xm = 0.5 * (st["a"] + st["b"])
        tol1 = sqrt_eps * np.abs(st["xf"]) + xatol / 3.0
        active = np.abs(st["xf"] - xm) > (2.0 * tol1 - 0.5 * (st["b"] - st["a"]))
        if not active.any():
            break
        new = _brent_step(st, func, xm, tol1, golden_mean)
        st = {key: np.where(active, new[key], st[key]) for key in st}
    return st["xf"]


def _sign(x):
    return int(x > 0) - int(x < 0)


def _bounded_brent_one(func, upper, xatol, maxiter, golden_mean, sqrt_eps):
    """`bounded_brent` for one star: the same arithmetic on Python floats.

    A single-star call spent most of its time in numpy's per-operation cost
    on arrays of one element; the steps, and so the result, are those of
    `_brent_step` (tested to be identical).
    """
    return _bounded_brent_scalar(lambda x: float(func(np.array([x]))[0]), upper, xatol,
                                 maxiter, golden_mean, sqrt_eps)


def _bounded_brent_scalar(f, upper, xatol, maxiter, golden_mean, sqrt_eps):
    """`_bounded_brent_one` on a function of one Python float."""
    golden_mean, sqrt_eps = float(golden_mean), float(sqrt_eps)
    a, b = 0.0, upper
    xf = a + golden_mean * (b - a)
    fx = f(xf)
    nfc, fnfc, fulc, ffulc, e, rat = xf, fx, xf, fx, 0.0, 0.0
    for _ in range(maxiter):
        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(xf) + xatol / 3.0
        if not abs(xf - xm) > (2.0 * tol1 - 0.5 * (b - a)):
            break
        tol2 = 2.0 * tol1
        r = (xf - nfc) * (fx - ffulc)
        q = (xf - fulc) * (fx - fnfc)
        p = (xf - fulc) * q - (xf - nfc) * r
        q = 2.0 * (q - r)
        if q > 0.0:
            p = -p
        q = abs(q)
        accept = (abs(e) > tol1 and abs(p) < abs(0.5 * q * e) and p > q * (a - xf)
                  and p < q * (b - xf))
        parabolic = p / q if accept else 0.0
        x = xf + parabolic
        if (x - a) < tol2 or (b - x) < tol2:
            parabolic = (_sign(xm - xf) + ((xm - xf) == 0)) * tol1
        golden_e = a - xf if xf >= xm else b - xf
        e = rat if accept else golden_e
        rat = parabolic if accept else golden_mean * golden_e
        x = xf + (_sign(rat) + (rat == 0)) * max(abs(rat), tol1)
        fu = f(x)
        keep_second = fu <= fnfc or nfc == xf
        keep_third = not keep_second and (fu <= ffulc or fulc == xf or fulc == nfc)
        if fu <= fx:
            a, b = (xf, b) if x >= xf else (a, xf)
            nfc, fnfc, fulc, ffulc, xf, fx = xf, fx, nfc, fnfc, x, fu
        else:
            a, b = (x, b) if x < xf else (a, x)
            if keep_second:
                nfc, fnfc, fulc, ffulc = x, fu, nfc, fnfc
            elif keep_third:
                fulc, ffulc = x, fu
    return xf


def _brent_step(st, func, xm, tol1, golden_mean):
    """One iteration of scipy's bounded Brent search for every star (see `bounded_brent`)."""
    a, b, xf, fx = st["a"], st["b"], st["xf"], st["fx"]
    nfc, fnfc, fulc, ffulc = st["nfc"], st["fnfc"], st["fulc"], st["ffulc"]
    tol2 = 2.0 * tol1
    # Parabolic step where the last steps were long enough, golden section otherwise.
    r = (xf - nfc) * (fx - ffulc)
    q = (xf - fulc) * (fx - fnfc)
    p = (xf - fulc) * q - (xf - nfc) * r
    q = 2.0 * (q - r)
    p = np.where(q > 0.0, -p, p)
    q = np.abs(q)
    accept = ((np.abs(st["e"]) > tol1) & (np.abs(p) < np.abs(0.5 * q * st["e"]))
              & (p > q * (a - xf)) & (p < q * (b - xf)))
    with np.errstate(divide="ignore", invalid="ignore"):
        parabolic = np.where(accept, p / q, 0.0)
    x = xf + parabolic
    towards_middle = (np.sign(xm - xf) + ((xm - xf) == 0)) * tol1
    parabolic = np.where(((x - a) < tol2) | ((b - x) < tol2), towards_middle, parabolic)
    golden_e = np.where(xf >= xm, a - xf, b - xf)
    e = np.where(accept, st["rat"], golden_e)
    rat = np.where(accept, parabolic, golden_mean * golden_e)
    x = xf + (np.sign(rat) + (rat == 0)) * np.maximum(np.abs(rat), tol1)
    fu = func(x)
    better = fu <= fx
    keep_second = (fu <= fnfc) | (nfc == xf)
    keep_third = ~keep_second & ((fu <= ffulc) | (fulc == xf) | (fulc == nfc))
    return dict(
        a=np.where(better, np.where(x >= xf, xf, a), np.where(x < xf, x, a)),
        b=np.where(better, np.where(x >= xf, b, xf), np.where(x < xf, b, x)),
        xf=np.where(better, x, xf),
        fx=np.where(better, fu, fx),
        nfc=np.where(better, xf, np.where(keep_second, x, nfc)),
        fnfc=np.where(better, fx, np.where(keep_second, fu, fnfc)),
        fulc=np.where(better, nfc, np.where(keep_second, nfc, np.where(keep_third, x, fulc))),
        ffulc=np.where(better, fnfc,
                       np.where(keep_second, fnfc, np.where(keep_third, fu, ffulc))),
        e=e,
        rat=rat,
    )


def _fourier_eval(coef, phase):
    """Evaluate Fourier series ``coef`` (n_stars, 1 + 2K) at common phases (n,)."""
    phase = np.ascontiguousarray(phase, dtype=float)
    return coef[:, :1] + coef[:, 1:] @ _fourier_basis(phase.tobytes(), BATCH_HARMONICS).T


@functools.lru_cache(maxsize=8)
def _fourier_basis(phase_bytes, n_harmonics):
    """cos and sin of every harmonic at the phases (n, 2K), kept for the next call.

    The phases are the same few grids at every call (the search grid, the
    output grid); computing their sines again cost a single star more time
    than its fit.
    """
    k = np.arange(1, n_harmonics + 1)
    angle = 2 * np.pi * np.frombuffer(phase_bytes)[:, None] * k
    basis = np.concatenate([np.cos(angle), np.sin(angle)], axis=1)
    basis.setflags(write=False)
    return basis


def _fourier_eval_at(coef, phase):
    """Evaluate Fourier series ``coef`` (n_stars, 1 + 2K) at per-star phases (n_stars, n)."""
    k, _ = _harmonics()
    angle = 2 * np.pi * phase[..., None] * k
    return coef[:, :1] + (np.cos(angle) * coef[:, None, 1:1 + k.size]).sum(axis=-1) + (
        np.sin(angle) * coef[:, None, 1 + k.size:]).sum(axis=-1)


def _fourier_shift(coef, shift):
    """Coefficients of ``f(x + shift)`` for per-star shifts."""
    k, _ = _harmonics()
    a, b = np.split(coef[:, 1:], 2, axis=1)
    cos, sin = np.cos(2 * np.pi * k * shift[:, None]), np.sin(2 * np.pi * k * shift[:, None])
    return np.concatenate([coef[:, :1], a * cos + b * sin, b * cos - a * sin], axis=1)


def _fourier_minimum(coef):
    """Phase in [0, 1) of the minimum of each Fourier series: grid search, then Newton."""
    grid = np.arange(_SEARCH_GRID) / _SEARCH_GRID
    x = grid[np.argmin(_fourier_eval(coef, grid), axis=1)]
    k, _ = _harmonics()
    omega = 2 * np.pi * k
    a, b = np.split(coef[:, 1:], 2, axis=1)
    for _ in range(_NEWTON_STEPS):
        cos, sin = np.cos(omega * x[:, None]), np.sin(omega * x[:, None])
        slope = (omega * (b * cos - a * sin)).sum(axis=1)
        curvature = -(omega ** 2 * (a * cos + b * sin)).sum(axis=1)
        step = np.where(curvature > 0, -slope / np.where(curvature > 0, curvature, 1.0), 0.0)
        x = x + np.clip(step, -1.0 / _SEARCH_GRID, 1.0 / _SEARCH_GRID)
    return x % 1.0
