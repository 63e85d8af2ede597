"""MP-16 msgpack shards read in place: import, reports, loader, conversion to tars."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pandas as pd
import pytest
from tests.data._standard_sets import S2_HEADER, jpeg, s2_row, write_csv, write_msgpack_shard

from trigeo.data.csvimport import REPORT_FILE, import_csv
from trigeo.data.images import ShardIndex, split_image_ref
from trigeo.data.msgpack_shards import list_shards, scan_shard
from trigeo.data.stores import StoreReader
from trigeo.data.table import Dataset

IDS = [f"{i:02x}/{(i * 7) % 256:02x}/{2389409380 + i}.jpg" for i in range(10)]


@pytest.fixture
def mp16(tmp_path: Path) -> tuple[Path, Path]:
    """Shards and metadata in the published layout, with one of each problem."""
    shards = tmp_path / "mp16"
    first = [{"image": jpeg(i), "id": IDS[i]} for i in range(5)]
    first.append({"image": b"<html>403 Forbidden</html>", "id": IDS[5]})  # non-image bytes
    first.append({"id": "ff/ff/1.jpg"})  # no image: a bad record
    write_msgpack_shard(shards / "shard_0.msg", first)
    second = [{"image": jpeg(i), "id": IDS[i]} for i in (6, 7)]
    second.append({"image": jpeg(99), "id": IDS[0]})  # the same id again
    second.append({"image": jpeg(8), "id": "ee/ee/4242.jpg"})  # no metadata row
    write_msgpack_shard(shards / "shard_1.msg", second)
    # msgpack < 1.0 wrote raw strings only; such shards are still read.
    old = msgpack.packb({"image": jpeg(8), "id": IDS[8]}, use_bin_type=False)
    cut = msgpack.packb({"image": jpeg(9), "id": IDS[9]})
    (shards / "shard_2.msg").write_bytes(old + cut[: len(cut) // 2])  # truncated record
    rows = [s2_row(IDS[i], f"{i}@N0{i % 3}", 10.0 + i, -20.0 - i, 0.1 * i) for i in range(10)]
    rows.append(s2_row("aa/aa/777.jpg", "1@N00", 5.0, 5.0))  # no record
    rows.append(s2_row("aa/aa/778.jpg", "1@N00", "n/a", 5.0))  # bad number
    rows.append(s2_row("aa/aa/779.jpg", "1@N00", -90.5, 5.0))  # lat beyond +-90
    rows.append(s2_row(IDS[1], "1@N00", 1.0, 1.0))  # duplicate id
    table = write_csv(tmp_path / "mp16_places365.csv", S2_HEADER, rows)
    return table, shards


def test_shards_are_listed_by_number(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        write_msgpack_shard(tmp_path / f"shard_{n}.msg", [])
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_shards(tmp_path)] == ["shard_1.msg", "shard_2.msg", "shard_10.msg"]


def test_scan_reports_truncation_and_bad_records(mp16: tuple[Path, Path]) -> None:
    _, shards = mp16
    scan = scan_shard(shards / "shard_2.msg")
    assert scan["ids"] == [IDS[8]]
    assert scan["issues"][0][0] == "truncated msgpack record"
    scan = scan_shard(shards / "shard_0.msg")
    assert scan["problems"] == [None] * 5 + ["not an image"]
    assert [issue[0] for issue in scan["issues"]] == ["bad msgpack record"]


def test_mp16_import_every_row_exact_and_every_problem_reported(
    mp16: tuple[Path, Path], tmp_path: Path
) -> None:
    table, shards = mp16
    out = tmp_path / "ds"
    meta, _ = import_csv(table, out, images=shards, fmt="mp16", check_images=True)
    df = Dataset.open(out).table.set_index("photo_id")
    good = [0, 1, 2, 3, 4, 6, 7, 8]
    assert list(df.index) == [IDS[i] for i in good]
    for i in good:
        row = df.loc[IDS[i]]
        assert (row["lat"], row["lon"]) == (10.0 + i, -20.0 - i)
        assert row["user_id"] == f"{i}@N0{i % 3}"
        assert row["outdoor"] == pytest.approx(1 - 0.1 * i)
        path, key = split_image_ref(row["image"])
        assert path == f"images/shard_{0 if i < 5 else 1 if i < 8 else 2}.msg"
        # The reference leads to this photo's bytes, read in place from the shard.
        assert StoreReader(out).read(path, key) == jpeg(i)
    assert set(df["split"]) <= {"train", "heads", "val"}
    assert meta["images"] == "msgpack"
    rep = json.loads((out / REPORT_FILE).read_text())
    assert rep["skipped_by_reason"] == {
        "truncated msgpack record": 1,
        "bad msgpack record": 1,
        "duplicate image id": 1,
        "not an image": 1,
        "missing image": 2,  # IDS[9] was in the truncated record; 777 has none
        "bad number": 1,
        "latitude beyond ±90": 1,
        "duplicate id": 1,
        "record without metadata": 1,
    }
    ex = rep["examples"]
    assert ex["truncated msgpack record"][0]["where"].startswith("shard_2.msg byte ")
    assert ex["bad msgpack record"][0]["where"].startswith("shard_0.msg byte ")
    assert ex["duplicate image id"][0]["where"].startswith("shard_1.msg byte ")
    assert ex["not an image"][0]["where"] == "row 6"
    assert [e["where"] for e in ex["missing image"]] == ["row 10", "row 11"]
    assert ex["bad number"][0]["where"] == "row 12"
    assert ex["latitude beyond ±90"][0]["where"] == "row 13"
    assert ex["duplicate id"][0]["where"] == "row 14"
    assert "ee/ee/4242.jpg" in ex["record without metadata"][0]["detail"]
    assert rep["image_store"]["records"] == 12 and rep["image_store"]["shards"] == 3


def test_mp16_images_feed_the_loader_and_convert_to_tars(
    mp16: tuple[Path, Path], tmp_path: Path
) -> None:
    from trigeo.data.loading import ImageReader
    from trigeo.data.shard import shard_dataset

    table, shards = mp16
    out = tmp_path / "ds"
    import_csv(table, out, images=shards, fmt="mp16", check_images=True)
    df = Dataset.open(out).table
    reader = ImageReader(out, df["image"].tolist())
    first = df.iloc[0]
    assert reader.read(first["image"]) == jpeg(IDS.index(first["photo_id"]))
    assert reader.open(first["image"]).size == (24, 24)
    assert ShardIndex(out).read(first["image"]) == reader.read(first["image"])
    tars, report = shard_dataset(out, tmp_path / "tars", shard_size=4, max_side=None)
    assert report.n_skipped == 0
    converted = tars.table.set_index("photo_id")
    assert sorted(converted.index) == sorted(df["photo_id"])
    for photo_id, image in converted["image"].items():
        assert ShardIndex(tars.root).read(image) == jpeg(IDS.index(photo_id))


def test_mp16_scan_is_cached_for_a_rerun(mp16: tuple[Path, Path], tmp_path: Path) -> None:
    table, shards = mp16
    out = tmp_path / "ds"
    import_csv(table, out, images=shards, fmt="mp16")
    cached = sorted(p.name for p in (out / ".msgpack-scan").iterdir())
    assert cached == ["shard_0.msg.parquet", "shard_1.msg.parquet", "shard_2.msg.parquet"]
    first = Dataset.open(out).table
    import_csv(table, out, images=shards, fmt="mp16")
    pd.testing.assert_frame_equal(first, Dataset.open(out).table)
