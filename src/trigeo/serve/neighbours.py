"""The retrieval index in an answer: nearest indexed photos, kNN, ``refine``/``knn``.

:class:`IndexedPhotos` holds an index's photo coordinates and ids as plain
arrays and searches it once for every query of a forward pass: the nearest
indexed photos, their distance from each photo's top region, the kNN
estimate, and the ``refine`` or ``knn`` answer point
(:mod:`trigeo.retrieve.refine`, :mod:`trigeo.retrieve.knn`).
:func:`neighbour_records` turns one query's hits into the answer's
``neighbours`` (with thumbnail links when they are served) and
``knn_estimate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.serve.coarsen import Regions
from trigeo.serve.report import top_regions

__all__ = ["IndexedPhotos", "neighbour_records"]


class IndexedPhotos:
    """A :class:`~trigeo.retrieve.index.RetrievalIndex` as answers search it.

    Parameters
    ----------
    index
        The index (already checked against the backend's M1).
    mesh, regions
        The backend's mesh and the server's regions.
    with_regions
        Also locate each indexed photo's region, once (``refine`` keeps the
        neighbours in the photo's top regions).
    """

    def __init__(self, index: Any, mesh: Any, regions: Regions, *, with_regions: bool) -> None:
        self.index = index
        # Plain arrays: a pandas lookup per neighbour costs more than the search.
        self.lat = index.photos["lat"].to_numpy(dtype=np.float64)
        self.lon = index.photos["lon"].to_numpy(dtype=np.float64)
        self.ids = index.photos["photo_id"].astype(str).to_numpy()
        self.region: NDArray[np.int64] | None = None
        if with_regions:
            # -1: an indexed photo in a dropped cell, in no region.
            cells = np.asarray(mesh.locate(self.lat, self.lon))
            self.region = np.where(cells >= 0, regions.cell_region[np.maximum(cells, 0)], -1)

    def search(
        self,
        descriptors: NDArray,
        p: NDArray[np.float64],
        regions: Regions,
        *,
        rule: str,
        neighbours: int,
    ) -> list[dict[str, Any]]:
        """Nearest indexed photos, their distance from each top region, the kNN
        estimate and the ``refine``/``knn`` answer, for every query of a pass at once
        (one search, one kNN call per use)."""
        from trigeo.retrieve.knn import KNN_K, knn_locate
        from trigeo.retrieve.refine import REFINE_DEPTH
        from trigeo.sphere import distance_km

        depth = {"refine": REFINE_DEPTH, "knn": KNN_K}.get(rule, 0)
        deep_distance, deep_rows = self.index.search(
            descriptors, min(max(neighbours, depth), max(len(self.index), 1))
        )
        best = p.argmax(axis=1)
        answers = self.rule_answers(deep_distance, deep_rows, p, regions, rule)
        distance, rows = deep_distance[:, :neighbours], deep_rows[:, :neighbours]
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        lat, lon = self.lat[safe], self.lon[safe]
        dist = np.where(valid, distance, np.inf)
        best_lat, best_lon = regions.lat[best], regions.lon[best]
        km = distance_km(best_lat[:, None], best_lon[:, None], lat, lon)
        has = valid.any(axis=1)
        k_lat = np.full(len(rows), np.nan)
        k_lon = np.full(len(rows), np.nan)
        k_size = np.zeros(len(rows), dtype=np.int64)
        if has.any():
            k_lat[has], k_lon[has], k_size[has] = knn_locate(lat[has], lon[has], dist[has])
        return [
            {
                "rows": rows[q][valid[q]],
                "l2": distance[q][valid[q]],
                "lat": lat[q][valid[q]],
                "lon": lon[q][valid[q]],
                "km": km[q][valid[q]],
                "knn": (float(k_lat[q]), float(k_lon[q]), int(k_size[q])) if has[q] else None,
                "answer": answers[q],
            }
            for q in range(len(rows))
        ]

    def rule_answers(
        self,
        distance: NDArray,
        rows: NDArray[np.int64],
        p: NDArray[np.float64],
        regions: Regions,
        rule: str,
    ) -> list[tuple[float, float, str | None] | None]:
        """The ``refine`` or ``knn`` answer of each query (``None`` for a cell rule).

        ``knn`` is the kNN predictor over the nearest :data:`~trigeo.retrieve.knn.KNN_K`
        photos; ``refine`` keeps the neighbours in the photo's top regions
        (:mod:`trigeo.retrieve.refine`). Either falls back to the top region's
        point, with a note, where no neighbour qualifies.
        """
        from trigeo.retrieve.knn import KNN_K, knn_locate
        from trigeo.retrieve.refine import refine_points

        n = len(rows)
        if rule not in ("refine", "knn"):
            return [None] * n
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        lat, lon = self.lat[safe], self.lon[safe]
        dist = np.where(valid, distance, np.inf)
        top, top_p = top_regions(p)
        fallback_lat, fallback_lon = regions.lat[top[:, 0]], regions.lon[top[:, 0]]
        if rule == "refine":
            assert self.region is not None, "made without with_regions"
            result = refine_points(
                top, top_p, fallback_lat, fallback_lon, lat, lon,
                np.where(valid, self.region[safe], -1), dist,
            )  # fmt: skip
            used = result.refined
            a_lat, a_lon = result.lat, result.lon
            why = "no indexed photo in the top regions: the top region's point"
        else:
            used = valid[:, :KNN_K].any(axis=1)
            a_lat, a_lon = fallback_lat.astype(np.float64), fallback_lon.astype(np.float64)
            if used.any():
                a_lat[used], a_lon[used], _ = knn_locate(
                    lat[used, :KNN_K], lon[used, :KNN_K], dist[used, :KNN_K]
                )
            why = "no indexed photo: the top region's point"
        return [(float(a_lat[q]), float(a_lon[q]), None if used[q] else why) for q in range(n)]


def neighbour_records(
    hits: dict[str, Any],
    ids: NDArray,
    report_point: Callable[[float, float], tuple[float, float]],
    thumbnails: bool,
) -> dict[str, Any]:
    """One query's ``neighbours`` and ``knn_estimate``, coordinates as reported."""
    items = []
    for rank, row in enumerate(hits["rows"].tolist(), start=1):
        r_lat, r_lon = report_point(hits["lat"][rank - 1], hits["lon"][rank - 1])
        items.append(
            {
                "rank": rank,
                "photo_id": str(ids[row]),
                "lat": r_lat,
                "lon": r_lon,
                "l2": float(hits["l2"][rank - 1]),
                "km_from_prediction": round(float(hits["km"][rank - 1]), 1),
                # With thumbnails off (the default when coarsening) there is no link:
                # the endpoint answers 404 and the page shows none.
                "thumbnail": (f"/v1/index/photos/{row}/thumbnail" if thumbnails else None),
            }
        )
    knn = None
    if hits["knn"] is not None:
        k_lat, k_lon, size = hits["knn"]
        r_lat, r_lon = report_point(k_lat, k_lon)
        knn = {"lat": r_lat, "lon": r_lon, "neighbours_averaged": size}
    return {"neighbours": items, "knn_estimate": knn}
