"""The study's class-balanced sampling, growing epochs and rank sharding."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.train.samplers import ClassBalancedSampler, EpochSampler, class_weights


@pytest.fixture
def labels():
    # Three cells with 600, 300 and 100 photos.
    return np.repeat([0, 1, 2], [600, 300, 100])


def test_class_weights_follow_n_to_the_one_minus_beta():
    counts = np.array([400, 100, 0, 25])
    np.testing.assert_allclose(class_weights(counts, 1.0), [1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(class_weights(counts, 0.0), counts / counts.sum())
    half = np.array([20, 10, 0, 5]) / 35
    np.testing.assert_allclose(class_weights(counts, 0.5), half)


@pytest.mark.parametrize(("beta", "expected"), [(1.0, [1 / 3] * 3), (0.0, [0.6, 0.3, 0.1])])
def test_drawn_class_shares_match_beta(labels, beta, expected):
    sampler = ClassBalancedSampler(labels, 30000, beta, seed=3)
    drawn = labels[[i for i, _ in sampler]]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, expected, atol=0.015)


def test_photos_within_a_class_are_drawn_uniformly(labels):
    sampler = ClassBalancedSampler(labels, 20000, 1.0, seed=0)
    drawn = np.array([i for i, _ in sampler])
    small = drawn[labels[drawn] == 2]
    # 100 photos in cell 2, about 6667 draws: each photo about 67 times.
    counts = np.bincount(small - 900, minlength=100)
    assert counts.min() > 35 and counts.max() < 105


def test_draws_depend_only_on_seed_stage_and_epoch(labels):
    def draw(**kw):
        return list(ClassBalancedSampler(labels, 50, 0.5, **kw))

    assert draw(seed=1, epoch=2) == draw(seed=1, epoch=2)
    assert draw(seed=1, epoch=2) != draw(seed=1, epoch=3)
    assert draw(seed=1, stage=0) != draw(seed=1, stage=1)
    sampler = ClassBalancedSampler(labels, 50, 0.5, seed=1)
    sampler.set_epoch(2)
    assert list(sampler) == draw(seed=1, epoch=2)


def test_epoch_size_grows_with_the_epoch(labels):
    sampler = ClassBalancedSampler(labels, lambda e: int(100 * 1.06**e), 1.0)
    sizes = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        sizes.append(len(list(sampler)))
    assert sizes == [100, 106, 112]


@pytest.mark.parametrize("replicas", [2, 3])
def test_ranks_split_one_global_draw(labels, replicas):
    whole = list(ClassBalancedSampler(labels, 100, 1.0, seed=5))
    parts = [
        list(ClassBalancedSampler(labels, 100, 1.0, seed=5, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    assert len({len(p) for p in parts}) == 1
    interleaved = [item for group in zip(*parts, strict=True) for item in group]
    assert interleaved[:100] == whole


def test_full_epochs_visit_every_photo_once():
    sampler = EpochSampler(10, seed=0)
    first = [i for i, _ in sampler]
    assert sorted(first) == list(range(10))
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != first
    parts = [[i for i, _ in EpochSampler(10, seed=0, num_replicas=4, rank=r)] for r in range(4)]
    assert all(len(p) == 3 for p in parts)
    assert set().union(*parts) == set(range(10))


def test_item_seeds_differ_between_items(labels):
    seeds = [s for _, s in ClassBalancedSampler(labels, 200, 1.0)]
    assert len(set(seeds)) == 200
