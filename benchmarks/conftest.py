"""Shared fixtures of the throughput benchmarks and the summary of ratios.

Run with ``pytest benchmarks --benchmark-enable`` (see the README); the
default test run (``testpaths = tests``, ``--benchmark-skip``) leaves them out.
"""

import os

import numpy as np
import pytest

from rrlyrae_metallicity import simulate
from rrlyrae_metallicity.preprocessing import fold_times

#: Stars per benchmark round (simulated Gaia-like RRab; env RRLYRAE_BENCH_STARS).
N_STARS = int(os.environ.get("RRLYRAE_BENCH_STARS", 2000))

#: Seconds per star of each timed stage, filled by the benchmarks.
TIMINGS = {}


@pytest.fixture(scope="session")
def simulated():
    """Folded phases, magnitudes and periods of `N_STARS` simulated Gaia-like stars."""
    stars = simulate.simulate_stars(N_STARS, seed=11)
    phases, mags = [], []
    for i, star in enumerate(stars):
        curve = simulate.simulate_lightcurve(star, rng=i)
        phases.append(fold_times(np.asarray(curve.time.jd), star["pf"]))
        mags.append(np.asarray(curve["mag"].value, dtype=float))
    return phases, mags, np.asarray(stars["pf"], dtype=float)


def record(name, benchmark, n_stars):
    """Store the mean time per star of a finished benchmark under ``name``."""
    TIMINGS[name] = benchmark.stats.stats.mean / n_stars
    benchmark.extra_info["stars"] = n_stars
    benchmark.extra_info["stars_per_s"] = n_stars / benchmark.stats.stats.mean


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    write = terminalreporter.write_line
    write("")
    write("throughput (same run, same stars)")
    for name, seconds in TIMINGS.items():
        write(f"  {name:<32} {seconds * 1e6:10.1f} us/star {1 / seconds:10.0f} stars/s")
    for fast, slow in (("end_to_end", "reference_end_to_end"),
                       ("end_to_end", "end_to_end_ensemble"),
                       ("model", "model_ensemble"),
                       ("end_to_end", "lean_reference_end_to_end"),
                       ("api_batch", "single_star"),
                       ("preprocessing", "reference_preprocessing"),
                       ("model", "reference_model"),
                       ("end_to_end_real", "reference_end_to_end_real")):
        if fast in TIMINGS and slow in TIMINGS:
            write(f"  ratio {slow} / {fast}: {TIMINGS[slow] / TIMINGS[fast]:.1f}x")
