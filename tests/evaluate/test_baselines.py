"""The prior baseline and ``trigeo evaluate --baseline prior``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.evaluate.baselines import predict_prior
from trigeo.mesh import DelaunayMesh
from trigeo.sphere import distance_km

runner = CliRunner()


def _train_mesh(table: pd.DataFrame) -> DelaunayMesh:
    train = table[table["split"] == "train"]
    return DelaunayMesh(refinement_limit=5, minimum_examples=2).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )


def test_prior_predicts_class_frequencies_most_populous_first(table: pd.DataFrame) -> None:
    mesh = _train_mesh(table)
    counts = mesh.counts_[mesh.cell_triangles_]
    prior = predict_prior(mesh, ["a", "b", "c"], top_k=5)
    assert (prior.model_id, prior.model_name) == ("prior (imagery centroid)", "prior")
    assert prior.top_cells.shape == (3, min(5, mesh.n_cells_))
    assert prior.top_cells[0, 0] == int(np.argmax(counts))
    np.testing.assert_allclose(prior.top_probs[0], np.sort(counts / counts.sum())[::-1][:5], 1e-6)
    lat, lon = mesh.centroids("imagery")
    assert prior.lat[1] == lat[np.argmax(counts)] and prior.lon[2] == lon[np.argmax(counts)]
    assert prior.mesh_hash == mesh.mesh_hash


def test_prior_works_on_a_quadtree_mesh(table: pd.DataFrame) -> None:
    from trigeo.mesh import QuadtreeMesh

    train = table[table["split"] == "train"]
    lat, lon = train["lat"].to_numpy(), train["lon"].to_numpy()
    mesh = QuadtreeMesh(refinement_limit=5, minimum_examples=2).fit(lat, lon)
    cells = mesh.locate(lat, lon)
    counts = np.bincount(cells[cells >= 0], minlength=mesh.n_cells_)  # independent count
    prior = predict_prior(mesh, ["a"], top_k=3)
    assert prior.top_cells[0, 0] == int(np.argmax(counts))
    np.testing.assert_allclose(prior.top_probs[0], np.sort(counts / counts.sum())[::-1][:3], 1e-6)


def test_cli_scores_the_prior_baseline(tmp_path: Path, dataset, table: pd.DataFrame) -> None:
    mesh = _train_mesh(table)
    mesh_path = mesh.save(tmp_path / "mesh.npz")
    out = tmp_path / "report"
    args = ["evaluate", "--data", str(dataset.root), "--mesh", str(mesh_path), "--baseline",
            "prior", "--averaging", "--no-figures", "--bootstrap", "50",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # Averaging a constant prediction would only repeat it, so no +user/+album rows.
    (row,) = json.loads((out / "metrics.json").read_text())["models"]
    # Shown as plain "prior" with one mesh; the id says which mesh's counts it predicts.
    assert (row["model"], row["model_id"]) == ("prior", "prior baseline (mesh)")
    val = table[table["split"] == "val"]
    counts = mesh.counts_[mesh.cell_triangles_]
    lat, lon = mesh.centroids("imagery")
    top = np.argmax(counts)
    errors = distance_km(val["lat"].to_numpy(), val["lon"].to_numpy(), lat[top], lon[top])
    expected = 100.0 * np.mean(errors <= 2500)
    assert abs(row["accuracy_pct"]["2500km"] - expected) < 1e-9


def test_cli_baseline_errors(tmp_path: Path, dataset) -> None:
    out = str(tmp_path / "r")
    no_mesh = runner.invoke(app, ["evaluate", "--data", str(dataset.root), "--baseline", "prior",
                                  "--out", out])  # fmt: skip
    assert no_mesh.exit_code == 2 and "add --mesh" in no_mesh.output
    unknown = runner.invoke(app, ["evaluate", "--data", str(dataset.root), "--baseline", "oracle",
                                  "--out", out])  # fmt: skip
    assert unknown.exit_code == 2 and "unknown --baseline 'oracle'" in unknown.output
