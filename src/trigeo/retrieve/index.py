"""The retrieval index: M1 penultimate descriptors of a dataset split in faiss.

An index is a directory::

    INDEX/
      index.faiss      the faiss index (IndexFlatL2, or IVF-PQ for millions of photos)
      photos.parquet   photo_id, lat, lon, image of each indexed photo (faiss row order)
      index.json       format, kind, dim, count, model id and mesh hash, dataset hash
                       and folder, split, search parameters, provenance

Distances are Euclidean (L2) between descriptors, as in the study's query by
example. faiss returns squared L2; :meth:`RetrievalIndex.search` reports L2.
The index records the model id it was built with and refuses a query from
another model (descriptors of two networks are not comparable).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import ArtifactError, InputError
from trigeo.provenance import make_provenance

__all__ = ["INDEX_KINDS", "RetrievalIndex", "load_faiss", "make_faiss_index"]

FORMAT = "trigeo-index/1"
INDEX_KINDS = ("flat", "ivfpq")
META_FILE = "index.json"
FAISS_FILE = "index.faiss"
PHOTOS_FILE = "photos.parquet"


#: Queries per search from which faiss computes distances with a BLAS matrix product.
#: faiss's usual value is 20; the faiss-cpu 1.15 wheel ships 128,000, which sends every
#: batch of queries down a loop 15x slower than the product (bench_retrieve.py).
BLAS_THRESHOLD = 20

#: Serialises the save-and-restore of ``nprobe`` on wrapped IVF indexes (see ``search``).
_NPROBE_LOCK = threading.Lock()


def load_faiss() -> Any:
    """Import faiss with the BLAS threshold set to :data:`BLAS_THRESHOLD`."""
    import faiss

    if faiss.cvar.distance_compute_blas_threshold != BLAS_THRESHOLD:
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    return faiss


def make_faiss_index(
    features: NDArray[np.float32],
    kind: str = "flat",
    *,
    nlist: int | None = None,
    pq_m: int | None = None,
    pq_bits: int = 8,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Build and fill a faiss L2 index over ``features`` ``(n, d)``.

    Parameters
    ----------
    features
        Descriptors, one row per photo.
    kind
        ``flat``: exact search (``IndexFlatL2``). ``ivfpq``: an inverted file
        of ``nlist`` coarse clusters with product-quantized residuals
        (``pq_m`` sub-vectors of 8 bits): approximate, for millions of photos.
    nlist
        IVF clusters (default ``4 * sqrt(n)``, at most ``n / 39``).
    pq_m
        Sub-vectors per descriptor; must divide ``d`` (default: the largest of
        64, 32, 16, 8, 4, 2, 1 that divides ``d`` and is at most ``d / 2``).
    pq_bits
        Bits per sub-vector code (``2**pq_bits`` centroids each to train).
    seed
        Seed of the k-means training.

    Returns
    -------
    (index, params)
        The faiss index and the parameters used (stored in ``index.json``).
    """
    faiss = load_faiss()

    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"need a non-empty (n, d) feature matrix, got shape {x.shape}")
    n, d = x.shape
    if kind == "flat":
        index = faiss.IndexFlatL2(d)
        index.add(x)
        return index, {"kind": "flat"}
    if kind != "ivfpq":
        raise InputError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    if pq_m is None:
        pq_m = next(m for m in (64, 32, 16, 8, 4, 2, 1) if d % m == 0 and m <= max(d // 2, 1))
    if d % pq_m:
        raise InputError(f"--pq-m {pq_m} must divide the descriptor size {d}")
    if nlist is None:
        nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
    if not 1 <= pq_bits <= 16:
        raise InputError(f"--pq-bits must lie in 1..16, got {pq_bits}")
    centroids = 2**pq_bits
    if n < max(nlist, centroids):
        raise InputError(
            f"an IVF-PQ index needs at least {max(nlist, centroids)} photos to train "
            f"({nlist} clusters, {centroids} PQ centroids); got {n}: use --kind flat"
        )
    index = faiss.index_factory(d, f"IVF{nlist},PQ{pq_m}x{pq_bits}", faiss.METRIC_L2)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    index.train(x)
    index.add(x)
    nprobe = int(min(nlist, max(1, nlist // 8)))
    ivf.nprobe = nprobe
    params = {"kind": "ivfpq", "nlist": int(nlist), "pq_m": int(pq_m), "pq_bits": int(pq_bits)}
    return index, {**params, "nprobe": nprobe}


@dataclass
class RetrievalIndex:
    """Descriptors of indexed photos in faiss, with their ids and locations.

    Attributes
    ----------
    index
        The faiss index (rows in the order of ``photos``).
    photos : pandas.DataFrame
        ``photo_id``, ``lat``, ``lon``, ``image`` of each indexed photo.
    meta : dict
        ``index.json``: ``model_id``, ``mesh_hash``, ``dataset_sha256``,
        ``dataset_root``, ``split``, ``model_dir``, ``params``, ``dim``, ``count``.
    root : Path or None
        The directory it was loaded from or saved to.
    """

    index: Any
    photos: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def model_id(self) -> str:
        return str(self.meta.get("model_id"))

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def kind(self) -> str:
        return str(self.meta.get("params", {}).get("kind", "flat"))

    def check_model(self, model_id: str) -> None:
        """Refuse descriptors from a model other than the one the index was built with."""
        if model_id != self.model_id:
            raise ArtifactError(
                f"index {self.root or ''} was built with model {self.model_id}, not {model_id}; "
                "descriptors of different models are not comparable: rebuild it with "
                "`trigeo index build --model DIR`"
            )

    def search(
        self, queries: ArrayLike, k: int = 6, *, nprobe: int | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The ``k`` nearest indexed photos of each query descriptor.

        Returns
        -------
        (distance, row)
            ``(m, k)`` L2 distances (ascending) and photo rows; where fewer
            than ``k`` photos are indexed (or an IVF probe finds fewer), rows
            are -1 and distances inf.
        """
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise InputError(f"query descriptors have {q.shape[1]} values, the index {self.dim}")
        if k < 1:
            raise InputError(f"-k must be >= 1, got {k}")
        if nprobe is not None and int(nprobe) < 1:
            raise InputError(f"--nprobe must be >= 1, got {nprobe}")
        if nprobe is not None and self.kind == "ivfpq":
            squared, rows = self._search_nprobe(q, int(k), int(nprobe))
        else:
            squared, rows = self.index.search(q, int(k))
        rows = rows.astype(np.int64)
        distance = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
        distance[rows < 0] = np.inf
        return distance, rows

    def _search_nprobe(self, q: NDArray[np.float32], k: int, nprobe: int) -> tuple[Any, Any]:
        """One IVF search probing ``nprobe`` lists, leaving the shared index's own setting.

        The index is shared (a server answers many requests from one), so a
        per-call ``nprobe`` must not stay behind for later calls. faiss takes
        per-call parameters for a bare IVF index (``SearchParametersIVF``),
        which is thread-safe and costs nothing. An index wrapped in another
        (a pre-transform, say) takes them only through its wrapper's own
        parameter type, so there the setting is swapped in and restored under
        a lock instead.
        """
        faiss = load_faiss()
        ivf = faiss.extract_index_ivf(self.index)
        if isinstance(faiss.downcast_index(self.index), faiss.IndexIVF):
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            return self.index.search(q, k, params=params)
        with _NPROBE_LOCK:
            saved = ivf.nprobe
            ivf.nprobe = nprobe
            try:
                return self.index.search(q, k)
            finally:
                ivf.nprobe = saved

    # --- persistence ---------------------------------------------------------------
    def save(self, root: str | Path) -> Path:
        """Write the index directory; an existing one is replaced only when complete."""
        faiss = load_faiss()

        root = Path(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            faiss.write_index(self.index, str(tmp / FAISS_FILE))
            table = pa.Table.from_pandas(
                self.photos[["photo_id", "lat", "lon", "image"]], preserve_index=False
            )
            pq.write_table(table, tmp / PHOTOS_FILE, compression="zstd")
            meta = {
                **self.meta,
                "format": FORMAT,
                "dim": self.dim,
                "count": len(self),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n", "utf-8")
            if root.exists():
                if not (root / META_FILE).exists() and any(root.iterdir()):
                    raise InputError(f"{root} exists and is not a trigeo index; not replacing it")
                shutil.rmtree(root)
            tmp.rename(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.meta = meta
        self.root = root
        return root

    @classmethod
    def load(cls, root: str | Path) -> RetrievalIndex:
        """Read an index directory written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If a file is missing or corrupt, or the parts disagree.
        """
        faiss = load_faiss()

        root = Path(root)
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise ArtifactError(
                f"{root}: no {META_FILE}; is this a trigeo index (trigeo index build)?"
            )
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise ArtifactError(f"{root}: index format {meta.get('format')!r}, expected {FORMAT}")
        try:
            index = faiss.read_index(str(root / FAISS_FILE))
            photos = pq.read_table(root / PHOTOS_FILE).to_pandas()
        except Exception as exc:  # faiss raises RuntimeError, pyarrow several types
            raise ArtifactError(f"{root}: cannot read the index ({exc})") from exc
        if index.ntotal != len(photos) or index.ntotal != meta.get("count"):
            raise ArtifactError(
                f"{root}: index is corrupt ({index.ntotal} vectors, {len(photos)} photos, "
                f"index.json says {meta.get('count')})"
            )
        params = meta.get("params", {})
        if params.get("kind") == "ivfpq" and params.get("nprobe"):
            faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
        return cls(index=index, photos=photos, meta=meta, root=root)

    @classmethod
    def from_features(
        cls,
        features: NDArray[np.float32],
        photos: pd.DataFrame,
        *,
        model_id: str,
        kind: str = "flat",
        nlist: int | None = None,
        pq_m: int | None = None,
        pq_bits: int = 8,
        **meta: Any,
    ) -> RetrievalIndex:
        """An index over ``features`` whose rows are ``photos`` (same order)."""
        if len(features) != len(photos):
            raise ValueError(f"{len(features)} descriptors for {len(photos)} photos")
        index, params = make_faiss_index(features, kind, nlist=nlist, pq_m=pq_m, pq_bits=pq_bits)
        record = {
            "model_id": model_id,
            "params": params,
            **meta,
        }
        record.setdefault("provenance", make_provenance(params, {"model": model_id}))
        table = photos.reset_index(drop=True)
        if "image" not in table:
            table = table.assign(image="")
        return cls(index=index, photos=table, meta=record)
