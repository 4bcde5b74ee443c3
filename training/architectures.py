"""Keras builders of the nine architectures of Monti et al. (2024), section 4.3.

Every builder takes the input shape ``(length, 2)`` and returns an uncompiled
`keras.Model` ending in ``Dense(1)``. A final `~keras.layers.Rescaling` maps
the network's standardised output back to dex (it has no weights, so the
parameter counts of the paper still hold), which lets the exported ONNX model
return [Fe/H] directly.

The recurrent models (``lstm``, ``bilstm``, ``gru``, ``bigru``) start with
``Masking(PAD_VALUE)`` for the padded ``raw`` variant. Convolutions cannot use
a mask, so the convolutional models (``fcn``, ``resnet``, ``inception``,
``convlstm``, ``convgru``) see the padding as values, as in the paper's code.
"""

import keras
from keras import layers, regularizers

from rrlyrae_metallicity.preprocessing import PAD_VALUE

from .names import RECURRENT

__all__ = [
    "ARCHITECTURES", "RECURRENT", "build_model",
    "build_fcn", "build_resnet", "build_inception",
    "build_lstm", "build_bilstm", "build_gru", "build_bigru",
    "build_convlstm", "build_convgru",
]


def _input(input_shape, masked):
    inputs = keras.Input(shape=input_shape, name="lightcurve")
    x = layers.Masking(mask_value=PAD_VALUE)(inputs) if masked else inputs
    return inputs, x


def _output(inputs, x, label_mean, label_std, name):
    x = layers.Dense(1, name="feh_standardised")(x)
    outputs = layers.Rescaling(scale=label_std, offset=label_mean, name="feh")(x)
    return keras.Model(inputs, outputs, name=name)


# Keras' default momentum (0.99) makes the moving averages forget their initial
# variance of 1 only after ~1000 steps, while the first convolutions' outputs
# have variances of ~1e-3 here: with the few hundred steps of a short run the
# network then predicts in inference mode from statistics 100x too large
# (FCN: RMSE 1.3 dex in inference mode, 0.19 in training mode). 0.9 forgets
# them in ~100 steps.
_BN_MOMENTUM = 0.9


def _batch_norm():
    return layers.BatchNormalization(momentum=_BN_MOMENTUM)


def _conv_unit(x, filters, kernel_size):
    """The paper's unit: Conv1D → BatchNorm → ReLU ('same' padding, stride 1)."""
    x = layers.Conv1D(filters, kernel_size, padding="same")(x)
    x = _batch_norm()(x)
    return layers.Activation("relu")(x)


def _conv_units(x, filters, kernel_sizes):
    """The FCN body: one `_conv_unit` per (filters, kernel size) pair."""
    for n_filters, kernel_size in zip(filters, kernel_sizes, strict=True):
        x = _conv_unit(x, n_filters, kernel_size)
    return x


def _recurrent_stack(x, layer_class, units, dropouts, *, kernel_regularizer,
                     recurrent_regularizer, bidirectional=False, use_cudnn=False):
    for i, (n_units, rate) in enumerate(zip(units, dropouts, strict=True)):
        last = i == len(units) - 1
        cell = layer_class(
            n_units,
            return_sequences=not last,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            # cuDNN kernels cannot be converted to ONNX (FACTS.md); the weights
            # are the same either way.
            use_cudnn=use_cudnn,
        )
        x = layers.Bidirectional(cell)(x) if bidirectional else cell(x)
        x = layers.Dropout(rate)(x)
    return x


def _penalty(kind, value):
    return regularizers.L1(value) if kind == "l1" else regularizers.L2(value)


def _recurrent_model(name, layer_class, input_shape, *, masked, units, dropouts,
                     kernel_penalty, recurrent_penalty, bidirectional,
                     label_mean, label_std, use_cudnn):
    inputs, x = _input(input_shape, masked)
    x = _recurrent_stack(
        x, layer_class, units, dropouts,
        kernel_regularizer=_penalty(*kernel_penalty),
        recurrent_regularizer=_penalty(*recurrent_penalty),
        bidirectional=bidirectional, use_cudnn=use_cudnn,
    )
    return _output(inputs, x, label_mean, label_std, name)


_RECURRENT_DOC = """

    Parameters
    ----------
    input_shape : tuple of int
        ``(length, 2)``.
    masked : bool
        Add ``Masking(PAD_VALUE)`` for the padded ``raw`` variant.
    units, dropouts : tuple
        Units and dropout rate of each recurrent layer (paper: 20/16/8 and
        0.2/0.2/0.1).
    kernel_l1, kernel_l2, recurrent_l1, recurrent_l2 : float, optional
        Penalties on the kernel and recurrent weights; give at most one of
        each pair. The defaults are the paper's.
    label_mean, label_std : float
        The output is ``label_mean + label_std * Dense(1)``.
    use_cudnn : bool or "auto"
        Passed to the recurrent layers; keep `False` for models to be exported.

    Returns
    -------
    keras.Model
"""


