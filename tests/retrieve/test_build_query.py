"""Index build, kNN prediction and the CLI on a tiny trained M1 and its world."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from retrieve.conftest import photo_with_gps
from retrieve.test_knn import reference_knn
from trigeo.cli import app
from trigeo.errors import ArtifactError
from trigeo.models import M1Model
from trigeo.predictions import read_predictions
from trigeo.retrieve.embed import forward_images
from trigeo.retrieve.index import RetrievalIndex
from trigeo.retrieve.knn import predict_knn
from trigeo.runtime.options import InferenceOptions
from trigeo.sphere import distance_km


def _descriptors(model, dataset, rows):
    """Descriptors computed in memory, one photo at a time (not through the index's path)."""
    from trigeo.data.loading import build_transform

    transform = build_transform(model.data_config, train=False)
    model.net.eval()
    out = []
    for image in rows["image"]:
        with Image.open(dataset.root / image) as img:
            batch = transform(img.convert("RGB")).unsqueeze(0)
        out.append(forward_images(model.net, batch)[0][0])
    return np.stack(out)


def _quiet():
    return {
        "options": InferenceOptions(num_workers=0, batch_size=16, progress=False, accelerator="cpu")
    }


def test_index_holds_the_training_photos_descriptors(world_model):
    model_dir, dataset, index_dir = world_model
    model = M1Model.load(model_dir)
    index = RetrievalIndex.load(index_dir)
    train = dataset.photos("train")
    assert len(index) == len(train) and index.kind == "flat"
    assert index.meta["model_id"] == model.model_id
    assert index.meta["dataset_sha256"] == dataset.hash and index.meta["split"] == "train"
    assert list(index.photos["photo_id"]) == list(train["photo_id"])
    stored = index.index.reconstruct_n(0, len(index))
    np.testing.assert_allclose(stored, _descriptors(model, dataset, train), rtol=1e-4, atol=1e-4)


def test_knn_predictions_equal_brute_force_numpy_and_locate_the_cities(world_model, tmp_path):
    model_dir, dataset, index_dir = world_model
    model = M1Model.load(model_dir)
    index = RetrievalIndex.load(index_dir)
    result = predict_knn(
        model_dir, index_dir, tmp_path / "knn.parquet", data=dataset.root, k=5, **_quiet()
    )
    pred = read_predictions(tmp_path / "knn.parquet")
    val = dataset.photos("val")
    assert list(pred.photo_id) == list(val["photo_id"]) and not pred.has_cells
    assert pred.model_id == f"knn5-{model.model_id}" and pred.meta["location_label"] == "knn"
    # Brute force: every query against every stored descriptor, in float64 numpy.
    x = index.index.reconstruct_n(0, len(index)).astype(np.float64)
    q = _descriptors(model, dataset, val).astype(np.float64)
    d2 = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :5]
    lat = index.photos["lat"].to_numpy()[order]
    lon = index.photos["lon"].to_numpy()[order]
    want = reference_knn(lat, lon, np.sqrt(np.take_along_axis(d2, order, axis=1)), 100.0)
    # faiss computes |x|² + |q|² - 2 q·x in float32 (its BLAS path for query batches), so the
    # inverse-distance weights differ from float64 in the 4th digit: the same neighbours, and
    # estimates within a few hundred metres inside clusters tens of km wide.
    _, rows = index.search(q.astype(np.float32), 5)
    assert np.mean([set(a) == set(b) for a, b in zip(rows, order, strict=True)]) >= 0.95
    gap = distance_km(pred.lat, pred.lon, want[:, 0], want[:, 1])
    assert gap.max() < 0.5 and np.median(gap) < 0.05
    error = distance_km(val["lat"].to_numpy(), val["lon"].to_numpy(), pred.lat, pred.lon)
    assert np.mean(error < 2500) >= 0.75
    assert result is not None and result.cluster_size.min() >= 1


