"""Multi-head M1: one backbone, one head per mesh, one predictions file per head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional

from trigeo.errors import InputError
from trigeo.models import M1Model, M1Net
from trigeo.models.m1 import base_model_id, head_record, prediction_model_id
from trigeo.predictions import read_predictions
from trigeo.runtime.options import InferenceOptions
from trigeo.train.config import load_config
from trigeo.train.m1 import train_m1
from trigeo.train.module import M1Module

#: Inference without progress bars (the options' defaults otherwise).
QUIET = InferenceOptions(progress=False)


@pytest.fixture(scope="module")
def meshes(world, tmp_path_factory):
    """The fixture's Delaunay mesh ("fine") and a coarse S2 quad-tree of the same photos."""
    from trigeo.mesh import QuadtreeMesh

    dataset, fine, fine_path = world
    root = tmp_path_factory.mktemp("heads")
    train = dataset.photos("train")
    coarse = QuadtreeMesh(refinement_limit=10_000, minimum_examples=5, init_level=0).fit(
        train["lat"].to_numpy(), train["lon"].to_numpy()
    )
    coarse_path = root / "coarse.npz"
    coarse.save(coarse_path)
    fine_copy = root / "fine.npz"
    fine_copy.write_bytes(fine_path.read_bytes())
    return coarse, coarse_path, fine, fine_copy


@pytest.fixture(scope="module")
def multi(world, meshes, tmp_path_factory):
    dataset, _, _ = world
    _, coarse_path, _, fine_path = meshes
    out = tmp_path_factory.mktemp("multi") / "model"
    notes: list[str] = []
    model = train_m1(
        dataset.root, [coarse_path, fine_path], out, load_config("test"), report=notes.append
    )
    return model, out, notes


def test_heads_share_one_backbone_and_the_finest_mesh_is_primary():
    net = M1Net("test_resnet", [3, 7, 5], head_names=["a", "b", "c"])
    assert net.primary == 1 and net.num_classes == 7 and net.n_heads == 3
    net.eval()
    x = torch.randn(2, 3, 32, 32)
    heads = net.forward_heads(x)
    assert [h.shape[1] for h in heads] == [3, 7, 5]
    torch.testing.assert_close(net(x), heads[1])
    pooled = net.embed(x)
    torch.testing.assert_close(net.classify_heads(pooled)[2], heads[2])
    # A single-head network keeps the layout of models saved before multi-head training.
    assert "head.weight" in M1Net("test_resnet", 4).state_dict()
    with pytest.raises(InputError, match="distinct head names"):
        M1Net("test_resnet", [3, 4], head_names=["a", "a"])


def test_loss_is_the_sum_of_the_heads_cross_entropies_ignoring_dropped_cells():
    torch.manual_seed(0)
    net = M1Net("test_resnet", [3, 4], head_names=["coarse", "fine"])
    stage = load_config("test").stages[0]
    points = [(np.zeros(3), np.zeros(3)), (np.zeros(4), np.zeros(4))]
    module = M1Module(
        net,
        stage,
        label_lat=points[1][0],
        label_lon=points[1][1],
        head_label_points=points,
        head_names=["coarse", "fine"],
    )
    module.eval()  # no batch-norm statistics drift between the two forward passes
    x = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([[0, 1], [2, 3], [-1, 0], [1, 2]])
    batch = {"image": x, "label": labels, "index": torch.arange(4), "skipped": [], "errors": []}
    module.log = lambda *a, **k: None  # not attached to a Trainer
    module.optimizers = lambda: torch.optim.SGD(net.parameters(), lr=0.1)
    loss = module.training_step(batch, 0)
    coarse, fine = net.forward_heads(x)
    expected = functional.cross_entropy(coarse[[0, 1, 3]], labels[[0, 1, 3], 0]) + (
        functional.cross_entropy(fine, labels[:, 1])
    )
    torch.testing.assert_close(loss, expected)


