"""``trigeo train``: train M1 with the study's procedure, and calibrate it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo import options
from trigeo.options import (
    Accelerator,
    AcceleratorOrConfig,
    BatchSize,
    BatchSizeOrConfig,
    Devices,
    DevicesOrConfig,
    NumNodesOrConfig,
    ProgressOrConfig,
    StrategyOrConfig,
    Workers,
    WorkersOrConfig,
)
from trigeo.runtime.devices import launch_rank, parse_devices

app = typer.Typer(
    name="train",
    help="Train models: M1 (CNN over mesh cells), its calibration, M2 (time) and M3 (albums).",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _report(message: str) -> None:
    # Under DDP every process runs this command; one of them speaks.
    if launch_rank() == 0:
        console.print(f"[cyan]train[/cyan] {message}", highlight=False)


@app.command("m1")
def m1(
    data: Annotated[Path, options.data()],
    mesh: Annotated[
        list[Path],
        options.mesh(
            "Mesh file (trigeo mesh build); repeat it to train one head per mesh on one "
            "shared backbone."
        ),
    ],
    out: Annotated[Path, options.out("Model directory to write.")],
    config: Annotated[
        str,
        typer.Option(help="YAML config file, or a preset: study (default), demo, quick, test."),
    ] = "study",
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Short display name for reports (default: M1 <mesh stem>, or M1 with several "
            "meshes).",
        ),
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
    batch_size: BatchSizeOrConfig = None,
    num_workers: WorkersOrConfig = None,
    accelerator: AcceleratorOrConfig = None,
    devices: DevicesOrConfig = None,
    num_nodes: NumNodesOrConfig = None,
    strategy: StrategyOrConfig = None,
    precision: Annotated[
        str | None, typer.Option(help="auto (bf16-mixed on GPU, 32-true on CPU) or Lightning's.")
    ] = None,
    progress: ProgressOrConfig = None,
) -> None:
    """Train M1 on a dataset's train split over a mesh's kept cells (or one head per mesh)."""
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
    thresholds = [k for k in ("1", "25", "200", "750", "2500") if f"val/acc_{k}km" in final]
    console.print(f"[green]done[/green] {model.name} ({model.model_id}) in {out}")
    if thresholds:
        accuracy = "/".join(f"{final[f'val/acc_{k}km']:.1f}" for k in thresholds)
        console.print(
            f"  val: {accuracy} % at {'/'.join(thresholds)} km, "
            f"median {final.get('val/median_km', float('nan')):,.0f} km"
            + (f" (head {model.primary.name})" if model.is_multi_head else "")
        )


@app.command("calibrate")
def calibrate(
    model: Annotated[Path, options.model("M1 model directory.")],
    data: Annotated[Path, options.data()],
    split: Annotated[str, options.split("Held-out split to fit on (never train).")] = "heads",
    max_photos: Annotated[int, typer.Option(help="Subsample at most this many photos.")] = 20000,
    batch_size: BatchSize = 128,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
) -> None:
    """Fit a softmax temperature on held-out photos; predictions use it from then on."""
    from trigeo.runtime.options import InferenceOptions
    from trigeo.train.calibrate import calibrate_m1

    temperature = calibrate_m1(
        model,
        data,
        split=split,
        max_photos=max_photos,
        options=InferenceOptions(
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=parse_devices(devices) or "auto",
        ),
    )
    if temperature is None:  # another rank than 0: rank 0 saved and reports
        return
    import json

    stored = json.loads((model / "calibration.json").read_text("utf-8"))
    by_head = stored.get("temperatures") or {}
    if len(by_head) > 1:
        heads = ", ".join(f"{name} {t:.3f}" for name, t in by_head.items())
        console.print(f"[green]calibrated[/green] {model}: temperatures {heads}")
    else:
        console.print(f"[green]calibrated[/green] {model}: temperature {temperature:.3f}")


def _head_overrides(**values: Any) -> dict[str, Any]:
    if values.get("devices") is not None:
        values["devices"] = parse_devices(values["devices"])
    return values


def _head_done(model: Any, out: Path) -> None:
    best = model.metrics.get("best_val_acc")
    shown = f": early-stopping top-1 {best:.1f}%" if best is not None else ""
    console.print(f"[green]done[/green] {model.name} in {out}{shown}")


_CONFIG_HELP = "YAML config file, or a preset: study (default), demo, test."
_M1_PRED_HELP = (
    "M1's predictions for the heads photos (default: OUT/m1-heads.parquet, made by running "
    "M1 when missing)."
)
_OVERLAP_HELP = "Train even if some heads photos also trained M1."


@app.command("m2")
def m2(
    data: Annotated[Path, options.data()],
    m1: Annotated[Path, typer.Option("--m1", help="M1 model directory.")],
    out: Annotated[Path, options.out("Model directory to write.")],
    config: Annotated[str, typer.Option(help=_CONFIG_HELP)] = "study",
    m1_pred: Annotated[Path | None, typer.Option("--m1-pred", help=_M1_PRED_HELP)] = None,
    shuffle_time: Annotated[
        bool,
        typer.Option(
            "--shuffle-time",
            help="Ablation: permute posting times across the photos (recorded in the model).",
        ),
    ] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help=_OVERLAP_HELP)] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Display name (default: M2 <mesh stem>).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for the split, weights, order.")] = None,
    accelerator: AcceleratorOrConfig = None,
    devices: DevicesOrConfig = None,
    num_nodes: NumNodesOrConfig = None,
    strategy: StrategyOrConfig = None,
    progress: ProgressOrConfig = None,
) -> None:
    """Train M2 (M1's top-10 cells + posting time) on the heads photos."""
    from trigeo.train.heads_config import load_head_config
    from trigeo.train.m2 import train_m2

    cfg = load_head_config(
        "m2",
        config,
        _head_overrides(
            seed=seed,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            progress=progress,
            shuffle_time=shuffle_time or None,
        ),
    )
    model = train_m2(
        data,
        m1,
        out,
        cfg,
        m1_pred=m1_pred,
        resume=resume,
        allow_overlap=allow_overlap,
        name=name,
        report=_report,
    )
    if launch_rank() == 0:
        _head_done(model, out)


@app.command("m3")
def m3(
    data: Annotated[Path, options.data()],
    m2: Annotated[Path, typer.Option("--m2", help="M2 model directory (M3 starts from it).")],
    out: Annotated[Path, options.out("Model directory to write.")],
    config: Annotated[str, typer.Option(help=_CONFIG_HELP)] = "study",
    m1: Annotated[
        Path | None,
        typer.Option("--m1", help="M1 model directory (default: the one the M2 records)."),
    ] = None,
    m1_pred: Annotated[Path | None, typer.Option("--m1-pred", help=_M1_PRED_HELP)] = None,
    shuffle_albums: Annotated[
        bool,
        typer.Option(
            "--shuffle-albums",
            help="Ablation: train on albums of random photos of the split, by permuting user "
            "ids across the photos (recorded in the model; it predicts on real albums).",
        ),
    ] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help=_OVERLAP_HELP)] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Display name (default: M3 <mesh stem>).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for the split, weights, albums.")] = None,
    accelerator: AcceleratorOrConfig = None,
    devices: DevicesOrConfig = None,
    num_nodes: NumNodesOrConfig = None,
    strategy: StrategyOrConfig = None,
    progress: ProgressOrConfig = None,
) -> None:
    """Train M3 (album means of M2 and a bidirectional LSTM over user albums of 24) on the
    heads photos."""
    from trigeo.train.heads_config import load_head_config
    from trigeo.train.m3 import train_m3

    cfg = load_head_config(
        "m3",
        config,
        _head_overrides(
            seed=seed,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            progress=progress,
            shuffle_albums=shuffle_albums or None,
        ),
    )
    model = train_m3(
        data,
        m2,
        out,
        cfg,
        m1=m1,
        m1_pred=m1_pred,
        resume=resume,
        allow_overlap=allow_overlap,
        name=name,
        report=_report,
    )
    if launch_rank() == 0:
        _head_done(model, out)
