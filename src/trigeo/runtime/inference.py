"""Batched inference on Lightning's ``Trainer.predict`` (one CPU to many GPUs).

Shared by training (feature caching, calibration) and prediction, so neither
imports the other. :func:`run_inference` runs an :class:`M1Net` over a map-style dataset of
photos (or cached features) and returns, per readable photo, either the top-k
cells and probabilities, the full logits, or the penultimate features.
Under DDP, Lightning shards the photos across ranks with a distributed
sampler; each rank writes its part to ``work_dir`` and rank 0 merges them
(duplicates from the sampler's padding are dropped by photo position).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from trigeo.data.loading import collate_skip
from trigeo.models.m1 import M1Net
from trigeo.runtime.options import InferenceOptions
from trigeo.runtime.quiet import lightning_to_file
from trigeo.runtime.trainer import make_trainer

__all__ = ["InferenceModule", "run_inference"]

MODES = ("topk", "logits", "embed")
# Keys of a batch's output that are not per-photo arrays aligned with "index".
_NOT_ARRAYS = ("index", "skipped", "errors")
log = logging.getLogger("trigeo.runtime")


class InferenceModule(lightning.LightningModule):
    """Wraps a network for ``Trainer.predict``.

    Parameters
    ----------
    net
        The M1 network.
    mode
        ``topk``: the ``top_k`` most probable cells and their probabilities;
        ``logits``: logits / temperature; ``embed``: pooled features.
    temperature
        Softmax temperature (calibration); logits are divided by it. One per
        head for a multi-head network.
    features_mode
        Inputs are cached features (only the head runs).

    Five-crop batches (``(B, 5, C, H, W)``) are averaged: probabilities for
    ``topk``, log of the mean probability for ``logits``, mean features for ``embed``.

    A multi-head network answers for every head from one backbone pass; the
    arrays of head ``h`` are keyed ``top_cells.h``, ``top_probs.h``,
    ``probs.h`` and ``logits.h`` (a single-head network's have no suffix).
    """

    def __init__(
        self,
        net: M1Net,
        mode: str = "topk",
        *,
        top_k: int = 20,
        temperature: float | Sequence[float] = 1.0,
        features_mode: bool = False,
        full_probs: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.net, self.mode = net, mode
        self.n_heads = int(getattr(net, "n_heads", 1))
        sizes = getattr(net, "head_sizes", (net.num_classes,))
        self.top_ks = [int(min(top_k, k)) for k in sizes]
        self.temperatures = (
            [float(temperature)] * self.n_heads
            if isinstance(temperature, (int, float))
            else [float(t) for t in temperature]
        )
        if len(self.temperatures) != self.n_heads:
            raise ValueError(f"{len(self.temperatures)} temperatures for {self.n_heads} heads")
        self.features_mode = features_mode
        self.full_probs = full_probs

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": batch["index"].cpu().numpy(),
            "skipped": batch["skipped"],
            "errors": batch["errors"],
        }
        x = batch["image"]
        if x is None:
            return out
        crops = 1
        if x.ndim == 5:
            crops = x.shape[1]
            x = x.flatten(0, 1)
        if self.mode == "embed":
            features = self.net.embed(x).float()
            out["features"] = features.unflatten(0, (-1, crops)).mean(1).cpu().numpy()
            return out
        if self.n_heads == 1:
            heads = [self.net.classify(x) if self.features_mode else self.net(x)]
        else:
            heads = self.net.classify_heads(x) if self.features_mode else self.net.forward_heads(x)
        for h, logits in enumerate(heads):
            suffix = "" if self.n_heads == 1 else f".{h}"
            probs = torch.softmax(logits.float() / self.temperatures[h], dim=1)
            probs = probs.unflatten(0, (-1, crops)).mean(1)
            if self.mode == "logits":
                out["logits" + suffix] = torch.log(probs.clamp_min(1e-30)).cpu().numpy()
                continue
            top_probs, top_cells = probs.topk(self.top_ks[h], dim=1)
            out["top_cells" + suffix] = top_cells.to(torch.int32).cpu().numpy()
            out["top_probs" + suffix] = top_probs.cpu().numpy()
            if self.full_probs:
                out["probs" + suffix] = probs.cpu().numpy()
        return out


class _RankWriter(BasePredictionWriter):
    """Collect this rank's outputs; under DDP also save them for rank 0 to merge."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(write_interval="epoch")
        self.work_dir = work_dir
        self.result: dict[str, Any] | None = None

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        batches = (
            predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        )
        self.result = _concat(batches)
        if trainer.world_size > 1:
            np.save(
                self.work_dir / f"rank-{trainer.global_rank}.npy", self.result, allow_pickle=True
            )


def _concat(batches: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"skipped": {}}
    for batch in batches:
        for index, error in zip(batch["skipped"], batch["errors"], strict=True):
            merged["skipped"][int(index)] = error
    keys = sorted({key for batch in batches for key in batch if key not in _NOT_ARRAYS})
    for key in ("index", *keys):
        parts = [batch[key] for batch in batches if key in batch and len(batch["index"])]
        if parts:
            merged[key] = np.concatenate(parts)
    merged.setdefault("index", np.zeros(0, dtype=np.int64))
    return merged


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    skipped: dict[int, str] = {}
    for part in parts:
        skipped.update(part["skipped"])
    index = np.concatenate([part["index"] for part in parts])
    _, first = np.unique(index, return_index=True)
    merged: dict[str, Any] = {"index": index[first], "skipped": skipped}
    keys = sorted({key for part in parts for key in part if key not in _NOT_ARRAYS})
    for key in keys:
        if any(key in part for part in parts):
            merged[key] = np.concatenate([part[key] for part in parts if key in part])[first]
    return merged


def run_inference(
    net: M1Net,
    dataset: torch.utils.data.Dataset,
    *,
    options: InferenceOptions | None = None,
    mode: str = "topk",
    top_k: int = 20,
    temperature: float | Sequence[float] = 1.0,
    features_mode: bool = False,
    full_probs: bool = False,
    work_dir: str | Path | None = None,
    log_file: str | Path | None = None,
) -> dict[str, Any] | None:
    """Run ``net`` over ``dataset`` with ``Trainer.predict``.

    ``options`` gives the batch size, loader workers, devices, precision and
    progress (``max_unreadable`` and ``cpu_threads`` are the caller's to
    apply; default: :class:`InferenceOptions`'s defaults).

    Returns
    -------
    dict or None
        ``index`` (dataset positions of readable photos, sorted), the mode's
        arrays aligned with it, and ``skipped`` (position -> error). ``None``
        on ranks other than 0 under DDP.

    Lightning's banners and warnings go to ``log_file`` (discarded when ``None``).
    """
    options = options or InferenceOptions()
    net.eval()
    module = InferenceModule(
        net,
        mode,
        top_k=top_k,
        temperature=temperature,
        features_mode=features_mode,
        full_probs=full_probs,
    )
    # Rank outputs go next to the final file (same filesystem, visible to every rank).
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=work_dir, prefix=".trigeo-predict-") as tmp,
        lightning_to_file(log_file),
    ):
        writer = _RankWriter(Path(tmp))
        trainer = make_trainer(
            **options.trainer_args(), callbacks=[writer], enable_checkpointing=False
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=options.batch_size,
            shuffle=False,
            num_workers=options.num_workers,
            collate_fn=collate_skip,
            pin_memory=torch.cuda.is_available(),
        )
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        if trainer.world_size > 1:
            trainer.strategy.barrier()
            if trainer.global_rank != 0:
                return None
            parts = [
                np.load(Path(tmp) / f"rank-{r}.npy", allow_pickle=True).item()
                for r in range(trainer.world_size)
            ]
            return _merge(parts)
        assert writer.result is not None
        return _merge([writer.result])
