"""Users as the unit: the user-clustered bootstrap and the user-level paired tests.

Photos of one user are not independent; these tests check that trigeo's
intervals and paired tests treat the user as the unit by default, that the
numbers match independent computations (explicit user resampling, a pandas
groupby, scipy), and that the McNemar hit tests match hand-worked values.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, wilcoxon
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.evaluate.core import evaluate
from trigeo.evaluate.metrics import (
    accuracy_at,
    bootstrap_accuracy_ci,
    threshold_keys,
    user_codes,
)
from trigeo.evaluate.paired import USER_TEST, compare_models, mcnemar_tests, user_paired_test
from trigeo.evaluate.report import write_report
from trigeo.evaluate.results import Evaluation, EvaluationConfig
from trigeo.evaluate.run import EvaluationRun
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions
from trigeo.provenance import make_provenance
from trigeo.sphere import EARTH_RADIUS_KM


def _dominant_user_set(seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User ``big`` holds 300 of 400 photos; 20 others hold 5 each.

    Returns ``(users, errors_a, errors_b)``: model a is within 25 km on every
    photo of ``big`` and on about half of the others' photos; model b is 1-10 km
    worse than a on every photo of ``big`` and randomly better or worse
    (normal, sd 5 km) on the others'.
    """
    rng = np.random.default_rng(seed)
    users = np.array(["big"] * 300 + [f"u{i:02d}" for i in range(20) for _ in range(5)])
    errors_a = np.where(users == "big", 10.0, rng.choice([10.0, 400.0], users.size))
    diff = np.where(
        users == "big", -rng.uniform(1.0, 10.0, users.size), rng.normal(0, 5, users.size)
    )
    # b = a - diff, so a - b = diff (negative favours a); b stays positive.
    errors_b = errors_a - diff
    return users, errors_a, errors_b


def test_one_dominant_user_widens_the_interval_and_raises_the_user_p():
    users, errors_a, errors_b = _dominant_user_set()
    photo_low, photo_high = bootstrap_accuracy_ci(errors_a, (25.0,), seed=1)
    user_low, user_high = bootstrap_accuracy_ci(errors_a, (25.0,), seed=1, groups=users)
    acc = accuracy_at(errors_a, (25.0,))
    assert user_low[0] <= acc[0] <= user_high[0]
    photo_width = photo_high[0] - photo_low[0]
    user_width = user_high[0] - user_low[0]
    # The accuracy moves with how often `big` is drawn: far wider than photo resampling.
    assert user_width > 2 * photo_width
    ids = np.array([f"p{i}" for i in range(users.size)])
    (test,) = compare_models({"a": (ids, errors_a), "b": (ids, errors_b)}, users=(ids, users))
    # 300 photos of one user all favour a: overwhelming per photo, one vote of 21 per user.
    assert test.p_value < 1e-20
    assert test.user["p_value"] > test.p_value
    assert test.user["p_value"] > 0.05
    assert (test.user["n_users"], test.user["n_differing"]) == (21, 21)


def test_user_bootstrap_matches_explicit_resampling_of_users(rng):
    n_users = 60
    sizes = rng.integers(1, 30, n_users)
    users = np.repeat(np.arange(n_users), sizes)
    # A user's photos share a skill level, so errors cluster by user.
    skill = rng.uniform(50, 3000, n_users)
    errors = rng.exponential(skill[users])
    thresholds = (25.0, 200.0, 750.0, 2500.0)
    low, high = bootstrap_accuracy_ci(errors, thresholds, n_resamples=4000, seed=2, groups=users)
    # Reference: draw users with replacement and concatenate all their photos.
    by_user = [errors[users == u] for u in range(n_users)]
    boots = []
    for _ in range(2000):
        drawn = rng.integers(0, n_users, n_users)
        boots.append(accuracy_at(np.concatenate([by_user[u] for u in drawn]), thresholds))
    ref_low, ref_high = np.quantile(np.stack(boots), [0.025, 0.975], axis=0)
    np.testing.assert_allclose(low, ref_low, atol=1.5)
    np.testing.assert_allclose(high, ref_high, atol=1.5)
    # String ids give the same interval as integer codes (same seed, same draws).
    low_s, high_s = bootstrap_accuracy_ci(
        errors, thresholds, n_resamples=4000, seed=2, groups=users.astype(str)
    )
    np.testing.assert_allclose(low_s, low)
    np.testing.assert_allclose(high_s, high)


