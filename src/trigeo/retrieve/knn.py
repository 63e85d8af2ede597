"""A kNN geolocation predictor: where do a photo's nearest training photos cluster?

The rule (:func:`knn_locate`), for the ``k`` nearest indexed photos of a query
by M1 descriptor (L2):

1. Each neighbour ``i`` gets the weight ``w_i = 1 / (d_i + 1e-6)``, ``d_i``
   its L2 feature distance to the query: closer in appearance counts more.
2. Each neighbour's *support* is the summed weight of the neighbours within
   ``radius_km`` (great-circle) of it, itself included.
3. The neighbour with the largest support is the centre of the densest
   cluster (ties: the nearer neighbour in feature space wins).
4. The prediction is the weighted spherical mean (normalized mean of unit
   vectors, :func:`trigeo.sphere.mean_position`) of the neighbours within
   ``radius_km`` of that centre.

A majority of neighbours in one city thus outvotes a few look-alikes
elsewhere, and the estimate is not pulled to the midpoint of two continents
as a plain mean would be. :func:`predict_knn` writes the estimates as a
normal predictions file (lat/lon, no cells), which ``trigeo evaluate`` scores
beside M1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import InputError
from trigeo.provenance import make_provenance
from trigeo.runtime.options import InferenceOptions
from trigeo.sphere import EARTH_RADIUS_KM, latlng_to_xyz, xyz_to_latlng

__all__ = ["KNN_K", "KNN_RADIUS_KM", "KnnResult", "knn_locate", "predict_knn"]

log = logging.getLogger("trigeo.retrieve")

#: Default neighbours per query and cluster radius.
KNN_K = 10
KNN_RADIUS_KM = 100.0
_EPS = 1e-6


def knn_locate(
    lat: ArrayLike,
    lon: ArrayLike,
    distance: ArrayLike,
    *,
    radius_km: float = KNN_RADIUS_KM,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Locations from neighbours by the densest-cluster rule (module docstring).

    Parameters
    ----------
    lat, lon
        ``(n, k)`` neighbour locations, nearest first.
    distance
        ``(n, k)`` L2 feature distances; ``inf`` (or NaN) marks a missing
        neighbour, which gets no weight.
    radius_km
        Cluster radius.

    Returns
    -------
    (lat, lon, cluster_size)
        ``(n,)`` predicted locations and the number of neighbours averaged.

    Raises
    ------
    InputError
        A row has no neighbour at all.
    """
    if radius_km <= 0:
        raise InputError(f"--cluster-km must be positive, got {radius_km}")
    la = np.atleast_2d(np.asarray(lat, dtype=np.float64))
    lo = np.atleast_2d(np.asarray(lon, dtype=np.float64))
    d = np.atleast_2d(np.asarray(distance, dtype=np.float64))
    if not la.shape == lo.shape == d.shape:
        raise ValueError(f"lat {la.shape}, lon {lo.shape} and distance {d.shape} differ")
    valid = np.isfinite(d) & np.isfinite(la) & np.isfinite(lo)
    if not valid.any(axis=1).all():
        raise InputError("a query has no neighbour to locate it from")
    w = np.where(valid, 1.0 / (np.where(valid, d, 0.0) + _EPS), 0.0)
    xyz = latlng_to_xyz(np.where(valid, la, 0.0), np.where(valid, lo, 0.0))  # (n, k, 3)
    cos = np.clip(np.einsum("nid,njd->nij", xyz, xyz), -1.0, 1.0)
    near = np.arccos(cos) * EARTH_RADIUS_KM <= radius_km
    near &= valid[:, :, None] & valid[:, None, :]
    support = np.einsum("nij,nj->ni", near, w)
    support[~valid] = -np.inf
    centre = np.argmax(support, axis=1)  # first maximum: the nearer neighbour
    rows = np.arange(la.shape[0])
    members = near[rows, centre]  # (n, k)
    total = np.einsum("nk,nkd->nd", w * members, xyz)
    total /= np.linalg.norm(total, axis=1, keepdims=True)
    out_lat, out_lon = xyz_to_latlng(total)
    return (
        np.asarray(out_lat, dtype=np.float64),
        np.asarray(out_lon, dtype=np.float64),
        members.sum(axis=1).astype(np.int64),
    )


@dataclass
class KnnResult:
    """What :func:`predict_knn` wrote."""

    path: Path
    photo_id: NDArray[np.str_]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    cluster_size: NDArray[np.int64]
    skipped: dict[str, str]
    model_id: str
    model_name: str


