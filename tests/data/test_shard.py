from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trigeo.data.images import BadImageError, ShardIndex, decode_image, encode_resized
from trigeo.data.shard import REPORT_FILE, shard_dataset
from trigeo.data.table import Dataset
from trigeo.errors import InputError


def _jpeg(w: int, h: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def broken_world(small_world: Path, tmp_path: Path) -> Path:
    """The small world with a truncated, a non-image, a missing and a large image."""
    root = tmp_path / "src"
    shutil.copytree(small_world, root)
    table = Dataset.open(root).table
    paths = [root / p for p in table["image"]]
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) // 2])
    paths[5].write_bytes(b"this is not an image")
    paths[7].unlink()
    paths[9].write_bytes(_jpeg(300, 120))
    return root


def test_shards_follow_the_contract(broken_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    dataset, report = shard_dataset(broken_world, out, shard_size=250, max_side=64, workers=2)
    source = Dataset.open(broken_world).table
    assert report.read == len(source) == 600
    assert report.written == 597
    assert report.skipped == {"truncated image": 1, "not an image": 1, "missing file": 1}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["images"] == "shards"
    assert meta["shards"] == [f"shards/shard-{i:06d}.tar" for i in range(3)]
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["skipped"] == 3 and saved["written"] == 597
    table = dataset.table
    assert "country" in table.columns
    ref = table["image"].iloc[0]
    assert ref == "shards/shard-000000.tar#000000000"
    # Every sample has jpg + json members under its key; json matches the table.
    with tarfile.open(out / "shards/shard-000000.tar") as tar:
        names = tar.getnames()
        assert "000000000.jpg" in names and "000000000.json" in names
        assert "000000003.jpg" not in names  # the truncated one
        record = json.loads(tar.extractfile("000000001.json").read())
    row = table.iloc[1]
    assert record["photo_id"] == row["photo_id"]
    assert record["lat"] == row["lat"] and record["user_id"] == row["user_id"]
    assert record["split"] == row["split"]
    assert record["posted_at"].startswith(str(row["posted_at"].date()))
    # Images come back as JPEGs with the longer side capped.
    reader = ShardIndex(out)
    big = table[table["photo_id"] == source["photo_id"].iloc[9]]["image"].iloc[0]
    with Image.open(io.BytesIO(reader.read(big))) as im:
        assert max(im.size) == 64 and im.size == (64, 26)
    small = reader.read(table["image"].iloc[0])
    assert small == (broken_world / source["image"].iloc[0]).read_bytes()  # passed through


def test_shards_are_reproducible_and_resume(small_world: Path, tmp_path: Path) -> None:
    a, _ = shard_dataset(small_world, tmp_path / "a", shard_size=200, max_side=32)
    # Simulate an interruption after the first shard: checkpoint + first tar present.
    b_out = tmp_path / "b"
    shard_dataset(small_world, b_out, shard_size=200, max_side=32)
    first = (b_out / "shards/shard-000000.tar").stat().st_mtime_ns
    config = {"stage": "data.shard", "shard_size": 200, "max_side": 32, "quality": 90}
    state = {
        "signature": {**config, "source": Dataset.open(small_world).hash},
        "done": {"shards/shard-000000.tar": {"rows": list(range(200)), "skipped": []}},
    }
    (b_out / ".shard-state.json").write_text(json.dumps(state))
    (b_out / "shards/shard-000001.tar").unlink()
    b, _ = shard_dataset(small_world, b_out, shard_size=200, max_side=32)
    assert (b_out / "shards/shard-000000.tar").stat().st_mtime_ns == first  # not rewritten
    assert not (b_out / ".shard-state.json").exists()
    for name in a.meta["shards"]:
        assert (tmp_path / "a" / name).read_bytes() == (b_out / name).read_bytes()
    assert list(a.table["image"]) == list(b.table["image"])


def test_shard_rejects_same_dir_and_urls(small_world: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="differ"):
        shard_dataset(small_world, small_world)
    root = tmp_path / "urls"
    shutil.copytree(small_world, root)
    ds = Dataset.open(root)
    table = ds.table.copy()
    table["image"] = "http://127.0.0.1:9/x.jpg"
    Dataset.write(root, table, {}, images="urls")
    with pytest.raises(InputError, match="no usable image"):
        shard_dataset(root, tmp_path / "out")
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["skipped_by_reason"] == {"remote image": 600}


def test_decode_image_reasons() -> None:
    good = _jpeg(20, 10)
    assert decode_image(good).size == (20, 10)
    cases = {
        b"": "empty file",
        b"GIF89a garbage": "not an image",
        good[:60]: "truncated image",
    }
    for data, reason in cases.items():
        with pytest.raises(BadImageError) as info:
            decode_image(data)
        assert info.value.reason in (reason, "corrupt image")
    with pytest.raises(BadImageError) as info:
        decode_image(_jpeg(100, 100), max_pixels=5000)
    assert info.value.reason == "decompression bomb"
    data, size = encode_resized(_jpeg(100, 50), max_side=40)
    assert size == (40, 20) and data[:2] == b"\xff\xd8"
