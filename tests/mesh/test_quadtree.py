"""QuadtreeMesh and the S2 cell math, checked against s2sphere (the reference)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import s2sphere

from trigeo.errors import ArtifactError, InputError
from trigeo.mesh import DelaunayMesh, QuadtreeMesh, load_mesh, mesh_kind, oracle_report, s2
from trigeo.sphere import EARTH_AREA_KM2, EARTH_RADIUS_KM, distance_km, mean_position


def ref_ids(lat: np.ndarray, lon: np.ndarray, level: int = 30) -> np.ndarray:
    """s2sphere's cell ids, one point at a time."""
    return np.array(
        [
            s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b)).parent(level).id()
            for a, b in zip(lat.tolist(), lon.tolist(), strict=True)
        ],
        dtype=np.uint64,
    )


def hard_points() -> tuple[np.ndarray, np.ndarray]:
    """Poles, the antimeridian, the equator and the cube-face edges and corners,
    each with its neighbouring floats on both sides."""
    corner = math.degrees(math.atan(1 / math.sqrt(2)))  # where |x| = |y| = |z|
    base = [(90, 0), (-90, 0), (90, 180), (-90, -180), (90, 45), (-90, -135)]
    base += [(lat, s * 180) for lat in (-89.9, -60, -45, -10, 0, 10, 45, 60, 89.9) for s in (-1, 1)]
    base += [(lat, lon) for lat in (0,) for lon in (-135, -45, 0, 45, 90, 135, -90)]
    base += [(s * 45, lon) for s in (-1, 1) for lon in (-180, -90, 0, 90, 180)]
    base += [(s * corner, lon) for s in (-1, 1) for lon in (-135, -45, 45, 135)]
    lat, lon = np.array(base, dtype=np.float64).T
    near_lat = [lat, np.nextafter(lat, 100), np.nextafter(lat, -100), lat, lat]
    near_lon = [lon, lon, lon, np.nextafter(lon, 200), np.nextafter(lon, -200)]
    lat, lon = np.concatenate(near_lat), np.concatenate(near_lon)
    ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    return lat[ok], lon[ok]