def predict_knn(
    model_dir: str | Path,
    index_dir: str | Path,
    out: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    k: int = KNN_K,
    radius_km: float = KNN_RADIUS_KM,
    name: str | None = None,
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> KnnResult | None:
    """Predict locations by kNN over a retrieval index and write a predictions file.

    Exactly one of ``images`` and ``data`` is given, as for ``trigeo predict``.
    When the queries come from the indexed dataset itself, a photo is never
    its own neighbour (its row is left out of its search). ``options``: how
    the photos are embedded (default: :class:`InferenceOptions`).

    Returns
    -------
    KnnResult or None
        ``None`` on non-zero DDP ranks.

    Raises
    ------
    ArtifactError
        The index was built with another model.
    InputError
        Neither or both inputs; bad ``k``.
    """
    from trigeo.models.m1 import M1Model
    from trigeo.predictions import write_predictions
    from trigeo.retrieve.embed import embed_photos, query_photos
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.runtime.devices import launch_rank

    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if k < 1:
        raise InputError(f"-k must be >= 1, got {k}")
    model = M1Model.load(model_dir)
    index = RetrievalIndex.load(index_dir)
    index.check_model(model.model_id)
    photos = query_photos(images, data, split)
    if data is None and not photos.refs:
        raise InputError("no image files found in the given paths")
    embedded = embed_photos(
        model,
        photos.root,
        photos.refs,
        options=options or InferenceOptions(),
        log_file=Path(out).with_suffix(".log"),
        work_dir=Path(out).resolve().parent,
        report=report,
    )
    if launch_rank() != 0:  # rank 0 holds every rank's descriptors (as in build_index)
        return None
    kept_ids = photos.photo_ids[embedded.rows]
    same_dataset = data is not None and photos.dataset_hash == index.meta.get("dataset_sha256")
    lat, lon, size = _knn_answers(index, embedded.features, kept_ids, k, radius_km, same_dataset)
    inputs = {"model": model.model_id, "index_dataset": str(index.meta.get("dataset_sha256"))}
    if photos.dataset_hash is not None:
        inputs["dataset"] = photos.dataset_hash
    model_id = f"knn{k}-{model.model_id}"
    model_name = name or f"kNN-{k} ({model.name})"
    provenance = make_provenance(
        {
            "k": k,
            "radius_km": radius_km,
            "rule": "densest cluster, inverse-L2 weights, spherical mean",
            "split": split if data is not None else None,
            "index_kind": index.kind,
        },
        inputs,
        skipped=len(embedded.skipped),
        location_label="knn",
    )
    path = write_predictions(
        out,
        kept_ids,
        lat,
        lon,
        model_id=model_id,
        model_name=model_name,
        mesh_hash=None,
        provenance=provenance,
        answer="knn",
        answer_params={"k": k, "radius_km": radius_km, "index": str(index_dir)},
    )
    report(f"wrote {len(kept_ids)} kNN predictions (k={k}, {radius_km:g} km clusters) to {path}")
    return KnnResult(
        path=Path(path),
        photo_id=kept_ids,
        lat=lat,
        lon=lon,
        cluster_size=size,
        skipped={str(photos.photo_ids[i]): e for i, e in embedded.skipped.items()},
        model_id=model_id,
        model_name=model_name,
    )


def _knn_answers(
    index: Any,
    features: NDArray[np.float32],
    photo_ids: NDArray,
    k: int,
    radius_km: float,
    same_dataset: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Each query's kNN answer; a query from the indexed dataset skips its own row."""
    extra = 1 if same_dataset else 0
    distance, found = index.search(features, min(k + extra, max(len(index), 1)))
    if same_dataset:
        own = index.photos["photo_id"].astype(str).to_numpy()
        is_self = (found >= 0) & (own[np.maximum(found, 0)] == photo_ids[:, None])
        distance, found = _drop_self(distance, found, is_self, k)
    distance, found = distance[:, :k], found[:, :k]
    n_lat = index.photos["lat"].to_numpy(dtype=np.float64)
    n_lon = index.photos["lon"].to_numpy(dtype=np.float64)
    safe = np.maximum(found, 0)
    return knn_locate(n_lat[safe], n_lon[safe], distance, radius_km=radius_km)


def _drop_self(
    distance: NDArray, found: NDArray, is_self: NDArray, k: int
) -> tuple[NDArray, NDArray]:
    """Remove each row's own photo from its neighbours, keeping order; pad to k."""
    n = found.shape[0]
    out_d = np.full((n, k), np.inf, dtype=distance.dtype)
    out_f = np.full((n, k), -1, dtype=found.dtype)
    for i in range(n):
        keep = ~is_self[i]
        d, f = distance[i, keep][:k], found[i, keep][:k]
        out_d[i, : len(d)], out_f[i, : len(f)] = d, f
    return out_d, out_f
