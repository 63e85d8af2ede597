"""``trigeo demo``: the study reproduced on the built-in synthetic world.

World; coarse and fine Delaunay meshes and an S2 quad-tree (limits by photos
per cell, :func:`mesh_args`); one multi-head M1; its predictions per head and
label kind; M2 and M3; hierarchical and kNN predictors; one evaluation of
everything; then the study report (:mod:`trigeo.demo.report`).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo import options
from trigeo.errors import InputError
from trigeo.provenance import hash_file, write_json_atomic
from trigeo.train.config import preset_path

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


#: Demo meshes by photos per cell: name -> (kind, minimum examples, refinement limit,
#: Delaunay initial grid). Chosen on the demo's worlds (seeds 7 and 11, 18,000 training
#: photos; the sweep is in docs/demo.md, "The meshes"):
#: - the coarse mesh must cover the photos as the study's does: at least 95% of the training
#:   photos in kept cells and a best possible accuracy of 99% or more at 750 km. A low
#:   minimum (10) keeps sparse regions, and a 20x20 first grid keeps any one sparse triangle
#:   small enough for 750 km; the old rule (240 / 1,200 on an 8x8 grid) kept 25 cells and
#:   dropped 20% of the photos. About 150 cells, 120 photos each.
#: - the fine mesh splits above 120 (about 50 photos a cell, 350 cells): a cell a small CNN
#:   can learn, and 3x the best possible accuracy of the coarse mesh at 1 km. The study's
#:   1:12 coarse:fine ratio would need either a coarse mesh of 30 continental cells (which
#:   fails the 750 km rule) or fine cells of a handful of photos; it is about 1:2.4 here.
#: - the S2 quad-tree uses the fine mesh's limits, which give it about the fine mesh's cell
#:   count (the comparison is at equal cells; the counts are reported).
MESH_RULES: dict[str, tuple[str, int, int, int]] = {
    "coarse": ("delaunay", 10, 800, 20),
    "fine": ("delaunay", 10, 120, 16),
    "s2": ("quadtree", 10, 120, 0),
}
#: Share of the photos held out of M1 (``val`` + ``heads``) and the heads' share of that. The
#: study's 0.18 / 0.5 leaves M2 and M3 about 2,700 of 30,000 photos to learn from; 0.4 / 0.6
#: gives them 7,200 and keeps 4,800 for the report.
VAL_FRACTION, HEADS_FRACTION = 0.4, 0.6


#: ``--quick`` divides every mesh rule by this: on 2,400 training photos the full rule's
#: coarse mesh would keep almost no cell. Cells of 5 photos teach little; the quick run is a
#: check that every stage works, not a measurement.
QUICK_DIVISOR = 4


def mesh_args(name: str, n_train: int, *, quick: bool = False) -> tuple[list[str], str]:
    """``trigeo mesh build`` arguments for a demo mesh, and the rule in words.

    See :data:`MESH_RULES`. ``quick`` divides the limits by
    :data:`QUICK_DIVISOR` (the minimum stays at least 2); ``n_train`` only
    enters the wording.
    """
    if name not in MESH_RULES:
        raise ValueError(f"unknown demo mesh {name!r}; choose from {', '.join(MESH_RULES)}")
    kind, minimum, limit, grid = MESH_RULES[name]
    if quick:
        minimum, limit = max(2, minimum // QUICK_DIVISOR), limit // QUICK_DIVISOR
    args = ["--minimum-examples", str(minimum), "--refinement-limit", str(limit)]
    if kind == "quadtree":
        args = ["--kind", "quadtree", *args]
        return args, (
            f"{name} mesh: S2 quad-tree cells of at least {minimum} training photos, split "
            f"above {limit} (the fine mesh's limits, for about its cell count)"
        )
    args += ["--init-grid", str(grid)]
    return args, (
        f"{name} mesh: triangles of at least {minimum} training photos, split above {limit}, "
        f"{grid}x{grid} initial grid ({n_train:,} training photos)"
    )


#: Display name of each role the report reads (``trigeo.demo.findings``).
ROLES: dict[str, str] = {
    "m1_coarse": "M1 coarse",
    "m1_fine": "M1 fine",
    "m1_s2": "M1 s2",
    "m1_coarse_cell": "M1 coarse cell",
    "m1_fine_cell": "M1 fine cell",
    "m1_s2_cell": "M1 s2 cell",
    "m2": "M2 coarse",
    "m3": "M3 coarse",
    "hier": "hier coarse x fine",
    "knn": "kNN",
    "prior": "prior (coarse)",
}


def demo_stages(
    out: Path, photos: int, users: int, seed: int, *, quick: bool = False
) -> list[DemoStage]:
    """The demo pipeline as a list of stages.

    Synthetic world; coarse and fine Delaunay meshes and an S2 quad-tree
    (:data:`MESH_RULES`) with their maps; one multi-head M1 (a head per mesh,
    one shared backbone); its predictions per head, at both label points; M2
    and M3 on the coarse head; hierarchical coarse x fine; the kNN retrieval
    predictor; one evaluation of everything.
    """
    world = out / "world"
    table = world / "table.parquet"
    preds_dir = out / "predictions"
    image_size = "32" if quick else "64"
    stages = [
        DemoStage(
            "synthetic world",
            ["data", "synth", "--photos", str(photos), "--users", str(users),
             "--image-size", image_size, "--seed", str(seed), "--val-fraction", str(VAL_FRACTION),
             "--heads-fraction", str(HEADS_FRACTION), "--out", str(world)],
            table,
        ),
    ]  # fmt: skip
    n_train = round(photos * (1 - VAL_FRACTION))
    meshes = {name: out / f"{name}.npz" for name in MESH_RULES}
    for name, mesh in meshes.items():
        limits, rule = mesh_args(name, n_train, quick=quick)
        stages += [
            DemoStage(
                f"{name} mesh",
                ["mesh", "build", "--data", str(world), "--split", "train", *limits,
                 "--out", str(mesh)],
                mesh,
                [table],
                note=rule,
            ),
            DemoStage(
                f"{name} mesh map",
                ["mesh", "plot", "--mesh", str(mesh), "--out", str(out / f"{name}.png"),
                 "--data", str(world)],
                out / f"{name}.png",
                [mesh],
            ),
        ]  # fmt: skip
    model = out / "m1"
    mesh_flags = [flag for path in meshes.values() for flag in ("--mesh", str(path))]
    # --quick: the quick M1 preset (one small epoch per stage) and the tiny heads presets.
    m1_config = "quick" if quick else "demo"
    heads_config = "test" if quick else "demo"
    stages.append(
        DemoStage(
            "M1, one backbone with a head per mesh",
            ["train", "m1", "--data", str(world), *mesh_flags, "--out", str(model),
             "--config", m1_config, "--seed", str(seed)],
            model / "model.json",
            # The packaged preset is read too: a changed preset must retrain, not be reused.
            [table, *meshes.values(), preset_path(m1_config)],
            note="the loss is summed over the heads; the fine mesh's classes drive the "
            "class-balanced stages",
        )
    )  # fmt: skip
    m1_reads = [table, model / "model.json"]
    pred = {name: preds_dir / f"m1-{name}.parquet" for name in meshes}
    stages.append(
        DemoStage(
            "predict val with every head",
            ["predict", "--model", str(model), "--data", str(world), "--split", "val",
             "--out", str(preds_dir / "m1.parquet")],
            pred["s2"],
            m1_reads,
        )
    )  # fmt: skip
    for name in meshes:  # every head at the other label point too
        stages.append(
            DemoStage(
                f"predict val at the cell centroid ({name})",
                ["predict", "--model", str(model), "--data", str(world), "--split", "val",
                 "--head", name, "--label", "cell", "--name", f"M1 {name} cell",
                 "--out", str(preds_dir / f"m1-{name}-cell.parquet")],
                preds_dir / f"m1-{name}-cell.parquet",
                m1_reads,
            )
        )  # fmt: skip
    heads_pred = preds_dir / "m1-coarse-heads.parquet"
    stages.append(
        DemoStage(
            "predict heads with the coarse head",
            ["predict", "--model", str(model), "--data", str(world), "--split", "heads",
             "--head", "coarse", "--name", "M1 coarse", "--out", str(heads_pred)],
            heads_pred,
            m1_reads,
        )
    )  # fmt: skip
    previous = model
    for kind in ("m2", "m3"):
        head = out / f"{kind}-coarse"
        head_pred = preds_dir / f"{kind}-coarse.parquet"
        source = ["--m1", str(model)] if kind == "m2" else ["--m2", str(previous)]
        stages += [
            DemoStage(
                f"{kind.upper()} on the coarse head",
                ["train", kind, "--data", str(world), *source, "--out", str(head),
                 "--config", heads_config, "--seed", str(seed), "--m1-pred", str(heads_pred),
                 "--name", f"{kind.upper()} coarse"],
                head / "model.json",
                [table, heads_pred, previous / "model.json", preset_path(f"{kind}-{heads_config}")],
            ),
            DemoStage(
                f"predict val with {kind.upper()}",
                ["predict", "--model", str(head), "--data", str(world), "--split", "val",
                 "--m1-pred", str(pred["coarse"]), "--out", str(head_pred)],
                head_pred,
                [table, pred["coarse"], head / "model.json"],
            ),
        ]  # fmt: skip
        previous = head
    hier = preds_dir / "hier.parquet"
    index = out / "index"
    knn = preds_dir / "knn.parquet"
    stages += [
        DemoStage(
            "hierarchical coarse x fine",
            ["predict", "--model", str(model), "--hierarchical", "--head", "coarse",
             "--head", "fine", "--data", str(world), "--split", "val",
             "--name", ROLES["hier"], "--out", str(hier)],
            hier,
            m1_reads,
        ),
        DemoStage(
            "retrieval index of the train photos",
            ["index", "build", "--model", str(model), "--data", str(world), "--split", "train",
             "--out", str(index)],
            index / "index.json",
            m1_reads,
        ),
        DemoStage(
            "predict val by kNN retrieval",
            ["predict", "--model", str(model), "--answer", "knn", "--index", str(index),
             "--data", str(world),
             "--split", "val", "--name", ROLES["knn"], "--out", str(knn)],
            knn,
            [*m1_reads, index / "index.json"],
        ),
    ]  # fmt: skip
    all_preds = [
        *(pred[name] for name in meshes),
        *(preds_dir / f"m1-{name}-cell.parquet" for name in meshes),
        preds_dir / "m2-coarse.parquet",
        preds_dir / "m3-coarse.parquet",
        hier,
        knn,
    ]
    evaluation = out / "evaluation"
    stages.append(
        DemoStage(
            "evaluation",
            ["evaluate", "--data", str(world),
             *(flag for p in all_preds for flag in ("--pred", str(p))),
             *mesh_flags, "--oracle", "--averaging", "--baseline", "prior",
             "--out", str(evaluation)],
            evaluation / "metrics.json",
            [table, *all_preds, *meshes.values()],
        )
    )  # fmt: skip
    return stages


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
