"""The study's findings, checked against one evaluation's ``metrics.json``.

Each :class:`Finding` states a claim of the 2018 study (or of trigeo's
extensions of it), this run's numbers, a p-value and a verdict. A claim whose
models were not run says "not run"; a claim the numbers contradict says which
threshold, by how many points, or that the test was not significant. The
wording of ``why`` is always built from the numbers, never a canned claim.

Significance is the evaluation's own Wilcoxon signed-rank test of paired
per-photo errors (two-sided; ties left out). Its ``median_difference_km`` is
``median(error_a - error_b)`` over the shared photos: negative favours
``model_a``. Related models tie on most photos, which makes that median 0; the
direction is then read from the models' mean errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trigeo.demo.metrics_view import ALPHA, MetricsView, fmt_p, max_p, pts, series
from trigeo.errors import InputError

__all__ = ["ALPHA", "ROLE_KEYS", "VERDICTS", "Finding", "evaluate_findings"]

VERDICTS = ("reproduced", "not reproduced", "not run")
#: Every role the pipeline may name, in the order the report lists models.
ROLE_KEYS = (
    "m1_coarse",
    "m1_fine",
    "m1_s2",
    "m1_coarse_cell",
    "m1_fine_cell",
    "m1_s2_cell",
    "m2",
    "m3",
    "hier",
    "knn",
    "prior",
)
_MESH_FIELDS = ("path", "cells", "kind", "rule")
#: The hierarchical model may trail the better single mesh by this much at a threshold.
HIER_SLACK_POINTS = 0.5


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
    """

    claim: str
    numbers: str
    p_value: float | None
    verdict: str
    why: str
    key: str = ""
    study: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class _Claim:
    """A claim under test; builds its :class:`Finding` from the problems found."""

    key: str
    claim: str
    study: str

    def not_run(self, why: str, numbers: str = "—") -> Finding:
        return Finding(self.claim, numbers, None, "not run", why, self.key, self.study)

    def judge(self, numbers: str, p: float | None, problems: list[str], why_ok: str) -> Finding:
        """Reproduced when nothing contradicts the claim; otherwise say what does."""
        if problems:
            why = "; ".join(problems)
            return Finding(self.claim, numbers, p, "not reproduced", why, self.key, self.study)
        return Finding(self.claim, numbers, p, "reproduced", why_ok, self.key, self.study)


def _pairwise(c: _Claim, view: MetricsView, a: dict[str, Any], b: dict[str, Any]) -> Finding:
    """The claim "A is above B at most thresholds, significantly"."""
    test = view.wilcoxon(a["model"], b["model"])
    if not test.found:
        return c.not_run(test.text)
    numbers, problems, why = view.beats_at_most(a, b, test)
    return c.judge(numbers, test.p, problems, why)


def _study_diff(view: MetricsView, a: str, b: str) -> str:
    ra, rb = view.study.headline[a].accuracy_pct, view.study.headline[b].accuracy_pct
    return "/".join(pts(ra[k] - rb[k], 2, unit=False) for k in ra)


