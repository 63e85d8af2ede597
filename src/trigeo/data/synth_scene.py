"""What the synthetic world's photos show: country motifs, landmarks and climate per photo.

:func:`world_motifs` draws a world's appearance (a motif per country, a
landmark per large city) from its own seed, so that worlds sampled with
different seeds look alike; :func:`scene_params` turns each sampled photo
(place, time, indoor or outdoor) into the parameters that
:mod:`trigeo.data.synth_render` paints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trigeo.data.places import Places
from trigeo.sphere import EARTH_RADIUS_KM

if TYPE_CHECKING:
    from trigeo.data.synth_sample import WorldConfig

__all__ = ["Motifs", "day_of_year", "scene_params", "world_motifs"]


@dataclass(frozen=True)
class Motifs:
    """Per-country and per-landmark appearance parameters.

    Attributes
    ----------
    theta : (n_countries,) stripe orientation, radians in [0, pi)
    freq : (n_countries,) stripe frequency, cycles per image side
    hue_a, hue_c : (n_countries,) facade and glyph hues in [0, 1)
    shape : (n_countries,) glyph shape 0..3 (circle, diamond, square, star)
    landmark_city : (K,) city index of each landmark
    landmark_width, landmark_height : (K,) fractions of the image side
    landmark_top : (K,) 0 spire, 1 dome, 2 flat with mast
    landmark_hue : (K,)
    """

    theta: np.ndarray
    freq: np.ndarray
    hue_a: np.ndarray
    hue_c: np.ndarray
    shape: np.ndarray
    landmark_city: np.ndarray
    landmark_width: np.ndarray
    landmark_height: np.ndarray
    landmark_top: np.ndarray
    landmark_hue: np.ndarray


def world_motifs(places: Places, motif_seed: int = 0, landmark_cities: int = 40) -> Motifs:
    """Draw the country motifs and city landmarks of a world.

    Each country gets a random vector mixed with its continent's vector, then
    averaged once with its land neighbours, so neighbours share orientation,
    frequency and hues more than distant countries do.
    """
    rng = np.random.default_rng([motif_seed, 7])
    n = places.n_countries
    continents = sorted(set(places.continents))
    # Vector: cos 2θ, sin 2θ, log f (scaled), cos/sin hue A, cos/sin hue C, 4 shape logits.
    dims = 11

    def draw(k: int) -> np.ndarray:
        v = np.empty((k, dims))
        angles = rng.uniform(0, 2 * np.pi, size=(k, 3))
        v[:, 0], v[:, 1] = np.cos(angles[:, 0]), np.sin(angles[:, 0])
        v[:, 2] = rng.uniform(-1, 1, size=k)
        v[:, 3], v[:, 4] = np.cos(angles[:, 1]), np.sin(angles[:, 1])
        v[:, 5], v[:, 6] = np.cos(angles[:, 2]), np.sin(angles[:, 2])
        v[:, 7:] = rng.normal(size=(k, 4))
        return v

    continent_vec = draw(len(continents))
    own = draw(n)
    cont_index = np.array([continents.index(c) for c in places.continents])
    vec = 0.45 * continent_vec[cont_index] + 0.55 * own
    smoothed = vec.copy()
    for i, neigh in enumerate(places.neighbours):
        if neigh:
            smoothed[i] = 0.6 * vec[i] + 0.4 * vec[list(neigh)].mean(axis=0)
    theta = (np.arctan2(smoothed[:, 1], smoothed[:, 0]) / 2.0) % np.pi
    freq = np.exp(np.interp(np.clip(smoothed[:, 2], -1, 1), [-1, 1], np.log([2.5, 9.0])))
    hue_a = (np.arctan2(smoothed[:, 4], smoothed[:, 3]) / (2 * np.pi)) % 1.0
    hue_c = (np.arctan2(smoothed[:, 6], smoothed[:, 5]) / (2 * np.pi)) % 1.0
    shape = np.argmax(smoothed[:, 7:], axis=1)

    k = int(min(landmark_cities, places.n_cities))
    order = np.argsort(-places.population, kind="stable")[:k]
    return Motifs(
        theta=theta,
        freq=freq,
        hue_a=hue_a,
        hue_c=hue_c,
        shape=shape,
        landmark_city=order,
        landmark_width=rng.uniform(0.08, 0.22, size=k),
        landmark_height=rng.uniform(0.3, 0.6, size=k),
        landmark_top=rng.integers(0, 3, size=k),
        landmark_hue=rng.uniform(0, 1, size=k),
    )


def _dryness(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth dryness field in [0, 1]: subtropical deserts modulated by longitude."""
    lat_r, lon_r = np.radians(lat), np.radians(lon)
    belt = np.exp(-(((np.abs(lat) - 25.0) / 10.0) ** 2))
    # Fixed low-order waves on the sphere stand in for continentality.
    wave = 0.5 + 0.25 * np.sin(2 * lon_r + 0.7) + 0.2 * np.cos(3 * lon_r - 1.3 + 2 * lat_r)
    return np.clip(belt * (0.4 + 0.9 * wave), 0.0, 1.0)


