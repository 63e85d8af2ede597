"""The study's findings on hand-made metrics.json dicts, with hand-worked verdicts and p-values.

The base metrics make every finding reproduce; each test then breaks one thing and checks that
the verdict and the words of ``why`` follow the numbers. The base carries the user-level tests
and McNemar tests of current metrics.json files; :func:`old_metrics` strips them, as a
metrics.json written before them reads.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from trigeo.demo.findings import Finding, evaluate_findings
from trigeo.errors import InputError

KEYS = ["1km", "25km", "200km", "750km", "2500km"]


def model(name: str, acc: list[float], mean: float, **extra: Any) -> dict[str, Any]:
    """A metrics.json model row of 20 scored photos (accuracies are multiples of 5%)."""
    return {
        "model": name,
        "photos_scored": 20,
        "accuracy_pct": dict(zip(KEYS, acc, strict=True)),
        "mean_error_km": mean,
        "median_error_km": mean / 2,
        "kl_divergence": extra.pop("kl", None),
        "prediction_entropy": 1.0,
        "outdoor": extra.pop("outdoor", None),
        **extra,
    }


def user(
    p: float | None,
    median: float,
    mean: float | None = None,
    hits: dict[str, tuple[float | None, float]] | None = None,
    differing: int = 8,
) -> dict[str, Any]:
    """A user-level entry: Wilcoxon over 10 users' mean differences, hits tests by key."""
    return {
        "test": "wilcoxon signed-rank over per-user mean differences",
        "p_value": p,
        "n_users": 10,
        "n_differing": differing,
        "median_difference_km": median,
        "mean_difference_km": median if mean is None else mean,
        "hits": {
            k: {"p_value": hp, "mean_difference_pct": d} for k, (hp, d) in (hits or {}).items()
        },
    }


def test(
    a: str,
    b: str,
    p: float | None,
    median: float,
    differing: int = 12,
    user: dict[str, Any] | None = None,
    mcnemar: dict[str, tuple[int, int, float]] | None = None,
) -> dict[str, Any]:
    """A metrics.json test entry (p None stands for NaN, as metrics.json stores it)."""
    return {
        "model_a": a,
        "model_b": b,
        "n_photos": 20,
        "n_differing": differing,
        "zero_method": "wilcox",
        "statistic": 1.0,
        "p_value": p,
        "median_difference_km": median,
        "user": user,
        "mcnemar": {
            k: {"a_only": a_only, "b_only": b_only, "p_value": mp}
            for k, (a_only, b_only, mp) in (mcnemar or {}).items()
        },
    }


test.__test__ = False  # a helper, not a pytest test

ROLES = {
    "m1_coarse": "M1 coarse",
    "m1_coarse_cell": "M1 coarse cell",
    "m1_fine": "M1 fine",
    "m1_fine_cell": "M1 fine cell",
    "m1_s2": "M1 s2",
    "m2": "M2 coarse",
    "m3": "M3 coarse",
    "hier": "hier",
    "knn": "kNN",
    "prior": "prior",
}
MESHES = {
    "coarse": {"path": "/runs/coarse.npz", "cells": 40, "kind": "delaunay", "rule": "50/250"},
    "fine": {"path": "/runs/fine.npz", "cells": 100, "kind": "delaunay", "rule": "20/100"},
    "s2": {"path": "/runs/s2.npz", "cells": 110, "kind": "quadtree", "rule": "20/100"},
}
# Outdoor: 10 of the 20 photos, all within 200 km; the 10 indoor photos none (10/20 = 50% of all).
OUTDOOR = {"photos": 10, "accuracy_pct": dict(zip(KEYS, [10, 30, 100, 100, 100], strict=True))}
# Fisher exact, two-sided, on [[10, 0], [0, 10]]: 2 / C(20, 10).
FISHER_P = 2 / math.comb(20, 10)


