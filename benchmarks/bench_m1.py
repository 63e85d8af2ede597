"""M1 throughput: does the data pipeline keep the training step fed?

Measures, on this machine's CPU:

* loader images/s: JPEG read + decode + timm train transform, through a
  DataLoader with ``--workers`` worker processes (default 2), at 64 px and 299 px;
* train-step images/s: forward + backward + Adagrad step of M1 (timm
  backbone + linear head over ``--cells`` cells) on in-memory batches at the
  same sizes, the best of 1 thread and all cores;

and prints the ratio loader / train step (the peer). The pipeline should
deliver at least 2x what the training step consumes.

Usage: ``python benchmarks/bench_m1.py [--quick] [--backbone resnet10t]``.
``--mp16`` is accepted for a uniform benchmark interface; M1's throughput
does not depend on coordinates, so the file is not read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _world(root: Path, photos: int, size: int):
    from trigeo.data.synth import make_world

    return make_world(
        root / f"world-{size}", photos=photos, users=max(photos // 20, 1), image_size=size, seed=0
    )


def loader_rate(dataset, data_config, workers: int, batch: int, repeats: int) -> float:
    from trigeo.data.loading import PhotoDataset, build_transform, collate_skip
    from trigeo.train.samplers import EpochSampler

    transform = build_transform(data_config, train=True, scale=(0.5, 1.0), color_jitter=0.1)
    photos = PhotoDataset(
        dataset.root, dataset.table["image"], np.zeros(len(dataset.table)), transform
    )
    sampler = EpochSampler(len(photos), seed=0)
    loader = torch.utils.data.DataLoader(
        photos,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip,
        persistent_workers=workers > 0,
    )
    next(iter(loader))  # start the workers before timing
    seen, start = 0, time.perf_counter()
    for epoch in range(repeats):
        sampler.set_epoch(epoch)
        for item in loader:
            seen += len(item["index"])
    return seen / (time.perf_counter() - start)


def train_rate(backbone: str, size: int, cells: int, batch: int, steps: int) -> float:
    """Best train-step rate over 1 thread and all cores (OpenMP can lose on a busy CPU)."""
    counts = sorted({1, os.cpu_count() or 1})
    return max(_train_rate(backbone, size, cells, batch, steps, n) for n in counts)


def _train_rate(
    backbone: str, size: int, cells: int, batch: int, steps: int, threads: int
) -> float:
    from trigeo.models import M1Net

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = M1Net(backbone, cells).train()
    optimizer = torch.optim.Adagrad(net.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, cells, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mp16",
        default="../shared/data/mp16_gps_100k.csv",
        help="accepted for a uniform interface; not read",
    )
    parser.add_argument("--quick", action="store_true", help="fewer photos and steps")
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--cells", type=int, default=538, help="K (coarse mesh size)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    from trigeo.models import M1Net
    from trigeo.models.m1 import resolve_image_config

    photos = 256 if args.quick else 1024
    steps = 3 if args.quick else 8
    backbone = M1Net(args.backbone, 2).backbone
    print(
        f"M1 throughput on {os.cpu_count()} CPU cores, backbone {args.backbone}, "
        f"K={args.cells}, batch {args.batch}, {args.workers} loader workers"
    )
    print(f"{'size':>6} {'loader img/s':>14} {'train-step img/s':>18} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 299):
            dataset = _world(Path(tmp), photos if size == 64 else photos // 2, size)
            config = resolve_image_config(backbone, size)
            load = loader_rate(dataset, config, args.workers, args.batch, 2 if size == 64 else 1)
            train = train_rate(args.backbone, size, args.cells, args.batch, steps)
            print(f"{size:>6} {load:>14.1f} {train:>18.1f} {load / train:>6.1f}x")


if __name__ == "__main__":
    main()