def _imagery_vs_cell(view: MetricsView) -> Finding:
    img_s, cell_s = (view.study.best_possible[("coarse", k)] for k in ("imagery", "cell"))
    c = _Claim(
        "imagery_vs_cell",
        "The imagery centroid beats the cell centroid (coarse and fine)",
        f"best possible, coarse: imagery {series(view, img_s.accuracy_pct)} vs cell "
        f"{series(view, cell_s.accuracy_pct)} % (strongest on coarse meshes)",
    )
    parts, problems, skipped, tests = [], [], [], []
    for mesh in ("coarse", "fine"):
        img, cell = view.row(f"m1_{mesh}"), view.row(f"m1_{mesh}_cell")
        if img is None or cell is None:
            skipped.append(view.missing_role(f"m1_{mesh}" if img is None else f"m1_{mesh}_cell"))
            continue
        test = view.wilcoxon(img["model"], cell["model"])
        tests.append(test)
        parts.append(
            f"{mesh}: imagery {series(view, img)} vs cell {series(view, cell)} ({fmt_p(test.p)})"
        )
        behind = [(t, view.acc(cell, t) - view.acc(img, t)) for t in view.thresholds]
        if any(d > 0 for _, d in behind):
            ahead = ", ".join(f"{t:g} km ({pts(d)})" for t, d in behind if d > 0)
            problems.append(f"{mesh}: the cell centroid is ahead at {ahead}")
        ok_p, p_text = test.favours(img["model"])
        if not ok_p:
            problems.append(f"{mesh}: {p_text}")
    if not parts:
        return c.not_run("; ".join(skipped))
    numbers = f"% at {view.threshold_text()} km; " + "; ".join(parts)
    missing = [t.text for t in tests if not t.found]
    if missing:
        return c.not_run("; ".join(missing), numbers)
    done = " and ".join(p.split(":")[0] for p in parts)
    why = f"imagery ≥ cell at every threshold on {done}, p < {ALPHA} in imagery's favour"
    # A mesh that was not run is said either way; it alone does not decide the verdict.
    problems += skipped if problems else []
    return c.judge(numbers, max_p(tests), problems, "; ".join([why, *skipped]))


def _coarse_vs_fine(view: MetricsView) -> Finding:
    sc, sf = view.study.headline["m1_coarse"], view.study.headline["m1_fine"]
    c = _Claim(
        "coarse_vs_fine",
        "Coarse meshes win at 750 and 2500 km; fine meshes win at 1 and 25 km",
        f"M1 coarse {series(view, sc.accuracy_pct)} vs fine {series(view, sf.accuracy_pct)} %",
    )
    rows, missing = view.rows("m1_coarse", "m1_fine")
    if missing:
        return c.not_run(missing)
    coarse, fine = rows
    test = view.wilcoxon(coarse["model"], fine["model"])
    numbers = (
        f"coarse {series(view, coarse)} vs fine {series(view, fine)} % at "
        f"{view.threshold_text()} km; {fmt_p(test.p)}"
    )
    problems, ties = [], []
    for side, other, win, lose, ts in (
        ("coarse", "fine", coarse, fine, (750.0, 2500.0)),
        ("fine", "coarse", fine, coarse, (1.0, 25.0)),
    ):
        diffs = [(t, view.acc(win, t) - view.acc(lose, t)) for t in ts]
        problems += [f"{other} leads at {t:g} km by {pts(-d)}" for t, d in diffs if d < 0]
        ties += [f"tie at {t:g} km ({view.acc(win, t):.1f}%)" for t, d in diffs if d == 0]
        if all(d == 0 for _, d in diffs):
            problems.append(f"{side} wins at neither {ts[0]:g} nor {ts[1]:g} km (ties)")
    # The Wilcoxon test compares whole error distributions; it cannot test a crossover.
    p_note = f"{fmt_p(test.p)} compares the overall paired errors, not the crossover"
    margins = ", ".join(
        f"{t:g} km {pts(view.acc(coarse, t) - view.acc(fine, t))}" for t in view.thresholds
    )
    extra = [*ties, p_note]
    if problems:
        share = _share_of_best(view, coarse, fine)
        problems += [*extra, *([share] if share else [])]
    return c.judge(numbers, test.p, problems, "; ".join([f"coarse minus fine: {margins}", *extra]))


def _share_of_best(view: MetricsView, coarse: dict[str, Any], fine: dict[str, Any]) -> str:
    """How much of each mesh's best possible 25 km accuracy its model reached.

    A fine mesh can only win at short range if its model learns its many
    cells; a fine head far further below its ceiling than the coarse head is
    the usual reason the crossover is missing on small data.
    """
    parts = []
    for name, row in (("coarse", coarse), ("fine", fine)):
        best = view.oracle_row(name, "imagery")
        if best is None or 25.0 not in view.thresholds:
            return ""
        ceiling = view.acc(best, 25.0)
        reached = view.acc(row, 25.0)
        parts.append(
            f"{name} {reached:.1f}% of a possible {ceiling:.1f}%"
            + (f" ({100 * reached / ceiling:.0f}%)" if ceiling else "")
        )
    return "at 25 km the models reach " + " and ".join(parts) + " (best possible, imagery)"