def _penalties(kernel_l1, kernel_l2, recurrent_l1, recurrent_l2, defaults):
    """Pick ``("l1"|"l2", value)`` for the kernel and the recurrent weights."""
    chosen = []
    for (l1, l2), default in zip(((kernel_l1, kernel_l2), (recurrent_l1, recurrent_l2)), defaults):
        if l1 is not None and l2 is not None:
            raise ValueError("give either an L1 or an L2 penalty for a weight, not both")
        chosen.append(("l1", l1) if l1 is not None else ("l2", l2) if l2 is not None else default)
    return chosen


def _make_recurrent_builder(name, layer_class, bidirectional, kernel_default, summary):
    def builder(input_shape, *, masked=False, units=(20, 16, 8), dropouts=(0.2, 0.2, 0.1),
                kernel_l1=None, kernel_l2=None, recurrent_l1=None, recurrent_l2=None,
                label_mean=0.0, label_std=1.0, use_cudnn=False):
        kernel_penalty, recurrent_penalty = _penalties(
            kernel_l1, kernel_l2, recurrent_l1, recurrent_l2, (kernel_default, ("l1", 2e-6)))
        return _recurrent_model(
            name, layer_class, input_shape, masked=masked, units=tuple(units),
            dropouts=tuple(dropouts), kernel_penalty=kernel_penalty,
            recurrent_penalty=recurrent_penalty, bidirectional=bidirectional,
            label_mean=label_mean, label_std=label_std, use_cudnn=use_cudnn,
        )

    builder.__name__ = f"build_{name}"
    builder.__doc__ = summary + _RECURRENT_DOC
    return builder


build_lstm = _make_recurrent_builder(
    "lstm", layers.LSTM, False, ("l2", 2e-6),
    "Three stacked LSTM layers (kernel L2 2e-6, recurrent L1 2e-6) and a linear output.")
build_bilstm = _make_recurrent_builder(
    "bilstm", layers.LSTM, True, ("l1", 2e-6),
    "Three stacked bidirectional LSTM layers (kernel and recurrent L1 2e-6).")
build_gru = _make_recurrent_builder(
    "gru", layers.GRU, False, ("l2", 2e-6),
    "The paper's best model: three stacked GRU layers and a linear output.\n\n"
    "    With the default arguments the GRU layers hold 1440, 1824 and 624\n"
    "    parameters and the output layer 9 (kernel L2 2e-6, recurrent L1 2e-6).")
build_bigru = _make_recurrent_builder(
    "bigru", layers.GRU, True, ("l2", 2e-6),
    "Three stacked bidirectional GRU layers (kernel L2 2e-6, recurrent L1 2e-6).")


def build_fcn(input_shape, *, masked=False, filters=(128, 256, 128), kernel_sizes=(8, 5, 3),
              label_mean=0.0, label_std=1.0):
    """Fully convolutional network: three units and global average pooling.

    Parameters
    ----------
    input_shape : tuple of int
        ``(length, 2)``.
    masked : bool
        Ignored: convolutions see the padding of the ``raw`` variant as values.
    filters, kernel_sizes : tuple of int
        Of the three Conv1D → BatchNorm → ReLU units (paper: 128/256/128, 8/5/3).
    label_mean, label_std : float
        The output is ``label_mean + label_std * Dense(1)``.

    Returns
    -------
    keras.Model
    """
    inputs, x = _input(input_shape, masked=False)
    x = _conv_units(x, filters, kernel_sizes)
    x = layers.GlobalAveragePooling1D()(x)
    return _output(inputs, x, label_mean, label_std, "fcn")


