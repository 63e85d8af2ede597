"""Small meshes shared by the mesh tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trigeo.mesh import DelaunayMesh


def clustered_points(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Photo-like coordinates: dense city clusters (one on the antimeridian, one
    near the north pole), a stack of identical coordinates, and background."""
    rng = np.random.default_rng(seed)
    centres = np.array([[48.85, 2.35], [40.7, -74.0], [35.68, 139.7], [-17.7, 179.9], [78.2, 15.6]])
    sizes = rng.multinomial(int(n * 0.8), [0.35, 0.25, 0.2, 0.15, 0.05])
    lat = [np.repeat(48.8584, n // 20)]  # one tourist spot, identical coordinates
    lon = [np.repeat(2.2945, n // 20)]
    for (clat, clon), size in zip(centres, sizes, strict=True):
        lat.append(clat + rng.normal(0, 0.5, size))
        lon.append(clon + rng.normal(0, 0.8, size))
    rest = n - sum(len(x) for x in lat)
    lat.append(np.degrees(np.arcsin(rng.uniform(-1, 1, rest))))
    lon.append(rng.uniform(-180, 180, rest))
    lat_arr = np.clip(np.concatenate(lat), -90, 90)
    lon_arr = (np.concatenate(lon) + 180.0) % 360.0 - 180.0
    return lat_arr, lon_arr


@pytest.fixture(scope="session")
def points() -> tuple[np.ndarray, np.ndarray]:
    return clustered_points(6000)


@pytest.fixture(scope="session")
def mesh(points: tuple[np.ndarray, np.ndarray]) -> DelaunayMesh:
    lat, lon = points
    return DelaunayMesh(refinement_limit=150, minimum_examples=10).fit(lat, lon)


def write_dataset(root: Path, lat: np.ndarray, lon: np.ndarray, splits: np.ndarray) -> Path:
    """A trigeo dataset directory (table.parquet + dataset.json) with these photos."""
    from trigeo.data.table import Dataset

    n = len(lat)
    frame = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "image": [f"images/p{i}.jpg" for i in range(n)],
            "lat": lat,
            "lon": lon,
            "user_id": [f"u{i % 7}" for i in range(n)],
            "posted_at": pd.Timestamp("2010-06-01", tz="UTC"),
            "split": splits,
        }
    )
    Dataset.write(root, frame, provenance={})
    return root
