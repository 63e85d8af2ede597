"""``trigeo mesh ...``: build, inspect, evaluate, apply, export, plot and compare meshes.

Every command takes either kind of mesh file (Delaunay or S2 quad-tree), as
``--mesh FILE``. Photos come from ``--points FILE`` (CSV or Parquet) or
``--data DIR`` (a trigeo dataset). Each command parses its options, calls one
library function (:mod:`trigeo.mesh.run`, :mod:`trigeo.mesh.compare`) and
prints the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trigeo import options

app = typer.Typer(
    name="mesh",
    help="Adaptive meshes (spherical Delaunay or S2 quad-tree): build, info, oracle, locate, "
    "export, plot, compare.",
    no_args_is_help=True,
)

MeshOpt = Annotated[Path, options.mesh("Mesh file (trigeo mesh build), of either kind.")]
PointsOpt = Annotated[
    Path | None,
    options.points("CSV or Parquet file with latitude/longitude columns (or give --data)."),
]
DataOpt = Annotated[
    Path | None,
    options.data("Trigeo dataset directory (or give --points); default split: train."),
]
AllRowsDataOpt = Annotated[
    Path | None, options.data("Trigeo dataset directory (or give --points); every row is read.")
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
    options.split(
        "Use only rows whose 'split' column has this value; 'all' uses every row. "
        "Default for --data (or a dataset's table.parquet): train. "
        "Default for any other file: every row."
    ),
]


def _points(
    points: Path | None,
    data: Path | None,
    lat_col: str | None,
    lon_col: str | None,
    wrap_longitude: bool,
    split: str | None = None,
    **how: Any,
) -> Any:
    """The resolved ``--points``/``--data``; the default-split note goes to stderr."""
    from trigeo.mesh.inputs import points_input
    from trigeo.mesh.progress import print_note

    resolved = points_input(
        points,
        data,
        split,
        lat_col=lat_col,
        lon_col=lon_col,
        wrap_longitude=wrap_longitude,
        **how,
    )
    print_note(getattr(resolved, "note", None))
    return resolved


@app.command()
def build(
    out: Annotated[Path, options.out("Mesh file to write (.npz).")],
    points: PointsOpt = None,
    data: DataOpt = None,
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
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="delaunay (the study's triangles) or quadtree (adaptive S2 cells, as the "
            "S2-based systems).",
        ),
    ] = "delaunay",
    init_grid: Annotated[
        int | None,
        typer.Option(
            "--init-grid",
            min=3,
            help="Delaunay: rows and columns of the initial grid (default 31, the study's). "
            "Coarser grids keep more photos on small datasets (docs/mesh.md, 'Small datasets').",
        ),
    ] = None,
    init_level: Annotated[
        int | None,
        typer.Option(
            "--init-level",
            min=0,
            max=12,
            help="Quad-tree: the S2 level every cell starts at (default 4: 1536 cells, "
            "about the study's initial grid).",
        ),
    ] = None,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    split: SplitOpt = None,
) -> None:
    """Build a mesh from photo coordinates (a preset, or explicit limits).

    --kind quadtree builds S2 cells instead of triangles, with the same limits:
    split cells over --refinement-limit, drop cells under --minimum-examples.
    With --data the mesh is built from the dataset's train split unless --split
    says otherwise; the mesh file records the points' file, dataset hash and splits.
    A mesh that would keep no cell is an error (exit 2) that says which limits work.
    """
    from trigeo.mesh.factory import mesh_class
    from trigeo.mesh.progress import print_warnings, refine_bar
    from trigeo.mesh.run import build_mesh_file

    source = _points(points, data, lat_col, lon_col, wrap_longitude, split)
    region = mesh_class(kind).regions_name
    with refine_bar(region) as report:
        mesh = build_mesh_file(
            out,
            source,
            kind,
            preset,
            scaled,
            refinement_limit,
            minimum_examples,
            init_grid,
            init_level,
            progress=report,
        )
    info = mesh.summary()
    typer.echo(
        f"{out}: {info['cells']} cells kept of {info[region]} {region}, "
        f"{100 * info['dropped_share']:.2f}% of {info['points']} points in dropped {region}"
    )
    print_warnings(info["warnings"])


@app.command()
def info(mesh: MeshOpt, as_json: options.Json = False) -> None:
    """Kind, kept cells, triangles or leaves, dropped points, areas, photos per cell, source."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.progress import print_warnings

    summary = load_mesh(mesh).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo("\n".join(_info_lines(summary)))
    print_warnings(summary["warnings"])