def build_resnet(input_shape, *, masked=False, filters=(64, 128, 128), kernel_sizes=(8, 5, 3),
                 label_mean=0.0, label_std=1.0):
    """Residual network: three blocks of three units with shortcuts, then pooling.

    Parameters
    ----------
    input_shape : tuple of int
        ``(length, 2)``.
    masked : bool
        Ignored: convolutions see the padding of the ``raw`` variant as values.
    filters : tuple of int
        Filters of each block (the paper's text: 64 each; its code: 64/128/128).
    kernel_sizes : tuple of int
        Kernels of the three units inside a block.
    label_mean, label_std : float
        The output is ``label_mean + label_std * Dense(1)``.

    Returns
    -------
    keras.Model
    """
    inputs, x = _input(input_shape, masked=False)
    for n_filters in filters:
        y = x
        for i, kernel_size in enumerate(kernel_sizes):
            y = layers.Conv1D(n_filters, kernel_size, padding="same")(y)
            y = _batch_norm()(y)
            if i < len(kernel_sizes) - 1:
                y = layers.Activation("relu")(y)
        shortcut = x
        if x.shape[-1] != n_filters:
            shortcut = layers.Conv1D(n_filters, 1, padding="same")(shortcut)
        shortcut = _batch_norm()(shortcut)
        x = layers.Activation("relu")(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling1D()(x)
    return _output(inputs, x, label_mean, label_std, "resnet")


def _inception_module(inputs, filters, kernel_sizes, bottleneck):
    x = inputs
    if inputs.shape[-1] > 1:
        x = layers.Conv1D(bottleneck, 1, padding="same", use_bias=False)(inputs)
    branches = [layers.Conv1D(filters, k, padding="same", use_bias=False)(x) for k in kernel_sizes]
    # As in InceptionTime (Ismail Fawaz et al. 2020), the pooling branch sees the
    # module's input, not the bottleneck.
    pooled = layers.MaxPooling1D(pool_size=3, strides=1, padding="same")(inputs)
    branches.append(layers.Conv1D(filters, 1, padding="same", use_bias=False)(pooled))
    x = layers.Concatenate(axis=-1)(branches)
    x = _batch_norm()(x)
    return layers.Activation("relu")(x)


def build_inception(input_shape, *, masked=False, depth=6, filters=32, kernel_sizes=(40, 20, 10),
                    bottleneck=32, label_mean=0.0, label_std=1.0):
    """InceptionTime: ``depth`` Inception modules with a residual every three.

    Parameters
    ----------
    input_shape : tuple of int
        ``(length, 2)``.
    masked : bool
        Ignored: convolutions see the padding of the ``raw`` variant as values.
    depth : int
        Number of Inception modules (paper: 6, in two residual blocks of 3).
    filters : int
        Filters of each parallel convolution.
    kernel_sizes : tuple of int
        Kernels of the parallel convolutions (paper: 40/20/10).
    bottleneck : int
        Filters of the 1-wide bottleneck convolution.
    label_mean, label_std : float
        The output is ``label_mean + label_std * Dense(1)``.

    Returns
    -------
    keras.Model
    """
    inputs, x = _input(input_shape, masked=False)
    residual = inputs
    for d in range(depth):
        x = _inception_module(x, filters, kernel_sizes, bottleneck)
        if d % 3 == 2:
            shortcut = layers.Conv1D(x.shape[-1], 1, padding="same", use_bias=False)(residual)
            shortcut = _batch_norm()(shortcut)
            x = residual = layers.Activation("relu")(layers.Add()([shortcut, x]))
    x = layers.GlobalAveragePooling1D()(x)
    return _output(inputs, x, label_mean, label_std, "inception")


def _make_conv_recurrent_builder(name, layer_class):
    def builder(input_shape, *, masked=False, filters=(128, 256, 128), kernel_sizes=(8, 5, 3),
                units=(8, 4), dropouts=(0.2, 0.1), kernel_l1=None, kernel_l2=None,
                recurrent_l1=None, recurrent_l2=None, label_mean=0.0, label_std=1.0,
                use_cudnn=False):
        kernel_penalty, recurrent_penalty = _penalties(
            kernel_l1, kernel_l2, recurrent_l1, recurrent_l2, (("l2", 2e-6), ("l1", 2e-6)))
        inputs, x = _input(input_shape, masked=False)
        x = _conv_units(x, filters, kernel_sizes)
        x = layers.MaxPooling1D()(x)
        x = _recurrent_stack(
            x, layer_class, tuple(units), tuple(dropouts),
            kernel_regularizer=_penalty(*kernel_penalty),
            recurrent_regularizer=_penalty(*recurrent_penalty), use_cudnn=use_cudnn,
        )
        return _output(inputs, x, label_mean, label_std, name)

    builder.__name__ = f"build_{name}"
    builder.__doc__ = (
        f"The FCN's three units, max pooling, then two {layer_class.__name__} layers "
        "(paper's code: 8 and 4 units)." + _RECURRENT_DOC.replace(
            "    units, dropouts : tuple\n",
            "    filters, kernel_sizes : tuple of int\n"
            "        Of the three convolutional units (as in `build_fcn`).\n"
            "    units, dropouts : tuple\n"))
    return builder


build_convlstm = _make_conv_recurrent_builder("convlstm", layers.LSTM)
build_convgru = _make_conv_recurrent_builder("convgru", layers.GRU)

#: Registry of architecture builders, by the names used throughout the project
#: (``predict_feh(..., model=name)`` selects the shipped ensemble of that name).
ARCHITECTURES = {
    "fcn": build_fcn,
    "resnet": build_resnet,
    "inception": build_inception,
    "lstm": build_lstm,
    "bilstm": build_bilstm,
    "gru": build_gru,
    "bigru": build_bigru,
    "convlstm": build_convlstm,
    "convgru": build_convgru,
}



def build_model(name, input_shape, **kwargs):
    """Build the architecture called ``name`` (one of `ARCHITECTURES`)."""
    try:
        builder = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {name!r}") from None
    return builder(input_shape, **kwargs)
