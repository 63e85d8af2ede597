"""Devices, precision, CPU threads and process rank (shared by training and inference)."""

from __future__ import annotations

import os

__all__ = [
    "launch_rank",
    "parse_devices",
    "set_cpu_threads",
    "torch_device",
    "trainer_precision",
    "usable_device",
]


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


def torch_device(accelerator: str, devices: str | None) -> str:
    """One torch device from ``--accelerator``/``--devices``, for loops that run on one device.

    ``auto`` picks CUDA, then MPS, then the CPU. ``--devices`` may name one
    GPU (``1`` for a count of one, or an id list of one such as ``"2,"`` or
    ``"2"`` with a GPU accelerator).

    Raises
    ------
    InputError
        An unknown accelerator, or more than one device.
    """
    import torch

    from trigeo.errors import InputError

    accelerator = accelerator.lower()
    if accelerator == "auto":
        if torch.cuda.is_available():
            accelerator = "gpu"
        elif torch.backends.mps.is_available():
            accelerator = "mps"
        else:
            accelerator = "cpu"
    if accelerator not in ("cpu", "gpu", "cuda", "mps"):
        raise InputError(f"--accelerator must be auto, cpu, gpu (cuda) or mps, got {accelerator!r}")
    ids = [] if devices in (None, "", "auto") else [p for p in str(devices).split(",") if p.strip()]
    if len(ids) > 1:
        raise InputError(f"this command runs on one device; --devices {devices} names {len(ids)}")
    if accelerator in ("gpu", "cuda"):
        # A bare "1" is a count of one (Lightning's reading) unless it ends in a comma.
        index = int(ids[0]) if ids and str(devices).strip().endswith(",") else 0
        return f"cuda:{index}"
    return accelerator


def usable_device(accelerator: str, devices: str | None) -> str:
    """:func:`torch_device`, checked against what torch sees on this machine.

    Raises
    ------
    InputError
        As :func:`torch_device`, or when the device it names is not here (a GPU
        asked for on a machine without CUDA, MPS without Apple's GPU, an id past
        the GPUs present).
    """
    import torch

    from trigeo.errors import InputError

    device = torch_device(accelerator, devices)
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(
                f"--accelerator {accelerator}: torch sees no CUDA GPU on this machine "
                "(use --accelerator cpu)"
            )
        index = int(device.split(":")[1])
        if index >= count:
            raise InputError(f"--devices {devices}: GPU {index} asked for, {count} present")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--accelerator {accelerator}: torch sees no MPS device on this machine")
    return device
