"""Prediction throughput: ``trigeo predict`` against a bare loop doing the same work.

Measures, on this machine's CPU, at 64 px input from 640x480 JPEGs and at
224 px from 1280x960 JPEGs (sources larger than the input, as photos are):

* bare loop images/s: a ``DataLoader`` over PIL decode + the model's own timm
  eval transform, then one forward pass, softmax and top-k; nothing else;
* trigeo images/s: :func:`trigeo.predict.m1.predict_m1` (the code behind
  ``trigeo predict``) over the same photos, from a model directory on disk, so
  it includes loading the model, Lightning's trainer and writing the
  predictions file;

each with JPEG draft decoding (what ``trigeo predict`` does: libjpeg decodes
at 1/2, 1/4 or 1/8 scale, never below the eval transform's resize target) and
with full decoding (draft forced off on both sides). Both sides use the same
batch size, torch threads and loader workers. The variants are run in
interleaved rounds, rotating their order; each ratio is the median over rounds
of the ratio within a round, so a slow spell on a shared machine hits both
sides of it. Ratios are given by wall time (what a user waits, as noisy as
the machine) and by CPU time (this process plus its joined loader workers:
the work done, which other jobs on the same cores barely change).
``extra s/call`` is the median wall time trigeo spends beyond the bare loop
per call: about the same at both sizes means per-call set-up (model
directory, Lightning trainer, predictions file) rather than per-image work,
and a run over thousands of photos spreads it thin.

Start-up is measured in fresh processes: ``python -X importtime -c 'import
torch; import timm; import lightning'`` (each package's own cumulative import
time, then the process's wall), and the wall time of the ``trigeo predict`` CLI
over the 64 px photos minus the in-process (steady-state, after warm-up)
``predict_m1`` time for the same photos, i.e. what a new process adds before
its first batch.

The model is built here: an M1 (``--backbone``, random init, nothing
downloaded) over a coarse mesh fitted on synthetic photo positions
(``trigeo.data.synth``), saved with ``M1Model.save``.

Usage: ``python benchmarks/bench_predict.py [--quick] [--backbone test_resnet]``.
``--mp16`` is accepted for a uniform benchmark interface; the file is not read.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF, getrusage
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

# (input px, source width, source height)
SIZES = ((64, 640, 480), (224, 1280, 960))
MESH_POINTS = 2000
DISTINCT = 16


@dataclass
class Case:
    """One input size: its dataset, model directory and the model's timm data config."""

    size: int
    source: tuple[int, int]
    data_dir: Path
    model_dir: Path
    paths: list[Path]
    data_config: dict[str, Any]
    draft_size: tuple[int, int]
    drafted: tuple[int, int]


