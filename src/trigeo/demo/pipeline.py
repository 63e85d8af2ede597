"""``trigeo demo``: the whole pipeline on the built-in synthetic world.

World, mesh (explicit limits by photos per cell, :func:`mesh_args`), M1, its
predictions for ``heads`` and ``val``, M2 and M3 trained on ``heads``, and one
evaluation of every model with user averaging.

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

__all__ = ["MESH_RULES", "DemoStage", "demo", "demo_stages", "mesh_args", "run_demo"]

_console = Console(stderr=True)
STATE_FILE = "demo-state.json"


@dataclass
class DemoStage:
    """One demo step: a ``trigeo`` command line, the files it reads and its output."""

    name: str
    args: list[str]
    output: Path
    reads: list[Path] = field(default_factory=list)
    #: Printed under the command (the rule behind its arguments).
    note: str = ""

    def key(self) -> str:
        digest = hashlib.sha256(shlex.join(self.args).encode())
        for path in self.reads:
            digest.update(str(path).encode())
            digest.update(hash_file(path).encode() if path.is_file() else b"-")
        return digest.hexdigest()


#: Demo meshes: photos per cell -> (minimum examples, refinement limit). docs/mesh.md, "Small
#: datasets": keep cells of at least ``minimum`` training photos and split a triangle above 5x
#: that, so a split's three children hold about ``minimum`` or more each.
MESH_RULES: dict[str, tuple[int, int]] = {"coarse": (50, 250), "fine": (20, 100)}
#: Share of the photos held out of M1 (``val`` + ``heads``) and the heads' share of that. The
#: study's 0.18 / 0.5 leaves M2 and M3 about 1,000 of 12,000 photos to learn from; 0.4 / 0.6
#: gives them 2,880 and keeps 1,920 for the report.
VAL_FRACTION, HEADS_FRACTION = 0.4, 0.6


def mesh_args(name: str, n_train: int) -> tuple[list[str], str]:
    """``trigeo mesh build`` limits for a demo mesh, and the rule in words.

    Cells keep at least ``minimum`` photos and split above 5x that
    (:data:`MESH_RULES`); below 20,000 training photos the initial grid is
    8x8 instead of the study's 31x31 (docs/mesh.md, "Small datasets").
    """
    if name not in MESH_RULES:
        raise ValueError(f"unknown demo mesh {name!r}; choose from {', '.join(MESH_RULES)}")
    minimum, limit = MESH_RULES[name]
    grid = 8 if n_train < 20000 else 31
    args = ["--minimum-examples", str(minimum), "--refinement-limit", str(limit),
            "--init-grid", str(grid)]  # fmt: skip
    rule = (
        f"{name} mesh: cells of at least {minimum} training photos, split above {limit} "
        f"(5x), {grid}x{grid} initial grid for {n_train:,} training photos"
    )
    return args, rule


def demo_stages(
    out: Path, photos: int, users: int, seed: int, mesh_presets: Sequence[str]
) -> list[DemoStage]:
    """The demo pipeline as a list of stages.

    Synthetic world, then per mesh: mesh, plot, M1, M1 predictions for
    ``heads`` and ``val``, M2 and M3 trained on ``heads``, their ``val``
    predictions; then one evaluation of every model (with user averaging).
    """
    world = out / "world"
    table = world / "table.parquet"
    stages = [
        DemoStage(
            "synthetic world",
            ["data", "synth", "--photos", str(photos), "--users", str(users),
             "--image-size", "64", "--seed", str(seed), "--val-fraction", str(VAL_FRACTION),
             "--heads-fraction", str(HEADS_FRACTION), "--out", str(world)],
            table,
        ),
    ]  # fmt: skip
    n_train = round(photos * (1 - VAL_FRACTION))
    preds: list[str] = []
    mesh_list: list[str] = []
    for preset in mesh_presets:
        mesh = out / f"{preset}.npz"
        model = out / f"m1-{preset}"
        pred = out / "predictions" / f"m1-{preset}.parquet"
        heads_pred = out / "predictions" / f"m1-{preset}-heads.parquet"
        limits, rule = mesh_args(preset, n_train)
        stages += [
            DemoStage(
                f"{preset} mesh",
                ["mesh", "build", "--points", str(table), "--split", "train", *limits,
                 "--out", str(mesh)],
                mesh,
                [table],
                note=rule,
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
            DemoStage(
                f"predict heads with M1 ({preset})",
                ["predict", "--model", str(model), "--data", str(world), "--split", "heads",
                 "--out", str(heads_pred)],
                heads_pred,
                [table, model / "model.json"],
            ),
        ]  # fmt: skip
        preds += ["--pred", str(pred)]
        previous = model
        for kind in ("m2", "m3"):
            head = out / f"{kind}-{preset}"
            head_pred = out / "predictions" / f"{kind}-{preset}.parquet"
            source = ["--m1", str(model)] if kind == "m2" else ["--m2", str(previous)]
            stages += [
                DemoStage(
                    f"{kind.upper()} on the {preset} mesh",
                    ["train", kind, "--data", str(world), *source, "--out", str(head),
                     "--config", "demo", "--seed", str(seed), "--m1-pred", str(heads_pred)],
                    head / "model.json",
                    [table, heads_pred, previous / "model.json"],
                ),
                DemoStage(
                    f"predict val with {kind.upper()} ({preset})",
                    ["predict", "--model", str(head), "--data", str(world), "--split", "val",
                     "--m1-pred", str(pred), "--out", str(head_pred)],
                    head_pred,
                    [table, pred, head / "model.json"],
                ),
            ]  # fmt: skip
            preds += ["--pred", str(head_pred)]
            previous = head
        mesh_list += ["--mesh", str(mesh)]
    report = out / "report"
    stages.append(
        DemoStage(
            "evaluation report",
            ["evaluate", "--truth", str(world), *preds, *mesh_list, "--oracle", "--averaging",
             "--baseline", "prior", "--out", str(report)],
            report / "report.html",
            [table, *(Path(p) for p in preds[1::2]), *(Path(m) for m in mesh_list[1::2])],
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
        if stage.note:
            _console.print(f"  [dim]{stage.note}[/dim]")
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
        typer.Option(
            "--mesh",
            help="Demo mesh(es): coarse (cells of 50+ photos) or fine (20+); repeatable.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage.")] = False,
) -> None:
    """Run the whole pipeline on the built-in synthetic world: data, mesh, M1, M2, M3, report."""
    run_demo(
        out, photos=photos, users=users, seed=seed, mesh_presets=mesh or ["coarse"], force=force
    )
