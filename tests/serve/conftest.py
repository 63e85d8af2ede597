"""The tiny trained M1, its world and index (shared with the retrieval tests), and photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from retrieve.conftest import photo_with_gps, world_model

__all__ = ["photo_with_gps", "png_bytes", "world_model"]


def png_bytes(size: tuple[int, int] = (32, 32), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def engine(world_model):
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.serve.engine import Engine, load_backend

    model_dir, _, index_dir = world_model
    return Engine(load_backend(model_dir), index=RetrievalIndex.load(index_dir))
