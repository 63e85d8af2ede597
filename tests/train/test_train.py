"""End-to-end M1 training on a tiny world: artifact, resume, frozen backbone, bad input."""

from __future__ import annotations

import json

import lightning
import numpy as np
import pytest
from safetensors.torch import load_file

from trigeo.errors import InputError
from trigeo.models import M1Model, M1Net
from trigeo.train.config import load_config
from trigeo.train.m1 import train_m1
from trigeo.train.module import StopAfterBatches


def _config(**overrides):
    return load_config("test", overrides)


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    dataset, _, mesh_path = world
    out = tmp_path_factory.mktemp("trained") / "model"
    notes: list[str] = []
    model = train_m1(dataset.root, mesh_path, out, _config(), report=notes.append)
    return model, out, notes


def test_model_directory_holds_everything_predict_needs(trained, world):
    model, out, _ = trained
    dataset, mesh, _ = world
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "mesh.npz", "model.json", "config.yaml", "metrics.json"} <= names
    record = json.loads((out / "model.json").read_text())
    assert record["label_kind"] == "imagery" and record["mesh_hash"] == mesh.mesh_hash
    assert record["data_config"]["input_size"] == [3, 32, 32]
    assert record["config"]["backbone"] == "test_resnet"
    assert record["provenance"]["inputs"]["dataset"] == dataset.hash
    assert (out / "logs" / "csv" / "stage-1-sgd-full" / "metrics.csv").exists()
    assert any((out / "logs" / "tensorboard" / "stage-1-sgd-full").glob("events.*"))
    for stage in ("stage-0-adagrad-beta1", "stage-1-sgd-full"):
        assert (out / "checkpoints" / stage / "last.ckpt").exists()
    assert M1Model.load(out).model_id == model.model_id


def test_photos_in_dropped_cells_are_excluded_and_counted(trained, world):
    model, _, notes = trained
    dataset, mesh, _ = world
    train = dataset.photos("train")
    dropped = int((mesh.locate(train["lat"].to_numpy(), train["lon"].to_numpy()) < 0).sum())
    assert model.metrics["excluded_dropped_cells"] == dropped
    assert model.metrics["used_photos"] == len(train) - dropped
    assert any(f"{dropped} in dropped cells excluded" in note for note in notes)


def test_corrupt_training_image_is_skipped_and_reported(trained, corrupt_photo_id):
    model, _, notes = trained
    assert model.metrics["skipped_images"] == 1
    assert list(model.metrics["skipped_examples"]) == [corrupt_photo_id]
    assert any("1 unreadable training images skipped" in note for note in notes)


def test_training_learns_the_tiny_world(trained):
    model, _, _ = trained
    final = model.metrics["final"]
    # Four colour-coded cities: chance is about 25 %.
    assert final["val/acc_2500km"] >= 75.0
    assert model.metrics["train_images_per_second"] > 0
    assert [s["stage"] for s in model.metrics["stages"]] == ["adagrad-beta1", "sgd-full"]


def test_interrupted_run_resumes_to_the_same_metrics(world, trained, tmp_path):
    dataset, _, mesh_path = world
    reference = trained[0].metrics["final"]
    out = tmp_path / "model"
    # Stage 0: 32 samples / 8 = 4 batches; stage 1: 12 batches per epoch. Crash in epoch 2.
    with pytest.raises(StopAfterBatches.SimulatedCrashError):
        train_m1(dataset.root, mesh_path, out, _config(), callbacks=[StopAfterBatches(4 + 12 + 5)])
    assert (out / "checkpoints" / "stage-0-adagrad-beta1" / "done.safetensors").exists()
    assert not (out / "model.json").exists()
    with pytest.raises(InputError, match="--resume"):
        train_m1(dataset.root, mesh_path, out, _config())
    resumed = train_m1(dataset.root, mesh_path, out, _config(), resume=True)
    for key, value in reference.items():
        if key.startswith("val/acc"):
            assert resumed.metrics["final"][key] == pytest.approx(value, abs=0.5), key
    assert resumed.metrics["final"]["val/loss"] == pytest.approx(reference["val/loss"], rel=1e-3)


