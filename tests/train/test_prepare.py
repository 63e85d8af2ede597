"""Checks that run before any training: images, mesh provenance, initialisation."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from trigeo.data.table import Dataset
from trigeo.errors import InputError, TrigeoWarning, UnreadableImagesError
from trigeo.provenance import make_provenance
from trigeo.train.config import load_config
from trigeo.train.m1 import train_m1
from trigeo.train.prepare import build_net, check_images_readable, check_mesh_source


def _config(**overrides):
    return load_config("test", overrides)


def _copy(dataset: Dataset, root) -> Dataset:
    shutil.copytree(dataset.root, root)
    return Dataset.open(root)


def test_urls_in_the_image_column_are_refused_before_training(world, tmp_path):
    dataset, _, mesh_path = world
    table = dataset.table.copy()
    table["image"] = [f"https://farm1.staticflickr.com/{i}.jpg" for i in range(len(table))]
    root = tmp_path / "urls"
    urls = Dataset.write(root, table, make_provenance({"fixture": "urls"}), images="folder")
    out = tmp_path / "m"
    with pytest.raises(InputError, match=r"are URLs .* run `trigeo data download"):
        train_m1(urls.root, mesh_path, out, _config())
    assert not (out / "checkpoints").exists() and not (out / "model.json").exists()


def test_a_dataset_of_unreadable_images_stops_before_training(world, tmp_path):
    dataset, _, mesh_path = world
    copy = _copy(dataset, tmp_path / "broken")
    for image in copy.table["image"]:
        (copy.root / image).unlink()
    out = tmp_path / "m"
    with pytest.raises(UnreadableImagesError, match=r"(\d+) of \1 sampled images cannot be read"):
        train_m1(copy.root, mesh_path, out, _config())
    assert not (out / "model.json").exists()


def test_sampled_check_tolerates_a_share_below_the_limit(world, tmp_path):
    dataset, _, _ = world
    copy = _copy(dataset, tmp_path / "some")
    images = copy.photos("train")["image"].to_numpy()
    (copy.root / images[0]).write_bytes(b"not a jpeg")
    # Every image sampled: 1 of 96 unreadable is within 5 %, 1 of 10 is not.
    assert check_images_readable(copy, images, samples=1000, max_unreadable=0.05) == 1
    with pytest.raises(UnreadableImagesError, match="1 of 10 sampled"):
        check_images_readable(copy, images[:10], samples=1000, max_unreadable=0.05)


def test_a_run_stops_when_an_epoch_has_too_many_unreadable_images(world, tmp_path):
    dataset, mesh, mesh_path = world
    copy = _copy(dataset, tmp_path / "half")
    train = copy.photos("train")
    for image in train["image"].iloc[::2]:
        (copy.root / image).write_bytes(b"corrupt")
    out = tmp_path / "m"
    # The pre-training sample is switched off, so the epoch-level limit is what stops it.
    with pytest.raises(UnreadableImagesError, match=r"train images in stage 'adagrad-beta1'"):
        train_m1(copy.root, mesh_path, out, _config(image_check_samples=0))
    assert not (out / "model.json").exists()
    # With the limit lifted the same run finishes and reports what it skipped.
    model = train_m1(
        copy.root,
        mesh_path,
        tmp_path / "m2",
        _config(image_check_samples=0, max_unreadable_fraction=1.0),
    )
    kept = mesh.locate(train["lat"].to_numpy(), train["lon"].to_numpy()) >= 0
    broken_and_kept = int(kept[::2].sum())
    assert 0 < model.metrics["skipped_images"] <= broken_and_kept


def _mesh(source):
    return SimpleNamespace(points_source_=source)


def test_mesh_built_with_evaluation_photos_is_refused_unless_allowed(world, tmp_path):
    dataset, _, _ = world
    leaky = _mesh(
        {
            "path": str(dataset.root / "table.parquet"),
            "dataset_sha256": dataset.hash,
            "split": None,
            "splits_used": ["heads", "train", "val"],
        }
    )
    with pytest.raises(InputError, match=r"'heads', 'val' photos .* --allow-eval-in-mesh"):
        check_mesh_source(leaky, tmp_path / "m.npz", dataset, "train")
    note = check_mesh_source(leaky, tmp_path / "m.npz", dataset, "train", allow_eval=True)
    assert "allowed by --allow-eval-in-mesh" in note


def test_mesh_from_train_photos_or_another_dataset_passes(world, tmp_path):
    dataset, _, _ = world
    clean = _mesh({"path": "t", "dataset_sha256": dataset.hash, "split": "train",
                   "splits_used": ["train"]})  # fmt: skip
    assert "'train' photos only" in check_mesh_source(clean, tmp_path, dataset, "train")
    other = _mesh({"path": "mp16.csv", "dataset_sha256": None, "split": None,
                   "splits_used": None})  # fmt: skip
    assert "not this dataset" in check_mesh_source(other, tmp_path, dataset, "train")
    assert "unchecked" in check_mesh_source(_mesh(None), tmp_path, dataset, "train")


def test_pretrained_weights_that_cannot_be_fetched_name_the_weights_option(monkeypatch):
    # The hub reads HF_HUB_OFFLINE when it is imported; set both so the test never waits
    # on DNS retries (this machine has no network either way).
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match=r"--weights PATH"):
        build_net(_config(pretrained=True), 4)


def test_study_sized_backbone_from_random_weights_warns():
    with pytest.warns(TrigeoWarning, match=r"resnet50 \(2\dM parameters\) starts from random"):
        _, _, init = build_net(_config(backbone="resnet50", pretrained=False), 4)
    assert init == "random"


def test_small_backbone_from_random_weights_does_not_warn(recwarn):
    net, report, init = build_net(_config(), 4)
    assert init == "random" and report is None and net.num_classes == 4
    assert not [w for w in recwarn if issubclass(w.category, TrigeoWarning)]


def test_local_weights_win_over_pretrained(tmp_path):
    import timm
    import torch

    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "w.pth")
    _, report, init = build_net(_config(pretrained=True, weights=str(tmp_path / "w.pth")), 4)
    assert init == f"weights:{tmp_path / 'w.pth'}" and report["loaded"] > 0
