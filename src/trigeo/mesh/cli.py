"""``trigeo mesh ...``: build, inspect, evaluate, apply, export and plot meshes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trigeo.errors import InputError

app = typer.Typer(
    name="mesh",
    help="Adaptive spherical Delaunay meshes: build, info, oracle, locate, export, plot.",
    no_args_is_help=True,
)

PointsOpt = Annotated[
    Path,
    typer.Option(
        "--points",
        help="CSV or Parquet file with latitude/longitude columns, or a trigeo dataset directory.",
    ),
]
LatColOpt = Annotated[
    str | None, typer.Option("--lat-col", help="Latitude column (default: lat/latitude, any case).")
]
LonColOpt = Annotated[
    str | None,
    typer.Option("--lon-col", help="Longitude column (default: lon/lng/longitude, any case)."),
]
WrapOpt = Annotated[
    bool,
    typer.Option(
        "--wrap-longitude", help="Wrap longitudes outside [-180, 180] instead of failing."
    ),
]
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="Use only rows whose 'split' column has this value; 'all' uses every row. "
        "Default for a trigeo dataset (directory or its table.parquet): train. "
        "Default for any other file: every row.",
    ),
]

#: ``--split`` value that selects every row explicitly.
ALL_SPLITS = "all"
#: The split a command reads from a trigeo dataset when ``--split`` is not given.
DEFAULT_DATASET_SPLIT = "train"


def _resolve_split(points: Path, split: str | None) -> str | None:
    """The split filter to apply to ``points`` (None: every row).

    A dataset read whole would mix evaluation photos into a mesh (or into the
    photos its best possible accuracy is measured on), so without ``--split``
    a dataset gives its training photos, and the console says so.
    """
    from rich.console import Console

    from trigeo.points import dataset_table_path

    if split == ALL_SPLITS:
        return None
    if split is None and dataset_table_path(points) is not None:
        Console(stderr=True).print(
            f"{points} is a trigeo dataset: using its training photos "
            f"(--split {DEFAULT_DATASET_SPLIT}); pass --split {ALL_SPLITS} to use every row",
            highlight=False,
            markup=False,
        )
        return DEFAULT_DATASET_SPLIT
    return split


def _print_warnings(messages: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    for message in messages:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", highlight=False)


MeshArg = Annotated[Path, typer.Argument(help="Mesh file written by `trigeo mesh build`.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def build(
    points: PointsOpt,
    out: Annotated[Path, typer.Option("--out", help="Mesh file to write (.npz).")],
    preset: Annotated[
        str | None, typer.Option("--preset", help="Study preset: coarse, fine or fineP.")
    ] = None,
    scaled: Annotated[
        bool,
        typer.Option("--scaled", help="Scale the preset's limits to the number of points."),
    ] = False,
    refinement_limit: Annotated[
        float | None,
        typer.Option("--refinement-limit", help="Split triangles with more photos than this."),
    ] = None,
    minimum_examples: Annotated[
        float | None,
        typer.Option("--minimum-examples", help="Drop triangles with fewer photos than this."),
    ] = None,
    init_grid: Annotated[
        int,
        typer.Option(
            "--init-grid",
            min=3,
            help="Rows and columns of the initial grid (the study: 31). Coarser grids keep "
            "more photos on small datasets (docs/mesh.md, 'Small datasets').",
        ),
    ] = 31,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    split: SplitOpt = None,
) -> None:
    """Build a mesh from photo coordinates (a preset, or explicit limits).

    On a trigeo dataset the mesh is built from its train split unless --split
    says otherwise; the mesh file records the points' file, dataset hash and splits.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.points import read_points_with_source

    if preset is None and (refinement_limit is None or minimum_examples is None):
        raise InputError("give --preset NAME, or both --refinement-limit and --minimum-examples")
    if preset is not None and (refinement_limit is not None or minimum_examples is not None):
        raise InputError("--preset cannot be combined with --refinement-limit/--minimum-examples")
    if scaled and preset is None:
        raise InputError("--scaled only applies to --preset")
    lat, lon, source = read_points_with_source(
        points, lat_col, lon_col, wrap_longitude=wrap_longitude, split=_resolve_split(points, split)
    )
    if preset is not None:
        mesh = DelaunayMesh.from_preset(
            preset, scale_to=lat.size if scaled else None, init_grid=init_grid
        )
    else:
        mesh = DelaunayMesh(
            refinement_limit=refinement_limit,
            minimum_examples=minimum_examples,
            init_grid=init_grid,
        )
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]refining[/bold] round {task.fields[round]}"),
        BarColumn(),
        TextColumn("{task.fields[triangles]} triangles, {task.fields[over]} over the limit"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("refine", total=None, round=0, triangles=0, over=0)

        def report(state: dict) -> None:
            bar.update(
                task,
                round=state["round"],
                triangles=state["triangles"],
                over=state["over_limit"],
            )

        mesh.fit(lat, lon, progress=report, source=source)
    mesh.save(out)
    info = mesh.summary()
    typer.echo(
        f"{out}: {info['cells']} cells kept of {info['triangles']} triangles, "
        f"{100 * info['dropped_share']:.2f}% of {info['points']} points in dropped triangles"
    )
    _print_warnings(info["warnings"])


@app.command()
def info(mesh_path: MeshArg, as_json: JsonOpt = False) -> None:
    """Kept cells, triangles, points dropped, cell areas, photos per cell and points source."""
    from trigeo.mesh.delaunay import DelaunayMesh

    summary = DelaunayMesh.load(mesh_path).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    area = summary["cell_area_km2"]
    typer.echo(f"cells kept            {summary['cells']}")
    typer.echo(f"triangles             {summary['triangles']}")
    typer.echo(f"points                {summary['points']}")
    typer.echo(f"dropped share         {100 * summary['dropped_share']:.2f}%")
    if area["min"] is not None:  # a mesh with no cells has no areas to show
        typer.echo(
            f"cell area km²         min {area['min']:.4g}, median {area['median']:.4g}, "
            f"max {area['max']:.4g}"
        )
    per_cell = summary["photos_per_cell"]
    if per_cell["mean"] is not None:
        typer.echo(
            f"photos per cell       mean {per_cell['mean']:.1f}, min {per_cell['min']}, "
            f"median {per_cell['median']:g}"
        )
    typer.echo(f"points source         {_describe_source(summary['points_source'])}")
    typer.echo(f"mesh hash             {summary['mesh_hash'][:16]}")
    _print_warnings(summary["warnings"])


def _describe_source(source: dict | None) -> str:
    """One line for ``mesh info``: file, split filter, splits used, dataset hash."""
    if source is None:
        return "not recorded (built from arrays, or by a trigeo that did not record it)"
    parts = [source["path"], f"split {source['split'] or 'all rows'}"]
    if source["splits_used"] is not None:
        parts[-1] += f" (rows: {', '.join(source['splits_used'])})"
    if source["dataset_sha256"] is not None:
        parts.append(f"dataset {source['dataset_sha256'][:12]}")
    return ", ".join(parts)


@app.command()
def oracle(
    mesh_path: MeshArg,
    points: PointsOpt,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    split: SplitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Best possible accuracy: each point labelled with its own cell's centroid.

    On a trigeo dataset the points are its train split unless --split says
    otherwise (the photos a mesh is built from, as in the study's table).
    """
    from rich.console import Console
    from rich.table import Table

    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.mesh.oracle import oracle_report
    from trigeo.points import read_points

    mesh = DelaunayMesh.load(mesh_path)
    lat, lon = read_points(
        points, lat_col, lon_col, wrap_longitude=wrap_longitude, split=_resolve_split(points, split)
    )
    report = oracle_report(mesh, lat, lon)
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(
        title=f"best possible accuracy, {report['points_in_kept_cells']} of "
        f"{report['points']} points in {report['cells']} kept cells"
    )
    table.add_column("label")
    for key in report["cell_centroid"]:
        table.add_column(f"{key} km", justify="right")
    for label in ("cell_centroid", "imagery_centroid"):
        table.add_row(label, *(f"{v:.2f}" for v in report[label].values()))
    Console().print(table)


@app.command()
def locate(
    mesh_path: MeshArg,
    points: PointsOpt,
    out: Annotated[Path, typer.Option("--out", help="Output CSV or Parquet (by extension).")],
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="Threads for point location.")
    ] = 1,
) -> None:
    """Add a `cell` column (kept cell id, -1 in a dropped triangle) to a points table.

    Every row is located (no split filter); a dataset directory gives its table.parquet.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.points import dataset_table_path, points_from_table, read_table
    from trigeo.provenance import atomic_path

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError("output must end in .csv or .parquet", source=out)
    mesh = DelaunayMesh.load(mesh_path)
    points = dataset_table_path(points) or points
    table = read_table(points)  # read once: the output is this table plus a column
    lat, lon = points_from_table(table, points, lat_col, lon_col, wrap_longitude=wrap_longitude)
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
    kept = int((cells.to_numpy() >= 0).sum())
    typer.echo(f"{out}: {len(table)} rows, {kept} in kept cells")


@app.command()
def export(
    mesh_path: MeshArg,
    geojson: Annotated[Path, typer.Option("--geojson", help="GeoJSON file to write.")],
    step_deg: Annotated[
        float, typer.Option("--step-deg", help="Densify edges to at most this many degrees.")
    ] = 1.0,
) -> None:
    """Export triangles as GeoJSON (edges densified, split at the antimeridian)."""
    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.mesh.geojson import write_geojson

    mesh = DelaunayMesh.load(mesh_path)
    write_geojson(mesh, geojson, max_step_deg=step_deg)
    typer.echo(f"{geojson}: {len(mesh.triangles_)} triangles, {mesh.n_cells_} kept cells")


@app.command()
def plot(
    mesh_path: MeshArg,
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    points: Annotated[
        Path | None, typer.Option("--points", help="Optional points to overlay (CSV/Parquet).")
    ] = None,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
) -> None:
    """World map of the mesh: triangles, kept cells shaded, coastlines (offline)."""
    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.mesh.plot import plot_mesh
    from trigeo.points import read_points

    mesh = DelaunayMesh.load(mesh_path)
    coords = None
    if points is not None:
        coords = read_points(points, lat_col, lon_col, wrap_longitude=wrap_longitude)
    plot_mesh(mesh, out, points=coords)
    typer.echo(f"{out}: written")