def test_frozen_backbone_caches_features_and_trains_only_the_head(world, tmp_path):
    dataset, mesh, mesh_path = world
    out = tmp_path / "frozen"
    config = _config(freeze_backbone=True)
    model = train_m1(dataset.root, mesh_path, out, config)
    cached = sorted(p.name for p in (out / "features").iterdir())
    assert len(cached) == 2 and all("test_resnet" in name for name in cached)
    lightning.seed_everything(config.seed, verbose=False)
    initial = M1Net("test_resnet", mesh.n_cells_)
    saved = load_file(str(out / "model.safetensors"))
    for name, tensor in initial.backbone.state_dict().items():
        np.testing.assert_array_equal(saved[f"backbone.{name}"].numpy(), tensor.numpy())
    assert not np.array_equal(saved["head.weight"].numpy(), initial.head.weight.detach().numpy())
    assert model.metrics["final"]["val/acc_2500km"] > 25.0


def test_mesh_from_other_coordinates_is_refused_before_training(world, tmp_path):
    from trigeo.mesh import DelaunayMesh

    dataset, _, _ = world
    rng = np.random.default_rng(0)
    elsewhere = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(
        rng.normal(-15, 0.5, 60), rng.normal(-60, 0.5, 60)
    )
    elsewhere.save(tmp_path / "elsewhere.npz")
    out = tmp_path / "model"
    with pytest.raises(InputError, match="fall outside the mesh's kept cells"):
        train_m1(dataset.root, tmp_path / "elsewhere.npz", out, _config())
    assert not (out / "checkpoints").exists()


def test_recorded_mesh_hash_must_match(world, tmp_path):
    dataset, _, mesh_path = world
    with pytest.raises(InputError, match="mesh hash"):
        train_m1(dataset.root, mesh_path, tmp_path / "m", _config(mesh_hash="f" * 64))


def test_unknown_backbone_is_refused_with_suggestions(world, tmp_path):
    dataset, _, mesh_path = world
    with pytest.raises(InputError, match="resnet10t"):
        train_m1(dataset.root, mesh_path, tmp_path / "m", _config(backbone="resnet10"))
    assert not (tmp_path / "m").exists()


def test_weights_that_do_not_fit_are_refused(world, tmp_path):
    import timm
    import torch

    dataset, _, mesh_path = world
    torch.save(timm.create_model("test_efficientnet").state_dict(), tmp_path / "w.pth")
    with pytest.raises(InputError, match=r"w\.pth"):
        train_m1(dataset.root, mesh_path, tmp_path / "m", _config(weights=str(tmp_path / "w.pth")))
    assert not (tmp_path / "m").exists()


def test_empty_split_is_refused(world, tmp_path):
    dataset, _, mesh_path = world
    with pytest.raises(InputError, match="empty"):
        train_m1(dataset.root, mesh_path, tmp_path / "m", _config(train_split="winter"))


def test_validation_median_is_the_median_of_every_photo(trained, world, tmp_path):
    # The last validation ran on the final weights over all 32 'heads' photos, in
    # batches of 16: the logged median must be the median over all photos, not a
    # mean of the two batch medians.
    from trigeo.predict.m1 import predict_m1
    from trigeo.runtime.options import InferenceOptions
    from trigeo.sphere import distance_km

    model, out, _ = trained
    dataset, _, _ = world
    result = predict_m1(
        out, tmp_path / "p.parquet", data=dataset.root, split="heads",
        options=InferenceOptions(progress=False, num_workers=0, accelerator="cpu", devices=1),
    )  # fmt: skip
    heads = dataset.photos("heads").set_index("photo_id").loc[result.photo_id]
    errors = distance_km(heads["lat"], heads["lon"], result.lat, result.lon)
    assert len(errors) == 32
    assert model.metrics["final"]["val/median_km"] == pytest.approx(np.median(errors), rel=1e-5)


def test_lightning_banners_go_to_the_run_log_not_the_console(world, tmp_path, capfd):
    dataset, _, mesh_path = world
    out = tmp_path / "quiet"
    train_m1(dataset.root, mesh_path, out, _config(max_epochs=1))
    captured = capfd.readouterr()
    console = captured.out + captured.err
    for banner in ("GPU available", "TPU available", "Total params"):
        assert banner not in console
    log = (out / "logs" / "train.log").read_text()
    assert "GPU available" in log and "Total params" in log
    # trigeo's own per-image notes are in the log too; the console gets the count.
    assert "skipped unreadable image" in log


def test_display_name_defaults_to_the_mesh_and_can_be_set(trained, world, tmp_path):
    model, out, _ = trained
    _, _, mesh_path = world
    assert model.name == f"M1 {mesh_path.stem}" == M1Model.load(out).name
    named = train_m1(
        world[0].root, mesh_path, tmp_path / "n", _config(max_epochs=1), name="M1 tiny"
    )
    assert json.loads((tmp_path / "n" / "model.json").read_text())["name"] == "M1 tiny"
    assert named.name == "M1 tiny"
