"""``trigeo scenes``: fill a dataset's ``outdoor`` column with a Places365 classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trigeo import options
from trigeo.options import Accelerator, BatchSize, Devices, MaxUnreadable, Progress, Workers

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]scenes[/cyan] {message}", highlight=False)


def scenes(
    data: Annotated[Path, options.data()],
    weights: Annotated[
        Path,
        typer.Option(
            "--weights",
            help="Published Places365 checkpoint, e.g. resnet18_places365.pth.tar (local file).",
        ),
    ],
    arch: Annotated[str, typer.Option(help="resnet18 | resnet50 | densenet161.")] = "resnet18",
    out: Annotated[
        Path | None, options.out("Dataset directory to write (default: --data).")
    ] = None,
    split: Annotated[str, options.split()] = "all",
    batch_size: BatchSize = 64,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    max_unreadable: MaxUnreadable = 0.05,
    progress: Progress = True,
) -> None:
    """Score P(outdoor) per photo: the mean outdoor flag of its top-10 Places365 scenes."""
    from trigeo.runtime.options import InferenceOptions
    from trigeo.scenes.run import score_outdoor

    result = score_outdoor(
        data,
        weights,
        arch=arch,
        out=out,
        split=None if split == "all" else split,
        options=InferenceOptions.from_cli(
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            max_unreadable=max_unreadable,
            progress=progress,
        ),
        report=_report,
    )
    for photo, error in list(result.skipped.items())[:5]:
        _report(f"unreadable, left empty: {photo}: {error}")
    console.print(
        f"[green]wrote[/green] {result.dataset.root}: outdoor scored for {result.scored} photos "
        f"({100 * result.outdoor_share:.1f}% outdoor), {len(result.skipped)} unreadable"
    )
