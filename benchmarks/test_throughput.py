"""Throughput of the package against the paper's pipeline, on the same stars.

Two references, timed in the same run:

- the *heavy* reference: one `scipy.interpolate.make_smoothing_spline` GCV
  fit per star in a Python loop (the ``scipy_gcv`` smoother, with its
  wrap-around copies and re-alignment) and Keras ``model.predict`` on the
  same ensemble (ten 40/32/16 GRU members on 80 x 2 inputs, weights copied
  from the shipped ONNX files when possible);
- the *lean* paper pipeline: ``make_smoothing_spline`` fitted once per star
  on the folded, mean-subtracted epochs (no wrap-around copies, no
  re-alignment), resampled at 100 phases, then the paper's 20/16/8 GRU in
  Keras once for each of its five fold models.

``test_single_star`` times `~rrlyrae_metallicity.predict_feh` called once per
star, against ``test_api_batch`` (the same call on all the stars at once).
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.preprocessing import prepare_inputs

from .conftest import N_STARS, record

REPO = Path(__file__).resolve().parents[1]
GAIA = REPO.parent / "shared" / "data" / "gaia_dr2_rrab_g"


@pytest.fixture(scope="module")
def model():
    return load_model()


def end_to_end(phases, mags, periods, model):
    """Pre-process and predict the ensemble mean, as `predict_feh` does after folding."""
    inputs, _, errors = prepare_inputs(phases, mags, periods, model.preprocessing)
    good = np.array([e is None for e in errors])
    return model.predict_members(inputs[good]).mean(axis=0)


def test_preprocessing(benchmark, simulated, model):
    phases, mags, periods = simulated
    benchmark.pedantic(prepare_inputs, args=(phases, mags, periods, model.preprocessing),
                       rounds=3, warmup_rounds=1)
    record("preprocessing", benchmark, N_STARS)


def test_model(benchmark, simulated, model):
    inputs, _, _ = prepare_inputs(*simulated, model.preprocessing)
    benchmark.pedantic(model.predict_members, args=(inputs,), rounds=3, warmup_rounds=1)
    record("model", benchmark, N_STARS)


@pytest.mark.parametrize("name", ["inception", "gru_inception"])
def test_model_by_name(benchmark, simulated, name):
    """The model stage of the slower shipped models, against ``test_model``'s default."""
    other = load_model(name)
    inputs, _, _ = prepare_inputs(*simulated, other.preprocessing)

    def predict():
        members = other.stretch(other.predict_members(inputs))
        return other.mean(members), other.uncertainty(members)

    benchmark.pedantic(predict, rounds=3, warmup_rounds=1)
    record(f"model_{name}", benchmark, N_STARS)


def test_end_to_end(benchmark, simulated, model):
    benchmark.pedantic(end_to_end, args=(*simulated, model), rounds=3, warmup_rounds=1)
    record("end_to_end", benchmark, N_STARS)


@pytest.fixture(scope="module")
def ensemble():
    """The ten-member ``gru`` ensemble (the default before the distilled student)."""
    return load_model("gru")


def test_end_to_end_ensemble(benchmark, simulated, ensemble):
    """``test_end_to_end`` with the ten-member ensemble, beside the default."""
    benchmark.pedantic(end_to_end, args=(*simulated, ensemble), rounds=3, warmup_rounds=1)
    record("end_to_end_ensemble", benchmark, N_STARS)


def test_model_ensemble(benchmark, simulated, ensemble):
    """``test_model`` with the ten-member ensemble, beside the default."""
    inputs, _, _ = prepare_inputs(*simulated, ensemble.preprocessing)
    benchmark.pedantic(ensemble.predict_members, args=(inputs,), rounds=3, warmup_rounds=1)
    record("model_ensemble", benchmark, N_STARS)