def _time_helps(view: MetricsView) -> Finding:
    c = _Claim(
        "time_helps",
        "Time of posting helps: M2 beats M1 (coarse)",
        f"M2 − M1 coarse {_study_diff(view, 'm2', 'm1_coarse')} points; {view.study.time_text}",
    )
    rows, missing = view.rows("m2", "m1_coarse")
    return c.not_run(missing) if missing else _pairwise(c, view, *rows)


def _albums_help(view: MetricsView) -> Finding:
    c = _Claim(
        "albums_help",
        "Albums help (M3 beats M2) and keep KL divergence lowest",
        f"M3 − M2 coarse {_study_diff(view, 'm3', 'm2')} points; M3 has the lowest KL",
    )
    rows, missing = view.rows("m3", "m2")
    if missing:
        return c.not_run(missing)
    m3, m2 = rows
    base = _pairwise(c, view, m3, m2)
    if base.verdict == "not run":
        return base
    rows = [r for r in (view.row("m1_coarse"), m2, m3) if r is not None]
    kls = {r["model"]: r.get("kl_divergence") for r in rows}
    kl_text = ", ".join(f"{n} {'n/a' if v is None else f'{v:.3f}'}" for n, v in kls.items())
    numbers = f"{base.numbers}; KL {kl_text}"
    mine = kls[m3["model"]]
    if mine is None:
        return c.not_run(f"metrics.json has no KL for {m3['model']} (no mesh given?)", numbers)
    lower = [
        f"{n} {v:.3f}" for n, v in kls.items() if n != m3["model"] and v is not None and v <= mine
    ]
    problems = [] if base.verdict == "reproduced" else [base.why]
    if lower:
        problems.append(f"KL of {m3['model']} ({mine:.3f}) is not the lowest: {', '.join(lower)}")
    return c.judge(numbers, base.p_value, problems, f"{base.why}; lowest KL ({mine:.3f})")


def _user_avg(view: MetricsView) -> Finding:
    c = _Claim(
        "user_averaging",
        "User averaging helps: M1 coarse +user-avg beats M1 coarse",
        f"user averaging − M1 coarse {_study_diff(view, 'user_avg', 'm1_coarse')} points",
    )
    m1 = view.row("m1_coarse")
    if m1 is None:
        return c.not_run(view.missing_role("m1_coarse"))
    name = f"{m1['model']} +user-avg"
    if name not in view.by_name:
        return c.not_run(f"metrics.json has no row {name!r} (evaluate without --averaging?)")
    return _pairwise(c, view, view.by_name[name], m1)


