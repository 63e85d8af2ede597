"""User and album averaging: the study's M3 baselines, for any model's predictions.

Every photo of a group (a user, or one album of a user) gets the argmax of the
mean probability vector over the group's photos. Probability vectors are the
full vectors when the predictions file has them, else the top-k probabilities
scattered into a sparse ``K``-vector (the rest taken as 0).

The averaged row reports its point by the file's answer rule
(:mod:`trigeo.answer`): ``top-cell`` the label point of the group's most
probable cell, ``geoscore`` and ``median`` the same rule over the group's
mean top-k. A ``refine`` file's averaged rows use ``top-cell`` (its fallback):
refining needs each photo's own neighbours, which the pooled distribution has
not. (``knn`` files hold no cells and are not averaged.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.answer import answer_points
from trigeo.errors import InputError
from trigeo.predictions import Predictions

__all__ = [
    "ALBUM_SIZE",
    "album_keys",
    "average_by_album",
    "average_by_user",
    "average_groups",
    "recorded_label_kind",
]

#: Photos per album in the study.
ALBUM_SIZE = 24

_CHUNK_ROWS = 8192


def album_keys(
    user_id: Any, posted_at: Any, photo_id: Any, album_size: int = ALBUM_SIZE
) -> NDArray[np.int64]:
    """Album number of each photo: a user's photos in posting order, ``album_size`` at a time.

    The last album of a user holds the remainder (shorter). Ties in
    ``posted_at`` are broken by ``photo_id`` so that albums are deterministic.

    Returns
    -------
    ndarray of int
        A group id per photo (dense, 0-based), unique per (user, album).
    """
    if album_size < 1:
        raise ValueError(f"album_size must be at least 1, got {album_size}")
    frame = pd.DataFrame(
        {
            "user": np.asarray(user_id).astype(str),
            "time": pd.to_datetime(pd.Series(posted_at), utc=True).to_numpy(),
            "photo": np.asarray(photo_id).astype(str),
        }
    )
    order = frame.sort_values(["user", "time", "photo"], kind="stable").index.to_numpy()
    user_sorted = frame["user"].to_numpy()[order]
    rank = frame.iloc[order].groupby("user", sort=False).cumcount().to_numpy()
    user_code = pd.factorize(user_sorted)[0]
    keys_sorted = pd.factorize(pd.MultiIndex.from_arrays([user_code, rank // album_size]))[0]
    keys = np.empty(len(frame), dtype=np.int64)
    keys[order] = keys_sorted
    return keys


def _group_topk_sparse(
    cells: NDArray, probs: NDArray, groups: NDArray, n_groups: int, n_cells: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Top-k of each group's mean of scattered top-k vectors (padded with cell -1, prob 0)."""
    from scipy import sparse

    width = cells.shape[1]
    size = np.bincount(groups, minlength=n_groups).astype(np.float64)
    rows = np.repeat(groups, width)
    values = probs.astype(np.float64).ravel() / size[rows]
    mean = sparse.coo_matrix(
        (values, (rows, cells.astype(np.int64).ravel())), shape=(n_groups, n_cells)
    ).tocsr()
    mean.sum_duplicates()
    mean.eliminate_zeros()
    coo = mean.tocoo()
    # Sort entries by group, then by falling probability, ties by lower cell id. numpy
    # orders complex numbers by (real, imag), so one stable sort of row - i*prob does it
    # (the CSR entries come row-major with sorted columns, which the stable sort keeps for
    # ties; np.lexsort on three keys is ~10x slower at 10^7 entries).
    order = np.argsort(coo.row - 1j * coo.data, kind="stable")
    g, c, v = coo.row[order], coo.col[order], coo.data[order]
    starts = np.searchsorted(g, np.arange(n_groups))
    rank = np.arange(g.size) - starts[g]
    keep = rank < k
    top_cells = np.full((n_groups, k), -1, dtype=np.int64)
    top_probs = np.zeros((n_groups, k), dtype=np.float64)
    top_cells[g[keep], rank[keep]] = c[keep]
    top_probs[g[keep], rank[keep]] = v[keep]
    return top_cells, top_probs


