"""An ensemble of ONNX models: integrity checks, sessions and the served prediction."""

import functools
import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .config import conf, cpu_threads
from .exceptions import ModelError, ModelIntegrityError, RRLyraeMetallicityWarning
from .manifest import ModelManifest
from .preprocessing import PreprocessingConfig
from . import registry
from .stretch import apply_stretch
from .uncertainty import (
    calibrated_std,
    component_spread,
    error_model_features,
    within_fold_spread,
)

__all__ = ["FehEnsemble", "load_model", "onnxruntime_module"]


def onnxruntime_module():
    """The `onnxruntime` module, or an ImportError saying which extra installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "ONNX Runtime is not installed. Install the package with one backend: "
            'pip install "rrlyrae_metallicity[cpu]" (or "[gpu]" on a CUDA machine)'
        ) from None
    return onnxruntime


def provider_names(providers):
    """``providers`` (a name, or a sequence of names) as a tuple; empty for none."""
    if not providers:
        return ()
    if isinstance(providers, str):
        return (providers,)
    return tuple(providers)


def _providers(ort, requested=None):
    """The providers asked for (argument, then ``conf.providers``), or CUDA-then-CPU.

    Raises
    ------
    rrlyrae_metallicity.exceptions.ModelError
        For a provider this ONNX Runtime does not offer (a typo, or CUDA with
        the CPU package): the message lists those it offers.
    """
    requested = list(provider_names(requested) or provider_names(conf.providers))
    available = ort.get_available_providers()
    missing = [name for name in requested if name not in available]
    if missing:
        hint = (' (CUDA needs the gpu extra: pip install "rrlyrae_metallicity[gpu]")'
                if "CUDAExecutionProvider" in missing else "")
        raise ModelError(f"ONNX Runtime does not offer {missing}{hint}; it offers {available}")
    if requested:
        return requested
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# Each session keeps a memory arena as large as its largest batch, so the
# batch size, not the catalogue or chunk size, bounds that memory. Measured on
# 3772 inputs (2 cores): at 1024 stars a convolutional member held about 1 GB
# (every shipped model loaded at once: 13.8 GB); at 256 it holds a quarter of
# that and runs as fast or faster (convgru 494 against 593 us per star and
# member; gru 64 against 65).
#: Stars per ONNX Runtime call.
BATCH_SIZE = 256

#: Fewer stars than this are run member after member, without a thread pool
#: (a single-star call spent more time starting threads than predicting), on
#: the native GRU graphs when the model has them.
SERIAL_BELOW = 32


def _session_options(ort):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One thread per session: the members run in parallel instead (see
    # `~rrlyrae_metallicity.config.cpu_threads`). A single 40/32/16 GRU on 1024
    # stars gets no faster with a second intra-op thread (its per-step products
    # are too small to split), while two members at once on two cores take
    # 1.7x less time.
    options.intra_op_num_threads = 1
    # Many small sessions (one per member) must not each spin their own pool
    # of busy-waiting threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class FehEnsemble:
    """An ensemble of ONNX models (one per cross-validation fold and seed).

    A *composite* model (a manifest with ``components``) is the weighted mean of
    other shipped ensembles, each of a different architecture; it shares their
    sessions and has its own stretch and uncertainty calibration.

    Parameters
    ----------
    name : str or path-like
        A name from `~rrlyrae_metallicity.available_models`, or the folder of
        a retrained model (``python -m training ship --models-dir``).
    providers : sequence of str, optional
        ONNX Runtime execution providers, most preferred first, as
        `onnxruntime.InferenceSession` takes them; by default
        ``conf.providers``, or CUDA when ONNX Runtime offers it, then the CPU.

    Attributes
    ----------
    components : list of (`FehEnsemble`, float)
        The component ensembles of a composite model and their weights; empty
        for a plain ensemble.

    Notes
    -----
    Every model file is checked against the sha256 recorded in the manifest
    before an ONNX Runtime session is built on it. Sessions are created once,
    on the CUDA provider when ONNX Runtime offers it, on the CPU otherwise.
    """

    def __init__(self, name, *, providers=None):
        resolved = registry.resolve_model_name(name)
        directory = self.directory = registry.model_directory(resolved)
        record = ModelManifest.read(directory / "manifest.json")
        #: The shipped model's name, or for a model folder the name it was shipped under.
        self.name = resolved if directory.name == resolved else (record.name or directory.name)
        _warn_if_uninformative(self.name, record)
        #: The manifest's content (`~rrlyrae_metallicity.manifest.ModelManifest.to_dict`).
        self.manifest = record.to_dict()
        self.preprocessing = PreprocessingConfig(**record.preprocessing)
        if record.is_composite:
            self._init_composite(record, providers)
            return
        ort = onnxruntime_module()
        options = _session_options(ort)
        providers = _providers(ort, providers)
        self.sessions = [_checked_session(ort, directory / m["file"], m["sha256"], options,
                                          providers) for m in record.members]
        #: The members rewritten with native ONNX GRU nodes, for calls on a few
        #: stars (`SERIAL_BELOW`); empty when the manifest has none.
        self.native_sessions = [
            _checked_session(ort, directory / m["native_file"], m["native_sha256"], options,
                             providers)
            for m in record.members] if all("native_file" in m for m in record.members) else []
        self.provider = self.sessions[0].get_providers()[0]
        if providers[0] != self.provider:
            warnings.warn(
                f"ONNX Runtime could not start {providers[0]} (missing CUDA libraries?); "
                f"running on {self.provider}",
                RRLyraeMetallicityWarning,
                stacklevel=2,
            )
        self.input_name = self.sessions[0].get_inputs()[0].name
        self.components = []

    def _init_composite(self, record, providers):
        """Share the sessions of the component ensembles named in the manifest."""
        self.components = [(load_model(c["name"], providers=providers), float(c["weight"]))
                           for c in record.components]
        for part, _ in self.components:
            if part.preprocessing != self.preprocessing:
                raise ModelIntegrityError(
                    f"component {part.name!r} of {self.name!r} pre-processes light curves "
                    "differently from the composite; reinstall the package")
            if part.input_name != self.components[0][0].input_name:
                raise ModelIntegrityError(f"the components of {self.name!r} name their input "
                                          "differently; reinstall the package")
        self.sessions = [s for part, _ in self.components for s in part.sessions]
        self.native_sessions = ([s for part, _ in self.components for s in part.native_sessions]
                                if all(part.native_sessions for part, _ in self.components)
                                else [])
        self.provider = self.components[0][0].provider
        self.input_name = self.components[0][0].input_name

    @property
    def sha256(self):
        """A sha256 that identifies the model's files.

        The digest of its ``manifest.json``, which records the sha256 of every
        ONNX member (checked before they are loaded), followed by those of
        its components' manifests for a composite model.
        """
        digest = hashlib.sha256(
            (self.directory / "manifest.json").read_bytes())
        for part, _ in self.components:
            digest.update(part.sha256.encode())
        return digest.hexdigest()

    @property
    def is_composite(self):
        """Whether this model averages other shipped ensembles (``components``)."""
        return bool(self.components)

    def _component_slices(self):
        start = 0
        for part, weight in self.components:
            yield part, weight, slice(start, start + len(part.sessions))
            start += len(part.sessions)

    def mean(self, member_predictions):
        """The ensemble's [Fe/H]: the mean of the members, weighted by component.

        Parameters
        ----------
        member_predictions : ndarray, shape (n_members, n)
            Stretched member predictions (`stretch` of `predict_members`).

        Returns
        -------
        ndarray, shape (n,)
        """
        if not self.is_composite:
            return member_predictions.mean(axis=0)
        return sum(weight * member_predictions[rows].mean(axis=0)
                   for _, weight, rows in self._component_slices())

    @property
    def uncertainty_calibration(self):
        """The manifest's calibration of the uncertainty (`None` if uncalibrated)."""
        return self.manifest.get("uncertainty_calibration")

    def uncertainty(self, member_predictions, curves=None, periods=None, influence=None):
        """Uncertainty of each star's mean [Fe/H], from its members' predictions.

        Parameters
        ----------
        member_predictions : ndarray, shape (n_members, n)
            Stretched member predictions (`stretch` of `predict_members`).
        curves : sequence of `~rrlyrae_metallicity.smoothing.SmoothedLightCurve`, optional
            The stars' smoothed light curves, and
        periods : array-like, optional
            their periods (days): with both, a calibration that holds a
            per-star error model uses it
            (`rrlyrae_metallicity.uncertainty.error_model_std`).
        influence : array-like, optional
            How far each star's [Fe/H] moves without its most deviant epoch
            (dex), for an error model that reads it.

        Returns
        -------
        ndarray, shape (n,)
            The calibrated standard deviation (dex) of
            `rrlyrae_metallicity.uncertainty`; the members' within-fold
            spread for models without a calibration. A composite model
            uses the spread of its components' fold means instead.
        """
        if self.is_composite:
            # The spread of single-fold means about the composite mean: out of
            # fold, a star has one fold of each component, which is what the
            # calibration saw (`rrlyrae_metallicity.uncertainty.component_spread`).
            fold_means = [_fold_means(member_predictions[rows], part.member_folds)
                          for part, _, rows in self._component_slices()]
            spread = component_spread(fold_means, [w for _, w in self.components])
        else:
            spread = within_fold_spread(member_predictions, self.member_folds)
        features = None
        if curves is not None and periods is not None:
            features = error_model_features(self.mean(member_predictions), spread, curves,
                                            periods, influence)
        return calibrated_std(spread, self.uncertainty_calibration, features)

    @property
    def member_folds(self):
        """Cross-validation fold of every member; empty for a composite (see its components)."""
        return [member.get("fold", i)
                for i, member in enumerate(self.manifest.get("members", []))]

    @property
    def output_stretch(self):
        """The manifest's stretch of the predictions about their median (`None` if absent)."""
        return self.manifest.get("output_stretch")

    def stretch(self, member_predictions):
        """Apply the manifest's `output_stretch` to member (or mean) predictions.

        The ONNX members' raw outputs (`predict_members`) go through this
        linear map before they are averaged and their spread measured; see
        `rrlyrae_metallicity.stretch`.
        """
        return apply_stretch(member_predictions, self.output_stretch)

    @property
    def training_domain(self):
        """Ranges of period, amplitude, epoch count and phase gap seen in training."""
        return self.manifest.get("training_domain", {})

    def predict_members(self, inputs, *, batch_size=BATCH_SIZE):
        """Predictions of every ensemble member.

        Parameters
        ----------
        inputs : ndarray, shape (n, length, 2)
            Pre-processed light curves.
        batch_size : int
            Stars per ONNX Runtime call.

        Returns
        -------
        ndarray, shape (n_members, n)
            [Fe/H] in dex.
        """
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        out = np.empty((len(self.sessions), len(inputs)))
        starts = range(0, len(inputs), batch_size)
        if self.provider == "CUDAExecutionProvider":
            for start in starts:
                chunk = inputs[start:start + batch_size]
                out[:, start:start + len(chunk)] = self._run_cuda(chunk)
            return out
        # On the CPU the members run at once, one single-threaded session per
        # thread (`~rrlyrae_metallicity.config.cpu_threads`); ONNX Runtime
        # releases the GIL while a session runs.
        tasks = [(index, start, inputs[start:start + batch_size])
                 for start in starts for index in range(len(self.sessions))]
        # A few stars: the native GRU graphs (0.12 ms for one star against 2.7 ms
        # for tf2onnx's loops, which are faster in large batches).
        sessions = (self.native_sessions if len(inputs) < SERIAL_BELOW and self.native_sessions
                    else self.sessions)

        def run(task):
            index, start, chunk = task
            result = sessions[index].run(None, {self.input_name: chunk})[0].ravel()
            out[index, start:start + len(chunk)] = result

        workers = min(cpu_threads(), len(tasks))
        # A few stars cost each member tens of microseconds: starting threads
        # would cost more than running the members one after the other.
        if workers <= 1 or len(inputs) < SERIAL_BELOW:
            for task in tasks:
                run(task)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, tasks))
        return out

    @property
    def is_distilled(self):
        """Whether the model is one network distilled from an ensemble (it has ``crossfit_members``)."""
        return bool(self.manifest.get("crossfit_members"))

    def predict_crossfit(self, inputs):
        """Predictions of a distilled model's fold students (never served).

        Each was trained without the stars of its fold: a training star
        predicted by its own fold's student is an out-of-fold prediction, as
        the model's accuracy and uncertainty were measured.

        Parameters
        ----------
        inputs : ndarray, shape (n, length, 2)
            Pre-processed light curves.

        Returns
        -------
        folds : list of int
            The fold of each student.
        predictions : ndarray, shape (n_students, n)
            Raw (unstretched) [Fe/H] in dex.

        Raises
        ------
        ValueError
            If the model is not distilled.
        """
        students = self.manifest.get("crossfit_members")
        if not students:
            raise ValueError(f"model {self.name!r} has no fold students: it is not distilled")
        ort = onnxruntime_module()
        options = _session_options(ort)
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        predictions = np.empty((len(students), len(inputs)))
        for row, student in enumerate(students):
            # Built when asked for (checks only): a served prediction never needs them.
            session = _checked_session(ort, self.directory / student["file"],
                                       student["sha256"], options, ["CPUExecutionProvider"])
            for start in range(0, len(inputs), BATCH_SIZE):
                chunk = inputs[start:start + BATCH_SIZE]
                predictions[row, start:start + len(chunk)] = session.run(
                    None, {self.input_name: chunk})[0].ravel()
        return [int(student["fold"]) for student in students], predictions

    def _run_cuda(self, chunk):
        """Copy the chunk to the GPU once and bind it to every member (untested: no GPU here).

        The native GRU graphs, when the model has them: one cuDNN GRU per layer
        instead of a loop of small kernels launched at every phase.
        """
        ort = onnxruntime_module()
        device_input = ort.OrtValue.ortvalue_from_numpy(chunk, "cuda", 0)
        results = []
        for session in self.native_sessions or self.sessions:
            binding = session.io_binding()
            binding.bind_ortvalue_input(self.input_name, device_input)
            binding.bind_output(session.get_outputs()[0].name, "cpu")
            session.run_with_iobinding(binding)
            results.append(binding.copy_outputs_to_cpu()[0].ravel())
        return results


