"""M1's training input pipeline: per-item seeding and the per-stage persistent loaders.

What ``benchmarks/bench_m1.py`` made faster must not change what the model sees: a
seeded photo gets the same augmentation as before, and a loader kept across epochs
serves the same batches as a fresh loader per epoch.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trigeo.data.loading import FeatureDataset, PhotoDataset, build_transform
from trigeo.train.config import load_config
from trigeo.train.module import M1DataModule


def _photo_set(world) -> PhotoDataset:
    dataset, _, _ = world
    train = dataset.photos("train")
    config = {
        "input_size": (3, 32, 32),
        "interpolation": "bilinear",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "crop_pct": 0.9,
        "crop_mode": "center",
    }
    # torchvision's flip draws from torch's RNG, timm's crop from Python's: both seeded.
    transform = build_transform(config, train=True, scale=(0.3, 1.0), hflip=0.5)
    return PhotoDataset(dataset.root, train["image"][1:9], np.zeros(8, dtype=np.int64), transform)


def test_seeded_item_matches_seeding_every_generator(world):
    photos = _photo_set(world)
    for index, seed in ((0, 11), (3, 2**61 + 5), (5, 7)):
        random.seed(seed)
        torch.manual_seed(seed)  # what the dataset did before: every device's generator
        expected = photos.transform(photos.reader.open(photos.images[index]))
        got = photos[(index, seed)]["image"]
        assert torch.equal(got, expected)
        assert torch.equal(photos[(index, seed)]["image"], got)  # and reproducible


def test_seeded_item_leaves_accelerator_generators_alone(world, monkeypatch):
    # torch.manual_seed also seeds CUDA (lazily, queueing a formatted stack trace per call):
    # a third of a 64 px photo's loading time. Only the CPU generator matters here.
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    _photo_set(world)[(2, 99)]
    assert calls == []


def _datamodule(workers: int, sampling: str) -> M1DataModule:
    config = load_config("test", {"num_workers": workers, "batch_size": 4, "epoch_growth": 0.5})
    stage = next(s for s in config.stages if s.sampling == sampling)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    features = rng.normal(size=(30, 5)).astype(np.float32)
    train = FeatureDataset(features, labels, np.ones(30, dtype=bool))
    val = FeatureDataset(features[:10], labels[:10], np.ones(10, dtype=bool))
    return M1DataModule(config, train, val, labels, 3, stage, 0, 0)


def _epoch(datamodule: M1DataModule, epoch: int) -> list[tuple[list[int], list[int]]]:
    datamodule.trainer = SimpleNamespace(global_rank=0, world_size=1, current_epoch=epoch)
    loader = datamodule.train_dataloader()
    return [(b["index"].tolist(), b["label"].tolist()) for b in loader]


@pytest.mark.parametrize("sampling", ["balanced", "full"])
def test_persistent_loader_serves_the_batches_of_a_fresh_loader_per_epoch(sampling):
    kept = _datamodule(1, sampling)
    try:
        kept_epochs = [_epoch(kept, epoch) for epoch in range(3)]
        # One loader for the stage, its workers alive between epochs.
        loader = kept.train_dataloader()
        assert loader is kept.train_dataloader()
        assert loader.persistent_workers
        assert kept.val_dataloader() is kept.val_dataloader()
    finally:
        kept.teardown("fit")
    fresh_epochs = [_epoch(_datamodule(0, sampling), epoch) for epoch in range(3)]
    assert kept_epochs == fresh_epochs
    if sampling == "balanced":
        # The growing epoch size is honoured by the kept loader.
        sizes = [sum(len(b[0]) for b in epoch) for epoch in kept_epochs]
        assert sizes[0] < sizes[1] < sizes[2]


def test_teardown_stops_the_persistent_workers():
    datamodule = _datamodule(1, "full")
    _epoch(datamodule, 0)
    workers = datamodule._train_loader._iterator._workers
    assert all(w.is_alive() for w in workers)
    datamodule.teardown("fit")
    for worker in workers:
        worker.join(timeout=10)
    assert not any(w.is_alive() for w in workers)
    assert datamodule._train_loader is None


@pytest.mark.parametrize("sampling", ["balanced", "full"])
def test_second_iter_of_an_epoch_keeps_the_prefetched_batches(sampling, monkeypatch):
    """Lightning calls ``iter()`` twice at each epoch start after the first (the loader
    reload, then the epoch loop); the second must not reset the workers' prefetch."""
    resets: list[bool] = []
    iterator_class = torch.utils.data.dataloader._MultiProcessingDataLoaderIter
    reset = iterator_class._reset

    def counting_reset(self, loader, first_iter=False):
        resets.append(first_iter)
        return reset(self, loader, first_iter)

    monkeypatch.setattr(iterator_class, "_reset", counting_reset)
    kept = _datamodule(1, sampling)
    try:
        epochs = []
        for epoch in range(3):
            kept.trainer = SimpleNamespace(global_rank=0, world_size=1, current_epoch=epoch)
            loader = kept.train_dataloader()
            first = iter(loader)
            assert iter(loader) is first  # nothing drawn yet, same epoch: kept as primed
            epochs.append([(b["index"].tolist(), b["label"].tolist()) for b in first])
        # One reset per epoch: the first creates the workers, each later epoch resumes them.
        assert resets == [True, False, False]
        # A drawn-from iterator of the same epoch is reset (a new pass over the epoch).
        again = [(b["index"].tolist(), b["label"].tolist()) for b in kept.train_dataloader()]
        assert again == epochs[-1]
        assert resets == [True, False, False, False]
    finally:
        kept.teardown("fit")
    fresh = [_epoch(_datamodule(0, sampling), epoch) for epoch in range(3)]
    assert epochs == fresh
