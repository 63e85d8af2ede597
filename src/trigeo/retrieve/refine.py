"""``--answer refine``: retrieval inside the classifier's top cells, as PIGEON refines geocells.

For each photo, the ``depth`` nearest indexed photos by M1 descriptor are
searched. Those that fall in one of the photo's top-k cells are kept, the
nearest ``k`` of them (the kNN predictor's ``k``, 10), and each is weighted
by its cell's renormalised probability on top of the kNN rule's
inverse-distance weight: ``w_i = p(cell_i) / (d_i + 1e-6)``. The answer is
the densest cluster's location by the kNN predictor's own rule and radius
(:func:`trigeo.retrieve.knn.knn_locate`, 100 km). A photo with no neighbour
in its top cells keeps the top cell's label point.

The kNN rule weights a neighbour by ``1 / (d + 1e-6)``; passing it the
effective distance ``(d + 1e-6) / p - 1e-6`` gives exactly ``p / (d + 1e-6)``,
and an infinite one (``p = 0``) marks a neighbour the rule ignores. So the
cluster rule is the kNN predictor's, not a copy of it.

:func:`refine_points` is the pure computation; :func:`refine_predictions`
embeds the photos, searches the index and rewrites predictions files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.answer import answer_model_id, refine_weights
from trigeo.errors import ArtifactError, InputError
from trigeo.retrieve.knn import KNN_K, KNN_RADIUS_KM, knn_locate
from trigeo.runtime.options import InferenceOptions

__all__ = [
    "REFINE_DEPTH",
    "RefineResult",
    "index_cells",
    "index_model_dir",
    "refine_points",
    "refine_predictions",
    "search_neighbours",
]

log = logging.getLogger("trigeo.retrieve")

#: Indexed photos searched per query before the top-cell filter (docs/evaluation.md).
REFINE_DEPTH = 100
_EPS = 1e-6  # the kNN rule's own distance offset (trigeo.retrieve.knn)


@dataclass
class RefineResult:
    """Refined points; ``refined`` is false where the top cell's point was kept."""

    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    refined: NDArray[np.bool_]
    cluster_size: NDArray[np.int64]


def refine_points(
    top_cells: ArrayLike,
    top_probs: ArrayLike,
    fallback_lat: ArrayLike,
    fallback_lon: ArrayLike,
    neighbour_lat: ArrayLike,
    neighbour_lon: ArrayLike,
    neighbour_cells: ArrayLike,
    distance: ArrayLike,
    *,
    k: int = KNN_K,
    radius_km: float = KNN_RADIUS_KM,
) -> RefineResult:
    """The ``refine`` answer from each photo's top cells and its retrieved neighbours.

    Parameters
    ----------
    top_cells, top_probs
        ``(n, k_cells)`` the classifier's top cells and probabilities.
    fallback_lat, fallback_lon
        ``(n,)`` the answer where no neighbour falls in the top cells (the
        top cell's label point).
    neighbour_lat, neighbour_lon, neighbour_cells
        ``(n, D)`` location and mesh cell (``-1``: a dropped cell) of each
        retrieved neighbour, nearest first.
    distance
        ``(n, D)`` L2 descriptor distances; ``inf`` marks no neighbour.
    k, radius_km
        Neighbours clustered and cluster radius: the kNN predictor's.

    Returns
    -------
    RefineResult
    """
    if k < 1:
        raise InputError(f"-k (the neighbour count) must be >= 1, got {k}")
    d = np.atleast_2d(np.asarray(distance, dtype=np.float64))
    lat = np.atleast_2d(np.asarray(neighbour_lat, dtype=np.float64))
    lon = np.atleast_2d(np.asarray(neighbour_lon, dtype=np.float64))
    weight = refine_weights(top_cells, top_probs, neighbour_cells)
    if not d.shape == lat.shape == lon.shape == weight.shape:
        raise ValueError(
            f"neighbour arrays differ: distance {d.shape}, lat {lat.shape}, "
            f"lon {lon.shape}, cells {weight.shape}"
        )
    usable = (weight > 0) & np.isfinite(d)
    # The nearest k usable neighbours: a stable sort keeps the search's order among them.
    order = np.argsort(~usable, axis=1, kind="stable")[:, :k]
    usable = np.take_along_axis(usable, order, axis=1)
    d, lat, lon = (np.take_along_axis(a, order, axis=1) for a in (d, lat, lon))
    weight = np.take_along_axis(weight, order, axis=1)
    effective = np.full(d.shape, np.inf)
    effective[usable] = (d[usable] + _EPS) / weight[usable] - _EPS
    out_lat = np.array(fallback_lat, dtype=np.float64, copy=True)
    out_lon = np.array(fallback_lon, dtype=np.float64, copy=True)
    size = np.zeros(len(out_lat), dtype=np.int64)
    refined = usable.any(axis=1)
    if refined.any():
        r_lat, r_lon, r_size = knn_locate(
            np.where(usable, lat, 0.0)[refined],
            np.where(usable, lon, 0.0)[refined],
            effective[refined],
            radius_km=radius_km,
        )
        out_lat[refined], out_lon[refined], size[refined] = r_lat, r_lon, r_size
    return RefineResult(out_lat, out_lon, refined, size)


