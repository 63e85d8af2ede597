"""``trigeo demo``: the study reproduced on the built-in synthetic world.

World; coarse and fine Delaunay meshes and an S2 quad-tree (limits by photos
per cell, :func:`mesh_args`); one multi-head M1; its predictions per head and
label kind; M2 and M3; hierarchical and kNN predictors; one evaluation of
everything; then the study report (:mod:`trigeo.demo.report`). The stages
are built in :mod:`trigeo.demo.stages`; this module runs them.

The demo runs the same CLI commands a user would type, in order, printing each
one so it can be copied. A stage whose inputs and arguments are unchanged since
the last run is skipped (its key is a hash of the command line and the content
of the files it reads), so a second ``make demo`` only redoes what changed.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo import options
from trigeo.demo.stages import HEADS_FRACTION as HEADS_FRACTION
from trigeo.demo.stages import (
    MESH_RULES,
    ROLES,
    VAL_FRACTION,
    DemoStage,
    demo_stages,
    mesh_args,
)
from trigeo.demo.stages import QUICK_DIVISOR as QUICK_DIVISOR
from trigeo.errors import InputError
from trigeo.provenance import write_json_atomic

__all__ = [
    "MESH_RULES",
    "ROLES",
    "DemoStage",
    "demo",
    "demo_stages",
    "mesh_args",
    "run_demo",
]

_console = Console(stderr=True)
STATE_FILE = "demo-state.json"


def _load_state(path: Path) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    # Older demos stored only each stage's key.
    return {k: v if isinstance(v, dict) else {"key": v} for k, v in state.items()}


def run_demo(
    out: str | Path,
    run: Callable[[list[str]], Any],
    *,
    photos: int = 30000,
    users: int = 1500,
    seed: int = 7,
    quick: bool = False,
    force: bool = False,
    against: str | Path | None = None,
) -> Path:
    """Run (or resume) the demo pipeline and write the study report; returns its directory.

    Each stage prints its command and wall time; a stage whose key is
    unchanged is reused. The report (``out/report/report.html`` and ``.md``)
    lists every command with its time. ``run`` runs one ``trigeo`` command
    line (its arguments without ``trigeo``): the demo runs the very commands it
    prints, through the root command it was started from. ``against`` is
    another demo run's output directory (or its ``report.json``): the report
    shows that run's verdicts beside this one's and calls a finding whose
    verdicts differ not robust at this size.
    """
    out = Path(out)
    other = _other_report(Path(against)) if against is not None else None
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = {} if force else _load_state(state_path)
    stages = demo_stages(out, photos, users, seed, quick=quick)
    runs: list[dict[str, Any]] = []
    total = time.perf_counter()
    for number, stage in enumerate(stages, 1):
        key = stage.key()
        header = f"[bold cyan]\\[{number}/{len(stages)}] {stage.name}[/bold cyan]"
        command = "trigeo " + shlex.join(stage.args)
        previous = state.get(stage.name, {})
        if previous.get("key") == key and stage.output.exists():
            _console.print(f"{header} [dim]unchanged, reused[/dim]")
            runs.append(
                {"name": stage.name, "command": command, "status": "reused",
                 "seconds": float(previous.get("seconds", 0.0))}
            )  # fmt: skip
            continue
        _console.print(f"{header}\n  [dim]$ {command}[/dim]")
        if stage.note:
            _console.print(f"  [dim]{stage.note}[/dim]")
        start = time.perf_counter()
        run(stage.args)
        seconds = time.perf_counter() - start
        _console.print(f"  [green]done[/green] in {seconds:.1f} s")
        state[stage.name] = {"key": key, "seconds": round(seconds, 2)}
        write_json_atomic(state_path, state)
        runs.append({"name": stage.name, "command": command, "status": "ran", "seconds": seconds})
    report = _write_report(out, runs, photos, quick, other)
    _console.print(
        f"\n[bold]Report:[/bold] {report / 'report.html'} (also report.md); "
        f"{time.perf_counter() - total:.0f} s in all"
    )
    return report


def _other_report(path: Path) -> tuple[Path, str]:
    """Another run's ``report.json`` and its label (``seed 11``), checked before any stage runs."""
    report = path / "report" / "report.json" if path.is_dir() else path
    if not report.is_file():
        raise InputError(
            f"--against {path}: no demo report there (expected a demo output directory "
            "with report/report.json, or a report.json file)"
        )
    label = str(path)
    dataset = report.parent.parent / "world" / "dataset.json"
    try:
        seed = json.loads(dataset.read_text("utf-8"))["provenance"]["seed"]
        label = f"seed {seed}"
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        pass  # a report.json on its own: the path is its label
    return report, label


def _write_report(
    out: Path,
    runs: list[dict[str, Any]],
    photos: int,
    quick: bool,
    other: tuple[Path, str] | None = None,
) -> Path:
    """The study report from the evaluation's metrics and the stages' record."""
    from trigeo.demo.report import write_demo_report
    from trigeo.mesh import load_mesh

    n_train = round(photos * (1 - VAL_FRACTION))
    meshes = {}
    for name in MESH_RULES:
        mesh = load_mesh(out / f"{name}.npz")
        meshes[name] = {
            "path": str(out / f"{name}.npz"),
            "cells": int(mesh.n_cells_),
            "kind": MESH_RULES[name][0],
            "rule": mesh_args(name, n_train, quick=quick)[1],
        }
    evaluation = out / "evaluation"
    metrics = json.loads((evaluation / "metrics.json").read_text("utf-8"))
    report = out / "report"
    write_demo_report(
        report,
        metrics=metrics,
        roles=ROLES,
        meshes=meshes,
        stages=runs,
        evaluation_dir=evaluation,
        mesh_maps={name: out / f"{name}.png" for name in MESH_RULES},
        world=out / "world",
        other_run=other[0] if other else None,
        other_label=other[1] if other else None,
    )
    return report


def demo(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        options.out(
            "Directory for every demo artifact (default: demo-out, or demo-out-quick with --quick)."
        ),
    ] = None,
    photos: Annotated[int, typer.Option("--photos", min=500, help="Synthetic photos.")] = 30000,
    users: Annotated[int, typer.Option("--users", min=10, help="Synthetic users.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the world and training.")] = 7,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Every stage in about 2 minutes: 4,000 photos at 32 px, meshes of a quarter "
            "the photos per cell, one epoch per stage (the verdicts may differ at that size).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage.")] = False,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Another demo run's --out directory (e.g. of another --seed): the report "
            "shows its verdicts beside this run's and marks findings whose verdicts differ "
            "as not robust.",
        ),
    ] = None,
) -> None:
    """Reproduce the study on the built-in synthetic world: every finding, in one report."""
    if quick:
        photos, users = min(photos, 4000), min(users, 200)
    if out is None:
        # A quick run must not overwrite a full run's artifacts (their stages differ).
        out = Path("demo-out-quick" if quick else "demo-out")
    # The root `trigeo` command this one runs under: the demo needs the CLI without importing
    # trigeo.cli, which imports the demo.
    root = ctx.find_root().command

    def run(args: list[str]) -> Any:
        return root.main(args, prog_name="trigeo", standalone_mode=False)

    run_demo(
        out, run, photos=photos, users=users, seed=seed, quick=quick, force=force, against=against
    )
