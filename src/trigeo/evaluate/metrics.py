"""The study's metrics: distance, accuracy at thresholds, KL divergence, significance.

Every function here is pure numpy/scipy and vectorized; the choices that peer
projects disagree on are explicit parameters with the study's defaults:

- distance on a sphere of radius ``R = 6372.795`` km (haversine form);
- a photo counts as correct at threshold ``t`` when ``d <= t`` (``strict_less=True``
  gives ``d < t``);
- thresholds 1, 25, 200, 750 and 2500 km;
- KL divergence and entropy over the photos whose true cell is kept
  (:func:`kept_cell_scores`);
- bootstrap intervals either per photo or per user (the paired tests are in
  :mod:`trigeo.evaluate.paired`): a user's
  photos are not independent (same places, same camera, often the same trip),
  so the user is the unit that can be treated as independent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM, STUDY_THRESHOLDS_KM, distance_km

__all__ = [
    "CI_UNITS",
    "DEFAULT_THRESHOLDS_KM",
    "MISS_ERROR_KM",
    "KeptCellScores",
    "accuracy_at",
    "bootstrap_accuracy_ci",
    "class_frequencies",
    "error_km",
    "kept_cell_scores",
    "kl_divergence",
    "outdoor_mask",
    "prediction_entropy",
    "resample_weights",
    "summarize_errors",
    "threshold_keys",
    "user_codes",
]

#: The study's accuracy thresholds (street, city, region, country, continent).
DEFAULT_THRESHOLDS_KM: tuple[float, ...] = STUDY_THRESHOLDS_KM

#: Error assigned to a photo a model gave no prediction for (``--missing miss``):
#: the antipode, i.e. half the circumference, the largest possible error.
MISS_ERROR_KM = float(np.pi * EARTH_RADIUS_KM)

#: Threshold on the ``outdoor`` column: below it a photo is indoor.
OUTDOOR_THRESHOLD = 0.5

#: What a bootstrap resamples: single photos, or users with all their photos.
CI_UNITS: tuple[str, ...] = ("user", "photo")

#: Resamples x users held in memory at once by the user bootstrap (about 32 MB of int64):
#: enough for 1000 resamples of 4,000 users in one block, bounded for millions of users.
_BOOTSTRAP_BLOCK = 4_000_000


def threshold_keys(thresholds: Sequence[float]) -> list[str]:
    """The keys of per-threshold values in ``metrics.json`` (``"25km"``)."""
    return [f"{t:g}km" for t in thresholds]


def user_codes(users: ArrayLike) -> NDArray[np.int64]:
    """Integer code ``0..G-1`` of each photo's user; a photo without a user is its own user.

    A missing user id (None / NaN) cannot be tied to any other photo, so the
    only safe assumption is that it is independent of every other photo.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(users, dtype=object)), sort=False)
    codes = codes.astype(np.int64)
    alone = codes < 0
    if alone.any():
        codes[alone] = len(uniques) + np.arange(int(alone.sum()))
    return codes


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
    groups: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile bootstrap confidence intervals of :func:`accuracy_at`.

    Without ``groups`` photos are resampled independently. Resampling ``n``
    photos with replacement only matters through how many of them fall into
    each distance bin between consecutive thresholds, and those counts are
    exactly multinomial with the observed bin frequencies. Drawing the
    multinomial counts directly is therefore the same bootstrap in
    distribution as index resampling, at ``O(n_resamples x thresholds)`` cost
    instead of ``O(n_resamples x n)``.

    With ``groups`` (one user id or code per photo) it is a cluster bootstrap:
    each resample draws as many users as there are, with replacement, and
    keeps all their photos, so the accuracy of a resample is
    ``sum_u w_u hits_u / sum_u w_u n_u`` with ``w_u`` how often user ``u`` was
    drawn. Per-user hit counts are formed once (one ``bincount``), so the cost
    is ``O(n_resamples x users x thresholds)`` whatever the photos per user.
    Photos of one user are correlated (the same places, often the same trip),
    and a user holding many photos moves every accuracy at once; the photo
    bootstrap ignores that and gives intervals that are too narrow.

    In both cases the thresholds stay jointly consistent (accuracy is
    non-decreasing in ``t`` within each resample).

    Parameters
    ----------
    errors_km
        Per-photo errors in km.
    thresholds_km
        Thresholds in km.
    n_resamples, confidence, seed
        Bootstrap settings (percentile interval of level ``confidence``).
    strict_less
        Count ``d < t`` instead of ``d <= t``.
    groups
        The user of each photo (any hashable ids, or :func:`user_codes`);
        None resamples photos.

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
    rng = np.random.default_rng(seed)
    if groups is None:
        hits = _hits(errors, thresholds[order], strict_less)
        # Bins: [0, t1], (t1, t2], ..., (tT, inf) -> T + 1 bins.
        bin_counts = np.diff(np.concatenate([[0], hits, [n]]))
        draws = rng.multinomial(n, bin_counts / n, size=n_resamples)
        within = np.cumsum(draws[:, :-1], axis=1) * (100.0 / n)
    else:
        codes = np.asarray(groups).reshape(-1)
        if codes.size != n:
            raise ValueError(f"groups has {codes.size} entries for {n} errors")
        if codes.dtype.kind not in "iu" or (codes.size and codes.min() < 0):
            codes = user_codes(codes)
        within = _cluster_within(errors, thresholds[order], codes, n_resamples, strict_less, rng)
    alpha = (1.0 - confidence) / 2.0
    low_sorted, high_sorted = np.quantile(within, [alpha, 1.0 - alpha], axis=0)
    low = np.empty_like(low_sorted)
    high = np.empty_like(high_sorted)
    low[order], high[order] = low_sorted, high_sorted
    return low, high


