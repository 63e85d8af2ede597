"""Round trip with no conversion: MP-16-style shards -> train m1 -> predict on an
Im2GPS3k-style test set -> evaluate, every step through the CLI a user types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.data._standard_sets import S2_HEADER, s2_row, write_csv, write_msgpack_shard
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.data.table import Dataset

torch = pytest.importorskip("torch")
runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_mp16_shards_to_im2gps3k_evaluation(tmp_path: Path) -> None:
    from train._world import CITIES, build_mesh, jpeg_bytes

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    # Training set: MP-16 layout, records spread over two shards.
    records, rows = [], []
    for c, (lat, lon, rgb) in enumerate(CITIES):
        for i in range(40):
            img_id = f"{c:02x}/{i:02x}/{1000000 + 100 * c + i}.jpg"
            records.append({"image": jpeg_bytes(rgb, rng), "id": img_id})
            la, lo = lat + rng.normal(0, 0.3), lon + rng.normal(0, 0.3)
            rows.append(s2_row(img_id, f"{c}@N0{i % 4}", round(la, 6), round(lo, 6), 0.2))
    order = rng.permutation(len(records))
    shards = tmp_path / "mp16"
    write_msgpack_shard(shards / "shard_0.msg", [records[i] for i in order[:80]])
    write_msgpack_shard(shards / "shard_1.msg", [records[i] for i in order[80:]])
    write_csv(tmp_path / "mp16_places365.csv", S2_HEADER, rows)
    # Test set: Im2GPS3k layout, a folder of images named by IMG_ID.
    test_images = tmp_path / "im2gps3ktest"
    test_images.mkdir()
    test_rows = []
    for c, (lat, lon, rgb) in enumerate(CITIES):
        for i in range(3):
            name = f"{2000 + 10 * c + i}_abcdef_{c}_{i}@N00.jpg"
            (test_images / name).write_bytes(jpeg_bytes(rgb, rng))
            test_rows.append(s2_row(name, f"{i}@N00", lat, lon, 0.7))
    write_csv(tmp_path / "im2gps3k_places365.csv", S2_HEADER, test_rows)

    train = tmp_path / "mp16-ds"
    output = _invoke(
        "data", "csv", tmp_path / "mp16_places365.csv", "--format", "mp16",
        "--images", shards, "--out", train,
    )  # fmt: skip
    assert "id <- IMG_ID (format)" in output
    dataset = Dataset.open(train)
    assert dataset.table["image"].str.startswith("images/shard_").all()
    build_mesh(dataset, tmp_path / "mesh.npz")
    _invoke(
        "train", "m1", "--data", train, "--mesh", tmp_path / "mesh.npz",
        "--out", tmp_path / "model", "--config", "test", "--no-progress",
    )  # fmt: skip

    test = tmp_path / "im2gps3k-ds"
    _invoke(
        "data", "csv", tmp_path / "im2gps3k_places365.csv", "--format", "im2gps3k",
        "--images", test_images, "--assign-split", "test", "--out", test,
    )  # fmt: skip
    pred = tmp_path / "pred.parquet"
    _invoke(
        "predict", "--model", tmp_path / "model", "--data", test, "--split", "test",
        "--out", pred, "--workers", "0", "--no-progress",
    )  # fmt: skip
    report = tmp_path / "report"
    _invoke(
        "evaluate", "--data", test, "--split", "test", "--pred", pred,
        "--bootstrap", "50", "--out", report,
    )  # fmt: skip
    metrics = json.loads((report / "metrics.json").read_text())
    m1 = metrics["models"][0]
    assert m1["photos_missing"] == 0
    # Four far-apart colour-coded cities: the model trained from the shards finds them.
    assert m1["accuracy_pct"]["2500km"] >= 75.0
    # Im2GPS3k's Prob_indoor became `outdoor`, so outdoor-only evaluation works at once.
    assert np.allclose(Dataset.open(test).table["outdoor"], 0.3)
