"""Command-line options shared by several commands, each defined once.

As rasterio's ``rio/options.py``: a command imports the option it needs and
gives only its default, so the same idea has the same name, type, limits and
help text in every command. Stage ``cli.py`` modules import from here; this
module imports only typer.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "Accelerator",
    "BatchSize",
    "Devices",
    "MaxUnreadable",
    "NumWorkers",
    "NumWorkersOrConfig",
    "Progress",
    "ProgressOrConfig",
]

#: Images per forward pass (inference).
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
#: DataLoader worker processes that read and decode images.
NumWorkers = Annotated[
    int,
    typer.Option(
        "--num-workers",
        min=0,
        help="Processes that read and decode images beside the model (0: in the main one).",
    ),
]
#: Loader workers, or the training config's ``num_workers`` when not given.
NumWorkersOrConfig = Annotated[
    int | None,
    typer.Option(
        "--num-workers",
        min=0,
        help="Processes that read and decode images beside the model (0: in the main one; "
        "default: the config's `num_workers`, per device).",
        show_default=False,
    ),
]
#: Progress bars on long work.
Progress = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show progress bars on stderr.")
]
#: Progress bars, or the training config's ``progress`` when not given.
ProgressOrConfig = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress bars on stderr (default: the config's `progress`).",
        show_default=False,
    ),
]
#: Share of unreadable images a run tolerates before it stops.
MaxUnreadable = Annotated[
    float,
    typer.Option(
        "--max-unreadable",
        min=0.0,
        max=1.0,
        help="Stop when more than this share of the images cannot be read (each one is reported).",
    ),
]
#: Lightning's accelerator.
Accelerator = Annotated[str, typer.Option("--accelerator", help="auto, cpu, gpu (cuda) or mps.")]
#: Lightning's devices.
Devices = Annotated[
    str, typer.Option("--devices", help="How many devices (or 'auto', or a list like '0,1').")
]
