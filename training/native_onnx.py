"""Rewrite a GRU member exported by tf2onnx with ONNX's own ``GRU`` operator.

tf2onnx exports each Keras GRU layer as an ONNX ``Loop`` whose body runs
about 25 small operators per time step: 80 phases × 3 layers are some 6,000
operator calls per prediction, whatever the number of stars. A single star
then costs 2.7 ms per member (a batch of 1,024 costs 0.06 ms per star). The
same layer as one native ``GRU`` node (``linear_before_reset=1`` is Keras's
``reset_after=True``) costs 0.12 ms for one star, with the same weights: the
rewritten member reproduces the original to float32 rounding (about 1e-6
dex), which `convert_member` checks. In large batches the loops are faster
(ten members on two cores: 290 µs per star at 1,024 stars against 371 µs at
best for the native graphs), so both are shipped and the package picks by
the number of stars.

Only what the ``gru`` architecture builds is rewritten: unmasked,
unidirectional GRU layers, the last returning its final state, then
``Dense(1)`` and the label rescaling (`training.architectures`).
"""

import os
from pathlib import Path

import numpy as np

__all__ = ["NativeConversionError", "gru_weights", "native_gru_model", "convert_member",
           "native_file", "nativize_shipped", "keras_member"]


class NativeConversionError(ValueError):
    """The member is not a GRU stack this module can rewrite, or the rewrite differs."""


def _array(initializer):
    from onnx import numpy_helper

    return numpy_helper.to_array(initializer)


