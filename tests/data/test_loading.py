"""Torch datasets over folder datasets and webdataset shards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from train._world import build_shard_world, build_world
from trigeo.data.loading import (
    ImageReader,
    PhotoDataset,
    build_transform,
    collate_skip,
    eval_draft_size,
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


# --- JPEG draft decoding for prediction --------------------------------------------

CONFIG_224 = {**CONFIG, "input_size": [3, 224, 224], "crop_pct": 0.875}


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Photo-like pixels: colour gradients, a smooth texture and sensor grain."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    image = np.array([200, 90, 40]) * (1 - y) + np.array([30, 120, 220]) * y + 40 * x
    image = image + 25 * np.sin(2 * np.pi * (12 * x + 7 * y))
    image = image + rng.uniform(-12, 12, (height, width, 1))
    return image.clip(0, 255).astype(np.uint8)


def _save(path, pixels: np.ndarray, format: str) -> None:
    Image.fromarray(pixels).save(path, format=format, quality=90)


def test_eval_draft_size_covers_the_eval_resize():
    assert eval_draft_size(CONFIG_224) == (256, 256)
    assert eval_draft_size({**CONFIG_224, "crop_pct": None}) == (256, 256)  # timm's default
    # (width, height) from input_size (C, H, W), rounded up.
    assert eval_draft_size({**CONFIG_224, "input_size": [3, 224, 160], "crop_pct": 0.95}) == (
        169,
        236,
    )
    for size, crop_pct in ((64, 0.95), (224, 0.9), (299, 0.875)):
        width, _ = eval_draft_size({**CONFIG, "input_size": [3, size, size], "crop_pct": crop_pct})
        # timm's eval resize floors, FiveCropTransform rounds: neither may exceed the draft.
        assert width >= math.floor(size / crop_pct) and width >= round(size / crop_pct)


def test_large_jpeg_decodes_at_reduced_scale_but_not_below_the_resize(tmp_path):
    _save(tmp_path / "big.jpg", _photo(1280, 960), "JPEG")
    reader = ImageReader(tmp_path)
    need = eval_draft_size(CONFIG_224)
    assert reader.open("big.jpg").size == (1280, 960)
    drafted = reader.open("big.jpg", need)
    assert drafted.mode == "RGB"
    assert min(drafted.size) >= need[1] and drafted.size[0] < 1280
    assert drafted.size == (640, 480)  # 960 // 256 = 3: half scale, not a quarter
    # The largest power-of-two reduction that keeps both sides at or above the request.
    assert reader.open("big.jpg", (236, 236)).size == (320, 240)
    assert reader.open("big.jpg", (100, 100)).size == (160, 120)  # libjpeg stops at 1/8


@pytest.mark.parametrize("format, mode", [("MPO", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK")])
def test_draft_covers_phone_grayscale_and_cmyk_jpegs(tmp_path, format, mode):
    image = Image.fromarray(_photo(1280, 960)).convert(mode)
    # MPO (two JPEG frames) is what many phones write; PIL opens it as a JPEG subclass.
    extra = {"save_all": True, "append_images": [image]} if format == "MPO" else {}
    image.save(tmp_path / "x.jpg", format=format, quality=90, **extra)
    drafted = ImageReader(tmp_path).open("x.jpg", eval_draft_size(CONFIG_224))
    assert drafted.mode == "RGB" and drafted.size == (640, 480)


def test_png_and_small_jpegs_are_decoded_at_full_size(tmp_path):
    _save(tmp_path / "big.png", _photo(1280, 960), "PNG")
    _save(tmp_path / "small.jpg", _photo(400, 300), "JPEG")  # under twice 256: no reduction
    reader = ImageReader(tmp_path)
    need = eval_draft_size(CONFIG_224)
    for name, size in (("big.png", (1280, 960)), ("small.jpg", (400, 300))):
        drafted = reader.open(name, need)
        assert drafted.size == size
        np.testing.assert_array_equal(np.asarray(drafted), np.asarray(reader.open(name)))


@pytest.mark.parametrize("crop_pct, decoded", [(0.875, 640), (0.95, 320)])
def test_draft_changes_the_model_input_only_slightly(tmp_path, crop_pct, decoded):
    _save(tmp_path / "big.jpg", _photo(1280, 960), "JPEG")
    config = {**CONFIG_224, "crop_pct": crop_pct}
    need = eval_draft_size(config)
    assert ImageReader(tmp_path).open("big.jpg", need).size[0] == decoded
    for transform in (build_transform(config, train=False), five_crop_transform(config)):
        full = PhotoDataset(tmp_path, ["big.jpg"], None, transform)[0]["image"]
        draft = PhotoDataset(tmp_path, ["big.jpg"], None, transform, draft_size=need)[0]["image"]
        assert draft.shape == full.shape
        # Back to [0, 1] pixel units (std 0.5). Measured: max 0.012-0.024 (3-6 of 255 levels),
        # mean 0.0015-0.0026: only the resampling filter differs (libjpeg's DCT scaling, then
        # a shorter resize), no resolution the 224 px input could show is lost.
        diff = (draft - full).abs() * 0.5
        print(f"crop_pct {crop_pct}: max {diff.max():.4f}, mean {diff.mean():.4f}")
        assert diff.max() > 0, "draft_size did not reach the decoder"
        assert diff.max() < 0.06, f"max abs difference {diff.max():.4f}"
        assert diff.mean() < 0.008, f"mean abs difference {diff.mean():.4f}"


def test_exif_orientation_is_applied(tmp_path):
    # A 40x20 JPEG tagged "rotate 90 CW to view" (Orientation 6) reaches the model upright:
    # 20 wide and 40 high, with the red left half on top.
    import numpy as np
    from PIL import Image

    from trigeo.data.loading import ImageReader

    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "sideways.jpg", quality=95, exif=exif.tobytes())
    Image.fromarray(pixels).save(tmp_path / "plain.jpg", quality=95)
    reader = ImageReader(tmp_path)
    upright = np.asarray(reader.open("sideways.jpg"))
    assert upright.shape == (40, 20, 3)
    assert upright[5, 10, 0] > 200 and upright[35, 10, 2] > 200  # red on top, blue below
    assert np.asarray(reader.open("plain.jpg")).shape == (20, 40, 3)
