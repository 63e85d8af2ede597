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
    # One corrupt training photo (in a kept cell): training must skip and report it.
    train = dataset.photos("train")
    kept = mesh.locate(train["lat"].to_numpy(), train["lon"].to_numpy()) >= 0
    (dataset.root / train["image"][kept].iloc[0]).write_bytes(b"\xff\xd8 broken")
    return dataset, mesh, root / "mesh.npz"


@pytest.fixture(scope="session")
def corrupt_photo_id(world):
    dataset, mesh, _ = world
    train = dataset.photos("train")
    kept = mesh.locate(train["lat"].to_numpy(), train["lon"].to_numpy()) >= 0
    return train["photo_id"][kept].iloc[0]
