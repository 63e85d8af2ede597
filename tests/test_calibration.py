"""Temperature scaling, credible cell sets, coverage and ECE."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.calibration import (
    apply_temperature,
    credible_sets,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    reliability_curve,
)


def _sample_labels(rng, probs):
    cum = probs.cumsum(axis=1)
    u = rng.random((probs.shape[0], 1))
    return np.minimum((cum < u).sum(axis=1), probs.shape[1] - 1)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_generating_temperature(rng, true_t):
    logits = rng.normal(size=(6000, 25)) * 4.0
    labels = _sample_labels(rng, apply_temperature(logits, true_t))
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


def test_fitted_temperature_minimizes_nll(rng):
    logits = rng.normal(size=(2000, 10)) * 3.0
    labels = _sample_labels(rng, apply_temperature(logits, 1.7))
    t = fit_temperature(logits, labels)

    def nll(temp):
        return -log_softmax(logits / temp)[np.arange(2000), labels].mean()

    assert nll(t) <= nll(t * 1.05) and nll(t) <= nll(t / 1.05)


def test_apply_temperature_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [5.0, 5.0, 5.0]])
    probs = apply_temperature(logits, 0.5)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[1], 1 / 3)
    assert probs[0, 0] == 1.0
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, 0.0)


def test_fit_temperature_validates_input():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        fit_temperature(np.zeros(3), np.array([0, 1, 0]))


def test_credible_sets_by_hand():
    # Photo 0: 0.6 + 0.3 reaches 0.5 with 1 cell, 0.9 with 2 cells; truth is the 2nd cell.
    # Photo 1: probabilities unsorted on input; truth absent from the top-k.
    cells = np.array([[4, 7, 1], [2, 0, 3]])
    probs = np.array([[0.6, 0.3, 0.05], [0.1, 0.5, 0.2]])
    areas = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0, 0, 0, 5.0])
    s50, s90 = credible_sets(cells, probs, np.array([7, 5]), (0.5, 0.9), cell_areas_km2=areas)
    assert s50.size.tolist() == [1, 1] and s90.size.tolist() == [2, 3]
    assert s50.area_km2.tolist() == [10000.0, 1.0]
    assert s90.area_km2.tolist() == [10005.0, 1101.0]
    assert s50.covered.tolist() == [False, False] and s90.covered.tolist() == [True, False]
    # Photo 1's top-3 hold only 0.8 < 0.9: its 90% set is incomplete.
    assert s90.complete.tolist() == [True, False]


def test_credible_sets_from_full_vectors_match_top_k_path(rng):
    probs = rng.dirichlet(np.full(300, 0.05), size=500)
    truth = rng.integers(0, 300, 500)
    full = credible_sets(None, probs, truth, cell_areas_km2=np.arange(300.0))
    order = np.argsort(-probs, axis=1)
    topk = credible_sets(
        order, np.take_along_axis(probs, order, 1), truth, cell_areas_km2=np.arange(300.0)
    )
    for a, b in zip(full, topk, strict=True):
        np.testing.assert_array_equal(a.size, b.size)
        np.testing.assert_array_equal(a.covered, b.covered)
        np.testing.assert_allclose(a.area_km2, b.area_km2)
        assert a.complete.all()


def test_coverage_of_calibrated_model_matches_level(rng):
    logits = rng.normal(size=(8000, 40)) * 2.5
    probs = apply_temperature(logits, 1.0)
    truth = _sample_labels(rng, probs)
    sorted_probs = -np.sort(-probs, axis=1)
    for result in credible_sets(None, probs, truth, (0.5, 0.9, 0.95)):
        # A calibrated model covers the truth as often as its sets hold mass (>= the level,
        # since whole cells overshoot it).
        held = np.where(np.arange(40) < result.size[:, None], sorted_probs, 0).sum(axis=1)
        assert np.all(held >= result.level - 1e-9)
        assert result.covered.mean() == pytest.approx(held.mean(), abs=0.015)


def test_ece_is_zero_when_confidence_equals_accuracy_and_matches_hand_value():
    # Bin [0.6, 0.667): 10 photos at 0.6 confidence, 6 correct -> 0 gap.
    conf = np.full(10, 0.6)
    correct = np.array([1] * 6 + [0] * 4, dtype=bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0)
    # Two bins: 4 photos at 0.95 all wrong (gap 0.95), 4 at 0.25 with 1 right (gap 0).
    conf = np.array([0.95] * 4 + [0.25] * 4)
    correct = np.array([0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.5 * 0.95)
    mean_conf, acc, counts = reliability_curve(conf, correct)
    assert counts.sum() == 8 and np.nanmax(mean_conf) == pytest.approx(0.95)
    assert np.nansum(acc * counts) == 1.0


def test_fit_temperature_accepts_float32_logits(rng):
    logits = (rng.normal(size=(3000, 12)) * 3.0).astype(np.float32)
    labels = _sample_labels(rng, apply_temperature(logits, 1.5))
    assert fit_temperature(logits, labels) == pytest.approx(
        fit_temperature(logits.astype(np.float64), labels), rel=1e-4
    )
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(np.full((2, 3), np.nan, dtype=np.float32), np.array([0, 1]))
