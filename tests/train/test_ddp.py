"""DDP on 2 CPU processes: ranks with unreadable batches neither hang nor crash the run.

Before the zero-loss step, a rank returning no loss made Lightning's DDP optimizer step
fail an assertion (a bare backward skip would leave the other rank waiting in all-reduce).

Lightning's DDP launcher re-runs the command line in a child process, so the
runs go through the ``trigeo`` CLI in a subprocess (as a user would start them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trigeo.data.table import Dataset
from trigeo.train.config import config_to_dict, load_config

pytestmark = pytest.mark.slow

TIMEOUT_S = 300  # a hang would run into this; a healthy run takes well under a minute


def _broken_world(world, root: Path) -> Dataset:
    dataset, _, _ = world
    shutil.copytree(dataset.root, root)
    copy = Dataset.open(root)
    # Half the training images corrupt: with one photo per batch, at almost every step
    # one rank holds only an unreadable photo while the other trains.
    for image in copy.photos("train")["image"].iloc[::2]:
        (copy.root / image).write_bytes(b"corrupt")
    for image in copy.photos("heads")["image"].iloc[::2]:
        (copy.root / image).write_bytes(b"corrupt")
    return copy


def _train(data: Path, mesh: Path, out: Path, config: Path) -> subprocess.CompletedProcess:
    cmd = [
        str(Path(sys.executable).parent / "trigeo"), "train", "m1", "--data", str(data),
        "--mesh", str(mesh), "--out", str(out), "--config", str(config),
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=out.parent
    )


# One short balanced stage: 32 photos, 16 steps per rank at batch size 1.
ONE_STAGE = [{"name": "adagrad-beta1", "optimizer": "adagrad", "lr": 0.05, "epochs": 1,
              "sampling": "balanced", "beta": 1.0}]  # fmt: skip


def _config_file(path: Path, **overrides) -> Path:
    config = load_config("test", {"stages": ONE_STAGE, **overrides})
    path.write_text(yaml.safe_dump(config_to_dict(config)))
    return path


def test_rank_with_an_unreadable_batch_neither_hangs_nor_crashes_the_run(world, tmp_path):
    _, _, mesh_path = world
    data = _broken_world(world, tmp_path / "world")
    config = _config_file(
        tmp_path / "c.yaml",
        batch_size=1,
        eval_batch_size=1,
        max_unreadable_fraction=1.0,
        image_check_samples=0,
        max_epochs=1,
    )
    done = _train(data.root, mesh_path, tmp_path / "model", config)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["skipped_images"] > 0
    # Validation gathered both ranks' photos: acc and median exist and are finite.
    assert 0 <= metrics["final"]["val/acc"] <= 100
    assert metrics["final"]["val/median_km"] >= 0
    # One console line per stage event, from rank 0 (each rank used to print its own).
    lines = done.stderr.splitlines()
    assert sum("stage 0 adagrad-beta1: adagrad" in line for line in lines) == 1, done.stderr
    assert sum("stage 0 adagrad-beta1: " in line and " s, " in line for line in lines) == 1


def test_too_many_unreadable_images_stop_every_rank_with_one_error(world, tmp_path):
    _, _, mesh_path = world
    data = _broken_world(world, tmp_path / "world")
    config = _config_file(
        tmp_path / "c.yaml", batch_size=1, eval_batch_size=1, image_check_samples=0, max_epochs=1
    )
    done = _train(data.root, mesh_path, tmp_path / "model", config)
    assert done.returncode == 2, done.stderr[-3000:]
    stderr = " ".join(done.stderr.split())  # rich wraps long lines
    assert "could not be read (limit max_unreadable_fraction=0.05)" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "model" / "model.json").exists()
