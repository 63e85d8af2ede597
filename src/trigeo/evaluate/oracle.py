"""Best possible accuracy of a mesh: every photo is given its true cell (the oracle rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.evaluate.geoscore import geoscore_from_errors
from trigeo.evaluate.inputs import MeshLike
from trigeo.evaluate.metrics import summarize_errors
from trigeo.evaluate.results import EvaluationConfig, accuracy_json, threshold_keys
from trigeo.evaluate.scoring import accuracy_block, truth_users
from trigeo.evaluate.truth import Truth
from trigeo.mesh.oracle import oracle_errors

__all__ = ["ORACLE_NAME", "oracle_rows"]

#: The ``model`` of oracle rows in metrics.json and the report.
ORACLE_NAME = "oracle (best possible)"


def oracle_rows(
    truth: Truth,
    mesh: MeshLike,
    mesh_name: str,
    config: EvaluationConfig,
    labels: Sequence[str] = ("cell", "imagery"),
    truth_cells: NDArray | None = None,
) -> list[dict[str, Any]]:
    """Best possible accuracy of a mesh: every photo gets its true cell's label point.

    Scored, as in the study, over the truth photos that fall in kept cells;
    ``photos`` and ``photos_outside`` say how many that is.

    Parameters
    ----------
    truth
        The evaluated photos.
    mesh, mesh_name
        The mesh and its name in the report.
    config
        The evaluation standard.
    labels
        Label points to score (``cell`` and/or ``imagery`` centroids), one row each.
    truth_cells
        The truth photos' cells in ``mesh`` when already located.

    Returns
    -------
    list of dict
        One metrics.json row per label.
    """
    cells = truth.cells_in(mesh) if truth_cells is None else truth_cells
    inside = cells >= 0
    keys = threshold_keys(config.thresholds_km)
    out = []
    for label in labels:
        errors = oracle_errors(mesh, truth.lat, truth.lon, cells, label, config.radius_km)
        block = accuracy_block(errors, config, truth_users(truth, np.flatnonzero(inside)))
        out.append(
            {
                "model": ORACLE_NAME,
                "mesh": mesh_name,
                "mesh_hash": mesh.mesh_hash,
                "label": label,
                "photos": int(inside.sum()),
                "photos_outside": int((~inside).sum()),
                **accuracy_json(keys, block["accuracy"], block["low"], block["high"]),
                "ci_unit": block["ci_unit"],
                **summarize_errors(errors),
                # No interval: the oracle is a bound, shown beside the models' GeoScore.
                "geoscore": float(geoscore_from_errors(errors, config.radius_km).mean())
                if errors.size
                else None,
            }
        )
    return out
