from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from trigeo.data.table import Dataset, TableWriter
from trigeo.errors import InputError


def _rows(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "photo_id": [str(i) for i in range(start, start + n)],
            "image": "x.jpg",
            "lat": 10.0,
            "lon": 20.0,
            "user_id": [f"u{i % 3}" for i in range(start, start + n)],
            "posted_at": pd.Timestamp("2010-05-01 12:00:00.1234567", tz="UTC"),
            "split": ["train", "val"] * (n // 2),
            "country": "FR",
        }
    )


def test_batches_make_one_dataset(tmp_path: Path) -> None:
    with TableWriter(tmp_path, [pa.field("country", pa.string())]) as writer:
        writer.write(_rows(0, 4))
        writer.write(_rows(4, 6))
        writer.write(_rows(10, 0))
        meta = writer.close({"config": {}}, images="folder")
    assert meta["counts"] == {"photos": 10, "users": 3, "splits": {"train": 5, "val": 5}}
    ds = Dataset.open(tmp_path)
    assert list(ds.table["photo_id"]) == [str(i) for i in range(10)]
    assert (ds.table["country"] == "FR").all()
    assert ds.meta["table_sha256"] == ds.hash
    # Nanoseconds are floored to the table's microseconds.
    assert ds.table["posted_at"].iloc[0] == pd.Timestamp("2010-05-01 12:00:00.123456", tz="UTC")


def test_bad_batch_and_abort_leave_nothing(tmp_path: Path) -> None:
    bad = _rows(0, 2)
    bad.loc[0, "lat"] = 123.0
    with TableWriter(tmp_path, [pa.field("country", pa.string())]) as writer:
        writer.write(_rows(10, 2))
        with pytest.raises(InputError, match="lat"):
            writer.write(bad)
    assert not (tmp_path / "table.parquet").exists()
    assert not list(tmp_path.glob(".table.parquet.*"))
    with TableWriter(tmp_path) as writer, pytest.raises(InputError, match="no rows"):
        writer.close({})
