"""`trigeo mesh ...` through the root Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.data.table import Dataset
from trigeo.mesh import DelaunayMesh, load_mesh

from .conftest import clustered_points, write_dataset

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def build(points: Path, out: Path, limit: float, minimum: float, *extra):
    """`trigeo mesh build` with explicit limits (a directory is given as --data)."""
    flag = "--data" if Path(points).is_dir() else "--points"
    return run(
        "mesh", "build", flag, points, "--out", out,
        "--refinement-limit", limit, "--minimum-examples", minimum, *extra,
    )  # fmt: skip


def failed_with(result, *needles: str) -> None:
    """The command failed with status 2 and its one-line message says each needle.

    Whitespace is normalized because rich wraps long lines to the terminal width.
    """
    assert result.exit_code == 2, result.output
    text = " ".join((result.output + str(result.exception or "")).split())
    for needle in needles:
        assert needle in text, text


@pytest.fixture(scope="module")
def points_csv(tmp_path_factory) -> Path:
    lat, lon = clustered_points(3000, seed=11)
    path = tmp_path_factory.mktemp("cli") / "photos.csv"
    pairs = zip(lat.tolist(), lon.tolist(), strict=True)
    rows = "\n".join(f"{i},{a!r},{b!r}" for i, (a, b) in enumerate(pairs))
    path.write_text("photo_id,Latitude,LONGITUDE\n" + rows + "\n")
    return path


@pytest.fixture(scope="module")
def mesh_file(points_csv: Path) -> Path:
    out = points_csv.parent / "mesh.npz"
    result = build(points_csv, out, 100, 8)
    assert result.exit_code == 0, result.output
    return out


def test_every_command_has_help() -> None:
    for command in ("", "build", "info", "oracle", "locate", "export", "plot"):
        result = run("mesh", *([command] if command else []), "--help")
        assert result.exit_code == 0
        assert "Usage" in result.output


def test_build_and_info(mesh_file: Path) -> None:
    result = run("mesh", "info", "--mesh", mesh_file, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    mesh = DelaunayMesh.load(mesh_file)
    assert info["cells"] == mesh.n_cells_ and info["triangles"] == len(mesh.triangles_)
    assert info["points"] == 3000
    assert 0.0 <= info["dropped_share"] < 0.5
    areas = mesh.cell_areas_km2()
    assert info["cell_area_km2"]["median"] == pytest.approx(float(np.median(areas)))
    text = run("mesh", "info", "--mesh", mesh_file)
    assert "cells kept" in text.output and str(mesh.n_cells_) in text.output


def test_build_preset_scaled(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "coarse.npz"
    result = run(
        "mesh", "build", "--points", points_csv, "--preset", "coarse", "--scaled", "--out", out
    )
    assert result.exit_code == 0, result.output
    mesh = DelaunayMesh.load(out)
    assert mesh.refinement_limit == pytest.approx(8000 * 3000 / 2_000_000)
    assert mesh.preset_ == "coarse"


def test_oracle_json_shape(mesh_file: Path, points_csv: Path) -> None:
    result = run("mesh", "oracle", "--mesh", mesh_file, "--points", points_csv, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert list(report) == [
        "cells",
        "points",
        "points_in_kept_cells",
        "cell_centroid",
        "imagery_centroid",
    ]
    for label in ("cell_centroid", "imagery_centroid"):
        assert list(report[label]) == ["1", "25", "200", "750", "2500"]
        values = list(report[label].values())
        assert values == sorted(values) and 0 <= values[0] and values[-1] <= 100
    assert report["points"] == 3000
    table = run("mesh", "oracle", "--mesh", mesh_file, "--points", points_csv)
    assert "imagery_centroid" in table.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_locate_adds_cell_column(mesh_file: Path, points_csv: Path, tmp_path, suffix) -> None:
    out = tmp_path / f"located{suffix}"
    result = run("mesh", "locate", "--mesh", mesh_file, "--points", points_csv, "--out", out)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out) if suffix == ".parquet" else pa.csv.read_csv(out)
    assert table.column_names == ["photo_id", "Latitude", "LONGITUDE", "cell"]
    mesh = DelaunayMesh.load(mesh_file)
    expect = mesh.locate(table["Latitude"].to_numpy(), table["LONGITUDE"].to_numpy())
    np.testing.assert_array_equal(table["cell"].to_numpy(), expect)


def test_export_geojson(mesh_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "mesh.geojson"
    result = run("mesh", "export", "--mesh", mesh_file, "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    mesh = DelaunayMesh.load(mesh_file)
    assert len(doc["features"]) == len(mesh.triangles_)
    kept = [f for f in doc["features"] if f["properties"]["kept"]]
    assert len(kept) == mesh.n_cells_
    for feature in doc["features"]:
        polys = feature["geometry"]["coordinates"]
        if feature["geometry"]["type"] == "Polygon":
            polys = [polys]
        for poly in polys:
            ring = np.asarray(poly[0])
            assert (np.abs(ring[:, 0]) <= 180).all() and (np.abs(ring[:, 1]) <= 90).all()
            # No segment jumps across the map (a web map would draw a band around the
            # world), except along a pole, which closes a polar cap.
            jump = np.abs(np.diff(ring[:, 0])) >= 180
            assert (np.abs(ring[:-1, 1][jump]) == 90).all()
            assert (np.abs(ring[1:, 1][jump]) == 90).all()


def test_plot_png(mesh_file: Path, points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "mesh.png"
    result = run("mesh", "plot", "--mesh", mesh_file, "--out", out, "--points", points_csv)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 50_000


BAD_FILES = {
    "nan": ("lat,lon\n1,2\nnan,3\n", ["row 2", "'lat'"]),
    "inf": ("lat,lon\n1,2\n3,inf\n", ["row 2", "'lon'"]),
    "lat_range": ("lat,lon\n1,2\n3,4\n91,5\n", ["row 3", "'lat'", "outside"]),
    "lon_range": ("lat,lon\n1,200\n", ["row 1", "'lon'", "--wrap-longitude"]),
    "missing": ("lat,foo\n1,2\n", ["longitude", "columns are"]),
    "empty": ("", ["empty"]),
    "header_only": ("lat,lon\n", ["no data rows"]),
    "text": ("lat,lon\n1,2\nabc,3\n", ["row 2", "'lat'", "abc"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_points_name_row_and_column(case: str, tmp_path: Path) -> None:
    content, needles = BAD_FILES[case]
    src = tmp_path / f"{case}.csv"
    src.write_text(content)
    out = tmp_path / "out.npz"
    result = build(src, out, 10, 1)
    failed_with(result, *needles)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # nothing partial


def test_wrap_longitude_and_named_columns(tmp_path: Path) -> None:
    src = tmp_path / "wrapped.csv"
    src.write_text("y,x\n10,200\n-10,-190\n20,30\n")
    out = tmp_path / "m.npz"
    columns = ["--lat-col", "y", "--lon-col", "x"]
    failed_with(build(src, out, 10, 1, *columns), "--wrap-longitude")
    result = build(src, out, 10, 1, *columns, "--wrap-longitude")
    assert result.exit_code == 0, result.output
    assert DelaunayMesh.load(out).n_points_ == 3


def test_bad_mesh_files(points_csv: Path, mesh_file: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 this is not really a zip")
    out = tmp_path / "located.csv"
    for command in (
        ["info", "--mesh", junk],
        ["locate", "--mesh", junk, "--points", points_csv, "--out", out],
    ):
        failed_with(run("mesh", *command), "junk.npz", "mesh")
    assert not out.exists()
    with np.load(mesh_file) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["format_version"] = 0
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    result = run("mesh", "oracle", "--mesh", old, "--points", points_csv)
    failed_with(result, "format version 0", "rebuild")


def test_build_argument_errors(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    cases = [
        (["--preset", "coarse", "--refinement-limit", 5], "cannot be combined"),
        (["--refinement-limit", 5], "give --preset"),
        (["--refinement-limit", 5, "--minimum-examples", 1, "--scaled"], "--scaled"),
        (["--preset", "huge"], "unknown mesh preset"),
    ]
    for extra, needle in cases:
        result = run("mesh", "build", "--points", points_csv, "--out", out, *extra)
        failed_with(result, needle)
    assert not out.exists()


def test_build_from_training_split_only(points_csv: Path, tmp_path: Path) -> None:
    lat, lon = clustered_points(3000, seed=11)
    split = np.where(np.arange(lat.size) % 4 == 0, "val", "train")
    table = tmp_path / "table.parquet"
    pq.write_table(pa.table({"lat": lat, "lon": lon, "split": split}), table)
    out = tmp_path / "train.npz"
    result = build(table, out, 100, 8, "--split", "train")
    assert result.exit_code == 0, result.output
    train = split == "train"
    expected = DelaunayMesh(refinement_limit=100, minimum_examples=8).fit(lat[train], lon[train])
    assert DelaunayMesh.load(out).mesh_hash == expected.mesh_hash
    failed_with(
        run("mesh", "build", "--points", table, "--split", "heads", "--preset", "coarse",
            "--out", tmp_path / "none.npz"),
        "no rows with split 'heads'",
    )  # fmt: skip
    assert not (tmp_path / "none.npz").exists()


# --- where the points came from, and the split a dataset defaults to ---------------------

DEFAULT_NOTE = "is a trigeo dataset: using its training photos (--split train)"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """A dataset directory whose photos are 80% train and 20% val."""
    lat, lon = clustered_points(3000, seed=5)
    splits = np.where(np.arange(lat.size) % 5 == 0, "val", "train")
    root = write_dataset(tmp_path_factory.mktemp("ds") / "world", lat, lon, splits)
    return root, lat, lon, splits


def said(result, needle: str) -> bool:
    """The command's console output says ``needle`` (rich may wrap lines)."""
    return needle in " ".join(result.output.split())


