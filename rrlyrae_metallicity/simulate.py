"""Simulate Gaia-like light curves of RRab stars, calibrated on real data.

The simulator draws stars, their light-curve shapes and their [Fe/H] from
statistics measured on the real Gaia DR2 G-band light curves of Dékány & Grebel
(2022) (see ``scripts/calibrate_simulator.py``; only summary statistics are
stored, in ``data/simulator_calibration.json``), samples them with a cadence
that imitates Gaia's scanning law, and writes them in the layouts users
download from the Gaia archive. It exists to give the package an example that
can be shipped and to test the readers and the pipeline end to end; simulated
stars are no substitute for real ones when models are trained or evaluated.

**The light-curve model.** Magnitudes follow a sine Fourier series in the pulsation phase,

.. math::

    m(\\varphi) = \\langle G \\rangle + \\sum_{k=1}^{8} A_k
    \\sin\\left(2\\pi k (\\varphi + \\delta) + \\varphi_{k1}\\right),

with :math:`\\varphi_{k1} = \\varphi_k - k\\varphi_1` (so :math:`\\varphi_{11} = 0`)
and :math:`A_k = R_{k1} A_1`. Harmonics 1-4 are drawn from the calibration.
Harmonics 5-8 are too poorly constrained by 21-80 epochs to be measured star by
star, so they are extrapolated from harmonics 3 and 4, geometrically in
amplitude and linearly in phase:

.. math::

    A_k = s\\,A_4\\,q^{k-4},\\quad q = \\min(R_{41}/R_{31}, q_{\\max}),\\quad
    \\varphi_{k1} = \\varphi_{41} + (k-4)(\\varphi_{41} - \\varphi_{31}),

with the scale :math:`s` fitted on the real light curves (about 1). This gives
the light curves the steep rise of real RRab stars. The shift :math:`\\delta`
puts maximum light (minimum magnitude) at phase 0, so that ``epoch_g`` is a
true epoch of maximum light, as in ``gaiadr3.vari_rrlyrae``.

Times are in Gaia's convention, BJD(TCB) - 2455197.5 d; an `~astropy.time.Time`
is built from them as ``Time(2455197.5, t, format="jd", scale="tcb")``.
"""

import argparse
import copy
import functools
import json
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from astropy.time import Time
from astropy.timeseries import TimeSeries
from scipy.optimize import minimize_scalar

from .gaia import GAIA_TIME_ZERO

__all__ = [
    "GAIA_TIME_ORIGIN_JD",
    "DR3_TIME_SPAN",
    "FOV_TRANSIT_DELAY",
    "EPOCH_PHOTOMETRY_COLUMNS",
    "calibration",
    "noise_sigma",
    "gaia_cadence",
    "simulate_stars",
    "lightcurve_model",
    "harmonics",
    "simulate_lightcurve",
    "simulate_epoch_photometry",
    "write_example",
    "main",
]

#: JD(TCB) of Gaia's time origin: ``time`` columns hold BJD(TCB) minus this.
GAIA_TIME_ORIGIN_JD = GAIA_TIME_ZERO

#: First and last day (Gaia time, d) of the Gaia DR3 observations:
#: 2014-07-25 10:30 to 2017-05-28 08:44 (UTC; TCB differs by about a minute).
DR3_TIME_SPAN = (1666.44, 2704.36)

#: Delay between the preceding and the following field-of-view transit of a
#: source (the 106.5 deg basic angle at Gaia's 60 arcsec/s spin rate), in days.
FOV_TRANSIT_DELAY = 106.5 / 1440.0

#: Columns of the long DataLink ``EPOCH_PHOTOMETRY`` layout, in order.
EPOCH_PHOTOMETRY_COLUMNS = (
    "source_id", "transit_id", "band", "time", "mag", "flux", "flux_error",
    "flux_over_error", "rejected_by_photometry", "rejected_by_variability",
    "other_flags", "solution_id",
)

