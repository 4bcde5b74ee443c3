"""Load the labelled Gaia G-band RRab light curves and turn them into model inputs.

The pre-processing itself lives in `rrlyrae_metallicity.preprocessing`; this
module only reads the shared data set, calls it (in parallel, with a cache), and
computes the density weights of the paper.
"""

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.stats import gaussian_kde

from rrlyrae_metallicity.preprocessing import MIN_EPOCHS, PreprocessingConfig, prepare_inputs

__all__ = ["DEFAULT_DATA_DIR", "Dataset", "load_dataset", "density_weights", "preprocess",
           "augmented_inputs"]

#: Where the shared data live relative to the repository root.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gaia_dr2_rrab_g"


@dataclass
class Dataset:
    """The labelled light curves, one entry per star, in ``stars`` order."""

    stars: Table
    phases: list
    mags: list

    @property
    def periods(self):
        return np.asarray(self.stars["period"].quantity.to_value("d"), dtype=float)

    @property
    def feh(self):
        return np.asarray(self.stars["feh"], dtype=float)

    @property
    def feh_peer(self):
        return np.asarray(self.stars["feh_dg22"], dtype=float)

    def __len__(self):
        return len(self.stars)


def load_dataset(data_dir=DEFAULT_DATA_DIR):
    """Read ``stars.ecsv`` and ``lightcurves.ecsv`` of the Gaia DR2 RRab set.

    Parameters
    ----------
    data_dir : path-like
        Folder holding the two ECSV files.

    Returns
    -------
    `Dataset`
    """
    data_dir = Path(data_dir)
    if not (data_dir / "stars.ecsv").exists():
        raise FileNotFoundError(
            f"no stars.ecsv in {data_dir}; pass --data-dir pointing at shared/data/gaia_dr2_rrab_g"
        )
    stars = Table.read(data_dir / "stars.ecsv")
    curves = Table.read(data_dir / "lightcurves.ecsv").group_by("source_id")
    by_id = {int(key): i for i, key in enumerate(curves.groups.keys["source_id"])}
    missing = [int(s) for s in stars["source_id"] if int(s) not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} stars have no light curve, e.g. {missing[:3]}")
    groups = [curves.groups[by_id[int(s)]] for s in stars["source_id"]]
    phases = [np.asarray(g["phase"], dtype=float) for g in groups]
    mags = [np.asarray(g["mag"], dtype=float) for g in groups]
    return Dataset(stars=stars, phases=phases, mags=mags)


def density_weights(feh, bandwidth=None):
    """Inverse-density sample weights of the paper, normalised to mean 1.

    Parameters
    ----------
    feh : array-like
        Labels.
    bandwidth : float or str, optional
        Passed to `scipy.stats.gaussian_kde` as ``bw_method`` (Scott's rule by
        default).

    Returns
    -------
    ndarray
        ``w_i ∝ 1 / kde(feh_i)``, with ``mean(w) = 1``.
    """
    feh = np.asarray(feh, dtype=float)
    density = gaussian_kde(feh, bw_method=bandwidth)(feh)
    weights = 1.0 / density
    return weights / weights.mean()


def _prepare_chunk(args):
    phases, mags, periods, config_dict, stars = args
    config = PreprocessingConfig(**config_dict)
    inputs, smoothed, errors = prepare_inputs(phases, mags, periods, config, stars=stars)
    amplitudes = np.array([np.nan if s is None else s.amplitude for s in smoothed])
    failures = [None if e is None else str(e) for e in errors]
    return inputs, amplitudes, failures


def preprocess(dataset, config, *, cache_dir=None, workers=None, progress=True):
    """Model inputs of every star, computed once per configuration and cached.

    Parameters
    ----------
    dataset : `Dataset`
    config : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
    cache_dir : path-like, optional
        Where to keep ``inputs-<hash>.npz``; no cache if `None`.
    workers : int, optional
        Processes to use (all cores by default).
    progress : bool
        Show a progress bar.

    Returns
    -------
    inputs : ndarray, shape (n_stars, length, 2)
    amplitudes : ndarray
        Peak-to-peak amplitude of each smoothed light curve.
    """
    key = hashlib.sha256(
        json.dumps(
            {"config": config.to_dict(), "ids": [int(s) for s in dataset.stars["source_id"]],
             "periods": dataset.periods.round(10).tolist(),
             "n": [len(p) for p in dataset.phases], "code": _code_version()},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) / f"inputs-{key}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return stored["inputs"], stored["amplitudes"]

    from tqdm.auto import tqdm

    chunk = 50
    ids = [int(s) for s in dataset.stars["source_id"]]
    jobs = [
        (dataset.phases[i:i + chunk], dataset.mags[i:i + chunk], dataset.periods[i:i + chunk],
         config.to_dict(), ids[i:i + chunk])
        for i in range(0, len(dataset), chunk)
    ]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        results = list(tqdm(pool.map(_prepare_chunk, jobs), total=len(jobs),
                            desc=f"pre-processing ({config.variant})", disable=not progress))
    inputs = np.concatenate([r[0] for r in results])
    amplitudes = np.concatenate([r[1] for r in results])
    failures = [f for r in results for f in r[2] if f is not None]
    if failures:
        raise RuntimeError(f"{len(failures)} training light curves failed: {failures[:3]}")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, inputs=inputs, amplitudes=amplitudes)
        os.replace(tmp, cache)
    return inputs, amplitudes


def augmented_inputs(dataset, config, copies, *, seed, originals, keep_fraction=(0.6, 1.0)):
    """Model inputs of ``copies`` re-sampled versions of every light curve.

    Each copy keeps a random subset of the star's epochs (a fraction drawn
    uniformly from ``keep_fraction``, never fewer than the pre-processing's
    minimum) and is pre-processed like the originals, so the network sees how
    the smoothed curve of the same star varies with the sampling.

    Parameters
    ----------
    dataset : `Dataset`
    config : `~rrlyrae_metallicity.preprocessing.PreprocessingConfig`
    copies : int
        Number of re-sampled versions per star.
    seed : int
        Seed of the epoch selection.
    originals : ndarray, shape (n_stars, length, 2)
        The stars' own inputs (`preprocess`), used where a copy fails.
    keep_fraction : tuple of float
        Range of the fraction of epochs kept.

    Returns
    -------
    ndarray, shape (copies, n_stars, length, 2)
        Where a copy cannot be pre-processed, the original input is used.
    """
    rng = np.random.default_rng(seed)
    result = np.repeat(originals[None], copies, axis=0)
    for c in range(copies):
        phases, mags = [], []
        for phase, mag in zip(dataset.phases, dataset.mags):
            n_keep = max(MIN_EPOCHS + 2, int(round(rng.uniform(*keep_fraction) * phase.size)))
            keep = np.sort(rng.choice(phase.size, min(n_keep, phase.size), replace=False))
            phases.append(phase[keep])
            mags.append(mag[keep])
        inputs, _, errors = prepare_inputs(phases, mags, dataset.periods, config)
        ok = np.array([e is None for e in errors])
        result[c, ok] = inputs[ok]
    return result


def _code_version():
    """Hash of the pre-processing source, so that a change invalidates the cache.

    The smoothers live in their own module since the pre-processing was split:
    both are hashed, or a changed smoother would reuse stale inputs.
    """
    import rrlyrae_metallicity.preprocessing as preprocessing
    import rrlyrae_metallicity.smoothing as smoothing

    source = b"".join(Path(m.__file__).read_bytes() for m in (preprocessing, smoothing))
    return hashlib.sha256(source).hexdigest()[:16]
