"""Exact point location: the fast path equals brute force, ties go to the lowest index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigeo.mesh import DelaunayMesh, TriangleLocator, _kernels, locate_brute_force
from trigeo.mesh.delaunay import _hull_triangles
from trigeo.mesh.locate import contains_exact, edge_normals, orient_exact
from trigeo.sphere import latlng_to_xyz, xyz_to_latlng

latitudes = st.floats(-90, 90, allow_nan=False, allow_infinity=False)
longitudes = st.floats(-180, 180, allow_nan=False, allow_infinity=False)


@pytest.fixture(params=["compiled", "numpy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the numba kernels and with the pure-numpy fallback."""
    if request.param == "compiled":
        if not _kernels.HAVE_NUMBA:
            pytest.skip("numba not installed")
    else:
        monkeypatch.setattr(_kernels, "HAVE_NUMBA", False)
    return request.param


def containing(mesh: DelaunayMesh, lat: float, lon: float) -> list[int]:
    """Every triangle that contains the point under the exact predicate."""
    xyz = mesh.vertices_xyz_
    tri = mesh.triangles_
    p = np.repeat(latlng_to_xyz(lat, lon)[None, :], len(tri), axis=0)
    inside = contains_exact(xyz, tri, edge_normals(xyz, tri), np.arange(len(tri)), p)
    return np.flatnonzero(inside).tolist()


