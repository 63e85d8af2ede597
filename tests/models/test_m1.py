"""M1 network, registry, weight loading and the model directory artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from trigeo.errors import ArtifactError, InputError
from trigeo.models import M1Model, M1Net, create_model, list_models, load_backbone_weights
from trigeo.models.m1 import check_backbone, resolve_image_config

torch.set_num_threads(1)


def test_create_model_gives_logits_and_penultimate_features():
    net = create_model("m1", backbone="test_resnet", num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 7)
    features = net.embed(x)
    assert features.shape == (2, net.num_features)
    torch.testing.assert_close(net.classify(features), net(x))
    assert "m1" in list_models()


@pytest.mark.parametrize("backbone", ["test_resnet", "test_vit"])
def test_forward_features_and_head_follow_timms_contract(backbone):
    # timm: forward_features -> unpooled map; forward_head(x, pre_logits) -> pooled or logits.
    net = M1Net(backbone, 5).eval()
    size = net.backbone.pretrained_cfg["input_size"][-1]
    x = torch.randn(2, 3, size, size)
    fmap = net.forward_features(x)
    torch.testing.assert_close(fmap, net.backbone.forward_features(x))
    assert fmap.ndim in (3, 4) and fmap.shape[0] == 2  # a map (tokens or pixels), not pooled
    pooled = net.forward_head(fmap, pre_logits=True)
    assert pooled.shape == (2, net.num_features)
    torch.testing.assert_close(pooled, net.backbone(x))
    torch.testing.assert_close(net.forward_head(fmap), net.head(pooled))
    torch.testing.assert_close(net(x), net.head(pooled))


def test_unknown_names_suggest_close_ones():
    with pytest.raises(InputError, match="resnet10t"):
        check_backbone("resnet1Ot")
    with pytest.raises(InputError, match="inception_v4"):
        M1Net("inceptoin_v4", 3)
    with pytest.raises(InputError, match="did you mean m1"):
        create_model("m11", backbone="x")


def test_freeze_backbone_leaves_only_the_head_trainable():
    net = M1Net("test_resnet", 4)
    net.freeze_backbone()
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}


def test_data_config_follows_image_size():
    net = M1Net("test_resnet", 3)
    config = resolve_image_config(net.backbone, 48)
    assert config["input_size"] == [3, 48, 48]
    assert {"mean", "std", "interpolation", "crop_pct"} <= set(config)
    json.dumps(config)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_imagenet_weights_load_and_report_the_dropped_classifier(tmp_path, suffix):
    torch.manual_seed(1)
    imagenet = timm.create_model("test_resnet", num_classes=1000)
    state = imagenet.state_dict()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    net = M1Net("test_resnet", 5)
    report = load_backbone_weights(net.backbone, path)
    assert report["loaded"] == len(net.backbone.state_dict())
    assert sorted(report["dropped"]) == ["fc.bias", "fc.weight"]
    assert report["missing"] == [] and report["unexpected"] == []
    torch.testing.assert_close(net.backbone.conv1[0].weight, imagenet.conv1[0].weight)


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = timm.create_model("test_efficientnet", num_classes=10)
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(InputError, match=r"another architecture|do not fit"):
        load_backbone_weights(M1Net("test_resnet", 5).backbone, path)


def test_weights_with_wrong_shapes_are_refused(tmp_path):
    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    state["conv1.0.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"conv1\.0\.weight"):
        load_backbone_weights(M1Net("test_resnet", 5).backbone, path)


def test_unreadable_weights_are_refused(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match="cannot read weights"):
        load_backbone_weights(M1Net("test_resnet", 5).backbone, path)


@pytest.fixture
def mesh_file(tmp_path):
    from trigeo.mesh import DelaunayMesh

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.normal(48, 0.5, 30), rng.normal(-30, 0.5, 30)])
    lon = np.concatenate([rng.normal(2, 0.5, 30), rng.normal(150, 0.5, 30)])
    mesh = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(lat, lon)
    path = tmp_path / "mesh.npz"
    mesh.save(path)
    return mesh, path


def test_model_directory_round_trip(tmp_path, mesh_file):
    mesh, mesh_path = mesh_file
    torch.manual_seed(0)
    net = M1Net("test_resnet", mesh.n_cells_)
    model = M1Model(
        net,
        mesh,
        label_kind="cell",
        data_config=resolve_image_config(net.backbone, 32),
        config={"backbone": "test_resnet"},
        metrics={"final": {"val/acc": 12.5}},
    )
    out = tmp_path / "model"
    model.save(out, mesh_path, inputs={"dataset": "abc"})
    assert {"model.safetensors", "mesh.npz", "model.json"} <= {p.name for p in out.iterdir()}
    record = json.loads((out / "model.json").read_text())
    assert record["label_kind"] == "cell" and record["mesh_hash"] == mesh.mesh_hash
    assert record["provenance"]["inputs"]["dataset"] == "abc"
    loaded = M1Model.load(out)
    x = torch.randn(3, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(loaded.net(x), net(x))
    assert loaded.model_id == model.model_id and loaded.metrics["final"]["val/acc"] == 12.5
    lat, lon = loaded.label_points()
    expected = mesh.centroids(kind="cell")
    np.testing.assert_allclose(lat, expected[0])
    np.testing.assert_allclose(lon, expected[1])
    loaded.save_temperature(1.7)
    assert M1Model.load(out).temperature == pytest.approx(1.7)


def test_tampered_model_directory_is_refused(tmp_path, mesh_file):
    mesh, mesh_path = mesh_file
    net = M1Net("test_resnet", mesh.n_cells_)
    out = tmp_path / "model"
    M1Model(net, mesh, label_kind="imagery", data_config={}).save(out, mesh_path)
    record = json.loads((out / "model.json").read_text())
    record["mesh_hash"] = "0" * 64
    (out / "model.json").write_text(json.dumps(record))
    with pytest.raises(ArtifactError, match="mesh hash"):
        M1Model.load(out)
    with pytest.raises(ArtifactError, match=r"no model\.json"):
        M1Model.load(tmp_path)


def test_mismatched_mesh_and_network_are_refused(mesh_file):
    mesh, _ = mesh_file
    with pytest.raises(ArtifactError, match="outputs"):
        M1Model(M1Net("test_resnet", mesh.n_cells_ + 1), mesh, label_kind="cell", data_config={})
