"""GeoScore, the GeoGuessr-style score of OSV-5M and PIGEON, and a bootstrap of a mean.

Per photo ``5000 * exp(-d / 1492.7)`` points, ``d`` the haversine distance in
km on a sphere of radius **6371 km**, as OSV-5M computes it
(``metrics/distance_based.py`` and ``metrics/utils.py`` of gastruc/osv5m).
The radius belongs to the metric's definition, so the evaluation's own radius
(``--earth-radius-km``, 6372.795 km by default, the study's) does not change it:
the score is comparable with OSV-5M's published numbers whatever the
threshold metrics use.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.evaluate.metrics import resample_weights, user_codes

__all__ = [
    "GEOSCORE_MAX",
    "GEOSCORE_RADIUS_KM",
    "GEOSCORE_SCALE_KM",
    "bootstrap_mean_ci",
    "geoscore",
    "geoscore_from_errors",
]

#: Points for a perfect answer.
GEOSCORE_MAX = 5000.0
#: Distance (km) at which the score falls by a factor e.
GEOSCORE_SCALE_KM = 1492.7
#: Sphere radius (km) of GeoScore's haversine distance (OSV-5M's), whatever
#: ``--earth-radius-km`` is.
GEOSCORE_RADIUS_KM = 6371.0


def geoscore(distance_km: ArrayLike) -> NDArray[np.float64]:
    """GeoScore of each photo from its distance in km on the 6371 km sphere.

    Parameters
    ----------
    distance_km
        Haversine distances in km, measured on a sphere of radius
        :data:`GEOSCORE_RADIUS_KM` (use :func:`geoscore_from_errors` for
        distances measured on another radius).

    Returns
    -------
    ndarray
        Points in ``(0, 5000]``: 5000 at 0 km, 5000/e at 1492.7 km.
    """
    d = np.asarray(distance_km, dtype=np.float64)
    return GEOSCORE_MAX * np.exp(-d / GEOSCORE_SCALE_KM)


def geoscore_from_errors(errors_km: ArrayLike, radius_km: float) -> NDArray[np.float64]:
    """GeoScore of errors measured on a sphere of radius ``radius_km``.

    A great-circle distance is the radius times the central angle, so an
    error on one sphere converts exactly to the 6371 km sphere by the ratio
    of radii; a photo scored as a miss (``pi * radius_km``) becomes the
    antipode on the 6371 km sphere, about 0.0075 points.
    """
    errors = np.asarray(errors_km, dtype=np.float64)
    return geoscore(errors * (GEOSCORE_RADIUS_KM / float(radius_km)))


def bootstrap_mean_ci(
    values: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``, by photo or by user.

    With ``groups`` (one user id or code per value) it is a cluster
    bootstrap, as the accuracies' (:func:`~trigeo.evaluate.metrics.bootstrap_accuracy_ci`):
    each resample draws as many users as there are, with replacement, keeping
    all their photos, and its mean is ``sum_u w_u s_u / sum_u w_u n_u`` with
    ``s_u`` and ``n_u`` user u's sum and photo count and ``w_u`` how often u
    was drawn. Without groups each photo is its own group, which is exactly
    resampling photos. Only the draw weights are formed per resample (one
    ``bincount`` per block, then a matrix-vector product), so no resample
    ever copies the values.

    Parameters
    ----------
    values
        One value per photo (NaN is not allowed).
    n_resamples, confidence, seed
        Bootstrap settings (percentile interval of level ``confidence``).
    groups
        The user of each value (any hashable ids, or codes); None resamples photos.

    Returns
    -------
    (low, high)
        NaN for no values.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if x.size == 0:
        return float("nan"), float("nan")
    if np.isnan(x).any():
        raise ValueError("values contain NaN")
    if groups is None:
        dense = np.arange(x.size)
    else:
        codes = np.asarray(groups).reshape(-1)
        if codes.size != x.size:
            raise ValueError(f"groups has {codes.size} entries for {x.size} values")
        if codes.dtype.kind not in "iu" or codes.min() < 0:
            codes = user_codes(codes)
        # Dense 0..G-1: a subset's codes may have gaps, and G sets how many users a resample draws.
        _, dense = np.unique(codes, return_inverse=True)
    n_groups = int(dense.max()) + 1
    sums = np.bincount(dense, weights=x, minlength=n_groups)
    counts = np.bincount(dense, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start, weights in resample_weights(n_groups, n_resamples, rng):
        means[start : start + len(weights)] = (weights @ sums) / (weights @ counts)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
