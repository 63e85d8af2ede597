"""How a network runs over photos: one :class:`InferenceOptions`, passed down whole.

Prediction, retrieval, scene scoring and calibration all take the same
options (batch size, loader workers, devices, precision, progress, the
unreadable-image limit, torch's threads). A command builds one object from
its command-line options (:meth:`InferenceOptions.from_cli`) and every
library function below it takes that object instead of the separate values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["InferenceOptions"]


@dataclass(frozen=True)
class InferenceOptions:
    """Inference options shared by every command that runs a network over photos.

    Parameters
    ----------
    batch_size
        Images per forward pass.
    num_workers
        DataLoader worker processes that read and decode images (0: in the
        main process).
    accelerator, devices, num_nodes, strategy
        As Lightning takes them (``devices``: ``"auto"``, a count or an id list).
    precision
        Lightning's precision; ``auto`` is bf16 mixed precision on a GPU and
        full precision on a CPU (:func:`trigeo.runtime.devices.trainer_precision`).
    progress
        Progress bars on stderr.
    max_unreadable
        Share of unreadable images tolerated before a run stops with an error.
    cpu_threads
        torch's intra-op threads (``None``: the cores left after the loader
        workers, :func:`trigeo.runtime.devices.set_cpu_threads`).
    """

    batch_size: int = 64
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    progress: bool = True
    max_unreadable: float = 0.05
    cpu_threads: int | None = None

    @classmethod
    def from_cli(cls, *, devices: str | None = "auto", **values: Any) -> InferenceOptions:
        """The options of a command line: ``--devices`` as typed (``"4"`` -> 4, see
        :func:`~trigeo.runtime.devices.parse_devices`), the others as they are."""
        from trigeo.runtime.devices import parse_devices

        return cls(devices=parse_devices(devices) or "auto", **values)

    def replace(self, **changes: Any) -> InferenceOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def trainer_args(self) -> dict[str, Any]:
        """The keywords of :func:`trigeo.runtime.trainer.make_trainer` these options set."""
        return {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
            "precision": self.precision,
            "progress": self.progress,
        }
