"""A tiny trained M1 shared by the prediction tests."""

from __future__ import annotations

import pytest
import torch

from train._world import build_mesh, build_world

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    root = tmp_path_factory.mktemp("predict")
    dataset = build_world(root / "world")
    build_mesh(dataset, root / "mesh.npz")
    train_m1(dataset.root, root / "mesh.npz", root / "model", load_config("test"))
    return root / "model", dataset
