"""``trigeo index build`` and ``trigeo retrieve`` (query by example; ``retrieve predict``: kNN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo import options
from trigeo.options import (
    Accelerator,
    BatchSize,
    Devices,
    Json,
    MaxUnreadable,
    Neighbours,
    Progress,
    Workers,
)

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]retrieve[/cyan] {message}", highlight=False)


index_app = typer.Typer(
    name="index",
    help="Build a retrieval index of M1 descriptors (query by example).",
    no_args_is_help=True,
)


@index_app.command("build")
def build(
    model: Annotated[Path, options.model("M1 model directory.")],
    data: Annotated[Path, options.data("Dataset directory to index.")],
    out: Annotated[Path, options.out("Index directory to write.")],
    split: Annotated[str, options.split()] = "train",
    index_kind: Annotated[
        str,
        typer.Option(
            "--index-kind", help="flat: exact L2 (IndexFlatL2); ivfpq: approximate, for millions."
        ),
    ] = "flat",
    nlist: Annotated[
        int | None, typer.Option("--nlist", help="IVF clusters (ivfpq; default 4 sqrt(n)).")
    ] = None,
    pq_m: Annotated[
        int | None, typer.Option("--pq-m", help="PQ sub-vectors (ivfpq; must divide the size).")
    ] = None,
    pq_bits: Annotated[
        int, typer.Option("--pq-bits", min=1, max=16, help="Bits per PQ code (ivfpq).")
    ] = 8,
    max_unreadable: MaxUnreadable = 0.05,
    batch_size: BatchSize = 64,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    progress: Progress = True,
) -> None:
    """Index a dataset split by M1's penultimate features (L2, faiss)."""
    from trigeo.retrieve.build import build_index
    from trigeo.runtime.options import InferenceOptions

    build_index(
        model,
        data,
        out,
        split=None if split == "all" else split,
        kind=index_kind,
        nlist=nlist,
        pq_m=pq_m,
        pq_bits=pq_bits,
        options=InferenceOptions.from_cli(
            max_unreadable=max_unreadable,
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            progress=progress,
        ),
        report=_report,
    )


@index_app.command("info")
def info(index: Annotated[Path, options.index()], as_json: Json = False) -> None:
    """Print what an index holds and which model and dataset it was built from."""
    import json

    from trigeo.retrieve.index import RetrievalIndex

    loaded = RetrievalIndex.load(index)
    meta = loaded.meta
    summary = {
        "photos": len(loaded),
        "descriptor size": loaded.dim,
        "kind": meta.get("params"),
        "model": meta.get("model_id"),
        "model dir": meta.get("model_dir"),
        "dataset": meta.get("dataset_root"),
        "dataset sha256": meta.get("dataset_sha256"),
        "split": meta.get("split"),
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    for key, value in summary.items():
        typer.echo(f"{key:>16}: {value}")


retrieve_app = typer.Typer(
    name="retrieve",
    help=(
        "Query by example: `trigeo retrieve query --index INDEX QUERY... -k 6` lists the "
        "nearest indexed photos; `trigeo retrieve predict` writes kNN location predictions."
    ),
    no_args_is_help=True,
)


@retrieve_app.command("query")
def query(
    index: Annotated[Path, options.index()],
    images: Annotated[list[Path], typer.Argument(help="Query image files or folders.")],
    k: Neighbours = 6,
    model: Annotated[Path | None, options.model("M1 model (default: the index's).")] = None,
    out: Annotated[
        Path | None, options.out("Also write a contact sheet of the neighbours (HTML).")
    ] = None,
    nprobe: Annotated[
        int | None, typer.Option("--nprobe", help="IVF lists searched (ivfpq indexes only).")
    ] = None,
    accelerator: Accelerator = "auto",
) -> None:
    """List the nearest indexed photos of each query image (L2 between M1 descriptors)."""
    from rich.table import Table

    from trigeo.retrieve.query import QUERY_OPTIONS, query_images, write_contact_sheet

    results, loaded = query_images(
        index,
        images,
        k=k,
        model_dir=model,
        nprobe=nprobe,
        options=QUERY_OPTIONS.replace(accelerator=accelerator),
        report=_report,
    )
    screen = Console()
    for result in results:
        truth = (
            f"true location {result.truth[0]:.4f}, {result.truth[1]:.4f} (EXIF)"
            if result.truth
            else "true location unknown"
        )
        table = Table(title=f"{result.query}: {truth}")
        for name in ("rank", "photo", "lat", "lon", "km from truth", "L2"):
            table.add_column(name, justify="left" if name == "photo" else "right")
        if result.error:
            screen.print(f"[red]{result.query}: {result.error}[/red]")
            continue
        for nb in result.neighbours:
            km = "" if nb.km_from_truth is None else f"{nb.km_from_truth:,.1f}"
            table.add_row(
                str(nb.rank), nb.photo_id, f"{nb.lat:.4f}", f"{nb.lon:.4f}", km, f"{nb.l2:.4f}"
            )
        screen.print(table)
    if out is not None:
        write_contact_sheet(results, loaded, out)
        _report(f"wrote contact sheet {out}")


@retrieve_app.command("predict")
def predict(
    index: Annotated[Path, options.index()],
    out: Annotated[Path, options.out("Predictions Parquet file.")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Image files or folders of images."),
    ] = None,
    model: Annotated[Path | None, options.model("M1 model (default: the index's).")] = None,
    data: Annotated[Path | None, options.data("Dataset directory (instead of images).")] = None,
    split: Annotated[str, options.split()] = "val",
    k: Neighbours = 10,
    cluster_km: Annotated[
        float,
        typer.Option("--cluster-km", min=0.001, help="Cluster radius of the kNN rule, in km."),
    ] = 100.0,
    name: Annotated[str | None, typer.Option("--name", help="Display name in the file.")] = None,
    max_unreadable: MaxUnreadable = 0.05,
    batch_size: BatchSize = 64,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    progress: Progress = True,
) -> None:
    """kNN geolocation: the densest cluster of each photo's nearest indexed photos."""
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.retrieve.knn import predict_knn
    from trigeo.runtime.options import InferenceOptions

    model_dir: Any = model or RetrievalIndex.load(index).meta.get("model_dir")
    predict_knn(
        model_dir,
        index,
        out,
        images=images or None,
        data=data,
        split=None if split == "all" else split,
        k=k,
        radius_km=cluster_km,
        name=name,
        options=InferenceOptions.from_cli(
            max_unreadable=max_unreadable,
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            progress=progress,
        ),
        report=_report,
    )