@pytest.fixture(scope="module")
def keras_members(ensemble):
    """The ``gru`` ensemble rebuilt in Keras (``build_gru(units=(40, 32, 16))``), ONNX weights.

    The heavy reference: the paper's pipeline run with our ten networks.
    """
    pytest.importorskip("tensorflow")
    from training.architectures import build_gru

    model = ensemble
    members = []
    for member in model.manifest["members"]:
        keras_model = build_gru((model.preprocessing.sequence_length, 2), units=(40, 32, 16))
        _load_onnx_weights(keras_model, model, member["file"])
        members.append(keras_model)
    return members


def _load_onnx_weights(keras_model, model, filename):
    """Copy the ONNX initialisers into the Keras model when the shapes line up.

    Only the timing matters for the benchmark, so a mismatch leaves Keras's
    initial weights in place.
    """
    import onnx
    from onnx import numpy_helper

    from rrlyrae_metallicity.registry import models_directory

    graph = onnx.load_from_string((models_directory() / model.name / filename).read_bytes()).graph
    available = [numpy_helper.to_array(t) for t in graph.initializer]
    by_shape = {}
    for array in available:
        by_shape.setdefault(array.shape, []).append(array)
    weights = []
    for variable in keras_model.get_weights():
        candidates = by_shape.get(variable.shape)
        if not candidates:
            return
        weights.append(candidates.pop(0))
    keras_model.set_weights(weights)


def reference_preprocessing(phases, mags, periods, model):
    config = dataclasses.replace(model.preprocessing, smoother="scipy_gcv")
    return prepare_inputs(phases, mags, periods, config)[0]


def reference_model(inputs, members):
    return np.mean([m.predict(inputs, batch_size=256, verbose=0)[:, 0] for m in members], axis=0)


def test_reference_preprocessing(benchmark, simulated, model):
    benchmark.pedantic(reference_preprocessing, args=(*simulated, model), rounds=1, iterations=1)
    record("reference_preprocessing", benchmark, N_STARS)


def test_reference_model(benchmark, simulated, model, keras_members):
    inputs = reference_preprocessing(*simulated, model)
    benchmark.pedantic(reference_model, args=(inputs, keras_members), rounds=1,
                       warmup_rounds=1)
    record("reference_model", benchmark, N_STARS)


def test_reference_end_to_end(benchmark, simulated, model, keras_members):
    def run():
        return reference_model(reference_preprocessing(*simulated, model), keras_members)

    benchmark.pedantic(run, rounds=1, iterations=1)
    record("reference_end_to_end", benchmark, N_STARS)


@pytest.fixture(scope="module")
def real():
    if not (GAIA / "stars.ecsv").exists():
        pytest.skip(f"shared data not found in {GAIA}")
    from training.data import load_dataset

    dataset = load_dataset(GAIA)
    return dataset.phases, dataset.mags, dataset.periods


def test_end_to_end_real(benchmark, real, model):
    benchmark.pedantic(end_to_end, args=(*real, model), rounds=3, warmup_rounds=1)
    record("end_to_end_real", benchmark, len(real[0]))


def test_reference_end_to_end_real(benchmark, real, model, keras_members):
    def run():
        return reference_model(reference_preprocessing(*real, model), keras_members)

    benchmark.pedantic(run, rounds=1, iterations=1)
    record("reference_end_to_end_real", benchmark, len(real[0]))


