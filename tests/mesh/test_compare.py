"""`trigeo mesh compare`: numbers worked by hand on a tiny case, and the report."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from trigeo.errors import InputError
from trigeo.mesh import DelaunayMesh, QuadtreeMesh, oracle_report
from trigeo.mesh.compare import format_table, mesh_stats, parse_region, sweep
from trigeo.sphere import EARTH_RADIUS_KM

from .conftest import clustered_points
from .test_mesh_cli import failed_with, run

THRESHOLDS = (1, 5, 15, 25, 200)
FILES = ("accuracy_vs_cells.png", "cell_areas.png", "compare.json", "compare.md", "region.png")


def test_best_possible_accuracy_by_hand() -> None:
    """Three photos on the equator at 0, 0.1 and 0.3 degrees east, one near the south
    pole. With init_level 0 and no split, the cells are the six cube faces; the face
    around (0, 0) keeps its three photos, the south face its one photo is dropped
    (minimum 2)."""
    lat = np.array([0.0, 0.0, 0.0, -89.0])
    lon = np.array([0.0, 0.1, 0.3, 0.0])
    mesh = QuadtreeMesh(refinement_limit=1000, minimum_examples=2, init_level=0).fit(lat, lon)
    row = mesh_stats("faces", mesh, lat, lon, THRESHOLDS)
    assert (row["cells"], row["regions"], row["points_in_kept_cells"]) == (1, 6, 3)
    assert row["kept_share"] == 0.75
    # The cell label is the face centre, (0, 0): errors along the equator are R * dlon.
    km_per_deg = EARTH_RADIUS_KM * math.pi / 180.0
    assert [0.1 * km_per_deg, 0.3 * km_per_deg] == pytest.approx([11.1226, 33.3677], abs=1e-3)
    # errors 0, 11.12, 33.37 km
    assert row["cell_centroid"] == pytest.approx(
        {"1": 100 / 3, "5": 100 / 3, "15": 200 / 3, "25": 200 / 3, "200": 100.0}
    )
    # The imagery label is the mean unit vector: on the equator at atan2(sum sin, sum cos).
    sines = sum(math.sin(math.radians(x)) for x in (0.0, 0.1, 0.3))
    cosines = sum(math.cos(math.radians(x)) for x in (0.0, 0.1, 0.3))
    centre = math.degrees(math.atan2(sines, cosines))
    errors = sorted(abs(x - centre) * km_per_deg for x in (0.0, 0.1, 0.3))
    assert errors == pytest.approx([3.707, 14.830, 18.537], abs=1e-3)  # 5 < 14.83 < 15 < 18.54
    assert row["imagery_centroid"] == pytest.approx(
        {"1": 0.0, "5": 100 / 3, "15": 200 / 3, "25": 100.0, "200": 100.0}
    )
    # Over all four photos the dropped one is a miss.
    assert row["cell_centroid_all"] == pytest.approx(
        {"1": 25.0, "5": 25.0, "15": 50.0, "25": 50.0, "200": 75.0}
    )
    assert row["imagery_centroid_all"] == pytest.approx(
        {"1": 0.0, "5": 25.0, "15": 50.0, "25": 75.0, "200": 75.0}
    )
    face_area = 4 * math.pi * EARTH_RADIUS_KM**2 / 6
    assert row["cell_area_km2"]["median"] == pytest.approx(face_area, rel=1e-12)
    assert row["photos_per_cell"]["mean"] == 3.0 and row["empty_cells"] == 0


def test_delaunay_row_agrees_with_the_oracle() -> None:
    lat, lon = clustered_points(2000, seed=4)
    mesh = DelaunayMesh(refinement_limit=200, minimum_examples=20, init_grid=8).fit(lat, lon)
    row = mesh_stats("tri", mesh, lat, lon)
    report = oracle_report(mesh, lat, lon)
    assert row["cell_centroid"] == report["cell_centroid"]
    assert row["imagery_centroid"] == report["imagery_centroid"]
    assert row["points_in_kept_cells"] == report["points_in_kept_cells"]
    assert row["photos_per_cell"]["mean"] == pytest.approx(mesh.cell_counts().mean())
    assert row["cell_area_km2"]["max"] == pytest.approx(mesh.cell_areas_km2().max())
    for line in format_table([row, dict(row, name="a-very-long-mesh-name-indeed")]).splitlines():
        assert len(line) <= 80


def test_sweep_matches_cell_counts() -> None:
    lat, lon = clustered_points(3000, seed=2)
    swept = sweep(lat, lon, [400, 100], ratio=10, init_grid=8, init_level=2)
    assert [limit for limit, _ in swept["delaunay"]] == [400, 100]
    assert [m.minimum_examples for _, m in swept["quadtree"]] == [40, 10]
    assert len(swept["matched"]) == 2
    for tri, quad, limit in swept["matched"]:
        assert isinstance(tri, DelaunayMesh) and isinstance(quad, QuadtreeMesh)
        assert quad.refinement_limit == limit
        # Cell counts move in steps of 3 per split, so an exact match is not always there.
        assert abs(quad.n_cells_ - tri.n_cells_) <= max(3, 0.05 * tri.n_cells_)


def test_parse_region() -> None:
    assert parse_region("-10,35,30,60") == (-10.0, 35.0, 30.0, 60.0)
    for bad in ("1,2,3", "a,b,c,d", "30,35,-10,60", "-10,35,30,95"):
        with pytest.raises(InputError, match="--region"):
            parse_region(bad)


@pytest.fixture(scope="module")
def two_meshes(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    lat, lon = clustered_points(3000, seed=11)
    csv = root / "photos.csv"
    pairs = zip(lat.tolist(), lon.tolist(), strict=True)
    csv.write_text("lat,lon\n" + "\n".join(f"{a!r},{b!r}" for a, b in pairs) + "\n")
    tri = DelaunayMesh(refinement_limit=150, minimum_examples=15, init_grid=8).fit(lat, lon)
    quad = QuadtreeMesh(refinement_limit=150, minimum_examples=15, init_level=2).fit(lat, lon)
    return csv, tri.save(root / "tri.npz"), quad.save(root / "quad.npz")


def test_compare_cli(two_meshes, tmp_path: Path) -> None:
    csv, tri, quad = two_meshes
    out = tmp_path / "report"
    result = run(
        "mesh", "compare", "--points", csv, "--mesh", tri, "--mesh", quad, "--out", out,
        "--region", "-10,35,20,60", "--sweep", "--sweep-limits", "300",
        "--init-grid", 8, "--init-level", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    where = lines.index(f"written in {out}:")
    assert lines[where + 1 :] == [f"  {name}" for name in sorted(FILES)]
    assert max(len(line) for line in lines[:where]) <= 80
    assert any(line.startswith("tri ") and " tri " in line for line in lines)
    assert any("equal cell counts" in line for line in lines)
    doc = json.loads((out / "compare.json").read_text())
    assert [row["kind"] for row in doc["meshes"]] == ["delaunay", "quadtree"]
    assert doc["region"] == [-10.0, 35.0, 20.0, 60.0]
    assert len(doc["sweep"]["curves"]["delaunay"]) == 1 and len(doc["sweep"]["matched"]) == 1
    assert doc["inputs"]["sweep_limits"] == [300.0]
    for name in FILES:
        assert (out / name).stat().st_size > 0
    assert "## Equal cell counts" in (out / "compare.md").read_text()


def test_compare_cli_needs_meshes(two_meshes, tmp_path: Path) -> None:
    csv, _, _ = two_meshes
    failed_with(run("mesh", "compare", "--points", csv, "--out", tmp_path / "x"), "--mesh")
    assert not (tmp_path / "x").exists()


def test_compare_json_is_the_table(two_meshes, tmp_path: Path) -> None:
    csv, tri, quad = two_meshes
    args = ["mesh", "compare", "--points", csv, "--mesh", tri, "--mesh", quad]
    args += ["--sweep", "--sweep-limits", "300", "--init-grid", 8, "--init-level", 2]
    text = run(*args, "--out", tmp_path / "text")
    assert text.exit_code == 0, text.output
    result = run(*args, "--out", tmp_path / "json", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [m["name"] for m in doc["meshes"]] == ["tri", "quad"]
    assert doc["written"] == sorted(FILES) and doc["out"] == str(tmp_path / "json")
    # Every number of the table's lines is in the JSON, rounded as the table shows it.
    lines = text.stdout.splitlines()
    titles = [i for i, line in enumerate(lines) if line.startswith("best possible accuracy")]
    keys = ["cell_centroid", "imagery_centroid", "imagery_centroid_all"]
    assert len(titles) == 3
    for title, key in zip(titles, keys, strict=True):
        for offset, mesh in enumerate(doc["meshes"]):
            cells = lines[title + 3 + offset].split()
            assert cells[0] == mesh["name"] and int(cells[2]) == mesh["cells"]
            assert float(cells[3]) == round(mesh["kept_pct"], 2)
            values = [float(v) for v in cells[4:]]
            assert values == [round(v, 2) for v in mesh[key].values()]
    # The equal-cell-count table: cells, kept% and imagery-label accuracy per kind.
    matched = lines[lines.index(next(x for x in lines if "equal cell counts" in x)) + 3]
    numbers = [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?", matched)]
    pair = doc["matched"][0]
    expected = [pair["cells"]["delaunay"], pair["cells"]["quadtree"]]
    expected += [round(pair["kept_pct"][k]) for k in ("delaunay", "quadtree")]
    for t in ("1", "25", "200"):
        expected += [round(v, 1) for v in pair["imagery_centroid"][t].values()]
    assert numbers == expected


def test_compare_reads_a_dataset(tmp_path: Path) -> None:
    from .conftest import write_dataset

    lat, lon = clustered_points(2000, seed=8)
    splits = np.where(np.arange(lat.size) % 4 == 0, "val", "train")
    root = write_dataset(tmp_path / "world", lat, lon, splits)
    mesh = DelaunayMesh(refinement_limit=150, minimum_examples=15, init_grid=8).fit(lat, lon)
    path = mesh.save(tmp_path / "m.npz")
    result = run(
        "mesh", "compare", "--data", root, "--mesh", path, "--out", tmp_path / "r", "--json"
    )
    assert result.exit_code == 0, result.output
    assert "using its training photos (--split train)" in " ".join(result.output.split())
    doc = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert doc["points"] == 1500
    failed_with(
        run("mesh", "compare", "--points", root, "--mesh", path, "--out", tmp_path / "x"),
        "pass it as --data",
    )
