"""The kNN rule on hand-worked neighbours and against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.errors import InputError
from trigeo.retrieve.knn import knn_locate
from trigeo.sphere import distance_km, latlng_to_xyz, xyz_to_latlng


def reference_knn(lat, lon, dist, radius_km):
    """One query at a time, written out plainly: weights, supports, densest cluster, mean."""
    out = []
    for la, lo, d in zip(lat, lon, dist, strict=True):
        ok = np.isfinite(d)
        la, lo, d = la[ok], lo[ok], d[ok]
        w = 1.0 / (d + 1e-6)
        support = [
            sum(w[j] for j in range(len(d)) if distance_km(la[i], lo[i], la[j], lo[j]) <= radius_km)
            for i in range(len(d))
        ]
        centre = int(np.argmax(support))
        members = [
            j
            for j in range(len(d))
            if distance_km(la[centre], lo[centre], la[j], lo[j]) <= radius_km
        ]
        xyz = sum(w[j] * latlng_to_xyz(la[j], lo[j]) for j in members)
        out.append(tuple(float(v) for v in xyz_to_latlng(xyz / np.linalg.norm(xyz))))
    return np.array(out)


def test_hand_worked_majority_cluster_wins_over_nearer_outlier():
    # Nearest neighbour in Tokyo, then three in Paris: Paris holds more weight.
    lat = [[35.68, 48.85, 48.86, 48.84]]
    lon = [[139.7, 2.35, 2.36, 2.34]]
    dist = [[1.0, 2.0, 2.0, 2.0]]
    got_lat, got_lon, size = knn_locate(lat, lon, dist, radius_km=50)
    # Paris supports: 3 * 1/2 = 1.5 > Tokyo 1.0. Equal weights: the plain spherical mean.
    assert size[0] == 3
    assert got_lat[0] == pytest.approx(48.85, abs=1e-3)
    assert got_lon[0] == pytest.approx(2.35, abs=1e-3)
    # With the Tokyo neighbour four times nearer, it outweighs the Paris three.
    got_lat, got_lon, size = knn_locate(lat, lon, [[0.25, 2.0, 2.0, 2.0]], radius_km=50)
    assert size[0] == 1 and (got_lat[0], got_lon[0]) == pytest.approx((35.68, 139.7))


def test_antimeridian_cluster_stays_put_and_missing_neighbours_are_ignored():
    lat = [[-17.8, -17.7, -17.9, 51.5]]
    lon = [[179.9, -179.9, 179.8, 0.0]]
    dist = [[1.0, 1.0, 1.0, np.inf]]
    got_lat, got_lon, size = knn_locate(lat, lon, dist, radius_km=100)
    assert size[0] == 3 and got_lat[0] == pytest.approx(-17.8, abs=0.01)
    assert abs(abs(got_lon[0]) - 179.93) < 0.05
    with pytest.raises(InputError, match="no neighbour"):
        knn_locate([[1.0]], [[1.0]], [[np.inf]])
    with pytest.raises(InputError, match="--cluster-km must be positive"):
        knn_locate([[1.0]], [[1.0]], [[1.0]], radius_km=0)


def test_vectorised_rule_equals_plain_reference(rng):
    n, k = 40, 8
    centres = rng.uniform([-50, -170], [60, 170], (n, 2))
    lat = centres[:, :1] + rng.normal(0, 0.5, (n, k)) * (rng.random((n, k)) < 0.6)
    lat = np.where(rng.random((n, k)) < 0.3, rng.uniform(-60, 60, (n, k)), lat)
    lon = centres[:, 1:] + rng.normal(0, 0.5, (n, k))
    dist = np.sort(rng.uniform(0.5, 3.0, (n, k)), axis=1)
    dist[::7, -2:] = np.inf
    got_lat, got_lon, _ = knn_locate(lat, lon, dist, radius_km=120)
    want = reference_knn(lat, lon, dist, 120)
    assert distance_km(got_lat, got_lon, want[:, 0], want[:, 1]).max() < 1e-6
