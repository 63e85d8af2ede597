"""M1 training throughput: ``trigeo train m1`` end to end against a bare timm + torch loop.

Measures, on this machine's CPU, in one process and one synthetic world
(:func:`trigeo.data.synth.make_world`, 64 px JPEGs, a small Delaunay mesh
fitted on its train photos):

* trigeo: :func:`trigeo.train.m1.train_m1` (the code behind ``trigeo train
  m1``) with the ``demo`` config (timm ``test_resnet``, 64 px, batch 128, the
  staged procedure: three class-balanced Adagrad stages, then SGD over all
  photos), so Lightning, its trainer per stage, the DataLoaders, validation
  and checkpoints are all inside. Its **steady-state** images/s is taken in
  the full-data (last) stage, from the end of its first training batch to the
  end of its last one: stage start-up (trainer, first batch, worker spawn)
  is left out; everything between, epoch boundaries included (validation,
  checkpoint, new loader per epoch), is in. trigeo's own numbers are printed
  too: the full-data stage's ``img/s`` as ``train_m1`` reports it (training
  images / ``Trainer.fit`` seconds: its start-up and last validation included)
  and the whole run's (all stages);
* bare timm+torch loop (the peer): a ``torch.utils.data.DataLoader`` over the
  same training photos doing PIL decode and timm's train transform with the
  demo's augmentation, the default collate, ``timm.create_model('test_resnet',
  num_classes=K)``, cross-entropy, backward and an SGD (momentum 0.9) step, at
  the same batch size. It runs as several (loader workers, torch threads)
  settings: 0 workers with all cores' threads or with one, 1 worker beside
  cores - 1 threads, 2 beside cores - 2 (at least 1); the fastest in each
  round counts (the best a hand-written loop reaches here at that moment).
  Its rate is timed after 3 warm-up batches over one pass of the training
  photos.

The variants run in interleaved rounds (trigeo, bare, trigeo, bare, ...); the
ratio trigeo / bare is taken within each round and the median over rounds is
reported, so a slow spell on a shared machine hits both sides of a ratio.
Target: trigeo >= 0.85x the bare loop.

Usage: ``python benchmarks/bench_m1.py [--quick] [--rounds N] [--set KEY=VALUE ...]``
(``--set`` overrides a demo config key for trigeo's side, e.g. ``--set
num_workers=2``, to compare settings). ``--mp16`` is accepted for a uniform
benchmark interface; M1's throughput does not depend on coordinates, so the
file is not read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from _common import machine_load  # benchmarks run as scripts: this folder is on sys.path

PEER = "bare timm+torch loop"


@dataclass
class World:
    """The benchmark's dataset, mesh and the training photos trigeo will use."""

    root: Path
    mesh_path: Path
    images: list[str]
    labels: np.ndarray
    n_cells: int


def make_world(tmp: Path, photos: int) -> World:
    """A synthetic world at 64 px and a small mesh fitted on its train photos."""
    from trigeo.data.synth import make_world as synth
    from trigeo.mesh import DelaunayMesh

    dataset = synth(
        tmp / "world",
        photos=photos,
        users=max(photos // 20, 1),
        image_size=64,
        seed=7,
        workers=2,
        val_fraction=0.2,
        heads_fraction=0.5,
    )
    train = dataset.photos("train")
    lat, lon = train["lat"].to_numpy(), train["lon"].to_numpy()
    # Sized by photos per cell like the demo's fine mesh (minimum 20): about 70 cells at 6,000
    # photos, so a balanced epoch (K x 16 samples) is tens of batches, as in the demo.
    mesh = DelaunayMesh(refinement_limit=100, minimum_examples=20, init_grid=8).fit(lat, lon)
    mesh_path = mesh.save(tmp / "mesh.npz")
    cells = mesh.locate(lat, lon)
    kept = cells >= 0
    return World(
        root=dataset.root,
        mesh_path=Path(mesh_path),
        images=[str(v) for v in train["image"].to_numpy()[kept]],
        labels=cells[kept].astype(np.int64),
        n_cells=int(mesh.n_cells_),
    )


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        overrides[key] = yaml.safe_load(value)
    return overrides


class _BatchClock:
    """A Lightning callback recording (time, images) at every training batch end, per fit."""

    def __new__(cls) -> Any:
        import lightning

        class Clock(lightning.Callback):
            def __init__(self) -> None:
                self.fits: list[list[tuple[float, int]]] = []
                self.threads = 0

            def on_fit_start(self, trainer: Any, module: Any) -> None:
                self.fits.append([])
                self.threads = torch.get_num_threads()  # what train_m1 set

            def on_train_batch_end(self, trainer: Any, module: Any, outputs, batch, idx) -> None:
                self.fits[-1].append((time.perf_counter(), len(batch["index"])))

        return Clock()


def trigeo_rates(world: World, tmp: Path, overrides: dict[str, Any], run: int) -> dict[str, float]:
    """One ``train_m1`` run with the demo config: steady, stage and whole-run images/s."""
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    config = load_config("demo", {"progress": False, **overrides})
    clock = _BatchClock()
    out = tmp / f"m1-{run}"
    model = train_m1(
        world.root, world.mesh_path, out, config, callbacks=[clock], report=lambda _: None
    )
    last = clock.fits[-1]
    steady = sum(n for _, n in last[1:]) / (last[-1][0] - last[0][0])
    stages = model.metrics["stages"]
    return {
        "steady": steady,
        "stage": float(stages[-1]["images_per_second"]),
        "run": float(model.metrics["train_images_per_second"]),
        "threads": float(clock.threads),
    }


class _Photos(torch.utils.data.Dataset):
    """Decode + transform, nothing else (the bare loop's dataset)."""

    def __init__(self, root: Path, images: list[str], labels: np.ndarray, transform: Any) -> None:
        self.paths = [root / image for image in images]
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[i])


