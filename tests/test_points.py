"""trigeo.points: every bad input names the file, row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trigeo.errors import InputError
from trigeo.points import read_points


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
