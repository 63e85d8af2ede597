"""``trigeo data``: import, generate, split, shard and inspect photo datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from trigeo import options

app = typer.Typer(
    name="data",
    help="Photo datasets: synthetic world, YFCC100M, CSV/standard-set and EXIF importers, "
    "splits, shards.",
    no_args_is_help=True,
)
console = Console()

# The study's split (see trigeo.data.split): shared by every command that writes a table.
ValFractionOpt = Annotated[
    float, typer.Option(help="Share of photos in M1's validation part (the study: 0.18).")
]
HeadsFractionOpt = Annotated[
    float, typer.Option(help="Share of that part that trains M2/M3; the rest is held out.")
]


T = TypeVar("T")


def _track(description: str, total: int | None, run: Callable[..., T], *args: Any, **kw: Any) -> T:
    """``run(*args, **kw, progress=...)`` under a progress bar advanced by its callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        return run(*args, **kw, progress=lambda n: progress.advance(task, n))


def _table_column(root: Path, column: str) -> Any:
    """One column of a dataset's table, or ``None`` when it cannot be read.

    Only sizes a progress bar: the command itself opens and validates the
    dataset (and reports a bad one), so the whole table is not read twice.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trigeo.data.table import TABLE_FILE

    try:
        return pq.read_table(root / TABLE_FILE, columns=[column]).column(column)
    except (OSError, KeyError, pa.ArrowException):
        return None


@app.command()
def synth(
    out: Annotated[Path, options.out("Dataset directory to write.")],
    photos: Annotated[int, typer.Option(help="Number of photos.")] = 2000,
    users: Annotated[int, typer.Option(help="Number of users.")] = 100,
    image_size: Annotated[int, typer.Option(help="JPEG side in pixels.")] = 64,
    seed: Annotated[int, typer.Option(help="The same seed gives identical files.")] = 0,
    outdoor_fraction: Annotated[float, typer.Option(help="Share of outdoor photos.")] = 0.5,
    trip_fraction: Annotated[float, typer.Option(help="Share of sessions that are trips.")] = 0.25,
    motif_noise: Annotated[
        float, typer.Option(help="Share of outdoor photos showing a wrong country's motif.")
    ] = 0.12,
    pixel_noise: Annotated[float, typer.Option(help="Gaussian pixel noise (0-1 scale).")] = 0.05,
    val_fraction: ValFractionOpt = 0.18,
    heads_fraction: HeadsFractionOpt = 0.5,
    workers: Annotated[
        int,
        options.workers(
            "Threads rendering and encoding (the output does not depend on it). "
            "Measured 2,416 vs 1,557 photos/s for 2 vs 1 on an idle 2-core machine; "
            "use 1 when the cores are busy."
        ),
    ] = 2,
) -> None:
    """Generate the synthetic world: JPEGs, table (with splits) and dataset.json."""
    from trigeo.data.synth import make_world

    dataset = _track(
        "rendering photos",
        photos,
        make_world,
        out,
        photos=photos,
        users=users,
        image_size=image_size,
        seed=seed,
        outdoor_fraction=outdoor_fraction,
        trip_fraction=trip_fraction,
        motif_noise=motif_noise,
        pixel_noise=pixel_noise,
        val_fraction=val_fraction,
        heads_fraction=heads_fraction,
        workers=workers,
    )
    counts = dataset.meta["counts"]
    console.print(
        f"[green]wrote[/green] {out}: {counts['photos']} photos, {counts['users']} users, "
        f"splits {counts['splits']}, {dataset.table['country'].nunique()} countries"
    )


@app.command()
def split(
    data: Annotated[Path, options.data("Dataset directory (its table is rewritten).")],
    seed: Annotated[int, typer.Option(help="Seed of the random split.")],
    val_fraction: ValFractionOpt = 0.18,
    heads_fraction: HeadsFractionOpt = 0.5,
    by_user: Annotated[
        bool, typer.Option("--by-user", help="Keep each user on one side (no user leakage).")
    ] = False,
) -> None:
    """Split photos into train (M1), heads (M2/M3) and val (held out)."""
    from trigeo.data.split import split_dataset

    dataset = split_dataset(
        data,
        val_fraction=val_fraction,
        heads_fraction=heads_fraction,
        by_user=by_user,
        seed=seed,
    )
    console.print(f"[green]split[/green] {data}: {dataset.meta['counts']['splits']}")


@app.command()
def shard(
    data: Annotated[Path, options.data("Source dataset directory.")],
    out: Annotated[Path, options.out("Output dataset directory.")],
    shard_size: Annotated[int, typer.Option(help="Samples per tar shard.")] = 10_000,
    max_side: Annotated[int, typer.Option(help="Longer side of the stored JPEGs.")] = 512,
    quality: Annotated[int, typer.Option(help="JPEG quality of re-encoded images.")] = 90,
    workers: Annotated[int, options.workers("Threads decoding and encoding images.")] = 2,
) -> None:
    """Write a dataset's images into webdataset tar shards (resumable)."""
    from trigeo.data.shard import REPORT_FILE, shard_dataset

    images = _table_column(data, "image")
    dataset, report = _track(
        "sharding",
        None if images is None else len(images),
        shard_dataset,
        data,
        out,
        shard_size=shard_size,
        max_side=max_side,
        quality=quality,
        workers=workers,
    )
    report.print_summary(console, out / REPORT_FILE)
    console.print(f"[green]wrote[/green] {len(dataset.meta['shards'])} shard(s) in {out}")


