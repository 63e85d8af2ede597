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
