"""The findings about the heads on M1: time (M2), albums (M3), user averaging, outdoor photos.

Each function takes a :class:`~trigeo.demo.metrics_view.MetricsView` and
returns one :class:`~trigeo.demo.claims.Finding`; the rules are in
docs/demo.md ("How a finding is judged") and the module docstring of
:mod:`~trigeo.demo.findings`.
"""

from __future__ import annotations

from typing import Any

from trigeo.demo.claims import (
    ALBUM_SHARE,
    KL_TOLERANCE,
    Claim,
    Finding,
    fallbacks,
    pairwise,
    study_diff,
    tests_unit,
)
from trigeo.demo.metrics_view import ALPHA, MetricsView, fmt_p, pts

__all__ = ["albums_help", "outdoor_gain", "time_helps", "user_averaging"]

#: Thresholds of M3's share of album averaging's gain.
_ALBUM_KM = (200.0, 750.0)


def time_helps(view: MetricsView) -> Finding:
    c = Claim(
        "time_helps",
        "Time of posting helps: M2 beats M1 (coarse)",
        f"M2 − M1 coarse {study_diff(view, 'm2', 'm1_coarse')} points; {view.study.time_text}",
    )
    rows, missing = view.rows("m2", "m1_coarse")
    return c.not_run(missing) if missing else pairwise(c, view, *rows)


def albums_help(view: MetricsView) -> Finding:
    kl_s = {k: view.study.errors[k].kl for k in ("m3", "m2", "m1_coarse", "user_avg")}
    c = Claim(
        "albums_help",
        "Albums help (M3 beats M2) without the bias of averaging: KL stays at M2's level",
        f"M3 − M2 coarse {study_diff(view, 'm3', 'm2')} points; KL M3 {kl_s['m3']:.4f}, M2 "
        f"{kl_s['m2']:.4f}, M1 {kl_s['m1_coarse']:.4f}, user averaging {kl_s['user_avg']:.4f}",
    )
    rows, missing = view.rows("m3", "m2")
    if missing:
        return c.not_run(missing)
    m3, m2 = rows
    test = view.paired(m3["model"], m2["model"])
    if not test.found:
        return c.not_run(test.text)
    numbers, problems, why = view.beats_at_most(m3, m2, test)
    parts, not_run = [why, *fallbacks([test])], []
    avg_name = f"{m2['model']} +album-avg"
    avg = view.by_name.get(avg_name)
    if avg is None:
        not_run.append(
            f"album averaging not run: metrics.json has no row {avg_name!r} "
            "(evaluate without --averaging?): M3's share of its gain and KL against it unchecked"
        )
    else:
        shares = _album_share(view, m3, m2, avg)
        numbers += "; " + "; ".join(text for text, _ in shares)
        short = [text for text, ok in shares if not ok]
        if short:
            problems.append(
                f"M3 gains less than {ALBUM_SHARE:.0%} of album averaging's gain at "
                + ", ".join(short)
            )
        parts.append(
            f"M3 gains at least {ALBUM_SHARE:.0%} of album averaging's gain at 200 and 750 km"
        )
    m1 = view.row("m1_coarse")
    kl_text, kl_problems, kl_missing = _kl_checks(m3, m2, m1, avg)
    numbers += f"; KL {kl_text}"
    problems += kl_problems
    not_run += kl_missing
    if not kl_problems and not kl_missing:
        below = " and ".join(
            n for n, r in (("M1 coarse's", m1), ("album averaging's", avg)) if r is not None
        )
        parts.append(
            f"KL of M3 within {KL_TOLERANCE:g}x M2's" + (f" and below {below}" if below else "")
        )
    return c.judge(numbers, test.p, problems, "; ".join(parts), tests_unit([test]), not_run)


def _album_share(
    view: MetricsView, m3: dict[str, Any], m2: dict[str, Any], avg: dict[str, Any]
) -> list[tuple[str, bool]]:
    """Per threshold of :data:`_ALBUM_KM`: the gains in words, and whether M3's is enough."""
    out = []
    for t in _ALBUM_KM:
        g_m3, g_avg = view.acc(m3, t) - view.acc(m2, t), view.acc(avg, t) - view.acc(m2, t)
        # When averaging gains nothing, M3 only has to not lose.
        ok = g_m3 >= ALBUM_SHARE * max(g_avg, 0.0)
        share = f" ({100 * g_m3 / g_avg:.0f}%)" if g_avg > 0 else ""
        out.append((f"{t:g} km: M3 {pts(g_m3)}, album averaging {pts(g_avg)}{share} over M2", ok))
    return out


def _kl_checks(
    m3: dict[str, Any],
    m2: dict[str, Any],
    m1: dict[str, Any] | None,
    avg: dict[str, Any] | None,
) -> tuple[str, list[str], list[str]]:
    """KL(M3) <= KL_TOLERANCE x KL(M2) and below M1 coarse and album averaging.

    Returns the KLs in words, what contradicts the claim, and what could not be checked.
    """
    rows = [r for r in (m1, m2, m3, avg) if r is not None]
    kls = {r["model"]: r.get("kl_divergence") for r in rows}
    text = ", ".join(f"{n} {'n/a' if v is None else f'{v:.4f}'}" for n, v in kls.items())
    mine = kls[m3["model"]]
    if mine is None:
        return text, [], [f"metrics.json has no KL for {m3['model']} (no mesh given?)"]
    problems, missing = [], []
    bound = kls[m2["model"]]
    if bound is None:
        missing.append(f"metrics.json has no KL for {m2['model']}")
    elif mine > KL_TOLERANCE * bound:
        over = f"{mine / bound - 1:.0%} above" if bound else "above"
        problems.append(
            f"KL of {m3['model']} ({mine:.4f}) is {over} {m2['model']}'s ({bound:.4f}); "
            f"within {KL_TOLERANCE - 1:.0%} counts as its level"
        )
    for other in (m1, avg):
        if other is None:
            continue
        value = kls[other["model"]]
        if value is None:
            missing.append(f"metrics.json has no KL for {other['model']}")
        elif mine >= value:
            problems.append(
                f"KL of {m3['model']} ({mine:.4f}) is not below {other['model']} ({value:.4f})"
            )
    if m1 is None:
        missing.append("KL against M1 coarse not checked: no m1_coarse model")
    return text, problems, missing


def user_averaging(view: MetricsView) -> Finding:
    c = Claim(
        "user_averaging",
        "User averaging helps: M1 coarse +user-avg beats M1 coarse",
        f"user averaging − M1 coarse {study_diff(view, 'user_avg', 'm1_coarse')} points",
    )
    found, missing = view.rows("m1_coarse")
    if missing:
        return c.not_run(missing)
    (m1,) = found
    name = f"{m1['model']} +user-avg"
    if name not in view.by_name:
        return c.not_run(f"metrics.json has no row {name!r} (evaluate without --averaging?)")
    return pairwise(c, view, view.by_name[name], m1)


def outdoor_gain(view: MetricsView) -> Finding:
    lo, hi = view.study.outdoor_gain_points
    ts = view.study.outdoor_thresholds_km
    c = Claim(
        "outdoor_gain",
        "Outdoor-only evaluation gains accuracy at region and country level (M1 coarse)",
        f"+{lo:g} to +{hi:g} points at {'/'.join(f'{t:g}' for t in ts)} km",
    )
    found, missing = view.rows("m1_coarse")
    if missing:
        return c.not_run(missing)
    (m1,) = found
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
    # Fisher's exact test compares outdoor with indoor photos: its unit is the photo.
    return c.judge(numbers, p_all, problems, why, "photo")
