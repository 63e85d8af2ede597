"""``trigeo demo``: the whole pipeline on the built-in synthetic world.

The demo runs the same CLI commands a user would type, in order, printing each
one so it can be copied. A stage whose inputs and arguments are unchanged since
the last run is skipped (its key is a hash of the command line and the content
of the files it reads), so a second ``make demo`` only redoes what changed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trigeo.provenance import hash_file, write_json_atomic

__all__ = ["DemoStage", "demo", "demo_stages", "run_demo"]

_console = Console(stderr=True)
STATE_FILE = "demo-state.json"


@dataclass
class DemoStage:
    """One demo step: a ``trigeo`` command line, the files it reads and its output."""

    name: str
    args: list[str]
    output: Path
    reads: list[Path] = field(default_factory=list)

    def key(self) -> str:
        digest = hashlib.sha256(shlex.join(self.args).encode())
        for path in self.reads:
            digest.update(str(path).encode())
            digest.update(hash_file(path).encode() if path.is_file() else b"-")
        return digest.hexdigest()


def demo_stages(
    out: Path, photos: int, users: int, seed: int, mesh_presets: Sequence[str]
) -> list[DemoStage]:
    """The demo pipeline as a list of stages (synth, meshes, M1, predict, evaluate)."""
    world = out / "world"
    table = world / "table.parquet"
    stages = [
        DemoStage(
            "synthetic world",
            ["data", "synth", "--photos", str(photos), "--users", str(users),
             "--image-size", "64", "--seed", str(seed), "--out", str(world)],
            table,
        ),
    ]  # fmt: skip
    preds: list[str] = []
    mesh_args: list[str] = []
    for preset in mesh_presets:
        mesh = out / f"{preset}.npz"
        model = out / f"m1-{preset}"
        pred = out / "predictions" / f"m1-{preset}.parquet"
        stages += [
            DemoStage(
                f"{preset} mesh",
                ["mesh", "build", "--points", str(table), "--split", "train",
                 "--preset", preset, "--scaled", "--out", str(mesh)],
                mesh,
                [table],
            ),
            DemoStage(
                f"{preset} mesh plot",
                ["mesh", "plot", str(mesh), "--out", str(out / f"{preset}.png"),
                 "--points", str(table)],
                out / f"{preset}.png",
                [mesh],
            ),
            DemoStage(
                f"M1 on the {preset} mesh",
                ["train", "m1", "--data", str(world), "--mesh", str(mesh), "--out", str(model),
                 "--config", "demo", "--seed", str(seed)],
                model / "model.json",
                [table, mesh],
            ),
            DemoStage(
                f"predict val with M1 ({preset})",
                ["predict", "--model", str(model), "--data", str(world), "--split", "val",
                 "--out", str(pred)],
                pred,
                [table, model / "model.json"],
            ),
        ]  # fmt: skip
        preds += ["--pred", str(pred)]
        mesh_args += ["--mesh", str(mesh)]
    report = out / "report"
    stages.append(
        DemoStage(
            "evaluation report",
            ["evaluate", "--truth", str(world), *preds, *mesh_args, "--oracle", "--averaging",
             "--baseline", "prior", "--out", str(report)],
            report / "report.html",
            [table, *(Path(p) for p in preds[1::2]), *(Path(m) for m in mesh_args[1::2])],
        )
    )  # fmt: skip
    return stages


def run_demo(
    out: str | Path,
    *,
    photos: int = 12000,
    users: int = 600,
    seed: int = 0,
    mesh_presets: Sequence[str] = ("coarse",),
    force: bool = False,
) -> Path:
    """Run (or resume) the demo pipeline; returns the report directory."""
    from trigeo.cli import app

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state: dict[str, str] = {}
    if state_path.exists() and not force:
        try:
            state = json.loads(state_path.read_text("utf-8"))
        except json.JSONDecodeError:
            state = {}
    stages = demo_stages(out, photos, users, seed, mesh_presets)
    for number, stage in enumerate(stages, 1):
        key = stage.key()
        header = f"[bold cyan]\\[{number}/{len(stages)}] {stage.name}[/bold cyan]"
        if state.get(stage.name) == key and stage.output.exists():
            _console.print(f"{header} [dim]unchanged, skipped[/dim]")
            continue
        _console.print(f"{header}\n  [dim]$ trigeo {shlex.join(stage.args)}[/dim]")
        start = time.perf_counter()
        app(stage.args, standalone_mode=False)
        _console.print(f"  [green]done[/green] in {time.perf_counter() - start:.1f} s")
        state[stage.name] = key
        write_json_atomic(state_path, state)
    report = out / "report"
    _console.print(
        f"\n[bold]Report:[/bold] {report / 'report.html'} (also report.md, metrics.json)"
    )
    return report


def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for every demo artifact.")] = Path(
        "demo-out"
    ),
    photos: Annotated[int, typer.Option("--photos", min=500, help="Synthetic photos.")] = 12000,
    users: Annotated[int, typer.Option("--users", min=10, help="Synthetic users.")] = 600,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the world and training.")] = 0,
    mesh: Annotated[
        list[str] | None,
        typer.Option("--mesh", help="Study mesh preset(s), scaled to the training photos."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage.")] = False,
) -> None:
    """Run the whole pipeline on the built-in synthetic world: data, mesh, M1, evaluation."""
    run_demo(
        out, photos=photos, users=users, seed=seed, mesh_presets=mesh or ["coarse"], force=force
    )
