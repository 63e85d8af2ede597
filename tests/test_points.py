"""trigeo.points: every bad input names the file, row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trigeo.errors import InputError
from trigeo.points import (
    POINTS_SOURCE_KEYS,
    check_points_source,
    dataset_table_path,
    read_points,
    read_points_with_source,
)


def write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_case_insensitive_columns(tmp_path: Path) -> None:
    lat, lon = read_points(write(tmp_path, "ID,LAT,Longitude\na,1.5,-2\nb,3,4\n"))
    np.testing.assert_array_equal(lat, [1.5, 3.0])
    np.testing.assert_array_equal(lon, [-2.0, 4.0])


def test_named_columns_and_parquet(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"y": [1.0, 2.0], "x": [3.0, 4.0]}), path)
    lat, lon = read_points(path, lat_col="Y", lon_col="x")
    np.testing.assert_array_equal(lat, [1.0, 2.0])
    np.testing.assert_array_equal(lon, [3.0, 4.0])


@pytest.mark.parametrize(
    ("text", "row", "column", "words"),
    [
        ("lat,lon\n1,2\nnan,3\n", 2, "lat", "missing value"),
        ("lat,lon\n1,2\ninf,3\n", 2, "lat", "not finite"),
        ("lat,lon\n1,2\n3,4\n5,-inf\n", 3, "lon", "not finite"),
        ("lat,lon\n1,2\n-90.5,3\n", 2, "lat", "outside [-90, 90]"),
        ("lat,lon\n1,180.01\n", 1, "lon", "--wrap-longitude"),
        ("lat,lon\n1,2\n2,x7\n", 2, "lon", "'x7' is not a number"),
    ],
)
def test_bad_values_name_row_and_column(tmp_path, text, row, column, words) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_points(path)
    err = info.value
    assert (err.row, err.column) == (row, column)
    assert str(path) in str(err) and f"row {row}" in str(err) and words in str(err)


def test_parquet_null_names_row(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"lat": [1.0, None, 3.0], "lon": [1.0, 2.0, 3.0]}), path)
    with pytest.raises(InputError) as info:
        read_points(path)
    assert (info.value.row, info.value.column) == (2, "lat")


def test_wrap_longitude(tmp_path: Path) -> None:
    _, lon = read_points(write(tmp_path, "lat,lon\n1,190\n2,-200\n"), wrap_longitude=True)
    np.testing.assert_allclose(lon, [-170.0, 160.0])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("lat,lon\n", "no data rows"),
        ("latitude,foo\n1,2\n", "no longitude column"),
        ("foo,lon\n1,2\n", "no latitude column"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        read_points(write(tmp_path, text))


def test_missing_named_column_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "lat,lon\n1,2\n")
    with pytest.raises(InputError) as info:
        read_points(path, lat_col="breite")
    assert info.value.column == "breite"
    with pytest.raises(InputError, match="does not exist"):
        read_points(tmp_path / "nope.csv")


# --- where the points came from ---------------------------------------------------------


def write_dataset(root: Path, splits: list[str]) -> Path:
    """A minimal trigeo dataset directory (table.parquet + dataset.json) with these splits."""
    from trigeo.data.table import Dataset

    n = len(splits)
    frame = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "image": [f"images/p{i}.jpg" for i in range(n)],
            "lat": np.linspace(-40.0, 40.0, n),
            "lon": np.linspace(-120.0, 120.0, n),
            "user_id": ["u1"] * n,
            "posted_at": pd.Timestamp("2010-06-01", tz="UTC"),
            "split": splits,
        }
    )
    Dataset.write(root, frame, provenance={})
    return root


SPLITS = ["train", "val", "train", "heads", "val", "train"]


def test_source_of_a_dataset_directory_split(tmp_path: Path) -> None:
    from trigeo.data.table import Dataset

    root = write_dataset(tmp_path / "world", SPLITS)
    lat, lon, source = read_points_with_source(root, split="train")
    np.testing.assert_array_equal(lat, np.linspace(-40.0, 40.0, 6)[[0, 2, 5]])
    np.testing.assert_array_equal(lon, np.linspace(-120.0, 120.0, 6)[[0, 2, 5]])
    assert source == {
        "path": str(root),
        "dataset_sha256": Dataset.open(root).hash,
        "split": "train",
        "splits_used": ["train"],
    }
    assert tuple(source) == POINTS_SOURCE_KEYS


def test_source_of_all_rows_lists_every_split(tmp_path: Path) -> None:
    from trigeo.data.table import Dataset

    root = write_dataset(tmp_path / "world", SPLITS)
    table = root / "table.parquet"
    lat, _, source = read_points_with_source(table)
    assert lat.size == 6
    assert source == {
        "path": str(table),
        "dataset_sha256": Dataset.open(root).hash,
        "split": None,
        "splits_used": ["heads", "train", "val"],
    }


def test_source_of_plain_files(tmp_path: Path) -> None:
    plain = write(tmp_path, "lat,lon\n1,2\n3,4\n")
    assert read_points_with_source(plain)[2] == {
        "path": str(plain),
        "dataset_sha256": None,
        "split": None,
        "splits_used": None,
    }
    with_split = write(tmp_path, "lat,lon,split\n1,2,val\n3,4,train\n5,6,train\n", "s.csv")
    lat, _, source = read_points_with_source(with_split, split="train")
    np.testing.assert_array_equal(lat, [3.0, 5.0])
    assert source == {
        "path": str(with_split),
        "dataset_sha256": None,
        "split": "train",
        "splits_used": ["train"],
    }
    # A table.parquet with no dataset.json beside it is just a Parquet file.
    lone = tmp_path / "lone" / "table.parquet"
    lone.parent.mkdir()
    pq.write_table(pa.table({"lat": [1.0], "lon": [2.0], "split": ["val"]}), lone)
    assert read_points_with_source(lone)[2] == {
        "path": str(lone),
        "dataset_sha256": None,
        "split": None,
        "splits_used": ["val"],
    }


def test_dataset_table_path(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "world", SPLITS)
    assert dataset_table_path(root) == root / "table.parquet"
    assert dataset_table_path(root / "table.parquet") == root / "table.parquet"
    assert dataset_table_path(write(tmp_path, "lat,lon\n1,2\n")) is None
    lat, _ = read_points(root, split="val")  # read_points takes a dataset directory too
    assert lat.size == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a trigeo dataset directory"):
        dataset_table_path(tmp_path / "empty")
    with pytest.raises(InputError, match="not a trigeo dataset directory"):
        read_points(tmp_path / "empty")


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"path": "p"}, "keys"),
        ({"path": "p", "dataset_sha256": None, "split": None, "splits_used": None, "x": 1}, "keys"),
        ({"path": 3, "dataset_sha256": None, "split": None, "splits_used": None}, "path"),
        ({"path": "p", "dataset_sha256": 5, "split": None, "splits_used": None}, "dataset_sha256"),
        ({"path": "p", "dataset_sha256": None, "split": 1, "splits_used": None}, "split"),
        ({"path": "p", "dataset_sha256": None, "split": None, "splits_used": "t"}, "splits_used"),
        ({"path": "p", "dataset_sha256": None, "split": None, "splits_used": ["v", "t"]}, "sorted"),
        ("train", "dict"),
    ],
)
def test_check_points_source_rejects_bad_records(record, words: str) -> None:
    with pytest.raises(InputError, match=words):
        check_points_source(record)


def test_check_points_source_orders_keys() -> None:
    record = {"splits_used": ["train"], "split": "train", "dataset_sha256": None, "path": "p"}
    checked = check_points_source(record)
    assert tuple(checked) == POINTS_SOURCE_KEYS and checked == record
    assert checked is not record and checked["splits_used"] is not record["splits_used"]
