"""Admin-level accuracy (country, region, sub-region, city) as OSV-5M reports it.

Each point is reverse geocoded offline with ``reverse_geocoder`` (the package
OSV-5M uses; it ships GeoNames' cities1000 table with admin names, about 150k
places, so nothing is downloaded at run time): its place is the nearest entry
of that table, found the way ``reverse_geocoder.search`` finds it (a k-d tree
on plain latitude/longitude degrees), so a place here is the place OSV-5M's
evaluation would give. A prediction is right at a level when its place agrees
with the true location's on the level's key:

==========  ===================================
level       key
==========  ===================================
country     ``cc``
region      ``(admin1, cc)``
subregion   ``(admin2, admin1, cc)``
city        ``(name, admin2, admin1, cc)``
==========  ===================================

These are OSV-5M's keys (it joins the same fields with ``_``). About 60% of
the table's places have an empty ``admin2`` (GeoNames has no second level for
many countries, Germany's city-states among them), so an empty ``admin2`` is
a value like any other: two places that both lack one match at sub-region
level when their ``admin1`` and country match. That is OSV-5M's behaviour too,
and it means sub-region accuracy is never below region accuracy's share of
such photos; ``admin2_empty_share`` in ``metrics.json`` says how many truth
photos it concerns. A dataset's own ``country`` column (an ISO code, OSV-5M
keeps one) stays the truth at country level.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ADMIN_LEVELS", "AdminPlaces", "admin_accuracy", "admin_places"]

#: The levels scored, coarse to fine (the keys of ``admin_accuracy_pct``).
ADMIN_LEVELS: tuple[str, ...] = ("country", "region", "subregion", "city")


@dataclass(frozen=True)
class AdminPlaces:
    """The reverse-geocoded place of each point; empty strings for no point (NaN input).

    Attributes
    ----------
    cc, admin1, admin2, name
        Country code, first- and second-level admin names, and place name.
    """

    cc: NDArray[np.object_]
    admin1: NDArray[np.object_]
    admin2: NDArray[np.object_]
    name: NDArray[np.object_]

    def __len__(self) -> int:
        return int(self.cc.size)

    def take(self, rows: ArrayLike) -> AdminPlaces:
        """The places at ``rows``."""
        rows = np.asarray(rows)
        return AdminPlaces(self.cc[rows], self.admin1[rows], self.admin2[rows], self.name[rows])

    def keys(self, level: str) -> NDArray[np.object_]:
        """One hashable key per point for ``level`` (see the module's table)."""
        # A separator that no GeoNames ASCII name holds keeps ('a b', 'c') apart from ('a', 'b c').
        sep = "\x1f"
        if level == "country":
            return self.cc
        if level == "region":
            return self.admin1 + sep + self.cc
        if level == "subregion":
            return self.admin2 + sep + self.admin1 + sep + self.cc
        if level == "city":
            return self.name + sep + self.admin2 + sep + self.admin1 + sep + self.cc
        raise ValueError(f"unknown admin level {level!r}; choose from {ADMIN_LEVELS}")


@lru_cache(maxsize=1)
def _geocoder() -> tuple[Any, NDArray[np.object_], ...]:
    """reverse_geocoder's k-d tree and its places as arrays, loaded once per process."""
    import reverse_geocoder

    # mode=1: one process. The default (mode=2) forks a pool per query, which is slow
    # for small queries and fragile inside servers and test workers. The class is a
    # singleton, so an instance built elsewhere in mode 2 may come back: its tree
    # (a cKDTree subclass) is queried directly below, which is always single-process.
    with contextlib.redirect_stdout(io.StringIO()):
        coder = reverse_geocoder.RGeocoder(mode=1, verbose=False)
    places = coder.locations
    columns = tuple(
        np.array([p.get(field, "") or "" for p in places], dtype=object)
        for field in ("cc", "admin1", "admin2", "name")
    )
    return (coder.tree, *columns)


def admin_places(lat: ArrayLike, lon: ArrayLike) -> AdminPlaces:
    """Reverse geocode points offline to country, admin1, admin2 and place name.

    Parameters
    ----------
    lat, lon
        Degrees; a point with a NaN coordinate (no prediction) gets empty strings.

    Returns
    -------
    AdminPlaces
        One place per point.
    """
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    empty = np.full(lat.size, "", dtype=object)
    valid = np.isfinite(lat) & np.isfinite(lon)
    if not valid.any():
        return AdminPlaces(empty, empty.copy(), empty.copy(), empty.copy())
    tree, cc, admin1, admin2, name = _geocoder()
    # Longitudes outside [-180, 180] would be nearest to the wrong side of the tree.
    wrapped = (lon[valid] + 180.0) % 360.0 - 180.0
    _, nearest = tree.query(np.column_stack([lat[valid], wrapped]), k=1)
    out = []
    for column in (cc, admin1, admin2, name):
        values = empty.copy()
        values[valid] = column[nearest]
        out.append(values)
    return AdminPlaces(*out)


def admin_accuracy(
    truth: AdminPlaces,
    pred: AdminPlaces,
    answered: ArrayLike,
    true_country: ArrayLike | None = None,
) -> dict[str, float]:
    """Percentage of photos whose predicted place agrees with the true one, per level.

    Parameters
    ----------
    truth, pred
        Places of the true and predicted points, one per scored photo.
    answered
        False for a photo scored as a miss: it is wrong at every level.
    true_country
        The truth's country codes where a dataset gives its own (OSV-5M's
        ``country`` column); None takes reverse_geocoder's.

    Returns
    -------
    dict
        ``{"country", "region", "subregion", "city"}`` -> percentage (NaN for no photos).
    """
    answered = np.asarray(answered, dtype=bool).reshape(-1)
    if answered.size == 0:
        return {level: float("nan") for level in ADMIN_LEVELS}
    out = {}
    for level in ADMIN_LEVELS:
        true_keys = truth.keys(level)
        if level == "country" and true_country is not None:
            true_keys = np.asarray(true_country, dtype=object)
        hits = (true_keys == pred.keys(level)) & answered
        out[level] = float(100.0 * hits.mean())
    return out
