"""M3 training: albums from the heads photos, M2's fit/stop split, album sampling, early
stopping on the stop photos' loss, the --shuffle-albums ablation, and a synthetic world of
albums on which M3 must beat M2."""

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
from trigeo.train.m3 import (
    _all_albums,
    _one_album_per_user,
    album_collate,
    shuffled_users,
    train_m3,
)


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
    assert record["format"] == "trigeo-m3/2" and record["album_size"] == 24
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


def test_early_stopping_criterion_is_recorded(chain, tmp_path):
    dataset, root = chain
    model = train_m3(dataset.root, root / "m2", tmp_path / "m3", load_head_config("m3", "test"))
    metrics = json.loads((tmp_path / "m3" / "metrics.json").read_text())
    assert metrics["early_stopping"]["criterion"] == "loss"
    assert metrics["early_stopping"]["metric"] == "val/loss"
    assert metrics["early_stopping"]["mode"] == "min"
    stage = metrics["stages"][0]
    assert stage["monitor"] == "val/loss" and stage["mode"] == "min"
    # The chosen epoch is the one with the lowest stop-photo loss, and its row is recorded.
    losses = [row["loss"] for row in stage["history"]]
    assert len(losses) == stage["epochs"] + 1 or stage["stopped_early"]
    assert stage["best_epoch"] == int(np.argmin(losses))
    assert stage["best_val"]["loss"] == min(losses)
    assert metrics["best_val_acc"] == stage["best_val"]["acc"]
    assert set(metrics["album_mean_weights"]) == {"prob", "logprob"}
    assert metrics["shuffle_albums"] is False and metrics["album_sampling"] == "all"
    assert model.metrics == metrics


def test_shuffle_albums_is_recorded_and_refused_on_resume_with_real_albums(chain, tmp_path):
    dataset, root = chain
    config = load_head_config("m3", "test", {"shuffle_albums": True})
    notes: list[str] = []
    model = train_m3(dataset.root, root / "m2", tmp_path / "m3", config, report=notes.append)
    record = json.loads((tmp_path / "m3" / "model.json").read_text())
    assert record["config"]["shuffle_albums"] is True
    assert record["provenance"]["shuffle_albums"] is True
    assert record["metrics"]["shuffle_albums"] is True
    assert model.name == "M3 mesh shuffled-albums"
    assert any("--shuffle-albums" in note for note in notes)
    real = load_head_config("m3", "test")
    with pytest.raises(InputError, match="shuffle_albums"):
        train_m3(dataset.root, root / "m2", tmp_path / "m3", real, resume=True)


def test_shuffled_users_permute_ids_within_the_photos_given():
    users = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    shuffled = shuffled_users(users, 0)
    # The same ids, as often as before (albums keep the real size distribution) ...
    assert sorted(shuffled) == sorted(users) and list(shuffled) != list(users)
    # ... seeded, and another seed permutes otherwise.
    assert list(shuffled_users(users, 0)) == list(shuffled)
    assert list(shuffled_users(users, 1)) != list(shuffled)


def test_all_albums_are_used_every_epoch():
    albums = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    draw = _all_albums(albums)
    for epoch in range(3):
        drawn = draw(np.random.default_rng([0, epoch]))
        assert [a.tolist() for a in (drawn[i] for i in range(len(drawn)))] == [
            [0, 1],
            [2],
            [3, 4],
        ]


def _album_world(n_users: int, rng: np.random.Generator, n_cells: int, hit: float):
    """Users whose photos all lie in one true cell; M2's input is a noisy guess per photo.

    Each photo's input peaks at the true cell with probability ``hit``, else at a random
    cell: one photo is a weak clue, an album of them a strong one.
    """
    rows, labels, users = [], [], []
    for user in range(n_users):
        cell = rng.integers(n_cells)
        for _ in range(rng.integers(4, 13)):
            peak = cell if rng.random() < hit else rng.integers(n_cells)
            scores = rng.normal(0, 0.5, n_cells)
            scores[peak] += 2.5
            probs = np.exp(scores) / np.exp(scores).sum()
            rows.append(np.r_[probs, 1.0, 0.0, 0.0, 0.0])
            labels.append(cell)
            users.append(user)
    return np.array(rows, np.float32), np.array(labels), np.array(users)


def _albums_of(users: np.ndarray, offset: int = 0) -> list[np.ndarray]:
    return [np.flatnonzero(users == u) + offset for u in np.unique(users)]


def test_m3_beats_m2_on_a_synthetic_world_of_albums(tmp_path):
    """M2 alone sees one noisy photo; M3 sees the album and must learn to use it."""
    import torch

    from trigeo.models import M2Net, M3Net
    from trigeo.train.heads_module import fit_head_stages
    from trigeo.train.m2 import rows_collate

    torch.set_num_threads(1)
    n_cells, rng = 6, np.random.default_rng(3)
    parts = [_album_world(n, rng, n_cells, hit=0.4) for n in (150, 40, 120)]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    sizes = np.cumsum([0, *(len(p[0]) for p in parts)])
    fit, stop, test = (np.arange(sizes[i], sizes[i + 1]) for i in range(3))
    fit_albums, stop_albums, test_albums = (_albums_of(p[2], sizes[i]) for i, p in enumerate(parts))
    lat, lon = np.zeros(n_cells), np.linspace(-150, 150, n_cells)
    common = {"seed": 0, "accelerator": "cpu", "progress": False, "patience": 3}

    class _Items(torch.utils.data.Dataset):
        def __init__(self, items):
            self.items = items

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    torch.manual_seed(0)
    m2 = M2Net(n_cells, width=32, dropout=0.1)
    m2_config = load_head_config(
        "m2", None, {**common, "stages": [{"name": "adam", "lr": 0.01, "max_epochs": 15}]}
    )
    fit_head_stages(
        m2, m2_config, tmp_path / "m2",
        make_train=lambda rng: _Items(fit.tolist()), val_set=_Items(stop.tolist()),
        collate=rows_collate(x, y, lat[y], lon[y]), label_lat=lat, label_lon=lon, resume=False,
    )  # fmt: skip
    m3 = M3Net(n_cells, m2=m2.hparams() | {"num_classes": n_cells}, hidden=8)
    m3.m2.load_state_dict(m2.state_dict())
    m3.freeze_m2()
    m3_config = load_head_config(
        "m3", "test", {**common, "stages": [{"name": "adam", "lr": 0.03, "max_epochs": 15}]}
    )
    stages, _ = fit_head_stages(
        m3, m3_config, tmp_path / "m3",
        make_train=_all_albums(fit_albums), val_set=_Items(stop_albums),
        collate=album_collate(x, y, lat[y], lon[y], 24),
        label_lat=lat, label_lon=lon, resume=False,
    )  # fmt: skip
    assert stages[0]["monitor"] == "val/loss"
    m2.eval()
    m3.eval()
    with torch.no_grad():
        m2_top = m2(torch.from_numpy(x[test])).argmax(1).numpy()
        batch = album_collate(x, y, lat[y], lon[y], 24)(test_albums)
        m3_top = m3(batch["x"], batch["mask"])[batch["mask"]].argmax(1).numpy()
    m2_acc = float((m2_top == y[test]).mean())
    m3_acc = float((m3_top == batch["y"][batch["mask"]].numpy()).mean())
    assert m2_acc < 0.65  # one photo is a weak clue
    assert m3_acc > m2_acc + 0.2, (m2_acc, m3_acc)
    assert m3.album_mean_weights()["prob"] > 0.5  # it learned to average