# Gaia's spin period, d: a source seen in one scan is often seen again one or a
# few revolutions later.
_SPIN_PERIOD = 0.25
# Photometric zero-points of Gaia EDR3/DR3 (Riello et al. 2021), mag.
_ZERO_POINTS = {"G": 25.6874, "BP": 25.3385, "RP": 24.7479}
# solution_id of the Gaia DR3 epoch photometry.
_SOLUTION_ID = 375316653866487564
# Rough colours and amplitude ratios of RRab stars relative to G (BP - G, G - RP
# and A(band)/A(G)); used only to give the BP/RP rows plausible values.
_BP_MINUS_G = (0.35, 0.05)
_G_MINUS_RP = (0.55, 0.05)
_AMPLITUDE_RATIO = {"G": 1.0, "BP": 1.25, "RP": 0.75}
# Per-transit noise of BP and RP relative to G (fewer photons, wider windows).
_NOISE_RATIO = {"G": 1.0, "BP": 1.6, "RP": 1.3}
# Offsets of the BP and RP observation times from the G transit time, in
# seconds: the source crosses the BP and RP CCDs after the astrometric field.
_BAND_TIME_OFFSET_S = {"G": 0.0, "BP": 4.4, "RP": 8.8}
# Size range (mag) of the deviation of a transit rejected as an outlier.
_OUTLIER_DEVIATION = (0.5, 1.5)
# Highest harmonic of the light-curve model.
_N_HARMONICS = 8
# Grid used to locate maximum light before a bounded minimisation refines it.
_SEARCH_GRID = 1024
# Seed of the shipped example (rrlyrae_metallicity/data/example).
_EXAMPLE_SEED = 20220601
# Epoch counts of the shipped example, like Gaia DR3 RR Lyrae stars.
_EXAMPLE_EPOCHS = (40, 70)
# Fraction of transits that also get BP and RP rows in the shipped example:
# every transit would make the files too big to ship (see write_example).
_EXAMPLE_BP_RP_FRACTION = 0.5


@functools.lru_cache(maxsize=1)
def _load_calibration():
    path = files("rrlyrae_metallicity") / "data" / "simulator_calibration.json"
    return json.loads(path.read_text(encoding="utf-8"))


def calibration() -> dict:
    """The simulator's calibration, measured on real Gaia light curves.

    Returns
    -------
    dict
        The content of ``rrlyrae_metallicity/data/simulator_calibration.json``
        (a copy: changing it does not change the simulator), written by
        ``python scripts/calibrate_simulator.py``. It holds the mean and
        covariance of the Fourier parameters, period and [Fe/H], their ranges,
        the distributions of mean magnitude and epoch count, the noise relation,
        the sharpening of harmonics 5-8 and a reference linear [Fe/H] relation.
    """
    return copy.deepcopy(_load_calibration())


def noise_sigma(mean_g) -> np.ndarray:
    """Typical per-transit G noise of a star of a given mean magnitude.

    Parameters
    ----------
    mean_g : float or array-like
        Mean G magnitude.

    Returns
    -------
    ndarray
        ``sigma(G) = sqrt(floor**2 + (10**(c0 + c1 * (G - pivot)))**2)`` in mag,
        with the coefficients of `calibration` (``["noise"]``).
    """
    noise = _load_calibration()["noise"]
    mean_g = np.asarray(mean_g, dtype=float)
    slope = 10.0 ** (noise["c0"] + noise["c1"] * (mean_g - noise["pivot"]))
    return np.sqrt(noise["floor"] ** 2 + slope**2)