def _checked_session(ort, path, sha256, options, providers):
    """An ONNX Runtime session on ``path``, once its bytes match the manifest's sha256."""
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} is missing; reinstall the package")
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise ModelIntegrityError(
            f"model file {path} is corrupt: sha256 {digest} does not match the "
            f"manifest's {sha256}; reinstall the package"
        )
    return ort.InferenceSession(payload, sess_options=options, providers=providers)


def _warn_if_uninformative(name, record):
    """Warn when the manifest says the model is no better than predicting the median label."""
    quality = record.quality or {}
    if quality.get("better_than_median") is False:
        warnings.warn(f"model {name!r} is {quality.get('warning', 'no better than the median')}",
                      RRLyraeMetallicityWarning, stacklevel=3)


def _fold_means(member_predictions, member_folds):
    """Mean of the members of each fold: shape (n_folds, n)."""
    member_folds = np.asarray(member_folds)
    return np.stack([member_predictions[member_folds == k].mean(axis=0)
                     for k in np.unique(member_folds)])


def load_model(name="default", *, providers=None):
    """Load (once) the ensemble called ``name``.

    Parameters
    ----------
    name : str or path-like
        ``"default"``, one of `~rrlyrae_metallicity.available_models`, or the
        folder of a retrained model (a path).
    providers : sequence of str, optional
        ONNX Runtime execution providers, most preferred first (see
        `FehEnsemble`).

    Returns
    -------
    `FehEnsemble`
        The same object for the same name and providers.
    """
    return _cached_ensemble(registry.resolve_model_name(name),
                            provider_names(providers) or provider_names(conf.providers))


@functools.lru_cache(maxsize=None)
def _cached_ensemble(name, providers):
    return FehEnsemble(name, providers=providers or None)
