"""Calibrated uncertainty: temperature scaling, credible cell sets, coverage and ECE.

Pure numpy/scipy, shared by training (calibration), evaluation and serving (credible
regions). ``fit_temperature``/``apply_temperature`` are what the M1
trainer stores with a model; the rest scores how honest a model's
probabilities are on held-out photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CredibleSets",
    "apply_temperature",
    "credible_sets",
    "expected_calibration_error",
    "fit_temperature",
    "log_softmax",
    "reliability_curve",
]

_CHUNK_ROWS = 4096


def log_softmax(logits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Numerically stable ``log softmax`` (subtracts the row maximum first)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _check_logits(logits: ArrayLike, labels: ArrayLike) -> tuple[NDArray, NDArray]:
    # Keep float32 logits as they are: chunks are promoted to float64 in _nll, so a
    # large validation set is never copied whole.
    z = np.asarray(logits)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    y = np.asarray(labels).reshape(-1)
    if z.ndim != 2:
        raise ValueError(f"logits must be (n, K), got shape {z.shape}")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"{z.shape[0]} rows of logits but {y.shape[0]} labels")
    if z.shape[0] == 0:
        raise ValueError("no examples to fit a temperature on")
    for start in range(0, z.shape[0], _CHUNK_ROWS):
        if not np.all(np.isfinite(z[start : start + _CHUNK_ROWS])):
            raise ValueError("logits contain NaN or infinity")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be integers in [0, {z.shape[1]})")
    return z, y.astype(np.int64)


def _nll(z: NDArray, y: NDArray, temperature: float) -> float:
    total = 0.0
    rows = np.arange(z.shape[0])
    for start in range(0, z.shape[0], _CHUNK_ROWS):
        block = np.asarray(z[start : start + _CHUNK_ROWS], dtype=np.float64) / temperature
        lsm = log_softmax(block)
        total -= lsm[rows[: len(block)], y[start : start + _CHUNK_ROWS]].sum()
    return total / z.shape[0]


def fit_temperature(
    logits: ArrayLike, labels: ArrayLike, *, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """Fit the temperature ``T`` minimizing the NLL of ``softmax(logits / T)``.

    The optimum is searched over ``log T`` (bounded Brent), where the NLL is
    smooth and the scale symmetric; the log-softmax is computed stably.

    Parameters
    ----------
    logits
        ``(n, K)`` validation logits (never the training set's).
    labels
        ``(n,)`` integer true classes.
    bounds
        Search interval for ``T``.

    Returns
    -------
    float
        The fitted temperature (``> 1`` softens an over-confident model).
    """
    from scipy.optimize import minimize_scalar

    z, y = _check_logits(logits, labels)
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(
        lambda log_t: _nll(z, y, float(np.exp(log_t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def apply_temperature(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Calibrated probabilities ``softmax(logits / T)`` (rows sum to 1)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be positive and finite, got {temperature}")
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


@dataclass
class CredibleSets:
    """Smallest cell sets holding a probability mass ``level`` for each photo.

    Attributes
    ----------
    level : float
        The target mass (e.g. 0.9).
    size : ndarray of int
        Number of cells in each photo's set.
    area_km2 : ndarray of float
        Summed area of those cells (NaN when no areas were given).
    covered : ndarray of bool
        Whether the photo's true cell is in its set.
    complete : ndarray of bool
        False where the available probabilities (top-k only) sum to less than
        ``level``: the set is then all k cells and understates the truth.
    """

    level: float
    size: NDArray[np.int64]
    area_km2: NDArray[np.float64]
    covered: NDArray[np.bool_]
    complete: NDArray[np.bool_]

    def summary(self) -> dict[str, float]:
        return {
            "level": self.level,
            "coverage": float(self.covered.mean()) if self.covered.size else float("nan"),
            "median_cells": float(np.median(self.size)) if self.size.size else float("nan"),
            "median_area_km2": float(np.nanmedian(self.area_km2))
            if self.area_km2.size and np.isfinite(self.area_km2).any()
            else float("nan"),
            "complete": float(self.complete.mean()) if self.complete.size else float("nan"),
        }


_FULL_TOP = 256
_TOPK_CHUNK_ROWS = 262144


def _sets_from_sorted(
    c: NDArray, p: NDArray, true_cells: NDArray, levels: Sequence[float], areas: NDArray | None
) -> list[tuple[NDArray, NDArray, NDArray, NDArray]]:
    """Per level: (size, area, covered, complete) for rows sorted by falling probability."""
    cum = np.cumsum(p, axis=1)
    k = p.shape[1]
    # Cell -1 pads rows with fewer than k candidate cells (probability 0, no area).
    valid = c >= 0
    cum_area = None if areas is None else np.cumsum(np.where(valid, areas[c], 0.0), axis=1)
    is_true = (c == true_cells[:, None]) & valid
    # Rank of the true cell in each row (k when it is not among the cells).
    true_rank = np.where(is_true.any(axis=1), is_true.argmax(axis=1), k)
    rows = np.arange(p.shape[0])
    out = []
    for level in levels:
        # Tolerance: probabilities stored as float32 may sum to 0.9999999.
        reached = cum >= level - 1e-6
        complete = reached[:, -1] if k else np.zeros(len(rows), dtype=bool)
        size = np.where(complete, reached.argmax(axis=1) + 1, k).astype(np.int64)
        covered = true_rank < size
        if cum_area is None:
            area = np.full(size.shape, np.nan)
        else:
            area = cum_area[rows, np.maximum(size - 1, 0)]
        out.append((size, area, covered, complete))
    return out


def _sets_from_full(
    probs: NDArray, true_cells: NDArray, levels: Sequence[float], areas: NDArray | None
) -> list[tuple[NDArray, ...]]:
    """Credible sets from full probability rows, in chunks, with a partial sort.

    Most rows reach 95% within a few hundred cells, so only the top
    ``_FULL_TOP`` are sorted; the rare flatter rows get a full sort.
    """
    n, width = probs.shape
    top = min(width, _FULL_TOP)
    parts: list[list[tuple[NDArray, ...]]] = []
    for start in range(0, n, _CHUNK_ROWS):
        block = np.asarray(probs[start : start + _CHUNK_ROWS], dtype=np.float64)
        truth = true_cells[start : start + _CHUNK_ROWS]
        if top < width:
            c = np.argpartition(-block, top - 1, axis=1)[:, :top]
        else:
            c = np.broadcast_to(np.arange(width), block.shape)
        v = np.take_along_axis(block, c, axis=1)
        order = np.argsort(-v, axis=1, kind="stable")
        c, v = np.take_along_axis(c, order, axis=1), np.take_along_axis(v, order, axis=1)
        result = _sets_from_sorted(c, v, truth, levels, areas)
        short = v.sum(axis=1) < max(levels) - 1e-6
        if top < width and short.any():
            full_c = np.argsort(-block[short], axis=1, kind="stable")
            full_v = np.take_along_axis(block[short], full_c, axis=1)
            redo = _sets_from_sorted(full_c, full_v, truth[short], levels, areas)
            for fixed, again in zip(result, redo, strict=True):
                for array, new in zip(fixed, again, strict=True):
                    array[short] = new
        parts.append(result)
    return _join_chunks(parts, len(levels))


def _join_chunks(
    parts: Sequence[Sequence[tuple[NDArray, ...]]], n_levels: int
) -> list[tuple[NDArray, ...]]:
    """Concatenate per-chunk ``(size, area, covered, complete)`` results, level by level."""
    return [
        tuple(np.concatenate([part[index][j] for part in parts]) for j in range(4))
        for index in range(n_levels)
    ]


def credible_sets(
    cells: ArrayLike | None,
    probs: ArrayLike,
    true_cells: ArrayLike,
    levels: Sequence[float] = (0.5, 0.9, 0.95),
    *,
    cell_areas_km2: ArrayLike | None = None,
) -> list[CredibleSets]:
    """Smallest sets of cells holding ``level`` of each photo's probability.

    Parameters
    ----------
    cells, probs
        ``(n, k)`` top-k cell ids and probabilities (any order), or
        ``cells=None`` with ``probs`` the full ``(n, K)`` vectors.
    true_cells
        ``(n,)`` true cell of each photo (``-1`` when it is in no kept cell,
        which is never covered).
    levels
        Probability masses, each in ``(0, 1]``.
    cell_areas_km2
        ``(K,)`` areas to sum per set.
    """
    true_cells = np.asarray(true_cells).reshape(-1).astype(np.int64)
    for level in levels:
        if not 0.0 < level <= 1.0:
            raise ValueError(f"levels must lie in (0, 1], got {level}")
    areas = None if cell_areas_km2 is None else np.asarray(cell_areas_km2, dtype=np.float64)
    if cells is None:
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[0] != true_cells.shape[0]:
            raise ValueError(f"probs must be (n, K) with n = {true_cells.shape[0]}")
        results = _sets_from_full(probs, true_cells, levels, areas)
    else:
        p = np.asarray(probs, dtype=np.float64)
        c = np.asarray(cells).astype(np.int64)
        if c.shape != p.shape or p.ndim != 2 or p.shape[0] != true_cells.shape[0]:
            raise ValueError(f"cells {c.shape} and probs {p.shape} must both be (n, k)")
        parts = []
        # Chunks bound the (rows x k) temporaries at millions of photos.
        for start in range(0, p.shape[0], _TOPK_CHUNK_ROWS):
            cc = c[start : start + _TOPK_CHUNK_ROWS]
            pp = p[start : start + _TOPK_CHUNK_ROWS]
            order = np.argsort(-pp, axis=1, kind="stable")
            cc, pp = np.take_along_axis(cc, order, axis=1), np.take_along_axis(pp, order, axis=1)
            parts.append(
                _sets_from_sorted(
                    cc, pp, true_cells[start : start + _TOPK_CHUNK_ROWS], levels, areas
                )
            )
        results = _join_chunks(parts, len(levels))
    return [
        CredibleSets(float(level), *result) for level, result in zip(levels, results, strict=True)
    ]


def reliability_curve(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Mean confidence, accuracy and count in ``n_bins`` equal-width confidence bins."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    ok = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.shape != ok.shape:
        raise ValueError("confidence and correct must have the same length")
    bins = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=ok, minlength=n_bins) / counts
    return mean_conf, accuracy, counts


def expected_calibration_error(
    confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> float:
    """ECE of top-1 probabilities: ``sum_b (n_b / n) |accuracy_b - confidence_b|``.

    Parameters
    ----------
    confidence
        Top-1 probability per photo.
    correct
        Whether the top-1 cell is the true cell.
    n_bins
        Equal-width bins on ``[0, 1]``.
    """
    mean_conf, accuracy, counts = reliability_curve(confidence, correct, n_bins)
    n = counts.sum()
    if n == 0:
        return float("nan")
    used = counts > 0
    return float(np.sum(counts[used] * np.abs(accuracy[used] - mean_conf[used])) / n)
