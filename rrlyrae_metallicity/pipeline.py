"""The one prediction core: from a batch of plain arrays to per-star results.

Every entry point (`~rrlyrae_metallicity.predict_feh`,
`~rrlyrae_metallicity.add_feh`, the catalogue runner, the Dask path, the
plots) reads its input with `rrlyrae_metallicity.adapters` and then calls
`predict_batch` once: each star is cleaned, folded and smoothed once
(`rrlyrae_metallicity.preprocessing`), checked once against the model's
training domain, and predicted by the ensemble in large batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .domain import (EPOCH_SENSITIVITY, FLAG_BITS, NOT_RRAB, OUT_OF_DOMAIN, domain_flags,
                     not_rrab_reason)
from .exceptions import LightCurveError
from .preprocessing import is_magnitude, prepare_batch

__all__ = ["STATUS_OK", "StarPredictions", "predict_batch"]

#: Value of the ``feh_status`` column for a star with a prediction.
STATUS_OK = "ok"


@dataclass
class StarPredictions:
    """What the package knows about each star after predicting it.

    Attributes
    ----------
    stars : list
        Name of each star.
    feh, feh_std : ndarray
        [Fe/H] and its uncertainty in dex; NaN where no prediction was made.
    status : ndarray of str
        `STATUS_OK`, or the star's `~rrlyrae_metallicity.exceptions.LightCurveError` status.
    domain : ndarray of str
        Empty, or why the star lies outside the training domain.
    flags : ndarray of int
        Bits of `~rrlyrae_metallicity.domain.FLAG_BITS`.
    n_epochs : ndarray of int
        Usable epochs (finite, distinct phases) that went into the fit; 0
        where the light curve could not be used.
    n_rejected : ndarray of int
        Epochs rejected as outliers before the fit (see
        `~rrlyrae_metallicity.preprocessing.PreprocessingConfig.outlier_threshold`).
    epoch_influence : ndarray
        [Fe/H] without the kept epoch farthest from the smooth curve of the
        others, minus ``feh`` (dex): how much the value rests on that one
        epoch; NaN without a prediction or with too few epochs to drop one.
    errors : list
        `None`, or the `~rrlyrae_metallicity.exceptions.LightCurveError` of the star.
    smoothed : list
        The `~rrlyrae_metallicity.smoothing.SmoothedLightCurve` the
        model saw, or `None`.
    """

    stars: list
    feh: np.ndarray
    feh_std: np.ndarray
    status: np.ndarray
    domain: np.ndarray
    flags: np.ndarray
    n_epochs: np.ndarray
    n_rejected: np.ndarray
    epoch_influence: np.ndarray
    errors: list
    smoothed: list

    def __len__(self):
        return len(self.stars)

    @property
    def failed(self):
        """The errors of the stars without a prediction."""
        return [e for e in self.errors if e is not None]


def predict_batch(batch, ensemble):
    """Pre-process and predict every star of a batch; never raises for one bad star.

    Parameters
    ----------
    batch : `~rrlyrae_metallicity.adapters.LightCurveBatch`
        Plain arrays of the stars.
    ensemble : `~rrlyrae_metallicity.ensemble.FehEnsemble`
        The model.

    Returns
    -------
    `StarPredictions`
    """
    n_stars = len(batch)
    errors = list(batch.errors)
    readable = [i for i in range(n_stars) if errors[i] is None]
    inputs = np.zeros((n_stars, ensemble.preprocessing.sequence_length, 2), dtype=np.float32)
    domain = np.array([""] * n_stars, dtype=object)
    flags = np.zeros(n_stars, dtype=np.int64)
    n_epochs = np.zeros(n_stars, dtype=int)
    n_rejected = np.zeros(n_stars, dtype=int)
    smoothed = [None] * n_stars
    prepared = prepare_batch(
        [batch.phases[i] for i in readable], [batch.mags[i] for i in readable],
        batch.periods[readable], ensemble.preprocessing,
        stars=[batch.stars[i] for i in readable], jackknife=True)
    curves, failures = prepared.smoothed, prepared.errors
    jackknife = np.full_like(inputs, np.nan)
    jackknife[readable] = prepared.jackknife
    for j, i in enumerate(readable):
        errors[i] = failures[j]
        if failures[j] is None:
            inputs[i] = prepared.inputs[j]
            smoothed[i] = curves[j]
            n_epochs[i] = curves[j].phase.size
            n_rejected[i] = curves[j].n_rejected
            usable = int(np.count_nonzero(is_magnitude(batch.mags[i])))
            flags[i], domain[i] = domain_flags(ensemble.training_domain, batch.periods[i],
                                               curves[j], n_epochs=usable)
            reason = not_rrab_reason(batch.periods[i], curves[j])
            if reason:
                errors[i] = LightCurveError(reason, star=batch.stars[i], status=NOT_RRAB)
                # Its reason goes where people read why a star is unusual.
                domain[i] = "; ".join(r for r in (f"not an RRab: {reason}", domain[i]) if r)
    good = np.array([e is None for e in errors], dtype=bool)
    feh = np.full(n_stars, np.nan)
    std = np.full(n_stars, np.nan)
    influence = np.full(n_stars, np.nan)
    if good.any():
        members = ensemble.stretch(ensemble.predict_members(inputs[good]))
        feh[good] = ensemble.mean(members)
        # The same prediction without the star's most deviant epoch: a value
        # that rests on one epoch is flagged, and its σ grows with the shift.
        dropped = good & np.isfinite(jackknife[:, 0, 0])
        if dropped.any():
            influence[dropped] = ensemble.mean(ensemble.stretch(
                ensemble.predict_members(jackknife[dropped]))) - feh[dropped]
        std[good] = ensemble.uncertainty(members, [smoothed[i] for i in np.flatnonzero(good)],
                                         batch.periods[good], influence[good])
        sensitive = np.abs(influence) > EPOCH_SENSITIVITY * std
        flags[sensitive] |= FLAG_BITS["epoch_sensitive"][0]
    # The uncertainty is calibrated on the training stars: it says nothing about
    # an extrapolation beyond them.
    std[(flags & OUT_OF_DOMAIN) != 0] = np.nan
    status = np.array([STATUS_OK if e is None else e.status for e in errors], dtype=object)
    flags[status == NOT_RRAB] |= FLAG_BITS["not_rrab"][0]
    flags[~good] |= FLAG_BITS["no_prediction"][0]
    return StarPredictions(stars=list(batch.stars), feh=feh, feh_std=std, status=status,
                           domain=domain, flags=flags, n_epochs=n_epochs, n_rejected=n_rejected,
                           epoch_influence=influence, errors=errors, smoothed=smoothed)
