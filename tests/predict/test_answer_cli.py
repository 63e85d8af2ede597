"""``trigeo predict --answer``: every rule on the tiny world, with its retrieval index."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from retrieve.conftest import world_model
from trigeo.answer import answer_points
from trigeo.cli import app
from trigeo.predictions import read_predictions
from trigeo.runtime.options import InferenceOptions
from trigeo.sphere import distance_km

__all__ = ["world_model"]

QUIET = ["--workers", "0", "--no-progress"]


def _predict(model_dir, dataset, out, *extra):
    args = ["predict", "--model", str(model_dir), "--data", str(dataset.root), "--out", str(out)]
    return CliRunner().invoke(app, [*args, *QUIET, *extra])


@pytest.fixture(scope="module")
def top_cell(world_model, tmp_path_factory):
    model_dir, dataset, _ = world_model
    out = tmp_path_factory.mktemp("answers") / "top.parquet"
    result = _predict(model_dir, dataset, out, "--top-k", "4")
    assert result.exit_code == 0, result.output
    return read_predictions(out)


@pytest.mark.parametrize("rule", ["geoscore", "median"])
def test_cell_rules_change_only_the_point_and_record_the_rule(
    world_model, top_cell, tmp_path, rule
):
    from trigeo.models.m1 import M1Model

    model_dir, dataset, _ = world_model
    out = tmp_path / f"{rule}.parquet"
    result = _predict(model_dir, dataset, out, "--top-k", "4", "--answer", rule)
    assert result.exit_code == 0, result.output
    got = read_predictions(out)
    assert top_cell.answer == "top-cell" and got.answer == rule
    assert got.meta["answer_params"] == {"top_k": 4}
    np.testing.assert_array_equal(got.photo_id, top_cell.photo_id)
    np.testing.assert_array_equal(got.top_cells, top_cell.top_cells)
    np.testing.assert_array_equal(got.top_probs, top_cell.top_probs)
    label_lat, label_lon = M1Model.load(model_dir).label_points()
    want = answer_points(rule, got.top_cells, got.top_probs, label_lat, label_lon)
    np.testing.assert_allclose(got.lat, want[0])
    np.testing.assert_allclose(got.lon, want[1])
    # Its own row in an evaluation beside the top-cell file.
    assert got.model_id == f"{top_cell.model_id}+{rule}"
    assert got.model_name == f"{top_cell.model_name} {rule}"


def test_index_rules_need_an_index_and_an_index_needs_one_of_them(world_model, tmp_path):
    model_dir, dataset, index_dir = world_model
    for rule in ("refine", "knn"):
        result = _predict(model_dir, dataset, tmp_path / "x.parquet", "--answer", rule)
        assert result.exit_code == 2
        assert f"--answer {rule}" in result.output and "--index" in result.output
    result = _predict(model_dir, dataset, tmp_path / "x.parquet", "--index", str(index_dir))
    assert result.exit_code == 2 and "--answer refine or knn" in result.output
    assert not (tmp_path / "x.parquet").exists()
    result = _predict(model_dir, dataset, tmp_path / "x.parquet", "--answer", "nearest")
    assert result.exit_code == 2


def test_refine_answers_near_an_indexed_photo_of_the_top_cells(world_model, top_cell, tmp_path):
    from trigeo.mesh import load_mesh
    from trigeo.retrieve.index import RetrievalIndex

    model_dir, dataset, index_dir = world_model
    out = tmp_path / "refine.parquet"
    result = _predict(
        model_dir, dataset, out, "--top-k", "4", "--answer", "refine", "--index", str(index_dir)
    )
    assert result.exit_code == 0, result.output
    assert "refined" in result.output
    got = read_predictions(out)
    assert got.answer == "refine" and got.model_id == f"{top_cell.model_id}+refine"
    params = got.meta["answer_params"]
    assert params["k"] == 10 and params["radius_km"] == 100.0 and params["depth"] == 100
    assert params["refined"] + params["top_cell_kept"] == len(got)
    np.testing.assert_array_equal(got.top_cells, top_cell.top_cells)
    np.testing.assert_array_equal(got.top_probs, top_cell.top_probs)
    # Each refined point is a spherical mean of indexed photos within 100 km of each other
    # that lie in the photo's top cells: it is within 100 km of one of them.
    index = RetrievalIndex.load(index_dir)
    mesh = load_mesh(model_dir / "mesh.npz")
    i_lat = index.photos["lat"].to_numpy()
    i_lon = index.photos["lon"].to_numpy()
    i_cell = mesh.locate(i_lat, i_lon)
    moved = 0
    for row in range(len(got)):
        if (got.lat[row], got.lon[row]) == (top_cell.lat[row], top_cell.lon[row]):
            continue
        moved += 1
        inside = np.isin(i_cell, got.top_cells[row])
        d = distance_km(got.lat[row], got.lon[row], i_lat[inside], i_lon[inside])
        assert d.min() <= 100.0
    assert moved == params["refined"] > 0
    # The four cities are far apart: refining inside the right cell lands in its city.
    truth = dataset.photos("val").set_index("photo_id").loc[got.photo_id]
    errors = distance_km(truth["lat"], truth["lon"], got.lat, got.lon)
    assert np.median(errors) < 100.0


def test_knn_is_the_knn_predictor_and_the_old_flag_still_works(world_model, tmp_path):
    from trigeo.retrieve.knn import predict_knn

    model_dir, dataset, index_dir = world_model
    out = tmp_path / "knn.parquet"
    result = _predict(model_dir, dataset, out, "--answer", "knn", "--index", str(index_dir))
    assert result.exit_code == 0, result.output
    got = read_predictions(out)
    assert got.answer == "knn" and got.top_cells is None
    assert got.meta["answer_params"]["k"] == 10
    plain = predict_knn(
        model_dir, index_dir, tmp_path / "plain.parquet", data=dataset.root,
        options=InferenceOptions(num_workers=0, progress=False),
    )  # fmt: skip
    assert plain is not None
    np.testing.assert_allclose(got.lat, plain.lat)
    np.testing.assert_allclose(got.lon, plain.lon)
    assert got.model_id == plain.model_id
    old = tmp_path / "old.parquet"
    result = _predict(model_dir, dataset, old, "--knn", str(index_dir))
    assert result.exit_code == 0, result.output
    assert "renamed to --answer knn --index" in " ".join(result.output.split())
    np.testing.assert_allclose(read_predictions(old).lat, plain.lat)
    assert read_predictions(old).answer == "knn"


def test_image_files_print_the_answer_beside_the_top_cells(world_model, tmp_path):
    model_dir, dataset, index_dir = world_model
    image = str(dataset.root / dataset.photos("val")["image"].iloc[0])
    args = ["predict", image, "--model", str(model_dir), "--out", str(tmp_path / "p.parquet")]
    result = CliRunner().invoke(
        app, [*args, *QUIET, "--answer", "refine", "--index", str(index_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "answer by refine" in result.output
    got = read_predictions(tmp_path / "p.parquet")
    assert got.answer == "refine" and len(got) == 1


def test_averaged_rows_follow_their_file_s_rule(world_model, top_cell, tmp_path):
    from trigeo.data.table import Dataset
    from trigeo.errors import InputError
    from trigeo.evaluate import EvaluationConfig, Truth, evaluate
    from trigeo.evaluate.averaging import average_by_user
    from trigeo.mesh import load_mesh

    model_dir, dataset, index_dir = world_model
    mesh = load_mesh(model_dir / "mesh.npz")
    files = {}
    for rule in ("geoscore", "median", "refine"):
        out = tmp_path / f"{rule}.parquet"
        extra = ["--index", str(index_dir)] if rule == "refine" else []
        result = _predict(model_dir, dataset, out, "--top-k", "4", "--answer", rule, *extra)
        assert result.exit_code == 0, result.output
        files[rule] = read_predictions(out)
    centroids = mesh.centroids(kind="imagery")
    table = Dataset.open(dataset.root).table
    for rule, preds in files.items():
        averaged = average_by_user(preds, table, centroids=centroids, n_cells=mesh.n_cells_)
        plain = average_by_user(top_cell, table, centroids=centroids, n_cells=mesh.n_cells_)
        np.testing.assert_array_equal(averaged.top_cells, plain.top_cells)
        if rule == "refine":
            # No per-photo neighbours for a pooled distribution: its top cell's point.
            assert averaged.answer == "top-cell" and averaged.meta["answered_from"] == "refine"
            np.testing.assert_allclose(averaged.lat, plain.lat)
        else:
            assert averaged.answer == rule
            want = answer_points(rule, averaged.top_cells, averaged.top_probs, *centroids)
            np.testing.assert_allclose(averaged.lat, want[0])
            np.testing.assert_allclose(averaged.lon, want[1])
        # Without the mesh the file's own points are no label points: refused, not guessed.
        with pytest.raises(InputError, match="--mesh"):
            average_by_user(preds, table)
    truth = Truth.from_dataset(Dataset.open(dataset.root))
    result = evaluate(
        truth, [("top", top_cell), ("geoscore", files["geoscore"])], meshes=[("mesh", mesh)],
        config=EvaluationConfig(averaging=True, n_resamples=20),
    )  # fmt: skip
    assert len(result.models) == 6
