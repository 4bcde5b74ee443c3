"""The Dask path gives the same table as the single-process one, on two worker processes."""

import numpy as np
import pytest

from rrlyrae_metallicity import add_feh, simulate
from rrlyrae_metallicity.exceptions import InputFormatError, RRLyraeMetallicityWarning
from rrlyrae_metallicity.gaia import read_epoch_photometry

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

from rrlyrae_metallicity.distributed import predict_feh_dask

# dask 2026.8 calls set_index and reset_index with inplace=True, which pandas 3.1
# deprecates: not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame"),
    pytest.mark.filterwarnings("ignore:An error occurred while calling the read_parquet"),
]

COLUMNS = ["source_id", "band", "time", "mag", "rejected_by_photometry",
           "rejected_by_variability"]


@pytest.fixture(scope="module")
def client():
    with (distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None) as cluster,
          distributed.Client(cluster) as client):
        yield client


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    stars = simulate.simulate_stars(30, seed=21, n_epochs_range=(20, 30))
    photometry = simulate.simulate_epoch_photometry(stars, seed=21, bp_rp_fraction=0.2)
    # A star with every G transit rejected, one with a bad period, one without photometry.
    photometry["rejected_by_variability"][photometry["source_id"] == stars["source_id"][0]] = True
    stars["pf"][1] = np.nan
    stars["source_id"][2] = 2000000000000000009
    # The star whose id was replaced leaves a light curve without a row.
    with pytest.warns(RRLyraeMetallicityWarning, match="no row in the table"):
        expected = add_feh(stars, read_epoch_photometry(photometry))
    frame = photometry[COLUMNS].to_pandas()
    path = tmp_path_factory.mktemp("dask") / "photometry"
    # Sorted on a source_id index: Parquet statistics give the divisions, so
    # every source lies in one partition.
    dd.from_pandas(frame.set_index("source_id").sort_index(), npartitions=3).to_parquet(path)
    return {"stars": stars, "frame": frame, "path": path, "expected": expected}


def _assert_same(result, expected):
    assert list(result["source_id"]) == list(expected["source_id"])
    assert list(result["feh_status"]) == list(expected["feh_status"])
    assert list(result["feh_domain"]) == list(expected["feh_domain"])
    np.testing.assert_allclose(result["feh_phot"], expected["feh_phot"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(result["feh_phot_std"], expected["feh_phot_std"], atol=1e-6,
                               rtol=0)
    assert result.meta["feh_model"] == expected.meta["feh_model"]


def test_partitioned_parquet_matches_add_feh(client, catalogue):
    result = predict_feh_dask(str(catalogue["path"]), catalogue["stars"])
    _assert_same(result, catalogue["expected"])
    assert set(catalogue["expected"]["feh_status"]) == {"ok", "too_few_epochs",
                                                       "invalid_period", "no_lightcurve"}


def test_unaligned_frame_is_shuffled_on_source_id(client, catalogue):
    frame = dd.from_pandas(catalogue["frame"], npartitions=4, sort=False)
    _assert_same(predict_feh_dask(frame, catalogue["stars"]), catalogue["expected"])


def test_a_source_split_over_partitions_is_an_error(client, catalogue):
    frame = dd.from_pandas(catalogue["frame"], npartitions=4, sort=False)
    with pytest.raises(InputFormatError, match="more than one partition"):
        predict_feh_dask(frame, catalogue["stars"], aligned=True)