@app.command()
def yfcc(
    metadata: Annotated[Path, typer.Argument(help="YFCC100M metadata TSV (.bz2/.gz or plain).")],
    out: Annotated[Path, options.out("Dataset directory to write.")],
    limit: Annotated[int | None, typer.Option(help="Stop after this many lines.")] = None,
    download_root: Annotated[
        Path | None, typer.Option(help="Folder of downloaded images (else image = URL).")
    ] = None,
    image_layout: Annotated[
        str, typer.Option(help="'id': ROOT/<photo_id>.<ext>; 'hash': ROOT/abc/def/<hash>.jpg.")
    ] = "id",
    val_fraction: ValFractionOpt = 0.18,
    heads_fraction: HeadsFractionOpt = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the hash-based split.")] = 0,
) -> None:
    """Import geotagged photos from the YFCC100M metadata (streaming, resumable).

    A compressed file that breaks off (a partial download) or turns corrupt is
    imported up to its last complete line; the command then names that line
    and exits with status 2, so the shortfall is never mistaken for success.
    """
    from trigeo.data.yfcc import REPORT_FILE, import_yfcc
    from trigeo.errors import InputError

    total = metadata.stat().st_size if metadata.exists() else 0
    try:
        meta, report = _track(
            "importing lines",
            limit,
            import_yfcc,
            metadata,
            out,
            limit=limit,
            download_root=download_root,
            image_layout=image_layout,
            val_fraction=val_fraction,
            heads_fraction=heads_fraction,
            seed=seed,
        )
    except KeyboardInterrupt:
        # The import checkpoints after every row group: say how to pick it up again.
        typer.echo("interrupted: run the same command again to resume the import", err=True)
        raise typer.Exit(130) from None
    report.print_summary(console, out / REPORT_FILE)
    counts = meta["counts"]
    console.print(
        f"[green]wrote[/green] {out}: {counts['photos']} photos, {counts['users']} users "
        f"from {total / 1e6:.2f} MB at {report.notes.get('rows_per_second')} lines/s"
    )
    if report.incomplete is not None:
        last = report.incomplete["last_complete_line"]
        raise InputError(
            f"{report.incomplete['message']}; {out} holds the photos of lines 1-{last} only",
            source=metadata,
        )


@app.command("csv")
def csv_table(
    table: Annotated[Path, typer.Argument(help="CSV (.gz/.bz2 or plain) or Parquet of photos.")],
    out: Annotated[Path, options.out("Dataset directory to write.")],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Image root: a folder of images; mp16: the folder of shard_*.msg files; "
            "osv5m: images/<split> (NN/<id>.jpg or NN.zip). Default: the table's folder."
        ),
    ] = None,
    format_name: Annotated[
        str,
        typer.Option(
            "--format", help="generic | im2gps3k | yfcc4k | mp16 | osv5m (fixes columns, layout)."
        ),
    ] = "generic",
    id_col: Annotated[str | None, typer.Option(help="Photo id column.")] = None,
    lat_col: Annotated[str | None, typer.Option(help="Latitude column (degrees).")] = None,
    lon_col: Annotated[str | None, typer.Option(help="Longitude column (degrees).")] = None,
    image_col: Annotated[
        str | None,
        typer.Option(help="Image path column, relative to --images (else found by id)."),
    ] = None,
    user_col: Annotated[str | None, typer.Option(help="User id column.")] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            help="Time column: unix seconds (milliseconds from 1e11 up) or ISO 8601; "
            "no offset means UTC."
        ),
    ] = None,
    split_col: Annotated[
        str | None, typer.Option(help="Keep the split given in this column.")
    ] = None,
    assign_split: Annotated[
        str | None,
        typer.Option(
            "--assign-split",
            help="Put every photo in this split ('test' for a benchmark test set).",
        ),
    ] = None,
    allow_missing_images: Annotated[
        bool,
        typer.Option(
            "--allow-missing-images", help="Keep (and count) rows whose image is missing."
        ),
    ] = False,
    check_images: Annotated[
        bool,
        typer.Option(
            "--check-images",
            help="After joining rows to image files (which opens none), read each matched "
            "image's header and drop the unusable ones; a pass with its own images/s.",
        ),
    ] = False,
    val_fraction: ValFractionOpt = 0.18,
    heads_fraction: HeadsFractionOpt = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the hash-based split.")] = 0,
) -> None:
    """Import any table of photos, or a standard set (Im2GPS3k, YFCC4k, MP-16, OSV-5M).

    Streaming and resumable (run the same command again after an interruption);
    bad rows and unreadable images are reported by reason in import-report.json.
    """
    from rich.markup import escape

    from trigeo.data.csvimport import REPORT_FILE, import_csv

    def show_columns(chosen: dict[str, str], how: dict[str, str]) -> None:
        text = ", ".join(f"{field} <- {escape(chosen[field])} ({how[field]})" for field in chosen)
        console.print(f"columns: {text}")
        if "image" not in chosen:
            console.print("images: found by photo id under the image root")

    given = {
        "id": id_col,
        "lat": lat_col,
        "lon": lon_col,
        "image": image_col,
        "user": user_col,
        "time": time_col,
        "split": split_col,
    }
    try:
        meta, report = _track(
            "importing rows",
            None,
            import_csv,
            table,
            out,
            images=images,
            fmt=format_name,
            columns=given,
            split=assign_split,
            allow_missing_images=allow_missing_images,
            check_images=check_images,
            val_fraction=val_fraction,
            heads_fraction=heads_fraction,
            seed=seed,
            on_columns=show_columns,
        )
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to resume the import", err=True)
        raise typer.Exit(130) from None
    report.print_summary(console, out / REPORT_FILE)
    counts = meta["counts"]
    console.print(
        f"[green]wrote[/green] {out}: {counts['photos']} photos, {counts['users']} users, "
        f"splits {counts['splits']} at {report.notes.get('rows_per_second')} rows/s"
    )
    if "image_check" in report.notes:
        check = report.notes["image_check"]
        console.print(
            f"checked {check['images']} image headers in {check['seconds']} s "
            f"({check['images_per_second']} images/s)"
        )


