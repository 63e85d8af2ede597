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
    Path, typer.Option("--points", help="CSV or Parquet file with latitude/longitude columns.")
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
    lat_col: LatColOpt = None,
    lon_col: LonColOpt = None,
    wrap_longitude: WrapOpt = False,
) -> None:
    """Build a mesh from photo coordinates (a preset, or explicit limits)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.points import read_points

    if preset is None and (refinement_limit is None or minimum_examples is None):
        raise InputError("give --preset NAME, or both --refinement-limit and --minimum-examples")
    if preset is not None and (refinement_limit is not None or minimum_examples is not None):
        raise InputError("--preset cannot be combined with --refinement-limit/--minimum-examples")
    if scaled and preset is None:
        raise InputError("--scaled only applies to --preset")
    lat, lon = read_points(points, lat_col, lon_col, wrap_longitude=wrap_longitude)
    if preset is not None:
        mesh = DelaunayMesh.from_preset(preset, scale_to=lat.size if scaled else None)
    else:
        mesh = DelaunayMesh(refinement_limit=refinement_limit, minimum_examples=minimum_examples)
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

        mesh.fit(lat, lon, progress=report)
    mesh.save(out)
    info = mesh.summary()
    typer.echo(
        f"{out}: {info['cells']} cells kept of {info['triangles']} triangles, "
        f"{100 * info['dropped_share']:.2f}% of {info['points']} points in dropped triangles"
    )


@app.command()
def info(mesh_path: MeshArg, as_json: JsonOpt = False) -> None:
    """Kept cells, triangles, share of points dropped and cell areas."""
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
    typer.echo(
        f"cell area km²         min {area['min']:.4g}, median {area['median']:.4g}, "
        f"max {area['max']:.4g}"
    )
    typer.echo(f"mesh hash             {summary['mesh_hash'][:16]}")