def test_user_bootstrap_with_one_photo_per_user_is_the_photo_bootstrap(rng):
    errors = rng.exponential(700.0, 3000)
    photo = np.stack(bootstrap_accuracy_ci(errors, n_resamples=3000, seed=4))
    user = np.stack(
        bootstrap_accuracy_ci(errors, n_resamples=3000, seed=4, groups=np.arange(errors.size))
    )
    np.testing.assert_allclose(user, photo, atol=0.4)


def test_user_bootstrap_keeps_thresholds_consistent_and_honours_strict_less():
    # User x: 3 photos at exactly 25 km; 12 users with one photo each, 6 at 10 km.
    errors = np.array([25.0] * 3 + [10.0] * 6 + [3000.0] * 6)
    users = np.array(["x"] * 3 + [f"u{i}" for i in range(12)])
    low, high = bootstrap_accuracy_ci(errors, (25.0,), n_resamples=500, groups=users)
    assert low[0] < 60.0 < high[0]
    # With d < t the photos at exactly 25 km are misses: the same draws (same seed) as
    # d <= t on errors just beyond 25 km.
    strict = bootstrap_accuracy_ci(errors, (25.0,), n_resamples=500, groups=users, strict_less=True)
    beyond = np.where(errors == 25.0, 25.5, errors)
    shifted = bootstrap_accuracy_ci(beyond, (25.0,), n_resamples=500, groups=users)
    np.testing.assert_array_equal(np.stack(strict), np.stack(shifted))
    assert not np.array_equal(np.stack(strict), np.stack([low, high]))
    many = np.random.default_rng(0).exponential(900.0, 500)
    groups = np.random.default_rng(1).integers(0, 40, 500)
    low, high = bootstrap_accuracy_ci(many, (2500.0, 25.0, 750.0), groups=groups, n_resamples=300)
    assert low[1] <= low[2] <= low[0] and high[1] <= high[2] <= high[0]


def test_user_codes_treat_a_missing_user_as_a_user_of_its_own():
    codes = user_codes(np.array(["a", None, "b", "a", None], dtype=object))
    assert codes[0] == codes[3] and codes[0] != codes[2]
    assert len({codes[1], codes[4], codes[0], codes[2]}) == 4


def test_mcnemar_counts_and_p_values_by_hand():
    # Photo: error of a, error of b (km). At 25 km (d <= t):
    #   a within, b not: photos 0, 1, 2 (a = 25.0 exactly), 3 -> a_only = 4, b_only = 0;
    #   exact p = 2 * P(Bin(4, 0.5) <= 0) = 2 / 16 = 0.125.
    # At 200 km: a only photo 3; b only photos 4 (150) and 5 (199): a_only 1, b_only 2;
    #   p = 2 * P(Bin(3, 0.5) <= 1) = 2 * (1 + 3) / 8 = 1.0 (capped at 1).
    # At 2500 km: photos 0-6 within for both, photo 7 for neither: no discordant photo, p = 1.
    a = np.array([10.0, 20.0, 25.0, 1.0, 300.0, 210.0, 5.0, 3000.0])
    b = np.array([30.0, 100.0, 26.0, 500.0, 150.0, 199.0, 5.0, 3000.0])
    ids = np.array([f"p{i}" for i in range(a.size)])
    (test,) = compare_models({"a": (ids, a), "b": (ids, b)}, thresholds_km=(25.0, 200.0, 2500.0))
    assert test.mcnemar == {
        "25km": {"a_only": 4, "b_only": 0, "p_value": pytest.approx(0.125, abs=1e-15)},
        "200km": {"a_only": 1, "b_only": 2, "p_value": pytest.approx(1.0, abs=1e-15)},
        "2500km": {"a_only": 0, "b_only": 0, "p_value": 1.0},
    }
    assert test.mcnemar["25km"]["p_value"] == pytest.approx(binomtest(0, 4, 0.5).pvalue)
    # With d < t photo 2 (a = 25.0) is no longer within 25 km for a: a_only = 3,
    # p = 2 / 8 = 0.25.
    (strict,) = compare_models(
        {"a": (ids, a), "b": (ids, b)}, thresholds_km=(25.0,), strict_less=True
    )
    assert strict.mcnemar["25km"] == {"a_only": 3, "b_only": 0, "p_value": pytest.approx(0.25)}
    # Keys are the accuracy_pct keys of metrics.json.
    assert list(test.mcnemar) == threshold_keys((25.0, 200.0, 2500.0))


