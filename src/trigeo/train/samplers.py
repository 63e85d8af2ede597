"""Seeded, rank-sharded samplers for the study's procedure.

Both samplers yield ``(photo index, item seed)`` pairs: the item seed makes a
photo's random augmentation reproducible whatever worker or rank loads it
(:class:`trigeo.data.loading.PhotoDataset` seeds its RNGs with it). The draw
of an epoch depends only on ``(seed, stage, epoch)``, so a resumed run sees
exactly the examples an uninterrupted run would have seen.

Under DDP each rank takes every ``num_replicas``-th item of the same global
draw, so ranks see disjoint parts of one epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["ClassBalancedSampler", "EpochSampler", "class_weights", "mix_seed", "trainer_place"]


def mix_seed(*parts: int) -> int:
    """A 63-bit seed derived from integer parts (order-sensitive)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def class_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """Probability of drawing each class: ∝ n_c^(1 - beta), zero for empty classes.

    beta = 1 gives every non-empty class the same share, beta = 0 the natural
    frequencies.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    weights[present] = counts[present] ** (1.0 - beta)
    return weights / weights.sum()


class _RankSampler(torch.utils.data.Sampler):
    def __init__(self, *, seed: int, stage: int, epoch: int, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.seed, self.stage, self.epoch = int(seed), int(stage), int(epoch)
        self.num_replicas, self.rank = int(num_replicas), int(rank)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start."""
        self.epoch = int(epoch)

    def _total(self) -> int:
        raise NotImplementedError

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return math.ceil(self._total() / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng(mix_seed(self.seed, self.stage, self.epoch))
        indices = self._draw(rng)
        item_seeds = rng.integers(0, 2**62, size=len(indices))
        per_rank = len(self)
        # Pad by wrapping so that every rank gets the same number of items.
        padded = np.resize(np.arange(len(indices)), per_rank * self.num_replicas)
        mine = padded[self.rank :: self.num_replicas]
        for position in mine:
            yield int(indices[position]), int(item_seeds[position])


class ClassBalancedSampler(_RankSampler):
    """Draw ``num_samples`` photos per epoch with class weight ∝ n_c^(1 - beta).

    A class is drawn first, then a photo uniformly within it (with
    replacement), which stays cheap for millions of photos.

    Parameters
    ----------
    labels
        Cell id of each photo (all >= 0).
    num_samples
        Examples per epoch over all ranks, or a callable ``epoch -> count``
        (the study's growing epoch size).
    beta
        Class-bias exponent.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_samples: int | object,
        beta: float,
        *,
        seed: int = 0,
        stage: int = 0,
        epoch: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(seed=seed, stage=stage, epoch=epoch, num_replicas=num_replicas, rank=rank)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.size == 0 or labels.min() < 0:
            raise ValueError("labels must be non-empty cell ids >= 0")
        self.order = np.argsort(labels, kind="stable")
        self.counts = np.bincount(labels)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.probs = class_weights(self.counts, beta)
        self.beta = float(beta)
        self.num_samples = num_samples

    def _total(self) -> int:
        n = self.num_samples
        return int(n(self.epoch) if callable(n) else n)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        total = self._total()
        classes = rng.choice(len(self.probs), size=total, p=self.probs)
        offsets = np.floor(rng.random(total) * self.counts[classes]).astype(np.int64)
        return self.order[self.starts[classes] + offsets]


class EpochSampler(_RankSampler):
    """Every photo once per epoch, in a fresh seeded order (no class bias)."""

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        stage: int = 0,
        epoch: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(seed=seed, stage=stage, epoch=epoch, num_replicas=num_replicas, rank=rank)
        self.n = int(n)

    def _total(self) -> int:
        return self.n

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n)


def trainer_place(trainer: Any) -> tuple[int, int, int]:
    """(rank, world size, current epoch) of a data module's trainer; (0, 1, 0) without one.

    What a loader needs to draw its shard of this epoch's sample.
    """
    if trainer is None:
        return 0, 1, 0
    return trainer.global_rank, trainer.world_size, trainer.current_epoch
