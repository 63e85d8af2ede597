"""The study's findings, checked against one evaluation's ``metrics.json``.

Each :class:`Finding` states a claim of the 2018 study (or of trigeo's
extensions of it), this run's numbers, a p-value and a verdict. A claim whose
models were not run says "not run"; a claim the numbers contradict says which
threshold, by how many points, or that the test was not significant. The
wording of ``why`` is always built from the numbers, never a canned claim.

Significance is the evaluation's own paired test, over users where
metrics.json has it: the Wilcoxon signed-rank test of per-user mean
differences ``d_u = mean(error_a - error_b)`` over each user's photos, since
photos of one user are not independent. An evaluation without user ids (or
written before user-level tests) falls back to the Wilcoxon test of paired
per-photo errors, and the finding says so. Negative differences favour
``model_a``; a median of 0 (related models tie on most photos) leaves the
direction to the mean difference. Claims about accuracy at a threshold use a
paired test of hits there: over users where available, else the photo-level
exact McNemar test.

Each claim is also checked against the study's own rows (tests/demo): a judge
that fails the study's published table is wrong. :data:`STUDY_EVIDENCE` says
which claims the study backs with rows, states without numbers, or which are
trigeo's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trigeo.demo.claims import (
    ALBUM_SHARE,
    HIER_SLACK_POINTS,
    KL_TOLERANCE,
    STUDY_EVIDENCE,
    TIE_POINTS,
    VERDICTS,
    Claim,
    Finding,
    fallbacks,
    tests_unit,
)
from trigeo.demo.findings_heads import albums_help, outdoor_gain, time_helps, user_averaging
from trigeo.demo.metrics_view import ALPHA, MetricsView, fmt_p, max_p, pts, series
from trigeo.errors import InputError

__all__ = [
    "ALBUM_SHARE",
    "ALPHA",
    "HIER_SLACK_POINTS",
    "KL_TOLERANCE",
    "ROLE_KEYS",
    "STUDY_EVIDENCE",
    "TIE_POINTS",
    "VERDICTS",
    "Finding",
    "evaluate_findings",
]

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
#: Thresholds where coarse must lead, and where its lead must pass a paired test of hits.
_COARSE_KM = (200.0, 750.0, 2500.0)
_FAR_KM = (750.0, 2500.0)


def _imagery_vs_cell(view: MetricsView) -> Finding:
    img_s, cell_s = (view.study.best_possible[("coarse", k)] for k in ("imagery", "cell"))
    c = Claim(
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
        test = view.paired(img["model"], cell["model"])
        tests.append(test)
        parts.append(
            f"{mesh}: imagery {series(view, img)} vs cell {series(view, cell)} "
            f"({test.name} {fmt_p(test.p)})"
        )
        diffs = [(t, view.acc(img, t) - view.acc(cell, t)) for t in view.thresholds]
        # Near 100% both labels saturate; a hair's difference there is a tie, not a loss.
        behind = ", ".join(f"{t:g} km ({pts(-d)})" for t, d in diffs if d < -TIE_POINTS)
        if behind:
            problems.append(
                f"{mesh}: the cell centroid is ahead by more than {TIE_POINTS} at {behind}"
            )
        ahead = [t for t, d in diffs if d > 0]
        if len(ahead) * 2 <= len(diffs):
            problems.append(
                f"{mesh}: imagery is above cell at only {len(ahead)} of {len(diffs)} thresholds"
            )
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
    why = (
        f"imagery above cell at most thresholds and never more than {TIE_POINTS} points "
        f"below on {done}, p < {ALPHA} in imagery's favour"
    )
    notes = fallbacks(tests)
    # A mesh that was not run is said either way; it alone does not decide the verdict.
    problems += [*skipped, *notes] if problems else []
    return c.judge(
        numbers, max_p(tests), problems, "; ".join([why, *skipped, *notes]), tests_unit(tests)
    )


def _coarse_vs_fine(view: MetricsView) -> Finding:
    sc, sf = view.study.headline["m1_coarse"], view.study.headline["m1_fine"]
    c = Claim(
        "coarse_vs_fine",
        "Coarse meshes win at 200, 750 and 2500 km; fine meshes win at 1 km (25 km: crossover)",
        f"M1 coarse {series(view, sc.accuracy_pct)} vs fine {series(view, sf.accuracy_pct)} %",
    )
    rows, missing = view.rows("m1_coarse", "m1_fine")
    if missing:
        return c.not_run(missing)
    coarse, fine = rows
    name_c, name_f = coarse["model"], fine["model"]
    # Accuracy claims at a threshold are tested on hits there, not on whole error distributions.
    tests = [view.hits_test(name_c, name_f, t) for t in _FAR_KM]
    near = view.mcnemar(name_c, name_f, 1.0)
    numbers = (
        f"coarse {series(view, coarse)} vs fine {series(view, fine)} % at "
        f"{view.threshold_text()} km; hits tests: " + "; ".join(t.text for t in tests)
    )
    margin = {t: view.acc(coarse, t) - view.acc(fine, t) for t in view.thresholds}
    for t in (1.0, 25.0, *_COARSE_KM):
        margin.setdefault(t, view.acc(coarse, t) - view.acc(fine, t))
    problems = []
    if margin[1.0] >= 0:
        problems.append(f"fine is not ahead at 1 km (coarse minus fine {pts(margin[1.0])})")
    behind = [f"{t:g} km ({pts(margin[t])})" for t in _COARSE_KM if margin[t] <= 0]
    if behind:
        problems.append(f"coarse is not ahead at {', '.join(behind)}")
    undecided = []
    for test in tests:
        ok_p, p_text = test.favours(name_c)
        if not test.found:
            undecided.append(f"not run: {p_text} (an evaluation from before these tests?)")
        elif not ok_p:
            problems.append(p_text)
    # Shown, not deciding: at 1 km a few dozen hits among thousands of photos test weakly,
    # and the study itself calls 25 km the crossover (its M1s tie there).
    near_text = near.text if near.found else "metrics.json has no McNemar test at 1 km"
    cross = margin[25.0]
    lead = "neither mesh" if cross == 0 else ("coarse" if cross > 0 else "fine")
    extra = [
        f"1 km (shown, not deciding): {near_text}",
        f"25 km, the crossover (not deciding): {lead} leads (coarse minus fine {pts(cross)})",
    ]
    margins = ", ".join(f"{t:g} km {pts(m)}" for t, m in sorted(margin.items()))
    notes = fallbacks(tests)
    if problems:
        share = _share_of_best(view, coarse, fine)
        problems += [*extra, *notes, *([share] if share else [])]
    favoured = [f"{t.text} in {name_c}'s favour" for t in tests]
    why_ok = "; ".join([f"coarse minus fine: {margins}", *favoured, *extra, *notes])
    return c.judge(numbers, max_p(tests), problems, why_ok, tests_unit(tests), undecided)


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


def _triangles_vs_quadtree(view: MetricsView) -> Finding:
    c = Claim(
        "triangles_vs_quadtree",
        "Triangles beat the S2 quad-tree at equal cell counts (M1 fine vs M1 S2, 1/25/200 km)",
        "claimed by the study, which publishes no numbers at equal cell counts",
    )
    rows, missing = view.rows("m1_fine", "m1_s2")
    if missing:
        return c.not_run(missing)
    fine, s2 = rows
    ts = (1.0, 25.0, 200.0)
    test = view.paired(fine["model"], s2["model"])
    cells = {m: view.meshes.get(m, {}).get("cells") for m in ("fine", "s2")}

    def accs(row: dict[str, Any]) -> str:
        return "/".join(f"{view.acc(row, t):.1f}" for t in ts)

    best = [(m, view.oracle_row(m, "imagery")) for m in ("fine", "s2")]
    best_text = "".join(f"; best possible {m} {accs(r)}" for m, r in best if r is not None)
    numbers = (
        f"Delaunay ({cells['fine'] or '?'} cells) {accs(fine)} vs quad-tree "
        f"({cells['s2'] or '?'} cells) {accs(s2)} % at 1/25/200 km; {test.name} "
        f"{fmt_p(test.p)}{best_text}"
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
    caution += fallbacks([test])
    problems += caution if problems else []
    why = "; ".join([f"triangles ahead at {', '.join(wins)}", p_text, *caution])
    return c.judge(numbers, test.p, problems, why, tests_unit([test]))


def _hierarchical(view: MetricsView) -> Finding:
    c = Claim(
        "hierarchical",
        "Hierarchical coarse x fine is at least as good as both single meshes",
        "trigeo's extension; not in the study",
    )
    rows, missing = view.rows("hier", "m1_coarse", "m1_fine")
    if missing:
        return c.not_run(missing)
    hier, coarse, fine = rows
    tests = [view.paired(hier["model"], other["model"]) for other in (coarse, fine)]
    numbers = (
        f"hier {series(view, hier)} vs coarse {series(view, coarse)} vs fine "
        f"{series(view, fine)} % at {view.threshold_text()} km; {tests[0].name} vs coarse "
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
    notes = fallbacks(tests)
    why = "; ".join([why, *notes])
    problems += notes if problems else []
    return c.judge(numbers, max_p(tests), problems, why, tests_unit(tests))


_CHECKS: tuple[Callable[[MetricsView], Finding], ...] = (
    _imagery_vs_cell,
    _coarse_vs_fine,
    time_helps,
    albums_help,
    user_averaging,
    outdoor_gain,
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
