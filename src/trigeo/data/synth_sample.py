"""The synthetic world's sampling: users, sessions, places and times (no pixels, no I/O).

:func:`sample_photos` draws a world's photo table and each photo's render
parameters from a :class:`WorldConfig`; :mod:`trigeo.data.synth_scene` draws
the parameters of what each photo shows, :mod:`trigeo.data.synth_render`
paints them and :mod:`trigeo.data.synth` writes the dataset. The model is
described in :mod:`trigeo.data.synth` and ``docs/synthetic-world.md``.

Every random draw happens in one fixed order from one generator seeded by
``(seed, 1)``, so a world is a pure function of its config.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.places import Places, load_places
from trigeo.data.split import split_photos
from trigeo.data.synth_scene import day_of_year, scene_params
from trigeo.errors import InputError
from trigeo.sphere import wrap_longitude

__all__ = ["WorldConfig", "sample_photos"]

_KM_PER_DEG = 111.195
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


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    return np.searchsorted(cdf, rng.uniform(0, cdf[-1], size=size), side="right").clip(
        0, weights.size - 1
    )


@dataclass
class _Users:
    """Per user: photo count, home city, id and active span; city popularity."""

    counts: np.ndarray
    popularity: np.ndarray
    home: np.ndarray
    user_ids: np.ndarray
    active_start: np.ndarray
    active_span: np.ndarray


def _sample_users(
    config: WorldConfig, places: Places, rng: np.random.Generator, n: int, n_users: int
) -> _Users:
    """Users: heavy-tailed activity, home city by population x continent weight."""
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
    return _Users(counts, popularity, home, user_ids, active_start, active_span)


@dataclass
class _Sessions:
    """Per photo its user and session; per session its user, place and length."""

    user: np.ndarray
    session: np.ndarray
    n_sessions: int
    s_user: np.ndarray
    s_trip: np.ndarray
    s_city: np.ndarray
    s_lat: np.ndarray
    s_lon: np.ndarray
    s_days: np.ndarray


def _sample_sessions(
    config: WorldConfig,
    places: Places,
    rng: np.random.Generator,
    users: _Users,
    n: int,
    n_users: int,
) -> _Sessions:
    """Sessions: a day out at home or a trip of a few days elsewhere."""
    counts, home, popularity = users.counts, users.home, users.popularity
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
    return _Sessions(user, session, n_sessions, s_user, s_trip, s_city, s_lat, s_lon, s_days)


def _session_starts(
    config: WorldConfig, rng: np.random.Generator, s: _Sessions, users: _Users
) -> np.ndarray:
    """First day of each session (days since 1970-01-01)."""
    n_sessions, s_user, s_trip, s_lat = s.n_sessions, s.s_user, s.s_trip, s.s_lat
    active_start, active_span = users.active_start, users.active_span
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
        doy = day_of_year(day)
        season = np.cos(2 * np.pi * (doy - peak[pending]) / 365.25)
        accept = (1 + amplitude[pending] * season) / (1 + amplitude[pending])
        weekday = (day + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        accept = accept * np.where(~s_trip[pending] & (weekday < 5), 0.6, 1.0)
        ok = rng.random(pending.size) < accept
        s_start[pending[ok]] = day[ok]
        pending = pending[~ok]
    s_start[pending] = active_start[s_user[pending]]
    return s_start


def _posting_times(
    places: Places,
    rng: np.random.Generator,
    s: _Sessions,
    users: _Users,
    s_start: np.ndarray,
    taken: np.ndarray,
) -> np.ndarray:
    """When each session is uploaded (UTC seconds), after its last photo was taken."""
    n_sessions, s_trip, s_user, s_city = s.n_sessions, s.s_trip, s.s_user, s.s_city
    s_days, session, home = s.s_days, s.session, users.home
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
    return s_posted


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

    users = _sample_users(config, places, rng, n, n_users)
    s = _sample_sessions(config, places, rng, users, n, n_users)
    s_start = _session_starts(config, rng, s, users)
    session, s_days, s_city, user = s.session, s.s_days, s.s_city, s.user
    s_lat, s_lon, user_ids = s.s_lat, s.s_lon, users.user_ids

    # --- photos: local daytime at the session's place, then UTC by the real offset
    day_offset = (rng.random(n) * s_days[session]).astype(np.int64)
    local_day = s_start[session] + day_offset
    local_sec = (np.clip(rng.normal(13.5, 3.0, size=n), 7.0, 20.9) * 3600).astype(np.int64)
    zone = places.timezone[s_city[session]]
    taken_offset = _utc_offsets(zone, local_day, local_sec, places.timezones)
    taken = local_day * 86400 + local_sec - taken_offset

    s_posted = _posting_times(places, rng, s, users, s_start, taken)

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

    params = scene_params(config, places, rng, lat, lon, taken, taken_offset[order], city, outdoor)
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
