"""``--coarsen-km K``: report regions, not points.

The K-km grid
-------------
Rows are ``dlat = K / KM_PER_DEGREE`` degrees of latitude apart
(``KM_PER_DEGREE = R * pi / 180`` with trigeo's R = 6372.795 km, so 111.226 km).
A latitude is rounded to the nearest row, ``lat_r = round(lat / dlat) * dlat``
(clipped to ±90°). The row at ``lat_r`` is cut into
``n = max(1, floor(360 * cos(lat_r) * KM_PER_DEGREE / K))`` columns of
``dlon = 360 / n`` degrees, so a square is about K km wide at every latitude,
and a longitude is rounded to the nearest column centre
``lon_r = round(lon / dlon) * dlon`` (wrapped to [-180, 180)). Near a pole
``n`` is 1 and every longitude reports 0.

Regions
-------
A cell at least K km across (its longest great-circle edge) is reported as it
is, with its label point rounded to the grid. Cells smaller than that are
merged, with every other small cell whose label point falls in the same grid
square, into that square: their probabilities add up, the square's centre is
the reported point, the square itself is the drawn region and its area the
reported area. Without coarsening every cell is its own region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM

__all__ = ["KM_PER_DEGREE", "Regions", "build_regions", "grid_square", "round_to_grid"]

KM_PER_DEGREE = EARTH_RADIUS_KM * np.pi / 180.0


def _grid(lat: NDArray, lon: NDArray, km: float) -> tuple[NDArray, ...]:
    dlat = km / KM_PER_DEGREE
    row = np.round(lat / dlat)
    lat_r = np.clip(row * dlat, -90.0, 90.0)
    cols = np.maximum(
        1, np.floor(360.0 * np.cos(np.radians(lat_r)) * KM_PER_DEGREE / km + 1e-9)
    ).astype(np.int64)
    dlon = 360.0 / cols
    col = np.mod(np.round(lon / dlon), cols).astype(np.int64)
    lon_r = col * dlon
    lon_r = np.where(lon_r >= 180.0, lon_r - 360.0, lon_r)
    return lat_r, lon_r, row.astype(np.int64), col, dlat, dlon


def round_to_grid(
    lat: ArrayLike, lon: ArrayLike, km: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Round coordinates to the K-km grid (module docstring)."""
    if not km > 0:
        raise ValueError(f"--coarsen-km must be positive, got {km}")
    la = np.asarray(lat, dtype=np.float64)
    lo = np.asarray(lon, dtype=np.float64)
    lat_r, lon_r, *_ = _grid(la, lo, km)
    return lat_r, lon_r


def grid_square(lat: float, lon: float, km: float) -> tuple[dict[str, Any], float, float, float]:
    """The grid square holding a point: (GeoJSON polygon, centre lat, centre lon, area km²)."""
    lat_r, lon_r, _, _, dlat, dlon = _grid(np.float64(lat), np.float64(lon), km)
    lat_r, lon_r, dlon = float(lat_r), float(lon_r), float(dlon)
    south, north = max(lat_r - dlat / 2, -90.0), min(lat_r + dlat / 2, 90.0)
    west, east = lon_r - dlon / 2, lon_r + dlon / 2
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    area = (
        EARTH_RADIUS_KM**2
        * np.radians(dlon)
        * (np.sin(np.radians(north)) - np.sin(np.radians(south)))
    )
    return {"type": "Polygon", "coordinates": [ring]}, lat_r, lon_r, float(area)


@dataclass
class Regions:
    """What a prediction reports: cells, or cells merged into grid squares.

    Attributes
    ----------
    cell_region : ndarray (K,)
        Region of each kept cell.
    lat, lon : ndarray (R,)
        Reported point of each region (rounded when coarsened).
    area_km2 : ndarray (R,)
    cells : list of ndarray
        The kept cells of each region.
    geometry : list of dict
        GeoJSON geometry of each region.
    merged : ndarray (R,) bool
        Whether a region is a grid square of merged small cells.
    coarsen_km : float or None
    """

    cell_region: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    area_km2: NDArray[np.float64]
    cells: list[NDArray[np.int64]]
    geometry: list[dict[str, Any]]
    merged: NDArray[np.bool_]
    coarsen_km: float | None = None

    def __len__(self) -> int:
        return len(self.lat)

    def probabilities(self, cell_probs: ArrayLike) -> NDArray[np.float64]:
        """Region probabilities: the sums of their cells' probabilities."""
        p = np.asarray(cell_probs, dtype=np.float64)
        return np.bincount(self.cell_region, weights=p, minlength=len(self))