_RSS_SCRIPT = """
import json, sys, time
from pathlib import Path
import numpy as np
from rrlyrae_metallicity import simulate
from rrlyrae_metallicity.models import load_model
from rrlyrae_metallicity.preprocessing import fold_times, prepare_inputs

def status_mb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

n = int(sys.argv[1])
stars = simulate.simulate_stars(min(n, 2000), seed=11)
phases, mags = [], []
for i, star in enumerate(stars):
    curve = simulate.simulate_lightcurve(star, rng=i)
    phases.append(fold_times(np.asarray(curve.time.jd), star["pf"]))
    mags.append(np.asarray(curve["mag"].value, dtype=float))
reps = -(-n // len(stars))
phases, mags = (phases * reps)[:n], (mags * reps)[:n]
periods = np.resize(np.asarray(stars["pf"], dtype=float), n)
# The simulator's own peak is not the pipeline's: reset the high-water mark
# (Linux: writing 5 to clear_refs) once the light curves are in memory.
Path("/proc/self/clear_refs").write_text("5")
before = status_mb("VmRSS")
model = load_model()
start = time.perf_counter()
inputs, _, _ = prepare_inputs(phases, mags, periods, model.preprocessing)
model.predict_members(inputs)
elapsed = time.perf_counter() - start
print(json.dumps({"batch": n, "rss_with_lightcurves_mb": before,
                  "peak_rss_mb": status_mb("VmHWM"), "stars_per_s": n / elapsed}))
"""


@pytest.mark.parametrize("batch", [500, 2000, 8000, 32000])
def test_peak_rss_per_batch_size(benchmark, batch):
    """Peak RSS of one process that pre-processes and predicts ``batch`` stars at once."""
    def run():
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(batch)], check=True,
                             capture_output=True, text=True, env=dict(os.environ))
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\npeak RSS, batch {batch}: {result}")


#: Phases of the lean reference's resampled light curve, and its fold models (the paper's).
LEAN_PHASES, LEAN_FOLDS = 100, 5


def lean_reference_preprocessing(phases, mags):
    """The paper's pre-processing done lean: one GCV spline per star, 100 phases."""
    from scipy.interpolate import make_smoothing_spline

    grid = np.linspace(0.0, 1.0, LEAN_PHASES, endpoint=False)
    inputs = np.empty((len(phases), LEAN_PHASES, 2), dtype=np.float32)
    for i, (phase, mag) in enumerate(zip(phases, mags)):
        phase = np.mod(phase, 1.0)
        order = np.argsort(phase)
        phase, mag = phase[order], mag[order] - np.mean(mag)
        keep = np.concatenate([[True], np.diff(phase) > 0])  # strictly increasing abscissae
        spline = make_smoothing_spline(phase[keep], mag[keep])
        inputs[i, :, 0] = grid
        inputs[i, :, 1] = spline(grid)
    return inputs


@pytest.fixture(scope="module")
def paper_fold_models():
    """The paper's GRU (20/16/8 units, 100 x 2 inputs) five times, as its five fold models."""
    pytest.importorskip("tensorflow")
    from training.architectures import build_gru

    return [build_gru((LEAN_PHASES, 2)) for _ in range(LEAN_FOLDS)]


def test_lean_reference_end_to_end(benchmark, simulated, paper_fold_models):
    phases, mags, _ = simulated

    def run():
        return reference_model(lean_reference_preprocessing(phases, mags), paper_fold_models)

    benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=1)
    record("lean_reference_end_to_end", benchmark, N_STARS)


@pytest.fixture(scope="module")
def folded_tables(simulated):
    """Each simulated star as a table of phases and magnitudes, with its period (days)."""
    from astropy.table import Table

    phases, mags, periods = simulated
    return [Table({"phase": p, "mag": m}) for p, m in zip(phases, mags)], periods


def test_api_batch(benchmark, folded_tables):
    from rrlyrae_metallicity import predict_feh

    tables, periods = folded_tables
    benchmark.pedantic(predict_feh, args=(tables, periods), rounds=3, warmup_rounds=1)
    record("api_batch", benchmark, len(tables))


#: Stars called one at a time by ``test_single_star``.
N_SINGLE = 200


def test_single_star(benchmark, folded_tables):
    from rrlyrae_metallicity import predict_feh

    tables, periods = folded_tables

    def one_at_a_time():
        return [predict_feh(table, period) for table, period in
                zip(tables[:N_SINGLE], periods[:N_SINGLE])]

    benchmark.pedantic(one_at_a_time, rounds=3, warmup_rounds=1)
    record("single_star", benchmark, min(N_SINGLE, len(tables)))