def test_label_smoothing_mixes_the_uniform_target_into_each_heads_loss():
    """(1 - e) * NLL of the label + e * mean NLL over all classes, computed by hand."""
    torch.manual_seed(1)
    eps = 0.2
    net = M1Net("test_resnet", [3, 4], head_names=["coarse", "fine"])
    points = [(np.zeros(3), np.zeros(3)), (np.zeros(4), np.zeros(4))]
    module = M1Module(
        net,
        load_config("test").stages[0],
        label_lat=points[1][0],
        label_lon=points[1][1],
        head_label_points=points,
        head_names=["coarse", "fine"],
        label_smoothing=eps,
    )
    module.eval()
    x = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([[0, 1], [-1, 3], [2, 0]])
    batch = {"image": x, "label": labels, "index": torch.arange(3), "skipped": [], "errors": []}
    module.log = lambda *a, **k: None
    module.optimizers = lambda: torch.optim.SGD(net.parameters(), lr=0.1)
    loss = module.training_step(batch, 0)
    expected = torch.zeros(())
    for logits, target in zip(net.forward_heads(x), labels.T, strict=True):
        logp = torch.log_softmax(logits, 1)[target >= 0]
        picked = -logp[torch.arange(len(logp)), target[target >= 0]]
        expected = expected + ((1 - eps) * picked + eps * -logp.mean(1)).mean()
    torch.testing.assert_close(loss, expected)


def test_model_directory_records_every_head(multi, meshes):
    model, out, notes = multi
    coarse, _, fine, _ = meshes
    record = json.loads((out / "model.json").read_text())
    assert [h["name"] for h in record["heads"]] == ["coarse", "fine"]
    assert [h["num_classes"] for h in record["heads"]] == [coarse.n_cells_, fine.n_cells_]
    assert record["primary_head"] == "fine" and record["mesh_hash"] == fine.mesh_hash
    assert (out / "mesh-coarse.npz").exists() and (out / "mesh-fine.npz").exists()
    assert model.name == "M1"
    assert any(note.startswith("head coarse:") for note in notes)
    # Every head is validated during training.
    assert "val/acc_750km" in model.metrics["final"]
    assert "val/coarse/acc_750km" in model.metrics["final"]
    loaded = M1Model.load(out)
    assert [h.mesh_hash for h in loaded.heads] == [coarse.mesh_hash, fine.mesh_hash]
    assert loaded.mesh_hash == fine.mesh_hash and loaded.is_multi_head
    assert head_record(record, coarse.mesh_hash)["mesh_file"] == "mesh-coarse.npz"
    with pytest.raises(InputError, match="no head"):
        head_record(record, "0" * 16)


def test_predict_writes_one_file_per_head_from_one_pass(multi, world, meshes, tmp_path):
    from trigeo.predict.m1 import predict_m1

    model, out, _ = multi
    dataset, _, _ = world
    coarse, _, fine, _ = meshes
    result = predict_m1(out, tmp_path / "p.parquet", data=dataset.root, split="val", options=QUIET)
    assert set(result.files) == {"coarse", "fine"}
    assert result.files["coarse"].name == "p-coarse.parquet"
    by_head = {name: read_predictions(path) for name, path in result.files.items()}
    assert by_head["coarse"].mesh_hash == coarse.mesh_hash
    assert by_head["fine"].mesh_hash == fine.mesh_hash
    assert by_head["coarse"].model_name == "M1 coarse"
    assert base_model_id(by_head["coarse"].model_id) == model.model_id
    assert by_head["coarse"].model_id != by_head["fine"].model_id
    # Each file's top cell is the argmax of its own head, computed here independently.
    from trigeo.data.loading import PhotoDataset, build_transform

    loaded = M1Model.load(out)
    rows = dataset.photos("val").set_index("photo_id")
    ids = by_head["fine"].photo_id[:6]
    photos = PhotoDataset(
        dataset.root,
        rows.loc[ids, "image"].to_numpy(),
        None,
        build_transform(loaded.data_config, train=False),
    )
    with torch.no_grad():
        logits = loaded.net.forward_heads(torch.stack([photos[i]["image"] for i in range(6)]))
    for h, name in enumerate(("coarse", "fine")):
        np.testing.assert_array_equal(by_head[name].top_cells[:6, 0], logits[h].argmax(1).numpy())
    # --head writes one file, exactly at --out; --label cell moves the points and the id.
    one = predict_m1(
        out,
        tmp_path / "c.parquet",
        data=dataset.root,
        split="val",
        head="coarse",
        label="cell",
        options=QUIET,
    )
    assert list(one.files) == ["coarse"] and (tmp_path / "c.parquet").exists()
    cell = read_predictions(tmp_path / "c.parquet")
    assert cell.model_id == prediction_model_id(model.model_id, "coarse", "cell")
    lat, _ = coarse.centroids(kind="cell")
    np.testing.assert_allclose(cell.lat, np.asarray(lat)[cell.top_cells[:, 0]])
    with pytest.raises(InputError, match="no head 'nope'"):
        predict_m1(out, tmp_path / "x.parquet", data=dataset.root, head="nope", options=QUIET)


