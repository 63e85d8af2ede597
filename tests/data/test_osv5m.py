"""OpenStreetView-5M: test.csv and images/test/<NN>.zip (read in place) or <NN>/<id>.jpg."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests.data._standard_sets import OSV5M_HEADER, jpeg, osv5m_row, write_csv, write_zip

from trigeo.data.csvimport import REPORT_FILE, import_csv
from trigeo.data.images import ShardIndex
from trigeo.data.table import Dataset

# Mapillary ids and creator ids as OSV-5M prints them; captured_at in unix milliseconds.
IDS = ["3859149887465501", "511206886917385", "298405928560137", "1132364630894311"]


@pytest.fixture
def osv5m(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "osv5m"
    images = root / "images" / "test"
    write_zip(
        images / "00.zip",
        {
            f"00/{IDS[0]}.jpg": jpeg(0),
            f"00/{IDS[1]}.jpg": jpeg(1),
            "00/777.jpg": b"\x00\x01 not a jpeg",  # non-image bytes
        },
    )
    (images / "01").mkdir(parents=True)  # an archive already extracted
    (images / "01" / f"{IDS[2]}.jpg").write_bytes(jpeg(2))
    (images / "01" / f"{IDS[3]}.jpg").write_bytes(jpeg(3))
    rows = [
        osv5m_row(IDS[0], -43.804769384023, -176.61409250805, 1433160000000, "111336221091714.0"),
        osv5m_row(IDS[1], 48.8566, 2.3522, "1433163600000", "2001"),
        osv5m_row(IDS[2], 40.7128, -74.006, "2015-06-01T12:00:00Z", "2001"),
        osv5m_row(IDS[3], 35.6762, 139.6503, 1433160000000, "3003"),
        osv5m_row("777", 10.0, 10.0, 1433160000000, "1"),
        osv5m_row("888", 10.0, 10.0, 1433160000000, "1"),  # no image anywhere
        osv5m_row("999", "ten", 10.0, 1433160000000, "1"),  # bad number
    ]
    table = write_csv(root / "test.csv", OSV5M_HEADER, rows)
    return table, images


def test_osv5m_every_row_exact_and_extras_kept(osv5m: tuple[Path, Path], tmp_path: Path) -> None:
    table, images = osv5m
    out = tmp_path / "ds"
    import_csv(table, out, images=images, fmt="osv5m", split="test", check_images=True)
    df = Dataset.open(out).table.set_index("photo_id")
    assert list(df.index) == IDS
    assert df.loc[IDS[0], "image"] == f"images/00.zip#00/{IDS[0]}.jpg"
    assert df.loc[IDS[2], "image"] == f"images/01/{IDS[2]}.jpg"
    assert (df.loc[IDS[0], "lat"], df.loc[IDS[0], "lon"]) == (-43.804769384023, -176.61409250805)
    assert df.loc[IDS[0], "user_id"] == "111336221091714"  # the float's ".0" dropped
    assert df.loc[IDS[1], "user_id"] == "2001"
    assert df.loc[IDS[0], "posted_at"] == pd.Timestamp("2015-06-01T12:00:00Z")
    assert df.loc[IDS[1], "posted_at"] == pd.Timestamp("2015-06-01T13:00:00Z")
    assert df.loc[IDS[2], "taken_at"] == pd.Timestamp("2015-06-01T12:00:00Z")  # capture time
    assert df.loc[IDS[0], "country"] == "FR"
    assert df.loc[IDS[0], "sub-region"] == "Paris"
    assert df.loc[IDS[0], "land_cover"] == 5.0 and df.loc[IDS[0], "drive_side"] == 0.0
    assert df.loc[IDS[0], "climate"] == 14.0 and df.loc[IDS[0], "dist_sea"] == 0.125
    assert df.loc[IDS[0], "quadtree_10_1000"] == 17.0
    assert df.loc[IDS[0], "creator_username"] == "someone"
    assert set(df["split"]) == {"test"}
    reader = ShardIndex(out)
    for i, photo_id in enumerate(IDS):
        assert reader.read(df.loc[photo_id, "image"]) == jpeg(i)
    rep = json.loads((out / REPORT_FILE).read_text())
    assert rep["skipped_by_reason"] == {"not an image": 1, "missing image": 1, "bad number": 1}
    example = rep["examples"]["not an image"][0]
    assert example["where"] == "row 5" and example["detail"].startswith("00.zip#00/777.jpg: ")
    assert rep["examples"]["missing image"][0]["where"] == "row 6"
    assert rep["examples"]["bad number"][0]["where"] == "row 7"


def test_osv5m_zip_members_feed_the_loader(osv5m: tuple[Path, Path], tmp_path: Path) -> None:
    from trigeo.data.loading import ImageReader

    table, images = osv5m
    out = tmp_path / "ds"
    import_csv(table, out, images=images, fmt="osv5m", split="test", check_images=True)
    df = Dataset.open(out).table
    reader = ImageReader(out, df["image"].tolist())
    assert [reader.open(image).size for image in df["image"]] == [(24, 24)] * 4
