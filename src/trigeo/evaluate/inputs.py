"""Reading and checking what evaluation is given: truth, predictions, meshes.

Every problem is named: the file, the photo ids and what is wrong. Problems
that make scores meaningless raise :class:`~trigeo.errors.InputError`;
problems that evaluation can work around (predictions for photos outside the
truth, missing photos, likely swapped coordinates) emit an
:class:`EvaluationWarning` that the report repeats.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from numpy.typing import NDArray

from trigeo.errors import InputError
from trigeo.points import LAT_NAMES, LON_NAMES, find_column, read_table
from trigeo.predictions import Predictions, read_predictions
from trigeo.sphere import distance_km

__all__ = [
    "Alignment",
    "EvaluationWarning",
    "MeshLike",
    "align_predictions",
    "check_predictions",
    "detect_swapped_latlon",
    "load_predictions",
]

#: Fraction of rows whose latitude exceeds 90° above which a peer file is
#: taken to have its latitude and longitude columns swapped.
SWAP_FRACTION = 0.01

#: Largest allowed deviation of a full probability row from sum 1 (float32 rounding
#: plus some slack), and how far top-k probabilities may exceed 1.
PROB_SUM_TOLERANCE = 0.01

_EXAMPLES = 5


class EvaluationWarning(UserWarning):
    """A problem with evaluation input that was worked around; the report lists it."""


class MeshLike(Protocol):
    """What evaluation needs from a mesh: a part of :class:`trigeo.mesh.Mesh`, the
    interface every mesh kind implements (tests pass lighter stand-ins)."""

    n_cells_: int
    mesh_hash: str

    def locate(self, lat: Any, lon: Any) -> NDArray[np.int64]: ...

    def centroids(self, kind: str = "cell") -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...

    def cell_areas_km2(self) -> NDArray[np.float64]: ...


def _examples(values: Any, limit: int = _EXAMPLES) -> str:
    """The first ``limit`` values, quoted, and how many more there are."""
    values = list(values)
    shown = ", ".join(repr(str(v)) for v in values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return shown + more


def load_predictions(path: str | Path) -> Predictions:
    """Read a predictions file, repairing a peer CSV whose lat/lon columns are swapped.

    A peer file (no mesh) whose latitude column exceeds 90° in more than
    :data:`SWAP_FRACTION` of rows, while its longitude column would be a valid
    latitude everywhere, has almost surely swapped columns: the columns are
    swapped back with an :class:`EvaluationWarning`. Any other invalid
    coordinate is an :class:`InputError` naming the row.
    """
    path = Path(path)
    try:
        return read_predictions(path)
    except InputError as exc:
        if "outside [-90, 90]" not in str(exc):
            raise
        original = exc
    table = read_table(path)
    if "top_cells" in table.column_names:
        raise original
    lat_name = find_column(table, None, LAT_NAMES, "latitude", path)
    lon_name = find_column(table, None, LON_NAMES, "longitude", path)
    try:
        lat = np.asarray(pc.cast(table.column(lat_name), "float64").to_numpy(zero_copy_only=False))
        lon = np.asarray(pc.cast(table.column(lon_name), "float64").to_numpy(zero_copy_only=False))
    except Exception:  # the original error already names the bad row
        raise original from None
    over = np.abs(lat) > 90.0
    swapped_valid = np.all(np.abs(lon) <= 90.0) and np.all(np.abs(lat) <= 180.0)
    if over.mean() <= SWAP_FRACTION or not swapped_valid:
        raise original
    warnings.warn(
        f"{path}: {100 * over.mean():.1f}% of values in column {lat_name!r} exceed 90°, and "
        f"column {lon_name!r} is a valid latitude everywhere: the columns look swapped, so "
        "they were swapped back. Fix the file to silence this warning.",
        EvaluationWarning,
        stacklevel=2,
    )
    # The normal reader, with the columns' roles exchanged, keeps its id handling
    # (e.g. leading zeros of numeric-looking ids).
    preds = read_predictions(path, lat_col=lon_name, lon_col=lat_name)
    preds.meta = {**preds.meta, "swapped_latlon": True}
    return preds


def check_predictions(
    preds: Predictions, source: str | Path, *, n_cells: int | None = None
) -> None:
    """Raise :class:`InputError` for duplicated ids, bad probabilities or cell ids.

    Parameters
    ----------
    preds
        The predictions to check.
    source
        Their file, for messages.
    n_cells
        Cell count of the model's mesh, when known, to range-check cell ids.
    """
    ids = pd.Series(preds.photo_id)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"duplicated photo_id {str(ids.iloc[first])!r} ({int(dup.sum())} duplicated rows: "
            f"{_examples(ids[dup].unique())}); each photo must be predicted once",
            source=source,
            row=first + 1,
            column="photo_id",
        )
    if preds.top_probs is not None:
        probs = np.asarray(preds.top_probs, dtype=np.float64)
        bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
        sums = probs.sum(axis=1)
        bad |= sums > 1.0 + PROB_SUM_TOLERANCE
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"top_probs of photo {str(preds.photo_id[row])!r} sum to {sums[row]:.4f}; top-k "
                f"probabilities must be non-negative and sum to at most 1 "
                f"({int(bad.sum())} such rows)",
                source=source,
                row=row + 1,
                column="top_probs",
            )
        if np.any(np.diff(probs, axis=1) > 1e-6):
            row = int(np.flatnonzero((np.diff(probs, axis=1) > 1e-6).any(axis=1))[0])
            raise InputError(
                "top_probs are not sorted most probable first",
                source=source,
                row=row + 1,
                column="top_probs",
            )
    if preds.top_cells is not None and n_cells is not None:
        cells = np.asarray(preds.top_cells)
        # Cell -1 with probability 0 pads rows that have fewer than k candidates.
        pad = (cells == -1) & (np.asarray(preds.top_probs) == 0)
        bad = (((cells < 0) & ~pad) | (cells >= n_cells)).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"cell ids outside [0, {n_cells}) for {int(bad.sum())} photos; was this "
                "file predicted with another mesh?",
                source=source,
                row=row + 1,
                column="top_cells",
            )
    if preds.full_probs is not None:
        full = preds.full_probs
        if full.shape[0] != len(preds):
            raise InputError(
                f"full probability file has {full.shape[0]} rows for {len(preds)} photos",
                source=Path(source).with_suffix(".probs.npy"),
            )
        if n_cells is not None and full.shape[1] != n_cells:
            raise InputError(
                f"full probability vectors have {full.shape[1]} entries; the mesh has "
                f"{n_cells} cells",
                source=Path(source).with_suffix(".probs.npy"),
            )
        for start in range(0, full.shape[0], 65536):
            sums = np.asarray(full[start : start + 65536], dtype=np.float64).sum(axis=1)
            bad = ~(np.abs(sums - 1.0) <= PROB_SUM_TOLERANCE)
            if bad.any():
                row = start + int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"the probability vector of photo {str(preds.photo_id[row])!r} sums to "
                    f"{sums[row - start]:.4f}, not 1 ({int(bad.sum())} such rows in this block)",
                    source=Path(source).with_suffix(".probs.npy"),
                    row=row + 1,
                )


@dataclass
class Alignment:
    """How a predictions file lines up with the truth photos.

    Attributes
    ----------
    pred_rows : ndarray of int
        Row of the predictions for each answered truth photo.
    truth_rows : ndarray of int
        The matching truth rows (same order as ``pred_rows``).
    missing_rows : ndarray of int
        Truth rows the file has no prediction for.
    unknown_ids : ndarray of str
        Predicted photo ids that are not in the dataset at all.
    other_split : int
        Predicted photos of the dataset that are outside the evaluated photos.
    """

    pred_rows: NDArray[np.int64]
    truth_rows: NDArray[np.int64]
    missing_rows: NDArray[np.int64]
    unknown_ids: NDArray[np.str_]
    other_split: int


def align_predictions(
    preds: Predictions,
    truth_ids: NDArray[np.str_],
    all_ids: NDArray[np.str_] | None,
    source: str | Path,
) -> Alignment:
    """Match predictions to truth photos by ``photo_id``.

    Predictions for photos that are in no row of the dataset (``all_ids``)
    emit a warning naming them; if none of the predictions is a truth photo
    the files cannot belong together and :class:`InputError` is raised.
    Missing photos are returned, not judged: :func:`evaluate` scores or
    excludes them according to ``missing``.
    """
    truth_ids = np.asarray(truth_ids).astype(str)
    pred_ids = np.asarray(preds.photo_id).astype(str)
    truth_index = pd.Index(truth_ids)
    position = truth_index.get_indexer(pred_ids)
    matched = position >= 0
    answered = np.zeros(len(truth_ids), dtype=bool)
    answered[position[matched]] = True
    unknown = np.array([], dtype=str)
    other_split = 0
    if not matched.all():
        outside = pred_ids[~matched]
        if all_ids is not None:
            in_dataset = pd.Index(np.asarray(all_ids).astype(str)).get_indexer(outside) >= 0
            unknown, other_split = outside[~in_dataset], int(in_dataset.sum())
        else:
            unknown = outside
    if not matched.any():
        raise InputError(
            f"none of its {len(pred_ids)} photo ids is among the {len(truth_ids)} evaluated "
            f"photos (first ids: {_examples(pred_ids)}); is it a prediction for another "
            "dataset or split?",
            source=source,
            column="photo_id",
        )
    if unknown.size:
        warnings.warn(
            f"{source}: {unknown.size} predicted photo ids are not in the dataset and were "
            f"ignored: {_examples(unknown)}",
            EvaluationWarning,
            stacklevel=2,
        )
    pred_rows = np.flatnonzero(matched).astype(np.int64)
    return Alignment(
        pred_rows=pred_rows,
        truth_rows=position[matched].astype(np.int64),
        missing_rows=np.flatnonzero(~answered).astype(np.int64),
        unknown_ids=unknown,
        other_split=other_split,
    )


def detect_swapped_latlon(
    true_lat: NDArray, true_lon: NDArray, pred_lat: NDArray, pred_lon: NDArray
) -> bool:
    """True when swapping the predicted columns halves the median error (a likely swap).

    Catches swaps that stay within valid ranges (e.g. all photos in Europe or
    Africa, where every longitude is also a valid latitude).
    """
    usable = np.abs(pred_lon) <= 90.0
    if usable.sum() < 10 or usable.mean() < 0.99:
        return False
    as_is = np.median(distance_km(true_lat, true_lon, pred_lat, pred_lon))
    swapped = np.median(
        distance_km(true_lat[usable], true_lon[usable], pred_lon[usable], pred_lat[usable])
    )
    return bool(swapped < 0.5 * as_is)
