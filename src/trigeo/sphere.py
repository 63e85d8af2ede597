"""Geometry on the unit sphere: coordinates, distances, areas and means.

Only numpy. Latitudes and longitudes are in degrees throughout; unit vectors
are ``(..., 3)`` float64 arrays with x towards (0°N, 0°E), z towards the
north pole.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Earth radius in km used by the reference study (and by default everywhere).
EARTH_RADIUS_KM = 6372.795

#: The study's accuracy thresholds (km): every table, metric and finding uses these.
STUDY_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)

#: Surface area of the sphere of radius ``EARTH_RADIUS_KM`` in km².
EARTH_AREA_KM2 = 4.0 * np.pi * EARTH_RADIUS_KM**2

__all__ = [
    "EARTH_AREA_KM2",
    "EARTH_RADIUS_KM",
    "STUDY_THRESHOLDS_KM",
    "distance_km",
    "latlng_to_xyz",
    "mean_position",
    "triangle_area",
    "wrap_longitude",
    "xyz_to_latlng",
]


def latlng_to_xyz(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.float64]:
    """Convert latitude/longitude in degrees to unit vectors of shape ``(..., 3)``."""
    lat_rad = np.radians(np.asarray(lat, dtype=np.float64))
    lon_rad = np.radians(np.asarray(lon, dtype=np.float64))
    cos_lat = np.cos(lat_rad)
    return np.stack(
        [cos_lat * np.cos(lon_rad), cos_lat * np.sin(lon_rad), np.sin(lat_rad)], axis=-1
    )


def xyz_to_latlng(xyz: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Convert vectors of shape ``(..., 3)`` (any non-zero length) to lat/lon in degrees.

    Uses ``atan2`` for both angles so that points near the poles keep full precision.
    Longitudes are in ``(-180, 180]``.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def wrap_longitude(lon: ArrayLike) -> NDArray[np.float64]:
    """Wrap longitudes in degrees into ``[-180, 180)``."""
    lon = np.asarray(lon, dtype=np.float64)
    return (lon + 180.0) % 360.0 - 180.0


def distance_km(
    lat1: ArrayLike,
    lon1: ArrayLike,
    lat2: ArrayLike,
    lon2: ArrayLike,
    radius_km: float = EARTH_RADIUS_KM,
) -> NDArray[np.float64]:
    """Great-circle distance in km, broadcasting over the inputs.

    The study writes the distance in arccos form, which loses metres at short
    range; the haversine form used here is exact to rounding for all ranges
    below antipodal, and we clip its argument so antipodes stay finite.

    Parameters
    ----------
    lat1, lon1, lat2, lon2
        Coordinates in degrees.
    radius_km
        Sphere radius; the default is the study's 6372.795 km.
    """
    phi1 = np.radians(np.asarray(lat1, dtype=np.float64))
    phi2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    h = np.sin(dphi / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2.0) ** 2
    return 2.0 * radius_km * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def triangle_area(a: ArrayLike, b: ArrayLike, c: ArrayLike) -> NDArray[np.float64]:
    """Area (steradians) of spherical triangles with unit-vector corners.

    Uses the Van Oosterom–Strackee formula ``tan(E/2) = |a·(b×c)| /
    (1 + a·b + b·c + c·a)``, which stays accurate for tiny triangles where the
    angle-sum formula cancels catastrophically. Multiply by ``radius**2`` for km².
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    triple = np.abs(np.einsum("...i,...i->...", a, np.cross(b, c)))
    denom = (
        1.0
        + np.einsum("...i,...i->...", a, b)
        + np.einsum("...i,...i->...", b, c)
        + np.einsum("...i,...i->...", c, a)
    )
    return 2.0 * np.arctan2(triple, denom)


def mean_position(
    lat: ArrayLike, lon: ArrayLike, weights: ArrayLike | None = None
) -> tuple[float, float]:
    """Mean position of points on the sphere (normalized mean of unit vectors).

    Averaging unit vectors rather than degrees keeps clusters that straddle
    the antimeridian (e.g. Fiji) in place instead of sending them to 0°E.

    Raises
    ------
    ValueError
        If there are no points, or they cancel out (e.g. two antipodes).
    """
    xyz = latlng_to_xyz(lat, lon).reshape(-1, 3)
    if len(xyz) == 0:
        raise ValueError("mean_position needs at least one point")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    total = xyz.sum(axis=0) if w is None else (xyz * w[:, None]).sum(axis=0)
    norm = np.linalg.norm(total)
    if norm < 1e-12 * max(len(xyz), 1):
        raise ValueError("points cancel out on the sphere; their mean position is undefined")
    mlat, mlon = xyz_to_latlng(total / norm)
    return float(mlat), float(mlon)