def _outdoor(view: MetricsView) -> Finding:
    lo, hi = view.study.outdoor_gain_points
    ts = view.study.outdoor_thresholds_km
    c = _Claim(
        "outdoor_gain",
        "Outdoor-only evaluation gains accuracy at region and country level (M1 coarse)",
        f"+{lo:g} to +{hi:g} points at {'/'.join(f'{t:g}' for t in ts)} km",
    )
    m1 = view.row("m1_coarse")
    if m1 is None:
        return c.not_run(view.missing_role("m1_coarse"))
    name, outdoor = m1["model"], m1.get("outdoor")
    if not outdoor:
        return c.not_run(
            f"metrics.json has no outdoor scores for {name} (the dataset's outdoor column is "
            "empty, or evaluate ran --outdoor-only)"
        )
    from scipy.stats import fisher_exact

    n_all, n_out = view.count(m1, "photos_scored"), view.count(outdoor, "photos", name)
    n_in = n_all - n_out
    parts, problems, ps, gains = [], [], [], []
    for t in ts:
        a_all, a_out = view.acc(m1, t), view.acc(outdoor, t, f"{name} outdoor")
        hits_out = view.hits(a_out, n_out, f"{name} outdoor")
        hits_in = view.hits(a_all, n_all, name) - hits_out
        p, in_text = None, "no indoor photos"
        # Outdoor against indoor photos: disjoint groups, unlike outdoor against all photos.
        if n_out and n_in > 0 and 0 <= hits_in <= n_in:
            table = [[hits_out, n_out - hits_out], [hits_in, n_in - hits_in]]
            p = float(fisher_exact(table).pvalue)
            in_text = f"indoor {100.0 * hits_in / n_in:.1f}%"
        ps.append(p)
        gains.append(a_out - a_all)
        parts.append(
            f"{t:g} km: outdoor {a_out:.1f}% vs all {a_all:.1f}% ({pts(gains[-1])}; "
            f"{in_text}; Fisher {fmt_p(p)})"
        )
        if gains[-1] <= 0:
            problems.append(f"no gain at {t:g} km ({pts(gains[-1])})")
        elif p is None or p >= ALPHA:
            problems.append(f"the gain at {t:g} km is not significant ({fmt_p(p)})")
    numbers = f"{n_out} outdoor of {n_all} photos; " + "; ".join(parts)
    p_all = None if any(p is None for p in ps) else max(p for p in ps if p is not None)
    inside = "within" if all(lo <= g <= hi for g in gains) else "outside"
    why = (
        f"outdoor photos score higher ({', '.join(pts(g) for g in gains)}), p < {ALPHA}; "
        f"{inside} the study's {lo:g} to {hi:g} point range"
    )
    return c.judge(numbers, p_all, problems, why)


def _triangles_vs_quadtree(view: MetricsView) -> Finding:
    c = _Claim(
        "triangles_vs_quadtree",
        "Triangles beat the S2 quad-tree at equal cell counts (M1 fine vs M1 S2, 1/25/200 km)",
        "claimed by the study, which publishes no numbers at equal cell counts",
    )
    rows, missing = view.rows("m1_fine", "m1_s2")
    if missing:
        return c.not_run(missing)
    fine, s2 = rows
    ts = (1.0, 25.0, 200.0)
    test = view.wilcoxon(fine["model"], s2["model"])
    cells = {m: view.meshes.get(m, {}).get("cells") for m in ("fine", "s2")}

    def accs(row: dict[str, Any]) -> str:
        return "/".join(f"{view.acc(row, t):.1f}" for t in ts)

    best = [(m, view.oracle_row(m, "imagery")) for m in ("fine", "s2")]
    best_text = "".join(f"; best possible {m} {accs(r)}" for m, r in best if r is not None)
    numbers = (
        f"Delaunay ({cells['fine'] or '?'} cells) {accs(fine)} vs quad-tree "
        f"({cells['s2'] or '?'} cells) {accs(s2)} % at 1/25/200 km; {fmt_p(test.p)}{best_text}"
    )
    if not test.found:
        return c.not_run(test.text, numbers)
    diffs = [(t, view.acc(fine, t) - view.acc(s2, t)) for t in ts]
    wins = [f"{t:g} km" for t, d in diffs if d > 0]
    problems = []
    if len(wins) < 2:
        worse = ", ".join(f"{t:g} km ({pts(-d)} for S2)" for t, d in diffs if d <= 0)
        problems.append(f"the quad-tree is as good or better at {worse}")
    ok_p, p_text = test.favours(fine["model"])
    if not ok_p:
        problems.append(p_text)
    caution = []
    if cells["fine"] and cells["s2"] and not 0.8 <= cells["fine"] / cells["s2"] <= 1.25:
        caution.append(f"caution: cell counts differ ({cells['fine']} vs {cells['s2']})")
    problems += caution if problems else []
    why = "; ".join([f"triangles ahead at {', '.join(wins)}", p_text, *caution])
    return c.judge(numbers, test.p, problems, why)


