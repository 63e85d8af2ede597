"""--coarsen-km: the K-km grid on hand-worked coordinates, and merged regions."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.serve.coarsen import KM_PER_DEGREE, build_regions, grid_square, round_to_grid


def test_grid_rounding_on_hand_worked_coordinates():
    # KM_PER_DEGREE = 6372.795 * pi / 180 = 111.22626 km.
    assert KM_PER_DEGREE == pytest.approx(111.226255, abs=1e-5)
    # Paris at K = 100: dlat = 100 / 111.22626 = 0.899068°; 48.8566 / 0.899068 = 54.34 -> row 54,
    # lat 48.549688°. cos(48.549688°) = 0.66198, 360 * 0.66198 * 111.22626 / 100 = 265.06 -> 265
    # columns of 1.358491°; 2.3522 / 1.358491 = 1.73 -> column 2, lon 2.716981°.
    lat, lon = round_to_grid(48.8566, 2.3522, 100)
    assert (float(lat), float(lon)) == pytest.approx((48.549688, 2.716981), abs=1e-6)
    # Sydney at K = 250: dlat 2.247671°; -33.8688 / 2.247671 = -15.07 -> row -15, lat -33.715061°;
    # 133 columns of 2.706767°; 151.2093 / 2.706767 = 55.86 -> column 56, lon 151.578947°.
    lat, lon = round_to_grid(-33.8688, 151.2093, 250)
    assert (float(lat), float(lon)) == pytest.approx((-33.715061, 151.578947), abs=1e-6)
    # Longitudes wrap to [-180, 180); near a pole the row has one column, so lon reports 0.
    lat, lon = round_to_grid([0.0, 89.9], [179.9, 123.0], 100)
    assert lon[0] == pytest.approx(180.0 - 360.0) and lon[1] == 0.0
    assert lat[1] == pytest.approx(100 * 0.8990683, abs=1e-4) or lat[1] == 90.0
    # Rounding is idempotent: a reported point is on the grid.
    again = round_to_grid(*round_to_grid(48.8566, 2.3522, 100), 100)
    assert np.allclose(again, round_to_grid(48.8566, 2.3522, 100))


def test_grid_square_is_about_k_by_k_km():
    polygon, lat, lon, area = grid_square(48.8566, 2.3522, 100)
    assert (lat, lon) == pytest.approx((48.549688, 2.716981), abs=1e-6)
    ring = polygon["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert area == pytest.approx(100 * 100, rel=0.02)


def test_small_cells_merge_into_grid_squares_and_big_ones_stay(world_model):
    from trigeo.models import M1Model
    from trigeo.serve.coarsen import cell_diameters_km

    model = M1Model.load(world_model[0])
    lat, lon = model.label_points()
    diameters = cell_diameters_km(model.mesh)
    plain = build_regions(model.mesh, lat, lon)
    assert len(plain) == model.mesh.n_cells_ and not plain.merged.any()
    k = float(np.median(diameters)) + 1.0  # some cells above, some below
    regions = build_regions(model.mesh, lat, lon, k)
    small = diameters < k
    assert regions.merged[regions.cell_region[small]].all()
    assert not regions.merged[regions.cell_region[~small]].any()
    # Every reported point is on the grid; probabilities are summed per region.
    assert np.allclose(
        np.stack(round_to_grid(regions.lat, regions.lon, k)), [regions.lat, regions.lon]
    )
    p = np.random.default_rng(0).dirichlet(np.ones(model.mesh.n_cells_))
    merged = regions.probabilities(p)
    assert merged.sum() == pytest.approx(1.0)
    for r, cells in enumerate(regions.cells):
        assert merged[r] == pytest.approx(p[cells].sum())
    # A 20,000 km grid has two squares around the equator (columns 180° wide, centred on
    # 0° and 180°): Paris and New York fall in the first, Tokyo and Sydney in the second.
    world = build_regions(model.mesh, lat, lon, 20_000)
    assert world.merged.all() and len(world) == 2
    assert sorted(world.lon.tolist()) == [-180.0, 0.0]


def test_coarsening_works_on_a_quadtree_mesh():
    # An S2 cell's diameter is its longest edge; a level-1 face quarter is about 5,000 km.
    from trigeo.mesh import QuadtreeMesh
    from trigeo.serve.coarsen import cell_diameters_km
    from trigeo.sphere import distance_km

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 60, 400), rng.uniform(-180, 180, 400)
    mesh = QuadtreeMesh(refinement_limit=60, minimum_examples=5, init_level=1).fit(lat, lon)
    assert mesh.n_cells_ > 5
    corners = mesh.cell_corners_xyz()
    assert corners.shape[1:] == (4, 3)
    from trigeo.sphere import xyz_to_latlng

    c_lat, c_lon = xyz_to_latlng(corners.reshape(-1, 3))
    c_lat, c_lon = c_lat.reshape(-1, 4), c_lon.reshape(-1, 4)
    edges = np.stack(
        [distance_km(c_lat[:, i], c_lon[:, i], c_lat[:, (i + 1) % 4], c_lon[:, (i + 1) % 4])
         for i in range(4)]
    )  # fmt: skip
    np.testing.assert_allclose(cell_diameters_km(mesh), edges.max(axis=0), rtol=1e-6)
    label_lat, label_lon = mesh.centroids("imagery")
    regions = build_regions(mesh, label_lat, label_lon, 500.0)
    assert len(regions.geometry) == len(regions) and regions.cell_region.min() >= 0
    assert not regions.merged.any()  # every S2 cell here is wider than 500 km
