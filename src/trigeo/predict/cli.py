"""``trigeo predict``: a saved model (M1, M2 or M3) over image files or a split -> predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]predict[/cyan] {message}", highlight=False)


def predict(
    model: Annotated[Path, typer.Option("--model", help="M1, M2 or M3 model directory.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions Parquet file.")],
    images: Annotated[
        list[Path] | None, typer.Argument(help="Image files or folders of images.")
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
    max_unreadable: Annotated[
        float,
        typer.Option(
            "--max-unreadable",
            min=0.0,
            max=1.0,
            help="Stop with an error when more than this share of images cannot be read.",
        ),
    ] = 0.05,
    top_k: Annotated[int, typer.Option("--top-k", help="Cells kept per photo.")] = 20,
    five_crop: Annotated[
        bool, typer.Option("--five-crop", help="Average over 4 corner + center crops.")
    ] = False,
    full_probs: Annotated[
        bool, typer.Option("--full-probs", help="Also write every cell's probability.")
    ] = False,
    batch_size: Annotated[int, typer.Option()] = 64,
    num_workers: Annotated[int, typer.Option()] = 2,
    accelerator: Annotated[str, typer.Option(help="auto | cpu | gpu.")] = "auto",
    devices: Annotated[str, typer.Option(help="auto, a count, or ids like 0,1.")] = "auto",
    show: Annotated[int, typer.Option(help="Cells shown per image (image mode).")] = 3,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
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
    posted_at: Annotated[
        str | None,
        typer.Option(
            "--posted-at",
            help="M2/M3 on image files: posting time, ISO 8601 with an offset "
            "(default: EXIF DateTimeOriginal + OffsetTimeOriginal).",
        ),
    ] = None,
) -> None:
    """Predict where photos were taken with a trained M1, M2 or M3 model."""
    from rich.table import Table

    from trigeo.errors import InputError
    from trigeo.models.registry import load_model_dir, model_dir_format
    from trigeo.predict.m1 import predict_m1, summary_rows
    from trigeo.runtime.devices import parse_devices

    m1_options = {
        "max_unreadable": max_unreadable,
        "five_crop": five_crop,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "accelerator": accelerator,
        "devices": parse_devices(devices) or "auto",
        "progress": progress,
        "report": _report,
    }
    if model_dir_format(model) == "trigeo-m1/1":
        given = [
            f for f, v in (("--m1-pred", m1_pred), ("--m1", m1), ("--posted-at", posted_at)) if v
        ]
        if given:
            raise InputError(f"{', '.join(given)} apply to M2/M3 models; {model} is an M1")
        result = predict_m1(
            model,
            out,
            images=images or None,
            data=data,
            split=None if split == "all" else split,
            name=name,
            top_k=top_k,
            full_probs=full_probs,
            **m1_options,
        )
    else:
        from trigeo.predict.heads import predict_head

        if full_probs:
            raise InputError("--full-probs is for M1 models")
        result = predict_head(
            load_model_dir(model),
            out,
            images=images or None,
            data=data,
            split=None if split == "all" else split,
            m1_pred=m1_pred,
            m1_dir=m1,
            posted_at=posted_at,
            name=name,
            top_k=top_k,
            m1_options={k: v for k, v in m1_options.items() if k != "report"},
            report=_report,
        )
    if result is None or data is not None:
        return
    table = Table(title=f"{result.model_name}: most probable places")
    for name in ("photo", "rank", "nearest city", "probability", "lat", "lon"):
        table.add_column(name, justify="right" if name in ("rank", "probability") else "left")
    for photo, rank, place, prob, lat, lon in summary_rows(result, show):
        table.add_row(str(photo), str(rank), place, f"{prob:.3f}", f"{lat:.3f}", f"{lon:.3f}")
    Console().print(table)
