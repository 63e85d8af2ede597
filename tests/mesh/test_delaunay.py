"""DelaunayMesh: construction, stop rule, presets, labels, save/load."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigeo import __version__
from trigeo.errors import ArtifactError, InputError
from trigeo.mesh import (
    MIN_PHOTOS_PER_CELL,
    PRESETS,
    DelaunayMesh,
    initial_grid,
    oracle_accuracy,
)
from trigeo.sphere import (
    EARTH_RADIUS_KM,
    distance_km,
    latlng_to_xyz,
    triangle_area,
    xyz_to_latlng,
)

from .conftest import clustered_points


def test_initial_grid_is_the_study_grid() -> None:
    v = initial_grid(31)
    assert v.shape == (31 * 31 + 2, 2)
    z = np.sin(np.radians(np.unique(v[:-2, 0])))
    np.testing.assert_allclose(np.diff(z), 2.0 / 31)  # uniform in sin(latitude)
    assert 0.0 in v[:, 0]  # the middle row is the equator
    mesh = DelaunayMesh(refinement_limit=10**9, minimum_examples=0).fit([0.0], [0.0])
    assert len(mesh.triangles_) == 2 * len(v) - 4  # a triangulation of the sphere
    areas = mesh.triangle_areas_km2()
    assert areas.max() / areas.min() < 1.7  # nearly equal-area triangles


def _check_triangulation(mesh: DelaunayMesh) -> None:
    xyz = mesh.vertices_xyz_
    t = mesh.triangles_
    a, b, c = xyz[t[:, 0]], xyz[t[:, 1]], xyz[t[:, 2]]
    assert (np.einsum("ij,ij->i", a, np.cross(b, c)) > 0).all()  # counter-clockwise
    total = triangle_area(a, b, c).sum()
    assert total == pytest.approx(4 * np.pi, rel=1e-12)
    # Each directed edge appears once and its reverse once: a closed surface.
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    keys = set(map(tuple, edges.tolist()))
    assert len(keys) == len(edges)
    assert all((b_, a_) in keys for a_, b_ in keys)


def test_refined_mesh_is_a_triangulation(mesh: DelaunayMesh) -> None:
    _check_triangulation(mesh)


@settings(max_examples=8, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=20, max_value=400),
    st.integers(min_value=200, max_value=2000),
)
def test_areas_sum_to_sphere_and_counts_respect_limit(seed: int, limit: int, n: int) -> None:
    lat, lon = clustered_points(n, seed)
    mesh = DelaunayMesh(refinement_limit=limit, minimum_examples=3, min_area_km2=1.0).fit(lat, lon)
    _check_triangulation(mesh)
    assert mesh.counts_.sum() == n
    over = mesh.counts_ > limit
    # A triangle may stay over the limit only if it cannot usefully split.
    xyz = mesh.vertices_xyz_
    t = mesh.triangles_[over]
    areas = triangle_area(xyz[t[:, 0]], xyz[t[:, 1]], xyz[t[:, 2]]) * EARTH_RADIUS_KM**2
    tri_of = mesh.locate_triangle(lat, lon)
    for tri, area in zip(np.flatnonzero(over), areas, strict=True):
        inside = tri_of == tri
        same = np.unique(np.column_stack([lat[inside], lon[inside]]), axis=0)
        assert area < 1.0 or len(same) == 1


def test_identical_coordinates_stop_refinement() -> None:
    lat = np.concatenate([np.full(3000, 41.8902), np.linspace(-60, 60, 50)])
    lon = np.concatenate([np.full(3000, 12.4922), np.linspace(-170, 170, 50)])
    mesh = DelaunayMesh(refinement_limit=100, minimum_examples=5).fit(lat, lon)
    cell = mesh.locate([41.8902], [12.4922])[0]
    assert cell >= 0
    assert mesh.counts_[mesh.cell_triangles_[cell]] == 3000
    assert mesh.n_unsplittable_ == 1
    assert mesh.n_rounds_ == 0  # the stack is alone in its triangle from the start


def test_kept_cells_numbered_and_dropped_points(mesh: DelaunayMesh, points) -> None:
    lat, lon = points
    assert mesh.n_cells_ == mesh.kept_.sum()
    np.testing.assert_array_equal(mesh.cell_triangles_, np.flatnonzero(mesh.kept_))
    assert (mesh.counts_[mesh.kept_] >= mesh.minimum_examples).all()
    assert (mesh.counts_[~mesh.kept_] < mesh.minimum_examples).all()
    cells = mesh.locate(lat, lon)
    assert cells.min() >= -1 and cells.max() == mesh.n_cells_ - 1
    assert (cells >= 0).sum() == mesh.n_points_kept_ == mesh.counts_[mesh.kept_].sum()


def test_imagery_centroid_is_mean_unit_vector(mesh: DelaunayMesh, points) -> None:
    lat, lon = points
    cells = mesh.locate(lat, lon)
    img_lat, img_lon = mesh.centroids("imagery")
    for cell in np.unique(cells[cells >= 0])[:25]:
        v = latlng_to_xyz(lat[cells == cell], lon[cells == cell]).mean(axis=0)
        expect = latlng_to_xyz(img_lat[cell], img_lon[cell])
        np.testing.assert_allclose(v / np.linalg.norm(v), expect, atol=1e-12)
    # The antimeridian cluster's imagery centroid stays near ±180°, not at 0°.
    cell = mesh.locate([-17.7], [179.9])[0]
    assert abs(img_lon[cell]) > 175


def test_cell_centroid_inside_its_cell(mesh: DelaunayMesh) -> None:
    cell_lat, cell_lon = mesh.centroids("cell")
    np.testing.assert_array_equal(mesh.locate(cell_lat, cell_lon), np.arange(mesh.n_cells_))
    areas = mesh.cell_areas_km2()
    assert areas.shape == (mesh.n_cells_,) and (areas > 0).all()
    with pytest.raises(InputError):
        mesh.centroids("median")


def test_oracle_accuracy_matches_direct_computation(mesh: DelaunayMesh, points) -> None:
    lat, lon = points
    acc = oracle_accuracy(mesh, lat, lon, (1, 25, 200.5), "imagery")
    cells = mesh.locate(lat, lon)
    ok = cells >= 0
    ilat, ilon = mesh.centroids("imagery")
    d = distance_km(lat[ok], lon[ok], ilat[cells[ok]], ilon[cells[ok]])
    assert acc == {
        "1": 100 * np.mean(d <= 1),
        "25": 100 * np.mean(d <= 25),
        "200.5": 100 * np.mean(d <= 200.5),
    }
    cell_acc = oracle_accuracy(mesh, lat, lon, (25,), "cell")
    assert cell_acc["25"] < acc["25"]  # the imagery centroid is the better label


def test_fill_keeps_triangulation(mesh: DelaunayMesh, points) -> None:
    lat, lon = points
    copy = DelaunayMesh(**mesh.get_params())
    copy.vertices_, copy.triangles_ = mesh.vertices_.copy(), mesh.triangles_.copy()
    copy.fill(np.concatenate([lat, lat]), np.concatenate([lon, lon]))
    np.testing.assert_array_equal(copy.counts_, 2 * mesh.counts_)
    np.testing.assert_array_equal(copy.kept_, 2 * mesh.counts_ >= mesh.minimum_examples)
    # Doubling every photo leaves each mean position where it was.
    kept_before = mesh.kept_[copy.kept_]
    same = np.flatnonzero(copy.kept_)[kept_before]
    np.testing.assert_allclose(
        copy.imagery_centroids_[copy.cell_of_triangle_[same]],
        mesh.imagery_centroids_[mesh.cell_of_triangle_[same]],
        atol=1e-9,
    )


def test_presets_and_scaling() -> None:
    assert PRESETS == {
        "coarse": (8000, 1000, 2_000_000),
        "fine": (5000, 500, 14_000_000),
        "fineP": (10000, 50, 14_000_000),
    }
    fine = DelaunayMesh.from_preset("fine")
    assert (fine.refinement_limit, fine.minimum_examples) == (5000, 500)
    scaled = DelaunayMesh.from_preset("fineP", scale_to=140_000)
    assert scaled.refinement_limit == pytest.approx(100)
    assert scaled.minimum_examples == pytest.approx(0.5)
    coarse = DelaunayMesh.from_preset("coarse", scale_to=100_000)
    assert (coarse.refinement_limit, coarse.minimum_examples) == (400, 50)
    with pytest.raises(InputError, match="unknown mesh preset"):
        DelaunayMesh.from_preset("medium")


def test_presets_on_clustered_data() -> None:
    lat, lon = clustered_points(40_000, seed=3)
    meshes = {
        name: DelaunayMesh.from_preset(name, scale_to=lat.size).fit(lat, lon) for name in PRESETS
    }
    # Finer limits give more cells; fineP keeps small cells (minimum 50 vs 500).
    assert meshes["coarse"].n_cells_ < meshes["fineP"].n_cells_ < meshes["fine"].n_cells_
    for mesh in meshes.values():
        assert (mesh.counts_[mesh.kept_] >= mesh.minimum_examples).all()
    # Scaling makes the cell count nearly independent of the sample size.
    half = DelaunayMesh.from_preset("coarse", scale_to=lat.size // 2).fit(lat[::2], lon[::2])
    assert abs(half.n_cells_ - meshes["coarse"].n_cells_) <= 0.25 * meshes["coarse"].n_cells_


def test_save_load_round_trip(mesh: DelaunayMesh, points, tmp_path) -> None:
    path = mesh.save(tmp_path / "m.npz")
    loaded = DelaunayMesh.load(path)
    assert loaded.mesh_hash == mesh.mesh_hash
    assert loaded.get_params() == mesh.get_params()
    for name in ("vertices_", "triangles_", "counts_", "kept_", "imagery_centroids_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(mesh, name))
    lat, lon = points
    np.testing.assert_array_equal(loaded.locate(lat, lon), mesh.locate(lat, lon))
    for kind in ("cell", "imagery"):
        for a, b in zip(loaded.centroids(kind), mesh.centroids(kind), strict=True):
            np.testing.assert_array_equal(a, b)
    assert loaded.provenance_["trigeo_version"] == __version__
    assert loaded.points_hash_ == mesh.points_hash_
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp files left


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**31), st.integers(50, 400))
def test_save_load_round_trip_property(tmp_path_factory, seed: int, n: int) -> None:
    lat, lon = clustered_points(n, seed)
    mesh = DelaunayMesh(refinement_limit=40, minimum_examples=2).fit(lat, lon)
    path = mesh.save(tmp_path_factory.mktemp("rt") / "m.npz")
    loaded = DelaunayMesh.load(path)
    assert loaded.mesh_hash == mesh.mesh_hash
    np.testing.assert_array_equal(loaded.vertices_, mesh.vertices_)
    np.testing.assert_array_equal(loaded.imagery_centroids_, mesh.imagery_centroids_)


def _rewrite_meta(src, dst, **changes) -> None:
    with np.load(src) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta.update(changes)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(dst, **arrays)


def test_load_rejects_bad_files(mesh: DelaunayMesh, tmp_path) -> None:
    good = mesh.save(tmp_path / "good.npz")
    with pytest.raises(ArtifactError, match="does not exist"):
        DelaunayMesh.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ArtifactError, match="not a readable mesh"):
        DelaunayMesh.load(tmp_path / "junk.npz")
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ArtifactError):
        DelaunayMesh.load(truncated)
    _rewrite_meta(good, tmp_path / "future.npz", format_version=99)
    with pytest.raises(ArtifactError, match="format version 99"):
        DelaunayMesh.load(tmp_path / "future.npz")
    _rewrite_meta(good, tmp_path / "other.npz", format="something.else")
    with pytest.raises(ArtifactError, match="not a trigeo mesh"):
        DelaunayMesh.load(tmp_path / "other.npz")
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["kept"] = ~arrays["kept"]
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ArtifactError, match="corrupt"):
        DelaunayMesh.load(tmp_path / "tampered.npz")
    assert zipfile.is_zipfile(good)


def test_unfitted_and_bad_input() -> None:
    with pytest.raises(ArtifactError, match="not fitted"):
        DelaunayMesh().locate([0.0], [0.0])
    with pytest.raises(InputError, match="not finite"):
        DelaunayMesh(10, 1).fit([0.0, np.nan], [0.0, 1.0])
    with pytest.raises(InputError, match="outside"):
        DelaunayMesh(10, 1).fit([0.0, 95.0], [0.0, 1.0])


@pytest.mark.parametrize("compiled", [True, False])
def test_fit_counts_follow_the_tie_rule(points, monkeypatch, compiled: bool) -> None:
    from trigeo.mesh import TriangleLocator, _kernels

    if compiled and not _kernels.HAVE_NUMBA:
        pytest.skip("numba not installed")
    if not compiled:
        monkeypatch.setattr(_kernels, "HAVE_NUMBA", False)
    lat, lon = points
    # Add photos exactly on vertices, where several triangles tie.
    first = DelaunayMesh(refinement_limit=150, minimum_examples=10).fit(lat, lon)
    lat2 = np.concatenate([lat, first.vertices_[:, 0]])
    lon2 = np.concatenate([lon, first.vertices_[:, 1]])
    mesh = DelaunayMesh(refinement_limit=150, minimum_examples=10).fit(lat2, lon2)
    locator = TriangleLocator(mesh.vertices_xyz_, mesh.triangles_)
    expect = np.bincount(locator.locate(lat2, lon2), minlength=len(mesh.triangles_))
    np.testing.assert_array_equal(mesh.counts_, expect)


def test_fill_after_load_reproduces_study_coarse_procedure(points, tmp_path) -> None:
    lat, lon = points
    sub = DelaunayMesh(refinement_limit=60, minimum_examples=20).fit(lat[::3], lon[::3])
    loaded = DelaunayMesh.load(sub.save(tmp_path / "sub.npz"))
    loaded.fill(lat, lon)
    np.testing.assert_array_equal(loaded.triangles_, sub.triangles_)
    tri = loaded.locate_triangle(lat, lon)
    np.testing.assert_array_equal(loaded.counts_, np.bincount(tri, minlength=len(sub.triangles_)))
    assert loaded.n_points_ == lat.size
    assert loaded.n_cells_ >= sub.n_cells_  # three times the photos keep more triangles
    assert loaded.points_hash_ != sub.points_hash_


# --- where the points came from (points_source_) -----------------------------------------

SOURCE = {
    "path": "world",
    "dataset_sha256": "ab" * 32,
    "split": "train",
    "splits_used": ["train"],
}


def test_points_source_is_recorded_and_saved(points, tmp_path) -> None:
    lat, lon = points
    plain = DelaunayMesh(refinement_limit=400, minimum_examples=10).fit(lat, lon)
    assert plain.points_source_ is None
    sourced = DelaunayMesh(refinement_limit=400, minimum_examples=10).fit(lat, lon, source=SOURCE)
    assert sourced.points_source_ == SOURCE and sourced.points_source_ is not SOURCE
    # The record says where the points came from, not what the mesh is: same points,
    # same mesh hash.
    assert sourced.mesh_hash == plain.mesh_hash
    loaded = DelaunayMesh.load(sourced.save(tmp_path / "m.npz"))
    assert loaded.points_source_ == SOURCE
    assert DelaunayMesh.load(plain.save(tmp_path / "p.npz")).points_source_ is None
    assert loaded.summary()["points_source"] == SOURCE


def test_points_source_follows_fill(mesh: DelaunayMesh, points) -> None:
    lat, lon = points
    filled = DelaunayMesh(refinement_limit=400, minimum_examples=10).fit(lat, lon, source=SOURCE)
    other = {**SOURCE, "split": None, "splits_used": ["train", "val"]}
    assert filled.fill(lat, lon, source=other).points_source_ == other
    # Filled from points of unknown origin: the old record no longer describes the counts.
    assert filled.fill(lat, lon).points_source_ is None


def test_mesh_from_an_older_trigeo_loads_without_a_source(mesh: DelaunayMesh, tmp_path) -> None:
    src = mesh.save(tmp_path / "new.npz")
    with np.load(src) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    del meta["points_source"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    old = DelaunayMesh.load(tmp_path / "old.npz")
    assert old.points_source_ is None and old.mesh_hash == mesh.mesh_hash


def test_bad_points_source(points, tmp_path) -> None:
    lat, lon = points
    with pytest.raises(InputError, match="keys"):
        DelaunayMesh(refinement_limit=400, minimum_examples=10).fit(lat, lon, source={"x": 1})
    good = DelaunayMesh(refinement_limit=400, minimum_examples=10).fit(lat, lon, source=SOURCE)
    path = good.save(tmp_path / "good.npz")
    _rewrite_meta(path, tmp_path / "bad.npz", points_source={"path": 1})
    with pytest.raises(ArtifactError, match="points source"):
        DelaunayMesh.load(tmp_path / "bad.npz")


# --- too few photos per cell --------------------------------------------------------------


def _two_cell_mesh(first: int, second: int, minimum: int = 1) -> DelaunayMesh:
    """A mesh whose photos lie in two triangles, ``first`` and ``second`` photos each."""
    probe = DelaunayMesh(refinement_limit=10**9, minimum_examples=1).fit([0.0], [0.0])
    xyz = probe.vertices_xyz_[probe.triangles_[[100, 900]]].sum(axis=1)
    centre_lat, centre_lon = xyz_to_latlng(xyz)
    lat = np.repeat(centre_lat, [first, second])
    lon = np.repeat(centre_lon, [first, second])
    return DelaunayMesh(refinement_limit=10**9, minimum_examples=minimum).fit(lat, lon)


def test_no_warning_at_the_threshold() -> None:
    assert MIN_PHOTOS_PER_CELL == 20
    summary = _two_cell_mesh(20, 20).summary()
    assert summary["cells"] == 2 and summary["points_in_kept_cells"] == 40
    assert summary["photos_per_cell"] == {"mean": 20.0, "min": 20, "median": 20.0}
    assert summary["warnings"] == []


def test_warning_below_the_threshold() -> None:
    summary = _two_cell_mesh(20, 19).summary()
    assert summary["photos_per_cell"] == {"mean": 19.5, "min": 19, "median": 19.5}
    assert len(summary["warnings"]) == 1
    assert summary["warnings"][0].startswith(
        "kept cells hold 19.5 photos each on average, fewer than 20:"
    )


def test_warning_when_no_cell_is_kept() -> None:
    summary = _two_cell_mesh(3, 2, minimum=5).summary()
    assert summary["cells"] == 0
    assert summary["photos_per_cell"] == {"mean": None, "min": None, "median": None}
    assert summary["warnings"] == [
        "no triangle holds minimum_examples=5 photos, so the mesh has no cells"
    ]