def test_hierarchical_on_a_multi_head_model(multi, world, meshes, tmp_path):
    from trigeo.predict.hierarchical import predict_hierarchical

    _, out, _ = multi
    dataset, _, _ = world
    _, _, fine, _ = meshes
    result = predict_hierarchical(
        [out], tmp_path / "h.parquet", data=dataset.root, split="val", options=QUIET
    )
    pred = read_predictions(tmp_path / "h.parquet")
    assert pred.mesh_hash == fine.mesh_hash
    assert len(pred.photo_id) == len(result.photo_id) > 0
    np.testing.assert_allclose(pred.top_probs.sum(1) <= 1 + 1e-6, True)
    with pytest.raises(InputError, match="two or more heads"):
        predict_hierarchical(
            [out], tmp_path / "h2.parquet", heads=["fine"], data=dataset.root, options=QUIET
        )


def test_m2_on_a_non_primary_head_trains_predicts_and_serves(multi, world, meshes, tmp_path):
    from trigeo.predict.m1 import predict_m1
    from trigeo.predict.run import predict_model
    from trigeo.serve.engine import M2Backend
    from trigeo.train.heads_config import load_head_config
    from trigeo.train.m2 import train_m2

    _, out, _ = multi
    dataset, _, _ = world
    coarse = meshes[0]
    heads_pred = tmp_path / "heads.parquet"
    predict_m1(out, heads_pred, data=dataset.root, split="heads", head="coarse", options=QUIET)
    m2 = train_m2(
        dataset.root, out, tmp_path / "m2", load_head_config("m2", "test"), m1_pred=heads_pred
    )
    assert m2.mesh_hash == coarse.mesh_hash
    # Without an M1 predictions file, M2 runs only its own head of the M1.
    predict_model(tmp_path / "m2", tmp_path / "val.parquet", data=dataset.root, options=QUIET)
    assert read_predictions(tmp_path / "val.parquet").mesh_hash == coarse.mesh_hash
    # Served, it answers on the coarse head's cells and label points, not the primary's.
    backend = M2Backend.load(tmp_path / "m2")
    assert backend.mesh.mesh_hash == coarse.mesh_hash
    lat, _ = backend.label_points()
    np.testing.assert_allclose(lat, coarse.centroids(kind="imagery")[0])


def test_calibration_fits_one_temperature_per_head(multi, world, tmp_path):
    import shutil

    from trigeo.calibration import fit_temperature
    from trigeo.runtime.inference import run_inference
    from trigeo.train.calibrate import calibrate_m1

    _, out, _ = multi
    dataset, _, _ = world
    copy = tmp_path / "m1"
    shutil.copytree(out, copy)
    calibrate_m1(
        copy, dataset.root, split="heads", options=InferenceOptions(num_workers=0, progress=False)
    )
    stored = json.loads((copy / "calibration.json").read_text())
    assert set(stored["temperatures"]) == {"coarse", "fine"}
    loaded = M1Model.load(copy)
    assert [h.temperature for h in loaded.heads] == [
        stored["temperatures"]["coarse"],
        stored["temperatures"]["fine"],
    ]
    assert loaded.temperature == stored["temperatures"]["fine"] == stored["temperature"]
    # Each head's temperature is the one fit_temperature gives on that head's own logits.
    from trigeo.data.loading import PhotoDataset, build_transform

    # The photos in the primary (fine) mesh's kept cells, as for a single-head model.
    rows = dataset.photos("heads")
    rows = rows[loaded.mesh.locate(rows["lat"].to_numpy(), rows["lon"].to_numpy()) >= 0]
    logits = run_inference(
        loaded.net,
        PhotoDataset(
            dataset.root,
            rows["image"].to_numpy(),
            None,
            build_transform(loaded.data_config, train=False),
        ),
        mode="logits",
        options=InferenceOptions(num_workers=0, progress=False),
    )
    lat, lon = rows["lat"].to_numpy(), rows["lon"].to_numpy()
    for h, spec in enumerate(loaded.heads):
        cells = np.asarray(spec.mesh.locate(lat, lon))[logits["index"]]
        kept = cells >= 0
        expected = fit_temperature(logits[f"logits.{h}"][kept], cells[kept])
        assert spec.temperature == pytest.approx(expected, rel=1e-9)
