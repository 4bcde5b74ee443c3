"""Keras builders of the architectures of Monti et al. (2024), section 4.3.

Every builder takes the input shape ``(length, 2)`` and returns an uncompiled
`keras.Model` ending in ``Dense(1)``. A final `~keras.layers.Rescaling` maps
the network's standardised output back to dex (it has no weights, so the
parameter counts of the paper still hold), which lets the exported ONNX model
return [Fe/H] directly.
"""

import keras
from keras import layers, regularizers

from rrlyrae_metallicity.preprocessing import PAD_VALUE

__all__ = ["ARCHITECTURES", "build_model", "build_gru"]


def _recurrent_stack(inputs, layer_class, units, dropouts, *, kernel_regularizer,
                     recurrent_regularizer, bidirectional=False, use_cudnn=False):
    x = inputs
    for i, (n_units, rate) in enumerate(zip(units, dropouts)):
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


def build_gru(input_shape, *, masked=False, units=(20, 16, 8), dropouts=(0.2, 0.2, 0.1),
              kernel_l2=2e-6, recurrent_l1=2e-6, label_mean=0.0, label_std=1.0,
              use_cudnn=False):
    """The paper's best model: three stacked GRU layers and a linear output.

    Parameters
    ----------
    input_shape : tuple of int
        ``(length, 2)``.
    masked : bool
        Add ``Masking(PAD_VALUE)`` for the padded ``raw`` variant.
    units, dropouts : tuple
        Units and dropout rate of each GRU layer (paper: 20/16/8, 0.2/0.2/0.1).
    kernel_l2, recurrent_l1 : float
        Kernel L2 and recurrent L1 penalties (paper: 2e-6 each).
    label_mean, label_std : float
        The output is ``label_mean + label_std * Dense(1)``.
    use_cudnn : bool or "auto"
        Passed to the GRU layers; keep `False` for models to be exported.

    Returns
    -------
    keras.Model
        With the default arguments the GRU layers hold 1440, 1824 and 624
        parameters and the output layer 9.
    """
    inputs = keras.Input(shape=input_shape, name="lightcurve")
    x = layers.Masking(mask_value=PAD_VALUE)(inputs) if masked else inputs
    x = _recurrent_stack(
        x, layers.GRU, units, dropouts,
        kernel_regularizer=regularizers.L2(kernel_l2),
        recurrent_regularizer=regularizers.L1(recurrent_l1),
        use_cudnn=use_cudnn,
    )
    x = layers.Dense(1, name="feh_standardised")(x)
    outputs = layers.Rescaling(scale=label_std, offset=label_mean, name="feh")(x)
    return keras.Model(inputs, outputs, name="gru")


#: Registry of architecture builders, by the names used throughout the project.
ARCHITECTURES = {"gru": build_gru}


def build_model(name, input_shape, **kwargs):
    """Build the architecture called ``name`` (one of `ARCHITECTURES`)."""
    try:
        builder = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {name!r}") from None
    return builder(input_shape, **kwargs)
