"""Lightning pieces of M1 training: the module, the data module and callbacks.

The data module lives in :mod:`trigeo.train.m1_loader`; it is importable from here too.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning
import numpy as np
import torch
from torch.nn import functional

import trigeo.runtime.quiet  # noqa: F401  (drops Lightning's hosted-logger advert)
from trigeo.errors import UnreadableImagesError
from trigeo.models.m1 import M1Net
from trigeo.sphere import EARTH_RADIUS_KM, STUDY_THRESHOLDS_KM
from trigeo.train.config import StageConfig
from trigeo.train.m1_loader import M1DataModule
from trigeo.train.samplers import mix_seed

__all__ = ["THRESHOLDS_KM", "M1DataModule", "M1Module", "StopAfterBatches", "gather_ragged"]

THRESHOLDS_KM = STUDY_THRESHOLDS_KM
log = logging.getLogger("trigeo.train")


def _haversine_km(lat1: torch.Tensor, lon1: torch.Tensor, lat2: torch.Tensor, lon2: torch.Tensor):
    # Same formula and radius as trigeo.sphere.distance_km, in torch for on-device metrics.
    lat1, lon1, lat2, lon2 = (torch.deg2rad(t.double()) for t in (lat1, lon1, lat2, lon2))
    a = (
        torch.sin((lat2 - lat1) / 2) ** 2
        + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a.clamp(0, 1)))


def gather_ragged(module: lightning.LightningModule, values: torch.Tensor) -> torch.Tensor:
    """Every rank's 1-d ``values`` concatenated (ranks may hold different counts).

    Shared by the M1 and M2/M3 modules: their validation metrics are taken
    over every rank's photos, not averaged over ranks.
    """
    if module.trainer.world_size == 1:
        return values
    n = torch.tensor([len(values)], device=values.device)
    sizes = module.all_gather(n).flatten()
    padded = values.new_zeros(int(sizes.max()))
    padded[: len(values)] = values
    gathered = module.all_gather(padded)
    return torch.cat([gathered[r, : int(sizes[r])] for r in range(len(sizes))])


class M1Module(lightning.LightningModule):
    """Trains an :class:`M1Net` (or only its head, on cached features) for one stage.

    Parameters
    ----------
    net
        The network; shared across stages so each stage starts from the
        previous stage's weights.
    stage
        Optimizer, learning-rate schedule.
    label_lat, label_lon
        Label point of each cell (for the geographic validation metrics).
    val_lat, val_lon
        True coordinates of the validation photos (indexed by dataset position).
    features_mode
        Inputs are cached backbone features: only the head runs.
    seed, stage_index
        Seed the global RNG per epoch so a resumed run replays the same epoch.
    max_unreadable
        Stop the run (:class:`~trigeo.errors.UnreadableImagesError`, on every
        rank at once) when more than this share of an epoch's training or
        validation images cannot be read.
    head_label_points, head_names
        A multi-head network's label points and names, one per head in the
        network's order. Labels then come as ``(batch, heads)``; the loss is
        the sum of the heads' cross-entropies (a head ignores photos in its
        dropped cells, label -1). Validation metrics of the primary head are
        logged as ``val/...``, the others' as ``val/<head>/...``.
    label_smoothing
        Training loss only (PyTorch's ``label_smoothing``): the validation
        loss stays the plain cross-entropy, so runs compare.

    Notes
    -----
    Validation metrics are computed once per epoch over every rank's photos
    (distances gathered, so ``val/median_km`` is the true median, not a mean
    of per-batch medians). A batch whose every image is unreadable (or, for a
    network with batch norm, all but one) still runs a zero-loss backward
    pass, so DDP's gradient all-reduce is matched on every rank and nobody
    hangs.
    """

    def __init__(
        self,
        net: M1Net,
        stage: StageConfig,
        *,
        label_lat: np.ndarray,
        label_lon: np.ndarray,
        val_lat: np.ndarray | None = None,
        val_lon: np.ndarray | None = None,
        features_mode: bool = False,
        seed: int = 0,
        stage_index: int = 0,
        max_unreadable: float = 0.05,
        head_label_points: list[tuple[np.ndarray, np.ndarray]] | None = None,
        head_names: list[str] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.label_smoothing = float(label_smoothing)
        self.n_heads = int(getattr(net, "n_heads", 1))
        self.primary = int(getattr(net, "primary", 0))
        self.head_names = list(head_names or getattr(net, "head_names", ("head0",)))
        for i, (lat, lon) in enumerate(head_label_points or []):
            self.register_buffer(f"head_lat_{i}", torch.as_tensor(lat, dtype=torch.float64).clone())
            self.register_buffer(f"head_lon_{i}", torch.as_tensor(lon, dtype=torch.float64).clone())
        self.max_unreadable = float(max_unreadable)
        self.stage = stage
        self.features_mode = features_mode
        self.seed, self.stage_index = seed, stage_index
        self.register_buffer("label_lat", torch.as_tensor(label_lat, dtype=torch.float64).clone())
        self.register_buffer("label_lon", torch.as_tensor(label_lon, dtype=torch.float64).clone())
        empty = np.zeros(0)
        self.register_buffer(
            "val_lat",
            torch.tensor(np.array(empty if val_lat is None else val_lat), dtype=torch.float64),
        )
        self.register_buffer(
            "val_lon",
            torch.tensor(np.array(empty if val_lon is None else val_lon), dtype=torch.float64),
        )
        # Dataset position -> error, for the train and validation sets.
        self.skipped: dict[int, str] = {}
        self.skipped_val: dict[int, str] = {}
        self.train_images = 0
        # Per-epoch counts of read and unreadable images on this rank.
        self._read = {"train": 0, "val": 0}
        self._unread = {"train": 0, "val": 0}
        # Per head: (distances, correct, [loss sum, labelled count]) per batch.
        self._val_parts: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
        # Batch norm cannot train on a batch of one (its variance is undefined).
        self._min_batch = (
            2
            if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
            else 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.classify(x) if self.features_mode else self.net(x)

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every head's logits (one backbone pass), in the network's head order."""
        if self.n_heads == 1:
            return [self(x)]
        return self.net.classify_heads(x) if self.features_mode else self.net.forward_heads(x)

    def _head_points(self, head: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_heads == 1:
            return self.label_lat, self.label_lon
        return getattr(self, f"head_lat_{head}"), getattr(self, f"head_lon_{head}")

    def _labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """Labels as ``(batch, heads)``."""
        labels = batch["label"]
        return labels.unsqueeze(1) if labels.ndim == 1 else labels

    def _note_skipped(self, batch: dict[str, Any], seen: dict[int, str]) -> None:
        for index, error in zip(batch["skipped"], batch["errors"], strict=True):
            if index not in seen:
                seen[index] = error
                log.warning("skipped unreadable image: %s", error)

    def on_train_epoch_start(self) -> None:
        # Dropout/drop-path draws depend only on (seed, stage, epoch): resume == no interruption.
        torch.manual_seed(
            mix_seed(self.seed, self.stage_index, self.current_epoch, self.global_rank)
        )
        self._read["train"] = self._unread["train"] = 0

    def _count(self, kind: str, batch: dict[str, Any]) -> None:
        self._unread[kind] += len(batch["skipped"])
        self._read[kind] += len(batch["index"])

    def _check_unreadable(self, kind: str) -> None:
        """Raise on every rank together when the epoch's unreadable share is too high."""
        counts = torch.tensor(
            [self._read[kind], self._unread[kind]], dtype=torch.float64, device=self.device
        )
        if self.trainer.world_size > 1:
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        read, unread = (int(v) for v in counts.tolist())
        total = read + unread
        if total and unread / total > self.max_unreadable:
            examples = "; ".join(
                list((self.skipped if kind == "train" else self.skipped_val).values())[:3]
            )
            raise UnreadableImagesError(
                f"{unread} of {total} {kind} images in stage {self.stage.name!r} epoch "
                f"{self.current_epoch} could not be read (limit max_unreadable_fraction="
                f"{self.max_unreadable:g}); e.g. {examples or 'see other ranks'}"
            )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._note_skipped(batch, self.skipped)
        self._count("train", batch)
        if batch["image"] is None or len(batch["label"]) < self._min_batch:
            # Nothing (or one photo, with batch norm) to learn from: a zero loss that
            # touches every trainable parameter keeps DDP's gradient all-reduce matched
            # with the other ranks.
            return sum(
                (p.sum() * 0.0 for p in self.net.parameters() if p.requires_grad),
                torch.zeros((), device=self.device),
            )
        labels = self._labels(batch)
        heads = self.head_logits(batch["image"])
        loss = torch.zeros((), device=self.device)
        for h, head_logits in enumerate(heads):
            target = labels[:, h]
            labelled = int((target >= 0).sum())
            if labelled:
                # Sum / count, not the mean: a batch where a head has no labelled photo adds
                # nothing instead of a NaN.
                loss = (
                    loss
                    + functional.cross_entropy(
                        head_logits.float(),
                        target,
                        ignore_index=-1,
                        reduction="sum",
                        label_smoothing=self.label_smoothing,
                    )
                    / labelled
                )
        logits = heads[self.primary]
        primary = labels[:, self.primary]
        n = len(primary)
        self.train_images += n
        acc = (logits.argmax(1) == primary).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/acc", acc, prog_bar=True, batch_size=n, on_step=False, on_epoch=True)
        self.log(
            "lr",
            self.optimizers().param_groups[0]["lr"],
            batch_size=n,
            on_step=False,
            on_epoch=True,
        )
        return loss

    def on_train_epoch_end(self) -> None:
        self._check_unreadable("train")

    def on_validation_epoch_start(self) -> None:
        self._read["val"] = self._unread["val"] = 0
        self._val_parts = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._note_skipped(batch, self.skipped_val)
        self._count("val", batch)
        if batch["image"] is None:
            return
        labels = self._labels(batch)
        parts = []
        for h, head_logits in enumerate(self.head_logits(batch["image"])):
            logits, target = head_logits.float(), labels[:, h]
            top = logits.argmax(1)
            kept = target >= 0
            # Per-photo loss (0 for photos outside the kept cells), summed at epoch end.
            loss = torch.zeros(len(target), dtype=torch.float64, device=logits.device)
            if kept.any():
                loss[kept] = functional.cross_entropy(
                    logits[kept], target[kept], reduction="none"
                ).double()
            label_lat, label_lon = self._head_points(h)
            distance = _haversine_km(
                label_lat[top],
                label_lon[top],
                self.val_lat[batch["index"]],
                self.val_lon[batch["index"]],
            )
            parts.append(
                (distance, (top == target).double(), torch.stack([loss.sum(), kept.double().sum()]))
            )
        self._val_parts.append(parts)

    def on_validation_epoch_end(self) -> None:
        self._check_unreadable("val")
        batches, self._val_parts = self._val_parts, []
        for h in range(self.n_heads):
            prefix = "val/" if h == self.primary else f"val/{self.head_names[h]}/"
            self._log_val_head(prefix, [parts[h] for parts in batches])

    def _log_val_head(
        self, prefix: str, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> None:
        empty = torch.zeros(0, dtype=torch.float64, device=self.device)
        distance = gather_ragged(self, torch.cat([p[0] for p in parts]) if parts else empty)
        correct = gather_ragged(self, torch.cat([p[1] for p in parts]) if parts else empty)
        loss = gather_ragged(
            self,
            torch.stack([p[2] for p in parts]).sum(0)
            if parts
            else torch.zeros(2, dtype=torch.float64, device=self.device),
        )
        loss_sum, loss_n = loss.view(-1, 2).sum(0).tolist()
        if len(distance) == 0:
            return
        # Values are already global (gathered above): identical on every rank.
        # quantile interpolates like numpy's median; Tensor.median takes the lower middle value.
        metrics = {
            f"{prefix}acc": correct.mean() * 100,
            f"{prefix}median_km": distance.quantile(0.5),
        }
        if loss_n:
            metrics[f"{prefix}loss"] = torch.tensor(loss_sum / loss_n)
        for threshold in THRESHOLDS_KM:
            metrics[f"{prefix}acc_{threshold:g}km"] = (distance <= threshold).double().mean() * 100
        for name, value in metrics.items():
            self.log(name, value.float(), sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.net.parameters() if p.requires_grad]
        stage = self.stage
        if stage.optimizer == "adagrad":
            optimizer = torch.optim.Adagrad(params, lr=stage.lr, weight_decay=stage.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay
            )
        decay = stage.lr_decay
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: max(0.0, 1.0 - decay * epoch)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


class StopAfterBatches(lightning.Callback):
    """Raise after ``n`` training batches (simulates a crash, for tests)."""

    class SimulatedCrashError(RuntimeError):
        pass

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    def on_train_batch_end(self, trainer: lightning.Trainer, *args: Any) -> None:
        self.seen += 1
        if self.seen >= self.n:
            raise self.SimulatedCrashError(f"simulated interruption after {self.n} batches")
