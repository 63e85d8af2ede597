"""``trigeo serve``: the HTTP API and the offline web map, served by uvicorn.

The options are declared once here, as ``Annotated`` aliases; the work is
:func:`trigeo.serve.run.serve_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trigeo import options
from trigeo.answer import DEFAULT_ANSWER, Answer
from trigeo.serve.run import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_HOST,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_QUEUE,
    exposure_warning,
    serve_model,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_WAIT_MS",
    "DEFAULT_HOST",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_QUEUE",
    "exposure_warning",
    "serve",
]

console = Console(stderr=True)

ModelDir = Annotated[Path, options.model("Model directory (M1, or M2).")]
IndexDir = Annotated[Path | None, options.index()]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free port).")]
CoarsenKm = Annotated[
    float | None,
    typer.Option(
        "--coarsen-km",
        min=0.001,
        help="Round every reported coordinate to a K-km grid, merge smaller cells and "
        "never echo EXIF locations.",
    ),
]
MaxConcurrent = Annotated[
    int | None,
    typer.Option(
        "--max-concurrent",
        min=1,
        help=f"Forward passes at once (default {DEFAULT_MAX_CONCURRENT}).",
    ),
]
MaxQueue = Annotated[
    int,
    typer.Option(
        "--max-queue",
        min=1,
        help="Requests admitted but not in a running forward pass; more get 503.",
    ),
]
BatchSize = Annotated[
    int,
    options.batch_size("Most photos in one forward pass, from any requests (1: no batching)."),
]
BatchWaitMs = Annotated[
    float,
    typer.Option(
        "--batch-wait-ms",
        min=0.0,
        help="Longest wait for a forward pass to fill while more requests are on their way.",
    ),
]
AllowedHost = Annotated[
    list[str] | None,
    typer.Option(
        "--allowed-host",
        metavar="NAME",
        help="A Host name to answer besides IP addresses and localhost (repeatable; "
        "'*': any). Other names get 421 (DNS rebinding protection).",
    ),
]
Thumbnails = Annotated[
    bool | None,
    typer.Option(
        "--thumbnails/--no-thumbnails",
        help="Serve the nearest training photos' thumbnails (default: on, off with --coarsen-km).",
        show_default=False,
    ),
]
MaxUploadMb = Annotated[
    float, typer.Option("--max-upload-mb", min=0.001, help="Largest image accepted.")
]
MaxBatch = Annotated[
    int,
    typer.Option("--max-batch", min=1, help="Most photos in one /v1/predict/batch request."),
]
AnswerRule = Annotated[
    Answer,
    typer.Option(
        "--answer",
        help="The point each answer reports (JSON `answer`): top-cell, geoscore or median "
        "over the top 20 regions, refine (retrieval inside them) or knn; refine and knn "
        "need --index.",
    ),
]


def serve(
    model: ModelDir,
    index: IndexDir = None,
    host: Host = DEFAULT_HOST,
    port: Port = 8000,
    coarsen_km: CoarsenKm = None,
    max_concurrent: MaxConcurrent = None,
    max_queue: MaxQueue = DEFAULT_MAX_QUEUE,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    batch_wait_ms: BatchWaitMs = DEFAULT_BATCH_WAIT_MS,
    allowed_host: AllowedHost = None,
    thumbnails: Thumbnails = None,
    max_upload_mb: MaxUploadMb = 20.0,
    max_batch: MaxBatch = 16,
    neighbours: options.Neighbours = 6,
    answer: AnswerRule = DEFAULT_ANSWER,
    accelerator: options.Accelerator = "auto",
    devices: options.Devices = "auto",
) -> None:
    """Serve a model: POST /v1/predict, the offline map page at /, docs at /docs."""
    serve_model(
        model,
        index,
        console=console,
        host=host,
        port=port,
        coarsen_km=coarsen_km,
        max_concurrent=max_concurrent,
        max_queue=max_queue,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        allowed_hosts=allowed_host or (),
        thumbnails=thumbnails,
        max_upload_mb=max_upload_mb,
        max_batch=max_batch,
        neighbours=neighbours,
        answer=answer.value,
        accelerator=accelerator,
        devices=devices,
    )
