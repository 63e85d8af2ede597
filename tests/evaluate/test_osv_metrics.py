"""OSV-5M's metrics in ``trigeo evaluate``: GeoScore with its interval, admin-level accuracy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trigeo.evaluate.admin import admin_accuracy, admin_places
from trigeo.evaluate.core import evaluate
from trigeo.evaluate.geoscore import bootstrap_mean_ci, geoscore, geoscore_from_errors
from trigeo.evaluate.results import EvaluationConfig
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions

PARIS = (48.8566, 2.3522)
LYON = (45.7640, 4.8357)
VERSAILLES = (48.8049, 2.1204)
BERLIN = (52.5200, 13.4050)
SPANDAU = (52.5354, 13.2000)
POTSDAM = (52.3906, 13.0645)


def test_geoscore_by_hand():
    # 0 km: full marks; 1492.7 km: 5000 / e; 20,000 km: 5000 e^-13.3985 = 0.0075868.
    scores = geoscore([0.0, 1492.7, 20_000.0])
    assert scores[0] == 5000.0
    assert scores[1] == pytest.approx(1839.3972058572, rel=1e-12)
    assert scores[2] == pytest.approx(0.0075867925, rel=1e-8)


def test_geoscore_radius_is_its_own():
    # The same central angle on the study's sphere converts to OSV-5M's 6371 km sphere.
    angle = 0.1
    on_study = angle * 6372.795
    assert geoscore_from_errors([on_study], 6372.795)[0] == pytest.approx(
        geoscore([angle * 6371.0])[0], rel=1e-12
    )


def _osv5m_row_score(true_deg: tuple[float, float], pred_deg: tuple[float, float]) -> float:
    """OSV-5M's documented definition, re-implemented: haversine on radians with an
    arctan2 central angle, R = 6371 km, then 5000 exp(-d / 1492.7)."""
    lat1, lon1 = map(math.radians, pred_deg)
    lat2, lon2 = map(math.radians, true_deg)
    a = (
        math.sin((lat1 - lat2) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon1 - lon2) / 2) ** 2
    )
    d = 6371 * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))
    return 5000 * math.exp(-d / 1492.7)


def _truth(points: list[tuple[float, float]], users: list[str] | None = None, **extra) -> Truth:
    n = len(points)
    table = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "lat": [p[0] for p in points],
            "lon": [p[1] for p in points],
            "outdoor": np.full(n, np.nan),
            "split": "val",
            **({"user_id": users} if users is not None else {}),
            **extra,
        }
    )
    return Truth.from_table(table)


def _peer(truth: Truth, points: list[tuple[float, float]], name: str = "peer") -> Predictions:
    return Predictions(
        photo_id=truth.photo_id.copy(),
        lat=np.array([p[0] for p in points]),
        lon=np.array([p[1] for p in points]),
        model_id=name,
    )


def test_one_row_matches_osv5m_formula_under_any_radius():
    truth = _truth([PARIS])
    pred = _peer(truth, [LYON])
    expected = _osv5m_row_score(PARIS, LYON)
    for radius in (6372.795, 6371.0, 6000.0):
        config = EvaluationConfig(radius_km=radius, ci_unit="photo")
        (model,) = evaluate(truth, [("peer", pred)], config=config).models
        assert model.geoscore == pytest.approx(expected, rel=1e-9)
        assert model.geoscore_ci == pytest.approx((expected, expected), rel=1e-9)


def test_bootstrap_mean_ci_by_user_is_explicit_user_resampling():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 300)
    values = rng.gamma(2.0, 500.0, 300) + 100.0 * (users % 7)
    low, high = bootstrap_mean_ci(values, n_resamples=200, seed=5, groups=users)
    # The same draws, applied by concatenating each drawn user's photos.
    _, dense = np.unique(users, return_inverse=True)
    n_users = dense.max() + 1
    draws = np.random.default_rng(5).integers(0, n_users, size=(200, n_users))
    means = [np.concatenate([values[dense == u] for u in row]).mean() for row in draws]
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), rel=1e-10)
    # A photo-level interval is the user one with every photo its own user.
    photo = bootstrap_mean_ci(values, n_resamples=200, seed=5)
    assert photo == bootstrap_mean_ci(values, n_resamples=200, seed=5, groups=np.arange(300))
    assert bootstrap_mean_ci([], n_resamples=10) != bootstrap_mean_ci([], n_resamples=10)  # NaN


def test_admin_levels_on_known_places():
    true = admin_places([PARIS[0], BERLIN[0], BERLIN[0]], [PARIS[1], BERLIN[1], BERLIN[1]])
    pred = admin_places([LYON[0], POTSDAM[0], SPANDAU[0]], [LYON[1], POTSDAM[1], SPANDAU[1]])
    assert list(true.cc) == ["FR", "DE", "DE"] and list(pred.cc) == ["FR", "DE", "DE"]
    assert list(pred.admin1) == ["Rhone-Alpes", "Brandenburg", "Berlin"]
    per_row = [admin_accuracy(true.take([i]), pred.take([i]), [True]) for i in range(len(true))]
    # Paris vs Lyon, Berlin vs Potsdam: same country, different region.
    for row in per_row[:2]:
        assert row == {"country": 100.0, "region": 0.0, "subregion": 0.0, "city": 0.0}
    # Mitte vs Spandau: Berlin has no admin2 in GeoNames; both empty with the same admin1
    # and country is the same sub-region (OSV-5M's rule), but not the same place.
    assert per_row[2] == {"country": 100.0, "region": 100.0, "subregion": 100.0, "city": 0.0}
    # Paris vs Versailles: same region, different admin2; Paris vs Paris: every level.
    paris, versailles = (
        admin_places([PARIS[0], VERSAILLES[0]], [PARIS[1], VERSAILLES[1]]).take([0]),
        admin_places([VERSAILLES[0]], [VERSAILLES[1]]),
    )
    assert admin_accuracy(paris, versailles, [True]) == {
        "country": 100.0,
        "region": 100.0,
        "subregion": 0.0,
        "city": 0.0,
    }
    assert set(admin_accuracy(paris, paris, [True]).values()) == {100.0}
    # A miss (no point: NaN) is wrong everywhere, even against an empty place.
    none = admin_places([np.nan], [np.nan])
    assert set(admin_accuracy(none, none, [False]).values()) == {0.0}


def test_evaluate_reports_osv_metrics_and_country_lookups():
    truth = _truth(
        [PARIS, BERLIN, BERLIN, PARIS],
        users=["a", "a", "b", "c"],
        country=["FR", "DE", "DE", "ZZ"],
    )
    pred = _peer(truth, [LYON, POTSDAM, SPANDAU, PARIS])
    evaluation = evaluate(truth, [("peer", pred)])
    row = evaluation.to_json()["models"][0]
    assert row["admin_accuracy_pct"] == {
        "country": 100.0,
        "region": 50.0,
        "subregion": 50.0,
        "city": 25.0,
    }
    scores = [
        _osv5m_row_score(t, p)
        for t, p in zip(
            [PARIS, BERLIN, BERLIN, PARIS], [LYON, POTSDAM, SPANDAU, PARIS], strict=True
        )
    ]
    assert row["geoscore"] == pytest.approx(np.mean(scores), rel=1e-9)
    low, high = row["geoscore_ci"]
    assert min(scores) <= low <= row["geoscore"] <= high <= max(scores)
    assert row["ci_unit"] == "user"
    lookups = evaluation.country_lookups
    assert lookups["photos"] == 4 and lookups["disagree"] == 0 and lookups["share"] == 0.0
    # The dataset's own country wins over the lookup: a wrong code makes country wrong.
    truth = _truth([PARIS], country=["DE"])
    (model,) = evaluate(
        truth, [("peer", _peer(truth, [PARIS]))], config=EvaluationConfig(ci_unit="photo")
    ).models
    assert model.admin_accuracy["country"] == 0.0 and model.admin_accuracy["city"] == 100.0


def test_missing_photo_scores_as_antipode_and_admin_miss():
    truth = _truth([PARIS, BERLIN])
    pred = Predictions(
        photo_id=truth.photo_id[:1].copy(),
        lat=np.array([PARIS[0]]),
        lon=np.array([PARIS[1]]),
        model_id="half",
    )
    evaluation = evaluate(truth, [("half", pred)])
    assert "no prediction for 1 of 2 photos" in evaluation.warnings[0]
    (model,) = evaluation.models
    assert model.geoscore == pytest.approx((5000.0 + 5000 * math.exp(-math.pi * 6371 / 1492.7)) / 2)
    assert model.admin_accuracy == {
        "country": 50.0,
        "region": 50.0,
        "subregion": 50.0,
        "city": 50.0,
    }
