"""Retrieval speed at 100k indexed photos: faiss against brute-force numpy L2, same run.

Synthetic descriptors stand in for M1's (the index does not care where vectors
come from): 100,000 vectors of 512 float32 values (``resnet18``-sized), drawn
around 2,000 cluster centres as photos of the same places cluster, and 1,000
queries near indexed vectors. Single-threaded on both sides (faiss OpenMP and
BLAS threads 1, numpy's BLAS 1 where settable), so the ratio compares
algorithms, not core counts on a shared machine.

* build: ``RetrievalIndex.from_features`` (``IndexFlatL2``: copy; IVF-PQ:
  k-means + product quantizer training, then encoding) vs numpy's equivalent
  preparation (a contiguous float32 copy plus squared norms);
* query: ``RetrievalIndex.search`` for k = 10 vs numpy brute force
  (``|q|² - 2 q·x + |x|²`` in blocks with ``argpartition``), queries/s, and
  the recall@10 of each faiss index against numpy's exact answer.

Usage: ``python benchmarks/bench_retrieve.py [--quick] [--n 100000] [--no-ivfpq]``.
``--mp16`` is accepted for a uniform benchmark interface; the file is not read.
"""

from __future__ import annotations

import argparse
import os

# Thread counts must be fixed before numpy or faiss load their BLAS.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

K = 10


def descriptors(n: int, d: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, d)).astype(np.float32) * 2.0
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, d)).astype(np.float32)
    picks = rng.integers(0, n, queries)
    q = x[picks] + 0.3 * rng.normal(size=(queries, d)).astype(np.float32)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(q, np.float32)


def numpy_build(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = np.ascontiguousarray(x, dtype=np.float32).copy()
    return data, np.einsum("ij,ij->i", data, data)


def numpy_search(data: np.ndarray, norms: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), 64):
        block = q[start : start + 64]
        d2 = norms[None, :] - 2.0 * block @ data.T + np.einsum("ij,ij->i", block, block)[:, None]
        part = np.argpartition(d2, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1)
        out[start : start + 64] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(found, exact, strict=True)])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=None, help="accepted, not read")
    parser.add_argument("--quick", action="store_true", help="fewer queries and PQ sub-vectors")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--no-ivfpq", action="store_true")
    args = parser.parse_args()
    import faiss

    from trigeo.retrieve.index import RetrievalIndex

    faiss.omp_set_num_threads(1)
    queries = 200 if args.quick else 1000
    x, q = descriptors(args.n, args.dim, queries)
    photos = pd.DataFrame({"photo_id": np.arange(args.n).astype(str), "lat": 0.0, "lon": 0.0})
    print(f"{args.n:,} descriptors of {args.dim} float32, {queries} queries, k = {K}, 1 thread")

    t = time.perf_counter()
    data, norms = numpy_build(x)
    np_build = time.perf_counter() - t
    t = time.perf_counter()
    exact = numpy_search(data, norms, q, K)
    np_query = time.perf_counter() - t

    rows = [("numpy brute force", np_build, np_query, 1.0)]
    t = time.perf_counter()
    flat = RetrievalIndex.from_features(x, photos, model_id="bench")
    flat_build = time.perf_counter() - t
    t = time.perf_counter()
    _, found = flat.search(q, K)
    flat_query = time.perf_counter() - t
    rows.append(("faiss IndexFlatL2", flat_build, flat_query, recall(found, exact)))
    if not args.no_ivfpq:
        pq_m = 16 if args.quick else 64
        t = time.perf_counter()
        ivf = RetrievalIndex.from_features(x, photos, model_id="bench", kind="ivfpq", pq_m=pq_m)
        ivf_build = time.perf_counter() - t
        nprobe = ivf.meta["params"]["nprobe"]
        t = time.perf_counter()
        _, found = ivf.search(q, K)
        ivf_query = time.perf_counter() - t
        name = f"faiss IVF{ivf.meta['params']['nlist']},PQ{pq_m} nprobe {nprobe}"
        rows.append((name, ivf_build, ivf_query, recall(found, exact)))

    print(
        f"{'index':<36}{'build s':>9}{'build/s':>12}{'query/s':>10}{'vs numpy':>10}"
        f"{'recall@10':>11}"
    )
    for name, build, query, rec in rows:
        print(
            f"{name:<36}{build:>9.2f}{args.n / build:>12,.0f}{queries / query:>10,.0f}"
            f"{np_query / query:>9.1f}x{rec:>11.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
