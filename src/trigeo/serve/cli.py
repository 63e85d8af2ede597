"""``trigeo serve``: the HTTP API and the offline web map, served by uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trigeo import options
from trigeo.answer import DEFAULT_ANSWER, Answer, check_answer

console = Console(stderr=True)

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


def serve(
    model: Annotated[Path, options.model("Model directory (M1, or M2).")],
    index: Annotated[Path | None, options.index()] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8000,
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
        typer.Option(
            "--max-concurrent",
            min=1,
            help=f"Forward passes at once (default {DEFAULT_MAX_CONCURRENT}).",
        ),
    ] = None,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue",
            min=1,
            help="Requests admitted but not in a running forward pass; more get 503.",
        ),
    ] = DEFAULT_MAX_QUEUE,
    batch_size: Annotated[
        int,
        options.batch_size("Most photos in one forward pass, from any requests (1: no batching)."),
    ] = DEFAULT_BATCH_SIZE,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms",
            min=0.0,
            help="Longest wait for a forward pass to fill while more requests are on their way.",
        ),
    ] = DEFAULT_BATCH_WAIT_MS,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host name to answer besides IP addresses and localhost (repeatable; "
            "'*': any). Other names get 421 (DNS rebinding protection).",
        ),
    ] = None,
    thumbnails: Annotated[
        bool | None,
        typer.Option(
            "--thumbnails/--no-thumbnails",
            help="Serve the nearest training photos' thumbnails (default: on, off with "
            "--coarsen-km).",
            show_default=False,
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest image accepted.")
    ] = 20.0,
    max_batch: Annotated[
        int,
        typer.Option("--max-batch", min=1, help="Most photos in one /v1/predict/batch request."),
    ] = 16,
    neighbours: options.Neighbours = 6,
    answer: Annotated[
        Answer,
        typer.Option(
            "--answer",
            help="The point each answer reports (JSON `answer`): top-cell, geoscore or median "
            "over the top 20 regions, refine (retrieval inside them) or knn; refine and knn "
            "need --index.",
        ),
    ] = DEFAULT_ANSWER,
) -> None:
    """Serve a model: POST /v1/predict, the offline map page at /, docs at /docs."""
    # Before the model loads: a missing index is a typo, not a reason to wait.
    check_answer(answer.value, has_index=index is not None)
    import torch
    import uvicorn

    from trigeo.serve.app import create_app
    from trigeo.serve.engine import Engine, load_backend
    from trigeo.serve.limits import Limits, cores

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
    engine = Engine(
        load_backend(model),
        index=loaded_index,
        coarsen_km=coarsen_km,
        neighbours=neighbours,
        thumbnails=thumbnails,
        answer=answer.value,
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
        f"({concurrent} forward pass(es) of up to {batch_size} photos at once, "
        f"queue {limits.max_queue}, answer {engine.answer_rule}"
        + (f", coarsened to {coarsen_km:g} km" if coarsen_km else "")
        + (f", index of {len(loaded_index)} photos" if loaded_index is not None else "")
        + (", no thumbnails" if loaded_index is not None and not engine.thumbnails else "")
        + ")",
        highlight=False,
    )
    app = create_app(engine, limits, allowed_hosts=allowed_host or ())
    uvicorn.run(app, host=host, port=port, log_level="info")