def test_a_photo_of_the_indexed_split_is_never_its_own_neighbour(world_model, tmp_path):
    model_dir, dataset, index_dir = world_model
    predict_knn(
        model_dir,
        index_dir,
        tmp_path / "t.parquet",
        data=dataset.root,
        split="train",
        k=1,
        **_quiet(),
    )
    pred = read_predictions(tmp_path / "t.parquet")
    truth = dataset.photos("train").set_index("photo_id").loc[pred.photo_id]
    error = distance_km(truth["lat"].to_numpy(), truth["lon"].to_numpy(), pred.lat, pred.lon)
    assert error.min() > 0.01  # k=1 with itself included would give 0 km everywhere


def test_an_index_refuses_another_models_queries(world_model, tmp_path):
    model_dir, dataset, index_dir = world_model
    other = M1Model.load(model_dir)
    with torch.no_grad():
        other.net.head.bias.add_(0.5)
    other.save(tmp_path / "other", model_dir / other.config.get("mesh_file", "mesh.npz"))
    with pytest.raises(ArtifactError, match="descriptors of different models"):
        predict_knn(tmp_path / "other", index_dir, tmp_path / "x.parquet", data=dataset.root)


def test_cli_builds_queries_with_exif_truth_writes_a_sheet_and_predicts(world_model, tmp_path):
    model_dir, dataset, _ = world_model
    runner = CliRunner()
    built = runner.invoke(
        app,
        [
            "index",
            "build",
            "--model",
            str(model_dir),
            "--data",
            str(dataset.root),
            "--out",
            str(tmp_path / "idx"),
            "--workers",
            "0",
            "--no-progress",
            "--accelerator",
            "cpu",
        ],
    )
    assert built.exit_code == 0, built.output
    info = runner.invoke(app, ["index", "info", "--index", str(tmp_path / "idx")])
    assert "photos: 96" in info.output and "split: train" in info.output
    as_json = runner.invoke(app, ["index", "info", "--index", str(tmp_path / "idx"), "--json"])
    summary = json.loads(as_json.output)
    assert summary["photos"] == 96 and summary["split"] == "train"
    query = tmp_path / "tokyo.jpg"
    query.write_bytes(photo_with_gps((40, 40, 220), 35.68, 139.7))
    out = runner.invoke(
        app,
        [
            "retrieve",
            "query",
            "--index",
            str(tmp_path / "idx"),
            str(query),
            "-k",
            "3",
            "--out",
            str(tmp_path / "sheet.html"),
            "--accelerator",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "true location 35.6800, 139.7000 (EXIF)" in out.output
    rows = [line for line in out.output.splitlines() if " p2-" in line]
    assert len(rows) == 3  # the three nearest are Tokyo (blue) photos
    sheet = (tmp_path / "sheet.html").read_text()
    assert sheet.count("data:image/jpeg;base64,") == 4 and "km from truth" in sheet
    pred = runner.invoke(
        app,
        [
            "retrieve",
            "predict",
            "--index",
            str(tmp_path / "idx"),
            "--data",
            str(dataset.root),
            "--out",
            str(tmp_path / "knn.parquet"),
            "--workers",
            "0",
            "--no-progress",
            "--accelerator",
            "cpu",
        ],
    )
    assert pred.exit_code == 0, pred.output
    # `trigeo predict --model M1 --answer knn --index INDEX` is the same predictor.
    via_predict = runner.invoke(
        app,
        ["predict", "--model", str(model_dir), "--answer", "knn", "--index", str(tmp_path / "idx"),
         "--data",
         str(dataset.root), "--out", str(tmp_path / "knn2.parquet"), "--workers", "0",
         "--no-progress", "--accelerator", "cpu"],
    )  # fmt: skip
    assert via_predict.exit_code == 0, via_predict.output
    from trigeo.predictions import read_predictions

    a, b = read_predictions(tmp_path / "knn.parquet"), read_predictions(tmp_path / "knn2.parquet")
    assert list(a.photo_id) == list(b.photo_id) and a.model_name == b.model_name
    np.testing.assert_allclose(a.lat, b.lat)
    np.testing.assert_allclose(a.lon, b.lon)
    report = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(dataset.root),
            "--out",
            str(tmp_path / "report"),
            "--pred",
            str(tmp_path / "knn.parquet"),
            "--split",
            "val",
        ],
    )
    assert report.exit_code == 0, report.output
    assert "kNN-10" in (tmp_path / "report" / "report.md").read_text()
