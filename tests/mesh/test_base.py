"""The Mesh base: members both kinds share, tested once for each kind; the kind factory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trigeo.errors import ArtifactError, InputError
from trigeo.mesh import (
    MESH_KINDS,
    DelaunayMesh,
    Mesh,
    QuadtreeMesh,
    create_mesh,
    load_mesh,
)

from .conftest import clustered_points

DATA = Path(__file__).parent / "data"

#: The base's members, written once: no kind redefines them.
SHARED = (
    "from_preset",
    "get_params",
    "__repr__",
    "fill",
    "_fill",
    "_check_fitted",
    "locate",
    "locate_region",
    "centroids",
    "cell_counts",
    "regions",
    "mesh_hash",
    "save",
    "load",
    "summary",
)

START = {"delaunay": {"init_grid": 8}, "quadtree": {"init_level": 2}}


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    return clustered_points(3000, seed=13)


@pytest.fixture(scope="module", params=MESH_KINDS)
def fitted(request, points) -> Mesh:
    lat, lon = points
    kind = request.param
    return create_mesh(kind, refinement_limit=120, minimum_examples=10, **START[kind]).fit(lat, lon)


def test_both_kinds_are_meshes_and_share_the_base_members() -> None:
    for cls in (DelaunayMesh, QuadtreeMesh):
        assert issubclass(cls, Mesh)
        redefined = [name for name in SHARED if name in vars(cls)]
        assert not redefined, f"{cls.__name__} redefines {redefined}"
    with pytest.raises(TypeError):
        Mesh()  # the interface, not a mesh


def test_factory_makes_each_kind() -> None:
    assert isinstance(create_mesh("delaunay", "fine"), DelaunayMesh)
    assert isinstance(create_mesh("QuadTree", "fine"), QuadtreeMesh)
    mesh = create_mesh("delaunay", "coarse", init_grid=9, scale_to=2_000)
    assert mesh.init_grid == 9 and mesh.preset_ == "coarse"
    assert mesh.refinement_limit == pytest.approx(8.0)
    assert create_mesh("quadtree", refinement_limit=7, minimum_examples=2).get_params() == (
        QuadtreeMesh(7, 2).get_params()
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": "hexagons", "preset": "fine"}, "--kind must be one of delaunay, quadtree"),
        ({"kind": "delaunay"}, "give --preset"),
        ({"kind": "delaunay", "refinement_limit": 5}, "give --preset"),
        ({"kind": "delaunay", "preset": "fine", "minimum_examples": 5}, "cannot be combined"),
        (
            {"kind": "delaunay", "refinement_limit": 5, "minimum_examples": 1, "scale_to": 9},
            "--scaled",
        ),
        ({"kind": "delaunay", "preset": "fine", "init_level": 3}, "--init-level"),
        ({"kind": "quadtree", "preset": "fine", "init_grid": 8}, "--init-grid"),
        ({"kind": "quadtree", "preset": "huge"}, "unknown mesh preset"),
    ],
)
def test_factory_errors(kwargs, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        create_mesh(**kwargs)


def test_params_repr_and_presets(fitted: Mesh) -> None:
    cls = type(fitted)
    params = fitted.get_params()
    assert list(params)[:2] == ["refinement_limit", "minimum_examples"]
    assert cls(**params).get_params() == params
    assert repr(fitted).startswith(f"{cls.__name__}(refinement_limit=120, minimum_examples=10")
    scaled = cls.from_preset("FINEP", scale_to=1_400_000)
    assert (scaled.refinement_limit, scaled.minimum_examples) == pytest.approx((1000, 5))
    assert scaled.preset_ == "fineP"
    with pytest.raises(InputError, match="scale_to"):
        cls.from_preset("fine", scale_to=0)


def test_unfitted_mesh_says_so(fitted: Mesh) -> None:
    unfitted = type(fitted)()
    for call in (
        unfitted.summary,
        unfitted.cell_counts,
        unfitted.regions,
        lambda: unfitted.locate([0.0], [0.0]),
        lambda: unfitted.save("never.npz"),
        lambda: unfitted.mesh_hash,
        lambda: unfitted.fill([0.0], [0.0]),
    ):
        with pytest.raises(ArtifactError, match=f"this {type(fitted).__name__} is not fitted"):
            call()
    assert not Path("never.npz").exists()


def test_cells_agree_with_regions(fitted: Mesh, points) -> None:
    lat, lon = points
    regions = fitted.regions()
    kept = np.flatnonzero(regions["kept"])
    assert regions["name"] == fitted.region
    assert fitted.n_cells_ == kept.size > 0
    np.testing.assert_array_equal(fitted.cell_regions_, kept)
    np.testing.assert_array_equal(regions["cell"][kept], np.arange(fitted.n_cells_))
    np.testing.assert_array_equal(fitted.cell_counts(), regions["counts"][kept])
    np.testing.assert_allclose(fitted.cell_areas_km2(), regions["areas_km2"][kept], rtol=1e-12)
    np.testing.assert_allclose(fitted.cell_corners_xyz(), regions["corners"][kept], atol=1e-12)
    assert fitted.cell_counts().sum() == fitted.n_points_kept_
    cells = fitted.locate(lat, lon)
    np.testing.assert_array_equal(cells, regions["cell"][fitted.locate_region(lat, lon)])
    np.testing.assert_array_equal(np.bincount(cells[cells >= 0]), fitted.cell_counts())
    assert fitted.locate(lat.reshape(3, -1), lon.reshape(3, -1)).shape == (3, 1000)
    assert fitted.locate([], []).shape == (0,)
    for label in ("cell", "imagery"):
        clat, clon = fitted.centroids(label)
        assert clat.shape == clon.shape == (fitted.n_cells_,)
    with pytest.raises(InputError, match="centroid kind"):
        fitted.centroids("median")


def test_save_load_round_trip(fitted: Mesh, points, tmp_path: Path) -> None:
    lat, lon = points
    path = fitted.save(tmp_path / "m.npz")
    for loaded in (type(fitted).load(path), load_mesh(path)):
        assert type(loaded) is type(fitted)
        assert loaded.mesh_hash == fitted.mesh_hash
        assert loaded.get_params() == fitted.get_params()
        assert loaded.summary() == fitted.summary()
        np.testing.assert_array_equal(loaded.locate(lat, lon), fitted.locate(lat, lon))
        np.testing.assert_array_equal(loaded.cell_counts(), fitted.cell_counts())
        for label in ("cell", "imagery"):
            np.testing.assert_array_equal(loaded.centroids(label), fitted.centroids(label))
    other = QuadtreeMesh if isinstance(fitted, DelaunayMesh) else DelaunayMesh
    with pytest.raises(ArtifactError, match=r"read it with trigeo\.mesh\.load_mesh"):
        other.load(path)


def test_fill_recounts_on_fixed_regions(fitted: Mesh, points) -> None:
    lat, lon = points
    again = type(fitted)(**fitted.get_params()).fit(lat, lon)
    half = slice(0, None, 2)
    again.fill(lat[half], lon[half])
    assert again.n_points_ == lat[half].size and again.points_source_ is None
    np.testing.assert_array_equal(again.regions()["corners"], fitted.regions()["corners"])
    assert again.counts_.sum() == lat[half].size


@pytest.mark.parametrize(
    ("kind", "mesh_hash", "cells"),
    [
        ("delaunay", "a2ee4a50054b92aaf53c388c32c290d80fba1a86da6a282b98c5f45fa82d2773", 24),
        ("quadtree", "bce900913c365bbeef4bb5b73a99f8ba935238e8905c83beded4cffa3a414ac0", 25),
    ],
)
def test_files_saved_before_the_base_load_and_rebuild_the_same(kind, mesh_hash, cells) -> None:
    """Files written by trigeo before the Mesh base (400 points, seed 21) load, and
    the same points and limits build the same mesh today."""
    loaded = load_mesh(DATA / f"before-base-{kind}.npz")
    assert (loaded.kind, loaded.mesh_hash, loaded.n_cells_) == (kind, mesh_hash, cells)
    lat, lon = clustered_points(400, seed=21)
    start = {"init_grid": 4} if kind == "delaunay" else {"init_level": 0}
    rebuilt = create_mesh(kind, refinement_limit=40, minimum_examples=5, **start).fit(lat, lon)
    assert rebuilt.mesh_hash == mesh_hash
    np.testing.assert_array_equal(rebuilt.imagery_centroids_, loaded.imagery_centroids_)
