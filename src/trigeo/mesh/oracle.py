"""Best possible accuracy of a mesh: every photo gets its true cell's label point.

The one implementation: ``trigeo mesh oracle`` and ``mesh compare`` report
percentages per threshold from :func:`located_accuracy`, and evaluation's
oracle rows (:mod:`trigeo.evaluate.oracle`) score the errors of
:func:`oracle_errors` with their own intervals and keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM, STUDY_THRESHOLDS_KM, distance_km

__all__ = [
    "STUDY_THRESHOLDS_KM",
    "located_accuracy",
    "oracle_accuracy",
    "oracle_errors",
    "oracle_report",
    "threshold_key",
]

#: Thresholds (km) the study reports accuracy at.


def threshold_key(threshold: float) -> str:
    """A threshold's key in this module's reports: ``25`` for 25.0 km, ``0.5`` for 0.5 km."""
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
    return located_accuracy(mesh, lat, lon, mesh.locate(lat, lon), thresholds_km, label)


def oracle_errors(
    mesh: Any,
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    cells: NDArray[np.int64],
    label: str = "cell",
    radius_km: float = EARTH_RADIUS_KM,
) -> NDArray[np.float64]:
    """Distance (km) from each photo in a kept cell to its own cell's label point.

    ``cells`` are the photos' cells in ``mesh`` (-1 outside kept cells, whose
    photos have no class and are left out); the errors keep the photos' order.
    ``label`` is ``"cell"`` or ``"imagery"``; ``radius_km`` the Earth's radius.
    """
    kept = cells >= 0
    label_lat, label_lon = mesh.centroids(label)
    return distance_km(
        lat[kept],
        lon[kept],
        np.asarray(label_lat)[cells[kept]],
        np.asarray(label_lon)[cells[kept]],
        radius_km=radius_km,
    )


def located_accuracy(
    mesh: Any,
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    cells: NDArray[np.int64],
    thresholds_km: Sequence[float],
    label: str,
) -> dict[str, float]:
    """:func:`oracle_accuracy` for points already located in ``cells``."""
    dist = oracle_errors(mesh, lat, lon, cells, label)
    out = {}
    for threshold in thresholds_km:
        out[threshold_key(threshold)] = (
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
        "cell_centroid": located_accuracy(mesh, lat, lon, cells, thresholds_km, "cell"),
        "imagery_centroid": located_accuracy(mesh, lat, lon, cells, thresholds_km, "imagery"),
    }
