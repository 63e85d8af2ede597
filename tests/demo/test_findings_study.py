"""The judge on the study's own table: each finding the study backs with rows must reproduce.

A metrics.json is built from ``study.json`` (itself a transcription of paper-notes.md): the
model rows are the study's published accuracies (headline results, Table 1) and Table 7's KL
divergences and errors. The study publishes no per-user or per-photo tests, only that its
differences are significant, so every paired test is set significant (p = 1e-17, below the
study's p < 1e-16) in the direction the study reports; its p-values are not numbers of the
study. A judge that fails these rows is wrong, not the table.

Findings the study does not back with rows are named with their reason and skipped after
checking the reason holds, never passed silently.
"""

from __future__ import annotations

from typing import Any

import pytest

from trigeo.demo.findings import ALBUM_SHARE, KL_TOLERANCE, STUDY_EVIDENCE, evaluate_findings
from trigeo.demo.study import STUDY_THRESHOLDS_KM, StudyRow, load_study_numbers, study_key

STUDY = load_study_numbers()
PHOTOS = STUDY.photos["validation"]
#: Significant beyond the study's own bound (p < 1e-16); a direction, not a published value.
P = 1e-17
MESHES = {
    mesh: {"path": f"{mesh}.npz", "cells": STUDY.cells[mesh], "kind": "delaunay", "rule": "study"}
    for mesh in ("coarse", "fine")
}


def model(name: str, acc: StudyRow, errors_key: str | None = None) -> dict[str, Any]:
    """A metrics.json row of the study's accuracies and, where Table 7 has them, KL and errors."""
    errors = STUDY.errors.get(errors_key or "")
    return {
        "model": name,
        "photos_scored": PHOTOS,
        "accuracy_pct": dict(acc.accuracy_pct),
        "mean_error_km": errors.mean_km if errors else None,
        "median_error_km": errors.median_km if errors else None,
        "kl_divergence": errors.kl if errors else None,
        "prediction_entropy": errors.entropy if errors else None,
        "outdoor": None,
    }


def significant(a: str, b: str, better: str, hits: dict[str, float] | None = None) -> dict:
    """A test entry of ``a`` vs ``b``, significant in ``better``'s favour at photo and user level.

    ``hits``: threshold key -> the study's accuracy difference ``a - b`` (points), which is
    what the user-level hits test's mean difference would be with one photo per user.
    """
    sign = -1.0 if better == a else 1.0  # negative error differences favour model a
    return {
        "model_a": a,
        "model_b": b,
        "n_photos": PHOTOS,
        "n_differing": PHOTOS,
        "p_value": P,
        "median_difference_km": sign,
        "user": {
            "test": "wilcoxon",
            "p_value": P,
            "n_users": PHOTOS,
            "n_differing": PHOTOS,
            "median_difference_km": sign,
            "mean_difference_km": sign,
            "hits": {k: {"p_value": P, "mean_difference_pct": d} for k, d in (hits or {}).items()},
        },
        "mcnemar": {},
    }


def study_metrics() -> tuple[dict[str, Any], dict[str, str]]:
    """metrics.json and roles of the study's model rows (headline results and Table 7)."""
    head = STUDY.headline
    diff = {study_key(t): head["m1_coarse"].at(t) - head["m1_fine"].at(t) for t in (750.0, 2500.0)}
    models = [
        model("coarse M1", head["m1_coarse"], "m1_coarse"),
        model("fine M1", head["m1_fine"], "m1_fine"),
        model("coarse M2", head["m2"], "m2"),
        model("coarse M3", head["m3"], "m3"),
        model("coarse M1 +user-avg", head["user_avg"], "user_avg"),
        # The study gives no album-averaging row: its user averaging stands in (Table 7's
        # averaging row is user averaging), as the brief for this judge says.
        model("coarse M2 +album-avg", head["user_avg"], "user_avg"),
    ]
    tests = [
        significant("coarse M1", "fine M1", "coarse M1", hits=diff),
        significant("coarse M2", "coarse M1", "coarse M2"),
        significant("coarse M3", "coarse M2", "coarse M3"),
        significant("coarse M1", "coarse M1 +user-avg", "coarse M1 +user-avg"),
    ]
    roles = {"m1_coarse": "coarse M1", "m1_fine": "fine M1", "m2": "coarse M2", "m3": "coarse M3"}
    return _metrics(models, tests), roles


