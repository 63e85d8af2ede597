"""Batched prediction into predictions files, calibration and the predict CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.data.table import Dataset
from trigeo.errors import InputError, UnreadableImagesError
from trigeo.models import M1Model
from trigeo.predict.m1 import nearest_place, predict_m1
from trigeo.predictions import read_predictions
from trigeo.runtime.options import InferenceOptions
from trigeo.sphere import distance_km
from trigeo.train.calibrate import calibrate_m1


def _quiet(**kw):
    return {"options": InferenceOptions(num_workers=0, batch_size=16, progress=False, **kw)}


def test_split_predictions_hold_top_k_and_label_points(model_dir, tmp_path):
    path, dataset = model_dir
    model = M1Model.load(path)
    result = predict_m1(path, tmp_path / "p.parquet", data=dataset.root, top_k=3, **_quiet())
    pred = read_predictions(tmp_path / "p.parquet")
    val = dataset.photos("val")
    assert sorted(pred.photo_id) == sorted(val["photo_id"])
    assert pred.top_cells.shape == (len(val), 3) and pred.model_id == model.model_id
    assert pred.mesh_hash == model.mesh_hash
    assert np.all(np.diff(pred.top_probs, axis=1) <= 0) and np.all(pred.top_probs.sum(1) <= 1.0001)
    lat, lon = model.label_points()
    np.testing.assert_allclose(pred.lat, lat[pred.top_cells[:, 0]])
    np.testing.assert_allclose(pred.lon, lon[pred.top_cells[:, 0]])
    assert pred.meta["config"]["label_kind"] == "imagery"
    # Colour-coded cities: nearly every val photo lands near its city.
    truth = val.set_index("photo_id").loc[pred.photo_id]
    error = distance_km(truth["lat"].to_numpy(), truth["lon"].to_numpy(), pred.lat, pred.lon)
    assert np.mean(error < 2500) >= 0.75
    assert result is not None and len(result.skipped) == 0


def test_full_probabilities_and_five_crops(model_dir, tmp_path):
    path, dataset = model_dir
    predict_m1(path, tmp_path / "a.parquet", data=dataset.root, full_probs=True, **_quiet())
    plain = read_predictions(tmp_path / "a.parquet")
    n_cells = M1Model.load(path).net.num_classes
    assert plain.full_probs.shape == (len(plain), n_cells)
    np.testing.assert_allclose(plain.full_probs.sum(1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(plain.full_probs.max(1), plain.top_probs[:, 0], rtol=1e-5)
    predict_m1(path, tmp_path / "b.parquet", data=dataset.root, five_crop=True, **_quiet())
    five = read_predictions(tmp_path / "b.parquet")
    assert len(five) == len(plain) and not np.allclose(five.top_probs, plain.top_probs)


def test_unreadable_images_are_reported_and_skipped(model_dir, tmp_path):
    path, dataset = model_dir
    root = tmp_path / "copy"
    shutil.copytree(dataset.root, root)
    val = Dataset.open(root).photos("val")
    (root / val["image"].iloc[0]).write_bytes(b"garbage")
    (root / val["image"].iloc[1]).unlink()
    n = len(val)
    # 2 of n unreadable: over the default 5% limit, the run stops and writes nothing ...
    with pytest.raises(UnreadableImagesError, match=rf"2 of {n} images could not be read"):
        predict_m1(path, tmp_path / "p.parquet", data=root, **_quiet())
    assert not (tmp_path / "p.parquet").exists()
    # ... and within a looser limit they are skipped and reported.
    notes: list[str] = []
    result = predict_m1(
        path, tmp_path / "p.parquet", data=root, report=notes.append, **_quiet(max_unreadable=0.1)
    )
    assert set(result.skipped) == set(val["photo_id"].iloc[:2])
    assert len(read_predictions(tmp_path / "p.parquet")) == n - 2
    assert any(f"2 of {n}" in note for note in notes)


def test_image_files_and_bad_requests(model_dir, tmp_path):
    path, dataset = model_dir
    images = [dataset.root / p for p in dataset.photos("val")["image"].iloc[:3]]
    result = predict_m1(path, tmp_path / "p.parquet", images=images, top_k=2, **_quiet())
    assert list(result.photo_id) == [str(p) for p in images]
    with pytest.raises(InputError, match="either"):
        predict_m1(path, tmp_path / "x.parquet", **_quiet())
    with pytest.raises(UnreadableImagesError, match="1 of 1 images could not be read"):
        predict_m1(path, tmp_path / "x.parquet", images=[tmp_path / "none.jpg"], **_quiet())
    with pytest.raises(InputError, match="empty"):
        predict_m1(path, tmp_path / "x.parquet", data=dataset.root, split="winter", **_quiet())


def test_nearest_place_names_a_city():
    assert nearest_place(48.857, 2.352).startswith("Paris, FR")


def test_calibration_stores_a_temperature_used_by_predict(model_dir, tmp_path):
    path, dataset = model_dir
    model = tmp_path / "model"
    shutil.copytree(path, model)
    before = predict_m1(model, tmp_path / "a.parquet", data=dataset.root, **_quiet())
    temperature = calibrate_m1(
        model, dataset.root, split="heads", options=InferenceOptions(num_workers=0, progress=False)
    )
    assert temperature > 0 and M1Model.load(model).temperature == pytest.approx(temperature)
    after = predict_m1(model, tmp_path / "b.parquet", data=dataset.root, **_quiet())
    np.testing.assert_array_equal(after.top_cells[:, 0], before.top_cells[:, 0])
    assert not np.allclose(after.top_probs, before.top_probs)
    with pytest.raises(InputError, match="training split"):
        calibrate_m1(model, dataset.root, split="train")


def test_cli_train_and_predict(model_dir, tmp_path):
    path, dataset = model_dir
    runner = CliRunner()
    image = str(dataset.root / dataset.photos("val")["image"].iloc[0])
    result = runner.invoke(
        app,
        [
            "predict",
            image,
            "--model",
            str(path),
            "--out",
            str(tmp_path / "p.parquet"),
            "--workers",
            "0",
            "--no-progress",
            "--show",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nearest city" in result.output and "probability" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            "m1",
            "--data",
            str(dataset.root),
            "--mesh",
            str(path / "mesh.npz"),
            "--out",
            str(tmp_path / "m"),
            "--config",
            "test",
            "--backbone",
            "resnet10",
        ],
    )
    assert result.exit_code == 2
    assert "resnet10t" in result.output and not (tmp_path / "m").exists()


def test_output_folder_is_created(model_dir, tmp_path):
    path, dataset = model_dir
    out = tmp_path / "new" / "folder" / "p.parquet"
    predict_m1(path, out, data=dataset.root, top_k=2, **_quiet())
    assert len(read_predictions(out)) == len(dataset.photos("val"))
    assert not list(out.parent.glob(".trigeo-predict-*"))


def test_cli_split_all_and_display_name(model_dir, tmp_path):
    # --split all works in predict as in evaluate; --name lands in the file.
    path, dataset = model_dir
    out = tmp_path / "all.parquet"
    result = CliRunner().invoke(
        app,
        ["predict", "--model", str(path), "--data", str(dataset.root), "--split", "all",
         "--out", str(out), "--workers", "0", "--no-progress", "--name", "M1 tiny"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pred = read_predictions(out)
    assert sorted(pred.photo_id) == sorted(dataset.table["photo_id"])
    assert pred.model_name == "M1 tiny"
    # Lightning's banners went to the file beside the predictions, not the console.
    assert "GPU available" not in result.output
    assert "GPU available" in out.with_suffix(".log").read_text()
    default = predict_m1(path, tmp_path / "d.parquet", data=dataset.root, **_quiet())
    assert read_predictions(tmp_path / "d.parquet").model_name == default.model_name
    assert default.model_name == M1Model.load(path).name == "M1 mesh"


def test_predict_sets_cpu_threads_like_training(model_dir, tmp_path):
    import os

    import torch

    path, dataset = model_dir
    before = torch.get_num_threads()
    try:
        predict_m1(path, tmp_path / "a.parquet", data=dataset.root, **_quiet(cpu_threads=1))
        assert torch.get_num_threads() == 1
        predict_m1(path, tmp_path / "b.parquet", data=dataset.root, **_quiet())
        # num_workers=0: every core computes.
        assert torch.get_num_threads() == max(1, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
