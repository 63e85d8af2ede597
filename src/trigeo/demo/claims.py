"""The pieces every finding is built from: :class:`Finding`, :class:`Claim`, the rules' constants.

:mod:`~trigeo.demo.findings` and :mod:`~trigeo.demo.findings_heads` judge the
claims; this module holds what they share, so that each rule's number (a
slack, a share, a tolerance) is named once, with the reason for its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trigeo.demo.metrics_view import HitsTestView, MetricsView, WilcoxonView, pts

__all__ = [
    "ALBUM_SHARE",
    "HIER_SLACK_POINTS",
    "KL_TOLERANCE",
    "STUDY_EVIDENCE",
    "TIE_POINTS",
    "VERDICTS",
    "Claim",
    "Finding",
    "fallbacks",
    "pairwise",
    "study_diff",
    "tests_unit",
]

VERDICTS = ("reproduced", "not reproduced", "not run")
#: The hierarchical model may trail the better single mesh by this much at a threshold.
HIER_SLACK_POINTS = 0.5
#: Accuracies this close count as level where a claim allows ties: the study's coarse
#: imagery centroid is 0.01 points below the cell centroid at 750 km (99.98 vs 99.99).
TIE_POINTS = 0.5
#: M3's gain over M2 must be at least this share of album averaging's gain over M2 at
#: 200 and 750 km. The study's M3 reaches 47% (200 km) and 49% (750 km) of its only
#: averaging row's gain (user averaging, which pools more photos than an album), so
#: one half would fail the study's own table.
ALBUM_SHARE = 0.4
#: M3's KL may exceed M2's by this factor: the study's 0.4991 against 0.4998 is a tie.
KL_TOLERANCE = 1.05
#: What the study publishes for each claim: "rows" (its tables decide the claim),
#: "stated without numbers" or "trigeo's extension". The test on the study's own rows
#: asserts "reproduced" for the first and names the reason for the others.
STUDY_EVIDENCE = {
    "imagery_vs_cell": "rows",
    "coarse_vs_fine": "rows",
    "time_helps": "rows",
    "albums_help": "rows",
    "user_averaging": "rows",
    "outdoor_gain": "stated without numbers",
    "triangles_vs_quadtree": "stated without numbers",
    "hierarchical": "trigeo's extension",
}


@dataclass(frozen=True)
class Finding:
    """One claim, this run's evidence and the verdict.

    Attributes
    ----------
    claim : str
        The claim, in the study's terms.
    numbers : str
        This run's numbers behind the verdict.
    p_value : float or None
        The largest of the p-values the verdict needs (all must be < 0.05);
        None when no test applies or the test is undefined (``why`` says which).
    verdict : {"reproduced", "not reproduced", "not run"}
    why : str
        What the numbers show, in words.
    key : str
        Short identifier (``time_helps``).
    study : str
        The study's published evidence for the claim.
    unit : str
        What the deciding tests resample: ``"user"``, ``"photo"``,
        ``"user and photo"``, or ``""`` when no test decided.
    """

    claim: str
    numbers: str
    p_value: float | None
    verdict: str
    why: str
    key: str = ""
    study: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Claim:
    """A claim under test; builds its :class:`Finding` from the problems found."""

    key: str
    claim: str
    study: str

    def not_run(self, why: str, numbers: str = "—", unit: str = "") -> Finding:
        """The finding when a model, row or test it needs is missing (``why`` says which)."""
        return Finding(self.claim, numbers, None, "not run", why, self.key, self.study, unit)

    def judge(
        self,
        numbers: str,
        p: float | None,
        problems: list[str],
        why_ok: str,
        unit: str = "",
        missing: Sequence[str] = (),
    ) -> Finding:
        """Reproduced when nothing contradicts the claim and every part ran.

        ``missing`` names parts that could not be checked: alone they make the
        finding "not run" (with what did hold); beside a problem they are said.
        """
        if problems:
            why = "; ".join([*problems, *missing])
            return Finding(
                self.claim, numbers, p, "not reproduced", why, self.key, self.study, unit
            )
        if missing:
            why = "; ".join([*missing, why_ok])
            return Finding(self.claim, numbers, p, "not run", why, self.key, self.study, unit)
        return Finding(self.claim, numbers, p, "reproduced", why_ok, self.key, self.study, unit)


def tests_unit(tests: Sequence[WilcoxonView | HitsTestView]) -> str:
    """The units the tests resample, in words (``user``, ``photo``, ``user and photo``)."""
    units = {t.unit for t in tests if t.found}
    return " and ".join(u for u in ("user", "photo") if u in units)


def fallbacks(tests: Sequence[WilcoxonView | HitsTestView]) -> list[str]:
    """Why photo-level tests stood in for user-level ones, each reason once."""
    return list(dict.fromkeys(t.fallback for t in tests if t.found and t.fallback))


def pairwise(c: Claim, view: MetricsView, a: dict[str, Any], b: dict[str, Any]) -> Finding:
    """The claim "A is above B at most thresholds, significantly" (user-level where possible)."""
    test = view.paired(a["model"], b["model"])
    if not test.found:
        return c.not_run(test.text)
    numbers, problems, why = view.beats_at_most(a, b, test)
    notes = fallbacks([test])
    why = "; ".join([why, *notes])
    return c.judge(
        numbers, test.p, [*problems, *notes] if problems else [], why, tests_unit([test])
    )


def study_diff(view: MetricsView, a: str, b: str) -> str:
    """The study's headline row ``a`` minus row ``b`` per threshold: ``-0.05/-0.10/...``."""
    ra, rb = view.study.headline[a].accuracy_pct, view.study.headline[b].accuracy_pct
    return "/".join(pts(ra[k] - rb[k], 2, unit=False) for k in ra)
