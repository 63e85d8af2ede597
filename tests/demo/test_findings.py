"""The study's findings on hand-made metrics.json dicts, with hand-worked verdicts and p-values.

The base metrics make every finding reproduce; each test then breaks one thing and checks that
the verdict and the words of ``why`` follow the numbers.
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


def test(a: str, b: str, p: float | None, median: float, differing: int = 12) -> dict[str, Any]:
    """A metrics.json Wilcoxon entry (p None stands for NaN, as metrics.json stores it)."""
    return {
        "model_a": a,
        "model_b": b,
        "n_photos": 20,
        "n_differing": differing,
        "zero_method": "wilcox",
        "statistic": 1.0,
        "p_value": p,
        "median_difference_km": median,
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
        model("M1 fine cell", [10, 25, 45, 45, 70], 1200),
        model("M1 s2", [10, 25, 40, 45, 70], 1300),
        model("M2 coarse", [5, 25, 55, 55, 85], 800, kl=0.4),
        model("M3 coarse", [10, 25, 60, 60, 90], 700, kl=0.3),
        model("M1 coarse +user-avg", [0, 25, 55, 60, 85], 850),
        model("hier", [15, 30, 55, 55, 80], 750),
        model("kNN", [20, 30, 40, 50, 60], 2000),
        model("prior", [0, 0, 5, 20, 40], 5000),
    ]
    tests = [
        test("M1 coarse", "M1 coarse cell", 0.001, -10.0),
        # Stored as (cell, imagery): +5 km means the imagery centroid's errors are smaller.
        test("M1 fine cell", "M1 fine", 0.01, 5.0),
        test("M1 coarse", "M1 fine", 0.3, 1.0),
        # Median 0 (most photos tie): the mean errors (800 < 900) say M2 is better.
        test("M2 coarse", "M1 coarse", 0.02, 0.0),
        test("M3 coarse", "M2 coarse", 1e-5, -3.0),
        test("M1 coarse", "M1 coarse +user-avg", 0.04, 2.0),
        test("M1 fine", "M1 s2", 0.03, -1.0),
        test("hier", "M1 coarse", 0.2, -1.0),
        test("hier", "M1 fine", 0.01, -2.0),
    ]
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


def test_every_finding_reproduces_with_the_hand_worked_p_values():
    findings = evaluate_findings(base_metrics(), ROLES, MESHES)
    assert [f.key for f in findings] == [
        "imagery_vs_cell", "coarse_vs_fine", "time_helps", "albums_help", "user_averaging",
        "outdoor_gain", "triangles_vs_quadtree", "hierarchical",
    ]  # fmt: skip
    assert [f.verdict for f in findings] == ["reproduced"] * 8, [f.why for f in findings]
    expected = [0.01, 0.3, 0.02, 1e-5, 0.04, FISHER_P, 0.03, 0.2]
    assert [f.p_value for f in findings] == pytest.approx(expected, rel=1e-9)
    got = {f.key: f for f in findings}
    assert "coarse: imagery 5.0/20.0/50.0/50.0/80.0 vs cell 0.0/10.0/40.0/50.0/80.0" in (
        got["imagery_vs_cell"].numbers
    )
    assert "tie at 2500 km" not in got["coarse_vs_fine"].why
    assert "p = 0.020 in M2 coarse's favour" in got["time_helps"].why
    assert "lowest KL (0.300)" in got["albums_help"].why
    assert "+50.0 pts" in got["outdoor_gain"].numbers and "outside the study's 4 to 8" in (
        got["outdoor_gain"].why
    )
    assert "Delaunay (100 cells) 15.0/30.0/45.0 vs quad-tree (110 cells) 10.0/25.0/40.0" in (
        got["triangles_vs_quadtree"].numbers
    )
    assert "best possible s2 25.0/65.0/95.0" in got["triangles_vs_quadtree"].numbers
    assert "above both at 200 km, 750 km" in got["hierarchical"].why
    assert "vs M1 coarse: not significant: p = 0.200" in got["hierarchical"].why
    assert "vs M1 fine" not in got["hierarchical"].why
    assert "38.72" not in got["time_helps"].study and "p < 1e-16" in got["time_helps"].study


def test_missing_roles_are_not_run_and_say_which_role():
    roles = {k: v for k, v in ROLES.items() if k not in ("m1_s2", "hier", "m1_fine_cell")}
    got = by_key(base_metrics(), roles)
    assert got["triangles_vs_quadtree"].verdict == "not run"
    assert "'m1_s2'" in got["triangles_vs_quadtree"].why
    assert got["hierarchical"].verdict == "not run" and got["hierarchical"].p_value is None
    # Coarse alone still decides; the skipped fine pair is said.
    assert got["imagery_vs_cell"].verdict == "reproduced"
    assert got["imagery_vs_cell"].p_value == pytest.approx(0.001)
    assert "'m1_fine_cell'" in got["imagery_vs_cell"].why
    only = by_key(base_metrics(), {"knn": "kNN"})
    assert {f.verdict for f in only.values()} == {"not run"}


def test_wrong_direction_and_orientation_of_the_stored_pair():
    metrics = base_metrics()
    pair(metrics, "M1 fine cell", "M1 fine")["median_difference_km"] = -5.0  # cell now better
    got = by_key(metrics)["imagery_vs_cell"]
    assert got.verdict == "not reproduced"
    assert "fine: p = 0.010 but the paired errors favour M1 fine cell" in got.why


def test_time_not_above_at_most_thresholds_and_not_significant():
    metrics = base_metrics()
    row(metrics, "M2 coarse")["accuracy_pct"].update({"25km": 15, "200km": 45})
    pair(metrics, "M2 coarse", "M1 coarse")["p_value"] = 0.2
    got = by_key(metrics)["time_helps"]
    assert got.verdict == "not reproduced" and got.p_value == pytest.approx(0.2)
    assert "above M1 coarse at only 2 of 5 thresholds" in got.why
    assert "25 km (-5.0 pts), 200 km (-5.0 pts)" in got.why
    assert "not significant: p = 0.200 ≥ 0.05 (12 of 20 photos differ)" in got.why


def test_nan_p_value_gives_none_and_says_so():
    metrics = base_metrics()
    entry = pair(metrics, "M3 coarse", "M2 coarse")
    entry.update(p_value=None, n_differing=0, median_difference_km=0.0)
    got = by_key(metrics)["albums_help"]
    assert got.p_value is None and got.verdict == "not reproduced"
    assert "Wilcoxon p undefined: all 20 shared photos have equal errors" in got.why
    metrics["wilcoxon"].remove(pair(metrics, "M3 coarse", "M2 coarse"))
    missing = by_key(metrics)["albums_help"]
    assert missing.verdict == "not run" and missing.p_value is None
    assert "no Wilcoxon test of 'M3 coarse' vs 'M2 coarse'" in missing.why


def test_albums_kl_not_lowest():
    metrics = base_metrics()
    row(metrics, "M2 coarse")["kl_divergence"] = 0.25
    got = by_key(metrics)["albums_help"]
    assert got.verdict == "not reproduced"
    assert got.why == "KL of M3 coarse (0.300) is not the lowest: M2 coarse 0.250"


def test_coarse_vs_fine_crossover_broken_and_ties():
    metrics = base_metrics()
    row(metrics, "M1 fine")["accuracy_pct"].update({"750km": 55, "2500km": 80})
    got = by_key(metrics)["coarse_vs_fine"]
    assert got.verdict == "not reproduced" and got.p_value == pytest.approx(0.3)
    assert "fine leads at 750 km by +5.0 pts" in got.why and "tie at 2500 km (80.0%)" in got.why
    assert "compares the overall paired errors, not the crossover" in got.why
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


def test_user_averaging_missing_row_and_worse():
    metrics = base_metrics()
    metrics["models"].remove(row(metrics, "M1 coarse +user-avg"))
    got = by_key(metrics)["user_averaging"]
    assert got.verdict == "not run" and "'M1 coarse +user-avg'" in got.why
    metrics = base_metrics()
    pair(metrics, "M1 coarse", "M1 coarse +user-avg")["median_difference_km"] = -2.0
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
