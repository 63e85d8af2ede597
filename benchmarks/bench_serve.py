"""Serving latency and throughput: ``trigeo serve`` under load, beside ``trigeo predict``.

A demo-sized model (the demo config's backbone, ``test_resnet`` at 64 px, random
init: latency does not depend on training) over a coarse mesh of a synthetic
world is served by a real ``trigeo serve`` process (uvicorn) on 127.0.0.1 with
an index of the world's photos. A client in this process sends at least 500
``POST /v1/predict`` requests, 8 at a time, each a synthetic-world JPEG as
multipart form data, and checks every answer is 200 (the server's queue is set
so that 8 concurrent clients never see a 503: ``--max-concurrent`` cores,
``--max-queue 8``). Loopback only, bounded in count and time.

Printed: p50/p95/max latency and requests/s; beside them, measured in the
same run, ``trigeo predict``'s throughput (``predict_m1`` over the same photos
from a dataset, images/s, including its per-call set-up) and the server's own
in-process cost per photo (``Engine.predict`` on one decoded image, no HTTP),
so HTTP and form parsing overhead = latency at concurrency 1 minus that.

Usage: ``python benchmarks/bench_serve.py [--quick] [--requests 500] [--concurrency 8]``.
``--mp16`` is accepted for a uniform benchmark interface; the file is not read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def build_model(root: Path, photos: int) -> tuple[Path, Path, Path]:
    """A synthetic world, its coarse mesh, a demo-sized M1 and an index: (model, data, index)."""
    import torch

    from trigeo.data.synth import make_world
    from trigeo.mesh import DelaunayMesh
    from trigeo.models.m1 import M1Model, M1Net, resolve_image_config
    from trigeo.retrieve.index import RetrievalIndex

    dataset = make_world(root / "world", photos=photos, users=max(10, photos // 20), seed=0)
    train = dataset.photos()
    mesh = DelaunayMesh.from_preset("coarse", scale_to=len(train))
    mesh.fit(train["lat"].to_numpy(), train["lon"].to_numpy()).save(root / "mesh.npz")
    torch.manual_seed(0)
    net = M1Net("test_resnet", int(mesh.n_cells_)).eval()
    config = resolve_image_config(net.backbone, 64)
    model = M1Model(net, mesh, label_kind="imagery", data_config=config)
    model.save(root / "model", root / "mesh.npz", inputs={"dataset": dataset.hash})
    # Index descriptors from the server's own in-memory path (fast, no Lightning).
    from trigeo.serve.engine import M1Backend

    backend = M1Backend(M1Model.load(root / "model"))
    from PIL import Image

    features = []
    for image in train["image"]:
        with Image.open(dataset.root / image) as img:
            features.append(backend.infer([img.convert("RGB")], [None])[0].descriptor)
    index = RetrievalIndex.from_features(
        np.stack(features),
        train[["photo_id", "lat", "lon", "image"]],
        model_id=M1Model.load(root / "model").model_id,
        dataset_root=str(dataset.root.resolve()),
        dataset_sha256=dataset.hash,
    )
    index.save(root / "index")
    return root / "model", dataset.root, root / "index"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model: Path, index: Path, concurrent: int, log: Path
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    trigeo = str(Path(sys.executable).with_name("trigeo"))
    command = [
        trigeo,
        "serve",
        "--model",
        str(model),
        "--index",
        str(index),
        "--port",
        str(port),
        "--max-concurrent",
        str(concurrent),
        "--max-queue",
        "8",
    ]
    handle = open(log, "w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"server did not start:\n{log.read_text()}") from None
            time.sleep(0.5)


async def load(url: str, photos: list[bytes], requests: int, concurrency: int) -> dict:
    """Send ``requests`` POSTs, ``concurrency`` at a time; latency per request and totals."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            async with semaphore:
                start = time.perf_counter()
                response = await client.post(
                    "/v1/predict", files={"image": (f"{i}.jpg", photos[i % len(photos)])}
                )
                latencies.append(time.perf_counter() - start)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(requests))), 600)
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "rps": requests / wall,
        "statuses": statuses,
    }


def predict_throughput(model: Path, data: Path, out: Path) -> float:
    """``trigeo predict``'s images/s over every photo of the dataset (one call, set-up included)."""
    from trigeo.predict.m1 import predict_m1

    start = time.perf_counter()
    result = predict_m1(
        model,
        out,
        data=data,
        split=None,
        num_workers=0,
        batch_size=64,
        progress=False,
        accelerator="cpu",
        report=lambda _: None,
    )
    assert result is not None
    return len(result.photo_id) / (time.perf_counter() - start)


def engine_seconds(model: Path, photos: list[bytes], rounds: int = 50) -> float:
    """Median seconds of the server's in-process work for one photo (decode + answer, no HTTP)."""
    import io

    from PIL import Image

    from trigeo.serve.engine import Engine, load_backend

    engine = Engine(load_backend(model))
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        image = Image.open(io.BytesIO(photos[i % len(photos)])).convert("RGB")
        engine.predict([image], [None], [None], 5)
        times.append(time.perf_counter() - start)
    return statistics.median(times[5:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=None, help="accepted, not read")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.requests < 500:
        parser.error("the load test sends at least 500 requests")
    import torch

    torch.set_num_threads(1)
    photos_n = 400 if args.quick else 2000
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        model, data, index = build_model(root, photos_n)
        print(
            f"setup: world of {photos_n} photos, model, index in {time.perf_counter() - t0:.1f} s"
        )
        photos = [p.read_bytes() for p in sorted((data / "images").rglob("*.jpg"))[:64]]
        torch.set_num_threads(cores)
        throughput = predict_throughput(model, data, root / "pred.parquet")
        torch.set_num_threads(1)
        engine_ms = engine_seconds(model, photos) * 1000
        process, url = start_server(model, index, cores, root / "serve.log")
        try:
            asyncio.run(load(url, photos, 20, 2))  # warm-up, not counted
            single = asyncio.run(load(url, photos, 100, 1))
            loaded = asyncio.run(load(url, photos, args.requests, args.concurrency))
        finally:
            process.terminate()
            process.wait(30)
    errors = sum(n for status, n in loaded["statuses"].items() if status != 200)
    print(f"server: trigeo serve, {cores} inference(s) at once, 127.0.0.1, index of {photos_n}")
    print(f"{'load':<28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'req/s':>9}  statuses")
    for name, r in (
        ("concurrency 1 (100 req)", single),
        (f"concurrency {args.concurrency} ({args.requests} req)", loaded),
    ):
        print(
            f"{name:<28}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}{r['rps']:>9.1f}"
            f"  {r['statuses']}"
        )
    print(f"trigeo predict (same photos, one call, set-up included): {throughput:.1f} images/s")
    print(f"server's in-process work per photo (no HTTP): {engine_ms:.1f} ms")
    print(f"serving req/s vs predict images/s: {loaded['rps'] / throughput:.2f}x")
    print(f"errors under load: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
