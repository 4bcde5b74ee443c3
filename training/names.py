"""Names of the paper's nine architectures, importable without Keras.

``python -m training --help`` and a study's plan need the names only;
`training.architectures` builds the networks (and imports Keras). A test
keeps `ARCHITECTURE_NAMES` equal to the keys of
`training.architectures.ARCHITECTURES`.
"""

__all__ = ["ARCHITECTURE_NAMES", "RECURRENT"]

#: Every architecture, in the paper's order.
ARCHITECTURE_NAMES = ("fcn", "resnet", "inception", "lstm", "bilstm", "gru", "bigru", "convlstm",
                      "convgru")
#: Architectures with recurrent layers (they take dropout and regularisers).
RECURRENT = ("lstm", "bilstm", "gru", "bigru", "convlstm", "convgru")
