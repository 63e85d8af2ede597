"""``trigeo train``: train M1 with the study's procedure, and calibrate it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo.runtime.devices import launch_rank, parse_devices

app = typer.Typer(
    name="train",
    help="Train models: M1 (CNN over mesh cells) and its calibration.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]train[/cyan] {message}", highlight=False)


@app.command("m1")
def m1(
    data: Annotated[Path, typer.Option("--data", help="Dataset directory.")],
    mesh: Annotated[Path, typer.Option("--mesh", help="Mesh file (trigeo mesh build).")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    config: Annotated[
        str,
        typer.Option(help="YAML config file, or a preset: study (default), demo, test."),
    ] = "study",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Short display name for reports (default: M1 <mesh stem>)."),
    ] = None,
    allow_eval_in_mesh: Annotated[
        bool,
        typer.Option(
            "--allow-eval-in-mesh",
            help="Train on a mesh built partly from this dataset's evaluation photos.",
        ),
    ] = False,
    backbone: Annotated[str | None, typer.Option(help="Any timm model name.")] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Local ImageNet weights (timm .pth/.bin or .safetensors).")
    ] = None,
    freeze_backbone: Annotated[
        bool | None,
        typer.Option(
            "--freeze-backbone/--train-backbone",
            help="Cache backbone features once and train only the head.",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label point: imagery | cell.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    seed: Annotated[
        int | None, typer.Option(help="Seed for weights, sampling, augmentation.")
    ] = None,
    max_epochs: Annotated[
        int | None, typer.Option(help="Cap every stage at this many epochs.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Square input size in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per-device batch size.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader workers per device.")] = None,
    accelerator: Annotated[str | None, typer.Option(help="auto | cpu | gpu.")] = None,
    devices: Annotated[str | None, typer.Option(help="auto, a count, or ids like 0,1.")] = None,
    num_nodes: Annotated[int | None, typer.Option(help="Nodes for multi-node DDP.")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Lightning strategy (auto, ddp, ...).")
    ] = None,
    precision: Annotated[
        str | None, typer.Option(help="auto (bf16-mixed on GPU, 32-true on CPU) or Lightning's.")
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
) -> None:
    """Train M1 on a dataset's train split over a mesh's kept cells."""
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    overrides: dict[str, Any] = {
        "backbone": backbone,
        "weights": str(weights) if weights else None,
        "freeze_backbone": freeze_backbone,
        "label": label,
        "seed": seed,
        "max_epochs": max_epochs,
        "image_size": image_size,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "accelerator": accelerator,
        "devices": parse_devices(devices),
        "num_nodes": num_nodes,
        "strategy": strategy,
        "precision": precision,
        "progress": progress,
    }
    cfg = load_config(config, overrides)
    model = train_m1(
        data,
        mesh,
        out,
        cfg,
        resume=resume,
        name=name,
        allow_eval_in_mesh=allow_eval_in_mesh,
        report=_report,
    )
    if launch_rank() != 0:
        return
    final = model.metrics.get("final", {})
    shown = ", ".join(f"{k.removeprefix('val/')} {v:.1f}" for k, v in final.items() if "acc" in k)
    console.print(f"[green]done[/green] {model.name} in {out}" + (f": {shown}" if shown else ""))


@app.command("calibrate")
def calibrate(
    model: Annotated[Path, typer.Option("--model", help="M1 model directory.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory.")],
    split: Annotated[str, typer.Option(help="Held-out split to fit on.")] = "heads",
    max_photos: Annotated[int, typer.Option(help="Subsample at most this many photos.")] = 20000,
    batch_size: Annotated[int, typer.Option()] = 128,
    num_workers: Annotated[int, typer.Option()] = 2,
    accelerator: Annotated[str, typer.Option()] = "auto",
    devices: Annotated[str, typer.Option()] = "1",
) -> None:
    """Fit a softmax temperature on held-out photos; predictions use it from then on."""
    from trigeo.train.calibrate import calibrate_m1

    temperature = calibrate_m1(
        model,
        data,
        split=split,
        max_photos=max_photos,
        batch_size=batch_size,
        num_workers=num_workers,
        accelerator=accelerator,
        devices=parse_devices(devices) or 1,
    )
    console.print(f"[green]calibrated[/green] {model}: temperature {temperature:.3f}")
