from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trigeo.data.places import load_places
from trigeo.data.stats import (
    circular_correlation,
    local_hour_concentration,
    user_dispersion_km,
)
from trigeo.data.synth import WorldConfig, make_world, render_images, sample_photos, world_motifs
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.sphere import distance_km


def test_world_is_a_valid_dataset(small_world: Path) -> None:
    ds = Dataset.open(small_world)
    table = ds.table
    assert len(table) == 600
    assert table["user_id"].nunique() == 60
    assert set(table["split"]) == {"train", "heads", "val"}
    # Defaults 0.18 / 0.5: 108 M1-val photos, half of them heads.
    assert (table["split"] != "train").sum() == 108
    assert (table["split"] == "heads").sum() == 54
    assert ds.meta["images"] == "folder"
    assert ds.meta["provenance"]["config"]["seed"] == 11
    codes = set(load_places().country_codes)
    assert set(table["country"]) <= codes
    assert (table["posted_at"] >= table["taken_at"]).all()
    for rel in table["image"].iloc[::97]:
        with Image.open(ds.image_path(rel)) as im:
            assert im.format == "JPEG"
            assert im.size == (32, 32)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = make_world(tmp_path / "a", photos=120, users=12, image_size=32, seed=5)
    b = make_world(tmp_path / "b", photos=120, users=12, image_size=32, seed=5, workers=3)
    c = make_world(tmp_path / "c", photos=120, users=12, image_size=32, seed=6)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert (tmp_path / "a/table.parquet").read_bytes() == (
        tmp_path / "b/table.parquet"
    ).read_bytes()
    for rel in a.table["image"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert not np.allclose(a.table["lat"].to_numpy(), c.table["lat"].to_numpy())


def test_posting_hour_tracks_longitude() -> None:
    table, _ = sample_photos(WorldConfig(photos=3000, users=400, seed=2))
    hours = table["posted_at"].dt.hour + table["posted_at"].dt.minute / 60
    alpha = 2 * np.pi * hours.to_numpy() / 24
    beta = np.radians(table["lon"].to_numpy())
    # East of Greenwich, the local evening comes earlier in UTC: negative correlation.
    assert circular_correlation(alpha, beta) < -0.3
    concentration = local_hour_concentration(table["posted_at"], table["lon"].to_numpy())
    shuffled = np.random.default_rng(0).permutation(table["lon"].to_numpy())
    assert concentration > 0.5
    assert local_hour_concentration(table["posted_at"], shuffled) < 0.5 * concentration


def test_photos_are_taken_in_local_daytime() -> None:
    table, _ = sample_photos(WorldConfig(photos=2000, users=200, seed=3))
    solar = (table["taken_at"].dt.hour + table["taken_at"].dt.minute / 60 + table["lon"] / 15) % 24
    # Time zones differ from solar time by up to ~3 h; daytime is 7:00-21:00 local.
    assert ((solar > 4) & (solar < 24)).mean() > 0.97
    assert solar.between(9, 18).mean() > 0.6


def test_more_photos_in_local_summer() -> None:
    table, _ = sample_photos(WorldConfig(photos=4000, users=400, seed=4))
    north = table[table["lat"] > 30]
    month = north["taken_at"].dt.month
    assert month.isin([6, 7, 8]).mean() > month.isin([12, 1, 2]).mean() * 1.5


def test_users_cluster_near_home_and_travel() -> None:
    table, _ = sample_photos(WorldConfig(photos=3000, users=150, seed=7))
    dispersion = user_dispersion_km(table, min_photos=5)
    assert len(dispersion) > 30
    # Most of a user's photos are near one place ...
    assert dispersion.median() < 100
    # ... far tighter than photos of different users.
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(table), size=(2, 2000))
    random_pairs = distance_km(
        table["lat"].to_numpy()[i],
        table["lon"].to_numpy()[i],
        table["lat"].to_numpy()[j],
        table["lon"].to_numpy()[j],
    )
    assert np.median(random_pairs) > 10 * dispersion.median()
    # ... and trips take some photos far away.
    far = []
    for _, group in table.groupby("user_id"):
        if len(group) >= 20:
            d = distance_km(
                group["lat"], group["lon"], group["lat"].median(), group["lon"].median()
            )
            far.append((d > 300).any())
    assert np.mean(far) > 0.5


def test_activity_is_heavy_tailed() -> None:
    table, _ = sample_photos(WorldConfig(photos=5000, users=500, seed=8))
    per_user = table.groupby("user_id").size()
    assert per_user.min() >= 1
    assert per_user.median() <= 5
    assert per_user.max() > 20 * per_user.median()


