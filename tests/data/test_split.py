from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from trigeo.data.split import split_dataset, split_photos
from trigeo.data.table import Dataset
from trigeo.errors import InputError


def test_random_split_fractions() -> None:
    labels = split_photos(10_000, val_fraction=0.18, heads_fraction=0.5, seed=1)
    assert (labels == "train").sum() == 8200
    assert (labels == "heads").sum() == 900
    assert (labels == "val").sum() == 900


def test_split_is_deterministic_and_seeded() -> None:
    a = split_photos(500, seed=3)
    b = split_photos(500, seed=3)
    c = split_photos(500, seed=4)
    assert (a == b).all()
    assert (a != c).any()


def test_by_user_keeps_users_whole() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, size=6000).astype(str)
    labels = split_photos(6000, users=users, by_user=True, seed=2)
    per_user = {}
    for u, s in zip(users, labels, strict=True):
        per_user.setdefault(u, set()).add(s)
    assert all(len(s) == 1 for s in per_user.values())
    share = (labels != "train").mean()
    assert 0.12 < share < 0.24
    assert (labels == "heads").sum() > 0 and (labels == "val").sum() > 0


def test_by_user_needs_users() -> None:
    with pytest.raises(InputError):
        split_photos(10, by_user=True)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_bad_fraction(value: float) -> None:
    with pytest.raises(InputError, match="val_fraction"):
        split_photos(10, val_fraction=value)


def test_split_dataset_rewrites_and_keeps_meta(small_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "w"
    shutil.copytree(small_world, root)
    before = Dataset.open(root)
    before_hash = before.hash
    after = split_dataset(root, val_fraction=0.3, heads_fraction=0.4, by_user=True, seed=9)
    reopened = Dataset.open(root)
    assert reopened.meta["images"] == before.meta["images"]
    assert reopened.meta["provenance"]["config"]["by_user"] is True
    assert reopened.meta["provenance"]["inputs"]["table.parquet"] == before_hash
    assert "country" in reopened.table.columns
    groups = reopened.table.groupby("user_id")["split"].nunique()
    assert (groups == 1).all()
    assert (after.table["photo_id"] == before.table["photo_id"]).all()
