"""Hierarchical files record their parts' label kind, and averaging follows it."""

from __future__ import annotations

import numpy as np

from trigeo.evaluate.averaging import recorded_label_kind
from trigeo.predictions import Predictions
from trigeo.runtime.options import InferenceOptions


def _meta(config: dict) -> Predictions:
    return Predictions(
        photo_id=np.array(["a"]), lat=np.zeros(1), lon=np.zeros(1), model_id="m",
        meta={"config": config},
    )  # fmt: skip


def test_recorded_label_kind_reads_the_file_then_its_parts():
    assert recorded_label_kind(_meta({"label_kind": "cell"})) == "cell"
    assert recorded_label_kind(_meta({"label_kind": "imagery", "parts": []})) == "imagery"
    cell_parts = [{"label_kind": "cell"}, {"label_kind": "cell"}]
    assert recorded_label_kind(_meta({"parts": cell_parts})) == "cell"
    mixed = [{"label_kind": "cell"}, {"label_kind": "imagery"}]
    assert recorded_label_kind(_meta({"parts": mixed})) is None
    assert recorded_label_kind(_meta({})) is None
    assert recorded_label_kind(_meta({"label_kind": "median"})) is None


def test_cell_label_hierarchical_file_records_and_averages_to_cell_points(model_dir, tmp_path):
    from trigeo.data.table import Dataset
    from trigeo.evaluate import EvaluationConfig, Truth, evaluate
    from trigeo.mesh import load_mesh
    from trigeo.predict.hierarchical import predict_hierarchical
    from trigeo.predictions import read_predictions

    path, dataset = model_dir
    out = tmp_path / "hier.parquet"
    predict_hierarchical(
        [path, path], out, data=dataset.root, label="cell", top_k=3,
        options=InferenceOptions(num_workers=0, progress=False),
    )  # fmt: skip
    hier = read_predictions(out)
    config = hier.meta["config"]
    assert config["label_kind"] == "cell"
    assert [p["label_kind"] for p in config["parts"]] == ["cell", "cell"]
    mesh = load_mesh(path.parent / "mesh.npz")
    cell_lat, cell_lon = mesh.centroids(kind="cell")
    np.testing.assert_allclose(hier.lat, cell_lat[hier.top_cells[:, 0]])
    np.testing.assert_allclose(hier.lon, cell_lon[hier.top_cells[:, 0]])

    truth = Truth.from_dataset(Dataset.open(dataset.root))
    result = evaluate(
        truth, [("hier", hier)], meshes=[("mesh", mesh)],
        config=EvaluationConfig(averaging=True, n_resamples=50),
    )  # fmt: skip
    averaged = [m for m in result.models if m.name.endswith("-avg")]
    assert len(averaged) == 2
    for row in averaged:
        cells = mesh.locate(row.pred_lat[row.answered], row.pred_lon[row.answered])
        assert row.label == "cell"
        # Each averaged point is a cell centroid, not an imagery centroid.
        np.testing.assert_allclose(row.pred_lat[row.answered], cell_lat[cells], atol=1e-9)