def _hierarchical(view: MetricsView) -> Finding:
    c = _Claim(
        "hierarchical",
        "Hierarchical coarse x fine is at least as good as both single meshes",
        "trigeo's extension; not in the study",
    )
    rows, missing = view.rows("hier", "m1_coarse", "m1_fine")
    if missing:
        return c.not_run(missing)
    hier, coarse, fine = rows
    tests = [view.wilcoxon(hier["model"], other["model"]) for other in (coarse, fine)]
    numbers = (
        f"hier {series(view, hier)} vs coarse {series(view, coarse)} vs fine "
        f"{series(view, fine)} % at {view.threshold_text()} km; vs coarse "
        f"{fmt_p(tests[0].p)}, vs fine {fmt_p(tests[1].p)}"
    )
    margins = [
        (t, view.acc(hier, t) - max(view.acc(coarse, t), view.acc(fine, t)))
        for t in view.thresholds
    ]
    short = ", ".join(f"{t:g} km ({pts(m)})" for t, m in margins if m < -HIER_SLACK_POINTS)
    beats = [f"{t:g} km" for t, m in margins if m > 0]
    problems = [f"below the better single mesh by more than {HIER_SLACK_POINTS} points at {short}"]
    problems = problems if short else []
    if len(beats) < 2:
        problems.append(f"above both at only {len(beats)} threshold(s)")
    why = f"above both at {', '.join(beats)}; hier minus the better single mesh: " + ", ".join(
        f"{t:g} km {pts(m)}" for t, m in margins
    )
    # The claim is about accuracies; say where the paired errors do not back it up.
    for other, test in zip((coarse, fine), tests, strict=True):
        ok_p, p_text = test.favours(hier["model"])
        if not ok_p:
            why += f"; vs {other['model']}: {p_text}"
    return c.judge(numbers, max_p(tests), problems, why)


_CHECKS: tuple[Callable[[MetricsView], Finding], ...] = (
    _imagery_vs_cell,
    _coarse_vs_fine,
    _time_helps,
    _albums_help,
    _user_avg,
    _outdoor,
    _triangles_vs_quadtree,
    _hierarchical,
)


def evaluate_findings(
    metrics: dict[str, Any], roles: dict[str, str], meshes: dict[str, dict[str, Any]]
) -> list[Finding]:
    """Check the study's findings on one evaluation, in the report's order.

    Parameters
    ----------
    metrics
        The evaluation's ``metrics.json``, loaded.
    roles
        Role (:data:`ROLE_KEYS`) -> the model's display name in ``metrics["models"]``;
        a missing role makes its findings "not run".
    meshes
        Mesh name (``coarse``, ``fine``, ``s2``) -> ``{"path", "cells", "kind", "rule"}``.

    Returns
    -------
    list of Finding
        Eight findings: imagery vs cell centroid, coarse vs fine, time, albums,
        user averaging, outdoor only, triangles vs quad-tree, hierarchical.

    Raises
    ------
    InputError
        For an unknown role, a role naming a model metrics.json does not have,
        a mesh entry without its fields, or metrics.json without the fields
        the findings read (the message names them).
    """
    unknown = sorted(set(roles) - set(ROLE_KEYS))
    if unknown:
        raise InputError(f"unknown role(s) {unknown}; roles are {', '.join(ROLE_KEYS)}")
    for name, mesh in meshes.items():
        lacking = [f for f in _MESH_FIELDS if f not in mesh]
        if lacking:
            raise InputError(f"mesh {name!r} lacks field(s) {lacking}", column=lacking[0])
        if not isinstance(mesh["cells"], int) or isinstance(mesh["cells"], bool):
            raise InputError(f"mesh {name!r}: 'cells' should be an integer, got {mesh['cells']!r}")
    view = MetricsView(metrics, roles, meshes)
    return [check(view) for check in _CHECKS]