def _info_lines(summary: dict[str, Any]) -> list[str]:
    area = summary["cell_area_km2"]
    lines = [
        f"kind                  {summary['kind']}",
        f"cells kept            {summary['cells']}",
    ]
    if summary["kind"] == "quadtree":
        levels = summary["levels"]
        span = f" (cells at S2 levels {levels['min']}-{levels['max']})" if levels["min"] else ""
        lines.append(f"leaves                {summary['leaves']}{span}")
    else:
        lines.append(f"triangles             {summary['triangles']}")
    lines.append(f"points                {summary['points']}")
    lines.append(f"dropped share         {100 * summary['dropped_share']:.2f}%")
    if area["min"] is not None:  # a mesh with no cells has no areas to show
        lines.append(
            f"cell area km²         min {area['min']:.4g}, median {area['median']:.4g}, "
            f"max {area['max']:.4g}"
        )
    per_cell = summary["photos_per_cell"]
    if per_cell["mean"] is not None:
        lines.append(
            f"photos per cell       mean {per_cell['mean']:.1f}, min {per_cell['min']}, "
            f"median {per_cell['median']:g}"
        )
    lines.append(f"points source         {_describe_source(summary['points_source'])}")
    lines.append(f"mesh hash             {summary['mesh_hash'][:16]}")
    return lines


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
    mesh: MeshOpt,
    points: PointsOpt = None,
    data: DataOpt = None,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    split: SplitOpt = None,
    as_json: options.Json = False,
) -> None:
    """Best possible accuracy: each point labelled with its own cell's centroid.

    With --data the points are the dataset's train split unless --split says
    otherwise (the photos a mesh is built from, as in the study's table).
    """
    from rich.console import Console
    from rich.table import Table

    from trigeo.mesh.run import oracle_of_file

    report = oracle_of_file(mesh, _points(points, data, lat_col, lon_col, wrap_longitude, split))
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
    mesh: MeshOpt,
    out: Annotated[Path, options.out("Output CSV or Parquet (by extension).")],
    points: PointsOpt = None,
    data: AllRowsDataOpt = None,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    threads: options.Threads = None,
) -> None:
    """Add a `cell` column (kept cell id, -1 in a dropped triangle or leaf) to a points table.

    Every row is located (no split filter); --data gives its table.parquet.
    """
    from trigeo.mesh.run import locate_points_file

    source = _points(points, data, lat_col, lon_col, wrap_longitude, split_rows=False)
    rows, kept = locate_points_file(mesh, source, out, threads=threads)
    typer.echo(f"{out}: {rows} rows, {kept} in kept cells")


@app.command()
def export(
    mesh: MeshOpt,
    out: Annotated[Path, options.out("GeoJSON file to write.")],
    step_deg: Annotated[
        float, typer.Option("--step-deg", help="Densify edges to at most this many degrees.")
    ] = 1.0,
) -> None:
    """Export triangles or S2 leaves as GeoJSON (edges densified, split at the antimeridian)."""
    from trigeo.mesh.plot import count_regions
    from trigeo.mesh.run import export_mesh_file

    exported = export_mesh_file(mesh, out, step_deg)
    typer.echo(f"{out}: {count_regions(exported)}, {exported.n_cells_} kept cells")


@app.command()
def plot(
    mesh: MeshOpt,
    out: Annotated[Path, options.out("PNG file to write.")],
    points: Annotated[
        Path | None, options.points("Optional points to overlay (CSV/Parquet).")
    ] = None,
    data: Annotated[
        Path | None, options.data("Optional dataset whose photos to overlay (every row).")
    ] = None,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
) -> None:
    """World map of the mesh: triangles or leaves, kept cells shaded, coastlines (offline)."""
    from trigeo.mesh.run import plot_mesh_file

    overlay = _points(
        points, data, lat_col, lon_col, wrap_longitude, required=False, split_rows=False
    )
    plot_mesh_file(mesh, out, overlay)
    typer.echo(f"{out}: written")


@app.command()
def compare(
    out: Annotated[Path, options.out("Directory for the report.")],
    points: PointsOpt = None,
    data: DataOpt = None,
    mesh: Annotated[
        list[Path] | None,
        options.mesh("Mesh file of either kind; repeat to compare several."),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            help="lon0,lat0,lon1,lat1 of the side-by-side map (default: -11,35,25,60, Europe).",
        ),
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Also build both kinds at several limits, and quad-trees matched to each "
            "Delaunay mesh's cell count, and draw the curves.",
        ),
    ] = False,
    sweep_limits: Annotated[
        str | None,
        typer.Option(
            "--sweep-limits",
            help="Comma-separated refinement limits for --sweep (default: N/50 halving "
            "seven times).",
        ),
    ] = None,
    sweep_ratio: Annotated[
        float,
        typer.Option(
            "--sweep-ratio",
            min=1.0,
            help="Refinement limit / minimum examples in the sweep (the fine preset's: 10).",
        ),
    ] = 10.0,
    init_grid: Annotated[
        int, typer.Option("--init-grid", min=3, help="Delaunay initial grid in the sweep.")
    ] = 31,
    init_level: Annotated[
        int,
        typer.Option("--init-level", min=0, max=12, help="Quad-tree initial level in the sweep."),
    ] = 4,
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
    split: SplitOpt = None,
    as_json: options.Json = False,
) -> None:
    """Compare meshes on one set of photos: cells, areas, photos per cell, best accuracy.

    For each mesh: cells, cell areas, photos per cell and best possible accuracy
    for both labels (tables; in --out: JSON, Markdown, plots, a regional map).
    With --data the photos are the dataset's train split unless --split says otherwise.
    """
    from trigeo.mesh.compare import compare_meshes, tables_json, tables_text
    from trigeo.mesh.progress import step_bar

    source = _points(points, data, lat_col, lon_col, wrap_longitude, split)
    with step_bar("comparing") as bar:
        comparison = compare_meshes(
            out,
            list(mesh or []),
            source,
            region=region,
            with_sweep=sweep,
            sweep_limits=sweep_limits,
            sweep_ratio=sweep_ratio,
            init_grid=init_grid,
            init_level=init_level,
            progress=bar,
        )
    if as_json:
        typer.echo(json.dumps(tables_json(comparison), indent=2))
        return
    typer.echo(tables_text(comparison))
