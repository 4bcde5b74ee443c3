"""Property-based tests: invariances that [Fe/H] must respect whatever the light curve."""

import numpy as np
from astropy import units as u
from astropy.time import TimeDelta
from astropy.timeseries import TimeSeries
from hypothesis import given, settings
from hypothesis import strategies as st

import rrlyrae_metallicity as rm
from rrlyrae_metallicity import simulate

STARS = simulate.simulate_stars(4, seed=21)
CURVES = [simulate.simulate_lightcurve(star, n_epochs=45, rng=i) for i, star in enumerate(STARS)]
PERIODS = STARS["pf"].quantity
REFERENCE = rm.predict_feh(CURVES, PERIODS).value

star_index = st.integers(min_value=0, max_value=len(STARS) - 1)
quick = settings(max_examples=15, deadline=None)


@quick
@given(index=star_index, seed=st.integers(0, 2**32 - 1))
def test_permuting_the_epochs_changes_nothing(index, seed):
    curve = CURVES[index]
    shuffled = curve[np.random.default_rng(seed).permutation(len(curve))]
    assert abs(rm.predict_feh(shuffled, PERIODS[index]).value - REFERENCE[index]) < 1e-6


@quick
@given(index=star_index, offset=st.floats(-5.0, 5.0))
def test_a_constant_magnitude_offset_changes_nothing(index, offset):
    curve = CURVES[index].copy()
    curve["mag"] = curve["mag"] + offset * u.mag
    assert abs(rm.predict_feh(curve, PERIODS[index]).value - REFERENCE[index]) < 1e-6


@quick
@given(index=star_index, cycles=st.integers(-2000, 2000))
def test_shifting_times_by_whole_periods_changes_nothing(index, cycles):
    original = CURVES[index]
    curve = TimeSeries(time=original.time + TimeDelta(cycles * PERIODS[index]),
                       data={"mag": original["mag"]})
    assert abs(rm.predict_feh(curve, PERIODS[index]).value - REFERENCE[index]) < 1e-6


@quick
@given(order=st.permutations(range(len(STARS))))
def test_order_of_stars_in_a_batch_changes_nothing(order):
    order = list(order)
    feh = rm.predict_feh([CURVES[i] for i in order], PERIODS[order]).value
    np.testing.assert_allclose(feh, REFERENCE[order], atol=1e-6)