def _as_rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def gaia_cadence(n_epochs: int, *, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Observation times of one source with a Gaia-like cadence.

    Parameters
    ----------
    n_epochs : int
        Number of G-band transits wanted.
    rng : `numpy.random.Generator` or int, optional
        Random generator, or seed of a new one.

    Returns
    -------
    ndarray
        ``n_epochs`` sorted times in days, Gaia convention (BJD(TCB) -
        2455197.5 d), within `DR3_TIME_SPAN`.

    Notes
    -----
    A statistical imitation of the scanning law, not the real one: the source
    is visited at irregular intervals (log-normal, median about 3 weeks, from
    days to months); each visit has one to four scans one to four spin periods
    (6 h) apart; a scan gives a pair of transits through the two fields of view,
    `FOV_TRANSIT_DELAY` (106.5 min) apart, or a single one (15 per cent). Whole
    scans are then drawn at random until ``n_epochs`` transits are reached.
    """
    n_epochs = int(n_epochs)
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be at least 1, not {n_epochs}")
    rng = _as_rng(rng)
    start, end = DR3_TIME_SPAN
    gap_scale = 1.0
    while True:
        scans = []
        t = start + rng.uniform(0.0, 20.0) * gap_scale
        while t < end:
            for _ in range(rng.integers(1, 5)):
                if t + FOV_TRANSIT_DELAY < end and rng.random() < 0.85:
                    scans.append((t, t + FOV_TRANSIT_DELAY))
                elif t < end:
                    scans.append((t,))
                t += _SPIN_PERIOD * rng.integers(1, 5)
            t += gap_scale * rng.lognormal(np.log(20.0), 0.8)
        if sum(len(s) for s in scans) >= n_epochs:
            break
        # Too few scans for so many epochs: visit more often.
        gap_scale /= 2.0
    times = []
    for index in rng.permutation(len(scans)):
        times.extend(scans[index][: n_epochs - len(times)])
        if len(times) == n_epochs:
            break
    return np.sort(np.asarray(times, dtype=float))


def harmonics(a1, r21, r31, r41, phi21, phi31, phi41, *, sharpening):
    """Amplitudes and phases of the simulator's eight Fourier harmonics.

    Harmonics 1-4 follow from the Fourier parameters; 5-8 continue the
    amplitude ratio and phase step of harmonics 3-4 (the "sharpening" of the
    rise to maximum), scaled by ``sharpening["scale"]``.

    Parameters
    ----------
    a1 : array-like
        Amplitude of the first harmonic (mag).
    r21, r31, r41 : array-like
        Amplitude ratios ``A_k / A_1``.
    phi21, phi31, phi41 : array-like
        Phase differences ``phi_k1`` (radians).
    sharpening : dict
        ``scale`` and ``q_max`` of the higher harmonics (see `calibration`).

    Returns
    -------
    amplitude, phase : ndarray, shape ``(..., 8)``
        Amplitudes (mag) and phases ``phi_k1`` (radians) of harmonics 1-8.
    """
    a1, r21, r31, r41, phi21, phi31, phi41 = np.broadcast_arrays(
        *[np.asarray(x, dtype=float) for x in (a1, r21, r31, r41, phi21, phi31, phi41)]
    )
    amplitude = np.empty(a1.shape + (_N_HARMONICS,))
    phase = np.empty_like(amplitude)
    amplitude[..., :4] = np.stack([a1, r21 * a1, r31 * a1, r41 * a1], axis=-1)
    phase[..., :4] = np.stack([np.zeros_like(a1), phi21, phi31, phi41], axis=-1)
    ratio = np.clip(r41 / np.where(r31 > 0, r31, np.inf), 0.0, sharpening["q_max"])
    step = np.angle(np.exp(1j * (phi41 - phi31)))
    for k in range(5, _N_HARMONICS + 1):
        amplitude[..., k - 1] = sharpening["scale"] * r41 * a1 * ratio ** (k - 4)
        phase[..., k - 1] = phi41 + (k - 4) * step
    return amplitude, phase


def _fourier(x, amplitude, phase):
    """Sum of the harmonics at phases ``x``: shape ``amplitude.shape[:-1] + x.shape``."""
    x = np.asarray(x, dtype=float)
    angle = 2 * np.pi * np.arange(1, amplitude.shape[-1] + 1) * x.reshape(-1, 1)
    # A sin(a + p) = (A cos p) sin a + (A sin p) cos a: two matrix products.
    values = ((amplitude * np.cos(phase)) @ np.sin(angle).T
              + (amplitude * np.sin(phase)) @ np.cos(angle).T)
    return values.reshape(amplitude.shape[:-1] + x.shape)


def _extremum(values, index):
    """Vertex of the parabola through a grid extremum and its two (periodic) neighbours."""
    rows = np.arange(len(values))
    before = values[rows, index - 1]
    at = values[rows, index]
    after = values[rows, (index + 1) % values.shape[1]]
    curvature = before - 2 * at + after
    safe = np.where(curvature == 0, 1.0, curvature)
    return np.where(curvature == 0, at, at - (after - before) ** 2 / (8 * safe))


def _peak_to_peak(amplitude, phase, *, resolution=512):
    """Peak-to-peak amplitude of many stars' curves (parabolic refinement of a grid)."""
    grid = np.arange(resolution) / resolution
    # Chunks bound the memory of the (stars, grid, harmonics) intermediate.
    chunk = max(1, 2**22 // (resolution * amplitude.shape[-1]))
    result = []
    for i in range(0, len(amplitude), chunk):
        values = _fourier(grid, amplitude[i:i + chunk], phase[i:i + chunk])
        result.append(_extremum(values, np.argmax(values, axis=1))
                      - _extremum(values, np.argmin(values, axis=1)))
    return np.concatenate(result)


def _phase_of_maximum(amplitude, phase):
    """Phase where the Fourier sum of one star is smallest (maximum light)."""
    grid = np.arange(_SEARCH_GRID) / _SEARCH_GRID
    start = grid[np.argmin(_fourier(grid, amplitude, phase))]
    step = 1.0 / _SEARCH_GRID
    result = minimize_scalar(
        lambda x: float(_fourier(np.array([x]), amplitude, phase)[0]),
        bounds=(start - step, start + step), method="bounded",
        options={"xatol": 1e-9},
    )
    return float(result.x) % 1.0


def _value(params, name, unit=None):
    value = params[name]
    if isinstance(value, u.Quantity):
        return float(value.to_value(unit) if unit is not None else value.value)
    return float(value)


def _star_model(params):
    """Coefficients, shift to maximum light and mean magnitude of one star."""
    sharpening = _load_calibration()["sharpening"]
    shape = [_value(params, name) for name in ("r21", "r31", "r41")]
    angles = [_value(params, name, u.rad) for name in ("phi21", "phi31", "phi41")]
    amplitude, phase = harmonics(_value(params, "a1", u.mag), *shape, *angles,
                                  sharpening=sharpening)
    return amplitude, phase, _phase_of_maximum(amplitude, phase), _value(params, "mean_g", u.mag)


def lightcurve_model(star, phase) -> np.ndarray:
    """Noiseless G magnitude of a simulated star at given phases.

    Parameters
    ----------
    star : `~astropy.table.Row` or mapping
        A row of `simulate_stars` (or a dict with the same keys: ``mean_g``,
        ``a1``, ``r21``, ``r31``, ``r41``, ``phi21``, ``phi31``, ``phi41``).
    phase : float or array-like
        Pulsation phase, ``frac((t - epoch_g) / pf)``: maximum light is at 0.

    Returns
    -------
    ndarray
        G magnitudes.
    """
    amplitude, harmonic_phase, shift, mean_g = _star_model(star)
    return mean_g + _fourier(np.asarray(phase, dtype=float) + shift, amplitude, harmonic_phase)


def _source_ids(n, rng):
    """Unique int64 ids shaped like Gaia's: HEALPix level-12 index * 2**35 + number."""
    # Indices from 29103831 up give 19-digit ids; 12 * 4**12 is the number of pixels.
    ids = np.empty(0, dtype=np.int64)
    while ids.size < n:
        pixel = rng.integers(29_103_831, 12 * 4**12, n, dtype=np.int64)
        number = rng.integers(1, 2**21, n, dtype=np.int64)
        candidates = pixel * np.int64(2**35) + number
        ids = np.concatenate([ids, candidates[~np.isin(candidates, ids)]])
        ids = ids[np.sort(np.unique(ids, return_index=True)[1])]
    return ids[:n]


def _draw_shapes(n, rng, cal):
    """Draw ``n`` vectors of the calibration's parameters, with realistic amplitudes."""
    names = cal["parameters"]
    mean = np.asarray(cal["mean"])
    chol = np.linalg.cholesky(np.asarray(cal["covariance"]))
    low = np.array([cal["ranges"][name]["clip"][0] for name in names])
    high = np.array([cal["ranges"][name]["clip"][1] for name in names])
    ptp_low, ptp_high = cal["peak_to_peak_g"]["min"], cal["peak_to_peak_g"]["max"]
    kept = []
    while sum(len(k) for k in kept) < n:
        z = np.clip(mean + rng.standard_normal((2 * n + 8, len(names))) @ chol.T, low, high)
        p = dict(zip(names, z.T))
        amplitude, phase = harmonics(10 ** p["log10_a1"], p["r21"], p["r31"], p["r41"],
                                      p["phi21"], p["phi31"], p["phi41"],
                                      sharpening=cal["sharpening"])
        ptp = _peak_to_peak(amplitude, phase, resolution=256)
        # Rejection rather than clipping keeps the joint distribution's shape.
        kept.append(z[(ptp >= ptp_low) & (ptp <= ptp_high)])
    return dict(zip(names, np.concatenate(kept)[:n].T))


def simulate_stars(n_stars: int, *, seed: int | None = 0,
                   n_epochs_range: tuple[int, int] | None = None) -> Table:
    """Draw RRab stars with the statistics of the real Gaia light curves.

    Period, [Fe/H] and the light-curve shape (``A1``, ``R21``, ``R31``,
    ``R41``, ``phi21``, ``phi31``, ``phi41``) are drawn jointly from the
    multivariate normal of the calibration, so that the simulated [Fe/H] is
    tied to period and shape as in the real data. Each parameter is clipped to
    the 0.5-99.5 percentiles of the real stars (so the period stays within
    about 0.36-0.80 d), and draws whose peak-to-peak amplitude falls outside
    the real range are drawn again. Mean magnitudes and
    epoch counts follow the real distributions; the noise of each star scatters
    about `noise_sigma` as the real stars do.

    Parameters
    ----------
    n_stars : int
        Number of stars.
    seed : int, optional
        Seed of `numpy.random.default_rng`: the same seed gives the same stars.
    n_epochs_range : tuple of int, optional
        Draw ``num_clean_epochs_g`` uniformly from this inclusive range instead
        of from the calibration's (Gaia DR2, 21-80 epochs) distribution.

    Returns
    -------
    `~astropy.table.Table`
        One row per star: ``source_id``, ``pf`` (d), ``epoch_g`` (d, Gaia time,
        an epoch of maximum light), ``mean_g``, ``peak_to_peak_g``,
        ``num_clean_epochs_g``, ``sigma_g`` (noise of a transit at the mean
        magnitude, mag),
        ``feh_simulated`` (dex), the Fourier parameters ``a1`` (mag), ``r21``,
        ``r31``, ``r41``, ``phi21``, ``phi31``, ``phi41`` (rad, sine series) and
        ``best_classification`` (``"RRab"``).
    """
    n_stars = int(n_stars)
    if n_stars < 1:
        raise ValueError(f"n_stars must be at least 1, not {n_stars}")
    cal = _load_calibration()
    rng = np.random.default_rng(seed)
    p = _draw_shapes(n_stars, rng, cal)

    mean_g_cal = cal["mean_g"]
    mean_g = np.interp(rng.uniform(size=n_stars), mean_g_cal["quantile_levels"],
                       mean_g_cal["quantiles"])
    if n_epochs_range is None:
        epochs_cal = cal["n_epochs"]
        n_epochs = np.rint(np.interp(rng.uniform(size=n_stars), epochs_cal["quantile_levels"],
                                     epochs_cal["quantiles"])).astype(np.int64)
    else:
        low, high = (int(x) for x in n_epochs_range)
        if not 1 <= low <= high:
            raise ValueError(f"n_epochs_range must be (low, high) with 1 <= low <= high, "
                             f"not {n_epochs_range}")
        n_epochs = rng.integers(low, high + 1, n_stars, dtype=np.int64)
    noise = cal["noise"]
    sigma = noise_sigma(mean_g) * 10 ** (noise["star_scatter_dex"] * rng.standard_normal(n_stars))
    sigma = np.clip(sigma, noise["floor"], noise["max_sigma"])
    epoch_g = rng.uniform(*DR3_TIME_SPAN, n_stars)
    source_id = _source_ids(n_stars, rng)

    a1 = 10 ** p["log10_a1"]
    amplitude, phase = harmonics(a1, p["r21"], p["r31"], p["r41"], p["phi21"], p["phi31"],
                                  p["phi41"], sharpening=cal["sharpening"])
    peak_to_peak = _peak_to_peak(amplitude, phase)

    sine = "sine Fourier series m = <G> + sum_k A_k sin(2 pi k phase + phi_k)"
    table = Table()
    table["source_id"] = source_id
    table["pf"] = u.Quantity(10 ** p["log10_period"], u.d)
    table["epoch_g"] = u.Quantity(epoch_g, u.d)
    table["mean_g"] = u.Quantity(mean_g, u.mag)
    table["peak_to_peak_g"] = u.Quantity(peak_to_peak, u.mag)
    table["num_clean_epochs_g"] = n_epochs
    table["sigma_g"] = u.Quantity(sigma, u.mag)
    table["feh_simulated"] = u.Quantity(p["feh"], u.dex)
    table["a1"] = u.Quantity(a1, u.mag)
    for name in ("r21", "r31", "r41"):
        table[name] = p[name]
    for name in ("phi21", "phi31", "phi41"):
        table[name] = u.Quantity(p[name], u.rad)
    table["best_classification"] = np.full(n_stars, "RRab")
    descriptions = {
        "source_id": "simulated identifier shaped like a Gaia source_id (not a real source)",
        "pf": "fundamental pulsation period",
        "epoch_g": "epoch of maximum light in G, BJD(TCB) - 2455197.5 d",
        "mean_g": "magnitude-averaged mean G magnitude (A0 of the Fourier series)",
        "peak_to_peak_g": "peak-to-peak amplitude of the noiseless G light curve",
        "num_clean_epochs_g": "number of G transits not rejected",
        "sigma_g": "standard deviation of the Gaussian noise of a G transit at mean_g",
        "feh_simulated": "[Fe/H] drawn by the simulator (its truth), on the scale of the "
                         "calibration labels (Crestani et al. 2021)",
        "a1": f"amplitude of the first harmonic ({sine})",
        "best_classification": "RR Lyrae type",
    }
    for k in (2, 3, 4):
        descriptions[f"r{k}1"] = f"amplitude ratio A{k}/A1 ({sine})"
        descriptions[f"phi{k}1"] = (f"phase difference phi_{k}1 = phi_{k} - {k} phi_1 ({sine}; "
                                    f"Gaia's vari_rrlyrae uses a cosine series)")
    for name, text in descriptions.items():
        table[name].description = text
    table.meta.update(_simulated_meta(seed))
    return table


def _simulated_meta(seed):
    return {
        "simulated": True,
        "description": ("SIMULATED Gaia-like RRab data made by rrlyrae_metallicity.simulate, "
                        "calibrated on summary statistics of real Gaia DR2 G-band light curves "
                        "(Dekany & Grebel 2022); not real Gaia data."),
        "generator": "rrlyrae_metallicity.simulate",
        "seed": seed,
        "time_system": "BJD(TCB) - 2455197.5 d",
    }


def _times_in_gaia_days(times):
    if isinstance(times, Time):
        tcb = times.tcb
        return (tcb.jd1 - GAIA_TIME_ORIGIN_JD) + tcb.jd2
    if isinstance(times, u.Quantity):
        return np.asarray(times.to_value(u.d), dtype=float)
    return np.asarray(times, dtype=float)


def _noiseless(params, t):
    amplitude, harmonic_phase, shift, mean_g = _star_model(params)
    phase = np.mod((t - _value(params, "epoch_g", u.d)) / _value(params, "pf", u.d), 1.0)
    return mean_g, mean_g + _fourier(phase + shift, amplitude, harmonic_phase)


def simulate_lightcurve(star, *, times=None, n_epochs: int | None = None,
                        rng: np.random.Generator | int | None = None) -> TimeSeries:
    """Simulate the G-band light curve of one star.

    Parameters
    ----------
    star : `~astropy.table.Row` or mapping
        A row of `simulate_stars`, or a dict with at least ``pf``, ``epoch_g``,
        ``mean_g``, ``a1``, ``r21``, ``r31``, ``r41``, ``phi21``, ``phi31`` and
        ``phi41`` (plain numbers in d, mag and rad, or Quantities).
        ``sigma_g`` (mag) sets the Gaussian noise at the mean magnitude
        (`noise_sigma` of ``mean_g`` if absent); each epoch's noise scales
        with its model magnitude along `noise_sigma`.
    times : array-like, `~astropy.units.Quantity` ['time'] or `~astropy.time.Time`, optional
        Observation times; plain numbers are days in Gaia's convention. By
        default `gaia_cadence` draws them.
    n_epochs : int, optional
        Number of epochs when ``times`` is not given; by default the star's
        ``num_clean_epochs_g``.
    rng : `numpy.random.Generator` or int, optional
        Random generator (or seed) for the cadence and the noise. By default
        one seeded with the star's ``source_id`` (0 if it has none), so that
        repeated calls give the same light curve.

    Returns
    -------
    `~astropy.timeseries.TimeSeries`
        Columns ``time`` (JD, TCB), ``mag`` and ``mag_error`` (mag).
    """
    if rng is None:
        rng = int(star["source_id"]) if "source_id" in _keys(star) else 0
    rng = _as_rng(rng)
    if times is None:
        if n_epochs is None:
            if "num_clean_epochs_g" not in _keys(star):
                raise TypeError("give 'times' or 'n_epochs': the star has no 'num_clean_epochs_g'")
            n_epochs = int(star["num_clean_epochs_g"])
        t = gaia_cadence(n_epochs, rng=rng)
    else:
        if n_epochs is not None:
            raise TypeError("'times' and 'n_epochs' cannot both be given")
        t = np.atleast_1d(_times_in_gaia_days(times))
    mean_g, model = _noiseless(star, t)
    sigma = _transit_sigma(star, mean_g, model)
    mag = model + sigma * rng.standard_normal(t.shape)
    series = TimeSeries(
        time=Time(GAIA_TIME_ORIGIN_JD, t, format="jd", scale="tcb"),
        data={"mag": u.Quantity(mag, u.mag), "mag_error": u.Quantity(sigma, u.mag)},
    )
    series.meta.update({k: v for k, v in _simulated_meta(None).items() if k != "seed"})
    for name in ("source_id", "pf", "epoch_g"):
        if name in _keys(star):
            series.meta[name] = (int(star[name]) if name == "source_id"
                                 else _value(star, name, u.d))
    return series


def _transit_sigma(star, mean_g, model):
    """Noise of each transit: the star's ``sigma_g`` scaled along `noise_sigma`.

    Brighter phases get less noise, as in real photometry; the star's own
    level (``sigma_g``, or `noise_sigma` of its mean magnitude) holds at the
    mean magnitude.
    """
    relative = noise_sigma(model) / noise_sigma(mean_g)
    if "sigma_g" in _keys(star):
        return _value(star, "sigma_g", u.mag) * relative
    return noise_sigma(mean_g) * relative


def _keys(star):
    if isinstance(star, Mapping):
        return star.keys()
    return star.colnames


def simulate_epoch_photometry(stars: Table, *, seed: int | None = 0, include_bp_rp: bool = True,
                              reject_fraction: float = 0.03,
                              bp_rp_fraction: float = 1.0) -> Table:
    """Simulate the Gaia archive's epoch photometry of stars, long layout.

    Parameters
    ----------
    stars : `~astropy.table.Table`
        Output of `simulate_stars`.
    seed : int, optional
        Seed of the cadence, noise, colours and rejections.
    include_bp_rp : bool, optional
        Also write BP and RP rows.
    reject_fraction : float, optional
        Fraction of extra G transits (at least one per star when positive) that
        deviate by 0.5-1.5 mag and are flagged ``rejected_by_variability``; the
        star keeps ``num_clean_epochs_g`` unflagged G transits.
    bp_rp_fraction : float, optional
        Fraction of the transits that have BP and RP rows (Gaia lacks them for
        some transits); lower it to make smaller files.

    Returns
    -------
    `~astropy.table.Table`
        One row per transit and band, with exactly the columns of
        `EPOCH_PHOTOMETRY_COLUMNS`, like the DataLink ``EPOCH_PHOTOMETRY``
        files saved from the archive before about December 2024 (and Gaia DR2):
        for each star the G rows, then BP, then RP, each in time order. ``time``
        is BJD(TCB) - 2455197.5 d; ``flux`` (e-/s) follows from ``mag`` and the
        DR3 zero-points.
    """
    if not 0.0 <= reject_fraction < 1.0:
        raise ValueError(f"reject_fraction must be in [0, 1), not {reject_fraction}")
    if not 0.0 <= bp_rp_fraction <= 1.0:
        raise ValueError(f"bp_rp_fraction must be in [0, 1], not {bp_rp_fraction}")
    bands = ("G", "BP", "RP") if include_bp_rp else ("G",)
    child_seeds = np.random.SeedSequence(seed).spawn(len(stars))
    blocks = {name: [] for name in EPOCH_PHOTOMETRY_COLUMNS}
    for star, child in zip(stars, child_seeds):
        rng = np.random.default_rng(child)
        n_clean = int(star["num_clean_epochs_g"])
        n_reject = max(1, round(reject_fraction * n_clean)) if reject_fraction > 0 else 0
        t = gaia_cadence(n_clean + n_reject, rng=rng)
        rejected = np.zeros(t.size, dtype=bool)
        rejected[rng.choice(t.size, n_reject, replace=False)] = True
        mean_g, model_g = _noiseless(star, t)
        sigma_g = _transit_sigma(star, mean_g, model_g)
        # Transit id: 17 digits, increasing with time, shared by the bands of a
        # transit. It mimics the look of Gaia's ids, not their encoding.
        transit_id = np.int64(15_000_000_000_000_000) + np.rint(t * 864e9).astype(np.int64)
        offsets = {"G": 0.0, "BP": _BP_MINUS_G[0] + _BP_MINUS_G[1] * rng.standard_normal(),
                   "RP": -(_G_MINUS_RP[0] + _G_MINUS_RP[1] * rng.standard_normal())}
        with_bp_rp = rng.random(t.size) < bp_rp_fraction
        for band in bands:
            keep = np.ones(t.size, dtype=bool) if band == "G" else with_bp_rp
            sigma = sigma_g * _NOISE_RATIO[band]
            mag = (mean_g + offsets[band] + _AMPLITUDE_RATIO[band] * (model_g - mean_g)
                   + sigma * rng.standard_normal(t.size))
            flagged = rejected if band == "G" else np.zeros(t.size, dtype=bool)
            deviation = rng.uniform(*_OUTLIER_DEVIATION, t.size) * rng.choice([-1.0, 1.0], t.size)
            mag = np.where(flagged, mag + deviation, mag)
            flux = 10 ** (-0.4 * (mag - _ZERO_POINTS[band]))
            flux_error = flux * sigma * np.log(10) / 2.5
            n = int(keep.sum())
            blocks["source_id"].append(np.full(n, star["source_id"], dtype=np.int64))
            blocks["transit_id"].append(transit_id[keep])
            blocks["band"].append(np.full(n, band))
            blocks["time"].append(t[keep] + _BAND_TIME_OFFSET_S[band] / 86400.0)
            blocks["mag"].append(mag[keep])
            blocks["flux"].append(flux[keep])
            blocks["flux_error"].append(flux_error[keep])
            blocks["flux_over_error"].append((flux / flux_error)[keep].astype(np.float32))
            blocks["rejected_by_photometry"].append(np.zeros(n, dtype=bool))
            blocks["rejected_by_variability"].append(flagged[keep])
            blocks["other_flags"].append(np.zeros(n, dtype=np.int64))
            blocks["solution_id"].append(np.full(n, _SOLUTION_ID, dtype=np.int64))
    table = Table({name: np.concatenate(parts) if parts else np.empty(0)
                   for name, parts in blocks.items()})
    units = {"time": u.d, "mag": u.mag, "flux": u.electron / u.s, "flux_error": u.electron / u.s}
    descriptions = {
        "source_id": "simulated source identifier",
        "transit_id": "transit identifier (simulated; increases with time)",
        "band": "photometric band: G, BP or RP",
        "time": "observation time, BJD(TCB) - 2455197.5 d",
        "mag": "magnitude in the band",
        "flux": "flux in the band",
        "flux_error": "uncertainty of the flux",
        "flux_over_error": "flux divided by its uncertainty",
        "rejected_by_photometry": "rejected by the photometric processing",
        "rejected_by_variability": "rejected by the variability processing (outlier)",
        "other_flags": "other flags (always 0 here: not simulated)",
        "solution_id": "solution identifier",
    }
    for name, unit in units.items():
        table[name].unit = unit
    for name, text in descriptions.items():
        table[name].description = text
    table.meta.update(_simulated_meta(seed))
    table.meta["layout"] = "Gaia DataLink EPOCH_PHOTOMETRY, long (one row per transit and band)"
    table.meta["reject_fraction"] = float(reject_fraction)
    table.meta["bp_rp_fraction"] = float(bp_rp_fraction) if include_bp_rp else 0.0
    return table


def write_example(directory, *, n_stars: int = 20, seed: int = _EXAMPLE_SEED,
                  n_epochs_range: tuple[int, int] = _EXAMPLE_EPOCHS,
                  bp_rp_fraction: float = _EXAMPLE_BP_RP_FRACTION) -> tuple[Path, Path]:
    """Write a simulated example: epoch photometry and a ``vari_rrlyrae`` table.

    Parameters
    ----------
    directory : path-like
        Folder to write into (created if needed); existing files are replaced.
    n_stars : int, optional
        Number of stars.
    seed : int, optional
        Seed of `simulate_stars` and `simulate_epoch_photometry`.
    n_epochs_range : tuple of int, optional
        Range of the number of unrejected G transits per star.
    bp_rp_fraction : float, optional
        Fraction of transits with BP and RP rows. The default, 0.5, keeps the
        shipped example under 300 kB.

    Returns
    -------
    epoch_photometry, vari_rrlyrae : `~pathlib.Path`
        ``epoch_photometry.ecsv``: the long ``EPOCH_PHOTOMETRY`` layout of
        `simulate_epoch_photometry`. ``vari_rrlyrae.ecsv``: ``source_id, pf,
        epoch_g, peak_to_peak_g, num_clean_epochs_g, best_classification``
        named as in ``gaiadr3.vari_rrlyrae``, plus ``feh_simulated``, the
        simulator's true [Fe/H].
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stars = simulate_stars(n_stars, seed=seed, n_epochs_range=n_epochs_range)
    photometry = simulate_epoch_photometry(stars, seed=seed, bp_rp_fraction=bp_rp_fraction)
    command = (f"python -m rrlyrae_metallicity.simulate --example {directory.as_posix()} "
               f"--n-stars {n_stars} --seed {seed}")

    vari = stars["source_id", "pf", "epoch_g", "peak_to_peak_g", "num_clean_epochs_g",
                 "best_classification", "feh_simulated"]
    vari["feh_simulated"].description = (
        "TRUE [Fe/H] of the simulated star (the simulator's truth), not a Gaia quantity")
    # ECSV writes floats in full, so round them to what Gaia publishes (and
    # keep the shipped files small).
    # Decimals (time-like columns) or, for fluxes, significant digits.
    for table, decimals in ((vari, {"pf": 9, "epoch_g": 6, "peak_to_peak_g": 4,
                                    "feh_simulated": 4}),
                            (photometry, {"time": 6, "mag": 5})):
        for name, n in decimals.items():
            table[name][:] = np.round(np.asarray(table[name]), n)
    for name, n in {"flux": 6, "flux_error": 4, "flux_over_error": 5}.items():
        photometry[name][:] = _round_significant(photometry[name], n)
    for table, content in ((photometry, "epoch photometry (long layout)"),
                           (vari, "columns of gaiadr3.vari_rrlyrae")):
        table.meta.update(_simulated_meta(seed))
        table.meta["content"] = content
        table.meta["n_stars"] = int(n_stars)
        table.meta["command"] = command
    paths = directory / "epoch_photometry.ecsv", directory / "vari_rrlyrae.ecsv"
    photometry.write(paths[0], format="ascii.ecsv", overwrite=True)
    vari.write(paths[1], format="ascii.ecsv", overwrite=True)
    return paths


def _round_significant(values, digits):
    """Values of a 1-d float column rounded to ``digits`` significant digits."""
    values = np.asarray(values)
    return np.array([float(f"{v:.{digits}g}") for v in values], dtype=values.dtype)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m rrlyrae_metallicity.simulate --example DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m rrlyrae_metallicity.simulate",
        description="Write SIMULATED Gaia-like RRab light curves (epoch_photometry.ecsv and "
                    "vari_rrlyrae.ecsv).")
    parser.add_argument("--example", metavar="DIR", type=Path, required=True,
                        help="folder to write the two ECSV files into")
    parser.add_argument("--n-stars", type=int, default=20, help="number of stars (default 20)")
    parser.add_argument("--seed", type=int, default=_EXAMPLE_SEED,
                        help=f"random seed (default {_EXAMPLE_SEED}, that of the shipped example)")
    args = parser.parse_args(argv)
    for path in write_example(args.example, n_stars=args.n_stars, seed=args.seed):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
