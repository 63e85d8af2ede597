"""M2 under DDP on 2 CPU processes, started through the CLI as a user would.

Lightning's DDP launcher re-runs the command line in each further rank, after rank 0
has started the run; those ranks must not find "a run already here" and stop. And a
stop set smaller than the number of processes must fail once, clearly, before any
process starts (Lightning would stop the empty rank with a traceback on every rank).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trigeo.train.config import load_config
from trigeo.train.heads_config import head_config_to_dict, load_head_config
from trigeo.train.m1 import train_m1

pytestmark = pytest.mark.slow

TIMEOUT_S = 300  # a hang runs into this; a healthy run takes well under a minute


@pytest.fixture(scope="module")
def m1(world, tmp_path_factory):
    dataset, _, mesh_path = world
    out = tmp_path_factory.mktemp("ddp-heads") / "m1"
    train_m1(dataset.root, mesh_path, out, load_config("test"))
    return out


def _train_m2(data: Path, m1: Path, out: Path, stop_fraction: float):
    config = load_head_config("m2", "test", {"stop_fraction": stop_fraction, "progress": False})
    config_path = out.parent / f"{out.name}.yaml"
    config_path.write_text(yaml.safe_dump(head_config_to_dict(config)))
    cmd = [
        str(Path(sys.executable).parent / "trigeo"), "train", "m2", "--data", str(data),
        "--m1", str(m1), "--out", str(out), "--config", str(config_path),
        "--accelerator", "cpu", "--devices", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=out.parent
    )


def test_m2_trains_on_two_processes(world, m1, tmp_path):
    dataset, _, _ = world
    done = _train_m2(dataset.root, m1, tmp_path / "m2", 0.25)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "m2" / "metrics.json").read_text())
    stop = metrics["counts"]["stop"]
    assert stop >= 2
    # Validation scored the stop photos of both ranks: the accuracy is a whole number of them.
    hits = metrics["best_val_acc"] * stop / 100
    assert 0 <= hits <= stop and hits == pytest.approx(round(hits))


def test_fewer_stop_photos_than_processes_fails_once_and_clearly(world, m1, tmp_path):
    dataset, _, _ = world
    done = _train_m2(dataset.root, m1, tmp_path / "m2", 0.01)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "1 early-stopping items (stop_fraction=0.01) for 2 processes" in done.stderr
    assert "Traceback" not in done.stderr and "[rank1]" not in done.stderr
