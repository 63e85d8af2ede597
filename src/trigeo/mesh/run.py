"""What each ``trigeo mesh`` command does, as library functions (the CLI parses and prints).

:func:`build_mesh_file` (``mesh build``) refuses a mesh without cells: it
raises with the reason and limits that keep a cell, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigeo.errors import InputError
from trigeo.mesh.base import Mesh, ProgressCallback
from trigeo.mesh.factory import create_mesh
from trigeo.mesh.inputs import PointsInput

__all__ = [
    "build_mesh_file",
    "export_mesh_file",
    "locate_points_file",
    "no_cells_message",
    "oracle_of_file",
    "plot_mesh_file",
]


def build_mesh_file(
    out: Path,
    points: PointsInput,
    kind: str = "delaunay",
    preset: str | None = None,
    scaled: bool = False,
    refinement_limit: float | None = None,
    minimum_examples: float | None = None,
    init_grid: int | None = None,
    init_level: int | None = None,
    progress: ProgressCallback | None = None,
) -> Mesh:
    """``trigeo mesh build``: fit a mesh of ``kind`` on ``points`` and save it to ``out``.

    The options are those of :func:`~trigeo.mesh.factory.create_mesh`;
    ``scaled`` scales the preset's limits to the number of points read. They
    are checked before the points are read.

    Raises
    ------
    InputError
        Bad options or points, or a mesh that keeps no cell (nothing is
        written then: :func:`no_cells_message` says why and what would work).
    """
    # Checked first, with a stand-in photo count: a bad option should not cost a read.
    mesh = create_mesh(
        kind,
        preset,
        refinement_limit,
        minimum_examples,
        init_grid,
        init_level,
        1 if scaled else None,
    )
    lat, lon, source = points.read()
    if scaled:
        mesh = create_mesh(kind, preset, None, None, init_grid, init_level, scale_to=lat.size)
    mesh.fit(lat, lon, progress=progress, source=source)
    if mesh.n_cells_ == 0:
        raise InputError(no_cells_message(mesh))
    mesh.save(out)
    return mesh


def no_cells_message(mesh: Mesh) -> str:
    """Why a fitted mesh has no cells, and limits that would keep at least one.

    Refinement does not depend on ``minimum_examples``, so the same
    ``refinement_limit`` with ``minimum_examples`` at most the fullest region's
    photo count gives the same regions with at least that region kept.
    """
    region = mesh.region
    head = (
        f"no {region} holds minimum_examples={mesh.minimum_examples:g} photos, so the mesh "
        f"would have no cells ({mesh.n_points_} points, refinement_limit="
        f"{mesh.refinement_limit:g}); no file was written"
    )
    fullest = int(mesh.counts_.max()) if mesh.counts_.size else 0
    if fullest == 0:
        return head + ": there are no points to count"
    kept = int((mesh.counts_ >= fullest / 2).sum())
    message = (
        f"{head}. The fullest {region} holds {fullest} photos: --refinement-limit "
        f"{mesh.refinement_limit:g} --minimum-examples {fullest} keeps one cell at least "
        f"(--minimum-examples {fullest / 2:g} keeps {kept})"
    )
    coarser = _coarser_start(mesh)
    if coarser:
        message += f", or start from larger {mesh.regions_name}: {coarser}"
    if mesh.minimum_examples > mesh.refinement_limit:
        message += (
            f". minimum_examples is above refinement_limit: a {region} over the limit splits, "
            "so only one that cannot split could hold that many"
        )
    return message


def _coarser_start(mesh: Mesh) -> str | None:
    """The option that starts ``mesh``'s kind from fewer, larger regions, if any."""
    params = mesh.get_params()
    if mesh.kind == "delaunay" and params["init_grid"] > 3:
        return f"a coarser --init-grid (below {params['init_grid']})"
    if mesh.kind == "quadtree" and params["init_level"] > 0:
        return f"a lower --init-level (below {params['init_level']})"
    return None


def oracle_of_file(mesh_path: Path, points: PointsInput) -> dict[str, Any]:
    """``trigeo mesh oracle``: the best possible accuracy of a mesh file on ``points``
    (:func:`~trigeo.mesh.oracle.oracle_report`)."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.oracle import oracle_report

    mesh = load_mesh(mesh_path)
    lat, lon, _ = points.read()
    return oracle_report(mesh, lat, lon)


def locate_points_file(
    mesh_path: Path, points: PointsInput, out: Path, threads: int | None = None
) -> tuple[int, int]:
    """``trigeo mesh locate``: write ``points``' table with a ``cell`` column added
    (or replaced): the kept cell id, -1 in a dropped region.

    ``out`` is CSV or Parquet by its extension; ``threads`` (default: every
    core this process may use) does not change the answer. Returns the number
    of rows and of rows in kept cells.
    """
    import os

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from trigeo.mesh.artifact import load_mesh
    from trigeo.points import points_from_table, read_table
    from trigeo.provenance import atomic_path

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError("output must end in .csv or .parquet", source=out)
    mesh = load_mesh(mesh_path)
    path = points.table_path()
    table = read_table(path)  # read once: the output is this table plus a column
    lat, lon = points_from_table(
        table, path, points.lat_col, points.lon_col, wrap_longitude=points.wrap_longitude
    )
    if threads is None:
        affinity = getattr(os, "sched_getaffinity", None)
        threads = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    cells = pa.array(mesh.locate(lat, lon, threads=threads), type=pa.int64())
    if "cell" in table.column_names:
        table = table.set_column(table.column_names.index("cell"), "cell", cells)
    else:
        table = table.append_column("cell", cells)
    with atomic_path(out) as tmp:
        if suffix == ".csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)
    return len(table), int((cells.to_numpy() >= 0).sum())


def export_mesh_file(mesh_path: Path, out: Path, step_deg: float = 1.0) -> Mesh:
    """``trigeo mesh export``: every region of a mesh file as GeoJSON (edges densified
    to ``step_deg``, split at the antimeridian); returns the mesh."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.geojson import write_geojson

    mesh = load_mesh(mesh_path)
    write_geojson(mesh, out, max_step_deg=step_deg)
    return mesh


def plot_mesh_file(mesh_path: Path, out: Path, points: PointsInput | None = None) -> None:
    """``trigeo mesh plot``: a world map PNG of a mesh file, ``points`` overlaid if given."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.plot import plot_mesh

    mesh = load_mesh(mesh_path)
    coords = None
    if points is not None:
        lat, lon, _ = points.read()
        coords = (lat, lon)
    plot_mesh(mesh, out, points=coords)
