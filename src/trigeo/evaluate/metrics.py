"""The study's metrics: distance, accuracy at thresholds, KL divergence, significance.

Every function here is pure numpy/scipy and vectorized; the choices that peer
projects disagree on are explicit parameters with the study's defaults:

- distance on a sphere of radius ``R = 6372.795`` km (haversine form);
- a photo counts as correct at threshold ``t`` when ``d <= t`` (``strict_less=True``
  gives ``d < t``);
- thresholds 1, 25, 200, 750 and 2500 km;
- KL divergence and entropy over the photos whose true cell is kept
  (:func:`kept_cell_scores`);
- bootstrap intervals and paired tests either per photo or per user: a user's
  photos are not independent (same places, same camera, often the same trip),
  so the user is the unit that can be treated as independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM, distance_km

__all__ = [
    "CI_UNITS",
    "DEFAULT_THRESHOLDS_KM",
    "MISS_ERROR_KM",
    "USER_TEST",
    "WILCOXON_ZERO_METHOD",
    "KeptCellScores",
    "WilcoxonResult",
    "accuracy_at",
    "bootstrap_accuracy_ci",
    "class_frequencies",
    "compare_models",
    "error_km",
    "kept_cell_scores",
    "kl_divergence",
    "mcnemar_tests",
    "outdoor_mask",
    "prediction_entropy",
    "summarize_errors",
    "threshold_keys",
    "user_codes",
    "user_paired_test",
]

#: The study's accuracy thresholds (street, city, region, country, continent).
DEFAULT_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)

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
    block = max(1, _BOOTSTRAP_BLOCK // n_users)
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        # Drawing G users with replacement = how often each user is drawn, by one bincount.
        draws = rng.integers(0, n_users, size=(size, n_users))
        offsets = (np.arange(size) * n_users)[:, None]
        weights = np.bincount((draws + offsets).ravel(), minlength=size * n_users)
        weights = weights.reshape(size, n_users).astype(np.float64)
        within[start : start + size] = (
            100.0 * (weights @ hits_user) / (weights @ photos_user)[:, None]
        )
    return within


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


#: What the user-level paired test of :func:`user_paired_test` is, as metrics.json names it.
USER_TEST = "wilcoxon of per-user mean paired differences"

#: Per-user mean differences within this many km of 0 are ties: float sums of
#: differences that cancel (+x and -x) can leave rounding noise, which is no
#: evidence for either model (1e-9 km is a micrometre).
_USER_TIE_KM = 1e-9


#: How :func:`compare_models` treats photos on which two models' errors are equal:
#: scipy's ``zero_method="wilcox"``, i.e. they are left out of the test.
WILCOXON_ZERO_METHOD = "wilcox"


@dataclass(frozen=True)
class WilcoxonResult:
    """Paired tests of two models on their shared photos (differences ``a - b``).

    The top-level numbers are the Wilcoxon signed-rank test of paired
    per-photo errors: ``n_photos`` counts the photos both models scored,
    ``n_differing`` the photos where their errors differ, the only ones the
    test ranks. ``mcnemar`` holds, per threshold key (``"25km"``), the exact
    McNemar test of hits at that threshold (:func:`mcnemar_tests`); ``user``
    the same comparisons with users as the unit (:func:`user_paired_test`),
    None when the photos' users are unknown.
    """

    model_a: str
    model_b: str
    n_photos: int
    statistic: float
    p_value: float
    median_difference_km: float
    n_differing: int
    mcnemar: dict[str, dict[str, Any]] = field(default_factory=dict)
    user: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "unit": "photo",
            "n_photos": self.n_photos,
            "n_differing": self.n_differing,
            "zero_method": WILCOXON_ZERO_METHOD,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "median_difference_km": self.median_difference_km,
            "mcnemar": self.mcnemar,
            "user": self.user,
        }


def _signed_rank(differences: NDArray[np.float64]) -> tuple[float, float]:
    """Wilcoxon signed-rank ``(statistic, p)`` of non-zero differences (NaN, NaN if none).

    The caller removes ties first, for the reasons given in :func:`compare_models`.
    """
    from scipy.stats import wilcoxon

    if differences.size == 0:
        return float("nan"), float("nan")
    res = wilcoxon(differences, zero_method=WILCOXON_ZERO_METHOD)
    return float(res.statistic), float(res.pvalue)


def _hit_matrix(
    errors_km: NDArray[np.float64], thresholds: NDArray[np.float64], strict_less: bool
) -> NDArray[np.bool_]:
    """``hits[i, j]``: photo ``i`` is within threshold ``j`` (``d <= t``, or ``d < t``)."""
    if strict_less:
        return errors_km[:, None] < thresholds[None, :]
    return errors_km[:, None] <= thresholds[None, :]


def mcnemar_tests(
    hits_a: ArrayLike, hits_b: ArrayLike, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Exact McNemar test of paired hits per threshold (photo level).

    Only discordant photos carry information: ``a_only`` photos are within the
    threshold for model a and not for b, ``b_only`` the reverse. Under the
    null hypothesis (both models equally accurate at ``t``) each discordant
    photo is a fair coin, so ``p`` is the two-sided exact binomial test of
    ``b_only`` successes in ``a_only + b_only`` trials at 0.5 (1.0 when no
    photo is discordant: nothing speaks against the null).

    Parameters
    ----------
    hits_a, hits_b
        Boolean ``(photos, thresholds)`` hits of each model on the same photos.
    keys
        Threshold keys (:func:`threshold_keys`), one per column.

    Returns
    -------
    dict
        Key -> ``{"a_only": int, "b_only": int, "p_value": float}``.
    """
    from scipy.stats import binom

    a = np.asarray(hits_a, dtype=bool)
    b = np.asarray(hits_b, dtype=bool)
    a_only = np.sum(a & ~b, axis=0)
    b_only = np.sum(b & ~a, axis=0)
    # binomtest(b_only, n, 0.5) two-sided sums the outcomes no likelier than b_only; at
    # p = 0.5 the distribution is symmetric, so that is both tails beyond min(b, n - b):
    # 2 * cdf(min(b, n - b)), capped at 1. One vectorised call instead of one per
    # threshold and pair (equality with binomtest is tested).
    n = a_only + b_only
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(b_only, n - b_only), n, 0.5))
    p = np.where(n == 0, 1.0, p)
    return {
        key: {"a_only": int(n_a), "b_only": int(n_b), "p_value": float(p_t)}
        for key, n_a, n_b, p_t in zip(keys, a_only, b_only, p, strict=True)
    }


