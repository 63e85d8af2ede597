"""Read-only access to an evaluation's ``metrics.json`` by demo role, with clear errors.

:class:`MetricsView` is what :mod:`~trigeo.demo.findings` and
:mod:`~trigeo.demo.report` read: model rows by role, accuracies by threshold,
oracle rows by mesh and label, and the paired tests of a pair in either
order: the Wilcoxon test of errors (over users where metrics.json has the
user-level test, else over photos) and the tests of hits at one threshold
(over users, else the photo-level exact McNemar test). A role that names a
model the evaluation does not have, or a row without a field the report
needs, is an :class:`~trigeo.errors.InputError` naming it, not a ``KeyError``
three calls later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as _replace
from pathlib import Path
from typing import Any

from trigeo.demo.study import STUDY_THRESHOLDS_KM, StudyNumbers, load_study_numbers, study_key
from trigeo.errors import InputError

__all__ = [
    "ALPHA",
    "HitsTestView",
    "MetricsView",
    "WilcoxonView",
    "fmt_p",
    "max_p",
    "pts",
    "series",
]

#: Significance level of every finding.
ALPHA = 0.05


def fmt_p(p: float | None) -> str:
    """``p = 0.031`` / ``p = 2.4e-07``; ``p n/a`` when there is none."""
    if p is None:
        return "p n/a"
    if p == 0.0:
        # scipy's normal approximation underflows to 0 for huge, one-sided samples.
        return "p < 1e-300"
    return f"p = {p:.1e}" if p < 1e-3 else f"p = {p:.3f}"


def pts(difference: float, digits: int = 1, unit: bool = True) -> str:
    """A signed difference of percentages: ``+3.1 pts``."""
    # Round first so that a tie or a tiny negative never prints as "-0.0".
    text = f"{round(difference, digits) + 0.0:+.{digits}f}"
    return f"{text} pts" if unit else text


def series(view: MetricsView, obj: dict[str, Any]) -> str:
    """Accuracies across thresholds, one decimal: ``1.0/10.2/30.1/60.2/90.3``.

    ``obj`` is a metrics.json row (read at the evaluation's thresholds) or a
    plain ``{"1km": ...}`` dict of the study's numbers.
    """
    if "accuracy_pct" in obj:
        values = [view.acc(obj, t) for t in view.thresholds]
    else:
        values = list(obj.values())
    return "/".join(f"{v:.1f}" for v in values)


def max_p(tests: Sequence[WilcoxonView | HitsTestView]) -> float | None:
    """The largest p-value of several tests (None if any is undefined or missing)."""
    ps = [t.p for t in tests]
    return None if any(p is None for p in ps) else max(p for p in ps if p is not None)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _signed(value: Any, flipped: bool) -> float | None:
    """A stored ``a - b`` difference, negated when the pair is stored as ``(b, a)``."""
    number = _finite_or_none(value)
    return -number if number is not None and flipped else number


@dataclass(frozen=True)
class WilcoxonView:
    """The Wilcoxon test of ``a`` against ``b``, oriented so ``median_diff = median(a - b)``.

    ``unit`` is ``"user"`` for the test over per-user mean differences and
    ``"photo"`` for the test over photos; ``fallback`` says why a photo-level
    test stands in for the user-level one (empty when it does not).
    """

    a: str
    b: str
    found: bool
    p: float | None = None
    n_units: int = 0
    n_differing: int = 0
    median_diff: float | None = None
    mean_a: float | None = None
    mean_b: float | None = None
    unit: str = "photo"
    mean_diff: float | None = None
    fallback: str = ""

    @property
    def name(self) -> str:
        """``user-level Wilcoxon`` or ``photo-level Wilcoxon``."""
        return f"{self.unit}-level Wilcoxon"

    @property
    def text(self) -> str:
        """Why there is no usable test, or the p-value."""
        if not self.found:
            return f"metrics.json has no Wilcoxon test of {self.a!r} vs {self.b!r}"
        if self.p is None:
            if self.n_differing == 0:
                return (
                    f"{self.name} p undefined: all {self.n_units} shared {self.unit}s have "
                    "equal errors"
                )
            return f"{self.name} p missing (NaN in metrics.json)"
        return fmt_p(self.p)

    def better(self) -> str | None:
        """The model with the smaller paired errors (None: no difference or unknown).

        The median paired difference decides; it is 0 when most photos (or
        users) tie, as for related models, and then the mean paired difference
        decides (for photos: the models' mean errors, whose difference it is).
        """
        if self.median_diff is not None and self.median_diff != 0:
            return self.a if self.median_diff < 0 else self.b
        if self.mean_diff is not None:
            return None if self.mean_diff == 0 else (self.a if self.mean_diff < 0 else self.b)
        if self.mean_a is None or self.mean_b is None or self.mean_a == self.mean_b:
            return None
        return self.a if self.mean_a < self.mean_b else self.b

    def favours(self, name: str) -> tuple[bool, str]:
        """Whether the test is significant (p < ALPHA) in ``name``'s favour, and why in words."""
        if not self.found or self.p is None:
            return False, self.text
        better = self.better()
        scope = f"{self.n_differing} of {self.n_units} {self.unit}s differ"
        if self.p >= ALPHA:
            return False, f"not significant: {self.name} {fmt_p(self.p)} ≥ {ALPHA} ({scope})"
        if better != name:
            who = better or "neither model"
            return (
                False,
                f"{self.name} {fmt_p(self.p)} but the paired errors favour {who} ({scope})",
            )
        median = ""
        if self.median_diff:
            per = "per-user mean " if self.unit == "user" else ""
            median = f", median {per}paired difference {abs(self.median_diff):,.1f} km"
        return True, f"{self.name} {fmt_p(self.p)} in {name}'s favour ({scope}{median})"


@dataclass(frozen=True)
class HitsTestView:
    """A paired test of hits (error within ``threshold_km``) of ``a`` against ``b``.

    ``unit`` ``"user"``: the Wilcoxon test over users of the per-user hit-rate
    difference (``detail`` gives its mean); ``"photo"``: the exact McNemar test
    of the photos only one model hits. ``better`` names the model with more
    hits (None when level or unknown).
    """

    a: str
    b: str
    threshold_km: float
    found: bool
    unit: str = ""
    p: float | None = None
    better: str | None = None
    detail: str = ""
    fallback: str = ""

    @property
    def name(self) -> str:
        """``user-level Wilcoxon of hits`` or ``photo-level exact McNemar``."""
        return "user-level Wilcoxon of hits" if self.unit == "user" else "photo-level exact McNemar"

    @property
    def text(self) -> str:
        """The test and its p-value at the threshold, or why there is none."""
        at = f"{self.threshold_km:g} km"
        if not self.found:
            return f"metrics.json has no paired test of hits at {at} for {self.a!r} vs {self.b!r}"
        return f"{at}: {self.name} {fmt_p(self.p)} ({self.detail})"

    def favours(self, name: str) -> tuple[bool, str]:
        """Whether the test is significant (p < ALPHA) in ``name``'s favour, and why in words."""
        if not self.found or self.p is None:
            return False, self.text if not self.found else f"{self.text}: p undefined"
        if self.p >= ALPHA:
            return False, f"{self.text}: not significant"
        if self.better != name:
            return False, f"{self.text}: favours {self.better or 'neither model'}"
        return True, f"{self.text} in {name}'s favour"


class MetricsView:
    """One evaluation's metrics.json, read by demo role.

    Parameters
    ----------
    metrics
        The loaded metrics.json.
    roles
        Role -> display name in ``metrics["models"]``.
    meshes
        Mesh name -> ``{"path", "cells", "kind", "rule"}``.
    study
        The study's numbers (default: the packaged ``study.json``).
    """

    def __init__(
        self,
        metrics: dict[str, Any],
        roles: dict[str, str],
        meshes: dict[str, dict[str, Any]],
        study: StudyNumbers | None = None,
    ) -> None:
        if not isinstance(metrics, dict):
            raise InputError(
                f"metrics should be the metrics.json dict, got {type(metrics).__name__}"
            )
        for name in ("models", "wilcoxon"):
            if not isinstance(metrics.get(name), list):
                raise InputError(f"metrics.json has no {name!r} list", column=name)
        self.metrics = metrics
        self.roles = dict(roles)
        self.meshes = meshes
        self.study = study or load_study_numbers()
        self.by_name: dict[str, dict[str, Any]] = {}
        for i, row in enumerate(metrics["models"]):
            if not isinstance(row, dict) or "model" not in row or "accuracy_pct" not in row:
                raise InputError(f"metrics.json models[{i}] lacks 'model' or 'accuracy_pct'")
            self.by_name[row["model"]] = row
        config = metrics.get("config") or {}
        self.thresholds: tuple[float, ...] = tuple(
            float(t) for t in config.get("thresholds_km", STUDY_THRESHOLDS_KM)
        )
        self.oracle: list[dict[str, Any]] = list(metrics.get("oracle") or [])

    def threshold_text(self) -> str:
        return "/".join(f"{t:g}" for t in self.thresholds)

    def row(self, role: str) -> dict[str, Any] | None:
        """The model row of a role; None when the role was not run."""
        name = self.roles.get(role)
        if name is None:
            return None
        if name not in self.by_name:
            have = ", ".join(repr(n) for n in self.by_name) or "none"
            raise InputError(
                f"role {role!r} names model {name!r}, which metrics.json does not have "
                f"(its models: {have})"
            )
        return self.by_name[name]

    def missing_role(self, role: str) -> str:
        # The verdict column already says "not run"; the reason need not repeat it.
        return f"this run has no {role} model (role {role!r} not given)"

    def rows(self, *roles: str) -> tuple[list[dict[str, Any]], str | None]:
        """The model rows of ``roles``, or ``([], why)`` naming the first role not run."""
        found = [self.row(role) for role in roles]
        for role, row in zip(roles, found, strict=True):
            if row is None:
                return [], self.missing_role(role)
        return [row for row in found if row is not None], None

    def acc(self, row: dict[str, Any], threshold_km: float, name: str | None = None) -> float:
        """A row's accuracy (percent) at a threshold."""
        key = study_key(threshold_km)
        value = _finite_or_none((row.get("accuracy_pct") or {}).get(key))
        if value is None:
            who = name or row.get("model", "a row")
            raise InputError(f"metrics.json: {who} has no accuracy at {key}", column=key)
        return value

    def count(self, row: dict[str, Any], field: str, name: str | None = None) -> int:
        value = row.get(field)
        if not isinstance(value, int) or value < 0:
            who = name or row.get("model", "a row")
            raise InputError(f"metrics.json: {who} has no photo count {field!r}", column=field)
        return value

    @staticmethod
    def hits(accuracy_pct: float, photos: int, name: str) -> int:
        """Photos within the threshold, recovered from a percentage of ``photos``."""
        hits = round(accuracy_pct * photos / 100.0)
        # A percentage of n photos is k/n exactly: a value far from that is not a count.
        if photos and abs(hits - accuracy_pct * photos / 100.0) > 0.01:
            raise InputError(f"{name}: {accuracy_pct}% of {photos} photos is not a whole count")
        return int(hits)

    def oracle_row(self, mesh: str, label: str) -> dict[str, Any] | None:
        """The best possible row of a mesh (by name or its file's stem) and label."""
        names = {mesh}
        if mesh in self.meshes:
            names.add(Path(str(self.meshes[mesh]["path"])).stem)
        for row in self.oracle:
            if row.get("mesh") in names and row.get("label") == label:
                return row
        return None

    def _entry(self, a: str, b: str) -> tuple[dict[str, Any] | None, bool]:
        """The metrics.json test entry of the pair, and whether it is stored as (b, a)."""
        for test in self.metrics["wilcoxon"]:
            pair = (test.get("model_a"), test.get("model_b"))
            if pair in ((a, b), (b, a)):
                return test, pair == (b, a)
        return None, False

    def wilcoxon(self, a: str, b: str) -> WilcoxonView:
        """The photo-level test of ``a`` vs ``b`` (stored either way), oriented as ``a - b``."""
        means = [_finite_or_none(self.by_name.get(n, {}).get("mean_error_km")) for n in (a, b)]
        test, flipped = self._entry(a, b)
        if test is None:
            return WilcoxonView(a, b, False, mean_a=means[0], mean_b=means[1])
        median = _signed(test.get("median_difference_km"), flipped)
        return WilcoxonView(
            a,
            b,
            True,
            _finite_or_none(test.get("p_value")),
            int(test.get("n_photos", 0)),
            int(test.get("n_differing", 0)),
            median,
            means[0],
            means[1],
        )

    def paired(self, a: str, b: str) -> WilcoxonView:
        """The user-level Wilcoxon test of ``a`` vs ``b`` where metrics.json has one.

        Otherwise the photo-level test, with ``fallback`` saying why: photos of
        one user are not independent, so a photo-level p-value overstates the
        evidence, and the reader should know which one decided.
        """
        test, flipped = self._entry(a, b)
        user = None if test is None else test.get("user")
        if test is None or not isinstance(user, dict):
            photo = self.wilcoxon(a, b)
            if test is None:
                return photo
            why = (
                "the truth has no user ids"
                if "user" in test
                else "metrics.json predates user-level tests"
            )
            return _replace(photo, fallback=f"photo-level test: {why}")
        return WilcoxonView(
            a,
            b,
            True,
            _finite_or_none(user.get("p_value")),
            int(user.get("n_users", 0)),
            int(user.get("n_differing", 0)),
            _signed(user.get("median_difference_km"), flipped),
            unit="user",
            mean_diff=_signed(user.get("mean_difference_km"), flipped),
        )

    def mcnemar(self, a: str, b: str, threshold_km: float) -> HitsTestView:
        """The photo-level exact McNemar test of hits at a threshold (None-found if absent)."""
        test, flipped = self._entry(a, b)
        key = study_key(threshold_km)
        entry = ((test or {}).get("mcnemar") or {}).get(key)
        if not isinstance(entry, dict):
            return HitsTestView(a, b, threshold_km, False)
        only = [int(entry.get("a_only", 0)), int(entry.get("b_only", 0))]
        only_a, only_b = only[::-1] if flipped else only
        better = None if only_a == only_b else (a if only_a > only_b else b)
        detail = f"{only_a} photos only {a} hits, {only_b} only {b}"
        p = _finite_or_none(entry.get("p_value"))
        return HitsTestView(a, b, threshold_km, True, "photo", p, better, detail)

    def hits_test(self, a: str, b: str, threshold_km: float) -> HitsTestView:
        """The user-level test of hits at a threshold, else the photo-level McNemar test."""
        test, flipped = self._entry(a, b)
        user = None if test is None else test.get("user")
        key = study_key(threshold_km)
        entry = ((user or {}).get("hits") or {}).get(key) if isinstance(user, dict) else None
        if not isinstance(entry, dict):
            photo = self.mcnemar(a, b, threshold_km)
            why = "no user-level test of hits" + (
                " (the truth has no user ids)" if test is not None and "user" in test else ""
            )
            return _replace(photo, fallback=f"photo-level test: {why}") if photo.found else photo
        # mean_difference_pct is the mean over users of hit-rate(a) - hit-rate(b).
        mean = _signed(entry.get("mean_difference_pct"), flipped)
        better = None if not mean else (a if mean > 0 else b)
        detail = f"mean per-user hit rate {a} minus {b} " + ("n/a" if mean is None else pts(mean))
        p = _finite_or_none(entry.get("p_value"))
        return HitsTestView(a, b, threshold_km, True, "user", p, better, detail)

    def beats_at_most(
        self, a: dict[str, Any], b: dict[str, Any], test: WilcoxonView
    ) -> tuple[str, list[str], str]:
        """Row ``a`` above row ``b`` at most thresholds, significantly (p < ALPHA).

        Returns
        -------
        numbers, problems, why
            This run's numbers in words; what contradicts the claim (empty when
            it holds); and, when it holds, why in words.
        """
        name_a, name_b = a["model"], b["model"]
        diffs = [(t, self.acc(a, t) - self.acc(b, t)) for t in self.thresholds]
        wins = [t for t, d in diffs if d > 0]
        numbers = (
            f"{name_a} {series(self, a)} vs {name_b} {series(self, b)} % at "
            f"{self.threshold_text()} km; {test.name} {fmt_p(test.p)}"
        )
        problems = []
        if len(wins) * 2 <= len(diffs):
            worse = ", ".join(f"{t:g} km ({pts(d)})" for t, d in diffs if d <= 0)
            problems.append(
                f"{name_a} is above {name_b} at only {len(wins)} of {len(diffs)} thresholds "
                f"(not above at {worse})"
            )
        ok_p, p_text = test.favours(name_a)
        if not ok_p:
            problems.append(p_text)
        gains = ", ".join(f"{t:g} km {pts(d)}" for t, d in diffs)
        why = f"above at {len(wins)} of {len(diffs)} thresholds ({gains}); {p_text}"
        return numbers, problems, why
