"""Oracle rows: the best possible accuracy of a mesh, checked against direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from trigeo.evaluate.metrics import accuracy_at, error_km
from trigeo.evaluate.oracle import oracle_rows
from trigeo.evaluate.results import EvaluationConfig


def test_oracle_matches_direct_computation(truth, grid_mesh):
    cells = grid_mesh.locate(truth.lat, truth.lon)
    lat, lon = grid_mesh.centroids("imagery")
    inside = cells >= 0
    errors = error_km(truth.lat[inside], truth.lon[inside], lat[cells[inside]], lon[cells[inside]])
    (row,) = oracle_rows(truth, grid_mesh, "grid", EvaluationConfig(), labels=("imagery",))
    np.testing.assert_allclose(list(row["accuracy_pct"].values()), accuracy_at(errors))
    assert row["photos"] == inside.sum() and row["photos_outside"] == (~inside).sum()
    assert row["median_km"] == pytest.approx(np.median(errors))


def test_oracle_agrees_with_the_mesh_packages_oracle(truth, table):
    from trigeo.mesh import DelaunayMesh
    from trigeo.mesh.oracle import oracle_accuracy

    train = table[table["split"] == "train"]
    mesh = DelaunayMesh(refinement_limit=5, minimum_examples=2).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )
    rows = oracle_rows(truth, mesh, "real", EvaluationConfig())
    for row in rows:
        theirs = oracle_accuracy(mesh, truth.lat, truth.lon, label=row["label"])
        np.testing.assert_allclose(list(row["accuracy_pct"].values()), list(theirs.values()))
