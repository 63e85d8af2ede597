"""User and album averaging as pure functions of predictions and the photo table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from trigeo.errors import InputError
from trigeo.evaluate.averaging import album_keys, average_by_album, average_by_user, average_groups
from trigeo.predictions import Predictions


def _preds(cells, probs, lat=None, lon=None, full=None, ids=None):
    cells = np.asarray(cells)
    n = cells.shape[0]
    return Predictions(
        photo_id=np.array(ids or [f"p{i}" for i in range(n)]),
        lat=np.zeros(n) if lat is None else np.asarray(lat, dtype=float),
        lon=np.zeros(n) if lon is None else np.asarray(lon, dtype=float),
        top_cells=cells.astype(np.int32),
        top_probs=np.asarray(probs, dtype=np.float32),
        model_id="m1",
        mesh_hash="h",
        full_probs=full,
    )


def test_user_average_takes_argmax_of_mean_vector_by_hand():
    # User a: photo 0 says cell 3 (0.6) or 1 (0.4); photo 1 says 1 (0.5) or 2 (0.5).
    # Mean: cell 1 = 0.45, cell 3 = 0.3, cell 2 = 0.25 -> both photos get cell 1.
    # User b: a single photo keeps its own argmax (cell 2).
    preds = _preds([[3, 1], [1, 2], [2, 0]], [[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    table = pd.DataFrame(
        {
            "photo_id": ["p2", "p0", "p1"],
            "user_id": ["b", "a", "a"],
            "posted_at": pd.to_datetime(["2020-01-01"] * 3, utc=True),
        }
    )
    centroids = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    out = average_by_user(preds, table, centroids=centroids, n_cells=4)
    assert out.top_cells[:, 0].tolist() == [1, 1, 2]
    np.testing.assert_allclose(out.top_probs[0], [0.45, 0.3], rtol=1e-6)
    assert out.lat.tolist() == [10.0, 10.0, 20.0]
    assert out.model_id == "m1 +user-avg" and out.model_name is None
    named = dataclasses.replace(preds, model_name="M1 coarse")
    assert average_by_album(named, table, centroids=centroids).model_name == "M1 coarse +album-avg"
    # Without a mesh, label points come from the file's own top-1 rows.
    with_file_points = _preds(
        [[3, 1], [1, 2], [2, 0]], [[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]], lat=[30, 10, 20]
    )
    assert average_by_user(with_file_points, table).lat.tolist() == [10.0, 10.0, 20.0]


def test_averaging_without_location_for_chosen_cell_asks_for_mesh():
    preds = _preds([[3, 1], [2, 1]], [[0.5, 0.45], [0.5, 0.45]])
    table = pd.DataFrame(
        {
            "photo_id": ["p0", "p1"],
            "user_id": ["a", "a"],
            "posted_at": pd.to_datetime(["2020-01-01"] * 2, utc=True),
        }
    )
    with pytest.raises(InputError, match="--mesh"):
        average_by_user(preds, table)


def test_album_keys_follow_posting_time_in_albums_of_24():
    times = pd.date_range("2020-01-01", periods=60, freq="h", tz="UTC")
    shuffled = np.random.default_rng(0).permutation(60)
    users = np.array(["a"] * 50 + ["b"] * 10)[shuffled]
    keys = album_keys(users, times[shuffled], np.arange(60)[shuffled])
    frame = pd.DataFrame({"user": users, "time": times[shuffled], "album": keys})
    sizes = frame.groupby("album").size().sort_values(ascending=False).tolist()
    assert sizes == [24, 24, 10, 2]
    a = frame[frame["user"] == "a"].sort_values("time")
    # Albums are consecutive in time: the first 24 posts, then the next 24, then 2.
    assert a["album"].iloc[:24].nunique() == 1 and a["album"].iloc[24:48].nunique() == 1
    assert a["album"].iloc[0] != a["album"].iloc[24] != a["album"].iloc[48]


def test_album_average_differs_from_user_average():
    # 25 photos of one user: the first 24 say cell 0, the last says cell 1.
    n = 25
    cells = [[0, 1]] * 24 + [[1, 0]]
    probs = [[0.6, 0.4]] * 24 + [[0.9, 0.1]]
    preds = _preds(cells, probs, lat=[0] * 24 + [5])
    table = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "user_id": ["u"] * n,
            "posted_at": pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC"),
        }
    )
    assert average_by_user(preds, table).top_cells[:, 0].tolist() == [0] * n
    albums = average_by_album(preds, table)
    assert albums.top_cells[:, 0].tolist() == [0] * 24 + [1]
    assert albums.lat.tolist() == [0.0] * 24 + [5.0]


def test_dense_full_vectors_and_sparse_top_k_agree_when_top_k_holds_all_mass(rng):
    full = rng.dirichlet(np.full(6, 0.5), size=300).astype(np.float32)
    order = np.argsort(-full, axis=1)
    groups = rng.integers(0, 40, 300)
    dense = _preds(order, np.take_along_axis(full, order, 1), full=full)
    sparse = _preds(order, np.take_along_axis(full, order, 1))
    c_dense, p_dense = average_groups(dense, groups)
    c_sparse, p_sparse = average_groups(sparse, groups, n_cells=6)
    np.testing.assert_array_equal(c_dense[:, 0], c_sparse[:, 0])
    np.testing.assert_allclose(p_dense, p_sparse, atol=1e-6)
    for g in np.unique(groups):
        assert c_dense[groups == g][0, 0] == full[groups == g].mean(axis=0).argmax()


def test_sparse_average_pads_short_groups_with_minus_one():
    preds = _preds([[0, 1, 2]], [[1.0, 0.0, 0.0]])
    cells, probs = average_groups(preds, np.array([0]), n_cells=3)
    assert cells.tolist() == [[0, -1, -1]] and probs.tolist() == [[1.0, 0.0, 0.0]]


def test_averaging_peer_predictions_is_a_clear_error():
    peer = Predictions(photo_id=np.array(["a"]), lat=np.zeros(1), lon=np.zeros(1), model_id="peer")
    with pytest.raises(InputError, match="no cell probabilities"):
        average_groups(peer, np.array([0]))


def test_ties_go_to_the_lower_cell_id_in_both_paths():
    full = np.zeros((2, 5), dtype=np.float32)
    full[:, [1, 3]] = 0.5
    preds = _preds([[3, 1], [3, 1]], [[0.5, 0.5], [0.5, 0.5]], full=full)
    dense_cells, _ = average_groups(preds, np.array([0, 0]), k=2)
    preds.full_probs = None
    sparse_cells, _ = average_groups(preds, np.array([0, 0]), n_cells=5)
    assert dense_cells.tolist() == sparse_cells.tolist() == [[1, 3], [1, 3]]