@app.command()
def photos(
    folder: Annotated[Path, typer.Argument(help="Folder of photos (walked recursively).")],
    out: Annotated[Path, options.out("Dataset directory to write.")],
    user: Annotated[
        str | None, typer.Option(help="User of every photo (default: first-level subfolder).")
    ] = None,
    val_fraction: ValFractionOpt = 0.18,
    heads_fraction: HeadsFractionOpt = 0.5,
    by_user: Annotated[bool, typer.Option("--by-user", help="Split by user.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    max_file_mb: Annotated[
        float,
        typer.Option(
            help="Skip (and report) files larger than this many MB (10^6 bytes) unread; "
            "bounds the memory each worker holds."
        ),
    ] = 50.0,
    workers: Annotated[int, options.workers("Threads decoding photos.")] = 2,
) -> None:
    """Import photos located by EXIF GPS; files not used (no GPS, not an image, too large,
    unreadable) are listed with the reason in rejects.csv."""
    from trigeo.data.photos import REJECTS_FILE, REPORT_FILE, import_photos

    dataset, report = _track(
        "reading photos",
        None,
        import_photos,
        folder,
        out,
        user=user,
        val_fraction=val_fraction,
        heads_fraction=heads_fraction,
        by_user=by_user,
        seed=seed,
        max_file_mb=max_file_mb,
        workers=workers,
    )
    report.print_summary(console, out / REPORT_FILE)
    console.print(
        f"[green]wrote[/green] {out}: {len(dataset.table)} photos; "
        f"time sources {report.notes.get('time_sources')}; rejects in {out / REJECTS_FILE}"
    )


@app.command()
def info(
    data: Annotated[Path, options.data()],
    out: Annotated[Path | None, options.out("Also write a photo-density world map (PNG).")] = None,
    as_json: options.Json = False,
) -> None:
    """Counts, users, time span and (with --out) a density map of a dataset."""
    import json

    from rich.table import Table

    from trigeo.data.info import describe_dataset, plot_density_map
    from trigeo.data.table import Dataset

    dataset = Dataset.open(data)
    summary = describe_dataset(dataset)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        for key, value in summary.items():
            table.add_row(f"[bold]{key}[/bold]", str(value))
        console.print(table)
    if out is not None:
        plot_density_map(dataset.table, out)
        Console(stderr=True).print(f"[green]map[/green] {out}")


@app.command("plot-time")
def plot_time(
    data: Annotated[Path, options.data()],
    out: Annotated[Path, options.out("PNG to write.")],
    seed: Annotated[int, typer.Option(help="Seed choosing one photo per user.")] = 0,
) -> None:
    """Box plots of true longitude by UTC posting hour (one photo per user)."""
    from trigeo.data.info import plot_time_longitude
    from trigeo.data.table import Dataset

    result = plot_time_longitude(Dataset.open(data).table, out, seed=seed)
    console.print(
        f"[green]wrote[/green] {out}: {result['photos']} photos, circular correlation "
        f"{result['circular_correlation']:.3f}"
    )


# The commands that fetch or attach images live beside these; they register on `app`.
from trigeo.data import cli_fetch as _cli_fetch  # noqa: E402, F401