def gru_weights(model):
    """The weights of a tf2onnx export of a ``gru`` member.

    Parameters
    ----------
    model : onnx.ModelProto

    Returns
    -------
    layers : list of dict
        Per GRU layer, in order: ``kernel`` (inputs, 3 units), ``recurrent``
        (units, 3 units) and ``bias`` (2, 3 units), gates in Keras's (and
        ONNX's) order z, r, h.
    dense : tuple of ndarray
        ``Dense(1)`` kernel (units, 1) and bias (1,).
    rescale : tuple of float
        Scale and offset of the output (label std and mean).

    Raises
    ------
    NativeConversionError
        If the graph is not such an export.
    """
    initializers = {i.name: i for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type != "Loop":
            continue
        weights = {}
        for name in node.input:
            if not name.endswith("ReadVariableOp/resource:0"):
                continue
            kind = ("bias" if "/split/" in name else "recurrent" if "/Cast_1/" in name
                    else "kernel" if "/Cast/" in name else None)
            if kind is None or name not in initializers:
                raise NativeConversionError(f"unexpected weight {name} in a GRU loop")
            weights[kind] = _array(initializers[name])
        if set(weights) != {"kernel", "recurrent", "bias"}:
            raise NativeConversionError(f"a Loop node without the three GRU weights: "
                                        f"{sorted(weights)}")
        layers.append(weights)
    dense = [_array(i) for name, i in initializers.items()
             if "feh_standardised" in name and "ReadVariableOp" in name]
    scale = [_array(i) for name, i in initializers.items() if name.endswith("feh_1/Cast/x:0")]
    offset = [_array(i) for name, i in initializers.items() if name.endswith("feh_1/Cast_1/x:0")]
    if not layers or len(dense) not in (1, 2) or len(scale) != 1 or len(offset) != 1:
        raise NativeConversionError("not a tf2onnx export of the gru architecture (GRU loops, "
                                    "Dense(1) 'feh_standardised', Rescaling 'feh')")
    dense.sort(key=lambda a: -a.ndim)
    kernel = dense[0]
    # tf2onnx drops the addition of a bias that is exactly zero (an untrained
    # layer); `convert_member` checks the rewrite against the export anyway.
    bias = dense[1] if len(dense) == 2 else np.zeros(1, dtype=kernel.dtype)
    for first, second in zip(layers, layers[1:]):
        if second["kernel"].shape[0] != first["recurrent"].shape[0]:
            raise NativeConversionError("the GRU layers do not chain")
    return layers, (kernel, bias), (float(scale[0]), float(offset[0]))


def native_gru_model(layers, dense, rescale, *, input_name, output_name, opset, length=None):
    """An ONNX model of the same network with one ``GRU`` node per layer.

    Parameters
    ----------
    layers, dense, rescale
        As `gru_weights` returns them.
    input_name, output_name : str
        Names of the graph's input (n, length, 2) and output (n, 1).
    opset : int
    length : int, optional
        Phases per light curve, recorded in the input's shape.

    Returns
    -------
    onnx.ModelProto
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    def constant(array, name):
        initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    initializers = []
    nodes = [helper.make_node("Transpose", [input_name], ["time_major"], perm=[1, 0, 2])]
    sequence = "time_major"
    for i, layer in enumerate(layers):
        units = layer["recurrent"].shape[0]
        # ONNX: W (1, 3u, inputs), R (1, 3u, u), B (1, 6u) = input then recurrent bias.
        w = constant(layer["kernel"].T[None].astype(np.float32), f"gru{i}_W")
        r = constant(layer["recurrent"].T[None].astype(np.float32), f"gru{i}_R")
        b = constant(np.concatenate([layer["bias"][0], layer["bias"][1]])[None]
                     .astype(np.float32), f"gru{i}_B")
        last = i == len(layers) - 1
        outputs = ["", "final_state"] if last else [f"gru{i}_sequence"]
        nodes.append(helper.make_node("GRU", [sequence, w, r, b], outputs, hidden_size=units,
                                      linear_before_reset=1, name=f"gru{i}"))
        if not last:  # (length, 1 direction, n, u) -> (length, n, u)
            axis = constant(np.array([1], dtype=np.int64), f"gru{i}_direction_axis")
            nodes.append(helper.make_node("Squeeze", [f"gru{i}_sequence", axis],
                                          [f"gru{i}_output"]))
            sequence = f"gru{i}_output"
    axis = constant(np.array([0], dtype=np.int64), "direction_axis")
    kernel, bias = dense
    scale, offset = rescale
    nodes += [
        helper.make_node("Squeeze", ["final_state", axis], ["state"]),
        helper.make_node("MatMul", ["state", constant(kernel.astype(np.float32), "dense_W")],
                         ["dense_product"]),
        helper.make_node("Add", ["dense_product", constant(bias.astype(np.float32), "dense_B")],
                         ["standardised"]),
        helper.make_node("Mul", ["standardised", constant(np.float32(scale), "label_std")],
                         ["scaled"]),
        helper.make_node("Add", ["scaled", constant(np.float32(offset), "label_mean")],
                         [output_name]),
    ]
    graph = helper.make_graph(
        nodes, "gru_native",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                       ["n", length, layers[0]["kernel"].shape[0]])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["n", 1])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rrlyrae_metallicity training.native_onnx")
    checker.check_model(model)
    return model


def _session(payload):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(payload, sess_options=options,
                                providers=["CPUExecutionProvider"])


def _predict(session, inputs, batch_size=256):
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: inputs[i:i + batch_size]})[0].ravel()
                           for i in range(0, len(inputs), batch_size)])


def convert_member(source, target, check_inputs, *, atol=1e-5):
    """Rewrite the member ``source`` with native GRU nodes into ``target``, checked.

    Parameters
    ----------
    source, target : path-like
        The tf2onnx export and where its rewrite goes (may be the same file;
        written atomically, only after the check).
    check_inputs : ndarray, shape (n, length, 2)
        Real model inputs on which both must agree.
    atol : float
        Largest accepted difference, dex (the export's own tolerance).

    Returns
    -------
    float
        The largest difference found, dex.

    Raises
    ------
    NativeConversionError
        If ``source`` is not a GRU export, or the rewrite differs by more than
        ``atol``; ``target`` is then not written.
    """
    import onnx

    original = onnx.load(os.fspath(source))
    layers, dense, rescale = gru_weights(original)
    graph_input = original.graph.input[0]
    native = native_gru_model(
        layers, dense, rescale, input_name=graph_input.name,
        output_name=original.graph.output[0].name,
        opset=max(o.version for o in original.opset_import if o.domain in ("", "ai.onnx")),
        length=graph_input.type.tensor_type.shape.dim[1].dim_value or None)
    payload = native.SerializeToString()
    check_inputs = np.asarray(check_inputs, dtype=np.float32)
    before = _predict(_session(original.SerializeToString()), check_inputs)
    after = _predict(_session(payload), check_inputs)
    diff = float(np.max(np.abs(after - before)))
    if not diff <= atol:
        raise NativeConversionError(f"the native rewrite of {source} differs by {diff:.3g} dex "
                                    f"(tolerance {atol:g}); {target} not written")
    target = Path(target)
    tmp = target.with_suffix(".onnx.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, target)
    return diff


def native_file(file_name):
    """Name of a member's native rewrite: ``fold0_member0.onnx`` → ``fold0_member0.native.onnx``."""
    return str(Path(file_name).with_suffix(".native.onnx"))


def nativize_shipped(name, dataset, *, models_dir=None, atol=1e-5):
    """Add a native GRU rewrite beside every member of a shipped ``gru`` ensemble.

    The members stay as they are (tf2onnx's loops are the faster ones in large
    batches); each gets ``native_file`` and ``native_sha256`` in the manifest,
    checked against it on the model inputs of ``dataset`` (made with the
    model's own pre-processing), and ``onnx.native_max_diff_dex`` records the
    largest difference. The package runs the native graphs for calls on a few
    stars (`rrlyrae_metallicity.ensemble.SERIAL_BELOW`). ``python -m training
    native --name NAME`` runs it.

    Parameters
    ----------
    name : str
        A shipped plain ensemble of the ``gru`` architecture.
    dataset : `training.data.Dataset`
        Its training set (for the check).
    models_dir : path-like, optional
        Where the package keeps its models.
    atol : float
        Largest accepted difference per member and star, dex.

    Returns
    -------
    float
        The largest difference over members and stars, dex.
    """
    from rrlyrae_metallicity.manifest import ModelManifest
    from rrlyrae_metallicity.preprocessing import PreprocessingConfig

    from .data import preprocess
    from .files import sha256
    from .paths import MODELS_DIR

    directory = Path(models_dir or MODELS_DIR) / name
    manifest = ModelManifest.read(directory / "manifest.json")
    if manifest.is_composite or manifest.architecture != "gru":
        raise NativeConversionError(f"{name} is not a plain ensemble of the gru architecture")
    inputs, _ = preprocess(dataset, PreprocessingConfig(**manifest.preprocessing),
                           progress=False)
    worst = 0.0
    for member in manifest.members:
        target = native_file(member["file"])
        worst = max(worst, convert_member(directory / member["file"], directory / target,
                                          inputs, atol=atol))
        member.update(native_file=target, native_sha256=sha256(directory / target))
    manifest.onnx = {**manifest.onnx, "native_max_diff_dex": worst}
    manifest.write(directory / "manifest.json")
    return worst


def keras_member(onnx_path, check_inputs, *, atol=1e-5):
    """The Keras model of a shipped ``gru`` member, rebuilt from its tf2onnx export.

    What lets a distillation start from the teacher's own members when
    their Keras files are not kept (the package ships ONNX only).

    Parameters
    ----------
    onnx_path : path-like
        A tf2onnx export of a ``gru`` member.
    check_inputs : ndarray, shape (n, length, 2)
        Real model inputs on which the rebuilt model must reproduce the export.
    atol : float
        Largest accepted difference, dex.

    Returns
    -------
    keras.Model
        Uncompiled, with the weights of the export.

    Raises
    ------
    NativeConversionError
        If the export is not a ``gru`` member, or the rebuilt model differs.
    """
    import onnx

    from .architectures import build_model
    from .member import predict

    exported = onnx.load(os.fspath(onnx_path))
    layers, (kernel, bias), (scale, offset) = gru_weights(exported)
    check_inputs = np.asarray(check_inputs, dtype=np.float32)
    model = build_model("gru", check_inputs.shape[1:], label_mean=offset, label_std=scale,
                        units=[layer["recurrent"].shape[0] for layer in layers])
    grus = [layer for layer in model.layers if layer.__class__.__name__ == "GRU"]
    if len(grus) != len(layers):
        raise NativeConversionError(f"{onnx_path} has {len(layers)} GRU layers, the gru "
                                    f"architecture {len(grus)}")
    for keras_layer, weights in zip(grus, layers):
        keras_layer.set_weights([weights["kernel"], weights["recurrent"], weights["bias"]])
    model.get_layer("feh_standardised").set_weights([kernel, bias])
    before = _predict(_session(exported.SerializeToString()), check_inputs)
    diff = float(np.max(np.abs(predict(model, check_inputs) - before)))
    if not diff <= atol:
        raise NativeConversionError(f"the Keras model rebuilt from {onnx_path} differs from it "
                                    f"by {diff:.3g} dex (tolerance {atol:g})")
    return model
