"""Command-line options shared by several commands, each defined once.

As rasterio's ``rio/options.py``: a command imports the option it needs and
gives only its default, so the same idea has the same name, type, limits and
help text in every command. Stage ``cli.py`` modules import from here; this
module imports only typer.

:data:`CANONICAL` is the grammar: every option name that more than one
command uses, with its one meaning and value type. Options whose help depends
on the command (``--out`` is a mesh file in one command and a report
directory in another) are made by a function here that fixes the name and
takes the command's words (:func:`out`, :func:`data`, ...). ``docs/cli.md``
is generated from this module (``python -m trigeo.options``), and
``tests/test_cli_help.py`` fails when a command drifts from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "CANONICAL",
    "MADE_HERE",
    "Accelerator",
    "AcceleratorOrConfig",
    "BatchSize",
    "BatchSizeOrConfig",
    "Canonical",
    "Devices",
    "DevicesOrConfig",
    "Json",
    "MaxUnreadable",
    "Neighbours",
    "NumNodesOrConfig",
    "Progress",
    "ProgressOrConfig",
    "StrategyOrConfig",
    "Threads",
    "Workers",
    "WorkersOrConfig",
    "batch_size",
    "data",
    "index",
    "made_here",
    "mesh",
    "model",
    "out",
    "points",
    "split",
    "workers",
]

#: Images per forward pass (inference).
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
#: DataLoader worker processes that read and decode images.
Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=0,
        help="Processes that read and decode images beside the model (0: in the main one).",
    ),
]
#: Loader workers, or the training config's ``num_workers`` when not given.
WorkersOrConfig = Annotated[
    int | None,
    typer.Option(
        "--workers",
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
#: Per-device batch size, or the training config's ``batch_size`` when not given.
BatchSizeOrConfig = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Images per forward pass, per device (default: the config's `batch_size`).",
        show_default=False,
    ),
]
#: Lightning's accelerator, or the training config's.
AcceleratorOrConfig = Annotated[
    str | None,
    typer.Option(
        "--accelerator",
        help="auto, cpu, gpu (cuda) or mps (default: the config's `accelerator`).",
        show_default=False,
    ),
]
#: Lightning's devices, or the training config's.
DevicesOrConfig = Annotated[
    str | None,
    typer.Option(
        "--devices",
        help="How many devices (or 'auto', or a list like '0,1'; default: the config's).",
        show_default=False,
    ),
]
#: Lightning's nodes, or the training config's.
NumNodesOrConfig = Annotated[
    int | None,
    typer.Option(
        "--num-nodes",
        min=1,
        help="Machines for multi-node DDP (default: the config's `num_nodes`).",
        show_default=False,
    ),
]
#: Lightning's strategy, or the training config's.
StrategyOrConfig = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="Lightning strategy: auto, ddp, ... (default: the config's `strategy`).",
        show_default=False,
    ),
]

#: Compute threads.
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="Compute threads: torch's, or the mesh's point location (default: cores minus "
        "--workers).",
        show_default=False,
    ),
]
#: The neighbour count of retrieval.
Neighbours = Annotated[
    int, typer.Option("-k", "--neighbours", min=1, help="Nearest indexed photos to use.")
]
#: Summary tables as JSON.
Json = Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")]


def _made(info: Any) -> Any:
    """Mark an option object as this module's: the CLI test checks that every option in
    :data:`MADE_HERE` comes from here. Typer copies an option object into each command,
    so the mark travels as an attribute."""
    info.trigeo_registry = True
    return info


def made_here(info: Any) -> bool:
    """Whether a Typer option object (or a command's copy of one) was made by this module."""
    return bool(getattr(info, "trigeo_registry", False))


def out(help: str) -> Any:
    """``--out``: what the command writes (``help`` names the file or directory)."""
    return _made(typer.Option("--out", help=help))


def workers(help: str) -> Any:
    """``--workers``: parallel I/O other than image loaders (download or encoder threads)."""
    return _made(typer.Option("--workers", min=1, help=help))


def batch_size(help: str) -> Any:
    """``--batch-size`` worded for a command (the aliases above for the common wording)."""
    return _made(typer.Option("--batch-size", min=1, help=help))


def data(help: str = "Dataset directory (trigeo data ...).") -> Any:
    """``--data``: a trigeo dataset directory the command reads."""
    return _made(typer.Option("--data", help=help))


def points(help: str = "CSV or Parquet file with latitude/longitude columns.") -> Any:
    """``--points``: a file of coordinates (a dataset directory is ``--data``)."""
    return _made(typer.Option("--points", help=help))


def mesh(help: str = "Mesh file (trigeo mesh build).") -> Any:
    """``--mesh``: a mesh file."""
    return _made(typer.Option("--mesh", metavar="FILE", help=help))


def index(help: str = "Retrieval index directory (trigeo index build).") -> Any:
    """``--index``: a retrieval index directory."""
    return _made(typer.Option("--index", metavar="DIR", help=help))


def model(help: str) -> Any:
    """``--model``: a trained model directory."""
    return _made(typer.Option("--model", metavar="DIR", help=help))


def split(help: str = "Use only the photos of this split ('all': every photo).") -> Any:
    """``--split``: filters a dataset's rows by split (it never assigns one)."""
    return _made(typer.Option("--split", help=help))


@dataclass(frozen=True)
class Canonical:
    """One option name of the grammar: what it means and the type of its value."""

    meaning: str
    type: type


#: Options every command takes from this module (an alias or a maker above), never its own.
MADE_HERE = (
    "--out", "--data", "--points", "--mesh", "--index", "--model", "--split", "--batch-size",
    "--workers", "--threads", "--progress", "--max-unreadable", "--accelerator", "--devices",
    "--num-nodes", "--strategy",
    "--neighbours", "--json",
)  # fmt: skip

#: Every option name used by more than one command: one meaning, one value type.
CANONICAL: dict[str, Canonical] = {
    "--out": Canonical("What the command writes: a file or a directory.", Path),
    "--data": Canonical("A trigeo dataset directory read (written by trigeo data ...).", Path),
    "--points": Canonical("A CSV or Parquet file of coordinates (lat/lon columns).", Path),
    "--mesh": Canonical("A mesh file (trigeo mesh build).", Path),
    "--index": Canonical("A retrieval index directory (trigeo index build).", Path),
    "--model": Canonical("A trained model directory (trigeo train ...).", Path),
    "--m1": Canonical("The M1 model directory a head builds on.", Path),
    "--m1-pred": Canonical("M1's predictions file for the same photos.", Path),
    "--split": Canonical("Keep only the dataset rows of this split ('all': every row).", str),
    "--name": Canonical("Display name written into the output.", str),
    "--config": Canonical("Training config: a YAML file or a packaged preset.", str),
    "--resume": Canonical("Continue an interrupted run in --out.", bool),
    "--seed": Canonical("Seed of every random draw the command makes.", int),
    "--label": Canonical("Label point of a cell: imagery or cell centroid.", str),
    "--kind": Canonical("Mesh kind: delaunay or quadtree.", str),
    "--init-grid": Canonical("Delaunay: rows and columns of the initial grid.", int),
    "--init-level": Canonical("Quad-tree: the S2 level every cell starts at.", int),
    "--lat-col": Canonical("Latitude column of a points file.", str),
    "--lon-col": Canonical("Longitude column of a points file.", str),
    "--wrap-longitude": Canonical("Wrap longitudes outside [-180, 180].", bool),
    "--val-fraction": Canonical("Share of users (or photos) assigned to val.", float),
    "--heads-fraction": Canonical("Share assigned to heads (M2/M3 training).", float),
    "--by-user": Canonical("Assign splits by user rather than by photo.", bool),
    "--batch-size": Canonical("Images per forward pass (per device when training).", int),
    "--workers": Canonical("Parallel I/O: loader processes, download or encoder threads.", int),
    "--threads": Canonical("Compute threads: torch, numba, point location.", int),
    "--accelerator": Canonical("Lightning's accelerator: auto, cpu, gpu or mps.", str),
    "--devices": Canonical("Lightning's devices: auto, a count or a list of ids.", str),
    "--num-nodes": Canonical("Machines for multi-node DDP.", int),
    "--strategy": Canonical("Lightning's strategy: auto, ddp, ...", str),
    "--progress": Canonical("Progress bars on stderr.", bool),
    "--max-unreadable": Canonical("Share of unreadable images tolerated before stopping.", float),
    "--json": Canonical("Print the summary as JSON instead of a table.", bool),
    "--neighbours": Canonical("-k: the neighbour count of retrieval.", int),
    "--answer": Canonical("The reported point of a distribution over cells.", str),
    "--image-size": Canonical("Square image side in pixels.", int),
    "--photos": Canonical("Photos in the synthetic world.", int),
    "--users": Canonical("Users in the synthetic world.", int),
    "--head": Canonical("A head (mesh) of a multi-head M1.", str),
    "--pred": Canonical("A predictions file.", Path),
    "--allow-overlap": Canonical("Allow a head's photos to overlap M1's training photos.", bool),
    "--shuffle-time": Canonical("Ablation: posting times shuffled across photos.", bool),
    "--weights": Canonical("A local checkpoint file of pretrained weights.", Path),
    "--drop-failed": Canonical("Drop the photos whose download failed from the table.", bool),
}

for _alias in (
    BatchSize, BatchSizeOrConfig, Workers, WorkersOrConfig, Progress, ProgressOrConfig,
    MaxUnreadable, Accelerator, AcceleratorOrConfig, Devices, DevicesOrConfig, NumNodesOrConfig,
    StrategyOrConfig, Threads,
    Neighbours, Json,
):  # fmt: skip
    _made(_alias.__metadata__[0])
