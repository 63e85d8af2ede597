"""GeoJSON export of a mesh (triangles or S2 quad-tree leaves), drawn correctly by web maps.

Web maps join polygon corners with straight lines in longitude/latitude, so
each edge (a great-circle arc: triangle edges, and S2 cell edges too) is
densified, and a region that crosses the antimeridian is cut into pieces on
either side of it (a MultiPolygon). A region around a pole becomes a polygon
running along the antimeridian up to the pole, the usual way to draw a polar cap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.provenance import atomic_path
from trigeo.sphere import xyz_to_latlng

__all__ = ["mesh_to_geojson", "polygon_rings", "triangle_rings", "write_geojson"]


def _densify(corners: NDArray[np.float64], max_step_deg: float) -> NDArray[np.float64]:
    """Points along the great-circle edges (closed ring not repeated), (m, 3)."""
    out = []
    n = len(corners)
    for i in range(n):
        a, b = corners[i], corners[(i + 1) % n]
        angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b)))
        steps = max(1, int(np.ceil(angle / max_step_deg)))
        t = np.arange(steps)[:, None] / steps
        # Normalized linear interpolation stays on the great circle through a and b.
        seg = (1.0 - t) * a + t * b
        out.append(seg / np.linalg.norm(seg, axis=1, keepdims=True))
    return np.vstack(out)


def _clip(ring: list[tuple[float, float]], x: float, keep_greater: bool) -> list:
    """Sutherland-Hodgman clip of a lon/lat ring against the vertical line lon = x."""
    out: list[tuple[float, float]] = []
    n = len(ring)
    for i in range(n):
        cur, nxt = ring[i], ring[(i + 1) % n]
        cur_in = cur[0] >= x if keep_greater else cur[0] <= x
        nxt_in = nxt[0] >= x if keep_greater else nxt[0] <= x
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (x - cur[0]) / (nxt[0] - cur[0])
            out.append((x, cur[1] + t * (nxt[1] - cur[1])))
    return out


def polygon_rings(
    corners: NDArray[np.float64], max_step_deg: float = 1.0
) -> list[list[tuple[float, float]]]:
    """Lon/lat rings (closed, counter-clockwise) drawing one spherical polygon
    (a triangle or an S2 cell) from its unit-vector corners, counter-clockwise.

    More than one ring when the polygon crosses the antimeridian.
    """
    lat, lon = xyz_to_latlng(_densify(corners, max_step_deg))
    # A corner AT a pole has no longitude of its own: draw it as a segment of the
    # pole line between the longitudes of the points before and after it.
    at_pole = np.flatnonzero(np.abs(lat) > 90.0 - 1e-9)
    if at_pole.size:
        new_lat: list[float] = []
        new_lon: list[float] = []
        n = len(lat)
        pole_index = set(at_pole.tolist())
        for i in range(n):
            if i in pole_index:
                pole = 90.0 if lat[i] > 0 else -90.0
                new_lat += [pole, pole]
                new_lon += [lon[(i - 1) % n], lon[(i + 1) % n]]
            else:
                new_lat.append(lat[i])
                new_lon.append(lon[i])
        lat, lon = np.asarray(new_lat), np.asarray(new_lon)
    # Unwrap so consecutive longitudes differ by less than 180°.
    unwrapped = np.degrees(np.unwrap(np.radians(lon)))
    closing = unwrapped[0] - unwrapped[-1]
    winding = unwrapped[-1] - unwrapped[0] + (closing - 360.0 * np.round(closing / 360.0))
    ring = list(zip(unwrapped.tolist(), lat.tolist(), strict=True))
    if abs(winding) > 180.0:
        # The triangle holds a pole: close the ring along the pole's latitude.
        pole = 90.0 if winding > 0 else -90.0
        end = ring[0][0] + np.sign(winding) * 360.0
        ring = [*ring, (end, ring[0][1]), (end, pole), (ring[0][0], pole)]
    pieces = []
    lons = [p[0] for p in ring]
    for shift in range(-2, 3):
        lo, hi = min(lons) + 360.0 * shift, max(lons) + 360.0 * shift
        if hi <= -180.0 or lo >= 180.0:
            continue
        shifted = [(x + 360.0 * shift, y) for x, y in ring]
        piece = _clip(_clip(shifted, -180.0, True), 180.0, False)
        if len(piece) < 3:
            continue
        xs = np.array([p[0] for p in piece])
        ys = np.array([p[1] for p in piece])
        area = 0.5 * np.sum(xs * np.roll(ys, -1) - np.roll(xs, -1) * ys)
        if abs(area) < 1e-12:
            continue
        if area < 0:
            piece = piece[::-1]
        pieces.append([*piece, piece[0]])
    return pieces


#: The study's name for a Delaunay region, kept in the export for old readers.
triangle_rings = polygon_rings


def mesh_to_geojson(mesh: Any, max_step_deg: float = 1.0) -> dict[str, Any]:
    """A FeatureCollection with one feature per region (kept and dropped): a
    triangle of a ``DelaunayMesh`` or a leaf of a ``QuadtreeMesh``.

    Properties: the region's index under its name (``triangle`` or ``leaf``,
    plus ``s2_cell``, the hex token of a leaf), ``cell`` (None if dropped),
    ``kept``, ``count``, ``area_km2`` and, for kept cells, both label points.
    """
    regions = mesh.regions()
    cell_lat, cell_lon = mesh.centroids("cell")
    img_lat, img_lon = mesh.centroids("imagery")
    features = []
    for t, corners in enumerate(regions["corners"]):
        rings = polygon_rings(corners, max_step_deg)
        coords = [[[[round(x, 7), round(y, 7)] for x, y in ring]] for ring in rings]
        geometry = (
            {"type": "Polygon", "coordinates": coords[0]}
            if len(coords) == 1
            else {"type": "MultiPolygon", "coordinates": coords}
        )
        cell = int(regions["cell"][t])
        props: dict[str, Any] = {regions["name"]: t}
        if "ids" in regions:
            props["s2_cell"] = format(int(regions["ids"][t]), "016x").rstrip("0")
        props.update(
            {
                "cell": cell if cell >= 0 else None,
                "kept": bool(regions["kept"][t]),
                "count": int(regions["counts"][t]),
                "area_km2": float(regions["areas_km2"][t]),
            }
        )
        if cell >= 0:
            props["cell_centroid"] = [float(cell_lon[cell]), float(cell_lat[cell])]
            props["imagery_centroid"] = [float(img_lon[cell]), float(img_lat[cell])]
        features.append({"type": "Feature", "id": t, "geometry": geometry, "properties": props})
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {"mesh_hash": mesh.mesh_hash, "cells": mesh.n_cells_, "kind": mesh.kind},
    }


def write_geojson(mesh: Any, path: str | Path, max_step_deg: float = 1.0) -> Path:
    """Write :func:`mesh_to_geojson` to ``path`` atomically."""
    path = Path(path)
    document = mesh_to_geojson(mesh, max_step_deg)
    with atomic_path(path, suffix=".geojson") as tmp:
        tmp.write_text(json.dumps(document, separators=(",", ":")) + "\n", "utf-8")
    return path