def test_mcnemar_equals_scipy_binomtest_on_many_counts(rng):
    hits_a = rng.random((400, 3)) < [[0.3, 0.5, 0.9]]
    hits_b = rng.random((400, 3)) < [[0.32, 0.45, 0.9]]
    out = mcnemar_tests(hits_a, hits_b, ["x", "y", "z"])
    for j, key in enumerate(["x", "y", "z"]):
        a_only = int(np.sum(hits_a[:, j] & ~hits_b[:, j]))
        b_only = int(np.sum(hits_b[:, j] & ~hits_a[:, j]))
        assert (out[key]["a_only"], out[key]["b_only"]) == (a_only, b_only)
        ref = binomtest(b_only, a_only + b_only, 0.5).pvalue
        assert out[key]["p_value"] == pytest.approx(ref, rel=1e-12)


def test_user_level_differences_equal_a_pandas_groupby(rng):
    n = 500
    ids = np.array([f"p{i:03d}" for i in range(n)])
    users = rng.choice([f"u{i}" for i in range(40)], n)
    a = rng.exponential(500.0, n)
    b = np.where(rng.random(n) < 0.3, a, a * rng.uniform(0.6, 1.3, n))  # 30% ties
    # Model b scored its photos in another order and skipped 50 of them.
    order = rng.permutation(n)[:450]
    thresholds = (25.0, 200.0, 750.0)
    (test,) = compare_models(
        {"a": (ids, a), "b": (ids[order], b[order])},
        users=(ids, users),
        thresholds_km=thresholds,
    )
    frame = pd.DataFrame({"photo_id": ids, "user": users, "a": a}).merge(
        pd.DataFrame({"photo_id": ids[order], "b": b[order]}), on="photo_id"
    )
    frame["d"] = frame["a"] - frame["b"]
    d_u = frame.groupby("user")["d"].mean()
    user = test.user
    assert user["test"] == USER_TEST
    assert user["n_users"] == frame["user"].nunique() == d_u.size
    assert user["n_differing"] == int((d_u != 0).sum())
    assert user["median_difference_km"] == pytest.approx(d_u.median(), rel=1e-12)
    assert user["mean_difference_km"] == pytest.approx(d_u.mean(), rel=1e-12)
    expected = wilcoxon(np.sort(d_u[d_u != 0].to_numpy()), zero_method="wilcox").pvalue
    assert user["p_value"] == pytest.approx(expected, rel=1e-9)
    for t, key in zip(thresholds, threshold_keys(thresholds), strict=True):
        rate = frame.assign(h=(frame["a"] <= t).astype(int) - (frame["b"] <= t).astype(int))
        rate_u = rate.groupby("user")["h"].mean()
        assert user["hits"][key]["mean_difference_pct"] == pytest.approx(100 * rate_u.mean())
        nonzero = rate_u[rate_u != 0].to_numpy()
        if nonzero.size:
            ref = wilcoxon(np.sort(nonzero), zero_method="wilcox").pvalue
            assert user["hits"][key]["p_value"] == pytest.approx(ref, rel=1e-9)
        else:
            assert user["hits"][key]["p_value"] is None
    # The photo-level keys are unchanged and the entry says its unit.
    record = test.as_dict()
    assert record["unit"] == "photo" and record["n_photos"] == 450
    assert record["user"] is user and set(record["mcnemar"]) == {"25km", "200km", "750km"}


def test_user_test_is_undefined_when_every_user_ties():
    diff = np.array([1.0, -1.0, 0.0, 2.0, -2.0])
    users = np.array(["x", "x", "y", "z", "z"])
    out = user_paired_test(diff, users, {"25km": np.array([1, -1, 0, 0, 0])})
    # Every user's mean is 0: the test is undefined, not an error.
    assert out["p_value"] is None and out["n_users"] == 3 and out["n_differing"] == 0
    assert out["median_difference_km"] == 0.0 and out["mean_difference_km"] == 0.0
    assert out["hits"]["25km"] == {"p_value": None, "mean_difference_pct": 0.0}
    # Without users there is no user-level test.
    (test,) = compare_models({"a": (np.array(["p"]), [1.0]), "b": (np.array(["p"]), [2.0])})
    assert test.user is None and test.as_dict()["user"] is None


def _truth_and_models(with_users: bool = True) -> tuple[Truth, list[tuple[str, Predictions]]]:
    """The dominant-user set as a Truth on the equator and two models' lat/lon."""
    users, errors_a, errors_b = _dominant_user_set()
    n = users.size
    table = pd.DataFrame(
        {
            "photo_id": [f"p{i:03d}" for i in range(n)],
            "lat": np.zeros(n),
            "lon": np.linspace(-60.0, 60.0, n),
            "outdoor": np.full(n, np.nan),
            "split": "val",
        }
    )
    if with_users:
        table["user_id"] = users
    truth = Truth.from_table(table)
    models = []
    for name, errors in (("a", errors_a), ("b", errors_b)):
        # A prediction due north of the photo by its error (along a meridian).
        lat = np.degrees(errors / EARTH_RADIUS_KM)
        models.append(
            (name, Predictions(photo_id=truth.photo_id, lat=lat, lon=truth.lon, model_id=name))
        )
    return truth, models