def base_metrics() -> dict[str, Any]:
    models = [
        model("M1 coarse", [5, 20, 50, 50, 80], 900, kl=0.5, outdoor=OUTDOOR),
        model("M1 coarse cell", [0, 10, 40, 50, 80], 1000),
        model("M1 fine", [15, 30, 45, 45, 70], 1100),
        model("M1 fine cell", [10, 25, 40, 40, 70], 1200),
        model("M1 s2", [10, 25, 40, 45, 70], 1300),
        model("M2 coarse", [5, 25, 55, 55, 85], 800, kl=0.4),
        model("M3 coarse", [10, 25, 60, 60, 90], 700, kl=0.3),
        model("M1 coarse +user-avg", [0, 25, 55, 60, 85], 850),
        # M2's album averaging gains 5 and 10 points at 200 and 750 km; M3 gains 5 and 5.
        model("M2 coarse +album-avg", [5, 25, 60, 65, 85], 780, kl=0.6),
        model("hier", [15, 30, 55, 55, 80], 750),
        model("kNN", [20, 30, 40, 50, 60], 2000),
        model("prior", [0, 0, 5, 20, 40], 5000),
    ]
    tests = [
        test("M1 coarse", "M1 coarse cell", 0.001, -10.0, user=user(0.004, -12.0)),
        # Stored as (cell, imagery): +5 km means the imagery centroid's errors are smaller.
        test("M1 fine cell", "M1 fine", 0.01, 5.0, user=user(0.01, 6.0)),
        # Coarse hits more at 750 and 2500 km (user-level hits tests); at 1 km McNemar
        # counts 1 photo only coarse hits and 3 only fine hits.
        test(
            "M1 coarse", "M1 fine", 0.3, 1.0,
            user=user(0.5, 1.0, hits={"750km": (0.01, 5.0), "2500km": (0.02, 10.0)}),
            mcnemar={"1km": (1, 3, 0.625), "750km": (3, 2, 1.0), "2500km": (4, 1, 0.375)},
        ),
        # Medians 0 (most photos and users tie): the mean differences say M2 is better.
        test("M2 coarse", "M1 coarse", 0.02, 0.0, user=user(0.03, 0.0, mean=-5.0)),
        test("M3 coarse", "M2 coarse", 1e-5, -3.0, user=user(1e-4, -3.0)),
        test("M1 coarse", "M1 coarse +user-avg", 0.04, 2.0, user=user(0.04, 2.0)),
        test("M1 fine", "M1 s2", 0.03, -1.0, user=user(0.03, -1.0)),
        test("hier", "M1 coarse", 0.2, -1.0, user=user(0.2, -1.0)),
        test("hier", "M1 fine", 0.01, -2.0, user=user(0.01, -2.0)),
    ]  # fmt: skip
    oracle = [
        {"model": "oracle (best possible)", "mesh": mesh, "label": "imagery", "photos": 20,
         "photos_outside": 0, "accuracy_pct": dict(zip(KEYS, acc, strict=True))}
        for mesh, acc in (("fine", [20, 60, 95, 100, 100]), ("s2", [25, 65, 95, 100, 100]))
    ]  # fmt: skip
    return {
        "config": {"thresholds_km": [1.0, 25.0, 200.0, 750.0, 2500.0], "split": "val"},
        "photos_evaluated": 20,
        "models": models,
        "oracle": oracle,
        "wilcoxon": tests,
    }


def by_key(metrics: dict[str, Any], roles: dict[str, str] = ROLES) -> dict[str, Finding]:
    return {f.key: f for f in evaluate_findings(metrics, roles, MESHES)}


def row(metrics: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in metrics["models"] if m["model"] == name)


