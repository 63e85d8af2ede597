"""Model backends: what turns decoded photos into cell probabilities.

A backend turns decoded photos (and optional posting times) into cell
probabilities and M1 descriptors. :func:`load_backend` picks one by the
``format`` in the model directory's ``model.json``:

* ``trigeo-m1/1``: :class:`M1Backend`, one forward pass gives the descriptor
  and the probabilities (softmax at the model's calibrated temperature);
* ``trigeo-m2/1``: :class:`M2Backend`, M1 first, then M2 on M1's top 10
  cells and the posting time, for photos that have one; photos without a
  time get M1's answer, and the response says which model answered.

Another model kind plugs in with :func:`register_backend` (also importable
from :mod:`trigeo.serve.engine`). A backend with a ``to(device)`` method can run
on a GPU (``trigeo serve --accelerator``); one without runs on the CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.errors import ArtifactError

__all__ = ["Inference", "M1Backend", "M2Backend", "load_backend", "register_backend"]


@dataclass
class Inference:
    """A backend's answer for one photo."""

    probs: NDArray[np.float64]
    descriptor: NDArray[np.float32] | None
    #: Which model kind answered ("M1", "M2").
    model: str
    time_used: bool
    note: str | None = None


class M1Backend:
    """M1: descriptors and cell probabilities from one forward pass."""

    kind = "M1"

    def __init__(self, model: Any, head: int | None = None) -> None:
        from trigeo.data.loading import build_transform

        self.model = model
        self.model.net.eval()
        self.transform = build_transform(model.data_config, train=False)
        # A multi-head M1 answers with its primary head, or the head an M2 was trained on.
        self.head = head
        spec = model.primary if head is None else model.heads[head]
        self.mesh = spec.mesh
        self.temperature = spec.temperature
        self.model_id = model.model_id
        self.name = model.name
        self.device = "cpu"

    def to(self, device: str) -> M1Backend:
        """Run the forward passes on ``device`` (a torch device name); returns self."""
        self.model.net.to(device)
        self.device = str(device)
        return self

    @classmethod
    def load(cls, root: str | Path) -> M1Backend:
        from trigeo.models.m1 import M1Model

        return cls(M1Model.load(root))

    @property
    def m1(self) -> Any:
        return self.model

    def label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of the answering head's cells, at the model's label kind."""
        return self.model.label_points(self.head)

    def describe(self) -> dict[str, Any]:
        """Model facts for ``GET /v1/model``."""
        model = self.model
        return {
            "model_id": model.model_id,
            "name": model.name,
            "kind": self.kind,
            "backbone": model.net.backbone_name,
            "label_kind": model.label_kind,
            "mesh": {"hash": str(self.mesh.mesh_hash), "cells": int(self.mesh.n_cells_)},
            "training_data_sha256": model.provenance.get("inputs", {}).get("dataset"),
            "temperature": self.temperature,
            "uses_time": False,
            "device": self.device,
        }

    def prepare(self, image: Any) -> Any:
        """One decoded RGB photo as the model's input tensor (the eval transform).

        Runs in the request's decode thread, so the forward pass only stacks
        small tensors and a queued request holds no full-size image.
        """
        return self.transform(image)

    def infer_prepared(self, inputs: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """Probabilities and descriptors from one forward pass over prepared inputs."""
        import torch

        from trigeo.retrieve.embed import forward_images

        batch = torch.stack(list(inputs)).to(self.device)
        descriptors, probs = forward_images(
            self.model.net, batch, temperature=self.temperature, head=self.head
        )
        note = "M1 does not use the posting time"
        return [
            Inference(
                probs[i],
                descriptors[i],
                self.kind,
                False,
                note if posted_at[i] is not None else None,
            )
            for i in range(len(inputs))
        ]

    def infer(self, images: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """Probabilities and descriptors of decoded RGB photos (posting times unused)."""
        return self.infer_prepared([self.prepare(image) for image in images], posted_at)


class M2Backend:
    """M2: M1's top cells plus the posting time; M1 alone for photos without a time."""

    kind = "M2"

    def __init__(self, m2: Any, m1: M1Backend) -> None:
        if m2.mesh_hash != str(m1.mesh.mesh_hash):
            raise ArtifactError(
                f"M2 {m2.model_id} uses mesh {m2.mesh_hash[:12]} but its M1 "
                f"{m1.model_id} uses {str(m1.mesh.mesh_hash)[:12]}"
            )
        if m2.m1.get("model_id") != m1.model_id:
            raise ArtifactError(
                f"M2 {m2.model_id} was trained on M1 {m2.m1.get('model_id')}, not {m1.model_id}"
            )
        self.m2, self.m1_backend = m2, m1
        self.mesh = m2.mesh
        self.model_id = m2.model_id
        self.name = m2.name

    @classmethod
    def load(cls, root: str | Path) -> M2Backend:
        from trigeo.models.m1 import M1Model
        from trigeo.models.m2 import M2Model

        m2 = M2Model.load(root)
        m1_dir = m2.m1.get("dir")
        if not m1_dir or not Path(m1_dir).exists():
            raise ArtifactError(f"{root}: the M1 directory it records ({m1_dir}) is missing")
        m1 = M1Model.load(m1_dir)
        heads = [i for i, h in enumerate(m1.heads) if h.mesh_hash == m2.mesh_hash]
        return cls(m2, M1Backend(m1, heads[0] if heads and m1.is_multi_head else None))

    @property
    def m1(self) -> Any:
        return self.m1_backend.model

    @property
    def device(self) -> str:
        return self.m1_backend.device

    def to(self, device: str) -> M2Backend:
        """Run M1's forward passes on ``device``; M2, a small MLP, stays on the CPU."""
        self.m1_backend.to(device)
        return self

    def label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of the cells of the M1 head this M2 builds on."""
        return self.m1_backend.label_points()

    def describe(self) -> dict[str, Any]:
        record = self.m1_backend.describe()
        record.update(
            model_id=self.m2.model_id,
            name=self.m2.name,
            kind=self.kind,
            m1_model_id=self.m1_backend.model_id,
            uses_time=True,
        )
        return record

    def prepare(self, image: Any) -> Any:
        """The M1 input tensor of a decoded photo (M2 itself reads M1's answer)."""
        return self.m1_backend.prepare(image)

    def infer_prepared(self, inputs: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """M1's forward pass over the whole batch, then M2 over the photos with a time."""
        from trigeo.models.m2 import m2_inputs

        first = self.m1_backend.infer_prepared(inputs, [None] * len(inputs))
        timed = [i for i, t in enumerate(posted_at) if t is not None]
        if timed:
            probs = np.stack([first[i].probs for i in timed])
            k = min(self.m2.top_k, probs.shape[1])
            cells = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(probs, cells, axis=1)
            x = m2_inputs(cells, top, probs.shape[1], [posted_at[i] for i in timed], top_k=k)
            out = self.m2.predict_proba(x)
            for row, i in enumerate(timed):
                first[i] = Inference(
                    out[row].astype(np.float64), first[i].descriptor, self.kind, True
                )
        for i, t in enumerate(posted_at):
            if t is None:
                first[i].note = "no posting time (form field or EXIF): answered by M1"
        return first

    def infer(self, images: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """M1, then M2 for the photos with a posting time, over decoded RGB photos."""
        return self.infer_prepared([self.prepare(image) for image in images], posted_at)


_BACKENDS: dict[str, Callable[[Path], Any]] = {
    "trigeo-m1/1": M1Backend.load,
    "trigeo-m2/1": M2Backend.load,
}


def register_backend(model_format: str, loader: Callable[[Path], Any]) -> None:
    """Serve model directories whose ``model.json`` has ``format == model_format``."""
    _BACKENDS[model_format] = loader


def load_backend(root: str | Path) -> Any:
    """The backend for a model directory, chosen by its ``model.json`` format."""
    root = Path(root)
    meta_path = root / "model.json"
    if not meta_path.is_file():
        raise ArtifactError(f"{root}: no model.json; is this a trigeo model directory?")
    try:
        model_format = json.loads(meta_path.read_text("utf-8")).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from exc
    loader = _BACKENDS.get(model_format)
    if loader is None:
        raise ArtifactError(
            f"{root}: trigeo serve cannot serve a {model_format!r} model "
            f"(it serves {', '.join(sorted(_BACKENDS))})"
        )
    return loader(root)
