"""Paired significance tests of two models on the same photos: per photo and per user.

- :func:`compare_models`: every pair of models, on the photos both scored:
  the Wilcoxon signed-rank test of paired errors (per photo), exact McNemar
  tests of hits at each threshold (per photo), and the same questions asked
  per user (:func:`user_paired_test`), since a user's photos are not
  independent.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from trigeo.evaluate.metrics import (
    DEFAULT_THRESHOLDS_KM,
    _as_thresholds,
    threshold_keys,
    user_codes,
)

__all__ = [
    "USER_TEST",
    "WILCOXON_ZERO_METHOD",
    "WilcoxonResult",
    "compare_models",
    "mcnemar_tests",
    "user_paired_test",
]


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