def pair(metrics: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    return next(w for w in metrics["wilcoxon"] if {w["model_a"], w["model_b"]} == {a, b})


def old_metrics() -> dict[str, Any]:
    """The base metrics as a metrics.json from before user-level and McNemar tests reads."""
    metrics = base_metrics()
    for entry in metrics["wilcoxon"]:
        del entry["user"], entry["mcnemar"]
    return metrics


def test_every_finding_reproduces_with_the_hand_worked_p_values():
    findings = evaluate_findings(base_metrics(), ROLES, MESHES)
    assert [f.key for f in findings] == [
        "imagery_vs_cell", "coarse_vs_fine", "time_helps", "albums_help", "user_averaging",
        "outdoor_gain", "triangles_vs_quadtree", "hierarchical",
    ]  # fmt: skip
    assert [f.verdict for f in findings] == ["reproduced"] * 8, [f.why for f in findings]
    # The user-level p-values decide (coarse vs fine: the larger of its two hits tests).
    expected = [0.01, 0.02, 0.03, 1e-4, 0.04, FISHER_P, 0.03, 0.2]
    assert [f.p_value for f in findings] == pytest.approx(expected, rel=1e-9)
    assert [f.unit for f in findings] == ["user"] * 5 + ["photo", "user", "user"]
    got = {f.key: f for f in findings}
    assert "coarse: imagery 5.0/20.0/50.0/50.0/80.0 vs cell 0.0/10.0/40.0/50.0/80.0" in (
        got["imagery_vs_cell"].numbers
    )
    assert "user-level Wilcoxon p = 0.004" in got["imagery_vs_cell"].numbers
    assert "user-level Wilcoxon p = 0.030 in M2 coarse's favour (8 of 10 users differ)" in (
        got["time_helps"].why
    )
    assert "photo-level" not in got["time_helps"].why
    assert "KL of M3 within 1.05x M2's and below M1 coarse's and album averaging's" in (
        got["albums_help"].why
    )
    assert "200 km: M3 +5.0 pts, album averaging +5.0 pts (100%) over M2" in (
        got["albums_help"].numbers
    )
    assert "750 km: M3 +5.0 pts, album averaging +10.0 pts (50%) over M2" in (
        got["albums_help"].numbers
    )
    assert "+50.0 pts" in got["outdoor_gain"].numbers and "outside the study's 4 to 8" in (
        got["outdoor_gain"].why
    )
    assert "Delaunay (100 cells) 15.0/30.0/45.0 vs quad-tree (110 cells) 10.0/25.0/40.0" in (
        got["triangles_vs_quadtree"].numbers
    )
    assert "best possible s2 25.0/65.0/95.0" in got["triangles_vs_quadtree"].numbers
    assert "above both at 200 km, 750 km" in got["hierarchical"].why
    assert "vs M1 coarse: not significant: user-level Wilcoxon p = 0.200" in (
        got["hierarchical"].why
    )
    assert "vs M1 fine" not in got["hierarchical"].why
    assert "38.72" not in got["time_helps"].study and "p < 1e-16" in got["time_helps"].study
    assert "KL M3 0.4991, M2 0.4998, M1 0.6718, user averaging 0.9702" in (got["albums_help"].study)


def test_missing_roles_are_not_run_and_say_which_role():
    roles = {k: v for k, v in ROLES.items() if k not in ("m1_s2", "hier", "m1_fine_cell")}
    got = by_key(base_metrics(), roles)
    assert got["triangles_vs_quadtree"].verdict == "not run"
    assert "'m1_s2'" in got["triangles_vs_quadtree"].why
    assert got["hierarchical"].verdict == "not run" and got["hierarchical"].p_value is None
    # Coarse alone still decides; the skipped fine pair is said.
    assert got["imagery_vs_cell"].verdict == "reproduced"
    assert got["imagery_vs_cell"].p_value == pytest.approx(0.004)
    assert "'m1_fine_cell'" in got["imagery_vs_cell"].why
    only = by_key(base_metrics(), {"knn": "kNN"})
    assert {f.verdict for f in only.values()} == {"not run"}


def test_wrong_direction_and_orientation_of_the_stored_pair():
    metrics = base_metrics()
    pair(metrics, "M1 fine cell", "M1 fine")["user"]["median_difference_km"] = -5.0  # cell better
    got = by_key(metrics)["imagery_vs_cell"]
    assert got.verdict == "not reproduced"
    assert (
        "fine: user-level Wilcoxon p = 0.010 but the paired errors favour M1 fine cell "
        "(8 of 10 users differ)" in got.why
    )
    # Within 0.5 points below counts as level (the study's coarse 99.98 vs 99.99 at 750 km).
    metrics = base_metrics()
    row(metrics, "M1 coarse cell")["accuracy_pct"]["2500km"] = 80.4
    assert by_key(metrics)["imagery_vs_cell"].verdict == "reproduced"
    row(metrics, "M1 coarse cell")["accuracy_pct"]["2500km"] = 81
    got = by_key(metrics)["imagery_vs_cell"]
    assert got.verdict == "not reproduced"
    assert got.why == "coarse: the cell centroid is ahead by more than 0.5 at 2500 km (+1.0 pts)"


def test_time_not_above_at_most_thresholds_and_not_significant():
    metrics = base_metrics()
    row(metrics, "M2 coarse")["accuracy_pct"].update({"25km": 15, "200km": 45})
    pair(metrics, "M2 coarse", "M1 coarse")["user"]["p_value"] = 0.2
    got = by_key(metrics)["time_helps"]
    assert got.verdict == "not reproduced" and got.p_value == pytest.approx(0.2)
    assert "above M1 coarse at only 2 of 5 thresholds" in got.why
    assert "25 km (-5.0 pts), 200 km (-5.0 pts)" in got.why
    assert "not significant: user-level Wilcoxon p = 0.200 ≥ 0.05 (8 of 10 users differ)" in (
        got.why
    )


def test_nan_p_value_gives_none_and_says_so():
    metrics = base_metrics()
    entry = pair(metrics, "M3 coarse", "M2 coarse")["user"]
    entry.update(p_value=None, n_differing=0, median_difference_km=0.0, mean_difference_km=0.0)
    got = by_key(metrics)["albums_help"]
    assert got.p_value is None and got.verdict == "not reproduced"
    assert "user-level Wilcoxon p undefined: all 10 shared users have equal errors" in got.why
    metrics["wilcoxon"].remove(pair(metrics, "M3 coarse", "M2 coarse"))
    missing = by_key(metrics)["albums_help"]
    assert missing.verdict == "not run" and missing.p_value is None
    assert "no Wilcoxon test of 'M3 coarse' vs 'M2 coarse'" in missing.why


def test_coarse_vs_fine_uses_hits_tests_and_shows_1_and_25_km():
    got = by_key(base_metrics())["coarse_vs_fine"]
    assert "750 km: user-level Wilcoxon of hits p = 0.010 (mean per-user hit rate M1 coarse " in (
        got.numbers
    )
    assert "minus M1 fine +5.0 pts) in M1 coarse's favour" in got.why
    assert "coarse minus fine: 1 km -10.0 pts, 25 km -10.0 pts, 200 km +5.0 pts" in got.why
    assert (
        "1 km (shown, not deciding): 1 km: photo-level exact McNemar p = 0.625 (1 photos only "
        "M1 coarse hits, 3 only M1 fine)" in got.why
    )
    assert "25 km, the crossover (not deciding): fine leads (coarse minus fine -10.0 pts)" in (
        got.why
    )
    # The crossover does not decide: coarse ahead at 25 km changes the words, not the verdict.
    metrics = base_metrics()
    row(metrics, "M1 fine")["accuracy_pct"]["25km"] = 15
    got = by_key(metrics)["coarse_vs_fine"]
    assert got.verdict == "reproduced" and "coarse leads (coarse minus fine +5.0 pts)" in got.why


def test_coarse_vs_fine_broken_far_and_near():
    metrics = base_metrics()
    row(metrics, "M1 fine")["accuracy_pct"].update({"1km": 5, "750km": 50})
    hits = pair(metrics, "M1 coarse", "M1 fine")["user"]["hits"]
    hits["2500km"]["p_value"] = 0.3
    got = by_key(metrics)["coarse_vs_fine"]
    assert got.verdict == "not reproduced" and got.p_value == pytest.approx(0.3)
    assert got.why.startswith(
        "fine is not ahead at 1 km (coarse minus fine +0.0 pts); coarse is not ahead at "
        "750 km (+0.0 pts); 2500 km: user-level Wilcoxon of hits p = 0.300 (mean per-user hit "
        "rate M1 coarse minus M1 fine +10.0 pts): not significant"
    )
    # Without the coarse mesh's best possible row, no share of it is claimed.
    assert "of a possible" not in got.why
    metrics["oracle"].append(
        {**metrics["oracle"][0], "mesh": "coarse",
         "accuracy_pct": dict(zip(KEYS, [5, 40, 90, 100, 100], strict=True))}
    )  # fmt: skip
    got = by_key(metrics)["coarse_vs_fine"]
    assert (
        "at 25 km the models reach coarse 20.0% of a possible 40.0% (50%) and fine 30.0% of a "
        "possible 60.0% (50%)" in got.why
    )


def test_coarse_vs_fine_falls_back_to_mcnemar_in_either_stored_order():
    metrics = base_metrics()
    entry = pair(metrics, "M1 coarse", "M1 fine")
    # No user ids: the McNemar tests decide. Stored as (fine, coarse): b_only is coarse's.
    entry.update(model_a="M1 fine", model_b="M1 coarse", user=None)
    entry["mcnemar"] = {"750km": {"a_only": 1, "b_only": 9, "p_value": 0.02},
                        "2500km": {"a_only": 0, "b_only": 8, "p_value": 0.008}}  # fmt: skip
    got = by_key(metrics)["coarse_vs_fine"]
    assert got.verdict == "reproduced" and got.p_value == pytest.approx(0.02)
    assert got.unit == "photo"
    assert "750 km: photo-level exact McNemar p = 0.020 (9 photos only M1 coarse hits, 1 only " in (
        got.why
    )
    assert "photo-level test: no user-level test of hits (the truth has no user ids)" in got.why
    assert "1 km (shown, not deciding): metrics.json has no McNemar test at 1 km" in got.why
    entry["mcnemar"]["750km"].update(a_only=9, b_only=1)
    got = by_key(metrics)["coarse_vs_fine"]
    assert got.verdict == "not reproduced"
    assert "(1 photos only M1 coarse hits, 9 only M1 fine): favours M1 fine" in got.why


def test_old_metrics_json_falls_back_to_photo_tests_and_says_so():
    got = by_key(old_metrics())
    assert got["time_helps"].verdict == "reproduced" and got["time_helps"].unit == "photo"
    assert got["time_helps"].p_value == pytest.approx(0.02)
    assert "photo-level Wilcoxon p = 0.020 in M2 coarse's favour (12 of 20 photos differ)" in (
        got["time_helps"].why
    )
    assert "photo-level test: metrics.json predates user-level tests" in got["time_helps"].why
    # No paired test of hits at all: the crossover cannot be tested, and says why.
    assert got["coarse_vs_fine"].verdict == "not run"
    assert (
        "not run: metrics.json has no paired test of hits at 750 km for 'M1 coarse' vs "
        "'M1 fine' (an evaluation from before these tests?)" in got["coarse_vs_fine"].why
    )
    assert [got[k].verdict for k in ("imagery_vs_cell", "albums_help", "user_averaging")] == [
        "reproduced"
    ] * 3


def test_albums_kl_at_m2s_level_and_below_m1_and_averaging():
    metrics = base_metrics()
    # 0.41 is within 1.05 x 0.4: the study's own M3 (0.4991) against M2 (0.4998) is a tie.
    row(metrics, "M3 coarse")["kl_divergence"] = 0.41
    assert by_key(metrics)["albums_help"].verdict == "reproduced"
    row(metrics, "M2 coarse")["kl_divergence"] = 0.25
    got = by_key(metrics)["albums_help"]
    assert got.verdict == "not reproduced"
    assert got.why == (
        "KL of M3 coarse (0.4100) is 64% above M2 coarse's (0.2500); within 5% counts as its level"
    )
    metrics = base_metrics()
    row(metrics, "M2 coarse +album-avg")["kl_divergence"] = 0.3
    row(metrics, "M1 coarse")["kl_divergence"] = 0.2
    got = by_key(metrics)["albums_help"]
    assert got.why == (
        "KL of M3 coarse (0.3000) is not below M1 coarse (0.2000); "
        "KL of M3 coarse (0.3000) is not below M2 coarse +album-avg (0.3000)"
    )


def test_albums_share_of_album_averaging_gain_and_missing_row():
    metrics = base_metrics()
    # Averaging gains 5 and 10 at 200 / 750 km; M3 now gains 1 and 3: 20% and 30% of it.
    row(metrics, "M3 coarse")["accuracy_pct"].update({"200km": 56, "750km": 58})
    got = by_key(metrics)["albums_help"]
    assert got.verdict == "not reproduced"
    assert got.why == (
        "M3 gains less than 40% of album averaging's gain at 200 km: M3 +1.0 pts, album "
        "averaging +5.0 pts (20%) over M2, 750 km: M3 +3.0 pts, album averaging +10.0 pts "
        "(30%) over M2"
    )
    metrics = base_metrics()
    metrics["models"].remove(row(metrics, "M2 coarse +album-avg"))
    got = by_key(metrics)["albums_help"]
    assert got.verdict == "not run" and got.p_value == pytest.approx(1e-4)
    assert got.why.startswith(
        "album averaging not run: metrics.json has no row 'M2 coarse +album-avg' (evaluate "
        "without --averaging?): M3's share of its gain and KL against it unchecked; above at "
        "4 of 5 thresholds"
    )
    assert got.why.endswith("KL of M3 within 1.05x M2's and below M1 coarse's")
    # A failing part still decides "not reproduced", and the missing row is said too.
    row(metrics, "M3 coarse")["kl_divergence"] = 0.6
    got = by_key(metrics)["albums_help"]
    assert got.verdict == "not reproduced" and "album averaging not run" in got.why


def test_user_averaging_missing_row_and_worse():
    metrics = base_metrics()
    metrics["models"].remove(row(metrics, "M1 coarse +user-avg"))
    got = by_key(metrics)["user_averaging"]
    assert got.verdict == "not run" and "'M1 coarse +user-avg'" in got.why
    metrics = base_metrics()
    pair(metrics, "M1 coarse", "M1 coarse +user-avg")["user"]["median_difference_km"] = -2.0
    got = by_key(metrics)["user_averaging"]
    assert got.verdict == "not reproduced" and "favour M1 coarse (" in got.why


def test_outdoor_without_gain_or_scores():
    metrics = base_metrics()
    # Outdoor 60% (6 of 10) at 200 km vs 50% (10 of 20) overall: indoor 4 of 10.
    row(metrics, "M1 coarse")["outdoor"]["accuracy_pct"].update({"200km": 60})
    got = by_key(metrics)["outdoor_gain"]
    assert got.verdict == "not reproduced"
    assert "200 km: outdoor 60.0% vs all 50.0% (+10.0 pts; indoor 40.0%; Fisher p = 0.656)" in (
        got.numbers
    )
    assert got.why == "the gain at 200 km is not significant (p = 0.656)"
    row(metrics, "M1 coarse")["outdoor"] = None
    assert by_key(metrics)["outdoor_gain"].verdict == "not run"


def test_hierarchical_short_by_more_than_half_a_point():
    metrics = base_metrics()
    row(metrics, "hier")["accuracy_pct"].update({"1km": 14.4})
    got = by_key(metrics)["hierarchical"]
    assert got.verdict == "not reproduced"
    assert got.why == "below the better single mesh by more than 0.5 points at 1 km (-0.6 pts)"


def test_quadtree_as_good_at_equal_cells():
    metrics = base_metrics()
    row(metrics, "M1 s2")["accuracy_pct"].update({"1km": 15, "25km": 35})
    got = by_key(metrics)["triangles_vs_quadtree"]
    assert got.verdict == "not reproduced"
    assert "as good or better at 1 km (+0.0 pts for S2), 25 km (+5.0 pts for S2)" in got.why


def test_bad_inputs_name_what_is_wrong():
    with pytest.raises(InputError, match="role 'm2' names model 'M2 typo'"):
        evaluate_findings(base_metrics(), {**ROLES, "m2": "M2 typo"}, MESHES)
    with pytest.raises(InputError, match="unknown role"):
        evaluate_findings(base_metrics(), {**ROLES, "m4": "x"}, MESHES)
    with pytest.raises(InputError, match="mesh 'fine' lacks field"):
        evaluate_findings(base_metrics(), ROLES, {"fine": {"path": "f.npz"}})
    metrics = base_metrics()
    del metrics["wilcoxon"]
    with pytest.raises(InputError, match="'wilcoxon'"):
        evaluate_findings(metrics, ROLES, MESHES)
    metrics = copy.deepcopy(base_metrics())
    del row(metrics, "M2 coarse")["accuracy_pct"]["750km"]
    with pytest.raises(InputError, match="M2 coarse has no accuracy at 750km"):
        evaluate_findings(metrics, ROLES, MESHES)
