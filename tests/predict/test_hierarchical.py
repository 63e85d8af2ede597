"""Hierarchical inference: coarse meshes' probabilities multiply the fine mesh's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from trigeo.errors import InputError
from trigeo.predict.hierarchical import combine_hierarchical, dense_probabilities
from trigeo.predictions import Predictions
from trigeo.runtime.options import InferenceOptions

# Four fine cells at longitudes -20, -10, 10, 20; the coarse mesh splits at lon 0
# (cell 0 west, cell 1 east); nothing of the coarse mesh lies beyond lon 30.
FINE_LON = np.array([-20.0, -10.0, 10.0, 20.0])


def _fine_mesh(lon=FINE_LON):
    return SimpleNamespace(
        n_cells_=len(lon),
        mesh_hash="fine",
        centroids=lambda kind="cell": (np.zeros(len(lon)), lon),
    )


def _coarse_mesh():
    def locate(lat, lon):
        lon = np.asarray(lon)
        return np.where(lon > 30, -1, (lon > 0).astype(np.int64))

    return SimpleNamespace(n_cells_=2, mesh_hash="coarse", locate=locate)


def _preds(ids, cells, probs, mesh_hash, full=None):
    return Predictions(
        photo_id=np.asarray(ids),
        lat=np.zeros(len(ids)),
        lon=np.zeros(len(ids)),
        top_cells=np.asarray(cells, dtype=np.int32),
        top_probs=np.asarray(probs, dtype=np.float32),
        model_id=f"m-{mesh_hash}",
        mesh_hash=mesh_hash,
        full_probs=None if full is None else np.asarray(full, dtype=np.float32),
    )


def test_full_probabilities_multiply_and_renormalise():
    fine = _preds(["a"], [[0, 1]], [[0.4, 0.3]], "fine", full=[[0.4, 0.3, 0.2, 0.1]])
    coarse = _preds(["a"], [[1]], [[0.8]], "coarse", full=[[0.2, 0.8]])
    result = combine_hierarchical(fine, _fine_mesh(), [coarse], [_coarse_mesh()], top_k=4)
    # [0.4*0.2, 0.3*0.2, 0.2*0.8, 0.1*0.8] = [0.08, 0.06, 0.16, 0.08], total 0.38.
    assert result.top_cells.tolist() == [[2, 0, 3, 1]]
    np.testing.assert_allclose(result.top_probs[0], [0.16 / 0.38, 0.08 / 0.38, 0.08 / 0.38,
                                                     0.06 / 0.38], rtol=1e-6)  # fmt: skip
    assert result.lon[0] == 10.0  # the label point of fine cell 2


def test_top_k_files_spread_the_unlisted_mass_evenly():
    fine = _preds(["a"], [[0, 1]], [[0.4, 0.3]], "fine")
    np.testing.assert_allclose(
        dense_probabilities(fine, np.array([0]), 4), [[0.4, 0.3, 0.15, 0.15]]
    )
    coarse = _preds(["a"], [[1]], [[0.8]], "coarse")  # cell 0 gets the remaining 0.2
    result = combine_hierarchical(fine, _fine_mesh(), [coarse], [_coarse_mesh()], top_k=2)
    # [0.08, 0.06, 0.12, 0.12] / 0.38: cells 2 and 3 tie; the lower id ranks first.
    assert result.top_cells.tolist() == [[2, 3]]
    np.testing.assert_allclose(result.top_probs[0], [0.12 / 0.38, 0.12 / 0.38], rtol=1e-6)


def test_photos_are_aligned_by_id_and_cells_outside_the_coarse_mesh_get_its_floor():
    lon = np.array([-20.0, 40.0])  # fine cell 1 lies outside every coarse cell
    fine = _preds(["b", "a", "c"], [[0], [1], [0]], [[0.5], [0.5], [0.9]], "fine",
                  full=[[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])  # fmt: skip
    coarse = _preds(["a", "b"], [[0], [1]], [[0.9], [0.6]], "coarse",
                    full=[[0.9, 0.1], [0.4, 0.6]])  # fmt: skip
    result = combine_hierarchical(fine, _fine_mesh(lon), [coarse], [_coarse_mesh()], top_k=2)
    assert result.photo_id.tolist() == ["a", "b"]  # "c" has no coarse prediction
    # a: [0.5*0.9, 0.5*min(0.9, 0.1)] -> [0.9, 0.1]; b: [0.5*0.4, 0.5*0.4] -> a tie.
    np.testing.assert_allclose(result.top_probs[0], [0.9, 0.1], rtol=1e-6)
    np.testing.assert_allclose(result.top_probs[1], [0.5, 0.5], rtol=1e-6)


def test_predictions_from_another_mesh_are_refused():
    fine = _preds(["a"], [[0]], [[0.5]], "fine")
    other = _preds(["a"], [[0]], [[0.5]], "elsewhere")
    with pytest.raises(InputError, match="predicted on mesh elsewhere"):
        combine_hierarchical(fine, _fine_mesh(), [other], [_coarse_mesh()])
    with pytest.raises(InputError, match="one mesh per coarse"):
        combine_hierarchical(fine, _fine_mesh(), [], [])


def test_cli_combines_model_directories(model_dir, tmp_path):
    # The same M1 twice: each cell's score is p(cell) * p(cell) (a cell is its own
    # parent), so the combined file holds the squared, renormalised probabilities.
    from typer.testing import CliRunner

    from trigeo.cli import app
    from trigeo.predictions import read_predictions

    path, dataset = model_dir
    out = tmp_path / "hier.parquet"
    args = ["predict", "--model", str(path), "--model", str(path), "--hierarchical",
            "--data", str(dataset.root), "--out", str(out), "--workers", "0",
            "--no-progress", "--top-k", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    hier = read_predictions(out)
    part = read_predictions(next((tmp_path / "hier.parquet.parts").glob("*.parquet")))
    order = np.argsort(part.photo_id)
    full = np.asarray(part.full_probs, dtype=np.float64)[order]
    squared = full**2 / (full**2).sum(axis=1, keepdims=True)
    expected = np.sort(squared, axis=1)[:, ::-1][:, :3]
    h = np.argsort(hier.photo_id)
    assert list(hier.photo_id[h]) == list(part.photo_id[order])
    np.testing.assert_allclose(hier.top_probs[h], expected, rtol=1e-4, atol=1e-6)
    assert (hier.top_cells[h][:, 0] == full.argmax(axis=1)).all()
    one = CliRunner().invoke(app, args[:3] + args[5:])  # a single --model: refused
    assert one.exit_code == 2 and "two or more" in one.output


def test_hierarchical_files_answer_by_the_rule_asked_for(model_dir, tmp_path):
    from trigeo.answer import answer_points
    from trigeo.mesh import load_mesh
    from trigeo.predict.hierarchical import predict_hierarchical
    from trigeo.predictions import read_predictions

    path, dataset = model_dir
    options = {
        "data": dataset.root,
        "top_k": 4,
        "options": InferenceOptions(num_workers=0, progress=False),
    }
    top = predict_hierarchical([path, path], tmp_path / "top.parquet", **options)
    out = tmp_path / "geoscore.parquet"
    got = predict_hierarchical([path, path], out, answer="geoscore", **options)
    assert top is not None and got is not None and got.outputs() == [(out, got.mesh)]
    hier = read_predictions(out)
    assert hier.answer == "geoscore" and hier.model_id.endswith("+geoscore")
    assert hier.model_name.endswith(" geoscore")
    np.testing.assert_array_equal(hier.top_cells, top.top_cells)
    mesh = load_mesh(path / "mesh.npz")
    want = answer_points(
        "geoscore", hier.top_cells, hier.top_probs, *mesh.centroids(kind="imagery")
    )
    np.testing.assert_allclose(hier.lat, want[0])
    np.testing.assert_allclose(hier.lon, want[1])
