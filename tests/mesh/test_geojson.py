"""GeoJSON rings: split at the antimeridian, polar caps closed along the pole."""

from __future__ import annotations

import numpy as np

from trigeo.mesh.geojson import triangle_rings
from trigeo.sphere import latlng_to_xyz


def corners(*latlon: tuple[float, float]) -> np.ndarray:
    return latlng_to_xyz(np.array([p[0] for p in latlon]), np.array([p[1] for p in latlon]))


def lon_range(ring) -> tuple[float, float]:
    xs = [p[0] for p in ring]
    return min(xs), max(xs)


def test_plain_triangle_is_one_closed_ccw_ring() -> None:
    rings = triangle_rings(corners((0, 0), (0, 10), (10, 5)))
    assert len(rings) == 1
    ring = np.asarray(rings[0])
    assert (ring[0] == ring[-1]).all()
    x, y = ring[:-1, 0], ring[:-1, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # right-hand rule


def test_antimeridian_triangle_is_split() -> None:
    rings = triangle_rings(corners((10, 170), (10, -170), (20, 180)))
    assert sorted(lon_range(r) for r in rings) == [(-180.0, -170.0), (170.0, 180.0)]


def test_triangle_around_pole_reaches_the_pole() -> None:
    for sign in (1, -1):
        pts = [(80 * sign, 0), (80 * sign, 120), (80 * sign, -120)]
        rings = triangle_rings(corners(*(pts if sign > 0 else pts[::-1])))
        lats = [p[1] for r in rings for p in r]
        assert 90 * sign in lats
        covered = sorted(lon_range(r) for r in rings)
        assert covered[0][0] == -180.0 and covered[-1][1] == 180.0


def test_triangle_with_pole_corner_draws_meridians() -> None:
    rings = triangle_rings(corners((75, -180), (90, 0), (75, 168)))
    assert len(rings) == 1
    ring = np.asarray(rings[0])
    np.testing.assert_allclose(lon_range(rings[0]), (168.0, 180.0))
    at_pole = ring[ring[:, 1] == 90.0, 0]
    np.testing.assert_allclose(sorted(at_pole), [168.0, 180.0])
    rings = triangle_rings(corners((75, 175), (75, -175), (90, 0)))
    assert len(rings) == 2  # this one crosses the antimeridian
    for ring in rings:
        xs = np.asarray(ring)[:, 0]
        assert np.abs(np.diff(xs)).max() < 180
