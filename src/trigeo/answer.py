"""The reported point of a prediction: which place a distribution over cells answers with.

A prediction is a distribution over mesh cells; a single point is reported
beside it. The rules (``--answer`` of ``trigeo predict`` and ``trigeo serve``):

``top-cell``
    The label point of the most probable cell (the study's answer).
``geoscore``
    The point ``x`` that maximises the expected GeoScore
    ``sum_j p_j * 5000 * exp(-d(x, y_j) / 1492.7)``, ``d`` the great-circle
    distance in km on the 6371 km sphere (OSV-5M's definition, as
    :mod:`trigeo.evaluate.geoscore`).
``median``
    The point that minimises the expected great-circle distance
    ``sum_j p_j * d(x, y_j)`` (the spherical geometric median).
``refine``
    Retrieval inside the classifier's top cells (PIGEON's refinement): the
    nearest indexed photos that fall in the top cells, each weighted by its
    cell's probability, clustered by the kNN rule. This module chooses and
    weights the neighbours (:func:`refine_weights`); the cluster rule lives
    with the kNN predictor (:func:`trigeo.retrieve.refine.refine_points`).
``knn``
    The kNN predictor over a retrieval index alone (:mod:`trigeo.retrieve.knn`).

Expectations run over the ``top-k`` cells of each photo with their
probabilities renormalised, ``y_j`` being the cells' label points. The
candidates for ``x`` are those label points; ``search="local"`` then walks
from the best of them by a pattern search (:func:`answer_points`).

Only numpy: predict, retrieve, evaluate (averaged rows) and serve all use it.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import InputError
from trigeo.sphere import EARTH_RADIUS_KM, latlng_to_xyz, xyz_to_latlng

__all__ = [
    "ANSWERS",
    "CELL_ANSWERS",
    "DEFAULT_ANSWER",
    "GEOSCORE_RADIUS_KM",
    "GEOSCORE_SCALE_KM",
    "INDEX_ANSWERS",
    "SEARCHES",
    "Answer",
    "answer_model_id",
    "answer_points",
    "check_answer",
    "check_cell_answer",
    "expected_distance_km",
    "expected_geoscore",
    "refine_weights",
    "renormalised",
]


class Answer(StrEnum):
    """The rules, in the order the CLI lists them."""

    TOP_CELL = "top-cell"
    GEOSCORE = "geoscore"
    MEDIAN = "median"
    REFINE = "refine"
    KNN = "knn"


ANSWERS = tuple(a.value for a in Answer)
#: Rules computed from the top cells and their label points alone.
CELL_ANSWERS = ("top-cell", "geoscore", "median")
#: Rules that need a retrieval index (``--index``).
INDEX_ANSWERS = ("refine", "knn")
#: The answer when none is asked for (docs/evaluation.md, "The answer", says why).
DEFAULT_ANSWER = Answer.TOP_CELL
#: Candidate searches of ``geoscore`` and ``median``.
SEARCHES = ("cells", "local")

# GeoScore's constants, as trigeo.evaluate.geoscore defines them (a test checks they
# agree); repeated because evaluate is downstream of this neutral module.
GEOSCORE_MAX = 5000.0
GEOSCORE_SCALE_KM = 1492.7
GEOSCORE_RADIUS_KM = 6371.0

#: Rows per block of the expectation (n x m x k angles): bounds memory on millions of photos.
_CHUNK_ROWS = 4096
#: Pattern search of ``search="local"``: first step (km), halvings, directions per step.
_LOCAL_START_KM = 400.0
_LOCAL_LEVELS = 7
_LOCAL_DIRECTIONS = 8


def answer_model_id(model_id: str, answer: str) -> str:
    """The model id a predictions file answered by ``answer`` records.

    ``top-cell`` keeps the predictor's id; another rule appends ``+<rule>``,
    so the same model under two rules makes two rows of one evaluation
    (model ids identify its rows). ``knn`` files have ids of their own.
    """
    return model_id if answer in ("top-cell", "knn") else f"{model_id}+{answer}"


def check_answer(answer: str, *, has_index: bool, index_option: str = "--index") -> str:
    """Validate an answer rule against the inputs at hand; returns it.

    Raises
    ------
    InputError
        An unknown rule, or ``refine``/``knn`` without an index (the message
        names both options).
    """
    if answer not in ANSWERS:
        raise InputError(f"--answer must be one of {', '.join(ANSWERS)}, got {answer!r}")
    if answer in INDEX_ANSWERS and not has_index:
        raise InputError(
            f"--answer {answer} needs a retrieval index: pass {index_option} INDEX "
            "(built by `trigeo index build`)"
        )
    return answer


def check_cell_answer(answer: str) -> str:
    """Validate a rule computed from the cells alone (what a predictor applies itself).

    Raises
    ------
    InputError
        An unknown rule, or one that needs an index (``refine``, ``knn``):
        those are applied after the classifier, by :mod:`trigeo.retrieve`.
    """
    if answer not in CELL_ANSWERS:
        raise InputError(
            f"a predictor answers with {', '.join(CELL_ANSWERS)} itself, not {answer!r} "
            "(refine and knn run over a retrieval index afterwards)"
        )
    return answer


def renormalised(
    top_cells: ArrayLike, top_probs: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Top cells (``-1`` where absent) and their probabilities summing to 1 per row.

    Entries with cell ``-1`` (the padding of averaged rows) or a probability
    that is not positive get weight 0 and cell ``-1``.

    Raises
    ------
    ValueError
        A row without any usable cell, or mismatched shapes.
    """
    cells = np.atleast_2d(np.asarray(top_cells)).astype(np.int64)
    probs = np.atleast_2d(np.asarray(top_probs, dtype=np.float64))
    if cells.shape != probs.shape:
        raise ValueError(f"top_cells {cells.shape} and top_probs {probs.shape} differ")
    usable = (cells >= 0) & np.isfinite(probs) & (probs > 0)
    p = np.where(usable, probs, 0.0)
    total = p.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("a row has no cell with a positive probability")
    return np.where(usable, cells, -1), p / total