def _photo_jpeg(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A photo-like JPEG: colour gradients, a smooth texture and sensor grain."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top, bottom, side = rng.uniform(0, 255, (3, 1, 1, 3)).astype(np.float32)
    fx, fy = rng.uniform(3, 30, 2)
    img = top * (1 - y) + bottom * y + 0.3 * (side - 128) * x
    img = img + 25 * np.sin(2 * np.pi * (fx * x + fy * y)).astype(np.float32)
    img += rng.uniform(-12, 12, (height, width, 1)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def synthetic_mesh(root: Path) -> tuple[pd.DataFrame, Path]:
    """Synthetic photo rows and a coarse mesh fitted on their positions (saved under ``root``)."""
    from trigeo.data.synth import WorldConfig, sample_photos
    from trigeo.mesh import DelaunayMesh

    table, _ = sample_photos(WorldConfig(photos=MESH_POINTS, users=100, image_size=64, seed=0))
    mesh_path = root / "coarse.npz"
    mesh = DelaunayMesh.from_preset("coarse", scale_to=MESH_POINTS)
    mesh.fit(table["lat"].to_numpy(), table["lon"].to_numpy()).save(mesh_path)
    return table, mesh_path


def build_case(
    root: Path,
    table: pd.DataFrame,
    mesh_path: Path,
    size: int,
    source: tuple[int, int],
    photos: int,
    backbone: str,
) -> Case:
    """Write ``photos`` JPEGs of ``source`` size as a dataset, and an M1 model at ``size`` px."""
    from trigeo.data.loading import eval_draft_size
    from trigeo.data.table import Dataset
    from trigeo.mesh import DelaunayMesh
    from trigeo.models.m1 import M1Model, M1Net, resolve_image_config
    from trigeo.provenance import make_provenance

    mesh = DelaunayMesh.load(mesh_path)
    data_dir = root / f"photos-{size}"
    table = table.iloc[:photos].copy()
    table["split"] = "val"
    rng = np.random.default_rng(size)
    # A few distinct pictures, repeated: decoding costs the same, generating them does not.
    pictures = [_photo_jpeg(rng, *source) for _ in range(min(photos, DISTINCT))]
    paths = [data_dir / image for image in table["image"]]
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pictures[i % len(pictures)])
    Dataset.write(data_dir, table, make_provenance({"benchmark": "bench_predict"}), images="folder")

    torch.manual_seed(0)
    net = M1Net(backbone, int(mesh.n_cells_)).eval()
    config = resolve_image_config(net.backbone, size)
    model_dir = root / f"m1-{size}"
    M1Model(net, mesh, label_kind="cell", data_config=config).save(model_dir, mesh_path)
    draft_size = eval_draft_size(config)
    with Image.open(paths[0]) as img:
        img.draft("RGB", draft_size)
        drafted = img.size
    return Case(size, source, data_dir, model_dir, paths, config, draft_size, drafted)


@dataclass
class Timing:
    """One timed call: wall seconds and CPU seconds of this process plus its reaped children."""

    wall: float
    cpu: float


@contextmanager
def _clock() -> Iterator[Timing]:
    """Yield a :class:`Timing` filled with the block's wall and CPU time when it ends.

    A DataLoader without persistent workers joins them when its iterator is
    exhausted, so their CPU time is in ``RUSAGE_CHILDREN`` by then. CPU time
    counts the work done whatever else shares the cores; wall time is what a
    user waits.
    """

    def cpu() -> float:
        own, children = (getrusage(who) for who in (RUSAGE_SELF, RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    timing = Timing(0.0, 0.0)
    wall0, cpu0 = time.perf_counter(), cpu()
    yield timing
    timing.wall, timing.cpu = time.perf_counter() - wall0, cpu() - cpu0


class _BareImages(torch.utils.data.Dataset):
    """File path -> PIL decode (optionally drafted) -> eval transform; no error handling."""

    def __init__(
        self,
        paths: list[Path],
        transform: Callable[[Image.Image], torch.Tensor],
        draft_size: tuple[int, int] | None,
    ) -> None:
        self.paths, self.transform, self.draft_size = paths, transform, draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as img:
            if self.draft_size is not None:
                img.draft("RGB", self.draft_size)
            return self.transform(img.convert("RGB"))


def time_bare(
    net: torch.nn.Module, case: Case, draft: bool, batch: int, workers: int, top_k: int
) -> Timing:
    """Time the bare loop over the case's photos (a fresh DataLoader, as predict makes one)."""
    from timm.data import create_transform

    config = case.data_config
    transform = create_transform(
        input_size=tuple(config["input_size"]),
        interpolation=config["interpolation"],
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        crop_pct=config["crop_pct"],
        crop_mode=config["crop_mode"],
    )
    dataset = _BareImages(case.paths, transform, case.draft_size if draft else None)
    with _clock() as timing, torch.inference_mode():
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers)
        for x in loader:
            torch.softmax(net(x), dim=1).topk(top_k, dim=1)
    return timing


@contextmanager
def _photo_dataset_draft(enabled: bool) -> Iterator[list[Any]]:
    """Record the ``draft_size`` predict asks PhotoDataset for; with ``enabled=False`` drop it."""
    from trigeo.data.loading import PhotoDataset

    original = PhotoDataset.__init__
    asked: list[Any] = []

    def init(self: PhotoDataset, *args: Any, draft_size: Any = None, **kwargs: Any) -> None:
        asked.append(draft_size)
        original(self, *args, draft_size=draft_size if enabled else None, **kwargs)

    PhotoDataset.__init__ = init  # type: ignore[method-assign]
    try:
        yield asked
    finally:
        PhotoDataset.__init__ = original  # type: ignore[method-assign]


def time_trigeo(
    case: Case,
    out: Path,
    draft: bool,
    batch: int,
    workers: int,
    top_k: int,
    images: list[Path] | None = None,
) -> Timing:
    """Time ``predict_m1`` over the case's dataset (model load and file write included).

    With ``images``, predict those files instead (the warm-up).
    """
    from trigeo.predict.m1 import predict_m1
    from trigeo.runtime.options import InferenceOptions

    source: dict[str, Any] = {"images": images} if images else {"data": case.data_dir}
    with _photo_dataset_draft(draft) as asked, _clock() as timing:
        predict_m1(
            case.model_dir,
            out,
            **source,
            split="val",
            top_k=top_k,
            options=InferenceOptions(
                batch_size=batch, num_workers=workers, accelerator="cpu", devices=1, progress=False
            ),
            report=lambda message: None,
        )
    # Without this, a predict that stopped passing draft_size would be timed as "draft".
    if draft and tuple(asked[0] or ()) != case.draft_size:
        raise RuntimeError(f"predict asked for draft_size {asked[0]}, expected {case.draft_size}")
    return timing


def _wall(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of a command and its stderr (shown if it fails)."""
    start = time.perf_counter()
    result = subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stderr


def _import_seconds(importtime: str, names: tuple[str, ...]) -> dict[str, float]:
    """Cumulative seconds of each top-level import in ``python -X importtime`` output."""
    seconds = dict.fromkeys(names, 0.0)
    for line in importtime.splitlines():
        fields = line.split("|")
        if not line.startswith("import time:") or len(fields) != 3:
            continue
        name = fields[2][1:]  # one separator space; more means a nested import
        if name in seconds:
            seconds[name] += int(fields[1]) / 1e6
    return seconds


def startup_rows(
    case: Case, out: Path, steady_s: float, args: argparse.Namespace, repeats: int
) -> list[tuple[str, float]]:
    """Median wall seconds of fresh processes: imports, then the CLI minus steady state."""
    # Same intra-op threads as the in-process runs (torch reads OMP_NUM_THREADS at import).
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    packages = ("torch", "timm", "lightning")
    imports = [sys.executable, "-X", "importtime", "-c", "; ".join(f"import {p}" for p in packages)]
    cli = [
        str(Path(sys.executable).with_name("trigeo")),
        "predict",
        "--model",
        str(case.model_dir),
        "--out",
        str(out),
        "--data",
        str(case.data_dir),
        "--split",
        "val",
        "--batch-size",
        str(args.batch),
        "--workers",
        str(args.workers),
        "--accelerator",
        "cpu",
        "--no-progress",
    ]
    walls: dict[str, list[float]] = {}
    for _ in range(repeats):
        seconds = {"python -c pass": _wall([sys.executable, "-c", "pass"], env)[0]}
        wall, stderr = _wall(imports, env)
        seconds.update(
            {f"  import {name}": t for name, t in _import_seconds(stderr, packages).items()}
        )
        seconds[f"python -c 'import {', '.join(packages)}', wall"] = wall
        seconds["trigeo predict (CLI), wall"] = _wall(cli, env)[0]
        for name, value in seconds.items():
            walls.setdefault(name, []).append(value)
    rows = [(name, statistics.median(values)) for name, values in walls.items()]
    cli_wall = rows[-1][1]
    rows.append((f"predict_m1 in-process, same {len(case.paths)} photos", steady_s))
    rows.append(("start-up = CLI wall - in-process", cli_wall - steady_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mp16",
        default="../shared/data/mp16_gps_100k.csv",
        help="accepted for a uniform interface; not read",
    )
    parser.add_argument("--quick", action="store_true", help="fewer photos and rounds")
    parser.add_argument("--backbone", default="test_resnet", help="timm name (demo: test_resnet)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: cores - workers)"
    )
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument(
        "--photos",
        type=int,
        default=None,
        help="photos at 64 px, a quarter of them at 224 px (320; --quick 192); more photos "
        "spread predict's per-call set-up thinner",
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.threads is None:
        args.threads = max(1, cores - args.workers)
    rounds = args.rounds or (2 if args.quick else 3)
    n = args.photos or (192 if args.quick else 320)
    # A quarter at 224 px, where an image costs several times more: similar seconds per call.
    photos = {64: n, 224: max(n // 4, args.batch)}
    torch.set_num_threads(args.threads)

    from trigeo.models.m1 import M1Model

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        table, mesh_path = synthetic_mesh(root)
        cases = [
            build_case(root, table, mesh_path, s, (w, h), photos[s], args.backbone)
            for s, w, h in SIZES
        ]
        built = time.perf_counter() - start
        model = M1Model.load(cases[0].model_dir)
        print(
            f"Prediction throughput on {cores} CPU cores, backbone {args.backbone} "
            f"(random init, K={model.net.num_classes}), batch {args.batch}, "
            f"{args.threads} torch thread(s), {args.workers} loader workers, "
            f"median of {rounds} interleaved rounds (data built in {built:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f})"
        )
        nets = {case.size: M1Model.load(case.model_dir).net.eval() for case in cases}
        # Warm-up, untimed: the first predict imports Lightning and pyarrow's writer,
        # the first forward at a size sets up its kernels.
        for case in cases:
            few = case.paths[: args.batch]
            time_trigeo(case, root / "warm.parquet", True, args.batch, 0, args.top_k, few)
            time_bare(nets[case.size], replace(case, paths=few), True, args.batch, 0, args.top_k)
        start = time.perf_counter()
        variants = [(side, draft) for draft in (True, False) for side in ("bare", "trigeo")]
        runs: dict[tuple[int, str, bool], list[Timing]] = {}
        for r in range(rounds):
            for case in cases:
                # Rotate the order so neither side always runs first in a round.
                for side, draft in variants[r % 4 :] + variants[: r % 4]:
                    if side == "bare":
                        timing = time_bare(
                            nets[case.size], case, draft, args.batch, args.workers, args.top_k
                        )
                    else:
                        out = root / "preds" / f"{case.size}.parquet"
                        timing = time_trigeo(case, out, draft, args.batch, args.workers, args.top_k)
                    runs.setdefault((case.size, side, draft), []).append(timing)
        measured = time.perf_counter() - start

        def ratio(a: tuple[int, str, bool], b: tuple[int, str, bool], clock: str) -> float:
            """Median over rounds of throughput a / throughput b (= time b / time a)."""
            pairs = zip(runs[a], runs[b], strict=True)
            return statistics.median(getattr(y, clock) / getattr(x, clock) for x, y in pairs)

        def rate(key: tuple[int, str, bool], clock: str) -> float:
            return len(photos_of[key[0]]) / statistics.median(getattr(t, clock) for t in runs[key])

        photos_of = {case.size: case.paths for case in cases}
        print(
            f"{'size':>5} {'source':>9} {'decode':>14} {'photos':>7} {'bare img/s':>11} "
            f"{'trigeo img/s':>13} {'trigeo/bare':>12} {'by CPU time':>12} {'extra s/call':>13}"
        )
        for case in cases:
            n = len(case.paths)
            for draft in (True, False):
                decode = f"draft {case.drafted[0]}x{case.drafted[1]}" if draft else "full"
                ours, bare = (case.size, "trigeo", draft), (case.size, "bare", draft)
                # Wall seconds trigeo spends beyond the bare loop per call: about the same at
                # both sizes means per-call set-up rather than per-image work.
                pairs = zip(runs[ours], runs[bare], strict=True)
                extra = statistics.median(o.wall - b.wall for o, b in pairs)
                print(
                    f"{case.size:>5} {case.source[0]:>4}x{case.source[1]:<4} {decode:>14} "
                    f"{n:>7} {rate(bare, 'wall'):>11.1f} {rate(ours, 'wall'):>13.1f} "
                    f"{ratio(ours, bare, 'wall'):>12.2f} {ratio(ours, bare, 'cpu'):>12.2f} "
                    f"{extra:>13.2f}"
                )
        for case in cases:
            on, off = (case.size, "trigeo", True), (case.size, "trigeo", False)
            bare_on, bare_off = (case.size, "bare", True), (case.size, "bare", False)
            print(
                f"JPEG draft at {case.size} px from {case.source[0]}x{case.source[1]} "
                f"(draft / full decode, wall; by CPU time): "
                f"trigeo predict {ratio(on, off, 'wall'):.2f}x; {ratio(on, off, 'cpu'):.2f}x, "
                f"bare loop {ratio(bare_on, bare_off, 'wall'):.2f}x; "
                f"{ratio(bare_on, bare_off, 'cpu'):.2f}x"
            )
        print(f"(rounds took {measured:.0f} s)")

        small = cases[0]
        steady = statistics.median(t.wall for t in runs[small.size, "trigeo", True])
        out = root / "preds" / "cli.parquet"
        start = time.perf_counter()
        rows = startup_rows(small, out, steady, args, 1 if args.quick else 2)
        print(f"\nStart-up, fresh processes ({small.size} px photos; median wall seconds):")
        for name, seconds in rows:
            print(f"  {name:<46} {seconds:>6.2f}")
        print(
            f"(measured in {time.perf_counter() - start:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f} at the end)"
        )


if __name__ == "__main__":
    main()
