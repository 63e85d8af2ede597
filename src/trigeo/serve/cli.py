"""``trigeo serve``: the HTTP API and the offline web map, served by uvicorn."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)

DEFAULT_HOST = "127.0.0.1"


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
        "(see the README's responsible-use section)."
    )


def serve(
    model: Annotated[Path, typer.Option("--model", help="Model directory (M1, or M2).")],
    index: Annotated[
        Path | None, typer.Option("--index", help="Retrieval index (trigeo index build).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    coarsen_km: Annotated[
        float | None,
        typer.Option(
            "--coarsen-km",
            min=0.001,
            help="Round every reported coordinate to a K-km grid, merge smaller cells and "
            "never echo EXIF locations.",
        ),
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option("--max-concurrent", min=1, help="Inferences at once (default: cores)."),
    ] = None,
    max_queue: Annotated[
        int | None,
        typer.Option(
            "--max-queue", min=0, help="Requests waiting past that; more get 503 (default 2N)."
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest image accepted.")
    ] = 20.0,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1)] = 16,
    neighbours: Annotated[
        int, typer.Option("--neighbours", min=1, help="Indexed photos shown per query.")
    ] = 6,
) -> None:
    """Serve a model: POST /v1/predict, the offline map page at /, docs at /docs."""
    import torch
    import uvicorn

    from trigeo.serve.app import create_app
    from trigeo.serve.engine import Engine, load_backend
    from trigeo.serve.limits import Limits

    cores = os.cpu_count() or 1
    concurrent = max_concurrent or cores
    torch.set_num_threads(max(1, cores // concurrent))
    loaded_index = None
    if index is not None:
        import faiss

        from trigeo.retrieve.index import RetrievalIndex

        faiss.omp_set_num_threads(1)  # one query per request; requests run side by side
        loaded_index = RetrievalIndex.load(index)
    engine = Engine(
        load_backend(model), index=loaded_index, coarsen_km=coarsen_km, neighbours=neighbours
    )
    limits = Limits(
        max_upload_mb=max_upload_mb,
        max_batch=max_batch,
        max_concurrent=concurrent,
        max_queue=2 * concurrent if max_queue is None else max_queue,
    )
    warning = exposure_warning(host)
    if warning:
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}", highlight=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"[cyan]serve[/cyan] {engine.backend.model_id} on http://{shown}:{port}/ "
        f"({concurrent} at once, queue {limits.max_queue}"
        + (f", coarsened to {coarsen_km:g} km" if coarsen_km else "")
        + (f", index of {len(loaded_index)} photos" if loaded_index is not None else "")
        + ")",
        highlight=False,
    )
    uvicorn.run(create_app(engine, limits), host=host, port=port, log_level="info")
