"""Torch datasets over folder datasets and webdataset shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train._world import build_shard_world, build_world
from trigeo.data.loading import (
    PhotoDataset,
    build_transform,
    collate_skip,
    five_crop_transform,
    index_shard,
    split_image_ref,
)
from trigeo.data.table import Dataset

torch.set_num_threads(1)

CONFIG = {
    "input_size": [3, 32, 32],
    "interpolation": "bilinear",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "crop_pct": 1.0,
    "crop_mode": "center",
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("loading")
    folder = build_world(root / "folder", per_city=5)
    shards = build_shard_world(root / "shards", per_city=5, shard_size=7)
    return folder, shards


def test_image_refs_split_into_shard_and_key():
    assert split_image_ref("shards/shard-000001.tar#p1-002") == (
        "shards/shard-000001.tar",
        "p1-002",
    )
    assert split_image_ref("images/a#b.jpg") == ("images/a#b.jpg", None)


def test_folder_and_shard_datasets_give_the_same_pixels(worlds):
    folder, shards = worlds
    eval_tf = build_transform(CONFIG, train=False)
    a = PhotoDataset(folder.root, folder.table["image"], np.arange(20), eval_tf)
    b = PhotoDataset(shards.root, shards.table["image"], np.arange(20), eval_tf)
    assert len(a) == len(b) == 20
    for i in (0, 7, 19):
        assert a[i]["image"].shape == (3, 32, 32)
        torch.testing.assert_close(a[i]["image"], b[i]["image"])
        assert b[i]["label"] == i


def test_shard_index_lists_every_sample(worlds):
    _, shards = worlds
    first = shards.meta["shards"][0]
    index = index_shard(shards.root / first)
    assert sorted(index) == sorted(shards.table["photo_id"][:7])


def test_shards_load_through_worker_processes(worlds):
    _, shards = worlds
    dataset = PhotoDataset(
        shards.root, shards.table["image"], np.zeros(20), build_transform(CONFIG, train=False)
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=6, num_workers=2, collate_fn=collate_skip
    )
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 20
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(20))


def test_seeded_items_repeat_their_augmentation(worlds):
    folder, _ = worlds
    train_tf = build_transform(CONFIG, train=True, scale=(0.3, 1.0), color_jitter=0.4)
    dataset = PhotoDataset(folder.root, folder.table["image"], np.zeros(20), train_tf)
    first = dataset[(3, 1234)]["image"]
    torch.testing.assert_close(dataset[(3, 1234)]["image"], first)
    assert not torch.equal(dataset[(3, 999)]["image"], first)


def test_corrupt_and_missing_images_are_skipped_and_reported(tmp_path, worlds):
    folder, shards = worlds
    table = folder.table.copy()
    (folder.root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    table.loc[2, "image"] = "images/broken.jpg"
    table.loc[5, "image"] = "images/missing.jpg"
    dataset = PhotoDataset(
        folder.root, table["image"], np.arange(20), build_transform(CONFIG, train=False)
    )
    batch = collate_skip([dataset[i] for i in range(8)])
    assert batch["skipped"] == [2, 5]
    assert "broken.jpg" in batch["errors"][0] and "missing.jpg" in batch["errors"][1]
    assert batch["image"].shape == (6, 3, 32, 32)
    assert batch["index"].tolist() == [0, 1, 3, 4, 6, 7]
    unknown_key = PhotoDataset(
        shards.root,
        [shards.table["image"][0].split("#")[0] + "#nope"],
        None,
        build_transform(CONFIG, train=False),
    )
    assert "nope" in unknown_key[0]["error"]
    assert collate_skip([unknown_key[0]])["image"] is None


def test_five_crop_stacks_five_views():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    crops = five_crop_transform(CONFIG)(image)
    assert crops.shape == (5, 3, 32, 32)
    assert not torch.equal(crops[0], crops[1])


def test_dataset_reopens_from_disk(worlds):
    _, shards = worlds
    reopened = Dataset.open(shards.root)
    assert reopened.meta["images"] == "shards" and len(reopened.meta["shards"]) == 3
