"""What batching can gain: a backbone's forward pass per photo at a pass of 1 against a full pass.

``trigeo serve`` batches concurrent requests into one forward pass. That pays only as
far as a pass of one photo costs more than one photo's share of a larger pass: the
ratio printed here bounds the throughput gain of batching for that backbone on this
device, however cheap the rest of a request is (docs/serve.md, Load test).

Each backbone is built with ``timm.create_model(name, pretrained=False)`` (random
init: speed does not depend on the weights) with a 500-class head, in eval mode
under ``torch.inference_mode``; each pass size is timed after a warm-up, median of
``--repeats``. The peer is the same backbone at a pass of 1, in the same run.

On a CPU ``--threads`` (1 by default, as ``trigeo serve`` gives torch on 2 cores)
sets torch's threads. ``--device cuda`` times on a GPU (synchronised), where a pass
of 1 is bound by kernel launches and batching is expected to gain far more.

Usage: ``python benchmarks/bench_batching_gain.py [--quick] [--device cpu|cuda]
[--sizes 1 8 16] [--models test_resnet:64 resnet18:224 ...]``.
``--mp16`` is accepted for a uniform benchmark interface; the file is not read.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _common import machine_load

#: (timm name, input pixels): the demo's backbone and three common real ones.
DEFAULT_MODELS = ("test_resnet:64", "efficientnet_b0:224", "resnet18:224", "resnet50:224")


def pass_ms_per_photo(model, size: int, pixels: int, device: str, repeats: int) -> float:
    """Median milliseconds per photo of one forward pass of ``size`` photos."""
    import torch

    x = torch.randn(size, 3, pixels, pixels, device=device)

    def once() -> float:
        start = time.perf_counter()
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.inference_mode():
        once()  # warm-up: allocations, cuDNN/oneDNN kernel choice
        times = [once() for _ in range(repeats)]
    return statistics.median(times) * 1000 / size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=None, help="accepted, not read")
    parser.add_argument("--quick", action="store_true", help="the demo backbone only")
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        help="timm names with their input size, NAME:PIXELS",
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 8, 16], help="pass sizes")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per size")
    args = parser.parse_args()
    import timm
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU on this machine")
    if 1 not in args.sizes:
        parser.error("--sizes must include 1 (the peer)")
    torch.set_num_threads(args.threads)
    models = DEFAULT_MODELS[:1] if args.quick else tuple(args.models)
    print(f"device {args.device}, {args.threads} torch thread(s); {machine_load()}")
    sizes = sorted(set(args.sizes))
    header = "".join(f"{f'pass {s}':>10}" for s in sizes)
    print(f"{'backbone':<24}{header}   ms per photo; gain = pass 1 / pass N")
    for spec in models:
        name, _, pixels = spec.partition(":")
        if not pixels.isdigit():
            parser.error(f"--models {spec!r}: expected NAME:PIXELS, e.g. resnet18:224")
        model = timm.create_model(name, pretrained=False, num_classes=500).eval().to(args.device)
        costs = {
            s: pass_ms_per_photo(model, s, int(pixels), args.device, args.repeats) for s in sizes
        }
        gains = ", ".join(f"{costs[1] / costs[s]:.2f}x at {s}" for s in sizes if s != 1)
        row = "".join(f"{costs[s]:>10.2f}" for s in sizes)
        print(f"{name + ' @' + pixels:<24}{row}   gain {gains}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