def best_possible_metrics() -> tuple[dict[str, Any], dict[str, str]]:
    """metrics.json of Table 1: the study's evidence that the imagery centroid beats the cell's.

    The study publishes no M1 rows at the cell centroid; its claim rests on the best possible
    accuracy of each label, so those rows stand in for M1 at each label.
    """
    models, tests, roles = [], [], {}
    for mesh in ("coarse", "fine"):
        img, cell = f"{mesh} imagery", f"{mesh} cell"
        models += [model(img, STUDY.best_possible[(mesh, "imagery")])]
        models += [model(cell, STUDY.best_possible[(mesh, "cell")])]
        tests.append(significant(img, cell, img))
        roles.update({f"m1_{mesh}": img, f"m1_{mesh}_cell": cell})
    return _metrics(models, tests), roles


def _metrics(models: list[dict[str, Any]], tests: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "config": {"thresholds_km": list(STUDY_THRESHOLDS_KM), "split": "validation"},
        "photos_evaluated": PHOTOS,
        "models": models,
        "oracle": [],
        "wilcoxon": tests,
    }


def study_finding(key: str):
    metrics, roles = best_possible_metrics() if key == "imagery_vs_cell" else study_metrics()
    return {f.key: f for f in evaluate_findings(metrics, roles, MESHES)}[key]


#: Each finding and why it is not checked on the study's rows (None: it is, and must pass).
CASES = [
    ("imagery_vs_cell", None),
    ("coarse_vs_fine", None),
    ("time_helps", None),
    ("albums_help", None),
    ("user_averaging", None),
    # paper-notes gives only "4 to 8 points at region and country level", not Table 6's rows.
    ("outdoor_gain", "stated without numbers"),
    ("triangles_vs_quadtree", "stated without numbers"),
    ("hierarchical", "trigeo's extension"),
]


def test_every_finding_is_listed_with_its_evidence():
    metrics, roles = study_metrics()
    keys = [f.key for f in evaluate_findings(metrics, roles, MESHES)]
    assert keys == [key for key, _ in CASES] == list(STUDY_EVIDENCE)


@pytest.mark.parametrize(("key", "not_checked"), CASES)
def test_the_studys_own_rows_reproduce_its_findings(key, not_checked):
    assert STUDY_EVIDENCE[key] == (not_checked or "rows")
    finding = study_finding(key)
    if not_checked is None:
        assert finding.verdict == "reproduced", finding.why
        assert finding.unit == "user"
        return
    # Nothing of the study's to feed: the finding cannot run, and the reason is checked.
    assert finding.verdict == "not run", finding.why
    if key == "outdoor_gain":
        assert STUDY.outdoor_rows_note.startswith("paper-notes.md gives only the study's words")
        assert "does not give Table 6's outdoor-only accuracies" in STUDY.outdoor_rows_note
    elif key == "triangles_vs_quadtree":
        assert "publishes no numbers at equal cell counts" in finding.study
    else:
        assert finding.study == "trigeo's extension; not in the study"
    pytest.skip(f"{key}: {not_checked} (not checked on the study's rows)")


def test_the_studys_crossover_and_albums_in_words():
    cvf = study_finding("coarse_vs_fine")
    assert "coarse minus fine: 1 km -3.2 pts, 25 km +0.1 pts, 200 km +7.4 pts" in cvf.why
    assert "25 km, the crossover (not deciding): coarse leads (coarse minus fine +0.1 pts)" in (
        cvf.why
    )
    albums = study_finding("albums_help")
    assert "200 km: M3 +1.4 pts, album averaging +3.1 pts (47%) over M2" in albums.numbers
    assert "750 km: M3 +2.3 pts, album averaging +4.6 pts (49%) over M2" in albums.numbers
    assert (
        "KL coarse M1 0.6718, coarse M2 0.4998, coarse M3 0.4991, coarse M2 +album-avg 0.9702"
        in (albums.numbers)
    )


def test_album_share_and_kl_tolerance_are_where_the_study_puts_them():
    """Half of averaging's gain would fail the study's M3 (47% and 49%); 0.4 passes it."""
    head = STUDY.headline
    shares = [
        (head["m3"].at(t) - head["m2"].at(t)) / (head["user_avg"].at(t) - head["m2"].at(t))
        for t in (200.0, 750.0)
    ]
    assert ALBUM_SHARE <= min(shares) < 0.5
    kl = STUDY.errors
    assert kl["m3"].kl <= KL_TOLERANCE * kl["m2"].kl and kl["m3"].kl > 0.99 * kl["m2"].kl
