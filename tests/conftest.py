"""Shared test configuration: tests never touch ../shared or the network."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# rich sizes its output to the terminal; tests read messages, so give them a wide one
# (xdist's long temporary paths otherwise wrap mid-sentence on an 80-column terminal).
os.environ["COLUMNS"] = "200"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
