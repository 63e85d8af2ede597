"""M3 training: albums from the heads photos, user-level split, one album per user per epoch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from train._world import build_mesh, build_world
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.models import M3Model, load_model_dir
from trigeo.provenance import make_provenance
from trigeo.train.heads_config import load_head_config
from trigeo.train.heads_data import split_rows
from trigeo.train.m2 import train_m2
from trigeo.train.m3 import _one_album_per_user, album_collate, train_m3


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from trigeo.train.config import load_config
    from trigeo.train.m1 import train_m1

    root = tmp_path_factory.mktemp("m3world")
    dataset = build_world(root / "world")
    build_mesh(dataset, root / "mesh.npz")
    train_m1(dataset.root, root / "mesh.npz", root / "m1", load_config("test"))
    train_m2(dataset.root, root / "m1", root / "m2", load_head_config("m2", "test"))
    return dataset, root


def test_m3_trains_on_albums_and_records_its_m2_and_m1(chain, tmp_path):
    dataset, root = chain
    # One heads user made a single-photo user: an album of one, counted.
    table = dataset.table.copy()
    heads = table.index[table["split"] == "heads"]
    table.loc[heads[0], "user_id"] = "solo"
    shutil.copytree(dataset.root / "images", tmp_path / "copy" / "images")
    copy = Dataset.write(tmp_path / "copy", table, make_provenance({}), images="folder")
    notes: list[str] = []
    model = train_m3(
        copy.root, root / "m2", tmp_path / "m3", load_head_config("m3", "test"),
        m1_pred=root / "m2" / "m1-heads.parquet", report=notes.append,
    )  # fmt: skip
    counts = model.metrics["counts"]
    users = table.loc[heads, "user_id"]
    assert counts["users"] == users.nunique() == 17
    assert counts["single_photo_users"] == int((users.value_counts() == 1).sum()) == 2
    assert counts["albums"] == 17  # every user has fewer than 24 heads photos
    # M2's photo-level fit/stop split (same rows, fraction, seed): 8 of 32 photos stop.
    cells = model.mesh.locate(
        table.loc[heads, "lat"].to_numpy(), table.loc[heads, "lon"].to_numpy()
    )
    stop = split_rows(32, 0.25, 0)
    assert counts["stop"] == int((stop & (cells >= 0)).sum())
    assert counts["fit"] == int((~stop & (cells >= 0)).sum())
    assert any("2 with a single photo" in n for n in notes)
    record = json.loads((tmp_path / "m3" / "model.json").read_text())
    m2 = json.loads((root / "m2" / "model.json").read_text())
    assert record["format"] == "trigeo-m3/1" and record["album_size"] == 24
    assert record["m2"]["model_id"] == m2["model_id"] and record["m1"] == m2["m1"]
    assert record["name"] == "M3 mesh" and isinstance(load_model_dir(tmp_path / "m3"), M3Model)


def test_m3_starts_from_its_m2(chain, tmp_path):
    dataset, root = chain
    config = load_head_config("m3", "test", {"train_m2_layers": False})
    model = train_m3(dataset.root, root / "m2", tmp_path / "m3", config)
    m2 = load_model_dir(root / "m2")
    # Frozen M2 layers come out exactly as the M2 trained them (batch norm statistics too).
    for key, value in m2.net.state_dict().items():
        assert np.array_equal(model.net.m2.state_dict()[key].numpy(), value.numpy()), key


def test_an_m2_built_on_another_m1_is_refused(chain, tmp_path):
    dataset, root = chain
    other = tmp_path / "other-m1"
    shutil.copytree(root / "m1", other)
    record = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**record, "model_id": "m1-another"}))
    with pytest.raises(
        InputError, match=r"was built on M1 m1-test_resnet.*not on the given M1 m1-another"
    ):
        train_m3(
            dataset.root, root / "m2", tmp_path / "m3", load_head_config("m3", "test"), m1=other
        )


def test_each_fit_user_gives_one_random_album_per_epoch():
    by_user = [[np.array([0, 1]), np.array([2])], [np.array([3])], [np.array([4]), np.array([5])]]
    draw = _one_album_per_user(by_user)
    epochs = [[a.tolist() for a in draw(np.random.default_rng([0, e]))] for e in range(20)]
    assert all(len(albums) == 3 and albums[1] == [3] for albums in epochs)
    assert {tuple(albums[0]) for albums in epochs} == {(0, 1), (2,)}  # both albums get drawn
    again = [[a.tolist() for a in draw(np.random.default_rng([0, e]))] for e in range(20)]
    assert again == epochs  # seeded: a resumed run draws the same albums


def test_album_batches_pad_labels_with_minus_one():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    collate = album_collate(x, np.array([3, 1, 2, 0]), np.zeros(4), np.ones(4), album_size=3)
    batch = collate([np.array([2, 0]), np.array([1])])
    assert batch["mask"].tolist() == [[True, True, False], [True, False, False]]
    assert batch["y"].tolist() == [[2, 3, -1], [1, -1, -1]]
    assert batch["x"][0, 0].tolist() == [4.0, 5.0] and batch["x"][0, 2].tolist() == [0.0, 0.0]
    assert "w" not in batch
    # Photo weights (a user's album count) ride along for the training loss.
    weighted = album_collate(
        x, np.array([3, 1, 2, 0]), np.zeros(4), np.ones(4), 3, weight=np.array([2.0, 1, 2, 1])
    )([np.array([2, 0]), np.array([1])])
    assert weighted["w"].tolist() == [[2.0, 2.0, 0.0], [1.0, 0.0, 0.0]]
