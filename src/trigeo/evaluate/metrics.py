"""The study's metrics: distance, accuracy at thresholds, KL divergence, significance.

Every function here is pure numpy/scipy and vectorized; the choices that peer
projects disagree on are explicit parameters with the study's defaults:

- distance on a sphere of radius ``R = 6372.795`` km (haversine form);
- a photo counts as correct at threshold ``t`` when ``d <= t`` (``strict_less=True``
  gives ``d < t``);
- thresholds 1, 25, 200, 750 and 2500 km.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM, distance_km

__all__ = [
    "DEFAULT_THRESHOLDS_KM",
    "MISS_ERROR_KM",
    "WILCOXON_ZERO_METHOD",
    "WilcoxonResult",
    "accuracy_at",
    "bootstrap_accuracy_ci",
    "class_frequencies",
    "compare_models",
    "error_km",
    "kl_divergence",
    "outdoor_mask",
    "prediction_entropy",
    "summarize_errors",
]

#: The study's accuracy thresholds (street, city, region, country, continent).
DEFAULT_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)

#: Error assigned to a photo a model gave no prediction for (``--missing miss``):
#: the antipode, i.e. half the circumference, the largest possible error.
MISS_ERROR_KM = float(np.pi * EARTH_RADIUS_KM)

#: Threshold on the ``outdoor`` column: below it a photo is indoor.
OUTDOOR_THRESHOLD = 0.5


def error_km(
    true_lat: ArrayLike,
    true_lon: ArrayLike,
    pred_lat: ArrayLike,
    pred_lon: ArrayLike,
    radius_km: float = EARTH_RADIUS_KM,
) -> NDArray[np.float64]:
    """Great-circle error in km between true and predicted locations.

    A thin name over :func:`trigeo.sphere.distance_km` so that the evaluation
    standard (haversine, radius ``radius_km``) is visible where it is used.
    """
    return distance_km(true_lat, true_lon, pred_lat, pred_lon, radius_km=radius_km)


def _as_thresholds(thresholds_km: Sequence[float]) -> NDArray[np.float64]:
    t = np.asarray(thresholds_km, dtype=np.float64).reshape(-1)
    if t.size == 0 or np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"thresholds must be finite and non-negative, got {list(t)}")
    return t


def _hits(
    errors_km: NDArray[np.float64], thresholds: NDArray[np.float64], strict_less: bool
) -> NDArray[np.int64]:
    """Number of photos within each threshold, via one sort (O(n log n), no n x T matrix)."""
    ordered = np.sort(errors_km)
    side = "left" if strict_less else "right"
    return np.searchsorted(ordered, thresholds, side=side).astype(np.int64)


def accuracy_at(
    errors_km: ArrayLike,
    thresholds_km: Sequence[float] = DEFAULT_THRESHOLDS_KM,
    *,
    strict_less: bool = False,
) -> NDArray[np.float64]:
    """Percentage of photos with error ``d <= t`` (or ``d < t``) for each threshold.

    Parameters
    ----------
    errors_km
        Per-photo errors in km (NaN is not allowed; score misses with
        :data:`MISS_ERROR_KM` or leave them out).
    thresholds_km
        Thresholds in km.
    strict_less
        Use ``d < t`` instead of the study's ``d <= t``.

    Returns
    -------
    ndarray
        One percentage in ``[0, 100]`` per threshold.
    """
    errors = np.asarray(errors_km, dtype=np.float64).reshape(-1)
    thresholds = _as_thresholds(thresholds_km)
    if errors.size == 0:
        return np.full(thresholds.shape, np.nan)
    if np.isnan(errors).any():
        raise ValueError("errors contain NaN; score missing predictions explicitly")
    return 100.0 * _hits(errors, thresholds, strict_less) / errors.size


def summarize_errors(errors_km: ArrayLike) -> dict[str, float]:
    """Mean and median error in km (NaN for no photos)."""
    errors = np.asarray(errors_km, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        return {"mean_km": float("nan"), "median_km": float("nan")}
    return {"mean_km": float(errors.mean()), "median_km": float(np.median(errors))}


def bootstrap_accuracy_ci(
    errors_km: ArrayLike,
    thresholds_km: Sequence[float] = DEFAULT_THRESHOLDS_KM,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    strict_less: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile bootstrap confidence intervals of :func:`accuracy_at`.

    Resampling ``n`` photos with replacement only matters through how many of
    them fall into each distance bin between consecutive thresholds, and those
    counts are exactly multinomial with the observed bin frequencies. Drawing
    the multinomial counts directly is therefore the same bootstrap in
    distribution as index resampling, at ``O(n_resamples x thresholds)`` cost
    instead of ``O(n_resamples x n)``; the thresholds stay jointly consistent
    (accuracy is non-decreasing in ``t`` within each resample).

    Returns
    -------
    (low, high)
        Percentages per threshold.
    """
    errors = np.asarray(errors_km, dtype=np.float64).reshape(-1)
    thresholds = _as_thresholds(thresholds_km)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = errors.size
    if n == 0:
        nan = np.full(thresholds.shape, np.nan)
        return nan, nan.copy()
    order = np.argsort(thresholds)
    hits = _hits(errors, thresholds[order], strict_less)
    # Bins: [0, t1], (t1, t2], ..., (tT, inf) -> T + 1 bins.
    bin_counts = np.diff(np.concatenate([[0], hits, [n]]))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, bin_counts / n, size=n_resamples)
    within = np.cumsum(draws[:, :-1], axis=1) * (100.0 / n)
    alpha = (1.0 - confidence) / 2.0
    low_sorted, high_sorted = np.quantile(within, [alpha, 1.0 - alpha], axis=0)
    low = np.empty_like(low_sorted)
    high = np.empty_like(high_sorted)
    low[order], high[order] = low_sorted, high_sorted
    return low, high


