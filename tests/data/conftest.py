"""Small synthetic worlds shared by the data tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigeo.data.synth import make_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world") / "w"
    make_world(root, photos=600, users=60, image_size=32, seed=11)
    return root
