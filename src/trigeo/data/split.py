"""Random train / heads / val splits, as the study drew them.

The study drew photos at random: ``train`` trains M1; M1's validation photos
are re-split at random into ``heads`` (trains M2 and M3) and ``val`` (held
out; every model is reported on it).

With ``by_user=True`` every user's photos land on one side of each cut. A
random photo-level split lets the same user appear in train and val; a user's
photos share camera, style, subjects and (above all) places, so a model can
recognise the user rather than the place and val scores come out inflated.
A user-level split measures generalisation to unseen photographers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import make_provenance

__all__ = ["split_dataset", "split_photos"]

_META_OWNED = ("schema_version", "counts", "table_sha256", "provenance")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0 or not np.isfinite(value):
        raise InputError(f"{name} must lie in [0, 1], got {value}")


def _cut_users(users: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask choosing whole users so that about ``fraction`` of rows are chosen."""
    codes, counts = np.unique(users, return_inverse=True, return_counts=True)[1:]
    order = rng.permutation(counts.size)
    # A user goes to the chosen side when the middle of its run of rows falls in
    # the first ``fraction`` of the shuffled order: unbiased and keeps users whole.
    ends = np.cumsum(counts[order])
    middles = ends - counts[order] / 2.0
    chosen_users = np.zeros(counts.size, dtype=bool)
    chosen_users[order] = middles < fraction * users.size
    return chosen_users[codes]


def split_photos(
    n_photos: int,
    *,
    val_fraction: float = 0.18,
    heads_fraction: float = 0.5,
    users: np.ndarray | None = None,
    by_user: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Assign each photo to ``train``, ``heads`` or ``val``.

    Parameters
    ----------
    n_photos
        Number of photos.
    val_fraction
        Share of photos in M1's validation part (``heads`` + ``val``).
    heads_fraction
        Share of M1's validation part that goes to ``heads`` (trains M2/M3).
    users
        User id of each photo; required with ``by_user``.
    by_user
        Keep each user's photos on one side of both cuts.
    seed
        Seed of the random draw; the same seed gives the same split.

    Returns
    -------
    ndarray of str, shape (n_photos,)
    """
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("heads_fraction", heads_fraction)
    rng = np.random.default_rng(seed)
    labels = np.full(n_photos, "train", dtype=object)
    if by_user:
        if users is None or len(users) != n_photos:
            raise InputError("by_user needs one user id per photo")
        users = np.asarray(users)
        m1_val = _cut_users(users, val_fraction, rng)
        heads = np.zeros(n_photos, dtype=bool)
        if m1_val.any():
            heads[m1_val] = _cut_users(users[m1_val], heads_fraction, rng)
        labels[m1_val] = "val"
        labels[heads] = "heads"
        return labels
    order = rng.permutation(n_photos)
    n_m1_val = round(n_photos * val_fraction)
    n_heads = round(n_m1_val * heads_fraction)
    labels[order[:n_heads]] = "heads"
    labels[order[n_heads:n_m1_val]] = "val"
    return labels


def split_dataset(
    root: str | Path,
    *,
    val_fraction: float = 0.18,
    heads_fraction: float = 0.5,
    by_user: bool = False,
    seed: int = 0,
) -> Dataset:
    """Re-split a dataset directory in place (table rewritten atomically).

    Other metadata in ``dataset.json`` (image layout, shards) is kept; the new
    provenance records the split parameters, the previous table hash and the
    previous provenance.
    """
    dataset = Dataset.open(root)
    table = dataset.table.copy()
    table["split"] = split_photos(
        len(table),
        val_fraction=val_fraction,
        heads_fraction=heads_fraction,
        users=table["user_id"].to_numpy(),
        by_user=by_user,
        seed=seed,
    )
    config = {
        "stage": "data.split",
        "val_fraction": val_fraction,
        "heads_fraction": heads_fraction,
        "by_user": by_user,
        "seed": seed,
    }
    provenance = make_provenance(
        config,
        {"table.parquet": dataset.hash},
        parent=dataset.meta.get("provenance"),
    )
    return Dataset.write(root, table, provenance, **keep_meta(dataset.meta))


def keep_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``dataset.json`` fields a rewrite of the table should carry over."""
    return {k: v for k, v in meta.items() if k not in _META_OWNED}