def _user_means(
    values: NDArray[np.float64], dense: NDArray[np.int64], counts: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Mean of ``values`` per user (dense codes ``0..G-1``, ``counts`` photos per user)."""
    return np.bincount(dense, weights=values, minlength=counts.size) / counts


def user_paired_test(
    differences_km: ArrayLike,
    users: ArrayLike,
    hit_differences: dict[str, ArrayLike] | None = None,
) -> dict[str, Any]:
    """Wilcoxon signed-rank test over users of per-user mean paired differences.

    For each user ``u``, ``d_u`` is the mean over that user's shared photos of
    ``error_a - error_b``; the test ranks the ``d_u``. It asks whether users,
    not photos, are better served by one model: a user who holds many photos
    counts once, so that one prolific user (whose photos agree with each other
    far more than photos of different users do) cannot decide the test alone.
    Users with ``d_u == 0`` (in practice every shared photo tied) are left
    out, for the reasons given in :func:`compare_models`; mean differences
    within a micrometre of 0 count as 0, since summing differences that cancel
    can leave rounding noise.

    Parameters
    ----------
    differences_km
        ``error_a - error_b`` per shared photo.
    users
        The user of each of those photos (ids or :func:`user_codes`).
    hit_differences
        Optional threshold key -> ``hit_a - hit_b`` (-1, 0 or 1) per shared
        photo; each gets a Wilcoxon test over users of the per-user hit-rate
        difference.

    Returns
    -------
    dict
        ``test`` (:data:`USER_TEST`), ``p_value`` (None when every ``d_u`` is
        0 or there are no photos), ``n_users`` (users with shared photos),
        ``n_differing`` (users tested), ``median_difference_km`` and
        ``mean_difference_km`` (over all users, ties included; negative
        favours model a) and ``hits``: key -> ``{"p_value", "mean_difference_pct"}``
        (the mean over users of the hit-rate difference, in percentage points).
    """
    diff = np.asarray(differences_km, dtype=np.float64).reshape(-1)
    codes = np.asarray(users).reshape(-1)
    if codes.size != diff.size:
        raise ValueError(f"{codes.size} users for {diff.size} differences")
    if codes.dtype.kind not in "iu" or (codes.size and codes.min() < 0):
        codes = user_codes(codes)
    hit_differences = hit_differences or {}
    if diff.size == 0:
        return {
            "test": USER_TEST,
            "p_value": None,
            "n_users": 0,
            "n_differing": 0,
            "median_difference_km": None,
            "mean_difference_km": None,
            "hits": {
                key: {"p_value": None, "mean_difference_pct": None} for key in hit_differences
            },
        }
    # Dense codes of the users present, formed once for the errors and every threshold.
    _, dense = np.unique(codes, return_inverse=True)
    counts = np.bincount(dense)
    d_u = _user_means(diff, dense, counts)
    d_u[np.abs(d_u) < _USER_TIE_KM] = 0.0
    differing = d_u[d_u != 0]
    _, p = _signed_rank(differing)
    hits = {}
    for key, values in hit_differences.items():
        # Integer sums: a user's hit-rate difference is exactly 0 when it should be.
        rate = _user_means(np.asarray(values, dtype=np.float64).reshape(-1), dense, counts)
        _, p_hit = _signed_rank(rate[rate != 0])
        hits[key] = {
            "p_value": None if np.isnan(p_hit) else p_hit,
            "mean_difference_pct": float(100.0 * rate.mean()),
        }
    return {
        "test": USER_TEST,
        "p_value": None if np.isnan(p) else p,
        "n_users": int(d_u.size),
        "n_differing": int(differing.size),
        "median_difference_km": float(np.median(d_u)),
        "mean_difference_km": float(d_u.mean()),
        "hits": hits,
    }


def compare_models(
    errors_by_model: dict[str, tuple[NDArray[np.str_], NDArray[np.float64]]],
    *,
    users: tuple[ArrayLike, ArrayLike] | None = None,
    thresholds_km: Sequence[float] = DEFAULT_THRESHOLDS_KM,
    strict_less: bool = False,
) -> list[WilcoxonResult]:
    """Paired tests between every pair of models on their shared photos.

    The main test is the Wilcoxon signed-rank test of the paired per-photo
    errors. Photos on which both errors are exactly equal are left out of the
    test (scipy's ``zero_method="wilcox"``). Two models that pick the same top
    cell for a photo place it at the same point, so their errors there are
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

    Beside it, every pair gets the exact McNemar test of hits at each
    threshold (:func:`mcnemar_tests`) and, when ``users`` is given, the same
    questions asked of users instead of photos (:func:`user_paired_test`):
    photos of one user are not independent, so the photo-level p-values are
    too small when a few users hold many photos.

    Parameters
    ----------
    errors_by_model
        Model name -> ``(photo_ids, errors_km)``. Each pair is tested on the
        photos both models scored, matched by photo id.
    users
        ``(photo_ids, user_ids)``: the user of every photo that may appear
        (a photo not listed counts as a user of its own). None: no user-level
        tests (``user`` is None).
    thresholds_km
        Thresholds of the McNemar and per-user hit tests.
    strict_less
        Count a hit when ``d < t`` instead of ``d <= t``.

    Returns
    -------
    list of WilcoxonResult
        One per unordered pair, in input order. ``n_differing`` says how many
        photos the test used; ``p_value`` is NaN when the test is undefined
        (no shared photos, or all differences zero). ``median_difference_km``
        is over all shared photos, ties included.
    """
    thresholds = _as_thresholds(thresholds_km)
    keys = threshold_keys(thresholds)
    names = list(errors_by_model)
    # Each model's photos' user codes, joined once rather than once per pair.
    model_users: dict[str, NDArray[np.int64]] = {}
    if users is not None:
        user_photo_ids, user_ids = (np.asarray(v) for v in users)
        codes = user_codes(user_ids)
        index = pd.Index(user_photo_ids)
        n_known = int(codes.max()) + 1 if codes.size else 0
        for name in names:
            rows = index.get_indexer(np.asarray(errors_by_model[name][0]))
            # A photo without a listed user is a user of its own: a code past the known
            # users, unique by its position among this model's photos (a pair only ever
            # uses the codes of its first model's photos).
            own = n_known + np.arange(rows.size, dtype=np.int64)
            model_codes = np.where(rows >= 0, codes[np.maximum(rows, 0)] if codes.size else 0, own)
            model_users[name] = model_codes.astype(np.int64)
    results = []
    for i, a in enumerate(names):
        ids_a, err_a = errors_by_model[a]
        for b in names[i + 1 :]:
            ids_b, err_b = errors_by_model[b]
            # Hash join on photo ids (order of model a).
            ib_all = pd.Index(np.asarray(ids_b)).get_indexer(np.asarray(ids_a))
            ia = np.flatnonzero(ib_all >= 0)
            ib = ib_all[ia]
            x, y = np.asarray(err_a, dtype=np.float64)[ia], np.asarray(err_b, dtype=np.float64)[ib]
            diff = x - y
            differing = diff[diff != 0]
            stat, p = _signed_rank(differing)
            median = float(np.median(diff)) if diff.size else float("nan")
            hits_a = _hit_matrix(x, thresholds, strict_less)
            hits_b = _hit_matrix(y, thresholds, strict_less)
            user = None
            if users is not None:
                hit_diff = hits_a.astype(np.int8) - hits_b.astype(np.int8)
                user = user_paired_test(
                    diff,
                    model_users[a][ia],
                    {key: hit_diff[:, j] for j, key in enumerate(keys)},
                )
            results.append(
                WilcoxonResult(
                    a,
                    b,
                    int(diff.size),
                    stat,
                    p,
                    median,
                    int(differing.size),
                    mcnemar=mcnemar_tests(hits_a, hits_b, keys),
                    user=user,
                )
            )
    return results


def outdoor_mask(outdoor: ArrayLike, threshold: float = OUTDOOR_THRESHOLD) -> NDArray[np.bool_]:
    """True for outdoor photos: ``outdoor >= threshold``; missing values count as not outdoor."""
    values = np.asarray(outdoor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= threshold)
