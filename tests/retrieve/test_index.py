"""The faiss index against brute-force numpy L2, persistence, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trigeo.errors import ArtifactError, InputError
from trigeo.retrieve.index import RetrievalIndex


def _photos(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "lat": rng.uniform(-60, 60, n),
            "lon": rng.uniform(-180, 180, n),
            "image": [f"images/p{i}.jpg" for i in range(n)],
        }
    )


def _brute_force(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    squared = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(squared, order, axis=1)), order


def test_flat_search_equals_brute_force_l2_and_survives_save_load(rng, tmp_path):
    x = rng.normal(size=(500, 24)).astype(np.float32)
    q = rng.normal(size=(20, 24)).astype(np.float32)
    index = RetrievalIndex.from_features(x, _photos(500, rng), model_id="m1-test")
    distance, rows = index.search(q, 7)
    want_d, want_rows = _brute_force(x, q, 7)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(distance, want_d, rtol=1e-4)
    index.save(tmp_path / "idx")
    again = RetrievalIndex.load(tmp_path / "idx")
    assert len(again) == 500 and again.dim == 24 and again.model_id == "m1-test"
    assert list(again.photos["photo_id"][:3]) == ["p0", "p1", "p2"]
    np.testing.assert_array_equal(again.search(q, 7)[1], want_rows)
    # An exact match is at distance 0; asking for more than indexed pads with -1 / inf.
    small = RetrievalIndex.from_features(x[:3], _photos(3, rng), model_id="m1-test")
    d, r = small.search(x[1], 5)
    assert r[0, 0] == 1 and d[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert list(r[0, 3:]) == [-1, -1] and np.isinf(d[0, 3:]).all()


def test_ivfpq_is_approximate_but_finds_most_true_neighbours(rng, tmp_path):
    centres = rng.normal(size=(10, 8)) * 4
    x = (centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 8))).astype(np.float32)
    q = x[:50] + rng.normal(scale=0.1, size=(50, 8)).astype(np.float32)
    # 4-bit codes keep the PQ training small enough for a test (8 bits is the default).
    index = RetrievalIndex.from_features(
        x, _photos(1000, rng), model_id="m", kind="ivfpq", pq_m=4, pq_bits=4
    )
    params = {"kind": "ivfpq", "nlist": 25, "pq_m": 4, "pq_bits": 4, "nprobe": 3}
    assert index.meta["params"] == params
    _, want = _brute_force(x, q, 10)
    _, got = index.search(q, 10, nprobe=25)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want, got, strict=True)])
    assert recall >= 0.5
    index.save(tmp_path / "ivf")
    assert RetrievalIndex.load(tmp_path / "ivf").kind == "ivfpq"
    with pytest.raises(InputError, match="needs at least 256 photos"):
        RetrievalIndex.from_features(x[:100], _photos(100, rng), model_id="m", kind="ivfpq")
    with pytest.raises(InputError, match="must divide"):
        RetrievalIndex.from_features(x, _photos(1000, rng), model_id="m", kind="ivfpq", pq_m=3)
    with pytest.raises(InputError, match="unknown index kind"):
        RetrievalIndex.from_features(x, _photos(1000, rng), model_id="m", kind="hnsw")


def test_mismatched_model_and_corrupt_index_are_refused(rng, tmp_path):
    x = rng.normal(size=(10, 8)).astype(np.float32)
    index = RetrievalIndex.from_features(x, _photos(10, rng), model_id="m1-a")
    index.save(tmp_path / "idx")
    index.check_model("m1-a")
    with pytest.raises(ArtifactError, match="built with model m1-a, not m1-b"):
        index.check_model("m1-b")
    with pytest.raises(InputError, match="query descriptors have 4 values, the index 8"):
        index.search(np.zeros((1, 4)), 2)
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    meta["count"] = 11
    (tmp_path / "idx" / "index.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="corrupt"):
        RetrievalIndex.load(tmp_path / "idx")
    with pytest.raises(ArtifactError, match=r"no index\.json"):
        RetrievalIndex.load(tmp_path)
    # Saving over a folder that is not an index is refused, not wiped.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a trigeo index"):
        index.save(tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_batched_queries_use_faiss_blas_path():
    """faiss-cpu 1.15 ships a BLAS threshold of 128,000 queries; the index lowers it to 20."""
    from trigeo.retrieve.index import BLAS_THRESHOLD, load_faiss

    assert load_faiss().cvar.distance_compute_blas_threshold == BLAS_THRESHOLD == 20
