"""The M1 training data module: each epoch's sampler served through persistent loaders.

:class:`M1DataModule` is re-exported by :mod:`trigeo.train.module`.
"""

from __future__ import annotations

from typing import Any

import lightning
import numpy as np
import torch

from trigeo.data.loading import collate_skip
from trigeo.train.config import StageConfig, TrainConfig
from trigeo.train.samplers import ClassBalancedSampler, EpochSampler, trainer_place

__all__ = ["M1DataModule"]


class _PersistentLoader(torch.utils.data.DataLoader):
    """A ``DataLoader`` whose persistent workers are not restarted twice per epoch.

    With ``reload_dataloaders_every_n_epochs=1`` Lightning calls ``iter()`` on
    the training loader twice at every epoch start after the first: once when
    it reloads the loader (``FitLoop.setup_data``) and again when the epoch
    loop starts (``_TrainingEpochLoop.on_run_start``). With persistent workers
    each ``iter()`` resets the iterator: the second one threw away the
    ``prefetch_factor`` batches the workers had just decoded for the first
    and made the epoch wait for them to finish before asking again -- with
    the demo's one worker about 0.3 s and 512 wasted photo decodes per epoch,
    a tenth of ``benchmarks/bench_m1.py``'s full-data epoch.

    Here an ``iter()`` that finds the iterator primed for the same sampler
    epoch and not yet drawn from returns it as it is: the sampler is a
    function of its epoch, so its prefetched batches are exactly those a reset
    would ask for again.
    """

    _primed_for: Any = None

    def __iter__(self) -> Any:
        iterator = self._iterator
        epoch = getattr(self.sampler, "epoch", None)
        if (
            iterator is not None
            and getattr(iterator, "_num_yielded", None) == 0
            and self._primed_for == epoch
        ):
            return iterator
        iterator = super().__iter__()
        self._primed_for = epoch
        return iterator


class M1DataModule(lightning.LightningDataModule):
    """Serves each epoch's sampler through one DataLoader per stage (the epoch size grows).

    Parameters
    ----------
    train_set, val_set
        Map-style datasets (``PhotoDataset`` or ``FeatureDataset``).
    train_labels
        Cell id per training photo.
    stage, stage_index, epoch_offset
        The stage and the index of its first epoch in the run's sequence of
        balanced epochs (for the growing epoch size).

    Notes
    -----
    The trainer asks for the training loader again every epoch (the balanced
    sampler's length changes with the epoch). With loader workers, the same
    ``DataLoader`` is returned each time with its sampler moved to the new
    epoch, and its workers persist: a fresh loader per epoch used to fork its
    workers again and wait for their first batch at every epoch start, and the
    validation loader did the same after every epoch. The sampler runs in the
    main process and every item carries its own augmentation seed, so the
    batches are the same as with fresh workers (and as after a resume). The
    workers are shut down in :meth:`teardown`, at the end of the stage.
    """

    def __init__(
        self,
        config: TrainConfig,
        train_set: torch.utils.data.Dataset,
        val_set: torch.utils.data.Dataset | None,
        train_labels: np.ndarray,
        n_classes: int,
        stage: StageConfig,
        stage_index: int,
        epoch_offset: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.train_labels = np.asarray(train_labels)
        self.n_classes = n_classes
        self.stage, self.stage_index, self.epoch_offset = stage, stage_index, epoch_offset
        self._train_loader: torch.utils.data.DataLoader | None = None
        self._val_loader: torch.utils.data.DataLoader | None = None

    def _loader(self, dataset: Any, sampler: Any, batch_size: int) -> torch.utils.data.DataLoader:
        workers = self.config.num_workers
        return _PersistentLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_skip,
            # Kept for the stage's later epochs (see the class notes).
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=4 if workers else None,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        rank, replicas, epoch = trainer_place(self.trainer)
        if self._train_loader is not None:
            # Same stage, same ranks: only the epoch (and so the draw and its size) moves.
            self._train_loader.sampler.set_epoch(epoch)
            return self._train_loader
        config = self.config
        common = {
            "seed": config.seed,
            "stage": self.stage_index,
            "epoch": epoch,
            "num_replicas": replicas,
            "rank": rank,
        }
        if self.stage.sampling == "full":
            sampler: Any = EpochSampler(len(self.train_labels), **common)
        else:
            offset = 0 if config.growth_resets_per_stage else self.epoch_offset
            sampler = ClassBalancedSampler(
                self.train_labels,
                lambda e: config.epoch_samples(self.n_classes, offset + e),
                self.stage.beta,
                **common,
            )
        loader = self._loader(self.train_set, sampler, config.batch_size)
        if config.num_workers:
            self._train_loader = loader
        return loader

    def val_dataloader(self) -> Any:
        if self.val_set is None:
            return []
        if self._val_loader is not None:
            return self._val_loader
        rank, replicas, _ = trainer_place(self.trainer)
        # Contiguous shards keep validation deterministic; no padding duplicates.
        positions = np.array_split(np.arange(len(self.val_set)), replicas)[rank]
        batch = self.config.eval_batch_size or self.config.batch_size * 2
        loader = self._loader(self.val_set, positions.tolist(), batch)
        if self.config.num_workers:
            self._val_loader = loader
        return loader

    def teardown(self, stage: str) -> None:
        """Stop the persistent loader workers when the stage's ``fit`` ends (or fails)."""
        for loader in (self._train_loader, self._val_loader):
            iterator = getattr(loader, "_iterator", None)
            if iterator is not None:
                iterator._shutdown_workers()
        self._train_loader = self._val_loader = None