def random_points(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


@pytest.mark.parametrize("which", ["random", "hard"])
def test_leaf_ids_match_s2sphere(which: str) -> None:
    lat, lon = random_points(3000) if which == "random" else hard_points()
    expected = ref_ids(lat, lon)
    assert (s2.leaf_ids(lat, lon) == expected).all()
    assert (s2._leaf_ids_numpy(lat, lon) == expected).all()  # the no-numba path
    # Both poles, both sides of the antimeridian and all six faces occur.
    assert set((expected >> np.uint64(61)).tolist()) == set(range(6))


def test_cell_algebra_matches_s2sphere() -> None:
    lat, lon = random_points(200, seed=5)
    leaves = ref_ids(lat, lon)
    levels = np.random.default_rng(1).integers(0, 31, leaves.size)
    cells = np.array(
        [s2sphere.CellId(int(c)).parent(int(k)).id() for c, k in zip(leaves, levels, strict=True)],
        dtype=np.uint64,
    )
    assert (s2.cell_level(cells) == levels).all()
    assert (s2.parent(leaves, 7) == ref_ids(lat, lon, 7)).all()
    for cell, level in zip(cells[:40], levels[:40], strict=True):
        if level == 30:
            continue
        kids = s2.children(np.array([cell]), int(level))[0]
        ref = [s2sphere.CellId(int(cell)).child(k).id() for k in range(4)]
        assert kids.tolist() == ref
        assert s2.range_min(cell, level) == s2sphere.CellId(int(cell)).range_min().id()
        assert s2.range_max(cell, level) == s2sphere.CellId(int(cell)).range_max().id()
    every = s2.face_cells(2)
    assert every.size == 96 and (np.diff(every.astype(np.float64)) > 0).all()
    assert (s2.cell_level(every) == 2).all()
    # Cell centres and exact areas (s2sphere's area loses digits below level ~18).
    c_lat, c_lon = s2.cell_center_latlng(cells)
    ref = [s2sphere.CellId(int(c)).to_lat_lng() for c in cells]
    assert np.allclose(c_lat, [p.lat().degrees for p in ref], atol=1e-9)
    assert (
        distance_km(
            c_lat, c_lon, [p.lat().degrees for p in ref], [p.lng().degrees for p in ref]
        ).max()
        < 1e-6
    )
    coarse = levels <= 16
    areas = s2.cell_areas_km2(cells[coarse])
    ref_area = [s2sphere.Cell(s2sphere.CellId(int(c))).exact_area() for c in cells[coarse]]
    assert np.allclose(areas, np.array(ref_area) * EARTH_RADIUS_KM**2, rtol=1e-6)
    assert s2.cell_areas_km2(s2.face_cells(3)).sum() == pytest.approx(EARTH_AREA_KM2, rel=1e-12)


def test_corners_are_counter_clockwise_and_hold_the_centre() -> None:
    cells = s2.face_cells(2)
    corners = s2.cell_corners_xyz(cells)
    c_lat, c_lon = s2.cell_center_latlng(cells)
    from trigeo.sphere import latlng_to_xyz

    centre = latlng_to_xyz(c_lat, c_lon)
    for k in range(4):
        a, b = corners[:, k], corners[:, (k + 1) % 4]
        assert (np.einsum("ij,ij->i", np.cross(a, b), centre) > 0).all()
    # The corners of a face cell at a pole: exactly the pole for the cells around it.
    assert np.isclose(np.abs(corners[..., 2]).max(), 1.0)


@pytest.fixture(scope="module")
def qmesh(points) -> QuadtreeMesh:
    lat, lon = points
    return QuadtreeMesh(refinement_limit=150, minimum_examples=10, init_level=2).fit(lat, lon)


def test_fit_follows_the_rules(qmesh: QuadtreeMesh, points) -> None:
    lat, lon = points
    leaves, levels = qmesh.leaves_, qmesh.leaf_levels_
    # The leaves tile the sphere: consecutive leaf-id ranges, full area.
    lo, hi = s2.range_min(leaves, levels), s2.range_max(leaves, levels)
    assert lo[0] == 1 and hi[-1] == np.uint64(6 * 2**61 - 1)
    assert (lo[1:] == hi[:-1] + np.uint64(2)).all()
    assert qmesh.leaf_areas_km2().sum() == pytest.approx(EARTH_AREA_KM2, rel=1e-9)
    assert levels.min() >= 2
    # Counts against s2sphere: each photo's reference leaf id falls in its leaf.
    ref = ref_ids(lat, lon)
    owner = np.searchsorted(lo, ref, side="right") - 1
    assert (ref <= hi[owner]).all()
    assert (np.bincount(owner, minlength=len(leaves)) == qmesh.counts_).all()
    assert (qmesh.locate_leaf(lat, lon) == owner).all()
    # Split rule: a leaf below the initial level came from a parent over the limit...
    for level in range(3, int(levels.max()) + 1):
        at = levels == level
        parents = s2.parent(leaves[at], level - 1)
        for p in np.unique(parents):
            inside = (lo >= s2.range_min(p, level - 1)) & (hi <= s2.range_max(p, level - 1))
            assert qmesh.counts_[inside].sum() > 150
    # ...and a leaf over the limit cannot split: its photos share one leaf id (the
    # stack of identical coordinates) or it is below the area floor.
    for k in np.flatnonzero(qmesh.counts_ > 150):
        mine = owner == k
        assert len(np.unique(ref[mine])) == 1 or qmesh.leaf_areas_km2()[k] < 0.01
    assert qmesh.n_unsplittable_ >= 1  # the Eiffel-tower stack
    # Keep rule and numbering.
    assert (qmesh.kept_ == (qmesh.counts_ >= 10)).all()
    assert (np.diff(qmesh.cell_ids_.astype(np.float64)) > 0).all()
    assert (qmesh.cell_counts() == qmesh.counts_[qmesh.kept_]).all()


def test_labels_and_locate(qmesh: QuadtreeMesh, points) -> None:
    lat, lon = points
    cells = qmesh.locate(lat, lon)
    assert (cells == qmesh.cell_of_leaf_[qmesh.locate_leaf(lat, lon)]).all()
    assert (qmesh.locate(lat, lon, threads=2) == cells).all()
    assert qmesh.n_points_kept_ == int((cells >= 0).sum())
    img_lat, img_lon = qmesh.centroids("imagery")
    for c in (0, qmesh.n_cells_ // 2, qmesh.n_cells_ - 1):
        m_lat, m_lon = mean_position(lat[cells == c], lon[cells == c])
        assert distance_km(m_lat, m_lon, img_lat[c], img_lon[c]) < 1e-6
    c_lat, _ = qmesh.centroids("cell")
    ref = [s2sphere.CellId(int(i)).to_lat_lng() for i in qmesh.cell_ids_[:20]]
    assert np.allclose(c_lat[:20], [p.lat().degrees for p in ref], atol=1e-9)
    assert np.allclose(qmesh.cell_areas_km2(), s2.cell_areas_km2(qmesh.cell_ids_))
    with pytest.raises(InputError):
        qmesh.centroids("middle")
    assert qmesh.locate(np.zeros((2, 3)), np.zeros((2, 3))).shape == (2, 3)


def test_numpy_path_gives_the_same_cells(qmesh: QuadtreeMesh, monkeypatch) -> None:
    lat, lon = random_points(5000, seed=9)
    expected = qmesh.locate(lat, lon)
    monkeypatch.setattr(s2, "HAVE_NUMBA", False)
    qmesh._index = None
    assert (qmesh.locate(lat, lon) == expected).all()


def test_presets_and_scaling() -> None:
    mesh = QuadtreeMesh.from_preset("fine", scale_to=140_000)
    assert (mesh.refinement_limit, mesh.minimum_examples) == pytest.approx((50, 5))
    assert mesh.preset_ == "fine"
    coarse = QuadtreeMesh.from_preset("COARSE", scale_to=200_000, init_level=3)
    assert (coarse.refinement_limit, coarse.minimum_examples, coarse.init_level) == (800, 100, 3)
    assert QuadtreeMesh.from_preset("fineP").get_params()["refinement_limit"] == 10000
    with pytest.raises(InputError, match="unknown mesh preset"):
        QuadtreeMesh.from_preset("huge")
    with pytest.raises(InputError, match="init_level"):
        QuadtreeMesh(init_level=13).fit([0.0], [0.0])


def test_save_load_and_load_mesh(qmesh: QuadtreeMesh, tmp_path: Path, points) -> None:
    path = qmesh.save(tmp_path / "q.npz")
    loaded = load_mesh(path)
    assert isinstance(loaded, QuadtreeMesh) and mesh_kind(path) == "quadtree"
    assert loaded.mesh_hash == qmesh.mesh_hash
    assert loaded.get_params() == qmesh.get_params()
    lat, lon = points
    assert (loaded.locate(lat, lon) == qmesh.locate(lat, lon)).all()
    assert np.array_equal(loaded.imagery_centroids_, qmesh.imagery_centroids_)
    assert loaded.summary() == qmesh.summary()
    # A Delaunay file through the same door; each class refuses the other kind.
    tri = DelaunayMesh(refinement_limit=400, minimum_examples=10, init_grid=6).fit(lat, lon)
    tri_path = tri.save(tmp_path / "t.npz")
    assert isinstance(load_mesh(tri_path), DelaunayMesh) and mesh_kind(tri_path) == "delaunay"
    with pytest.raises(ArtifactError, match="QuadtreeMesh file, not a DelaunayMesh"):
        DelaunayMesh.load(path)
    with pytest.raises(ArtifactError, match="DelaunayMesh file, not a QuadtreeMesh"):
        QuadtreeMesh.load(tri_path)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_mesh(tmp_path / "missing.npz")


def test_corrupt_and_old_files_are_refused(qmesh: QuadtreeMesh, tmp_path: Path) -> None:
    path = qmesh.save(tmp_path / "q.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    bad = dict(arrays, kept=~arrays["kept"])
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ArtifactError, match="corrupt"):
        load_mesh(tmp_path / "bad.npz")
    meta["format_version"] = 99
    old = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    np.savez(tmp_path / "old.npz", **old)
    with pytest.raises(ArtifactError, match="format version 99"):
        load_mesh(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a readable mesh"):
        load_mesh(tmp_path / "junk.npz")


def test_summary_warns_and_records_source(points) -> None:
    lat, lon = points
    source = {"path": "x.csv", "dataset_sha256": None, "split": None, "splits_used": None}
    small = QuadtreeMesh(refinement_limit=20, minimum_examples=2, init_level=3)
    small.fit(lat, lon, source=source)
    info = small.summary()
    assert info["kind"] == "quadtree" and info["points_source"] == source
    assert info["photos_per_cell"]["mean"] < 20 and "too few" in info["warnings"][0]
    empty = QuadtreeMesh(refinement_limit=10**9, minimum_examples=10**8, init_level=0)
    assert "no cells" in empty.fit(lat, lon).summary()["warnings"][0]


def test_fill_recounts_on_fixed_leaves(points) -> None:
    lat, lon = points
    mesh = QuadtreeMesh(refinement_limit=300, minimum_examples=20, init_level=2).fit(lat, lon)
    leaves = mesh.leaves_.copy()
    mesh.fill(np.r_[lat, lat], np.r_[lon, lon])
    assert (mesh.leaves_ == leaves).all() and mesh.points_source_ is None
    assert mesh.n_points_ == 2 * lat.size
    assert (mesh.kept_ == (mesh.counts_ >= 20)).all()


def test_oracle_works_on_a_quadtree(qmesh: QuadtreeMesh, points) -> None:
    lat, lon = points
    report = oracle_report(qmesh, lat, lon)
    assert report["cells"] == qmesh.n_cells_
    assert report["imagery_centroid"]["2500"] == 100.0


def test_kind_neutral_accessors(qmesh: QuadtreeMesh, mesh: DelaunayMesh) -> None:
    """cell_counts, cell_corners_xyz and regions: what kind-neutral code can use."""
    for m, k in ((qmesh, 4), (mesh, 3)):
        corners = m.cell_corners_xyz()
        assert corners.shape == (m.n_cells_, k, 3)
        regions = m.regions()
        kept = regions["cell"] >= 0
        assert np.array_equal(regions["corners"][kept], corners)
        assert np.array_equal(regions["counts"][kept], m.cell_counts())
        assert np.allclose(regions["areas_km2"][kept], m.cell_areas_km2())
    assert np.allclose(
        mesh.cell_corners_xyz(), mesh.vertices_xyz_[mesh.triangles_[mesh.cell_triangles_]]
    )