def _cell_geometry(corners: NDArray[np.float64]) -> dict[str, Any]:
    """GeoJSON of one cell from its unit-vector corners (a triangle or an S2 cell)."""
    from trigeo.mesh.geojson import polygon_rings

    rings = polygon_rings(corners, max_step_deg=2.0)
    coords = [[[[round(x, 4), round(y, 4)] for x, y in ring]] for ring in rings]
    if len(coords) == 1:
        return {"type": "Polygon", "coordinates": coords[0]}
    return {"type": "MultiPolygon", "coordinates": coords}


def cell_diameters_km(mesh: Any) -> NDArray[np.float64]:
    """Longest great-circle edge of each kept cell, in km (either mesh kind)."""
    xyz = np.asarray(mesh.cell_corners_xyz())  # (K, 3, 3) triangles or (K, 4, 3) S2 cells
    longest = np.zeros(len(xyz))
    n = xyz.shape[1]
    for a in range(n):
        b = (a + 1) % n
        cos = np.clip(np.einsum("kd,kd->k", xyz[:, a], xyz[:, b]), -1.0, 1.0)
        longest = np.maximum(longest, np.arccos(cos) * EARTH_RADIUS_KM)
    return longest


def build_regions(
    mesh: Any, label_lat: ArrayLike, label_lon: ArrayLike, coarsen_km: float | None = None
) -> Regions:
    """The regions a server reports for a mesh (module docstring)."""
    label_lat = np.asarray(label_lat, dtype=np.float64)
    label_lon = np.asarray(label_lon, dtype=np.float64)
    n_cells = int(mesh.n_cells_)
    corners = np.asarray(mesh.cell_corners_xyz())
    areas = mesh.cell_areas_km2()
    if coarsen_km is None:
        return Regions(
            cell_region=np.arange(n_cells, dtype=np.int64),
            lat=label_lat.copy(),
            lon=label_lon.copy(),
            area_km2=np.asarray(areas, dtype=np.float64),
            cells=[np.array([c]) for c in range(n_cells)],
            geometry=[_cell_geometry(corners[c]) for c in range(n_cells)],
            merged=np.zeros(n_cells, dtype=bool),
        )
    if not coarsen_km > 0:
        raise ValueError(f"--coarsen-km must be positive, got {coarsen_km}")
    small = cell_diameters_km(mesh) < coarsen_km
    lat_r, lon_r, row, col, _, _ = _grid(label_lat, label_lon, coarsen_km)
    cell_region = np.full(n_cells, -1, dtype=np.int64)
    lat, lon, area, members, geometry, merged = [], [], [], [], [], []
    squares: dict[tuple[int, int], int] = {}
    for c in range(n_cells):
        if small[c]:
            key = (int(row[c]), int(col[c]))
            if key not in squares:
                polygon, s_lat, s_lon, s_area = grid_square(label_lat[c], label_lon[c], coarsen_km)
                squares[key] = len(lat)
                lat.append(s_lat)
                lon.append(s_lon)
                area.append(s_area)
                members.append([])
                geometry.append(polygon)
                merged.append(True)
            region = squares[key]
        else:
            region = len(lat)
            lat.append(float(lat_r[c]))
            lon.append(float(lon_r[c]))
            area.append(float(areas[c]))
            members.append([])
            geometry.append(_cell_geometry(corners[c]))
            merged.append(False)
        cell_region[c] = region
        members[region].append(c)
    return Regions(
        cell_region=cell_region,
        lat=np.asarray(lat),
        lon=np.asarray(lon),
        area_km2=np.asarray(area),
        cells=[np.asarray(m, dtype=np.int64) for m in members],
        geometry=geometry,
        merged=np.asarray(merged, dtype=bool),
        coarsen_km=float(coarsen_km),
    )
