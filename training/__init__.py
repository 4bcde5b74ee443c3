"""Rebuild, cross-validate, export and ship the package's models (never installed).

Run it as ``python -m training --help`` from the repository root. One job per
module:

- ``data``: the labelled light curves, their cached model inputs, the weights;
- ``folds``: stratified folds; ``metrics``: the paper's regression metrics;
- ``architectures``: the nine networks of the paper;
- ``cv``: a resumable K-fold cross-validation run, step by step; ``member``:
  training, predicting and exporting one of its members; ``export``: the
  verified ONNX export;
- ``ship``: a finished run into the package, with its manifest; ``readme``:
  the README's accuracy table;
- ``served``: shipped models' out-of-fold predictions, as the package serves
  them; ``calibration``: every fit of the output stretch and the uncertainty;
  ``composite``: a weighted mean of shipped models;
- ``study``: the architecture × variant × grid study and its report;
- ``files``, ``paths``: shared file helpers and where things live.
"""
