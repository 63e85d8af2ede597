"""Fixtures for evaluation tests: a hand-made photo table and a small grid mesh.

``GridMesh`` is a test double of the mesh interface evaluation uses (locate,
centroids, cell areas, hash): 30°x30° boxes, a few of them dropped, so that
expected values can be worked out by hand. Tests that need the real
``DelaunayMesh`` build one separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trigeo.data.table import Dataset
from trigeo.evaluate.truth import Truth
from trigeo.provenance import make_provenance
from trigeo.sphere import EARTH_RADIUS_KM, mean_position

CITIES = {
    # name: (lat, lon)
    "paris": (48.8566, 2.3522),
    "london": (51.5074, -0.1278),
    "new_york": (40.7128, -74.0060),
    "los_angeles": (34.0522, -118.2437),
    "sydney": (-33.8688, 151.2093),
    "tokyo": (35.6762, 139.6503),
    "nairobi": (-1.2921, 36.8219),
    "rio": (-22.9068, -43.1729),
}


class GridMesh:
    """30° x 30° lat/lon boxes; boxes without any of ``keep_points`` are dropped."""

    step = 30.0

    def __init__(self, keep_lat: np.ndarray, keep_lon: np.ndarray, mesh_hash: str = "grid-test"):
        boxes = self._box(keep_lat, keep_lon)
        self.kept_boxes_ = np.unique(boxes)
        self.n_cells_ = int(self.kept_boxes_.size)
        self.mesh_hash = mesh_hash
        self._imagery = []
        for box in self.kept_boxes_:
            inside = boxes == box
            self._imagery.append(mean_position(keep_lat[inside], keep_lon[inside]))

    def _box(self, lat, lon) -> np.ndarray:
        rows = np.clip(((np.asarray(lat) + 90) // self.step).astype(int), 0, 5)
        cols = np.clip(((np.asarray(lon) + 180) // self.step).astype(int), 0, 11)
        return rows * 12 + cols

    def locate(self, lat, lon) -> np.ndarray:
        boxes = self._box(lat, lon)
        pos = np.searchsorted(self.kept_boxes_, boxes)
        pos = np.clip(pos, 0, self.n_cells_ - 1)
        return np.where(self.kept_boxes_[pos] == boxes, pos, -1).astype(np.int64)

    def centroids(self, kind: str = "cell"):
        if kind == "imagery":
            lat, lon = zip(*self._imagery, strict=True)
            return np.array(lat), np.array(lon)
        rows, cols = self.kept_boxes_ // 12, self.kept_boxes_ % 12
        return rows * self.step - 90 + self.step / 2, cols * self.step - 180 + self.step / 2

    def cell_areas_km2(self) -> np.ndarray:
        rows = self.kept_boxes_ // 12
        lat0, lat1 = np.radians(rows * self.step - 90), np.radians(rows * self.step - 60)
        return EARTH_RADIUS_KM**2 * np.radians(self.step) * (np.sin(lat1) - np.sin(lat0))


def make_table(n_per_city: int = 30, seed: int = 7) -> pd.DataFrame:
    """Photos around 8 cities, 12 users, half val / half train, outdoor in [0, 1]."""
    rng = np.random.default_rng(seed)
    rows = []
    photo = 0
    for c, (name, (lat, lon)) in enumerate(CITIES.items()):
        for i in range(n_per_city):
            rows.append(
                {
                    "photo_id": f"p{photo:04d}",
                    "image": f"images/p{photo:04d}.jpg",
                    "lat": lat + rng.normal(0, 0.05),
                    "lon": lon + rng.normal(0, 0.05),
                    "user_id": f"u{(c * 3 + i % 3) % 12:02d}",
                    "posted_at": pd.Timestamp("2015-01-01", tz="UTC")
                    + pd.Timedelta(hours=int(rng.integers(0, 20000))),
                    "outdoor": float(i % 4) / 3.0,
                    "split": "val" if i % 2 == 0 else "train",
                    "city": name,
                }
            )
            photo += 1
    return pd.DataFrame(rows)


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture
def dataset(tmp_path: Path, table: pd.DataFrame) -> Dataset:
    return Dataset.write(tmp_path / "ds", table.drop(columns="city"), make_provenance())


@pytest.fixture
def grid_mesh(table: pd.DataFrame) -> GridMesh:
    train = table[table["split"] == "train"]
    return GridMesh(train["lat"].to_numpy(), train["lon"].to_numpy())


@pytest.fixture
def truth(dataset: Dataset) -> Truth:
    """The val photos of ``dataset``."""
    return Truth.from_dataset(dataset)


@pytest.fixture
def mesh_path(tmp_path: Path, table: pd.DataFrame) -> Path:
    """A real DelaunayMesh of the training photos, saved to a file."""
    from trigeo.mesh import DelaunayMesh

    train = table[table["split"] == "train"]
    mesh = DelaunayMesh(refinement_limit=5, minimum_examples=2).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )
    return mesh.save(tmp_path / "mesh.npz")
