"""`trigeo data csv`: generic tables, Im2GPS3k and YFCC4k (published layouts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.data._standard_sets import S2_HEADER, jpeg, s2_row, write_csv

from trigeo.data.csvimport import REPORT_FILE, import_csv, parse_times
from trigeo.data.table import Dataset
from trigeo.errors import InputError


def _report(out: Path) -> dict:
    return json.loads((out / REPORT_FILE).read_text())


def _where(report: dict, reason: str) -> list[str]:
    return [example["where"] for example in report["examples"][reason]]


def test_parse_times_rule() -> None:
    values = pa.array(
        [
            "2015-06-01T12:00:00+02:00",  # offset: converted to UTC
            "2015-06-01 12:00:00",  # no offset: taken as UTC
            "1433160000",  # unix seconds
            "1433160000000",  # unix milliseconds (>= 1e11)
            "1433160000.5",
            "",
            "yesterday",
        ]
    )
    micros, ok, empty = parse_times(values)
    stamps = pd.to_datetime(micros[ok], unit="us", utc=True)
    assert list(ok) == [True, True, True, True, True, False, False]
    assert list(empty) == [False] * 5 + [True, False]
    assert list(stamps) == [
        pd.Timestamp("2015-06-01T10:00:00Z"),
        pd.Timestamp("2015-06-01T12:00:00Z"),
        pd.Timestamp("2015-06-01T12:00:00Z"),
        pd.Timestamp("2015-06-01T12:00:00Z"),
        pd.Timestamp("2015-06-01T12:00:00.5Z"),
    ]


@pytest.fixture
def generic(tmp_path: Path) -> tuple[Path, Path]:
    """A generic CSV with common spellings, images with and without extensions."""
    images = tmp_path / "pics"
    (images / "sub").mkdir(parents=True)
    (images / "a.jpg").write_bytes(jpeg(1))
    (images / "sub" / "b.png").write_bytes(jpeg(2))  # JPEG bytes under .png: still an image
    (images / "c.jpeg").write_bytes(jpeg(3))
    (images / "text.jpg").write_bytes(b"not a photo at all")
    rows = [
        ["a", "48.85", "2.35", "a.jpg", "alice", "2015-06-01T12:00:00+02:00", "x1"],
        ["b", "40.71", "-74.0", "sub/b.png", "bob", "1433160000", "x2"],
        ["c", "-33.87", "151.2", "c", "", "", "x3"],  # no extension, no user, no time
        ["d", "abc", "1.0", "a.jpg", "u", "", ""],  # bad number
        ["e", "95.0", "1.0", "a.jpg", "u", "", ""],  # lat beyond +-90
        ["f", "10.0", "181", "a.jpg", "u", "", ""],  # lon beyond +-180
        ["g", "10.0", "10.0", "gone.jpg", "u", "", ""],  # missing image
        ["a", "10.0", "10.0", "a.jpg", "u", "", ""],  # duplicate id
        ["h", "10.0", "10.0", "text.jpg", "u", "", ""],  # non-image bytes
        ["i", "10.0", "10.0", "a.jpg", "u", "June", ""],  # bad time
        ["j", "", "10.0", "a.jpg", "u", "", ""],  # missing coordinate
    ]
    rows = rows[:3] + [[f"k{i}", "1.5", "2.5", "a.jpg", "kim", "", ""] for i in range(6)] + rows[3:]
    table = write_csv(
        tmp_path / "photos.csv",
        ["photo_id", "Latitude", "lng", "path", "owner", "timestamp", "note"],
        rows,
    )
    return table, images


def test_generic_every_row_exact_and_every_bad_row_reported(
    generic: tuple[Path, Path], tmp_path: Path
) -> None:
    table, images = generic
    seen: list[dict] = []
    out = tmp_path / "ds"
    meta, report = import_csv(
        table, out, images=images, check_images=True, on_columns=lambda c, h: seen.append(c)
    )
    assert seen[0]["id"] == "photo_id" and seen[0]["lat"] == "Latitude"
    assert seen[0]["lon"] == "lng" and seen[0]["image"] == "path"
    assert seen[0]["user"] == "owner" and seen[0]["time"] == "timestamp"
    assert report.notes["columns"]["lat"] == ["Latitude", "auto"]
    df = Dataset.open(out).table.set_index("photo_id")
    assert sorted(df.index) == ["a", "b", "c"] + [f"k{i}" for i in range(6)]
    assert df.loc["a", "image"] == "images/a.jpg"
    assert df.loc["b", "image"] == "images/sub/b.png"
    assert df.loc["c", "image"] == "images/c.jpeg"
    assert (df.loc["a", "lat"], df.loc["a", "lon"]) == (48.85, 2.35)
    assert (df.loc["c", "lat"], df.loc["c", "lon"]) == (-33.87, 151.2)
    assert df.loc["a", "user_id"] == "alice"
    assert df.loc["c", "user_id"] == "photo:c"  # no user: its own user
    assert df.loc["a", "posted_at"] == pd.Timestamp("2015-06-01T10:00:00Z")
    assert df.loc["b", "posted_at"] == pd.Timestamp("2015-06-01T12:00:00Z")
    assert df.loc["c", "posted_at"] == pd.Timestamp(0, tz="UTC")
    assert list(df.loc[["a", "c"], "time_source"]) == ["column", "none"]
    assert df["taken_at"].isna().all()  # a generic time column is the posting time
    assert df.loc["b", "note"] == "x2"
    assert set(df["split"]) <= {"train", "heads", "val"}
    assert (out / "images").resolve() == images.resolve()
    assert (out / "images" / "a.jpg").read_bytes() == jpeg(1)
    rep = _report(out)
    assert rep["skipped_by_reason"] == {
        "bad number": 1,
        "latitude beyond ±90": 1,
        "longitude beyond ±180": 1,
        "missing image": 1,
        "duplicate id": 1,
        "not an image": 1,
        "bad time": 1,
        "missing coordinates": 1,
    }
    assert _where(rep, "bad number") == ["row 10"]
    assert "Latitude 'abc'" in rep["examples"]["bad number"][0]["detail"]
    assert _where(rep, "latitude beyond ±90") == ["row 11"]
    assert _where(rep, "longitude beyond ±180") == ["row 12"]
    assert _where(rep, "missing image") == ["row 13"]
    assert "gone.jpg" in rep["examples"]["missing image"][0]["detail"]
    assert _where(rep, "duplicate id") == ["row 14"]
    assert _where(rep, "not an image") == ["row 15"]
    assert "text.jpg" in rep["examples"]["not an image"][0]["detail"]
    assert _where(rep, "bad time") == ["row 16"]
    assert "'June'" in rep["examples"]["bad time"][0]["detail"]
    assert rep["read"] == 17 and rep["written"] == 9
    assert meta["counts"]["photos"] == 9 and meta["source"] == "generic"


def test_split_column_and_split_test(generic: tuple[Path, Path], tmp_path: Path) -> None:
    table, images = generic
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    df["fold"] = ["train", "val"] * (len(df) // 2) + ["train"] * (len(df) % 2)
    with_split = tmp_path / "split.csv"
    df.to_csv(with_split, index=False)
    out = tmp_path / "a"
    import_csv(with_split, out, images=images, columns={"split": "fold"})
    got = Dataset.open(out).table.set_index("photo_id")["split"]
    want = df.drop_duplicates("photo_id").set_index("photo_id")["fold"]
    assert all(got[i] == want[i] for i in got.index)
    out = tmp_path / "b"
    import_csv(table, out, images=images, split="test")
    assert set(Dataset.open(out).table["split"]) == {"test"}
    with pytest.raises(InputError, match="not both"):
        import_csv(
            with_split, tmp_path / "c", images=images, split="test", columns={"split": "fold"}
        )


def test_parquet_input_and_named_columns(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    for i in range(4):
        (images / f"{100 + i}.jpg").write_bytes(jpeg(i))
    frame = pd.DataFrame(
        {
            "pid": [100, 101, 102, 103],
            "y": [1.0, 2.0, 3.0, 4.0],
            "x": [5.0, 6.0, 7.0, 8.0],
            "when": pd.to_datetime(["2016-01-01T00:00:00"] * 4).tz_localize("UTC"),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    out = tmp_path / "ds"
    import_csv(
        path,
        out,
        images=images,
        columns={"id": "pid", "lat": "y", "lon": "x", "time": "when"},
    )
    df = Dataset.open(out).table.sort_values("photo_id")
    assert list(df["photo_id"]) == ["100", "101", "102", "103"]  # images found by id
    assert list(df["image"]) == [f"images/{100 + i}.jpg" for i in range(4)]
    assert list(df["lat"]) == [1.0, 2.0, 3.0, 4.0]
    assert (df["posted_at"] == pd.Timestamp("2016-01-01T00:00:00Z")).all()


def test_most_rows_failing_stops_with_an_error(tmp_path: Path) -> None:
    rows = [[f"p{i}", 10, 10, f"p{i}.jpg"] for i in range(5)]
    table = write_csv(tmp_path / "t.csv", ["id", "lat", "lon", "image"], rows)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "p0.jpg").write_bytes(jpeg(0))
    with pytest.raises(InputError, match=r"only 1 of 5 rows .*missing image: 4"):
        import_csv(table, tmp_path / "ds", images=tmp_path / "img")
    assert _report(tmp_path / "ds")["skipped_by_reason"] == {"missing image": 4}
    assert not (tmp_path / "ds" / "table.parquet").exists()
    # Asked for, rows without images are kept (and counted).
    _, report = import_csv(
        table, tmp_path / "kept", images=tmp_path / "img", allow_missing_images=True
    )
    assert report.written == 5 and report.notes["missing_images_kept"] == 4


def test_unknown_column_and_format_are_named(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", ["name", "y"], [["a", 1]])
    with pytest.raises(InputError, match="no id column found"):
        import_csv(table, tmp_path / "o")
    with pytest.raises(InputError, match="--lat-col 'LATX' is not a column"):
        import_csv(table, tmp_path / "o", columns={"lat": "LATX"})
    with pytest.raises(InputError, match="im2gps3k format needs a column 'IMG_ID'"):
        import_csv(table, tmp_path / "o", fmt="im2gps3k")


def test_interrupted_import_resumes_to_the_same_table(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    (images / "one.jpg").write_bytes(jpeg(0))
    rows = [
        [f"p{i:03d}", (i % 170) - 85, (i % 350) - 175, "one.jpg", f"u{i % 7}"] for i in range(300)
    ]
    rows[5][1] = "oops"
    table = write_csv(tmp_path / "t.csv", ["id", "lat", "lon", "image", "user"], rows)
    whole = tmp_path / "whole"
    import_csv(table, whole, images=images, batch_rows=40, row_group_rows=40)

    calls = {"n": 0}

    def stop_after_three(n: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        import_csv(
            table, out, images=images, batch_rows=40, row_group_rows=40, progress=stop_after_three
        )
    assert (out / ".csv-state.json").exists()
    _, report = import_csv(table, out, images=images, batch_rows=40, row_group_rows=40)
    assert report.notes["resumed_after_rows"] == 120
    a = Dataset.open(whole).table
    b = Dataset.open(out).table
    pd.testing.assert_frame_equal(a, b)
    assert _report(out)["skipped_by_reason"] == {"bad number": 1}
    assert not (out / ".csv-state.json").exists()


def test_im2gps3k_published_layout(tmp_path: Path) -> None:
    images = tmp_path / "im2gps3ktest"
    images.mkdir()
    ids = [
        "1000269685_e60e9cdfb4_1125_78841376@N00.jpg",
        "1005977048_5ccf8b05d3_1201_91728102@N00.jpg",
        "101220879_0a1be45b79_33_24311489@N00.jpg",
        "103385471_f54982a801_29_73293249@N00.jpg",
    ]
    for i, name in enumerate(ids):
        (images / name).write_bytes(jpeg(i))
    rows = [
        s2_row(ids[0], "78841376@N00", 32.325436, -64.764404, 0.27424151079564574),
        s2_row(ids[1], "91728102@N00", 29.976052, 122.390356, 0.003867831311822556),
        s2_row(ids[2], "24311489@N00", 42.249915, -87.82711, 7.1890073538305455e-06),
        s2_row(ids[3], "73293249@N00", 46.006873, 7.279987, 0.9),
        s2_row("9_missing_1_1@N00.jpg", "1@N00", 1.0, 1.0),
    ]
    table = write_csv(tmp_path / "im2gps3k_places365.csv", S2_HEADER, rows)
    out = tmp_path / "im2gps3k"
    import_csv(table, out, images=images, fmt="im2gps3k", split="test")
    df = Dataset.open(out).table.set_index("photo_id")
    assert list(df.index) == ids
    assert df.loc[ids[0], "user_id"] == "78841376@N00"
    assert (df.loc[ids[1], "lat"], df.loc[ids[1], "lon"]) == (29.976052, 122.390356)
    assert df.loc[ids[0], "outdoor"] == pytest.approx(1 - 0.27424151079564574, abs=1e-15)
    assert df.loc[ids[3], "outdoor"] == pytest.approx(0.1)
    assert df.loc[ids[0], "S365_Label"] == 353
    assert df.loc[ids[2], "Prob_indoor"] == 7.1890073538305455e-06
    assert set(df["split"]) == {"test"}
    assert (df["time_source"] == "none").all()
    rep = _report(out)
    assert rep["skipped_by_reason"] == {"missing image": 1}
    assert _where(rep, "missing image") == ["row 5"]


def test_yfcc4k_rows_beyond_the_image_set_are_expected(tmp_path: Path) -> None:
    # The published metadata lists YFCC25600; the YFCC4k archive is flat and smaller.
    images = tmp_path / "yfcc4k"
    images.mkdir()
    for i in range(3):
        (images / f"{5000 + i}.jpg").write_bytes(jpeg(i))
    rows = [s2_row(f"ab/cd/{5000 + i}.jpg", f"{i}@N00", 10.0 + i, 20.0 + i) for i in range(9)]
    table = write_csv(tmp_path / "yfcc25600_places365.csv", S2_HEADER, rows)
    out = tmp_path / "yfcc4k-ds"
    _, report = import_csv(table, out, images=images, fmt="yfcc4k", split="test")
    df = Dataset.open(out).table
    assert list(df["photo_id"]) == [f"ab/cd/{5000 + i}.jpg" for i in range(3)]
    assert list(df["image"]) == [f"images/{5000 + i}.jpg" for i in range(3)]
    assert np.allclose(df["lat"], [10.0, 11.0, 12.0])
    assert report.skipped == {"not in the image set": 6}