def test_outdoor_share_and_scores(small_world: Path) -> None:
    table = Dataset.open(small_world).table
    outdoor = table["outdoor"] >= 0.5
    assert 0.4 < outdoor.mean() < 0.6
    assert table.loc[outdoor, "outdoor"].median() > 0.8
    assert table.loc[~outdoor, "outdoor"].median() < 0.2


def test_neighbouring_countries_look_alike() -> None:
    places = load_places()
    motifs = world_motifs(places)
    vec = np.stack(
        [
            np.cos(2 * motifs.theta),
            np.sin(2 * motifs.theta),
            np.cos(2 * np.pi * motifs.hue_a),
            np.sin(2 * np.pi * motifs.hue_a),
        ],
        axis=1,
    )
    neigh, rand = [], []
    rng = np.random.default_rng(1)
    for i, ns in enumerate(places.neighbours):
        for j in ns:
            neigh.append(np.linalg.norm(vec[i] - vec[j]))
            rand.append(np.linalg.norm(vec[i] - vec[rng.integers(places.n_countries)]))
    assert np.mean(neigh) < 0.8 * np.mean(rand)


def test_images_carry_country_signal() -> None:
    """Mean outdoor images of two distant countries differ more than two halves of one."""
    config = WorldConfig(photos=3000, users=300, seed=9, outdoor_fraction=1.0, motif_noise=0.0)
    table, params = sample_photos(config)
    pixels = render_images(params, 32, seed=0).astype(np.float32)
    top = table["country"].value_counts().index[:2]
    a = pixels[(table["country"] == top[0]).to_numpy()]
    b = pixels[(table["country"] == top[1]).to_numpy()]
    within = np.abs(a[::2].mean(0) - a[1::2].mean(0)).mean()
    between = np.abs(a.mean(0) - b.mean(0)).mean()
    assert between > within


def test_indoor_images_differ_from_outdoor() -> None:
    _, params = sample_photos(WorldConfig(photos=400, users=40, seed=10))
    pixels = render_images(params, 32, seed=0).astype(np.float32)
    outdoor = params["outdoor"]
    # Outdoor photos have a blue-ish sky at the top; rooms do not.
    top = pixels[:, :4]
    blueness = top[..., 2].mean(axis=(1, 2)) - top[..., 0].mean(axis=(1, 2))
    assert blueness[outdoor].mean() > blueness[~outdoor].mean() + 10


def test_jpeg_bytes_decode() -> None:
    _, params = sample_photos(WorldConfig(photos=20, users=4, seed=1))
    pixels = render_images(params, 48, seed=1)
    assert pixels.shape == (20, 48, 48, 3) and pixels.dtype == np.uint8
    buffer = io.BytesIO()
    Image.fromarray(pixels[0]).save(buffer, format="JPEG")
    assert Image.open(io.BytesIO(buffer.getvalue())).size == (48, 48)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"photos": 0},
        {"users": 0},
        {"image_size": 4},
        {"outdoor_fraction": 1.5},
        {"start": "2010-01-01", "end": "2010-01-02"},
    ],
)
def test_bad_config(kwargs: dict) -> None:
    with pytest.raises(InputError):
        WorldConfig(**kwargs)


def test_more_users_than_photos() -> None:
    table, _ = sample_photos(WorldConfig(photos=10, users=50, seed=0))
    assert len(table) == 10 and table["user_id"].nunique() == 10


def test_landmarks_only_near_the_largest_cities() -> None:
    places = load_places()
    config = WorldConfig(photos=4000, users=300, seed=12, landmark_cities=40)
    table, params = sample_photos(config)
    has = params["landmark"] >= 0
    assert has.any()
    assert not (has & ~params["outdoor"]).any()
    top = world_motifs(places, landmark_cities=40).landmark_city
    city = top[params["landmark"][has]]
    d = distance_km(table["lat"][has], table["lon"][has], places.lat[city], places.lon[city])
    assert (d < config.landmark_radius_km).all()


def test_snow_in_cold_places() -> None:
    """High-latitude winter photos have bright (snowy) ground; tropical ones do not."""
    config = WorldConfig(photos=4000, users=400, seed=13, outdoor_fraction=1.0)
    _, params = sample_photos(config)
    pixels = render_images(params, 32, seed=0).astype(np.float32)
    ground = pixels[:, -4:].mean(axis=(1, 2, 3))  # bottom rows are ground
    cold = (params["temp"] < -5).astype(bool)
    hot = (params["temp"] > 24).astype(bool)
    assert cold.sum() > 10 and hot.sum() > 10
    assert ground[cold].mean() > ground[hot].mean() + 30
