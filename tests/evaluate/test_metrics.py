"""The evaluation standard's numbers: distances, accuracy, bootstrap, KL, Wilcoxon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wilcoxon

from trigeo.evaluate.metrics import (
    DEFAULT_THRESHOLDS_KM,
    MISS_ERROR_KM,
    accuracy_at,
    bootstrap_accuracy_ci,
    class_frequencies,
    error_km,
    kept_cell_scores,
    kl_divergence,
    outdoor_mask,
    prediction_entropy,
    summarize_errors,
)
from trigeo.evaluate.paired import compare_models

# Reference distances on a sphere of R = 6372.795 km, computed independently with
# the Vincenty (atan2) great-circle formula. Sanity check by hand: the commonly
# quoted Paris-London distance at R = 6371 km is 343.56 km; x 6372.795 / 6371
# = 343.65 km. New York-Los Angeles: 3935.7 km at 6371 -> 3936.8 km.
CITY_PAIRS = [
    ((48.8566, 2.3522), (51.5074, -0.1278), 343.6528556837378),  # Paris - London
    ((40.7128, -74.0060), (34.0522, -118.2437), 3936.8551330474916),  # New York - LA
    ((-33.8688, 151.2093), (35.6762, 139.6503), 7828.0235049821185),  # Sydney - Tokyo
    ((-18.1416, 178.4419), (-13.8333, -171.7500), 1152.6490222004932),  # Fiji - Samoa
    ((-0.1807, -78.4678), (1.3521, 103.8198), 19734.89021149187),  # Quito - Singapore
]


@pytest.mark.parametrize(("a", "b", "expected"), CITY_PAIRS)
def test_error_km_matches_reference_city_pairs(a, b, expected):
    assert error_km(a[0], a[1], b[0], b[1]) == pytest.approx(expected, abs=1e-6)
    assert error_km(b[0], b[1], a[0], a[1]) == pytest.approx(expected, abs=1e-6)


def test_error_km_radius_is_configurable_and_short_range_is_precise():
    (a, b, expected) = CITY_PAIRS[0]
    assert error_km(*a, *b, radius_km=6371.0) == pytest.approx(expected * 6371.0 / 6372.795)
    # 1 m apart along a meridian: arccos form would lose this; haversine keeps it.
    one_metre_deg = np.degrees(0.001 / 6372.795)
    assert error_km(10.0, 20.0, 10.0 + one_metre_deg, 20.0) == pytest.approx(0.001, rel=1e-6)
    assert MISS_ERROR_KM == pytest.approx(20020.725954833764)


def test_accuracy_counts_d_equal_t_as_correct_unless_strict():
    errors = np.array([0.5, 1.0, 25.0, 199.9, 200.0, 750.0, 2500.0, 2500.1, 10000.0, 3.0])
    assert accuracy_at(errors).tolist() == [20.0, 40.0, 60.0, 70.0, 80.0]
    assert accuracy_at(errors, strict_less=True).tolist() == [10.0, 30.0, 50.0, 60.0, 70.0]
    assert accuracy_at(errors, (10.0,)).tolist() == [30.0]


def test_accuracy_matches_direct_count(rng):
    errors = rng.exponential(800.0, size=5000)
    expected = [100.0 * np.mean(errors <= t) for t in DEFAULT_THRESHOLDS_KM]
    np.testing.assert_allclose(accuracy_at(errors), expected)


def test_accuracy_rejects_nan_and_bad_thresholds():
    with pytest.raises(ValueError, match="NaN"):
        accuracy_at([1.0, np.nan])
    with pytest.raises(ValueError, match="thresholds"):
        accuracy_at([1.0], (-1.0,))
    assert np.isnan(accuracy_at([])).all()


def test_summarize_errors():
    assert summarize_errors([1.0, 2.0, 9.0]) == {"mean_km": 4.0, "median_km": 2.0}


def test_bootstrap_is_seeded_and_matches_index_resampling(rng):
    errors = rng.exponential(600.0, size=4000)
    low, high = bootstrap_accuracy_ci(errors, n_resamples=4000, seed=3)
    low2, high2 = bootstrap_accuracy_ci(errors, n_resamples=4000, seed=3)
    np.testing.assert_array_equal(low, low2)
    np.testing.assert_array_equal(high, high2)
    acc = accuracy_at(errors)
    assert np.all(low <= acc) and np.all(acc <= high)
    # The classic bootstrap, resampling photo indices, gives the same intervals.
    idx = rng.integers(0, errors.size, size=(2000, errors.size))
    boots = np.stack([accuracy_at(errors[row]) for row in idx])
    ref_low, ref_high = np.quantile(boots, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(low, ref_low, atol=0.3)
    np.testing.assert_allclose(high, ref_high, atol=0.3)
    # Normal-approximation width of a proportion, for scale.
    p = acc / 100
    np.testing.assert_allclose(high - low, 100 * 2 * 1.96 * np.sqrt(p * (1 - p) / 4000), rtol=0.1)


def test_bootstrap_handles_unsorted_thresholds_and_degenerate_cases():
    errors = np.array([1.0, 2.0, 3.0, 500.0])
    low, high = bootstrap_accuracy_ci(errors, (1000.0, 0.5), n_resamples=200)
    assert low.tolist() == [100.0, 0.0] and high.tolist() == [100.0, 0.0]
    low, high = bootstrap_accuracy_ci([], (1.0,))
    assert np.isnan(low).all() and np.isnan(high).all()


def test_kl_is_zero_for_identical_distributions_and_matches_hand_value():
    labels = np.array([0, 0, 1, 2, 2, 2])
    assert kl_divergence(labels, labels[::-1], 4) == 0.0
    # Counts +1: true [3,2,4,1]/10, predicted [1,5,3,1]/10 (pred = [1,1,1,1,2,2]).
    pred = np.array([1, 1, 1, 1, 2, 2])
    p = np.array([3, 2, 4, 1]) / 10
    q = np.array([1, 5, 3, 1]) / 10
    assert kl_divergence(labels, pred, 4) == pytest.approx(np.sum(p * np.log(p / q)))
    assert kl_divergence(labels, pred, 4) > 0


def test_kl_counts_only_photos_whose_true_cell_is_kept_by_hand():
    # 3 kept cells; photos 4 and 5 lie in no kept cell (-1) and are left out.
    true = np.array([0, 0, 1, 2, -1, -1])
    pred = np.array([0, 1, 1, 1, 0, 2])
    scores = kept_cell_scores(true, pred, 3)
    # Kept photos: true [0, 0, 1, 2] -> counts [2, 1, 1], +1 -> p = [3, 2, 2] / 7;
    # predicted [0, 1, 1, 1] -> counts [1, 3, 0], +1 -> q = [2, 4, 1] / 7.
    p = np.array([3, 2, 2]) / 7
    q = np.array([2, 4, 1]) / 7
    # sum p ln(p/q) = 3/7 ln(3/2) + 2/7 ln(1/2) + 2/7 ln 2 = 3/7 ln(3/2) = 0.17377.
    assert scores.kl == pytest.approx(np.sum(p * np.log(p / q)))
    assert scores.kl == pytest.approx(3 / 7 * np.log(1.5))
    # Entropy of the raw predicted frequencies [1, 3, 0] / 4.
    assert scores.entropy == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)))
    assert (scores.photos, scores.n_classes) == (4, 3)
    assert scores.outside_share == pytest.approx(2 / 6)
    # The old extra class: p = [3, 2, 2, 3] / 10, q = [3, 4, 2, 1] / 10 gives 0.191, of
    # which 0.3 ln 3 = 0.33 is the outside class alone, a term every model of the mesh pays.
    old = kl_divergence(np.where(true < 0, 3, true), pred, 4)
    assert old == pytest.approx(0.2 * np.log(0.5) + 0.3 * np.log(3.0))


def test_kl_gives_predictions_outside_kept_cells_one_extra_class_by_hand():
    # A peer's lat/lon can land outside every kept cell: photos 1 and 2 (true cells kept).
    scores = kept_cell_scores([0, 1, 2, -1], [0, -1, -1, 1], 3)
    # Kept photos: true [0, 1, 2] -> p = [2, 2, 2, 1] / 7 (class 3 = outside, count 0 + 1);
    # predicted [0, out, out] -> q = [2, 1, 1, 3] / 7.
    # KL = 2/7 ln 2 + 2/7 ln 2 + 1/7 ln(1/3).
    assert scores.kl == pytest.approx(4 / 7 * np.log(2) - 1 / 7 * np.log(3))
    assert scores.n_classes == 4 and scores.photos == 3 and scores.outside_share == 0.25
    assert scores.entropy == pytest.approx(-(np.log(1 / 3) / 3 + 2 / 3 * np.log(2 / 3)))
    empty = kept_cell_scores([-1, -1], [0, 1], 3)
    assert np.isnan(empty.kl) and empty.photos == 0 and empty.outside_share == 1.0


def test_entropy_of_uniform_predictions_is_ln_k():
    k = 37
    assert prediction_entropy(np.arange(k).repeat(5), k) == pytest.approx(np.log(k))
    assert prediction_entropy(np.zeros(10, dtype=int), k) == 0.0
    assert class_frequencies([0, 1], 3, pseudocount=1.0).tolist() == pytest.approx([0.4, 0.4, 0.2])
    with pytest.raises(ValueError, match="class labels"):
        class_frequencies([5], 3)


def test_wilcoxon_p_values_equal_scipy_on_the_same_pairs(rng):
    ids = np.array([f"p{i}" for i in range(300)])
    a = rng.exponential(500, 300)
    b = a * rng.uniform(0.7, 1.2, 300)
    c = rng.exponential(450, 300)
    # Model c scored the photos in another order and missed 20 of them.
    order = rng.permutation(300)[:280]
    results = compare_models({"a": (ids, a), "b": (ids, b), "c": (ids[order], c[order])})
    assert [(r.model_a, r.model_b) for r in results] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert results[0].p_value == wilcoxon(a, b).pvalue
    assert results[0].statistic == wilcoxon(a, b).statistic
    kept = np.sort(order)
    assert results[1].n_photos == 280
    assert results[1].p_value == pytest.approx(wilcoxon(a[kept], c[kept]).pvalue, rel=1e-12)
    assert results[2].p_value == pytest.approx(wilcoxon(b[kept], c[kept]).pvalue, rel=1e-12)
    assert results[0].median_difference_km == pytest.approx(np.median(a - b))


def test_wilcoxon_of_identical_errors_is_undefined_not_an_error():
    ids = np.array(["x", "y", "z"])
    errors = np.array([1.0, 2.0, 3.0])
    (result,) = compare_models({"a": (ids, errors), "b": (ids, errors.copy())})
    assert np.isnan(result.p_value) and result.n_photos == 3 and result.n_differing == 0


@pytest.mark.parametrize("ties", [0, 3, 10, 55, 1000])
def test_wilcoxon_leaves_equal_errors_out_by_hand(ties):
    # Model a is 1..5 km worse than b on 5 photos and equal on `ties` others (same top cell).
    # Only the 5 differences are ranked: ranks 1..5, all positive, so T+ = 15, T- = 0,
    # statistic min(T+, T-) = 0, and the exact two-sided p = 2 * P(T- <= 0) = 2 / 2**5.
    # Before, scipy chose its method from all pairs: any tie ruled out the exact test and
    # from 14 pairs on the normal approximation gave p = 0.0431.
    n = 5 + ties
    ids = np.array([f"p{i}" for i in range(n)])
    b = np.full(n, 100.0)
    a = b.copy()
    a[:5] += [1.0, 2.0, 3.0, 4.0, 5.0]
    (result,) = compare_models({"a": (ids, a), "b": (ids, b)})
    assert (result.n_photos, result.n_differing) == (n, 5)
    assert result.statistic == 0.0
    assert result.p_value == pytest.approx(0.0625, abs=1e-12)
    # The median difference still counts the ties.
    assert result.median_difference_km == np.median(a - b)
    assert result.as_dict()["zero_method"] == "wilcox"


def test_wilcoxon_by_hand_with_both_signs_and_ties():
    # Differences a - b: +1, -2, +3, +4, +5, +6 km and 40 ties. Ranks 1..6; T- = 2, T+ = 19.
    # Signed-rank sums <= 2 among the 2**6 sign patterns: {}, {1}, {2} -> P = 3/64,
    # two-sided p = 6/64.
    diff = np.concatenate([[1.0, -2.0, 3.0, 4.0, 5.0, 6.0], np.zeros(40)])
    ids = np.array([f"p{i}" for i in range(diff.size)])
    b = np.full(diff.size, 50.0)
    (result,) = compare_models({"a": (ids, b + diff), "b": (ids, b)})
    assert result.n_differing == 6 and result.statistic == 2.0
    assert result.p_value == pytest.approx(6 / 64, abs=1e-12)


def test_outdoor_mask_uses_half_threshold_and_treats_missing_as_indoor():
    assert outdoor_mask([0.0, 0.49, 0.5, 1.0, np.nan]).tolist() == [
        False,
        False,
        True,
        True,
        False,
    ]


@settings(max_examples=60, deadline=None)
@given(
    errors=st.lists(st.floats(0, 20100, allow_nan=False), min_size=1, max_size=200),
    seed=st.integers(0, 2**31),
)
def test_accuracy_and_bootstrap_properties(errors, seed):
    errors = np.array(errors)
    acc = accuracy_at(errors)
    assert np.all(np.diff(acc) >= 0) and np.all((acc >= 0) & (acc <= 100))
    assert np.all(accuracy_at(errors, strict_less=True) <= acc)
    low, high = bootstrap_accuracy_ci(errors, n_resamples=200, seed=seed)
    assert np.all(low <= acc + 1e-9) and np.all(acc <= high + 1e-9)
    assert np.all(np.diff(low) >= -1e-9) and np.all(np.diff(high) >= -1e-9)


@settings(max_examples=60, deadline=None)
@given(
    true=st.lists(st.integers(0, 9), min_size=1, max_size=100),
    pred=st.lists(st.integers(0, 9), min_size=1, max_size=100),
)
def test_kl_is_non_negative_and_entropy_bounded(true, pred):
    assert kl_divergence(true, pred, 10) >= -1e-12
    assert 0.0 <= prediction_entropy(pred, 10) <= np.log(10) + 1e-12
