"""The demo's stages: each a ``trigeo`` command line, the files it reads and its output.

:func:`demo_stages` lists them in order (world, meshes and maps, one
multi-head M1 and its predictions, M2 and M3, hierarchical and kNN, one
evaluation); :data:`MESH_RULES` and :func:`mesh_args` give the meshes' limits
by photos per cell; :data:`ROLES` names the models the report reads.
:mod:`trigeo.demo.pipeline` runs the stages.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from trigeo.provenance import hash_file
from trigeo.train.config import preset_path

__all__ = [
    "HEADS_FRACTION",
    "MESH_RULES",
    "QUICK_DIVISOR",
    "ROLES",
    "VAL_FRACTION",
    "DemoStage",
    "demo_stages",
    "mesh_args",
]


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
    stages += _mesh_stages(out, world, table, meshes, n_train, quick=quick)
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
    heads_pred = preds_dir / "m1-coarse-heads.parquet"
    stages += _m1_prediction_stages(model, world, preds_dir, pred, heads_pred, m1_reads)
    stages += _m2_m3_stages(
        out, world, table, model, preds_dir, pred["coarse"], heads_pred, seed, heads_config
    )
    hier = preds_dir / "hier.parquet"
    knn = preds_dir / "knn.parquet"
    stages += _retrieval_stages(out, world, model, hier, knn, m1_reads)
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


def _mesh_stages(
    out: Path, world: Path, table: Path, meshes: dict[str, Path], n_train: int, *, quick: bool
) -> list[DemoStage]:
    """Each demo mesh (:func:`mesh_args`) built on the training photos, then its map."""
    stages: list[DemoStage] = []
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
    return stages


def _m1_prediction_stages(
    model: Path,
    world: Path,
    preds_dir: Path,
    pred: dict[str, Path],
    heads_pred: Path,
    m1_reads: list[Path],
) -> list[DemoStage]:
    """M1's predictions: val with every head, at both label points; heads with the coarse one."""
    stages = [
        DemoStage(
            "predict val with every head",
            ["predict", "--model", str(model), "--data", str(world), "--split", "val",
             "--out", str(preds_dir / "m1.parquet")],
            pred["s2"],
            m1_reads,
        )
    ]  # fmt: skip
    for name in pred:  # every head at the other label point too
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
    stages.append(
        DemoStage(
            "predict heads with the coarse head",
            ["predict", "--model", str(model), "--data", str(world), "--split", "heads",
             "--head", "coarse", "--name", "M1 coarse", "--out", str(heads_pred)],
            heads_pred,
            m1_reads,
        )
    )  # fmt: skip
    return stages


def _m2_m3_stages(
    out: Path,
    world: Path,
    table: Path,
    model: Path,
    preds_dir: Path,
    coarse_pred: Path,
    heads_pred: Path,
    seed: int,
    heads_config: str,
) -> list[DemoStage]:
    """M2 (from M1) and M3 (from M2) on the coarse head, each trained then predicting val."""
    stages: list[DemoStage] = []
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
                 "--m1-pred", str(coarse_pred), "--out", str(head_pred)],
                head_pred,
                [table, coarse_pred, head / "model.json"],
            ),
        ]  # fmt: skip
        previous = head
    return stages


def _retrieval_stages(
    out: Path, world: Path, model: Path, hier: Path, knn: Path, m1_reads: list[Path]
) -> list[DemoStage]:
    """Hierarchical coarse x fine, the train photos' retrieval index and the kNN predictor."""
    index = out / "index"
    return [
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
