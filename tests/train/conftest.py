"""Shared fixtures for M1 training tests: a tiny world and its mesh."""

from __future__ import annotations

import pytest
import torch

from train._world import build_mesh, build_world

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("m1world")
    dataset = build_world(root / "world")
    mesh = build_mesh(dataset, root / "mesh.npz")
    return dataset, mesh, root / "mesh.npz"