def _group_topk_dense(
    full: Any, groups: NDArray, n_groups: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Top-k of each group's mean full probability vector, streaming over rows."""
    n_cells = full.shape[1]
    k = min(k, n_cells)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    bounds = np.searchsorted(sorted_groups, np.arange(n_groups + 1))
    top_cells = np.empty((n_groups, k), dtype=np.int64)
    top_probs = np.empty((n_groups, k), dtype=np.float64)
    g0 = 0
    while g0 < n_groups:
        # Take whole groups until the chunk is full (always at least one group).
        g1 = max(g0 + 1, int(np.searchsorted(bounds, bounds[g0] + _CHUNK_ROWS, side="right")) - 1)
        g1 = min(g1, n_groups)
        rows = order[bounds[g0] : bounds[g1]]
        # Rows come in group order, so each group is one contiguous run for reduceat.
        block = np.asarray(full[rows], dtype=np.float64)
        starts = bounds[g0:g1] - bounds[g0]
        mean = np.add.reduceat(block, starts, axis=0) / np.diff(bounds[g0 : g1 + 1])[:, None]
        part = (
            np.argpartition(-mean, k - 1, axis=1)[:, :k]
            if k < n_cells
            else np.tile(np.arange(n_cells), (g1 - g0, 1))
        )
        vals = np.take_along_axis(mean, part, axis=1)
        inner = np.lexsort((part, -vals), axis=1)
        top_cells[g0:g1] = np.take_along_axis(part, inner, axis=1)
        top_probs[g0:g1] = np.take_along_axis(vals, inner, axis=1)
        g0 = g1
    return top_cells, top_probs


def average_groups(
    preds: Predictions,
    groups: NDArray[np.int64],
    *,
    n_cells: int | None = None,
    k: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each photo's top-k of the mean probability vector of its group.

    Parameters
    ----------
    preds
        Predictions with ``top_cells``/``top_probs`` (and optionally ``full_probs``).
    groups
        ``(n,)`` group id per prediction row.
    n_cells
        Number of mesh cells (defaults to the width of ``full_probs`` or the
        largest predicted cell id + 1).
    k
        Cells to keep (defaults to the file's k).

    Returns
    -------
    (top_cells, top_probs)
        ``(n, k)`` per photo, most probable first; where a group's mean has
        fewer than ``k`` non-zero cells the rest are cell ``-1`` with probability 0.
    """
    if preds.top_cells is None or preds.top_probs is None:
        raise InputError(
            f"model {preds.model_id!r} has no cell probabilities (a peer lat/lon file?); "
            "user and album averaging need them"
        )
    groups = np.asarray(groups).astype(np.int64)
    if groups.shape != (len(preds),):
        raise ValueError(
            f"groups must have one id per prediction ({len(preds)}), got {groups.shape}"
        )
    _, dense_groups = np.unique(groups, return_inverse=True)
    n_groups = int(dense_groups.max()) + 1
    k = preds.top_cells.shape[1] if k is None else k
    if preds.full_probs is not None:
        cells, probs = _group_topk_dense(preds.full_probs, dense_groups, n_groups, k)
    else:
        width = int(preds.top_cells.max()) + 1 if n_cells is None else n_cells
        cells, probs = _group_topk_sparse(
            preds.top_cells, preds.top_probs, dense_groups, n_groups, width, k
        )
    return cells[dense_groups], probs[dense_groups]


def _cell_locations(
    preds: Predictions, needed: NDArray[np.int64], centroids: tuple[NDArray, NDArray] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Label point of each needed cell: the mesh's, or else the file's own top-1 rows."""
    if centroids is not None:
        lat, lon = (np.asarray(a, dtype=np.float64) for a in centroids)
        return lat[needed], lon[needed]
    # The file's lat/lon is the label point of its top-1 cell, so rows whose
    # top-1 cell is c tell where c's label point is.
    top1 = np.asarray(preds.top_cells)[:, 0].astype(np.int64)
    known, first = np.unique(top1, return_index=True)
    where = np.searchsorted(known, needed)
    where = np.clip(where, 0, len(known) - 1)
    ok = known[where] == needed
    if not ok.all():
        raise InputError(
            f"model {preds.model_id!r}: averaging chose {len(np.unique(needed[~ok]))} cells "
            "that are never a top-1 prediction in the file, so their location is unknown; "
            "pass --mesh"
        )
    return preds.lat[first[where]], preds.lon[first[where]]


def _averaged(
    preds: Predictions,
    groups: NDArray[np.int64],
    suffix: str,
    centroids: tuple[NDArray, NDArray] | None,
    n_cells: int | None,
    centroid_kind: str = "given",
) -> Predictions:
    cells, probs = average_groups(preds, groups, n_cells=n_cells)
    # The group's answer under the file's rule; refine falls back to its top cell.
    rule = preds.answer if preds.answer in ("geoscore", "median") else "top-cell"
    if preds.answer not in (None, "top-cell") and centroids is None:
        # The file's own points are no label points then, so they cannot stand in.
        raise InputError(
            f"model {preds.model_id!r} answers by {preds.answer}: its averaged rows are "
            "answered from the cells' label points; pass --mesh"
        )
    if rule == "top-cell":
        lat, lon = _cell_locations(preds, cells[:, 0], centroids)
    else:
        assert centroids is not None
        lat, lon = answer_points(rule, cells, probs, *centroids)
    return Predictions(
        photo_id=np.asarray(preds.photo_id),
        lat=lat,
        lon=lon,
        top_cells=cells.astype(np.int32),
        top_probs=probs.astype(np.float32),
        model_id=f"{preds.model_id} {suffix}",
        model_name=None if preds.model_name is None else f"{preds.model_name} {suffix}",
        mesh_hash=preds.mesh_hash,
        meta={
            **preds.meta,
            "derived": suffix,
            "location_label": "file" if centroids is None else centroid_kind,
            "answer": rule,
            "answered_from": preds.answer,
        },
        answer=rule,
    )


def _lookup(preds: Predictions, table: pd.DataFrame) -> pd.DataFrame:
    needed = {"photo_id", "user_id", "posted_at"}
    if not needed <= set(table.columns):
        raise InputError(f"the photo table needs columns {sorted(needed)} for averaging")
    indexed = table.set_index(table["photo_id"].astype(str))
    position = indexed.index.get_indexer(np.asarray(preds.photo_id).astype(str))
    if (position < 0).any():
        missing = np.asarray(preds.photo_id)[position < 0]
        raise InputError(
            f"model {preds.model_id!r}: {missing.size} predicted photos are not in the photo "
            f"table (e.g. {str(missing[0])!r}); averaging needs every photo's user and time"
        )
    return indexed.iloc[position]


def recorded_label_kind(preds: Predictions) -> str | None:
    """The label-point kind (``cell``/``imagery``) a predictions file reports, if it says.

    ``trigeo predict`` records ``label_kind`` in the provenance config. A
    hierarchical file records its own (the fine part's) and each part's under
    ``parts``; a file that lists parts but not its own kind is read through
    them when they all agree (its points are then of that kind). None when
    the file says nothing usable: the caller's default applies.
    """
    config = preds.meta.get("config") or {}
    kind = config.get("label_kind")
    if kind in ("cell", "imagery"):
        return str(kind)
    parts = config.get("parts") or []
    kinds = {part.get("label_kind") for part in parts if isinstance(part, dict)}
    if len(kinds) == 1 and (only := kinds.pop()) in ("cell", "imagery"):
        return str(only)
    return None


def average_by_user(
    preds: Predictions,
    table: pd.DataFrame,
    *,
    centroids: tuple[NDArray, NDArray] | None = None,
    n_cells: int | None = None,
    label: str = "given",
) -> Predictions:
    """User averaging: every photo of a user gets the argmax of the user's mean vector.

    Parameters
    ----------
    preds
        Any model's predictions with cell probabilities.
    table
        Photo table with ``photo_id`` and ``user_id`` (``Dataset.table``).
    centroids
        ``(lat, lon)`` label point per cell (``mesh.centroids(kind)``); without
        it, label points are read from the file's own top-1 rows.
    n_cells
        Number of cells of the mesh.
    label
        Name of the centroid kind given (``cell``/``imagery``), for the report.

    Returns
    -------
    Predictions
        Same photos, model id (and name, when set) suffixed ``+user-avg``.
    """
    rows = _lookup(preds, table)
    groups = pd.factorize(rows["user_id"].astype(str))[0]
    return _averaged(preds, groups, "+user-avg", centroids, n_cells, label)


def average_by_album(
    preds: Predictions,
    table: pd.DataFrame,
    *,
    album_size: int = ALBUM_SIZE,
    centroids: tuple[NDArray, NDArray] | None = None,
    n_cells: int | None = None,
    label: str = "given",
) -> Predictions:
    """Album averaging: the user mean taken over albums of ``album_size`` photos.

    Albums are a user's predicted photos in ``posted_at`` order, 24 at a time
    with the last one shorter. See :func:`average_by_user` for the parameters.
    """
    rows = _lookup(preds, table)
    groups = album_keys(rows["user_id"], rows["posted_at"], rows["photo_id"], album_size)
    return _averaged(preds, groups, "+album-avg", centroids, n_cells, label)
