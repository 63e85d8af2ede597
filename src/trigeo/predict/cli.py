"""``trigeo predict``: a saved model (M1, M2 or M3) over image files or a split -> predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trigeo.options import (
    Accelerator,
    BatchSize,
    Devices,
    MaxUnreadable,
    NumWorkers,
    Progress,
)

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]predict[/cyan] {message}", highlight=False)


def predict(
    model: Annotated[
        list[Path],
        typer.Option(
            "--model",
            metavar="<dir>",
            help="M1, M2 or M3 model directory (several M1s with --hierarchical).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Predictions Parquet file.")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Image files or folders of images."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Dataset directory (instead of images).")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Dataset split to predict ('all' for every photo).")
    ] = "val",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Display name in the file (default: the model's name)."),
    ] = None,
    max_unreadable: MaxUnreadable = 0.05,
    top_k: Annotated[int, typer.Option("--top-k", help="Cells kept per photo.")] = 20,
    five_crop: Annotated[
        bool, typer.Option("--five-crop", help="Average over 4 corner + center crops.")
    ] = False,
    full_probs: Annotated[
        bool, typer.Option("--full-probs", help="Also write every cell's probability.")
    ] = False,
    batch_size: BatchSize = 64,
    num_workers: NumWorkers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    show: Annotated[int, typer.Option(help="Cells shown per image (image mode).")] = 3,
    progress: Progress = True,
    m1_pred: Annotated[
        Path | None,
        typer.Option(
            "--m1-pred",
            help="M2/M3: M1's predictions for the same photos (default: run the head's M1).",
        ),
    ] = None,
    m1: Annotated[
        Path | None,
        typer.Option("--m1", help="M2/M3: the M1 directory, if it moved since training."),
    ] = None,
    hierarchical: Annotated[
        bool,
        typer.Option(
            "--hierarchical",
            help="Combine several M1 --model dirs: the finest mesh's cells, weighted by the "
            "coarser meshes' probabilities.",
        ),
    ] = False,
    head: Annotated[
        list[str] | None,
        typer.Option(
            "--head",
            metavar="<name>",
            help="Multi-head M1: predict only this head (default: every head, one file each, "
            "<out stem>-<head>.parquet); with --hierarchical, repeat it to choose the heads.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="M1: report cells at this label point, imagery or cell (default: the model's).",
        ),
    ] = None,
    knn: Annotated[
        Path | None,
        typer.Option(
            "--knn",
            help="Predict by kNN over this retrieval index (trigeo index build) instead.",
        ),
    ] = None,
    knn_k: Annotated[int, typer.Option("--knn-k", min=1, help="Neighbours for --knn.")] = 10,
    cpu_threads: Annotated[
        int | None,
        typer.Option("--cpu-threads", min=1, help="Torch threads (default: cores - workers)."),
    ] = None,
    posted_at: Annotated[
        str | None,
        typer.Option(
            "--posted-at",
            help="M2/M3 on image files: posting time, ISO 8601 with an offset "
            "(default: EXIF DateTimeOriginal + OffsetTimeOriginal).",
        ),
    ] = None,
) -> None:
    """Predict where photos were taken with a trained M1, M2 or M3 model (or kNN)."""
    from rich.table import Table

    from trigeo.errors import InputError
    from trigeo.predict.m1 import summary_rows
    from trigeo.predict.run import predict_model
    from trigeo.runtime.devices import parse_devices

    common = {
        "images": images or None,
        "data": data,
        "split": None if split == "all" else split,
        "name": name,
        "max_unreadable": max_unreadable,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "accelerator": accelerator,
        "devices": parse_devices(devices) or "auto",
        "progress": progress,
        "report": _report,
    }
    if hierarchical:
        from trigeo.predict.hierarchical import predict_hierarchical

        predict_hierarchical(
            model,
            out,
            heads=head,
            top_k=top_k,
            five_crop=five_crop,
            cpu_threads=cpu_threads,
            **common,
        )
        return
    if head and len(head) > 1:
        raise InputError("give one --head (several are for --hierarchical)")
    if len(model) != 1:
        raise InputError(f"{len(model)} --model directories given; pass one, or --hierarchical")
    (model,) = model
    if knn is not None:
        # The kNN predictor lives downstream of predict (in retrieve); the CLI joins them.
        from trigeo.retrieve.knn import predict_knn

        predict_knn(model, knn, out, k=knn_k, **common)
        return
    result = predict_model(
        model,
        out,
        top_k=top_k,
        full_probs=full_probs,
        m1_pred=m1_pred,
        m1_dir=m1,
        posted_at=posted_at,
        head=head[0] if head else None,
        label=label,
        five_crop=five_crop,
        cpu_threads=cpu_threads,
        **common,
    )
    if result is None or data is not None:
        return
    table = Table(title=f"{result.model_name}: most probable places")
    for name in ("photo", "rank", "nearest city", "probability", "lat", "lon"):
        table.add_column(name, justify="right" if name in ("rank", "probability") else "left")
    for photo, rank, place, prob, lat, lon in summary_rows(result, show):
        table.add_row(str(photo), str(rank), place, f"{prob:.3f}", f"{lat:.3f}", f"{lon:.3f}")
    Console().print(table)
