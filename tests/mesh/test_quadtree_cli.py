"""Every `trigeo mesh` command on a quad-tree mesh file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from trigeo.mesh import QuadtreeMesh, load_mesh, oracle_report
from trigeo.points import read_points

from .conftest import clustered_points
from .test_mesh_cli import failed_with, run


@pytest.fixture(scope="module")
def points_csv(tmp_path_factory) -> Path:
    lat, lon = clustered_points(3000, seed=11)
    path = tmp_path_factory.mktemp("qcli") / "photos.csv"
    pairs = zip(lat.tolist(), lon.tolist(), strict=True)
    path.write_text("lat,lon\n" + "\n".join(f"{a!r},{b!r}" for a, b in pairs) + "\n")
    return path


@pytest.fixture(scope="module")
def quad_file(points_csv: Path) -> Path:
    out = points_csv.parent / "quad.npz"
    result = run(
        "mesh", "build", "--kind", "quadtree", "--points", points_csv, "--out", out,
        "--refinement-limit", 100, "--minimum-examples", 8, "--init-level", 3,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "leaves" in result.output
    return out


def test_build_matches_the_api(quad_file: Path, points_csv: Path) -> None:
    lat, lon = read_points(points_csv)
    expected = QuadtreeMesh(refinement_limit=100, minimum_examples=8, init_level=3).fit(lat, lon)
    mesh = load_mesh(quad_file)
    assert isinstance(mesh, QuadtreeMesh) and mesh.mesh_hash == expected.mesh_hash
    assert mesh.points_source_["path"] == str(points_csv)


def test_preset_scaled(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "coarse.npz"
    result = run(
        "mesh", "build", "--kind", "quadtree", "--points", points_csv,
        "--preset", "coarse", "--scaled", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    mesh = load_mesh(out)
    assert mesh.preset_ == "coarse" and mesh.init_level == 4
    assert mesh.refinement_limit == pytest.approx(8000 * 3000 / 2_000_000)


def test_options_of_the_other_kind_are_refused(points_csv: Path, tmp_path: Path) -> None:
    args = ["--points", points_csv, "--out", tmp_path / "x.npz", "--preset", "fine"]
    failed_with(run("mesh", "build", *args, "--kind", "quadtree", "--init-grid", 8), "--init-grid")
    failed_with(run("mesh", "build", *args, "--init-level", 3), "--init-level")
    failed_with(run("mesh", "build", *args, "--kind", "hexagons"), "--kind")
    assert not (tmp_path / "x.npz").exists()


def test_info(quad_file: Path) -> None:
    result = run("mesh", "info", "--mesh", quad_file, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    mesh = load_mesh(quad_file)
    assert info["kind"] == "quadtree" and info["cells"] == mesh.n_cells_
    assert info["leaves"] == len(mesh.leaves_)
    text = run("mesh", "info", "--mesh", quad_file).output
    assert "kind                  quadtree" in text and "S2 levels" in text


def test_oracle(quad_file: Path, points_csv: Path) -> None:
    result = run("mesh", "oracle", "--mesh", quad_file, "--points", points_csv, "--json")
    assert result.exit_code == 0, result.output
    lat, lon = read_points(points_csv)
    assert json.loads(result.output) == oracle_report(load_mesh(quad_file), lat, lon)


def test_locate(quad_file: Path, points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "cells.parquet"
    result = run("mesh", "locate", "--mesh", quad_file, "--points", points_csv, "--out", out)
    assert result.exit_code == 0, result.output
    lat, lon = read_points(points_csv)
    cells = pq.read_table(out).column("cell").to_numpy()
    assert np.array_equal(cells, load_mesh(quad_file).locate(lat, lon))


def test_export_geojson(quad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "quad.geojson"
    result = run("mesh", "export", "--mesh", quad_file, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    mesh = load_mesh(quad_file)
    assert doc["properties"]["kind"] == "quadtree"
    assert len(doc["features"]) == len(mesh.leaves_)
    first = doc["features"][0]["properties"]
    assert first["leaf"] == 0 and first["s2_cell"] == format(int(mesh.leaves_[0]), "016x").rstrip(
        "0"
    )
    kept = [f for f in doc["features"] if f["properties"]["kept"]]
    assert len(kept) == mesh.n_cells_
    # Ring areas in lon/lat add up to the whole map: the leaves tile the sphere.
    total = 0.0
    for feature in doc["features"]:
        geometry = feature["geometry"]
        polys = (
            [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        )
        for poly in polys:
            ring = np.asarray(poly[0])
            x, y = ring[:, 0], ring[:, 1]
            total += 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])
    assert total == pytest.approx(360.0 * 180.0, rel=1e-3)


def test_plot(quad_file: Path, points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "quad.png"
    result = run("mesh", "plot", "--mesh", quad_file, "--out", out, "--points", points_csv)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
