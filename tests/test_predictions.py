"""The predictions artifact: round trip, peer CSVs and bad files."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from trigeo.errors import InputError
from trigeo.predictions import read_predictions, write_predictions
from trigeo.provenance import make_provenance


def test_round_trip_with_top_k_and_full_probabilities(tmp_path, rng):
    n, k, cells = 50, 5, 30
    full = rng.dirichlet(np.ones(cells), size=n).astype(np.float32)
    top = np.argsort(-full, axis=1)[:, :k]
    probs = np.take_along_axis(full, top, axis=1)
    ids = [f"photo{i}" for i in range(n)]
    lat, lon = rng.uniform(-90, 90, n), rng.uniform(-180, 180, n)
    path = write_predictions(
        tmp_path / "m1.parquet",
        ids,
        lat,
        lon,
        top_cells=top,
        top_probs=probs,
        model_id="m1-coarse",
        mesh_hash="abc123",
        full_probs=full,
        provenance=make_provenance({"k": k}),
    )
    preds = read_predictions(path)
    assert preds.photo_id.tolist() == ids and len(preds) == n and preds.has_cells
    np.testing.assert_array_equal(preds.lat, lat)
    np.testing.assert_array_equal(preds.top_cells, top)
    np.testing.assert_array_equal(preds.top_probs, probs)
    np.testing.assert_array_equal(np.asarray(preds.full_probs), full)
    assert preds.model_id == "m1-coarse" and preds.mesh_hash == "abc123"
    assert preds.meta["config"] == {"k": k} and preds.meta["format"] == "trigeo-predictions/1"
    assert pq.read_schema(path).field("top_cells").type.list_size == k


def test_peer_csv_has_no_cells_and_takes_its_name_from_the_file(tmp_path):
    path = tmp_path / "peer-system.csv"
    path.write_text("photo_id,latitude,longitude\na,10.5,20.25\nb,-3,170\n")
    preds = read_predictions(path)
    assert not preds.has_cells and preds.mesh_hash is None and preds.full_probs is None
    assert preds.model_id == "peer-system"
    assert preds.lat.tolist() == [10.5, -3.0] and preds.lon.tolist() == [20.25, 170.0]
    assert preds.photo_id.tolist() == ["a", "b"]


def test_bad_prediction_files_name_the_problem(tmp_path):
    no_ids = tmp_path / "no_ids.csv"
    no_ids.write_text("id,lat,lon\na,1,2\n")
    with pytest.raises(InputError, match="no photo_id column"):
        read_predictions(no_ids)
    bad_lat = tmp_path / "bad_lat.csv"
    bad_lat.write_text("photo_id,lat,lon\na,1,2\nb,91,2\n")
    with pytest.raises(InputError, match=r"row 2.*'lat'.*swapped"):
        read_predictions(bad_lat)
    with pytest.raises(ValueError, match=r"must be \(n, k\)"):
        write_predictions(
            tmp_path / "x.parquet",
            ["a"],
            [0],
            [0],
            top_cells=[[1, 2]],
            top_probs=[[1.0]],
            model_id="x",
            mesh_hash=None,
        )


def test_peer_csv_keeps_numeric_photo_ids_verbatim(tmp_path):
    path = tmp_path / "peer.csv"
    path.write_text("photo_id,lat,lon\n00123,1,2\n4567,3,4\n")
    assert read_predictions(path).photo_id.tolist() == ["00123", "4567"]


def test_non_numeric_coordinates_name_the_row(tmp_path):
    bad = tmp_path / "peer.csv"
    bad.write_text("photo_id,lat,lon\na,10,20\nb,abc,3\n")
    with pytest.raises(InputError, match=r"row 2, column 'lat': value 'abc' is not a number"):
        read_predictions(bad)
