"""The answer rules (trigeo.answer, trigeo.retrieve.refine) on hand-worked examples.

Distances along the equator are ``R * radians(dlon)``: 1 degree is 111.19 km
on GeoScore's 6371 km sphere.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from trigeo.answer import (
    ANSWERS,
    GEOSCORE_RADIUS_KM,
    GEOSCORE_SCALE_KM,
    answer_model_id,
    answer_points,
    check_answer,
    check_cell_answer,
    expected_distance_km,
    expected_geoscore,
    refine_weights,
    renormalised,
)
from trigeo.errors import InputError
from trigeo.sphere import EARTH_RADIUS_KM, distance_km, latlng_to_xyz, mean_position

DEG_KM = GEOSCORE_RADIUS_KM * math.pi / 180.0  # one degree of the equator, GeoScore's sphere


def _equator(*lons: float) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(len(lons)), np.array(lons, dtype=np.float64)


def _answer(rule, probs, lat, lon, search="cells"):
    """One photo whose top cells are the label points given, in the order given."""
    cells = np.arange(len(probs))[None, :]
    got_lat, got_lon = answer_points(rule, cells, np.array([probs]), lat, lon, search=search)
    return float(got_lat[0]), float(got_lon[0])


def test_geoscore_constants_are_the_evaluations():
    from trigeo.evaluate import geoscore

    assert GEOSCORE_SCALE_KM == geoscore.GEOSCORE_SCALE_KM
    assert GEOSCORE_RADIUS_KM == geoscore.GEOSCORE_RADIUS_KM


def test_one_certain_cell_is_every_rule_s_answer():
    lat, lon = np.array([48.85]), np.array([2.35])
    for rule in ("top-cell", "geoscore", "median"):
        assert _answer(rule, [1.0], lat, lon) == pytest.approx((48.85, 2.35))
    x = latlng_to_xyz(lat, lon)[None]
    assert expected_geoscore(x, x, np.ones((1, 1)))[0, 0] == pytest.approx(5000.0)
    assert expected_distance_km(x, x, np.ones((1, 1)))[0, 0] == pytest.approx(0.0)


def test_two_equal_cells_far_apart_pick_one_of_them_not_the_middle():
    # Paris-like at 0E and a point at 90E, 0.5 each. The expected distance is the same
    # anywhere on the arc between them (d(x,a) + d(x,b) = d(a,b)), so both candidates
    # tie at half the arc and the first listed wins. GeoScore at a candidate:
    # 0.5 * 5000 * (1 + exp(-10007.5 / 1492.7)) = 2503.07; at the midpoint 45E only
    # 5000 * exp(-5003.8 / 1492.7) = 175.0, so the middle is the worst place to answer.
    lat, lon = _equator(0.0, 90.0)
    for rule in ("geoscore", "median"):
        assert _answer(rule, [0.5, 0.5], lat, lon) == pytest.approx((0.0, 0.0))
    xyz = latlng_to_xyz(lat, lon)[None]
    probs = np.array([[0.5, 0.5]])
    score = expected_geoscore(xyz, xyz, probs)[0]
    assert score == pytest.approx([2503.07, 2503.07], abs=0.01)
    middle = latlng_to_xyz([0.0], [45.0])[None]
    assert expected_geoscore(middle, xyz, probs)[0, 0] == pytest.approx(175.0, abs=0.1)
    quarter = math.pi / 2 * EARTH_RADIUS_KM
    assert expected_distance_km(xyz, xyz, probs)[0] == pytest.approx([quarter / 2] * 2)


def test_three_collinear_points_the_median_is_the_middle_one():
    # 0.3 at 0E, 0.3 at 10E, 0.4 at 20E (1112 km apart). Expected distance at 0E:
    # 0.3*1112 + 0.4*2224 = 1223 km; at 10E: 0.7*1112 = 778 km; at 20E: 0.9*1112 = 1001 km.
    # The most probable cell (20E) is top-cell's answer; the median is the middle one.
    lat, lon = _equator(20.0, 0.0, 10.0)
    probs = [0.4, 0.3, 0.3]
    assert _answer("top-cell", probs, lat, lon) == pytest.approx((0.0, 20.0))
    assert _answer("median", probs, lat, lon) == pytest.approx((0.0, 10.0))
    xyz = latlng_to_xyz(lat, lon)[None]
    step = 10 * math.pi / 180 * EARTH_RADIUS_KM
    got = expected_distance_km(xyz, xyz, np.array([probs]))[0]
    np.testing.assert_allclose(got, [0.9 * step, 1.1 * step, 0.7 * step])


def test_geoscore_and_median_differ_where_the_mass_is_split():
    # 0.4 at 0E; 0.3 each at 60E and 80E. The median goes where the mass is: at 60E
    # the expected distance is 0.4*6672 + 0.3*2224 = 3336 km, against 0.3*6672 +
    # 0.3*8896 = 4670 km at 0E. GeoScore saturates far away, so it keeps the single
    # most probable place: at 0E 2000 + 1500*(exp(-6672/1492.7) + exp(-8896/1492.7))
    # = 2021.05 points, at 60E 1500 + 1500*exp(-2224/1492.7) + 2000*exp(-6672/1492.7)
    # = 1861.01.
    lat, lon = _equator(0.0, 60.0, 80.0)
    probs = [0.4, 0.3, 0.3]
    assert _answer("geoscore", probs, lat, lon) == pytest.approx((0.0, 0.0))
    assert _answer("median", probs, lat, lon) == pytest.approx((0.0, 60.0))
    xyz = latlng_to_xyz(lat, lon)[None]
    score = expected_geoscore(xyz, xyz, np.array([probs]))[0]
    e = math.exp
    d60, d20, d80 = 60 * DEG_KM, 20 * DEG_KM, 80 * DEG_KM
    s = GEOSCORE_SCALE_KM
    assert score[0] == pytest.approx(2000 + 1500 * (e(-d60 / s) + e(-d80 / s)))
    assert score[1] == pytest.approx(1500 + 1500 * e(-d20 / s) + 2000 * e(-d60 / s))
    assert score[0] == pytest.approx(2021.05, abs=0.01) and score[1] == pytest.approx(
        1861.01, abs=0.01
    )


def test_probabilities_are_renormalised_over_the_top_k_and_padding_counts_for_nothing():
    lat, lon = _equator(20.0, 0.0, 10.0)
    cells = np.array([[0, 1, 2], [0, 1, 2], [0, 1, -1]])
    probs = np.array([[0.4, 0.3, 0.3], [0.2, 0.15, 0.15], [0.4, 0.3, 0.3]])
    _, got_lon = answer_points("median", cells, probs, lat, lon)
    # Rows 0 and 1 are the same distribution; row 2 has lost its third cell, so the
    # median is between 20E (4/7) and 0E (3/7): the heavier one.
    np.testing.assert_allclose(got_lon, [10.0, 10.0, 20.0])
    kept, p = renormalised(cells, probs)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert kept[2, 2] == -1 and p[2, 2] == 0.0
    # Padding in first place (never written by a predictor) still never answers.
    _, top_lon = answer_points("top-cell", [[-1, 2]], [[0.0, 1.0]], lat, lon)
    assert top_lon[0] == 10.0
    with pytest.raises(ValueError, match="no cell"):
        renormalised([[-1, -1]], [[0.0, 0.0]])


def test_rows_are_answered_independently_across_chunks(monkeypatch):
    import trigeo.answer as answer

    monkeypatch.setattr(answer, "_CHUNK_ROWS", 2)
    lat, lon = _equator(20.0, 0.0, 10.0)
    cells = np.tile([0, 1, 2], (5, 1))
    probs = np.array([[0.4, 0.3, 0.3], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]] + [[0.4, 0.3, 0.3]] * 2)
    _, got = answer_points("median", cells, probs, lat, lon)
    np.testing.assert_allclose(got, [10.0, 20.0, 10.0, 10.0, 10.0])


def test_local_search_finds_the_fermat_point_between_the_label_points():
    # Three equal cells at the corners of a small triangle: the geometric median is
    # inside it, where no label point is; the pattern search walks there (6 km steps
    # at the end) and lowers the expected distance below every corner's.
    lat = np.array([0.0, 0.0, 3.0 * math.sqrt(3) / 2])
    lon = np.array([-1.5, 1.5, 0.0])
    probs = [1 / 3, 1 / 3, 1 / 3]
    corner = _answer("median", probs, lat, lon)
    found = _answer("median", probs, lat, lon, search="local")
    centre = mean_position(lat, lon)
    assert distance_km(*found, *centre) < 10.0
    xyz = latlng_to_xyz(lat, lon)[None]
    at = [latlng_to_xyz([p[0]], [p[1]])[None] for p in (corner, found)]
    before, after = (expected_distance_km(a, xyz, np.array([probs]))[0, 0] for a in at)
    assert after < before - 10.0
    # Two equal cells: the GeoScore is convex along the arc, so its maxima stay at the ends.
    two = _equator(0.0, 2.0)
    assert _answer("geoscore", [0.5, 0.5], *two, search="local")[1] == pytest.approx(0.0, abs=0.1)


def test_rules_are_checked_and_index_rules_name_the_index_option():
    assert check_answer("median", has_index=False) == "median"
    assert set(ANSWERS) == {"top-cell", "geoscore", "median", "refine", "knn"}
    for rule in ("refine", "knn"):
        with pytest.raises(InputError, match=f"--answer {rule}.*--index"):
            check_answer(rule, has_index=False)
        assert check_answer(rule, has_index=True) == rule
        with pytest.raises(InputError, match="retrieval index"):
            check_cell_answer(rule)
    with pytest.raises(InputError, match="one of"):
        check_answer("mean", has_index=True)
    with pytest.raises(InputError, match="search"):
        answer_points("median", [[0]], [[1.0]], [0.0], [0.0], search="grid")
    with pytest.raises(InputError, match="beyond"):
        answer_points("median", [[3]], [[1.0]], [0.0], [0.0])


def test_model_ids_name_the_rule():
    assert answer_model_id("m1-x@coarse", "top-cell") == "m1-x@coarse"
    assert answer_model_id("m1-x@coarse", "geoscore") == "m1-x@coarse+geoscore"
    assert answer_model_id("knn10-m1-x", "knn") == "knn10-m1-x"
    from trigeo.models.m1 import base_model_id

    # M2 still recognises an M1's file under any rule.
    assert base_model_id(answer_model_id("m1-x@coarse+cell", "median")) == "m1-x"


def test_refine_weights_are_the_neighbours_cells_probabilities():
    cells = [[7, 3, 5], [2, 9, -1]]
    probs = [[0.5, 0.3, 0.2], [0.3, 0.1, 0.0]]
    neighbours = [[3, 4, 7, -1], [9, 9, 2, 7]]
    np.testing.assert_allclose(
        refine_weights(cells, probs, neighbours), [[0.3, 0.0, 0.5, 0.0], [0.25, 0.25, 0.75, 0.0]]
    )


def test_refine_lets_the_cells_probability_outvote_a_larger_cluster():
    from trigeo.retrieve.knn import knn_locate
    from trigeo.retrieve.refine import refine_points

    # Neighbours at equal descriptor distance: two near 10E (cell 1, p 0.2) and one at
    # 50E (cell 0, p 0.8), one outside the top cells at 100E. kNN alone answers the
    # pair's cluster (support 2 against 1); refine weighs them 0.2 each against 0.8.
    n_lat = np.zeros((1, 4))
    n_lon = np.array([[10.0, 10.2, 50.0, 100.0]])
    n_cells = np.array([[1, 1, 0, 4]])
    distance = np.ones((1, 4))
    top_cells, top_probs = np.array([[0, 1]]), np.array([[0.8, 0.2]])
    plain = knn_locate(n_lat[:, :3], n_lon[:, :3], distance[:, :3])
    assert plain[1][0] == pytest.approx(10.1, abs=0.01)
    got = refine_points(top_cells, top_probs, [5.0], [5.0], n_lat, n_lon, n_cells, distance)
    assert got.refined[0] and got.cluster_size[0] == 1
    assert (got.lat[0], got.lon[0]) == pytest.approx((0.0, 50.0))


def test_refine_is_knn_inside_one_certain_cell_and_falls_back_outside_the_top_cells():
    from trigeo.retrieve.knn import knn_locate
    from trigeo.retrieve.refine import refine_points

    rng = np.random.default_rng(0)
    n_lat = rng.uniform(-10, 10, (3, 12))
    n_lon = rng.uniform(-10, 10, (3, 12))
    distance = np.sort(rng.uniform(0.5, 2.0, (3, 12)), axis=1)
    cells = np.zeros((3, 12), dtype=np.int64)
    cells[2] = 5  # the third photo's neighbours all lie outside its top cells
    top_cells, top_probs = np.array([[0, 1]] * 3), np.array([[1.0, 0.0]] * 3)
    got = refine_points(
        top_cells, top_probs, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], n_lat, n_lon, cells, distance,
        k=10, radius_km=500,
    )  # fmt: skip
    want_lat, want_lon, _ = knn_locate(
        n_lat[:2, :10], n_lon[:2, :10], distance[:2, :10], radius_km=500
    )
    np.testing.assert_allclose(got.lat[:2], want_lat, atol=1e-9)
    np.testing.assert_allclose(got.lon[:2], want_lon, atol=1e-9)
    assert list(got.refined) == [True, True, False]
    assert (got.lat[2], got.lon[2]) == (3.0, 6.0)
    # Neighbours outside the top cells are skipped, and the next ones taken: with the
    # first two outside, refine clusters neighbours 2..11, not the first ten.
    cells[0, :2] = 5
    shifted = refine_points(
        top_cells, top_probs, [1.0] * 3, [4.0] * 3, n_lat, n_lon, cells, distance, k=10,
        radius_km=500,
    )  # fmt: skip
    want = knn_locate(n_lat[:1, 2:], n_lon[:1, 2:], distance[:1, 2:], radius_km=500)
    assert shifted.lat[0] == pytest.approx(want[0][0]) and shifted.lon[0] == pytest.approx(
        want[1][0]
    )
