"""A tiny labeled world for M1 tests: a few cities, each with its own image colour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from trigeo.data.table import Dataset
from trigeo.provenance import make_provenance

# (lat, lon, RGB): far-apart cities, so every coarse threshold separates them.
CITIES = [
    (48.85, 2.35, (220, 40, 40)),  # Paris
    (40.71, -74.0, (40, 200, 40)),  # New York
    (35.68, 139.7, (40, 40, 220)),  # Tokyo
    (-33.87, 151.2, (220, 220, 40)),  # Sydney
]


def jpeg_bytes(rgb: tuple[int, int, int], rng: np.random.Generator, size: int = 32) -> bytes:
    """A noisy JPEG of one dominant colour with a random darker square."""
    array = np.empty((size, size, 3), dtype=np.float64)
    array[:] = rgb
    array += rng.normal(0, 25, array.shape)
    x, y = rng.integers(0, size // 2, 2)
    array[y : y + size // 3, x : x + size // 3] *= 0.6
    buffer = io.BytesIO()
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def world_table(per_city: int = 40, seed: int = 0) -> tuple[pd.DataFrame, list[tuple]]:
    """Rows of the world (image column left empty) and the colour of each row."""
    rng = np.random.default_rng(seed)
    rows, colours = [], []
    for c, (lat, lon, rgb) in enumerate(CITIES):
        for i in range(per_city):
            split = ("train", "train", "train", "heads", "val")[i % 5]
            rows.append(
                {
                    "photo_id": f"p{c}-{i:03d}",
                    "image": "",
                    "lat": lat + rng.normal(0, 0.3),
                    "lon": lon + rng.normal(0, 0.3),
                    "user_id": f"u{c}-{i % 4}",
                    "posted_at": pd.Timestamp("2015-06-01", tz="UTC") + pd.Timedelta(hours=i),
                    "split": split,
                }
            )
            colours.append(rgb)
    return pd.DataFrame(rows), colours


def build_world(root: Path, per_city: int = 40, seed: int = 0, size: int = 32) -> Dataset:
    """Write the world as a folder dataset under ``root`` (JPEGs in images/)."""
    rng = np.random.default_rng(seed + 1)
    table, colours = world_table(per_city, seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for photo_id, rgb in zip(table["photo_id"], colours, strict=True):
        relative = f"images/{photo_id}.jpg"
        (root / relative).write_bytes(jpeg_bytes(rgb, rng, size))
        images.append(relative)
    table["image"] = images
    return Dataset.write(root, table, make_provenance({"fixture": "m1-world"}), images="folder")


def build_shard_world(
    root: Path, per_city: int = 40, seed: int = 0, shard_size: int = 50
) -> Dataset:
    """The same world stored as webdataset shards (``trigeo data shard``'s layout)."""
    import json

    import webdataset as wds

    rng = np.random.default_rng(seed + 1)
    table, colours = world_table(per_city, seed)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    images, shards = [], []
    writer = None
    for i, (row, rgb) in enumerate(zip(table.itertuples(), colours, strict=True)):
        if i % shard_size == 0:
            if writer is not None:
                writer.close()
            name = f"shards/shard-{i // shard_size:06d}.tar"
            shards.append(name)
            writer = wds.TarWriter(str(root / name))
        key = f"{row.photo_id}"
        meta = {
            "photo_id": row.photo_id,
            "lat": row.lat,
            "lon": row.lon,
            "user_id": row.user_id,
            "posted_at": row.posted_at.isoformat(),
            "split": row.split,
        }
        writer.write({"__key__": key, "jpg": jpeg_bytes(rgb, rng), "json": json.dumps(meta)})
        images.append(f"{shards[-1]}#{key}")
    writer.close()
    table["image"] = images
    return Dataset.write(
        root, table, make_provenance({"fixture": "m1-shards"}), images="shards", shards=shards
    )


def build_mesh(dataset: Dataset, path: Path):
    """A mesh fitted on the train photos whose kept cells are the 4 cities."""
    from trigeo.mesh import DelaunayMesh

    train = dataset.photos("train")
    mesh = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )
    mesh.save(path)
    return mesh