def test_evaluate_resamples_users_by_default_and_photos_on_request(tmp_path):
    truth, models = _truth_and_models()
    config = EvaluationConfig(thresholds_km=(25.0, 200.0), n_resamples=500)
    by_user = evaluate(truth, models, config=config)
    by_photo = evaluate(
        truth, models, config=EvaluationConfig(**{**config.as_dict(), "ci_unit": "photo"})
    )
    assert by_user.config.ci_unit == "user" and not by_user.notes
    a_user, a_photo = by_user.models[0], by_photo.models[0]
    assert (a_user.ci_unit, a_photo.ci_unit) == ("user", "photo")
    np.testing.assert_allclose(a_user.accuracy, a_photo.accuracy)
    assert (a_user.ci_high - a_user.ci_low)[0] > 2 * (a_photo.ci_high - a_photo.ci_low)[0]
    (test,) = by_user.wilcoxon
    assert test.p_value < 1e-20 and test.user["p_value"] > 0.05
    # The photo unit only changes the intervals: the user-level test is still there.
    assert by_photo.wilcoxon[0].user == test.user

    out = tmp_path / "report"
    write_report(by_user, out, make_provenance())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["ci_unit"] == "user"
    assert [m["ci_unit"] for m in metrics["models"]] == ["user", "user"]
    (entry,) = metrics["wilcoxon"]
    assert entry["unit"] == "photo" and entry["p_value"] == test.p_value
    assert set(entry["user"]) == {
        "test", "p_value", "n_users", "n_differing", "median_difference_km",
        "mean_difference_km", "hits",
    }  # fmt: skip
    assert set(entry["user"]["hits"]) == set(entry["mcnemar"]) == {"25km", "200km"}
    assert set(entry["mcnemar"]["25km"]) == {"a_only", "b_only", "p_value"}
    md = (out / "report.md").read_text()
    assert "confidence intervals**: 95% percentile bootstrap over users" in md
    assert "confidence intervals of the accuracies (resampling users)" in md
    assert "Pairwise tests by user" in md and "Pairwise tests of hits at each threshold" in md
    html = (out / "report.html").read_text()
    assert "bootstrap over users" in html and "Pairwise tests by user" in html


def test_evaluate_without_user_id_falls_back_to_photos_with_a_note():
    truth, models = _truth_and_models(with_users=False)
    result = evaluate(truth, models, config=EvaluationConfig(n_resamples=100))
    assert result.config.ci_unit == "photo"
    assert result.models[0].ci_unit == "photo"
    assert len(result.notes) == 1 and "no user_id" in result.notes[0]
    assert result.wilcoxon[0].user is None and result.wilcoxon[0].mcnemar
    assert result.to_json()["notes"] == result.notes


def test_cli_ci_unit_option_help_and_note(monkeypatch):
    calls = []

    def fake_run(truth, out, **kwargs):
        calls.append(kwargs["config"])
        evaluation = Evaluation(
            config=kwargs["config"],
            n_truth=0,
            models=[],
            oracle=[],
            wilcoxon=[],
            continents=pd.DataFrame(),
            confusions={},
            warnings=[],
            mesh_names={},
            notes=["the truth has no user_id"],
        )
        return EvaluationRun(
            evaluation, {n: out / n for n in ("report.html", "report.md", "metrics.json")}
        )

    monkeypatch.setattr("trigeo.evaluate.run.run_evaluation", fake_run)
    runner = CliRunner()
    base = ["evaluate", "--data", "ds", "--out", "o", "--pred", "a.csv"]
    assert runner.invoke(app, base).exit_code == 0
    result = runner.invoke(app, [*base, "--ci-unit", "photo"])
    assert result.exit_code == 0, result.output
    assert [c.ci_unit for c in calls] == ["user", "photo"]
    assert "note: the truth has no user_id" in result.output
    assert runner.invoke(app, [*base, "--ci-unit", "album"]).exit_code != 0
    help_text = runner.invoke(app, ["evaluate", "--help"], terminal_width=100).output
    assert "--ci-unit" in help_text and "users with all their photos" in " ".join(help_text.split())
