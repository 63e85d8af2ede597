"""The M2/M3 data module: in-memory datasets reshuffled per epoch from a seeded generator.

:class:`HeadDataModule` is re-exported by :mod:`trigeo.train.heads_module`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning
import numpy as np
import torch

from trigeo.train.samplers import mix_seed, trainer_place

__all__ = ["HeadDataModule"]


class HeadDataModule(lightning.LightningDataModule):
    """Feeds a head from in-memory datasets, reshuffled per epoch from a seeded generator.

    Parameters
    ----------
    make_train
        ``make_train(rng)`` -> the epoch's training dataset (M3 draws one
        random album per user with ``rng``; M2 returns its fixed rows).
    val_set
        The early-stopping dataset.
    collate
        Batch builder (dict of tensors).
    val_collate
        Batch builder for ``val_set`` (default: ``collate``).
    """

    def __init__(
        self,
        make_train: Callable[[np.random.Generator], Any],
        val_set: Any,
        collate: Callable[[list[Any]], dict[str, torch.Tensor]],
        *,
        batch_size: int,
        seed: int,
        stage_index: int,
        num_workers: int = 0,
        val_collate: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.make_train, self.val_set, self.collate = make_train, val_set, collate
        self.val_collate = val_collate or collate
        self.batch_size, self.seed, self.stage_index = batch_size, seed, stage_index
        self.num_workers = num_workers

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        rank, replicas, epoch = trainer_place(self.trainer)
        rng = np.random.default_rng(mix_seed(self.seed, self.stage_index, epoch))
        dataset = self.make_train(rng)
        order = rng.permutation(len(dataset))
        # Every rank runs the same number of steps (wrap-around padding).
        per_rank = -(-len(order) // replicas)
        order = np.resize(order, per_rank * replicas)[rank::replicas]
        # Batch norm needs two or more rows: a last batch of one row is dropped.
        drop_last = len(order) % self.batch_size == 1
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=order.tolist(),
            collate_fn=self.collate,
            num_workers=self.num_workers,
            drop_last=drop_last,
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        rank, replicas, _ = trainer_place(self.trainer)
        positions = np.array_split(np.arange(len(self.val_set)), replicas)[rank]
        return torch.utils.data.DataLoader(
            self.val_set,
            batch_size=self.batch_size * 4,
            sampler=positions.tolist(),
            collate_fn=self.val_collate,
            num_workers=self.num_workers,
        )
