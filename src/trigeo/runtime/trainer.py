"""The one place a ``lightning.Trainer`` is built (M1 training, the heads, inference).

Every trainer gets the same devices, nodes, strategy and precision handling,
so an option such as ``--num-nodes`` means the same thing in every command,
and Lightning's own model summary stays off the console (trigeo logs its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["make_trainer", "run_loggers"]


def run_loggers(out: str | Path, version: str | int | None) -> list[Any]:
    """CSV and TensorBoard loggers under ``out/logs`` (one ``version`` per stage)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logs = Path(out) / "logs"
    return [
        CSVLogger(logs, name="csv", version=version),
        TensorBoardLogger(logs, name="tensorboard", version=version),
    ]


def make_trainer(
    *,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "auto",
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    logger: Any = False,
    **options: Any,
) -> Any:
    """A ``lightning.Trainer`` with trigeo's device handling; ``options`` are Lightning's.

    ``precision`` ``auto`` is bf16 mixed precision on a GPU and full precision
    on a CPU (:func:`trigeo.runtime.devices.trainer_precision`).
    """
    import lightning

    from trigeo.runtime.devices import trainer_precision

    return lightning.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=trainer_precision(precision, accelerator),
        callbacks=list(callbacks),
        logger=logger,
        enable_progress_bar=progress,
        enable_model_summary=False,
        **options,
    )