def bare_rate(world: World, workers: int, threads: int, batch: int, seed: int) -> float:
    """Images/s of a plain DataLoader + timm model + SGD loop over the training photos."""
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    net = timm.create_model("test_resnet", num_classes=world.n_cells).train()
    config = resolve_data_config({"input_size": (3, 64, 64)}, model=net)
    transform = create_transform(
        **config, is_training=True, scale=(0.6, 1.0), hflip=0.5, color_jitter=0.0
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        _Photos(world.root, world.images, world.labels, transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )
    warm, seen, start = 3, 0, 0.0
    for i, (x, y) in enumerate(loader):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i + 1 == warm:
            start = time.perf_counter()
        elif i + 1 > warm:
            seen += len(y)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mp16",
        default="../shared/data/mp16_gps_100k.csv",
        help="accepted for a uniform interface; not read",
    )
    parser.add_argument("--quick", action="store_true", help="fewer photos, one round")
    parser.add_argument("--photos", type=int, help="world size (default 6000, 3000 with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 2, 1 with --quick)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a demo config key on trigeo's side (YAML value)",
    )
    args = parser.parse_args()
    photos = args.photos or (3000 if args.quick else 6000)
    rounds = args.rounds or (1 if args.quick else 2)
    overrides = _parse_sets(args.set)
    cores = os.cpu_count() or 1
    # (loader workers, torch threads): decode in the main process with all cores' threads
    # or one (OpenMP threads collapse when other jobs hold the cores), or in workers beside
    # fewer compute threads.
    settings = sorted({(0, cores), (0, 1), (1, max(1, cores - 1)), (2, max(1, cores - 2))})
    batch = 128
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world = make_world(tmp, photos)
        print(
            f"M1 training throughput on {cores} CPU cores ({machine_load()}): demo config "
            f"(test_resnet, 64 px, batch {batch}){' with ' + str(overrides) if overrides else ''}; "
            f"{len(world.images)} training photos, K={world.n_cells}; {rounds} round(s)"
        )
        ratios, rows = [], []
        for r in range(rounds):
            rates = trigeo_rates(world, tmp, overrides, r)
            bare = {s: bare_rate(world, s[0], s[1], batch, seed=r) for s in settings}
            best = max(bare, key=bare.get)
            ratios.append(rates["steady"] / bare[best])
            rows.append((rates, bare, best))
            print(
                f"round {r}: trigeo steady {rates['steady']:.0f} img/s "
                f"(train_m1 says: full-data stage {rates['stage']:.0f}, whole run "
                f"{rates['run']:.0f}; {rates['threads']:.0f} torch threads); "
                + ", ".join(f"bare w{w}/t{t} {v:.0f}" for (w, t), v in bare.items())
                + f"; {machine_load()}",
                flush=True,
            )
        print(f"{'':>34} {'img/s (median)':>15} {'vs ' + PEER:>28}")
        bare_best = statistics.median(bare[best] for _, bare, best in rows)
        for label, key in (
            ("trigeo full-data stage, steady", "steady"),
            ("trigeo full-data stage, reported", "stage"),
            ("trigeo whole run, reported", "run"),
        ):
            rate = statistics.median(rates[key] for rates, _, _ in rows)
            ratio = statistics.median(rates[key] / bare[best] for rates, bare, best in rows)
            print(f"{label:>34} {rate:>15.0f} {ratio:>27.2f}x")
        print(f"{PEER + ' (fastest setting)':>34} {bare_best:>15.0f} {1.0:>27.2f}x")
        verdict = "meets" if statistics.median(ratios) >= 0.85 else "misses"
        print(f"steady-state ratio {statistics.median(ratios):.2f}x: {verdict} the 0.85x target")


if __name__ == "__main__":
    main()