def day_of_year(day: np.ndarray) -> np.ndarray:
    """0-based day of the year of days counted from 1970-01-01."""
    days = np.asarray(day).astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64)


def scene_params(
    config: WorldConfig,
    places: Places,
    rng: np.random.Generator,
    lat: np.ndarray,
    lon: np.ndarray,
    taken_utc: np.ndarray,
    utc_offset: np.ndarray,
    city: np.ndarray,
    outdoor: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-photo render parameters: climate, country motif, landmark, nuisances."""
    n = lat.size
    motifs = world_motifs(places, config.motif_seed, config.landmark_cities)
    local = taken_utc + utc_offset
    local_day = local // 86400
    hour = (local % 86400) / 3600.0
    doy = day_of_year(local_day).astype(np.float64)
    # +1 in local summer, -1 in local winter.
    season = np.cos(2 * np.pi * (doy - 196.0) / 365.25) * np.sign(lat + 1e-9)
    abs_lat = np.abs(lat)
    temp = 28.0 - 0.75 * np.maximum(abs_lat - 12.0, 0.0) + season * 0.3 * abs_lat
    temp = temp + rng.normal(0, 2.0, n)

    motif_country = places.country[city].copy()
    wrong = rng.random(n) < config.motif_noise
    motif_country[wrong] = rng.integers(0, places.n_countries, size=int(wrong.sum()))

    lm_lookup = np.full(places.n_cities, -1, dtype=np.int64)
    lm_lookup[motifs.landmark_city] = np.arange(motifs.landmark_city.size)
    landmark = lm_lookup[city]
    has = landmark >= 0
    if has.any():
        lc = motifs.landmark_city[landmark[has]]
        dlat = np.radians(lat[has] - places.lat[lc])
        dlon = np.radians(lon[has] - places.lon[lc]) * np.cos(np.radians(lat[has]))
        near = np.hypot(dlat, dlon) * EARTH_RADIUS_KM < config.landmark_radius_km
        landmark[np.flatnonzero(has)[~near]] = -1
    landmark[~outdoor | (rng.random(n) > 0.7)] = -1

    return {
        "outdoor": outdoor,
        "temp": temp.astype(np.float32),
        "dryness": np.clip(_dryness(lat, lon) + rng.normal(0, 0.08, n), 0, 1).astype(np.float32),
        "season": season.astype(np.float32),
        "abs_lat": abs_lat.astype(np.float32),
        "hour": hour.astype(np.float32),
        "theta": (motifs.theta[motif_country] + rng.normal(0, 0.12, n)).astype(np.float32),
        "freq": (motifs.freq[motif_country] * rng.uniform(0.88, 1.12, n)).astype(np.float32),
        "hue_a": (motifs.hue_a[motif_country] + rng.normal(0, 0.03, n)).astype(np.float32),
        "hue_c": (motifs.hue_c[motif_country] + rng.normal(0, 0.03, n)).astype(np.float32),
        "shape": motifs.shape[motif_country].astype(np.int8),
        "facade": (rng.random(n) < 0.85),
        "landmark": landmark,
        "lm_width": np.where(landmark >= 0, motifs.landmark_width[landmark], 0).astype(np.float32),
        "lm_height": np.where(landmark >= 0, motifs.landmark_height[landmark], 0).astype(
            np.float32
        ),
        "lm_top": np.where(landmark >= 0, motifs.landmark_top[landmark], 0).astype(np.int8),
        "lm_hue": np.where(landmark >= 0, motifs.landmark_hue[landmark], 0).astype(np.float32),
        "poster": (~outdoor) & (rng.random(n) < 0.15),
    }
