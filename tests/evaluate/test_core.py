"""``evaluate``: end-to-end scoring of several models on hand-made truth with a small grid mesh."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from trigeo.errors import InputError
from trigeo.evaluate.core import evaluate
from trigeo.evaluate.metrics import accuracy_at
from trigeo.evaluate.results import EvaluationConfig
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions


def _model(truth: Truth, mesh, name: str, wrong_share: float, seed: int) -> Predictions:
    """Top-1 = true cell except for a share of photos; lat/lon = imagery centroid."""
    rng = np.random.default_rng(seed)
    cells = mesh.locate(truth.lat, truth.lon)
    wrong = rng.random(len(truth)) < wrong_share
    top1 = np.where(wrong, (cells + 1 + rng.integers(0, 3, len(truth))) % mesh.n_cells_, cells)
    top = np.stack([top1, (top1 + 1) % mesh.n_cells_], axis=1)
    lat, lon = mesh.centroids("imagery")
    return Predictions(
        photo_id=truth.photo_id.copy(),
        lat=lat[top1],
        lon=lon[top1],
        top_cells=top.astype(np.int32),
        top_probs=np.tile(np.float32([0.8, 0.2]), (len(truth), 1)),
        model_id=name,
        mesh_hash=mesh.mesh_hash,
    )


def test_perfect_model_reaches_the_oracle_and_has_zero_kl(truth, grid_mesh):
    perfect = _model(truth, grid_mesh, "perfect", 0.0, 0)
    result = evaluate(truth, [("p", perfect)], meshes=[("grid", grid_mesh)], oracle=True)
    (model,) = result.models
    oracle = {row["label"]: row for row in result.oracle}
    assert list(oracle) == ["cell", "imagery"]
    np.testing.assert_allclose(model.accuracy, list(oracle["imagery"]["accuracy_pct"].values()))
    assert model.kl == 0.0
    assert model.calibration["top1_cell_accuracy"] == 1.0
    # Every photo's truth is its top-1 cell: every credible set covers it.
    assert all(s["coverage"] == 1.0 for s in model.calibration["sets"])
    # ECE: confidence 0.8 everywhere, accuracy 1.0.
    assert model.calibration["ece"] == pytest.approx(0.2, abs=1e-6)
    # --label cell moves every prediction to the cell centroid: the cell oracle.
    relabelled = evaluate(
        truth, [("p", perfect)], meshes=[("grid", grid_mesh)], config=EvaluationConfig(label="cell")
    )
    np.testing.assert_allclose(
        relabelled.models[0].accuracy, list(oracle["cell"]["accuracy_pct"].values())
    )
    assert relabelled.models[0].label == "cell"


def test_kl_leaves_photos_outside_kept_cells_out_and_reports_their_share(truth, table, grid_mesh):
    # A mesh without Sydney's box (the grid fixture's class, fewer kept boxes): its 15 of
    # the 120 val photos are in no kept cell.
    train = table[(table["split"] == "train") & (table["city"] != "sydney")]
    mesh = type(grid_mesh)(train["lat"].to_numpy(), train["lon"].to_numpy(), mesh_hash="no-sydney")
    cells = mesh.locate(truth.lat, truth.lon)
    assert (cells < 0).sum() == 15
    # The model predicts every photo's true cell, and cell 0 for the Sydney photos.
    top1 = np.where(cells < 0, 0, cells)
    lat, lon = mesh.centroids("imagery")
    model = Predictions(
        photo_id=truth.photo_id.copy(),
        lat=lat[top1],
        lon=lon[top1],
        top_cells=top1[:, None].astype(np.int32),
        top_probs=np.ones((len(truth), 1), dtype=np.float32),
        model_id="right-where-it-can",
        mesh_hash=mesh.mesh_hash,
    )
    result = evaluate(truth, [("m", model)], meshes=[("no-sydney", mesh)])
    (m,) = result.models
    # Over the kept photos it predicts every class exactly as often as it occurs: KL 0.
    # With the old extra class p of that class was 16/(120 + 8) and q 1/128: KL > 0.
    assert m.kl == 0.0
    assert (m.kl_photos, m.kl_outside_share) == (105, 0.125)
    assert m.entropy == pytest.approx(np.log(7))  # 7 kept cells, 15 photos each
    summary = m.summary(result.config.thresholds_km)
    assert summary["kl_outside_share"] == 0.125 and summary["kl_photos"] == 105


def test_two_models_tables_tests_and_subsets(truth, grid_mesh):
    good = _model(truth, grid_mesh, "good", 0.1, 1)
    bad = _model(truth, grid_mesh, "bad", 0.6, 2)
    # Display names come from the source file stems when the files carry none.
    result = evaluate(
        truth,
        [("runs/good.parquet", good), ("runs/bad.parquet", bad)],
        meshes=[("grid", grid_mesh)],
        config=EvaluationConfig(averaging=True),
    )
    names = [m.name for m in result.models]
    assert names == [
        "good",
        "good +user-avg",
        "good +album-avg",
        "bad",
        "bad +user-avg",
        "bad +album-avg",
    ]
    g, b = result.models[0], result.models[3]
    assert g.accuracy[-1] > b.accuracy[-1]
    assert 0 < g.kl < b.kl
    # The Wilcoxon p-value of good vs bad is scipy's on the per-photo errors.
    test = next(w for w in result.wilcoxon if (w.model_a, w.model_b) == ("good", "bad"))
    assert test.p_value == wilcoxon(g.errors_km, b.errors_km).pvalue
    assert len(result.wilcoxon) == 15
    # Outdoor subset: photos with outdoor >= 0.5, scored from the same errors.
    outdoor = truth.outdoor[g.truth_rows] >= 0.5
    assert g.outdoor["photos"] == outdoor.sum() > 0
    np.testing.assert_allclose(
        list(g.outdoor["accuracy_pct"].values()), accuracy_at(g.errors_km[outdoor])
    )
    # Per-continent rows add up to all photos; Europe is Paris + London.
    per_model = result.continents[result.continents["model"] == "good"]
    assert per_model["photos"].sum() == len(truth)
    assert per_model.set_index("continent").loc["Europe", "photos"] == 30
    # Country confusions only list mistakes.
    frame = result.confusions["bad"]
    assert len(frame) > 0 and (frame["true"] != frame["predicted"]).all()


def test_nothing_to_evaluate_and_duplicate_model_names(truth, grid_mesh):
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate(truth, [])
    with pytest.raises(InputError, match="--oracle needs a mesh"):
        evaluate(truth, [], oracle=True)
    model = _model(truth, grid_mesh, "same", 0.1, 1)
    with pytest.raises(InputError, match="model id"):
        evaluate(truth, [("a", model), ("b", model)])


def test_peer_kl_uses_the_given_mesh(truth, grid_mesh):
    peer = Predictions(
        photo_id=truth.photo_id, lat=truth.lat + 0.01, lon=truth.lon, model_id="peer"
    )
    result = evaluate(truth, [("peer.csv", peer)], meshes=[("grid", grid_mesh)])
    (model,) = result.models
    assert model.kl == 0.0 and model.kl_mesh == "grid" and model.calibration is None
    assert model.accuracy[1] == 100.0


def test_averaging_uses_only_the_evaluated_photos(dataset, grid_mesh):
    every = Truth.from_dataset(dataset, split=None)
    model = _model(every, grid_mesh, "all-splits", 0.2, 3)
    val = Truth.from_dataset(dataset)
    result = evaluate(
        val, [("m", model)], meshes=[("grid", grid_mesh)], config=EvaluationConfig(averaging=True)
    )
    assert [m.n_scored for m in result.models] == [len(val)] * 3
    assert not result.warnings  # photos of other splits are not "unknown"


def test_averaged_rows_keep_the_files_label_kind(dataset, grid_mesh):
    """A file reported at the cell centroid averages to cell centroids, not imagery ones."""
    val = Truth.from_dataset(dataset)
    model = _model(val, grid_mesh, "m", 0.2, 3)
    cell_lat, cell_lon = grid_mesh.centroids("cell")
    cell = Predictions(
        photo_id=model.photo_id,
        lat=cell_lat[model.top_cells[:, 0]],
        lon=cell_lon[model.top_cells[:, 0]],
        top_cells=model.top_cells,
        top_probs=model.top_probs,
        model_id="m+cell",
        mesh_hash=model.mesh_hash,
        meta={"config": {"label_kind": "cell"}},
    )
    result = evaluate(
        val,
        [("m", model), ("c", cell)],
        meshes=[("grid", grid_mesh)],
        config=EvaluationConfig(averaging=True),
    )
    by_id = {m.model_id: m for m in result.models}
    imagery_avg, cell_avg = by_id["m +user-avg"], by_id["m+cell +user-avg"]
    # Same averaged cells, each reported at its own file's label point.
    cells = grid_mesh.locate(cell_avg.pred_lat, cell_avg.pred_lon)
    np.testing.assert_allclose(cell_avg.pred_lat, cell_lat[cells])
    np.testing.assert_allclose(imagery_avg.pred_lat, grid_mesh.centroids("imagery")[0][cells])


def test_full_probability_vectors_drive_calibration_and_averaging(tmp_path, truth, grid_mesh):
    from trigeo.evaluate.inputs import load_predictions
    from trigeo.predictions import write_predictions

    rng = np.random.default_rng(5)
    k_cells = grid_mesh.n_cells_
    cells = grid_mesh.locate(truth.lat, truth.lon)
    full = rng.dirichlet(np.full(k_cells, 0.2), size=len(truth))
    full[np.arange(len(truth)), np.maximum(cells, 0)] += 1.0
    full = (full / full.sum(axis=1, keepdims=True)).astype(np.float32)
    top = np.argsort(-full, axis=1)[:, :3]
    lat, lon = grid_mesh.centroids("imagery")
    path = write_predictions(
        tmp_path / "full.parquet",
        truth.photo_id,
        lat[top[:, 0]],
        lon[top[:, 0]],
        top_cells=top,
        top_probs=np.take_along_axis(full, top, 1),
        model_id="full",
        mesh_hash=grid_mesh.mesh_hash,
        full_probs=full,
    )
    preds = load_predictions(path)
    assert preds.full_probs is not None
    result = evaluate(
        truth,
        [(str(path), preds)],
        meshes=[("grid", grid_mesh)],
        config=EvaluationConfig(averaging=True),
    )
    model = result.models[0]
    assert model.calibration["probabilities"] == "full"
    assert all(s["complete"] == 1.0 for s in model.calibration["sets"])
    user_avg = result.models[1]
    # Dense user averaging: each user's photos share the argmax of their mean full vector.
    users = truth.table["user_id"].to_numpy()
    for user in np.unique(users)[:4]:
        rows = np.flatnonzero(users == user)
        expected = lat[full[rows].mean(axis=0).argmax()]
        scored = np.isin(user_avg.truth_rows, rows)
        np.testing.assert_allclose(user_avg.pred_lat[scored], expected)