@pytest.mark.parametrize("as_file", [False, True], ids=["directory", "table.parquet"])
def test_build_on_a_dataset_defaults_to_train(world, tmp_path: Path, as_file: bool) -> None:
    root, lat, lon, splits = world
    points = root / "table.parquet" if as_file else root
    out = tmp_path / "m.npz"
    result = build(points, out, 100, 8)
    assert result.exit_code == 0, result.output
    assert said(result, f"{points} {DEFAULT_NOTE}; pass --split all to use every row")
    mesh = DelaunayMesh.load(out)
    assert mesh.points_source_ == {
        "path": str(points),
        "dataset_sha256": Dataset.open(root).hash,
        "split": "train",
        "splits_used": ["train"],
    }
    train = splits == "train"
    expected = DelaunayMesh(refinement_limit=100, minimum_examples=8).fit(lat[train], lon[train])
    assert mesh.mesh_hash == expected.mesh_hash
    assert mesh.n_points_ == int(train.sum()) == 2400


def test_build_on_a_dataset_with_split_all(world, tmp_path: Path) -> None:
    root, lat, lon, _ = world
    out = tmp_path / "all.npz"
    result = build(root, out, 100, 8, "--split", "all")
    assert result.exit_code == 0, result.output
    assert not said(result, "trigeo dataset")
    mesh = DelaunayMesh.load(out)
    assert mesh.points_source_ == {
        "path": str(root),
        "dataset_sha256": Dataset.open(root).hash,
        "split": None,
        "splits_used": ["train", "val"],
    }
    expected = DelaunayMesh(refinement_limit=100, minimum_examples=8).fit(lat, lon)
    assert mesh.mesh_hash == expected.mesh_hash
    # An explicit evaluation split is obeyed (and recorded, so training can refuse it).
    result = build(root, out, 100, 8, "--split", "val")
    assert result.exit_code == 0, result.output
    assert DelaunayMesh.load(out).points_source_["splits_used"] == ["val"]