def _cluster_within(
    errors: NDArray[np.float64],
    sorted_thresholds: NDArray[np.float64],
    codes: NDArray[np.int64],
    n_resamples: int,
    strict_less: bool,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Accuracy (%) per resample and sorted threshold of the user (cluster) bootstrap."""
    # Dense codes 0..G-1 of the users present here (a subset's codes may have gaps).
    _, dense = np.unique(codes, return_inverse=True)
    n_users = int(dense.max()) + 1
    n_t = sorted_thresholds.size
    # Photo bin: the first threshold it is within (n_t = none), then per-user counts.
    # d <= t: the first t >= d ("left"); d < t: the first t > d ("right").
    first = np.searchsorted(sorted_thresholds, errors, side="right" if strict_less else "left")
    counts = np.bincount(dense * (n_t + 1) + first, minlength=n_users * (n_t + 1))
    per_user = counts.reshape(n_users, n_t + 1).astype(np.float64)
    hits_user = np.cumsum(per_user[:, :n_t], axis=1)  # photos within each threshold
    photos_user = per_user.sum(axis=1)
    within = np.empty((n_resamples, n_t))
    for start, weights in resample_weights(n_users, n_resamples, rng):
        within[start : start + len(weights)] = (
            100.0 * (weights @ hits_user) / (weights @ photos_user)[:, None]
        )
    return within


def resample_weights(
    n_groups: int, n_resamples: int, rng: np.random.Generator
) -> Iterator[tuple[int, NDArray[np.float64]]]:
    """Bootstrap resamples of ``n_groups`` clusters, as weights, in memory-bounded blocks.

    Drawing G clusters with replacement is the same as drawing how often each
    cluster is picked, which one ``bincount`` gives for a whole block of
    resamples; a statistic that is a ratio of per-cluster sums is then a
    matrix product. Yields ``(first resample, weights)`` with ``weights`` of
    shape ``(block, n_groups)``, blocks in order, ``n_resamples`` rows in all.
    """
    block = max(1, _BOOTSTRAP_BLOCK // n_groups)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups))
        offsets = (np.arange(size) * n_groups)[:, None]
        weights = np.bincount((draws + offsets).ravel(), minlength=size * n_groups)
        yield start, weights.reshape(size, n_groups).astype(np.float64)


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


@dataclass(frozen=True)
class KeptCellScores:
    """KL divergence and entropy of one model over the photos whose true cell is kept.

    Attributes
    ----------
    kl, entropy
        :func:`kl_divergence` and :func:`prediction_entropy` (nats); NaN when
        no photo is in a kept cell.
    photos
        Photos counted (true cell kept).
    outside_share
        Share (0-1) of the given photos whose true location is in no kept cell,
        left out of both numbers.
    n_classes
        Classes of the KL: the kept cells, plus one when some counted photo
        was predicted outside every kept cell (a peer's lat/lon can be).
    """

    kl: float
    entropy: float
    photos: int
    outside_share: float
    n_classes: int


def kept_cell_scores(true_cells: ArrayLike, pred_cells: ArrayLike, n_cells: int) -> KeptCellScores:
    """KL and entropy over the photos whose true cell is kept, as the oracle counts them.

    A photo whose true location lies in no kept cell (cell -1) cannot be
    predicted by any model of the mesh. Giving such photos a class of their
    own, as trigeo once did, adds roughly the same large term to every
    model's KL (``p`` of that class is their share, ``q`` only the +1) and
    so measures the mesh, not the model, and distorts ratios between KLs.
    They are left out here, like in the best possible (oracle) rows, and
    their share is returned beside the scores.

    A model predicting a cell always predicts a kept one, but a peer's lat/lon
    can fall outside every kept cell: among the counted photos those
    predictions form one extra class (true count 0), so that ``p`` and ``q``
    still count the same photos and such misses still cost KL. The class
    exists only when it is used, so that a model of the mesh is scored over
    exactly the mesh's ``n_cells`` classes.

    Parameters
    ----------
    true_cells
        True cell of each photo (-1: in no kept cell).
    pred_cells
        Predicted (top-1) cell of each photo (-1: in no kept cell).
    n_cells
        Kept cells of the mesh.

    Returns
    -------
    KeptCellScores
    """
    true = np.asarray(true_cells).astype(np.int64).reshape(-1)
    pred = np.asarray(pred_cells).astype(np.int64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} true cells but {pred.size} predicted cells")
    kept = true >= 0
    photos = int(kept.sum())
    outside_share = float(1.0 - photos / true.size) if true.size else float("nan")
    if photos == 0:
        nan = float("nan")
        return KeptCellScores(nan, nan, 0, outside_share, n_cells)
    true, pred = true[kept], pred[kept]
    n_classes = n_cells + 1 if (pred < 0).any() else n_cells
    pred = np.where(pred < 0, n_cells, pred)
    return KeptCellScores(
        kl=kl_divergence(true, pred, n_classes),
        entropy=prediction_entropy(pred, n_classes),
        photos=photos,
        outside_share=outside_share,
        n_classes=n_classes,
    )


def outdoor_mask(outdoor: ArrayLike, threshold: float = OUTDOOR_THRESHOLD) -> NDArray[np.bool_]:
    """True for outdoor photos: ``outdoor >= threshold``; missing values count as not outdoor."""
    values = np.asarray(outdoor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= threshold)
