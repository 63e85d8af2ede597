"""A tiny trained M1, its world and a flat index over the world's training photos."""

from __future__ import annotations

import io

import faiss
import numpy as np
import pytest
import torch
from PIL import Image, TiffImagePlugin

from train._world import build_mesh, build_world
from trigeo.runtime.options import InferenceOptions

torch.set_num_threads(1)
# faiss's OpenMP threads spin-wait: on a shared 2-core machine running two test workers
# they slow a small search a hundredfold. One thread (faiss only; torch is set above).
faiss.omp_set_num_threads(1)

R = TiffImagePlugin.IFDRational


def photo_with_gps(rgb: tuple[int, int, int], lat: float, lon: float, seed: int = 0) -> bytes:
    """A 32 px JPEG of one colour whose EXIF GPS says (lat, lon)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(rgb, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)

    def dms(value: float) -> tuple:
        millis = round(abs(value) * 3_600_000)  # whole milli-arcseconds: no 60.0 seconds
        degrees, rest = divmod(millis, 3_600_000)
        minutes, millis = divmod(rest, 60_000)
        return (R(degrees), R(minutes), R(millis, 1000))

    gps.update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)})
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def world_model(tmp_path_factory):
    """(model dir, dataset, index dir)."""
    from trigeo.retrieve.build import build_index
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    root = tmp_path_factory.mktemp("retrieve")
    dataset = build_world(root / "world")
    build_mesh(dataset, root / "mesh.npz")
    train_m1(dataset.root, root / "mesh.npz", root / "model", load_config("test"))
    build_index(
        root / "model",
        dataset.root,
        root / "index",
        options=InferenceOptions(num_workers=0, batch_size=16, progress=False, accelerator="cpu"),
    )
    return root / "model", dataset, root / "index"
