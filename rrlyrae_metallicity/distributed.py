"""[Fe/H] for epoch-photometry catalogues partitioned over a Dask cluster.

Needs the ``dask`` extra (``pip install "rrlyrae_metallicity[dask]"``). Every
partition of the epoch photometry is predicted by the same code as
`~rrlyrae_metallicity.catalogue.predict_catalogue` on the worker that holds
it; each worker process builds its own ONNX Runtime sessions once (only the
model's name travels with the tasks). The result is the table that
`~rrlyrae_metallicity.add_feh` returns for the whole catalogue.

Use a cluster by creating a `distributed.Client` before the call::

    from distributed import Client
    client = Client("tcp://scheduler-host:8786")
    result = predict_feh_dask("s3://bucket/epoch_photometry/*.parquet", stars)
"""

import numpy as np
from astropy.table import Table

from .catalogue import StarPlan, predict_chunk
from .exceptions import InputFormatError
from .gaia import epoch_arrays
from .ensemble import load_model
from .results import FEH_COLUMNS, empty_feh_columns, with_feh_columns

__all__ = ["predict_feh_dask"]


def predict_feh_dask(photometry, stars, *, model="default", id_column="source_id",
                     period_column="pf", epoch_column="epoch_g", aligned=None,
                     storage_options=None):
    """Predict [Fe/H] for a partitioned catalogue with Dask.

    Parameters
    ----------
    photometry : `dask.dataframe.DataFrame`, str or list of str
        Gaia epoch photometry in one of the layouts of
        `rrlyrae_metallicity.gaia` (e.g. the long layout ``source_id, band,
        time, mag`` and the rejection flags), or the path(s) of a Parquet
        dataset holding it (read with `dask.dataframe.read_parquet`; local
        paths or URLs such as ``s3://``).
    stars : `~astropy.table.Table`
        One row per star, as for `~rrlyrae_metallicity.add_feh`.
    model : str
        ``"default"`` or a name from `~rrlyrae_metallicity.available_models`.
    id_column, period_column, epoch_column : str
        Columns of ``stars``, as for `~rrlyrae_metallicity.add_feh`.
    aligned : bool, optional
        Whether every source's rows already lie in a single partition. By
        default this is assumed when the frame is indexed by ``source_id``
        with known divisions (e.g. ``read_parquet(..., index="source_id",
        calculate_divisions=True)`` on a dataset sorted by source_id);
        otherwise the rows are first shuffled on ``source_id``.
    storage_options : dict, optional
        Passed to `dask.dataframe.read_parquet` when ``photometry`` is a path.

    Returns
    -------
    `~astropy.table.Table`
        ``stars`` with ``feh_phot``, ``feh_phot_std``, ``feh_status`` and
        ``feh_domain``, every row kept in order (see
        `~rrlyrae_metallicity.add_feh`).

    Raises
    ------
    rrlyrae_metallicity.exceptions.InputFormatError
        If ``aligned=True`` but a source's rows are in several partitions.
    """
    import dask
    import dask.dataframe as dd
    import pandas as pd

    ensemble = load_model(model)  # checks the name (and the files) before any work
    StarPlan(stars, None, id_column, period_column, epoch_column)  # checks the columns
    frame = photometry
    if not isinstance(frame, dd.DataFrame):
        # Divisions from the Parquet statistics: a dataset sorted by a
        # source_id index needs no shuffle.
        frame = dd.read_parquet(photometry, storage_options=storage_options,
                                calculate_divisions=True)
    if aligned is None:
        aligned = frame.index.name == "source_id" and frame.known_divisions
    if not aligned:
        if frame.index.name == "source_id":
            frame = frame.reset_index()
        frame = frame.shuffle(on="source_id")
    meta = pd.DataFrame({"row": np.empty(0, np.int64), "source_id": np.empty(0, np.int64),
                         "feh_phot": np.empty(0), "feh_phot_std": np.empty(0),
                         "feh_status": np.empty(0, object), "feh_domain": np.empty(0, object),
                         "feh_flags": np.empty(0, np.int64),
                         "feh_n_epochs": np.empty(0, np.int64),
                         "feh_n_rejected": np.empty(0, np.int64),
                         "feh_epoch_influence": np.empty(0)})
    columns = [c for c in (id_column, period_column, epoch_column) if c in stars.colnames]
    # One copy of the star table per worker, not one per task.
    shared_stars = dask.delayed(stars[columns], pure=True)
    results = frame.map_partitions(
        _predict_partition, shared_stars, ensemble.name, id_column, period_column,
        epoch_column, meta=meta, enforce_metadata=False,
    ).compute()
    return _merge_results(results, stars, ensemble, id_column)


def _predict_partition(frame, stars, model, id_column, period_column, epoch_column):
    """Predict the sources of one partition (runs on a worker)."""
    import pandas as pd

    if frame.index.name == "source_id":
        frame = frame.reset_index()
    plan = StarPlan(stars, None, id_column, period_column, epoch_column)
    part = predict_chunk(epoch_arrays(_frame_to_table(frame)), 0, plan, load_model(model))
    return pd.DataFrame({name: part[name] if part[name].dtype.kind != "U"
                         else part[name].astype(object) for name in part})


def _frame_to_table(frame):
    """A pandas partition as an astropy Table; nulls become masked values."""
    table = Table()
    for name in frame.columns:
        column = frame[name]
        missing = column.isna().to_numpy()
        if missing.any():
            # None is what the Gaia readers take for a missing number, flag or text.
            values = np.where(missing, None, column.to_numpy(dtype=object))
            table[name] = np.ma.masked_array(values, mask=missing)
        else:
            table[name] = column.to_numpy()
    return table


def _merge_results(results, stars, ensemble, id_column):
    """The output table from the per-partition results (rows of ``stars``)."""
    rows = results["row"].to_numpy()
    values, counts = np.unique(rows, return_counts=True)
    if (counts > 1).any():
        row = int(values[counts > 1][0])
        raise InputFormatError(
            f"the light curve of star {stars[id_column][row]} is split over more than one "
            "partition of the epoch photometry; pass aligned=False to shuffle the rows on "
            "source_id first"
        )
    columns = empty_feh_columns(len(stars))
    for name in FEH_COLUMNS:
        columns[name][rows] = results[name].to_numpy()
    return with_feh_columns(stars, columns, ensemble)
