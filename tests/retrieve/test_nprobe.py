"""``RetrievalIndex.search(nprobe=)`` leaves the shared faiss index's own nprobe alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np
import pandas as pd

from trigeo.retrieve.index import RetrievalIndex


def _index(rng: np.random.Generator) -> tuple[RetrievalIndex, np.ndarray]:
    centres = rng.normal(size=(10, 8)) * 4
    x = (centres[rng.integers(0, 10, 1000)] + rng.normal(size=(1000, 8))).astype(np.float32)
    photos = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(1000)],
            "lat": np.zeros(1000),
            "lon": np.zeros(1000),
            "image": [f"p{i}.jpg" for i in range(1000)],
        }
    )
    index = RetrievalIndex.from_features(x, photos, model_id="m", kind="ivfpq", pq_m=4, pq_bits=4)
    q = x[:40] + rng.normal(scale=0.5, size=(40, 8)).astype(np.float32)
    return index, q


def test_nprobe_calls_in_either_order_match_fresh_calls(rng):
    index, q = _index(rng)
    default = faiss.extract_index_ivf(index.index).nprobe
    assert default == 3
    fresh = {n: index.search(q, 8, nprobe=n) for n in (1, 25)}
    fresh[None] = index.search(q, 8)
    # nprobe=1 and 25 probe different lists here, so a leaked setting would show.
    assert not np.array_equal(fresh[1][1], fresh[25][1])
    assert not np.array_equal(fresh[None][1], fresh[25][1])
    for order in ((1, 25, None), (25, 1, None), (None, 25, 1), (25, None, 1)):
        for n in order:
            distance, rows = index.search(q, 8, nprobe=n)
            np.testing.assert_array_equal(rows, fresh[n][1])
            np.testing.assert_array_equal(distance, fresh[n][0])
        assert faiss.extract_index_ivf(index.index).nprobe == default


def test_concurrent_searches_with_different_nprobe(rng):
    index, q = _index(rng)
    want = {n: index.search(q, 8, nprobe=n)[1] for n in (1, 2, 25)}
    calls = [1, 25, 2] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda n: index.search(q, 8, nprobe=n)[1], calls))
    for n, rows in zip(calls, got, strict=True):
        np.testing.assert_array_equal(rows, want[n])
