"""Best possible accuracy of a mesh: every photo gets its true cell's label point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import distance_km

__all__ = ["STUDY_THRESHOLDS_KM", "oracle_accuracy", "oracle_report"]

#: Thresholds (km) the study reports accuracy at.
STUDY_THRESHOLDS_KM: tuple[float, ...] = (1, 25, 200, 750, 2500)


def _key(threshold: float) -> str:
    return str(int(threshold)) if float(threshold).is_integer() else str(threshold)


def oracle_accuracy(
    mesh: Any,
    lat: ArrayLike,
    lon: ArrayLike,
    thresholds_km: Sequence[float] = STUDY_THRESHOLDS_KM,
    label: str = "cell",
) -> dict[str, float]:
    """Percentage of photos within each threshold of their own cell's label point.

    Only photos in kept cells count (the study's definition); a photo in a
    dropped triangle has no class.

    Parameters
    ----------
    mesh
        A fitted (or loaded) mesh of either kind (Delaunay or quad-tree).
    lat, lon
        Photo coordinates in degrees.
    thresholds_km
        Distances in km.
    label
        ``"cell"`` (triangle centroid, S2 cell centre) or ``"imagery"`` (mean of
        the cell's training photos).

    Returns
    -------
    dict
        ``{"1": pct, "25": pct, ...}``, keys formatted without ``.0``; NaN
        percentages if no photo falls in a kept cell.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    return _accuracy(mesh, lat, lon, mesh.locate(lat, lon), thresholds_km, label)


def _accuracy(
    mesh: Any,
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    cells: NDArray[np.int64],
    thresholds_km: Sequence[float],
    label: str,
) -> dict[str, float]:
    """:func:`oracle_accuracy` for points already located in ``cells``."""
    kept = cells >= 0
    label_lat, label_lon = mesh.centroids(label)
    dist = distance_km(lat[kept], lon[kept], label_lat[cells[kept]], label_lon[cells[kept]])
    out = {}
    for threshold in thresholds_km:
        out[_key(threshold)] = (
            float(100.0 * np.mean(dist <= threshold)) if dist.size else float("nan")
        )
    return out


def oracle_report(
    mesh: Any,
    lat: ArrayLike,
    lon: ArrayLike,
    thresholds_km: Sequence[float] = STUDY_THRESHOLDS_KM,
) -> dict[str, Any]:
    """The ``trigeo mesh oracle --json`` document for both labels."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    # Locate once: both labels score the same cells.
    cells = mesh.locate(lat, lon)
    return {
        "cells": mesh.n_cells_,
        "points": int(lat.size),
        "points_in_kept_cells": int((cells >= 0).sum()),
        "cell_centroid": _accuracy(mesh, lat, lon, cells, thresholds_km, "cell"),
        "imagery_centroid": _accuracy(mesh, lat, lon, cells, thresholds_km, "imagery"),
    }
