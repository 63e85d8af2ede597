"""trigeo.sphere against independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trigeo.sphere import (
    EARTH_RADIUS_KM,
    distance_km,
    latlng_to_xyz,
    mean_position,
    triangle_area,
    wrap_longitude,
    xyz_to_latlng,
)

CITIES = {
    "london": (51.5074, -0.1278),
    "paris": (48.8566, 2.3522),
    "new_york": (40.7128, -74.0060),
    "los_angeles": (34.0522, -118.2437),
    "sydney": (-33.8688, 151.2093),
    "santiago": (-33.4489, -70.6693),
    "suva": (-18.1248, 178.4501),
    "apia": (-13.8333, -171.7667),
}


def vincenty_sphere_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the atan2 (Vincenty, sphere) formula: independent of haversine."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    num = math.hypot(
        math.cos(p2) * math.sin(dl),
        math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl),
    )
    den = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return EARTH_RADIUS_KM * math.atan2(num, den)


@pytest.mark.parametrize(
    ("a", "b", "rough_km"),
    [
        ("london", "paris", 343),
        ("new_york", "los_angeles", 3935),
        ("sydney", "santiago", 11340),
        ("suva", "apia", 1150),  # across the antimeridian
    ],
)
def test_city_distances(a: str, b: str, rough_km: float) -> None:
    got = float(distance_km(*CITIES[a], *CITIES[b]))
    assert got == pytest.approx(vincenty_sphere_km(*CITIES[a], *CITIES[b]), rel=1e-12)
    assert got == pytest.approx(rough_km, rel=0.01)


def test_short_distances_keep_precision() -> None:
    # One metre north along a meridian is exactly R * dphi on a sphere.
    dphi = 0.001 / EARTH_RADIUS_KM
    got = distance_km(45.0, 7.0, 45.0 + math.degrees(dphi), 7.0)
    assert got == pytest.approx(0.001, rel=1e-9)
    assert distance_km(10.0, 20.0, 10.0, 20.0) == 0.0
    antipode = distance_km(0.0, 0.0, 0.0, 180.0)
    assert antipode == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)


def test_distance_broadcasts() -> None:
    d = distance_km(np.zeros((3, 1)), np.zeros((3, 1)), np.zeros(4), np.arange(4.0))
    assert d.shape == (3, 4)


def test_octant_and_tiny_triangle_areas() -> None:
    octant = triangle_area([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0])
    assert octant == pytest.approx(math.pi / 2, rel=1e-15)
    # A right triangle with 1e-6 rad legs at the equator: the excess equals the
    # planar area (1/2)e-12 up to a relative O(1e-12) curvature term.
    eps = 1e-6
    a = latlng_to_xyz(0.0, 0.0)
    b = latlng_to_xyz(0.0, math.degrees(eps))
    c = latlng_to_xyz(math.degrees(eps), 0.0)
    assert triangle_area(a, b, c) == pytest.approx(0.5 * eps * eps, rel=1e-9)
    # The naive angle-sum formula loses everything here; this one keeps 9 digits.
    km2 = triangle_area(a, b, c) * EARTH_RADIUS_KM**2
    assert km2 == pytest.approx(0.5 * (eps * EARTH_RADIUS_KM) ** 2, rel=1e-9)


def test_xyz_round_trip_and_wrap() -> None:
    lat = np.array([-90.0, -45.5, 0.0, 33.3, 90.0])
    lon = np.array([0.0, -179.9, 179.9, 12.0, 0.0])
    back_lat, back_lon = xyz_to_latlng(latlng_to_xyz(lat, lon))
    np.testing.assert_allclose(back_lat, lat, atol=1e-12)
    np.testing.assert_allclose(back_lon[1:-1], lon[1:-1], atol=1e-12)
    np.testing.assert_allclose(wrap_longitude([190.0, -190.0, 540.0]), [-170.0, 170.0, -180.0])


def test_mean_position_across_antimeridian() -> None:
    lat, lon = mean_position([10.0, 10.0], [179.0, -179.0])
    assert abs(lon) == pytest.approx(180.0, abs=1e-9)
    assert lat == pytest.approx(10.0, abs=0.01)
    # Weighted: three times the weight pulls the mean towards that point.
    _, wlon = mean_position([0.0, 0.0], [10.0, 20.0], weights=[3.0, 1.0])
    assert 10.0 < wlon < 15.0
    with pytest.raises(ValueError, match="cancel"):
        mean_position([0.0, 0.0], [0.0, 180.0])
