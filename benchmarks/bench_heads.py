"""M2 and M3 throughput beside M1's inference, measured in the same run.

On a synthetic world of ``--photos`` photos at 64 px (the demo's size) with a
mesh of cells of 50+ photos, and the demo's M1 network (``test_resnet``):

* M1 inference photos/s: ``trigeo predict`` over every photo (the peer);
* M2 train photos/s: forward + backward + Adam step of the study's M2
  (width 1626, depth 3) on batches of 256 input vectors;
* M3 train photos/s: the same for M3 (M2's layers + a bidirectional LSTM of
  256 units) on batches of 32 albums of 24;
* M2 and M3 ``trigeo predict`` photos/s, given M1's predictions file (dataset
  read, input vectors, albums, forward pass, Parquet written).

The issue's limit: M2 and M3 prediction together add at most 25% to M1's
prediction time. Weights are untrained (throughput does not depend on them).

Usage: ``python benchmarks/bench_heads.py [--quick]``. ``--mp16`` is accepted
for the uniform interface and not read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def _setup(root: Path, photos: int):
    from trigeo.data.synth import make_world
    from trigeo.mesh import DelaunayMesh
    from trigeo.models import M1Model, M1Net
    from trigeo.models.m1 import resolve_image_config

    dataset = make_world(root / "world", photos=photos, users=max(photos // 20, 1), seed=0)
    train = dataset.photos("train")
    mesh = DelaunayMesh(refinement_limit=250, minimum_examples=50, init_grid=8).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )
    mesh.save(root / "mesh.npz")
    torch.manual_seed(0)
    net = M1Net("test_resnet", mesh.n_cells_).eval()
    m1 = M1Model(
        net, mesh, label_kind="imagery", data_config=resolve_image_config(net.backbone, 64)
    )
    m1.name = "M1 bench"
    m1.save(root / "m1", root / "mesh.npz")
    return dataset, mesh, m1


def _heads(root: Path, mesh, m1):
    from trigeo.models import M2Model, M2Net, M3Model, M3Net

    record = {
        "model_id": m1.model_id,
        "mesh_hash": m1.mesh_hash,
        "name": m1.name,
        "dir": str(root / "m1"),
    }
    n = int(mesh.n_cells_)
    m2 = M2Model(M2Net(n).eval(), mesh, label_kind="imagery", m1=record, name="M2 bench")
    m2.save(root / "m2", root / "mesh.npz")
    m3 = M3Model(
        M3Net(n, m2={}, hidden=256).eval(), mesh, label_kind="imagery", m1=record, name="M3 bench"
    )
    m3.save(root / "m3", root / "mesh.npz")
    return m2, m3


def _train_rate(net, make_batch, steps: int) -> float:
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    net.train()
    batches = [make_batch(i) for i in range(steps + 1)]

    def step(batch) -> int:
        logits, y = batch[0](net)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return len(y)

    step(batches[0])  # warm-up
    start, seen = time.perf_counter(), 0
    for batch in batches[1:]:
        seen += step(batch)
    return seen / (time.perf_counter() - start)


def m2_train_rate(n: int, steps: int) -> float:
    from trigeo.models import M2Net

    torch.manual_seed(0)
    net = M2Net(n)

    def batch(i: int):
        x, y = torch.rand(256, n + 4), torch.randint(0, n, (256,))
        return (lambda model: (model(x), y), y)

    return _train_rate(net, batch, steps)


def m3_train_rate(n: int, steps: int) -> float:
    from trigeo.models import M3Net

    torch.manual_seed(0)
    net = M3Net(n, m2={}, hidden=256)
    generator = torch.Generator().manual_seed(0)

    def batch(i: int):
        x = torch.rand(32, 24, n + 4, generator=generator)
        lengths = torch.randint(1, 25, (32,), generator=generator)
        mask = torch.arange(24)[None, :] < lengths[:, None]
        y = torch.randint(0, n, (int(mask.sum()),), generator=generator)
        return (lambda model: (model(x, mask)[mask], y), y)

    return _train_rate(net, batch, steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mp16", type=Path, default=None, help="accepted, not read")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--photos", type=int, default=None)
    args = parser.parse_args()
    photos = args.photos or (2000 if args.quick else 6000)
    steps = 5 if args.quick else 20
    torch.set_num_threads(os.cpu_count() or 1)
    from trigeo.predict.heads import predict_head
    from trigeo.predict.m1 import predict_m1
    from trigeo.runtime.options import InferenceOptions

    quiet = {"options": InferenceOptions(progress=False), "report": lambda message: None}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset, mesh, m1 = _setup(root, photos)
        n_cells = int(mesh.n_cells_)
        m2, m3 = _heads(root, mesh, m1)
        print(f"world: {photos} photos at 64 px, mesh of {n_cells} cells, {os.cpu_count()} CPUs")
        start = time.perf_counter()
        predict_m1(root / "m1", root / "m1.parquet", data=dataset.root, split=None, **quiet)
        m1_seconds = time.perf_counter() - start
        times = {}
        for model in (m2, m3):
            start = time.perf_counter()
            predict_head(
                model, root / f"{model.name}.parquet", data=dataset.root, split=None,
                m1_pred=root / "m1.parquet", report=lambda message: None,
            )  # fmt: skip
            times[model.name] = time.perf_counter() - start
        m2_rate, m3_rate = m2_train_rate(n_cells, steps), m3_train_rate(n_cells, steps)
    m1_rate = photos / m1_seconds
    print(f"\n{'measure':<36}{'photos/s':>12}{'vs M1 inference':>18}")
    print(f"{'M1 inference (trigeo predict)':<36}{m1_rate:>12.0f}{'1.00x':>18}")
    print(f"{'M2 training step (width 1626)':<36}{m2_rate:>12.0f}{m2_rate / m1_rate:>17.2f}x")
    print(f"{'M3 training step (BiLSTM 256)':<36}{m3_rate:>12.0f}{m3_rate / m1_rate:>17.2f}x")
    for name, seconds in times.items():
        rate = photos / seconds
        print(f"{name.split()[0] + ' trigeo predict (M1 file given)':<36}{rate:>12.0f}"
              f"{rate / m1_rate:>17.2f}x")  # fmt: skip
    added = sum(times.values()) / m1_seconds
    print(
        f"\nM1 predict {m1_seconds:.1f} s; M2 + M3 predict {sum(times.values()):.1f} s = "
        f"{100 * added:.1f}% of it (limit 25%): {'OK' if added <= 0.25 else 'OVER'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
