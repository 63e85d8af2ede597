"""M2 training: data checks (overlap, M1 predictions, times), the run, resume, ablation, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from train._world import build_mesh, build_world
from trigeo.cli import app
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.models import M2Model, load_model_dir, m2_inputs
from trigeo.predictions import read_predictions, write_predictions
from trigeo.provenance import make_provenance
from trigeo.train.heads_config import load_head_config
from trigeo.train.heads_data import split_rows
from trigeo.train.m2 import default_head_name, shuffled_times, train_m2


@pytest.fixture(scope="module")
def m1_world(tmp_path_factory):
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    root = tmp_path_factory.mktemp("m2world")
    dataset = build_world(root / "world")
    build_mesh(dataset, root / "mesh.npz")
    train_m1(dataset.root, root / "mesh.npz", root / "m1", load_config("test"))
    return dataset, root / "m1"


@pytest.fixture(scope="module")
def trained(m1_world, tmp_path_factory):
    dataset, m1 = m1_world
    out = tmp_path_factory.mktemp("m2") / "m2"
    notes: list[str] = []
    model = train_m2(dataset.root, m1, out, load_head_config("m2", "test"), report=notes.append)
    return model, out, notes


def test_training_writes_an_m2_directory_built_on_its_m1(m1_world, trained):
    dataset, m1 = m1_world
    model, out, notes = trained
    m1_meta = json.loads((m1 / "model.json").read_text())
    record = json.loads((out / "model.json").read_text())
    assert record["format"] == "trigeo-m2/1" and record["name"] == "M2 mesh"
    assert record["m1"]["model_id"] == m1_meta["model_id"]
    assert record["m1"]["weights_sha256"] == m1_meta["weights_sha256"]
    assert record["mesh_hash"] == m1_meta["mesh_hash"] and record["label_kind"] == "imagery"
    assert record["config"]["shuffle_time"] is False
    # The M1 predictions for the heads photos were made by the command (M1 never trains M2).
    pred = read_predictions(out / "m1-heads.parquet")
    heads = dataset.photos("heads")
    assert (
        sorted(pred.photo_id) == sorted(heads["photo_id"])
        and pred.model_id == record["m1"]["model_id"]
    )
    assert any("running M1" in n for n in notes) and any("32 'heads'" in n for n in notes)
    # Counts: 32 heads photos, those in dropped cells out of fit/stop, the rest split 75/25.
    mesh = model.mesh
    cells = mesh.locate(heads["lat"].to_numpy(), heads["lon"].to_numpy())
    counts = record["metrics"]["counts"]
    assert counts["split_photos"] == 32 and counts["used"] == 32
    assert counts["excluded_no_posting_time"] == 0 and counts["excluded_no_m1_prediction"] == 0
    assert counts["in_dropped_cells"] == int((cells < 0).sum())
    stop = split_rows(32, 0.25, 0)
    assert stop.sum() == 8
    assert counts["fit"] + counts["stop"] == int((cells >= 0).sum())
    assert isinstance(load_model_dir(out), M2Model)


def test_overlap_with_m1_training_photos_is_refused(m1_world, tmp_path):
    dataset, m1 = m1_world
    # Training M2 on M1's own train split: every photo overlaps.
    config = load_head_config("m2", "test", {"train_split": "train"})
    with pytest.raises(InputError, match=r"96 of 96 'train' photos also trained the M1"):
        train_m2(dataset.root, m1, tmp_path / "a", config)
    # A copy of the dataset where 3 of M1's training photos were moved to heads: found through
    # the M1's provenance (its dataset's path and hash), refused, then allowed and recorded.
    table = dataset.table.copy()
    moved = table.index[table["split"] == "train"][:3]
    table.loc[moved, "split"] = "heads"
    shutil.copytree(dataset.root / "images", tmp_path / "copy" / "images")
    Dataset.write(tmp_path / "copy", table, make_provenance({}), images="folder")
    with pytest.raises(InputError, match=r"3 of 35 'heads' photos also trained the M1"):
        train_m2(tmp_path / "copy", m1, tmp_path / "b", load_head_config("m2", "test"))
    model = train_m2(
        tmp_path / "copy", m1, tmp_path / "b", load_head_config("m2", "test"), allow_overlap=True
    )
    assert model.metrics["counts"]["overlap_with_m1_training"] == 3
    assert json.loads((tmp_path / "b" / "model.json").read_text())["provenance"]["allow_overlap"]


def _copy_predictions(source, path, **changes):
    pred = read_predictions(source)
    write_predictions(
        path,
        changes.get("photo_id", pred.photo_id),
        pred.lat[: len(changes.get("photo_id", pred.photo_id))],
        pred.lon[: len(changes.get("photo_id", pred.photo_id))],
        top_cells=pred.top_cells[: len(changes.get("photo_id", pred.photo_id))],
        top_probs=pred.top_probs[: len(changes.get("photo_id", pred.photo_id))],
        model_id=changes.get("model_id", pred.model_id),
        mesh_hash=changes.get("mesh_hash", pred.mesh_hash),
    )
    return path


def test_predictions_of_another_mesh_or_m1_are_refused(m1_world, trained, tmp_path):
    dataset, m1 = m1_world
    source = trained[1] / "m1-heads.parquet"
    config = load_head_config("m2", "test")
    bad_mesh = _copy_predictions(source, tmp_path / "mesh.parquet", mesh_hash="f" * 64)
    with pytest.raises(InputError, match=r"'mesh_hash': predictions were made on mesh f{64}"):
        train_m2(dataset.root, m1, tmp_path / "a", config, m1_pred=bad_mesh)
    bad_model = _copy_predictions(source, tmp_path / "model.parquet", model_id="m1-other")
    with pytest.raises(InputError, match="made by m1-other, not by the given M1"):
        train_m2(dataset.root, m1, tmp_path / "b", config, m1_pred=bad_model)


def test_photos_without_time_or_m1_prediction_are_excluded_and_counted(m1_world, trained, tmp_path):
    dataset, m1 = m1_world
    table = dataset.table.copy()
    heads = table.index[table["split"] == "heads"]
    table["time_source"] = "exif-offset"
    table.loc[heads[:2], "time_source"] = "file-mtime"  # a folder import's mtime fallback
    shutil.copytree(dataset.root / "images", tmp_path / "copy" / "images")
    copy = Dataset.write(tmp_path / "copy", table, make_provenance({}), images="folder")
    # M1's predictions miss 5 other heads photos (unreadable images, say).
    pred = read_predictions(trained[1] / "m1-heads.parquet")
    absent = set(table.loc[heads[2:7], "photo_id"])
    kept = np.array([p not in absent for p in pred.photo_id])
    path = tmp_path / "m1.parquet"
    write_predictions(
        path,
        pred.photo_id[kept],
        pred.lat[kept],
        pred.lon[kept],
        top_cells=pred.top_cells[kept],
        top_probs=pred.top_probs[kept],
        model_id=pred.model_id,
        mesh_hash=pred.mesh_hash,
    )
    model = train_m2(copy.root, m1, tmp_path / "m2", load_head_config("m2", "test"), m1_pred=path)
    counts = model.metrics["counts"]
    assert counts["excluded_no_posting_time"] == 2 and counts["excluded_no_m1_prediction"] == 5
    assert counts["used"] == 32 - 7


def test_same_seed_same_weights_and_resume(m1_world, trained, tmp_path):
    dataset, m1 = m1_world
    model, out, _ = trained
    config = load_head_config("m2", "test")
    pred = out / "m1-heads.parquet"
    again = train_m2(dataset.root, m1, tmp_path / "again", config, m1_pred=pred)
    assert again.model_id == model.model_id
    with pytest.raises(InputError, match="already holds a training run"):
        train_m2(dataset.root, m1, tmp_path / "again", config, m1_pred=pred)
    notes: list[str] = []
    resumed = train_m2(
        dataset.root, m1, tmp_path / "again", config, m1_pred=pred, resume=True,
        report=notes.append,
    )  # fmt: skip
    assert resumed.model_id == model.model_id
    assert sum("already finished" in n for n in notes) == 2
    shuffled = load_head_config("m2", "test", {"shuffle_time": True})
    with pytest.raises(InputError, match="shuffle_time"):
        train_m2(dataset.root, m1, tmp_path / "again", shuffled, m1_pred=pred, resume=True)


def test_shuffle_time_ablation_is_recorded_and_permutes_times(m1_world, trained, tmp_path):
    dataset, m1 = m1_world
    times = pd.Series(pd.to_datetime(["2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01"]))
    shuffled = shuffled_times(times, 0)
    assert sorted(shuffled) == sorted(times.to_numpy()) and list(shuffled) != list(times)
    config = load_head_config("m2", "test", {"shuffle_time": True})
    model = train_m2(
        dataset.root, m1, tmp_path / "s", config, m1_pred=trained[1] / "m1-heads.parquet"
    )
    record = json.loads((tmp_path / "s" / "model.json").read_text())
    assert record["config"]["shuffle_time"] is True and record["provenance"]["shuffle_time"]
    assert model.name == "M2 mesh shuffled-time" == default_head_name("M1 mesh", "m2", True)
    assert model.model_id != trained[0].model_id


def test_inputs_match_the_shared_builder(m1_world, trained):
    # What M2 trains on is m2_inputs of M1's file and the dataset's times (no second copy).
    dataset, _ = m1_world
    pred = read_predictions(trained[1] / "m1-heads.parquet")
    heads = dataset.photos("heads").set_index("photo_id").loc[pred.photo_id]
    x = m2_inputs(pred.top_cells, pred.top_probs, trained[0].num_classes, heads["posted_at"])
    assert x.shape == (32, trained[0].num_classes + 4)
    np.testing.assert_allclose(x[:, :-4].sum(1), 1.0, rtol=1e-5)


def test_config_presets_and_unknown_keys(tmp_path):
    study = load_head_config("m2", "study")
    assert (study.width, study.depth, study.dropout) == (1626, 3, 0.5)
    assert [(s.lr) for s in study.stages] == [0.005, 0.001]
    bad = tmp_path / "c.yaml"
    bad.write_text("widht: 10\n")
    with pytest.raises(InputError, match="did you mean 'width'"):
        load_head_config("m2", bad)


def test_cli_trains_m2(m1_world, trained, tmp_path):
    dataset, m1 = m1_world
    result = CliRunner().invoke(
        app,
        ["train", "m2", "--data", str(dataset.root), "--m1", str(m1), "--out",
         str(tmp_path / "m2"), "--config", "test", "--m1-pred",
         str(trained[1] / "m1-heads.parquet"), "--name", "M2 cli"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done M2 cli" in result.output and "stage 1 adam-0.001" in result.output
    assert "GPU available" not in result.output  # Lightning's banners went to the log
    assert "GPU available" in (tmp_path / "m2" / "logs" / "train.log").read_text()


def test_the_head_trainer_gets_nodes_and_strategy_from_the_command_line(
    m1_world, trained, tmp_path, monkeypatch
):
    # The heads used to build their own Trainer, without num_nodes or strategy.
    import trigeo.runtime.trainer as trainer_module

    seen: dict = {}

    class StopError(Exception):
        pass

    def recording(**kwargs):
        seen.update(kwargs)
        raise StopError

    monkeypatch.setattr(trainer_module, "make_trainer", recording)
    dataset, m1 = m1_world
    result = CliRunner().invoke(
        app,
        ["train", "m2", "--data", str(dataset.root), "--m1", str(m1), "--out",
         str(tmp_path / "m2"), "--config", "test", "--m1-pred",
         str(trained[1] / "m1-heads.parquet"), "--num-nodes", "3", "--strategy", "ddp_spawn",
         "--accelerator", "cpu", "--devices", "2"],
    )  # fmt: skip
    assert isinstance(result.exception, StopError), result.output
    assert seen["num_nodes"] == 3 and seen["strategy"] == "ddp_spawn"
    assert seen["accelerator"] == "cpu" and seen["devices"] == 2