def test_build_on_a_plain_file_records_no_dataset(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.npz"
    result = build(points_csv, out, 100, 8)
    assert result.exit_code == 0, result.output
    assert not said(result, "trigeo dataset")
    assert DelaunayMesh.load(out).points_source_ == {
        "path": str(points_csv),
        "dataset_sha256": None,
        "split": None,
        "splits_used": None,
    }


def test_build_rejects_a_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    out = tmp_path / "m.npz"
    failed_with(build(tmp_path / "photos", out, 100, 8), "not a trigeo dataset directory")
    assert not out.exists()


def test_info_shows_the_source(world, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    assert build(root, out, 100, 8).exit_code == 0
    digest = Dataset.open(root).hash
    text = run("mesh", "info", "--mesh", out)
    assert text.exit_code == 0, text.output
    assert said(text, f"points source {root}, split train (rows: train), dataset {digest[:12]}")
    info = json.loads(run("mesh", "info", "--mesh", out, "--json").output)
    assert info["points_source"] == DelaunayMesh.load(out).points_source_
    plain = run(
        "mesh", "info", "--mesh", DelaunayMesh(100, 8).fit([1.0], [2.0]).save(tmp_path / "p.npz")
    )
    assert said(plain, "points source not recorded")
    assert said(plain, "warning: no triangle holds minimum_examples=8 photos")


def test_oracle_on_a_dataset_defaults_to_train(world, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    assert build(root, out, 100, 8).exit_code == 0
    result = run("mesh", "oracle", "--mesh", out, "--data", root)
    assert result.exit_code == 0, result.output
    assert said(result, f"{root} {DEFAULT_NOTE}")
    report = json.loads(run("mesh", "oracle", "--mesh", out, "--data", root, "--json").stdout)
    assert report["points"] == 2400
    report = json.loads(run("mesh", "oracle", "--mesh", out, "--data", root, "--split", "val",
                            "--json").stdout)  # fmt: skip
    assert report["points"] == 600


# --- too few photos per cell --------------------------------------------------------------


def test_build_warns_when_cells_are_too_small(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scaled.npz"
    result = run(
        "mesh", "build", "--points", points_csv, "--preset", "coarse", "--scaled", "--out", out
    )
    assert result.exit_code == 0, result.output
    info = json.loads(run("mesh", "info", "--mesh", out, "--json").output)
    mean = info["photos_per_cell"]["mean"]
    assert mean == info["points_in_kept_cells"] / info["cells"] < 20
    assert info["warnings"][0].startswith(
        f"kept cells hold {mean:.1f} photos each on average, fewer than 20:"
    )
    assert said(result, f"warning: {info['warnings'][0]}")
    assert said(run("mesh", "info", "--mesh", out), f"warning: {info['warnings'][0]}")
    roomy = build(points_csv, tmp_path / "roomy.npz", 400, 50)
    assert roomy.exit_code == 0, roomy.output
    assert "warning" not in roomy.output
    assert (
        json.loads(run("mesh", "info", "--mesh", tmp_path / "roomy.npz", "--json").output)[
            "warnings"
        ]
        == []
    )


def test_build_with_a_coarser_initial_grid(points_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "g8.npz"
    result = build(points_csv, out, 100, 20, "--init-grid", "8")
    assert result.exit_code == 0, result.output
    mesh = DelaunayMesh.load(out)
    assert mesh.init_grid == 8
    lat, lon = clustered_points(3000, seed=11)
    expected = DelaunayMesh(refinement_limit=100, minimum_examples=20, init_grid=8).fit(lat, lon)
    assert mesh.mesh_hash == expected.mesh_hash
    assert run("mesh", "build", "--points", points_csv, "--out", out, "--preset", "coarse",
               "--init-grid", "2").exit_code == 2  # fmt: skip


def test_locate_takes_a_dataset_directory(world, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    assert build(root, out, 100, 8).exit_code == 0
    located = tmp_path / "located.parquet"
    result = run("mesh", "locate", "--mesh", out, "--data", root, "--out", located)
    assert result.exit_code == 0, result.output
    table = pq.read_table(located)
    assert table.num_rows == 3000 and table.column_names[-1] == "cell"


# --- a mesh without cells is an error -----------------------------------------------------


@pytest.mark.parametrize("kind", ["delaunay", "quadtree"])
def test_build_refuses_a_mesh_without_cells(points_csv: Path, tmp_path: Path, kind: str) -> None:
    from trigeo.mesh import create_mesh

    out = tmp_path / "empty.npz"
    result = build(points_csv, out, 100, 5000, "--kind", kind)
    lat, lon = clustered_points(3000, seed=11)
    unfit = create_mesh(kind, refinement_limit=100, minimum_examples=5000)
    fullest = int(unfit.fit(lat, lon).counts_.max())
    region = unfit.region
    failed_with(
        result,
        f"no {region} holds minimum_examples=5000 photos",
        "no file was written",
        f"--refinement-limit 100 --minimum-examples {fullest} keeps one cell at least",
        "minimum_examples is above refinement_limit",
    )
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    # The limits it names do keep a cell.
    result = build(points_csv, out, 100, fullest, "--kind", kind)
    assert result.exit_code == 0, result.output
    assert load_mesh(out).n_cells_ >= 1


def test_build_refuses_a_preset_without_cells(tmp_path: Path) -> None:
    src = tmp_path / "few.csv"
    src.write_text("lat,lon\n" + "\n".join(f"{i % 50},{i % 170}" for i in range(300)) + "\n")
    out = tmp_path / "coarse.npz"
    result = run("mesh", "build", "--points", src, "--preset", "coarse", "--out", out)
    failed_with(result, "no triangle holds minimum_examples=1000", "a coarser --init-grid")
    assert not out.exists()


# --- --points FILE or --data DIR ----------------------------------------------------------


def test_points_naming_a_dataset_directory_says_use_data(world, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    args = ["--refinement-limit", 100, "--minimum-examples", 8, "--out", out]
    failed_with(
        run("mesh", "build", "--points", root, *args),
        "is a trigeo dataset directory: pass it as --data",
    )
    assert not out.exists()
    assert build(root, out, 100, 8).exit_code == 0  # as --data
    failed_with(run("mesh", "oracle", "--mesh", out, "--points", root), "pass it as --data")


def test_points_and_data_exactly_one(world, points_csv: Path, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    limits = ["--refinement-limit", 100, "--minimum-examples", 8, "--out", out]
    failed_with(run("mesh", "build", "--points", points_csv, "--data", root, *limits), "not both")
    failed_with(run("mesh", "build", *limits), "--points FILE", "--data DIR")
    failed_with(run("mesh", "build", "--data", points_csv, *limits), "--data takes a trigeo")
    assert not out.exists()
    assert build(points_csv, out, 100, 8).exit_code == 0
    for command in (["oracle"], ["locate", "--out", tmp_path / "l.csv"]):
        both = run("mesh", *command, "--mesh", out, "--points", points_csv, "--data", root)
        failed_with(both, "not both")
        failed_with(run("mesh", *command, "--mesh", out), "--points FILE", "--data DIR")
    png = tmp_path / "m.png"
    failed_with(
        run("mesh", "plot", "--mesh", out, "--out", png, "--points", points_csv, "--data", root),
        "not both",
    )
    assert not png.exists()


def test_plot_overlays_a_dataset(world, tmp_path: Path) -> None:
    root = world[0]
    out = tmp_path / "m.npz"
    assert build(root, out, 100, 8).exit_code == 0
    png = tmp_path / "m.png"
    result = run("mesh", "plot", "--mesh", out, "--out", png, "--data", root)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_old_spellings_are_gone(mesh_file: Path, tmp_path: Path) -> None:
    assert run("mesh", "info", mesh_file).exit_code == 2  # the mesh is --mesh now
    out = tmp_path / "m.geojson"
    assert run("mesh", "export", "--mesh", mesh_file, "--geojson", out).exit_code == 2
    assert not out.exists()