def index_cells(index: Any, mesh: Any) -> NDArray[np.int64]:
    """The mesh cell of every indexed photo (``-1`` in a dropped cell)."""
    lat = index.photos["lat"].to_numpy(dtype=np.float64)
    lon = index.photos["lon"].to_numpy(dtype=np.float64)
    return np.asarray(mesh.locate(lat, lon), dtype=np.int64)


def search_neighbours(
    index: Any, features: NDArray[np.float32], photo_ids: ArrayLike, depth: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The ``depth`` nearest indexed photos of each query, never the query itself.

    A query that is itself indexed (the same photo id, as when predicting the
    indexed split) would be its own nearest neighbour at the true location;
    its row is marked missing (``-1``, distance ``inf``).
    """
    distance, rows = index.search(features, min(depth + 1, max(len(index), 1)))
    own = index.photos["photo_id"].astype(str).to_numpy()
    ids = np.asarray(photo_ids).astype(str)
    is_self = (rows >= 0) & (own[np.maximum(rows, 0)] == ids[:, None])
    distance = np.where(is_self, np.inf, distance).astype(np.float32)
    rows = np.where(is_self, -1, rows)
    # Missing ones last, the rest in the search's order; then cut to depth.
    order = np.argsort(rows < 0, axis=1, kind="stable")[:, :depth]
    return np.take_along_axis(distance, order, axis=1), np.take_along_axis(rows, order, axis=1)


def index_model_dir(index: Any, candidates: Sequence[str | Path | None] = ()) -> Path:
    """The M1 directory whose descriptors the index holds.

    The first candidate whose ``model.json`` names the index's model id wins
    (the ``--model`` given, or an M2's M1); else the directory the index
    records.

    Raises
    ------
    ArtifactError
        No candidate is the index's model and the recorded directory is gone
        or holds another model.
    """
    from trigeo.models.heads import read_model_json

    recorded = index.meta.get("model_dir")
    for candidate in [*candidates, recorded]:
        if candidate is None or not (Path(candidate) / "model.json").exists():
            continue
        if read_model_json(Path(candidate)).get("model_id") == index.model_id:
            return Path(candidate)
    raise ArtifactError(
        f"the index {index.root or ''} was built with M1 {index.model_id}, which is neither "
        f"the model given nor at the directory the index records ({recorded}); rebuild the "
        "index with this model (`trigeo index build`)"
    )


def refine_predictions(
    files: Sequence[tuple[str | Path, Any]],
    index_dir: str | Path,
    *,
    out: str | Path,
    model_candidates: Sequence[str | Path | None] = (),
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    k: int = KNN_K,
    radius_km: float = KNN_RADIUS_KM,
    depth: int = REFINE_DEPTH,
    name: str | None = None,
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> dict[Path, RefineResult]:
    """Answer predictions files by ``refine``: rewrite their lat/lon and answer record.

    The photos (the same ``images`` or ``data``/``split`` the files were
    predicted on) are embedded once with the index's M1 and searched once;
    each file is then refined with its own mesh's cells.

    Parameters
    ----------
    files
        ``(predictions path, its mesh)`` pairs, written with the top-cell answer
        (empty on DDP ranks other than 0, which only join the embedding pass).
    out
        The command's output file: the embedding pass logs beside it.
    model_candidates
        M1 directories that may be the index's model (see :func:`index_model_dir`).
    k, radius_km, depth
        Neighbours clustered, cluster radius, neighbours searched.
    name
        The display name of a single file given ``--name``; otherwise each
        file's name gets `` refine`` appended. Model ids get ``+refine``.
    options
        How the photos are embedded (default: :class:`InferenceOptions`).

    Returns
    -------
    dict
        Each file's :class:`RefineResult`, rows in the file's order (empty on
        DDP ranks other than 0: Lightning re-runs the command in each child,
        so every rank must run the same passes, and rank 0 holds the result).

    Raises
    ------
    InputError
        Neither or both inputs, a bad ``depth``, or a file with no cells.
    """
    from trigeo.models.m1 import M1Model
    from trigeo.retrieve.embed import embed_photos, query_photos
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.runtime.devices import launch_rank

    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if depth < k:
        raise InputError(f"the refine search depth ({depth}) must be at least -k ({k})")
    index = RetrievalIndex.load(index_dir)
    model = M1Model.load(index_model_dir(index, model_candidates))
    photos = query_photos(images, data, split)
    embedded = embed_photos(
        model,
        photos.root,
        photos.refs,
        options=options or InferenceOptions(),
        log_file=Path(out).with_suffix(".log"),
        work_dir=Path(out).resolve().parent,
        report=report,
    )
    if launch_rank() != 0:
        return {}
    ids = photos.photo_ids[embedded.rows]
    distance, found = search_neighbours(index, embedded.features, ids, depth)
    search = _Search(index, {pid: i for i, pid in enumerate(ids)}, distance, found)
    params = {"k": k, "radius_km": radius_km, "depth": depth, "index": str(index_dir)}
    results: dict[Path, RefineResult] = {}
    for path, mesh in files:
        display = name if name and len(files) == 1 else None
        results[Path(path)] = _refine_file(path, mesh, search, params, display, report)
    return results


@dataclass
class _Search:
    """The photos' neighbours in the index, shared by every file refined."""

    index: Any
    #: Photo id -> row of ``distance`` and ``found``.
    position: dict[str, int]
    distance: NDArray[np.float32]
    found: NDArray[np.int64]
    #: The index's photos' cells, per mesh hash (located once per mesh).
    cells: dict[str, NDArray[np.int64]] = field(default_factory=dict)

    def neighbour_cells(self, mesh: Any) -> NDArray[np.int64]:
        key = str(mesh.mesh_hash)
        if key not in self.cells:
            self.cells[key] = index_cells(self.index, mesh)
        return self.cells[key]


def _refine_file(
    path: str | Path,
    mesh: Any,
    search: _Search,
    params: dict[str, Any],
    name: str | None,
    report: Callable[[str], None],
) -> RefineResult:
    """Refine one predictions file in place; ``name``: its display name, if given."""
    from trigeo.predictions import read_predictions, rewrite_answer

    index = search.index
    preds = read_predictions(path)
    if preds.top_cells is None or preds.top_probs is None:
        raise InputError("refine needs the classifier's top cells", source=path)
    where = np.array([search.position.get(str(pid), -1) for pid in preds.photo_id])
    if (where < 0).any():
        # A photo the classifier read but the embedding pass did not: keep its top cell.
        report(f"{int((where < 0).sum())} photos of {path} have no descriptor; top cell kept")
    cells = search.neighbour_cells(mesh)
    found = search.found[np.maximum(where, 0)]
    safe = np.maximum(found, 0)
    dist = np.where(
        (where >= 0)[:, None] & (found >= 0), search.distance[np.maximum(where, 0)], np.inf
    )
    result = refine_points(
        preds.top_cells,
        preds.top_probs,
        preds.lat,
        preds.lon,
        index.photos["lat"].to_numpy(dtype=np.float64)[safe],
        index.photos["lon"].to_numpy(dtype=np.float64)[safe],
        np.where(np.isfinite(dist), cells[safe], -1),
        dist,
        k=params["k"],
        radius_km=params["radius_km"],
    )
    if name is None:
        name = None if preds.model_name is None else f"{preds.model_name} refine"
    rewrite_answer(
        path,
        result.lat,
        result.lon,
        model_id=answer_model_id(preds.model_id, "refine"),
        model_name=name,
        answer="refine",
        params={
            **params,
            "index_model": index.model_id,
            "refined": int(result.refined.sum()),
            "top_cell_kept": int((~result.refined).sum()),
        },
    )
    report(
        f"refined {int(result.refined.sum())} of {len(result.lat)} answers of {path} by "
        f"retrieval in their top cells ({int((~result.refined).sum())} kept the top cell: "
        "no neighbour there)"
    )
    return result