def class_frequencies(
    labels: ArrayLike, n_classes: int, *, pseudocount: float = 0.0
) -> NDArray[np.float64]:
    """Relative frequency of each class ``0..n_classes-1`` after adding ``pseudocount``."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"class labels must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}"
        )
    counts = np.bincount(labels.astype(np.int64), minlength=n_classes).astype(np.float64)
    counts += pseudocount
    total = counts.sum()
    if total <= 0:
        raise ValueError("no labels and no pseudocount: frequencies are undefined")
    return counts / total


def kl_divergence(true_classes: ArrayLike, pred_classes: ArrayLike, n_classes: int) -> float:
    """KL divergence of predicted from true class frequencies, as the study defines it.

    ``p`` is the frequency of each true class, ``q`` that of each predicted
    class, both after adding 1 to every count; the score is
    ``sum_k p_k ln(p_k / q_k)`` (natural log, nats). It is 0 when the model
    predicts every class exactly as often as it occurs.
    """
    p = class_frequencies(true_classes, n_classes, pseudocount=1.0)
    q = class_frequencies(pred_classes, n_classes, pseudocount=1.0)
    return float(np.sum(p * np.log(p / q)))


def prediction_entropy(pred_classes: ArrayLike, n_classes: int) -> float:
    """Shannon entropy (nats) of the predicted class frequencies.

    Uses the raw frequencies (``0 ln 0 = 0``), so a model that spreads its
    predictions uniformly over ``K`` classes scores ``ln K`` and one that
    always predicts the same class scores 0.
    """
    q = class_frequencies(pred_classes, n_classes)
    nz = q[q > 0]
    return float(-np.sum(nz * np.log(nz)))


#: How :func:`compare_models` treats photos on which two models' errors are equal:
#: scipy's ``zero_method="wilcox"``, i.e. they are left out of the test.
WILCOXON_ZERO_METHOD = "wilcox"


@dataclass(frozen=True)
class WilcoxonResult:
    """A Wilcoxon signed-rank test of paired per-photo errors (``a - b``).

    ``n_photos`` counts the photos both models scored; ``n_differing`` the
    photos where their errors differ, the only ones the test ranks.
    """

    model_a: str
    model_b: str
    n_photos: int
    statistic: float
    p_value: float
    median_difference_km: float
    n_differing: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n_photos": self.n_photos,
            "n_differing": self.n_differing,
            "zero_method": WILCOXON_ZERO_METHOD,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "median_difference_km": self.median_difference_km,
        }


def compare_models(
    errors_by_model: dict[str, tuple[NDArray[np.str_], NDArray[np.float64]]],
) -> list[WilcoxonResult]:
    """Wilcoxon signed-rank test between every pair of models on their shared photos.

    Photos on which both errors are exactly equal are left out of the test
    (scipy's ``zero_method="wilcox"``). Two models that pick the same top cell
    for a photo place it at the same point, so their errors there are
    identical, and for related models that is most photos. Such a tie says
    nothing about which model is better:

    - ``"wilcox"`` (used) ranks only the photos where the errors differ, so
      the p-value does not change with how many photos the models agree on;
    - ``"zsplit"`` would count every tie as half a win for each side and its
      normal approximation as if the tie could have had either sign: the more
      photos the models agree on, the closer p gets to 1 whatever the
      differing photos say (5 photos all favouring one model: p = 0.056 with
      10 ties, 0.75 with 1000);
    - ``"pratt"`` ranks the ties and then drops them, which only lifts the
      ranks of the real differences: as ties grow the test drifts from a
      signed-rank test towards a sign test.

    The ties are removed before calling scipy, so that its choice between the
    exact null distribution (up to 50 differences, none tied) and the normal
    approximation depends on the photos actually tested. Given the ties,
    scipy's automatic choice looks at every pair and any zero difference rules
    out the exact distribution: 5 differing photos among 60 would get the
    normal approximation (p = 0.043 instead of the exact 0.0625).

    Parameters
    ----------
    errors_by_model
        Model name -> ``(photo_ids, errors_km)``. Each pair is tested on the
        photos both models scored, matched by photo id.

    Returns
    -------
    list of WilcoxonResult
        One per unordered pair, in input order. ``n_differing`` says how many
        photos the test used; ``p_value`` is NaN when the test is undefined
        (no shared photos, or all differences zero). ``median_difference_km``
        is over all shared photos, ties included.
    """
    from scipy.stats import wilcoxon

    names = list(errors_by_model)
    results = []
    for i, a in enumerate(names):
        ids_a, err_a = errors_by_model[a]
        for b in names[i + 1 :]:
            ids_b, err_b = errors_by_model[b]
            # Hash join on photo ids (order of model a).
            ib_all = pd.Index(np.asarray(ids_b)).get_indexer(np.asarray(ids_a))
            ia = np.flatnonzero(ib_all >= 0)
            ib = ib_all[ia]
            x, y = np.asarray(err_a)[ia], np.asarray(err_b)[ib]
            diff = x - y
            differing = diff[diff != 0]
            stat = p = float("nan")
            if differing.size:
                res = wilcoxon(differing, zero_method=WILCOXON_ZERO_METHOD)
                stat, p = float(res.statistic), float(res.pvalue)
            median = float(np.median(diff)) if diff.size else float("nan")
            results.append(
                WilcoxonResult(a, b, int(diff.size), stat, p, median, int(differing.size))
            )
    return results


def outdoor_mask(outdoor: ArrayLike, threshold: float = OUTDOOR_THRESHOLD) -> NDArray[np.bool_]:
    """True for outdoor photos: ``outdoor >= threshold``; missing values count as not outdoor."""
    values = np.asarray(outdoor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= threshold)