def _angles(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Central angles between unit vectors ``a (n, m, 3)`` and ``b (n, k, 3)``: ``(n, m, k)``.

    From the chord, ``2 asin(|a - b| / 2)``: exact at short range, where
    ``acos`` of a dot product loses metres.
    """
    chord = np.linalg.norm(a[:, :, None, :] - b[:, None, :, :], axis=-1)
    return 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def expected_distance_km(
    candidates: NDArray[np.float64],
    points: NDArray[np.float64],
    probs: NDArray[np.float64],
    radius_km: float = EARTH_RADIUS_KM,
) -> NDArray[np.float64]:
    """Expected great-circle distance of each candidate: ``(n, m)``.

    Parameters
    ----------
    candidates, points
        Unit vectors ``(n, m, 3)`` and ``(n, k, 3)``.
    probs
        ``(n, k)`` weights of the points (rows summing to 1).
    radius_km
        Sphere radius; it scales the result, not the argmin.
    """
    return np.einsum("nmk,nk->nm", _angles(candidates, points), probs) * radius_km


def expected_geoscore(
    candidates: NDArray[np.float64],
    points: NDArray[np.float64],
    probs: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Expected GeoScore of each candidate, ``(n, m)``.

    The inputs are those of :func:`expected_distance_km`.

    Distances are on GeoScore's own 6371 km sphere, whatever radius the
    evaluation's thresholds use.
    """
    d = _angles(candidates, points) * GEOSCORE_RADIUS_KM
    return GEOSCORE_MAX * np.einsum("nmk,nk->nm", np.exp(-d / GEOSCORE_SCALE_KM), probs)


def _objective(
    answer: str, candidates: NDArray, points: NDArray, probs: NDArray
) -> NDArray[np.float64]:
    """Higher is better: the expected GeoScore, or minus the expected distance."""
    if answer == "geoscore":
        return expected_geoscore(candidates, points, probs)
    return -expected_distance_km(candidates, points, probs)


def _tangent_basis(x: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """Two orthonormal tangent vectors at each unit vector ``x (n, 3)``."""
    # Any axis not parallel to x: the z axis, or the x axis near the poles.
    axis = np.where(np.abs(x[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    east = np.cross(axis, x)
    east /= np.linalg.norm(east, axis=1, keepdims=True)
    return east, np.cross(x, east)


def _local_search(
    answer: str,
    start: NDArray[np.float64],
    best: NDArray[np.float64],
    points: NDArray[np.float64],
    probs: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Pattern search from ``start (n, 3)`` (objective ``best``): step to the best of
    8 points around while that improves, then halve the step; returns unit vectors."""
    x, value = start.copy(), best.copy()
    bearings = np.linspace(0.0, 2.0 * np.pi, _LOCAL_DIRECTIONS, endpoint=False)
    step = _LOCAL_START_KM / EARTH_RADIUS_KM
    for _ in range(_LOCAL_LEVELS):
        # Two tries per level: a point may need to travel further than one step.
        for _ in range(2):
            east, north = _tangent_basis(x)
            direction = (
                np.cos(bearings)[None, :, None] * east[:, None, :]
                + np.sin(bearings)[None, :, None] * north[:, None, :]
            )
            around = x[:, None, :] * np.cos(step) + direction * np.sin(step)
            scores = _objective(answer, around, points, probs)
            pick = scores.argmax(axis=1)
            gain = scores[np.arange(len(x)), pick] > value
            x[gain] = around[gain, pick[gain]]
            value[gain] = scores[gain, pick[gain]]
        step /= 2.0
    return x


def answer_points(
    answer: str,
    top_cells: ArrayLike,
    top_probs: ArrayLike,
    label_lat: ArrayLike,
    label_lon: ArrayLike,
    *,
    search: str = "cells",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The reported point of each photo under a cell rule.

    Parameters
    ----------
    answer
        ``top-cell``, ``geoscore`` or ``median`` (:data:`CELL_ANSWERS`).
    top_cells, top_probs
        ``(n, k)`` cell ids, most probable first, and their probabilities; the
        probabilities are renormalised over the ``k`` cells (cell ``-1``, the
        padding of averaged rows, counts for nothing).
    label_lat, label_lon
        Label point of every cell of the mesh (``mesh.centroids(kind)``).
    search
        ``cells``: the best of the top-k label points. ``local``: then a
        pattern search from it (steps of 400 km halved 7 times, 8 directions),
        which may leave the label points.

    Returns
    -------
    (lat, lon)
        ``(n,)`` degrees. Ties go to the more probable cell.

    Raises
    ------
    InputError
        A rule that needs an index, or an unknown rule or search.
    """
    check_cell_answer(answer)
    if search not in SEARCHES:
        raise InputError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    cells, p = renormalised(top_cells, top_probs)
    lat_all = np.asarray(label_lat, dtype=np.float64)
    lon_all = np.asarray(label_lon, dtype=np.float64)
    if cells.size and cells.max() >= lat_all.size:
        raise InputError(f"cell id {cells.max()} beyond the {lat_all.size} label points given")
    n = cells.shape[0]
    out_lat = np.empty(n)
    out_lon = np.empty(n)
    if answer == "top-cell":
        # The first usable cell: the most probable one of a file, never averaging's padding.
        first = cells[np.arange(n), (cells >= 0).argmax(axis=1)]
        return lat_all[first].copy(), lon_all[first].copy()
    xyz_all = latlng_to_xyz(lat_all, lon_all)
    for start in range(0, n, _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        c, w = cells[rows], p[rows]
        points = xyz_all[np.maximum(c, 0)]
        scores = _objective(answer, points, points, w)
        # An absent cell is no candidate; argmax keeps the first (most probable) of ties.
        scores = np.where(c >= 0, scores, -np.inf)
        pick = scores.argmax(axis=1)
        best = points[np.arange(len(c)), pick]
        if search == "local":
            best = _local_search(answer, best, scores[np.arange(len(c)), pick], points, w)
        out_lat[rows], out_lon[rows] = xyz_to_latlng(best)
    return out_lat, out_lon


def refine_weights(
    top_cells: ArrayLike, top_probs: ArrayLike, neighbour_cells: ArrayLike
) -> NDArray[np.float64]:
    """Each neighbour's weight for ``refine``: its cell's renormalised probability.

    Parameters
    ----------
    top_cells, top_probs
        ``(n, k)`` the photo's top cells and their probabilities.
    neighbour_cells
        ``(n, D)`` the cell of each retrieved neighbour (``-1``: in a dropped
        cell, or no neighbour).

    Returns
    -------
    ndarray
        ``(n, D)``; 0 for a neighbour outside the photo's top-k cells.
    """
    cells, p = renormalised(top_cells, top_probs)
    found = np.atleast_2d(np.asarray(neighbour_cells)).astype(np.int64)
    if found.shape[0] != cells.shape[0]:
        raise ValueError(f"{found.shape[0]} neighbour rows for {cells.shape[0]} photos")
    weights = np.empty(found.shape, dtype=np.float64)
    for start in range(0, len(found), _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        same = (found[rows, :, None] == cells[rows, None, :]) & (cells[rows, None, :] >= 0)
        weights[rows] = np.einsum("ndk,nk->nd", same, p[rows])
    return weights
