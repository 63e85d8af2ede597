"""Devices, precision, CPU threads and process rank (shared by training and inference)."""

from __future__ import annotations

import os

__all__ = ["launch_rank", "parse_devices", "set_cpu_threads", "trainer_precision"]


def parse_devices(value: str | None) -> int | str | None:
    """A ``--devices`` value as Lightning takes it.

    ``"4"`` -> 4; ``"auto"``, ``"0,1"`` and ``None`` pass through.
    """
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def trainer_precision(precision: str, accelerator: str) -> str:
    """Resolve ``auto``: bf16 mixed precision on a GPU, full precision on CPU."""
    if precision != "auto":
        return precision
    import torch

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu else "32-true"


def set_cpu_threads(threads: int | None, num_workers: int) -> int:
    """Set torch's intra-op threads; ``None`` leaves one core per DataLoader worker.

    OpenMP threads that spin while loader workers hold the same cores slow a
    CPU run several-fold, so by default the compute threads plus the workers
    never exceed the cores.
    """
    import torch

    if threads is None:
        threads = max(1, (os.cpu_count() or 1) - num_workers)
    torch.set_num_threads(int(threads))
    return int(threads)


def launch_rank() -> int:
    """Global rank of this process as the launcher set it (0 when not distributed).

    Lightning's DDP launcher re-runs the command in each child with
    ``LOCAL_RANK``/``NODE_RANK`` set; torchrun and SLURM set ``RANK``/``SLURM_PROCID``.
    Only rank 0 checks and writes run state and prints results; the others follow it.
    """
    for name in ("RANK", "SLURM_PROCID"):
        if name in os.environ:
            return int(os.environ[name])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return local + node * 1000 if (local or node) else 0
