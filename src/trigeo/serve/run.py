"""Start the server: load the model and index, size the threads, run uvicorn.

:func:`serve_model` is what ``trigeo serve`` does once its options are read.
The server's defaults and :func:`exposure_warning` live here; the command
(:mod:`trigeo.serve.cli`) takes them from this module.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trigeo.answer import DEFAULT_ANSWER, check_answer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_WAIT_MS",
    "DEFAULT_HOST",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_QUEUE",
    "exposure_warning",
    "serve_model",
]

DEFAULT_HOST = "127.0.0.1"
#: Defaults measured to hold 8 concurrent clients on 2 cores without a 503 (docs/serve.md).
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_MAX_QUEUE = 32
DEFAULT_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_MS = 5.0


def exposure_warning(host: str) -> str | None:
    """The warning printed when the server listens beyond this machine, else ``None``."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"listening on {host}, not 127.0.0.1: anyone who can reach this address can send "
        "photos and learn where they were probably taken. Consider --coarsen-km "
        "(see the README's responsible-use section). Requests are answered when their Host "
        "is an IP address or localhost; give the names clients use with --allowed-host NAME."
    )


def serve_model(
    model: Path,
    index: Path | None = None,
    *,
    console: Any,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    coarsen_km: float | None = None,
    max_concurrent: int | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    allowed_hosts: Iterable[str] = (),
    thumbnails: bool | None = None,
    max_upload_mb: float = 20.0,
    max_batch: int = 16,
    neighbours: int = 6,
    answer: str = DEFAULT_ANSWER.value,
    accelerator: str = "auto",
    devices: str | None = "auto",
) -> None:
    """Load ``model`` (and ``index``) and serve them until interrupted.

    The options are ``trigeo serve``'s; ``console`` (a :class:`rich.console.Console`)
    gets the start line and the warning when ``host`` is reachable from elsewhere.
    """
    # Before the model loads: a missing index is a typo, not a reason to wait.
    check_answer(answer, has_index=index is not None)
    import torch
    import uvicorn

    from trigeo.runtime.devices import usable_device
    from trigeo.serve.app import create_app
    from trigeo.serve.engine import Engine, load_backend
    from trigeo.serve.limits import Limits, cores

    # Also before the model loads: a GPU this machine lacks is a clear error, not a stack.
    device = usable_device(accelerator, devices)

    n_cores = cores()
    concurrent = max_concurrent or DEFAULT_MAX_CONCURRENT
    # One core is left to the event loop, decoding and the answers; the rest are shared
    # by the passes running at once. More torch threads than free cores make OpenMP's
    # workers spin against each other: on 2 busy cores, 2 threads cost 10-30x the CPU
    # of 1 per forward pass (docs/serve.md).
    torch.set_num_threads(max(1, (n_cores - 1) // concurrent))
    loaded_index = None
    if index is not None:
        import faiss

        from trigeo.retrieve.index import RetrievalIndex

        faiss.omp_set_num_threads(1)  # one search per pass, a few queries: threads cost more
        loaded_index = RetrievalIndex.load(index)
    backend = load_backend(model)
    if hasattr(backend, "to"):
        backend.to(device)
    elif device != "cpu":
        from trigeo.errors import InputError

        raise InputError(
            f"{model}: this model's backend ({type(backend).__name__}) runs on the CPU only; "
            "use --accelerator cpu"
        )
    engine = Engine(
        backend,
        index=loaded_index,
        coarsen_km=coarsen_km,
        neighbours=neighbours,
        thumbnails=thumbnails,
        answer=answer,
    )
    limits = Limits(
        max_upload_mb=max_upload_mb,
        max_batch=max_batch,
        max_concurrent=concurrent,
        max_queue=max_queue,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
    )
    warning = exposure_warning(host)
    if warning:
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}", highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"[cyan]serve[/cyan] {engine.backend.model_id} on http://{shown}:{port}/ "
        f"({device}, {concurrent} forward pass(es) of up to {batch_size} photos at once, "
        f"queue {limits.max_queue}, answer {engine.answer_rule}"
        + (f", coarsened to {coarsen_km:g} km" if coarsen_km else "")
        + (f", index of {len(loaded_index)} photos" if loaded_index is not None else "")
        + (", no thumbnails" if loaded_index is not None and not engine.thumbnails else "")
        + ")",
        highlight=False,
    )
    app = create_app(engine, limits, allowed_hosts=allowed_hosts)
    uvicorn.run(app, host=host, port=port, log_level="info")