def special_points(mesh: DelaunayMesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices, edge midpoints, poles, the antimeridian and the equator."""
    xyz = mesh.vertices_xyz_
    tri = mesh.triangles_
    mid_lat, mid_lon = xyz_to_latlng(xyz[tri[:, 0]] + xyz[tri[:, 1]])
    grid = np.linspace(-90, 90, 361)
    lat = np.concatenate(
        [mesh.vertices_[:, 0], mid_lat, [90, -90, 90, -90, 90], grid, grid, np.zeros(721)]
    )
    lon = np.concatenate(
        [
            mesh.vertices_[:, 1],
            mid_lon,
            [0, 0, 180, -180, 33.3],
            np.full(361, 180.0),
            np.full(361, -180.0),
            np.linspace(-180, 180, 721),
        ]
    )
    return lat, lon


def test_special_points_match_brute_force(mesh: DelaunayMesh, path: str) -> None:
    lat, lon = special_points(mesh)
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    fast = locator.locate(lat, lon)
    brute = locate_brute_force(mesh.vertices_xyz_, mesh.triangles_, latlng_to_xyz(lat, lon))
    assert (brute >= 0).all()
    np.testing.assert_array_equal(fast, brute)


def test_vertex_goes_to_lowest_incident_triangle(mesh: DelaunayMesh, path: str) -> None:
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    got = locator.locate(mesh.vertices_[:, 0], mesh.vertices_[:, 1])
    used = np.unique(mesh.triangles_)
    lowest = np.full(len(mesh.vertices_), np.iinfo(np.int64).max)
    np.minimum.at(lowest, mesh.triangles_.ravel(), np.repeat(np.arange(len(mesh.triangles_)), 3))
    np.testing.assert_array_equal(got[used], lowest[used])


def test_exact_edge_ties_use_lowest_index(path: str) -> None:
    # An octahedron has its edges on the equator and on the 0° meridian, where the
    # unit vectors have exact zero components: such points lie EXACTLY on an edge.
    corners = np.array(
        [[0.0, 0.0], [0.0, 90.0], [0.0, 180.0], [0.0, -90.0], [90.0, 0.0], [-90.0, 0]]
    )
    xyz = latlng_to_xyz(corners[:, 0], corners[:, 1])
    tri = _hull_triangles(xyz)
    assert len(tri) == 8
    locator = TriangleLocator(xyz, tri)
    lat = np.concatenate([np.zeros(73), np.linspace(-89.5, 89.5, 73), corners[:, 0]])
    lon = np.concatenate([np.linspace(-180, 180, 73), np.zeros(73), corners[:, 1]])
    got = locator.locate(lat, lon)
    brute = locate_brute_force(xyz, tri, latlng_to_xyz(lat, lon))
    np.testing.assert_array_equal(got, brute)
    normals = edge_normals(xyz, tri)
    n_ties = 0
    for g, p in zip(got, latlng_to_xyz(lat, lon), strict=True):
        hits = np.flatnonzero(
            contains_exact(xyz, tri, normals, np.arange(8), np.repeat(p[None], 8, axis=0))
        )
        assert g == hits.min()
        n_ties += len(hits) >= 2
    assert n_ties >= 140  # nearly every test point is on an edge or a vertex


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(latitudes, longitudes), min_size=1, max_size=40))
def test_random_points_match_brute_force(mesh: DelaunayMesh, pts: list) -> None:
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    fast = mesh.locate_triangle(lat, lon)
    brute = locate_brute_force(mesh.vertices_xyz_, mesh.triangles_, latlng_to_xyz(lat, lon))
    np.testing.assert_array_equal(fast, brute)


@settings(max_examples=40, deadline=None)
@given(latitudes, longitudes)
def test_every_point_in_exactly_one_triangle(mesh: DelaunayMesh, lat: float, lon: float) -> None:
    hits = containing(mesh, lat, lon)
    assert hits, "the triangles leave a gap"
    if len(hits) > 1:
        # Only a point exactly on an edge or vertex may be in several triangles.
        xyz = mesh.vertices_xyz_
        p = latlng_to_xyz(lat, lon)
        for t in hits:
            tri = mesh.triangles_[t]
            signs = [orient_exact(xyz[tri[e]], xyz[tri[(e + 1) % 3]], p) for e in range(3)]
            assert 0 in signs
    assert mesh.locate_triangle(lat, lon) == min(hits)


def test_numpy_and_compiled_paths_agree(mesh: DelaunayMesh, monkeypatch) -> None:
    if not _kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(0)
    lat = np.clip(rng.normal(45, 10, 50_000), -90, 90)
    lon = rng.uniform(-180, 180, 50_000)
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    compiled = locator.locate(lat, lon)
    monkeypatch.setattr(_kernels, "HAVE_NUMBA", False)
    np.testing.assert_array_equal(compiled, locator.locate(lat, lon))


def test_orient_exact_sees_what_floats_miss() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 0.0])
    assert orient_exact(a, b, np.array([0.0, 0.0, 1.0])) == 1
    assert orient_exact(a, b, np.array([0.0, 0.0, -1e-300])) == -1
    assert orient_exact(a, b, np.array([0.3, 0.4, 0.0])) == 0
    normals = edge_normals(np.vstack([a, b, [0, 0, 1.0]]), np.array([[0, 1, 2]]))
    assert normals.shape == (1, 3, 3)


def test_every_leaf_record_kind_matches_brute_force(mesh: DelaunayMesh) -> None:
    """Points in edge, fan and general leaf records all get the brute-force answer."""
    if not _kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    # A shallow raster keeps many-candidate cells, so every record kind occurs.
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_, max_depth=1, leaf_size=2)
    data = locator._leaf_data
    rng = np.random.default_rng(3)
    special_lat, special_lon = special_points(mesh)
    lat = np.concatenate([rng.normal(48.85, 1.0, 4000), rng.uniform(-90, 90, 2000), special_lat])
    lat = np.clip(lat, -90, 90)
    lon = np.concatenate([rng.normal(2.35, 1.5, 4000), rng.uniform(-180, 180, 2000), special_lon])
    got = locator.locate(lat, lon)
    want = locate_brute_force(mesh.vertices_xyz_, mesh.triangles_, latlng_to_xyz(lat, lon))
    np.testing.assert_array_equal(got, want)
    # Which record each point used: the numpy path walks the same raster.
    codes = locator._codes_compiled
    row = np.clip(((lat + 90.0) * locator._inv_dlat[0]).astype(np.int64), 0, locator.n_lat0 - 1)
    col = np.clip(((lon + 180.0) * locator._inv_dlon[0]).astype(np.int64), 0, locator.n_lon0 - 1)
    root = codes[row * locator.n_lon0 + col]
    heads = -2 - root[(root <= -2) & (root > -2 - data.size)]
    kinds = set(np.sign(data[heads] + 1).tolist())  # -1 fan, 0 edge, 1 general
    assert kinds == {-1, 0, 1}


def test_threads_give_the_same_answer(mesh: DelaunayMesh, monkeypatch) -> None:
    from trigeo.mesh import locate as locate_module

    rng = np.random.default_rng(1)
    lat = np.clip(rng.normal(40, 20, 30_000), -90, 90)
    lon = rng.uniform(-180, 180, 30_000)
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    one = locator.locate(lat, lon)
    monkeypatch.setattr(locate_module, "_CHUNK", 7_000)  # several slices per thread
    np.testing.assert_array_equal(locator.locate(lat, lon, threads=2), one)
    np.testing.assert_array_equal(mesh.locate(lat, lon, threads=3), mesh.cell_of_triangle_[one])
    with pytest.raises(ValueError, match="threads"):
        locator.locate(lat, lon, threads=0)


def test_factor_must_be_a_power_of_two(mesh: DelaunayMesh) -> None:
    with pytest.raises(ValueError, match="power of two"):
        TriangleLocator(mesh.vertices_xyz_, mesh.triangles_, factor=6)


def test_locator_rejects_points_that_are_not_coordinates(mesh: DelaunayMesh) -> None:
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    with pytest.raises(ValueError, match="point 1 "):
        locator.locate([10.0, np.nan], [0.0, 0.0])
    with pytest.raises(ValueError, match="point 0 "):
        locator.locate([0.0], [181.0])
    with pytest.raises(ValueError, match="differ in size"):
        locator.locate([0.0, 1.0], [0.0])


def test_too_deep_raster_is_refused(mesh: DelaunayMesh) -> None:
    with pytest.raises(ValueError, match="2\\*\\*31"):
        TriangleLocator(mesh.vertices_xyz_, mesh.triangles_, factor=8, max_depth=8)


def test_threaded_locate_works_in_a_forked_child(mesh: DelaunayMesh) -> None:
    """A child forked after the pool started must not wait on the parent's threads."""
    import multiprocessing

    lat = np.linspace(-80, 80, 20_000)
    lon = np.linspace(-170, 170, 20_000)
    want = mesh.locate(lat, lon, threads=2)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        queue.put(bool((mesh.locate(lat, lon, threads=2) == want).all()))

    process = context.Process(target=child)
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
        pytest.fail("threaded locate hung in a forked child")
    assert process.exitcode == 0
    assert queue.get(timeout=5)
