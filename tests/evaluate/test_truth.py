"""Selecting the truth photos: split, outdoor-only, and the errors when nothing is left."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.errors import InputError
from trigeo.evaluate.truth import Truth


def test_outdoor_only_restricts_the_truth(dataset):
    everything = Truth.from_dataset(dataset)
    outdoor = Truth.from_dataset(dataset, outdoor_only=True)
    assert len(outdoor) == int((everything.outdoor >= 0.5).sum())
    assert np.all(outdoor.outdoor >= 0.5)


def test_truth_selection_errors(dataset):
    with pytest.raises(InputError, match="split 'test' is empty"):
        Truth.from_dataset(dataset, split="test")
    table = dataset.table.assign(outdoor=np.nan)
    with pytest.raises(InputError, match="--outdoor-only needs the 'outdoor' column"):
        Truth.from_table(table, outdoor_only=True)


def test_a_country_column_wins_where_it_holds_an_iso_code():
    import pandas as pd

    # Paris, Tokyo, Sydney; the dataset says FR, "Japan" (not a code) and nothing.
    table = pd.DataFrame(
        {
            "photo_id": ["a", "b", "c"],
            "lat": [48.857, 35.68, -33.87],
            "lon": [2.352, 139.7, 151.2],
            "outdoor": [np.nan] * 3,
            "split": ["val"] * 3,
            "country": ["DE", "Japan", None],  # the dataset's label beats the geocoder's FR
        }
    )
    truth = Truth.from_table(table)
    assert truth.country.tolist() == ["DE", "JP", "AU"]
    assert truth.continent.tolist() == ["EU", "AS", "OC"]
    plain = Truth.from_table(table.drop(columns="country"))
    assert plain.country.tolist() == ["FR", "JP", "AU"]
