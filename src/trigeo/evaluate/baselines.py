"""Reference predictors that every model should beat.

The *prior* baseline ignores the photo: it predicts the mesh's class
frequencies (the training photos per kept cell), so its top cell is always the
most populous cell. A model that does not clearly beat it has learned nothing
about places.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trigeo.predictions import Predictions
from trigeo.provenance import make_provenance

__all__ = ["BASELINES", "predict_prior"]

BASELINES = ("prior",)


def predict_prior(
    mesh: Any,
    photo_id: ArrayLike,
    *,
    label: str = "imagery",
    top_k: int = 20,
    model_id: str | None = None,
    model_name: str = "prior",
) -> Predictions:
    """Predict the training class frequencies of ``mesh`` for every photo.

    Parameters
    ----------
    mesh
        A fitted mesh of either kind; its ``cell_counts()`` are the training
        photos per class.
    photo_id
        The photos to predict for.
    label
        Which centroid (``imagery`` or ``cell``) locates the top cell.
    top_k
        How many cells to keep per photo.
    model_id
        Identity in metrics.json (default ``prior (<label> centroid)``).
    model_name
        Short display name in tables.
    """
    counts = np.asarray(mesh.cell_counts(), dtype=np.float64)  # either mesh kind
    probs = counts / counts.sum()
    k = min(top_k, probs.size)
    # A stable sort gives ties to the lower cell id, like argmax.
    order = np.argsort(-probs, kind="stable")[:k]
    photo_id = np.asarray(photo_id).astype(str)
    n = photo_id.size
    lat, lon = mesh.centroids(kind=label)
    model_id = model_id or f"prior ({label} centroid)"
    return Predictions(
        photo_id=photo_id,
        lat=np.full(n, float(np.asarray(lat)[order[0]])),
        lon=np.full(n, float(np.asarray(lon)[order[0]])),
        top_cells=np.tile(order.astype(np.int32), (n, 1)),
        top_probs=np.tile(probs[order].astype(np.float32), (n, 1)),
        model_id=model_id,
        model_name=model_name,
        mesh_hash=mesh.mesh_hash,
        meta=make_provenance({"baseline": "prior", "label": label, "top_k": k}),
    )
