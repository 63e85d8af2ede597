"""``read_points(split=...)`` keeps one split of a dataset table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trigeo.errors import InputError
from trigeo.points import read_points


def test_split_keeps_only_matching_rows(tmp_path):
    path = tmp_path / "table.parquet"
    pd.DataFrame(
        {"lat": [1.0, 2.0, 3.0], "lon": [4.0, 5.0, 6.0], "split": ["train", "val", "train"]}
    ).to_parquet(path)
    lat, lon = read_points(path, split="train")
    np.testing.assert_array_equal(lat, [1.0, 3.0])
    np.testing.assert_array_equal(lon, [4.0, 6.0])


def test_split_without_split_column_names_the_column(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("lat,lon\n1,2\n")
    with pytest.raises(InputError, match="needs a 'split' column"):
        read_points(path, split="train")


def test_empty_split_lists_present_splits(tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("lat,lon,split\n1,2,train\n3,4,val\n")
    with pytest.raises(InputError, match=r"splits present are \['train', 'val'\]"):
        read_points(path, split="heads")
