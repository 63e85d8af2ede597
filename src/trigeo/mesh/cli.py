"""``trigeo mesh ...``: build, inspect, evaluate, apply, export, plot and compare meshes.

Every command takes either kind of mesh file (Delaunay or S2 quad-tree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trigeo.errors import InputError

app = typer.Typer(
    name="mesh",
    help="Adaptive meshes (spherical Delaunay or S2 quad-tree): build, info, oracle, locate, "
    "export, plot, compare.",
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
    On a trigeo dataset the mesh is built from its train split unless --split
    says otherwise; the mesh file records the points' file, dataset hash and splits.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from trigeo.points import read_points_with_source

    if preset is None and (refinement_limit is None or minimum_examples is None):
        raise InputError("give --preset NAME, or both --refinement-limit and --minimum-examples")
    if preset is not None and (refinement_limit is not None or minimum_examples is not None):
        raise InputError("--preset cannot be combined with --refinement-limit/--minimum-examples")
    if scaled and preset is None:
        raise InputError("--scaled only applies to --preset")
    mesh = make_mesh(kind, preset, refinement_limit, minimum_examples, init_grid, init_level)
    lat, lon, source = read_points_with_source(
        points, lat_col, lon_col, wrap_longitude=wrap_longitude, split=_resolve_split(points, split)
    )
    if preset is not None and scaled:
        mesh = make_mesh(kind, preset, None, None, init_grid, init_level, scale_to=lat.size)
    region = "triangles" if mesh.kind == "delaunay" else "leaves"
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]refining[/bold] round {task.fields[round]}"),
        BarColumn(),
        TextColumn("{task.fields[regions]} " + region + ", {task.fields[over]} over the limit"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("refine", total=None, round=0, regions=0, over=0)

        def report(state: dict) -> None:
            bar.update(
                task,
                round=state["round"],
                regions=state.get("triangles", state.get("leaves")),
                over=state["over_limit"],
            )

        mesh.fit(lat, lon, progress=report, source=source)
    mesh.save(out)
    info = mesh.summary()
    typer.echo(
        f"{out}: {info['cells']} cells kept of {info[region]} {region}, "
        f"{100 * info['dropped_share']:.2f}% of {info['points']} points in dropped {region}"
    )
    _print_warnings(info["warnings"])


#: ``--kind`` values.
MESH_KINDS = ("delaunay", "quadtree")


def make_mesh(
    kind: str,
    preset: str | None,
    refinement_limit: float | None,
    minimum_examples: float | None,
    init_grid: int | None = None,
    init_level: int | None = None,
    scale_to: int | None = None,
):  # type: ignore[no-untyped-def]
    """An unfitted mesh of ``kind`` from CLI options (a preset or both limits)."""
    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.mesh.quadtree import QuadtreeMesh

    kind = kind.lower()
    if kind not in MESH_KINDS:
        raise InputError(f"--kind must be one of {', '.join(MESH_KINDS)}, got {kind!r}")
    extra: dict = {}
    if kind == "delaunay":
        if init_level is not None:
            raise InputError("--init-level applies to --kind quadtree; use --init-grid")
        cls: type = DelaunayMesh
        if init_grid is not None:
            extra["init_grid"] = init_grid
    else:
        if init_grid is not None:
            raise InputError("--init-grid applies to --kind delaunay; use --init-level")
        cls = QuadtreeMesh
        if init_level is not None:
            extra["init_level"] = init_level
    if preset is not None:
        return cls.from_preset(preset, scale_to=scale_to, **extra)
    return cls(refinement_limit=refinement_limit, minimum_examples=minimum_examples, **extra)


@app.command()
def info(mesh_path: MeshArg, as_json: JsonOpt = False) -> None:
    """Kind, kept cells, triangles or leaves, points dropped, cell areas, photos per cell
    and points source."""
    from trigeo.mesh.artifact import load_mesh

    summary = load_mesh(mesh_path).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    area = summary["cell_area_km2"]
    typer.echo(f"kind                  {summary['kind']}")
    typer.echo(f"cells kept            {summary['cells']}")
    if summary["kind"] == "quadtree":
        levels = summary["levels"]
        span = f" (cells at S2 levels {levels['min']}-{levels['max']})" if levels["min"] else ""
        typer.echo(f"leaves                {summary['leaves']}{span}")
    else:
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

    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.oracle import oracle_report
    from trigeo.points import read_points

    mesh = load_mesh(mesh_path)
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
    """Add a `cell` column (kept cell id, -1 in a dropped triangle or leaf) to a points table.

    Every row is located (no split filter); a dataset directory gives its table.parquet.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from trigeo.mesh.artifact import load_mesh
    from trigeo.points import dataset_table_path, points_from_table, read_table
    from trigeo.provenance import atomic_path

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InputError("output must end in .csv or .parquet", source=out)
    mesh = load_mesh(mesh_path)
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
    """Export triangles or S2 leaves as GeoJSON (edges densified, split at the antimeridian)."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.geojson import write_geojson
    from trigeo.mesh.plot import count_regions

    mesh = load_mesh(mesh_path)
    write_geojson(mesh, geojson, max_step_deg=step_deg)
    typer.echo(f"{geojson}: {count_regions(mesh)}, {mesh.n_cells_} kept cells")


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
    """World map of the mesh: triangles or leaves, kept cells shaded, coastlines (offline)."""
    from trigeo.mesh.artifact import load_mesh
    from trigeo.mesh.plot import plot_mesh
    from trigeo.points import read_points

    mesh = load_mesh(mesh_path)
    coords = None
    if points is not None:
        coords = read_points(points, lat_col, lon_col, wrap_longitude=wrap_longitude)
    plot_mesh(mesh, out, points=coords)
    typer.echo(f"{out}: written")


@app.command()
def compare(
    points: PointsOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory for the report.")],
    mesh: Annotated[
        list[Path] | None,
        typer.Option(
            "--mesh", metavar="<file>", help="Mesh file of either kind; repeat to compare several."
        ),
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
) -> None:
    """Compare meshes on one set of photos: cells, cell areas, photos per cell and best
    possible accuracy for both labels (table, JSON, Markdown, plots, a regional map).

    On a trigeo dataset the photos are its train split unless --split says otherwise.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trigeo.mesh import compare as cmp
    from trigeo.mesh.artifact import load_mesh
    from trigeo.points import read_points_with_source
    from trigeo.provenance import hash_file

    meshes_in = list(mesh or [])
    if not meshes_in and not sweep:
        raise InputError("give at least one --mesh FILE, or --sweep")
    box = cmp.parse_region(region) if region is not None else cmp.DEFAULT_REGION
    limits = None
    if sweep_limits is not None:
        try:
            limits = [float(v) for v in sweep_limits.split(",") if v.strip()]
        except ValueError as exc:
            raise InputError(f"--sweep-limits must be numbers, got {sweep_limits!r}") from exc
        if not limits or min(limits) <= 0:
            raise InputError("--sweep-limits must be positive numbers")
    loaded = []
    names: dict[str, int] = {}
    for path in meshes_in:
        name = path.stem
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:
            name = f"{name}-{names[name]}"
        loaded.append((name, load_mesh(path)))
    lat, lon, source = read_points_with_source(
        points, lat_col, lon_col, wrap_longitude=wrap_longitude, split=_resolve_split(points, split)
    )
    limits = limits or cmp.default_limits(lat.size)
    n_sweep = 2 * len(limits) * 3 if sweep else 0  # builds, matching and scoring (estimate)
    with Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("comparing", total=len(loaded) + n_sweep + 1, step="")

        def report(step: str) -> None:
            bar.update(task, advance=1, step=step)

        rows = []
        for name, item in loaded:
            report(f"scoring {name}")
            rows.append(cmp.mesh_stats(name, item, lat, lon))
        swept = None
        if sweep:
            swept = cmp.sweep(
                lat,
                lon,
                limits,
                ratio=sweep_ratio,
                init_grid=init_grid,
                init_level=init_level,
                progress=report,
            )
        inputs = {
            "points_source": source,
            "meshes": {str(p): hash_file(p) for p in meshes_in},
            "sweep_limits": limits if sweep else None,
            "sweep_ratio": sweep_ratio if sweep else None,
        }
        paths = cmp.write_report(
            out, rows, loaded, lat, lon, box, swept, progress=report, inputs=inputs
        )
    document = json.loads(paths["json"].read_text("utf-8"))
    if rows:
        typer.echo(cmp.format_table(rows, "cell"))
        typer.echo("")
        typer.echo(cmp.format_table(rows, "imagery"))
        typer.echo("")
        typer.echo(cmp.format_table(rows, "imagery", over="all"))
    if document["sweep"] and document["sweep"]["matched"]:
        typer.echo("")
        typer.echo(cmp.format_matched(document["sweep"]["matched"], ["1", "25", "200"]))
    typer.echo("")
    typer.echo(f"written in {out}:")
    for name in sorted(p.name for p in paths.values()):
        typer.echo(f"  {name}")
