"""The parts of one photo's reported answer, as JSON records.

Functions of the server's :class:`~trigeo.serve.coarsen.Regions` and one
photo's region probabilities, put together by
:meth:`trigeo.serve.engine.Engine.answers`: the top-k regions with their
nearest city, the 50/90/95% credible regions, the listed region ids and
probabilities, a GeoJSON FeatureCollection of region probabilities, and the
EXIF truth with its error (withheld with ``coarsen_km``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.serve.coarsen import Regions

__all__ = [
    "ANSWER_TOP_K",
    "CREDIBLE_LEVELS",
    "GEOJSON_MAX_FEATURES",
    "GEOJSON_MIN_PROB",
    "credible_records",
    "listed_count",
    "listed_geojson",
    "listed_regions",
    "region_feature",
    "round_coord",
    "top_k_records",
    "top_regions",
    "truth_record",
]

CREDIBLE_LEVELS = (0.5, 0.9, 0.95)
#: Regions the answer rules take their expectation over: ``trigeo predict``'s default top-k.
ANSWER_TOP_K = 20
#: Regions below this probability are left out of the response's GeoJSON
#: (unless they are in a credible region).
GEOJSON_MIN_PROB = 1e-4
GEOJSON_MAX_FEATURES = 2000


def round_coord(value: float, digits: int = 5) -> float:
    """A coordinate (or other float) as reported: rounded to ``digits`` decimals."""
    return float(round(float(value), digits))


def top_regions(p: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """The :data:`ANSWER_TOP_K` most probable regions of each row and their probabilities."""
    k = min(ANSWER_TOP_K, p.shape[1])
    part = np.argpartition(-p, k - 1, axis=1)[:, :k] if k < p.shape[1] else None
    if part is None:
        part = np.tile(np.arange(p.shape[1]), (len(p), 1))
    vals = np.take_along_axis(p, part, axis=1)
    # Most probable first, ties to the lower id: the top-cell rule's region is order[0].
    inner = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, inner, axis=1), np.take_along_axis(vals, inner, axis=1)


def credible_records(
    sets: list[tuple[float, int, float, bool]],
    order: NDArray[np.int64],
    cell_counts: NDArray[np.int64],
) -> list[dict[str, Any]]:
    """One photo's credible regions: ``(level, regions, area, complete)`` per level, with
    the mesh cells in the ``regions`` most probable regions (``order``)."""
    return [
        {
            "level": level,
            "regions": size,
            "cells": int(cell_counts[order[:size]].sum()),
            "area_km2": area,
            "complete": complete,
        }
        for level, size, area, complete in sets
    ]


def top_k_records(
    regions: Regions,
    p: NDArray[np.float64],
    order: NDArray[np.int64],
    top_k: int,
    place: Callable[[float, float], str],
) -> list[dict[str, Any]]:
    """The ``top_k`` most probable regions (at least one) with their nearest city."""
    top = []
    for rank, r in enumerate(order[: max(1, top_k)], start=1):
        lat, lon = float(regions.lat[r]), float(regions.lon[r])
        item: dict[str, Any] = {
            "rank": rank,
            "region": int(r),
            "probability": float(p[r]),
            "lat": round_coord(lat),
            "lon": round_coord(lon),
            "place": place(lat, lon),
        }
        if regions.coarsen_km is None:
            item["cell"] = int(regions.cells[r][0])
        else:
            item["cells"] = len(regions.cells[r])
            item["merged"] = bool(regions.merged[r])
        top.append(item)
    return top


def listed_count(sorted_p: NDArray[np.float64], credible: list[dict[str, Any]]) -> int:
    """How many of the most probable regions an answer lists.

    The listed regions are a prefix of the probability order: every region above
    the floor and every member of the widest credible set, so a client finds the
    90% set as the first ``credible_regions[1]["regions"]`` ids.
    """
    listed = max(int(np.count_nonzero(sorted_p >= GEOJSON_MIN_PROB)), credible[-1]["regions"])
    return min(max(listed, 1), GEOJSON_MAX_FEATURES)


def listed_regions(
    order: NDArray[np.int64], sorted_p: NDArray[np.float64], listed: int, total: int
) -> dict[str, Any]:
    """The answer's ``regions``: ids and probabilities of the ``listed`` most probable."""
    return {
        "id": order[:listed].tolist(),
        # 8 decimals: 4 significant digits at the 1e-4 floor, half the JSON of
        # full floats (the exact values of the top regions are in top_k).
        "probability": np.round(sorted_p[:listed], 8).tolist(),
        "total": total,
        "probability_listed": float(sorted_p[:listed].sum()),
    }


def truth_record(
    truth: tuple[float, float] | None, coarsen_km: float | None, a_lat: float, a_lon: float
) -> dict[str, Any] | None:
    """The EXIF truth and its distance from the answer point, withheld when coarsening."""
    from trigeo.sphere import distance_km

    if truth is None:
        return None
    if coarsen_km is not None:
        return {"withheld": True, "reason": "--coarsen-km: EXIF truth not echoed"}
    error = float(distance_km(truth[0], truth[1], a_lat, a_lon))
    return {
        "lat": round_coord(truth[0]),
        "lon": round_coord(truth[1]),
        "source": "EXIF GPS",
        "error_km": round(error, 3),
    }


def region_feature(
    regions: Regions,
    r: int,
    head: dict[str, Any] | None = None,
    tail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Region ``r`` as a GeoJSON feature: its geometry, label point and size, with an
    answer's own properties before (``head``) and after (``tail``) them."""
    return {
        "type": "Feature",
        "id": r,
        "geometry": regions.geometry[r],
        "properties": {
            "region": r,
            **(head or {}),
            "lat": round_coord(regions.lat[r]),
            "lon": round_coord(regions.lon[r]),
            "area_km2": float(regions.area_km2[r]),
            "cells": len(regions.cells[r]),
            "merged": bool(regions.merged[r]),
            **(tail or {}),
        },
    }


def listed_geojson(
    regions: Regions,
    p: NDArray[np.float64],
    listed: NDArray[np.int64],
    credible: list[dict[str, Any]],
) -> dict[str, Any]:
    """The listed regions with their geometry, for clients that ask (``geojson=true``)."""
    sizes = {c["level"]: c["regions"] for c in credible}
    features = [
        region_feature(
            regions,
            r,
            head={"probability": float(p[r]), "rank": rank},
            tail={f"in_credible_{round(100 * level)}": rank <= sizes[level] for level in sizes},
        )
        for rank, r in enumerate(listed.tolist(), start=1)
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "regions": len(regions),
            "shown": len(features),
            "probability_shown": float(p[listed].sum()),
        },
    }
