"""M3: albums (order, cuts, single photos), padding invariance, the network and model dir."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional

from trigeo.errors import InputError
from trigeo.models import M2Net, M3Model, M3Net, create_model, load_model_dir
from trigeo.models.m3 import V1_NET, _M3ModelV1, make_albums, pad_albums

torch.set_num_threads(1)


def test_albums_follow_posting_order_with_ties_by_photo_id():
    # User a: 5 photos, two posted at the same second (ids "a2" < "a3" decide); user b: one.
    users = ["a", "b", "a", "a", "a", "a"]
    times = pd.to_datetime(
        ["2015-01-03 00:00", "2015-01-01 00:00", "2015-01-01 00:00", "2015-01-02 10:00",
         "2015-01-02 10:00", "2015-01-05 00:00"], utc=True,
    )  # fmt: skip
    ids = ["a0", "b0", "a1", "a3", "a2", "a4"]
    albums = make_albums(users, times, ids, album_size=2)
    # a in time order: a1 (row 2), then the tie a2 (row 4) before a3 (row 3), a0 (row 0), a4 (5)
    assert [a.tolist() for a in albums] == [[2, 4], [3, 0], [5], [1]]
    # Albums of 24: one album per user here; the single-photo user gets an album of one.
    assert [a.tolist() for a in make_albums(users, times, ids)] == [[2, 4, 3, 0, 5], [1]]


def test_fifty_photos_make_albums_of_24_24_and_2():
    times = pd.date_range("2015-01-01", periods=50, freq="h", tz="UTC")
    albums = make_albums(["u"] * 50, times[::-1], [f"p{i:02d}" for i in range(50)])
    assert [len(a) for a in albums] == [24, 24, 2]
    assert albums[0][0] == 49 and albums[-1].tolist() == [1, 0]  # earliest first


def test_pad_albums_zero_pads_and_masks():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    padded, mask = pad_albums(x, [np.array([2, 0]), np.array([3])], album_size=3)
    assert padded.shape == (2, 3, 3)
    np.testing.assert_array_equal(padded[0], [[6, 7, 8], [0, 1, 2], [0, 0, 0]])
    np.testing.assert_array_equal(padded[1], [[9, 10, 11], [0, 0, 0], [0, 0, 0]])
    assert mask.tolist() == [[True, True, False], [True, False, False]]


def _net(n=5):
    torch.manual_seed(0)
    net = M3Net(n, m2={"width": 16}, hidden=6)
    torch.nn.init.normal_(net.album_head.weight, std=0.5)  # make the LSTM matter
    return net


@pytest.mark.parametrize("train_mode", [False, True])
def test_padding_changes_neither_outputs_nor_loss(train_mode):
    net = _net().train(train_mode)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 24, 9)).astype(np.float32))
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, :7] = True
    mask[1, :24] = True
    y = torch.from_numpy(rng.integers(0, 5, (2, 24)))
    noisy = x.clone()
    noisy[0, 7:] = torch.from_numpy(rng.normal(0, 100, (17, 9)).astype(np.float32))
    outputs, losses = [], []
    for inputs in (x, noisy):
        torch.manual_seed(1)  # the same dropout draws in train mode
        logits = net(inputs, mask)
        outputs.append(logits.detach())
        losses.append(float(functional.cross_entropy(logits[mask], y[mask]).detach()))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert losses[0] == losses[1]
    assert float(outputs[0][0, 7:].abs().max()) == 0.0  # padded positions output zeros


def test_an_album_alone_or_batched_gives_the_same_output():
    net = _net().eval()
    rng = np.random.default_rng(1)
    album = torch.from_numpy(rng.random((1, 24, 9)).astype(np.float32))
    mask = torch.zeros(1, 24, dtype=torch.bool)
    mask[0, :3] = True
    other = torch.from_numpy(rng.random((1, 24, 9)).astype(np.float32))
    both = net(torch.cat([album, other]), torch.cat([mask, torch.ones(1, 24, dtype=torch.bool)]))
    torch.testing.assert_close(net(album, mask)[0, :3], both[0, :3], rtol=1e-5, atol=1e-6)
    # The context matters: the same first photo with other album-mates gets other logits.
    changed = album.clone()
    changed[0, 1:3] = other[0, :2]
    assert not torch.allclose(net(changed, mask)[0, 0], net(album, mask)[0, 0])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"lstm_input": "features", "album_means": ["logprob"]},
        {"album_means": ["prob"], "head_centering": "album", "head_bias": True},
        V1_NET,
    ],
)
def test_untrained_m3_predicts_what_its_m2_does(options):
    m2 = M2Net(5, width=16).eval()
    net = create_model("m3", num_classes=5, m2={"width": 16}, hidden=4, **options).eval()
    net.m2.load_state_dict(m2.state_dict())
    x = torch.randn(2, 24, 9)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, :4] = True
    mask[1, :1] = True  # an album of one
    out = net(x, mask)
    # Exactly M2's logits for the same rows (album means weighted 0, a zero head added).
    torch.testing.assert_close(out[mask], m2(x[mask]), rtol=0, atol=0)
    torch.testing.assert_close(out[0, :4], m2(x[0, :4]), rtol=1e-5, atol=1e-6)


def test_album_averaging_is_a_special_case():
    # A large weight on the album's mean probability makes every photo of the album predict
    # the argmax of that mean: what `trigeo evaluate --averaging` computes from M2's output.
    net = create_model("m3", num_classes=5, m2={"width": 16}, hidden=4, album_means=["prob"])
    net.eval()
    x = torch.randn(3, 24, 9)
    mask = torch.zeros(3, 24, dtype=torch.bool)
    for album, n in enumerate((7, 24, 2)):
        mask[album, :n] = True
    with torch.no_grad():
        net.album_weight.fill_(1e4)
        top = net(x, mask).argmax(-1)
        probs = torch.softmax(net.m2(x[mask]), 1)
    start = 0
    for album, n in enumerate((7, 24, 2)):
        expected = probs[start : start + n].mean(0).argmax()
        assert (top[album, :n] == expected).all()
        start += n
    assert net.album_mean_weights() == {"prob": 1e4}


def test_the_album_head_has_no_bias_and_can_be_centred_over_the_album():
    net = create_model("m3", num_classes=5, m2={"width": 16}, hidden=4, album_means=[])
    assert net.album_head.bias is None and net.head_bias is False
    centred = create_model(
        "m3", num_classes=5, m2={"width": 16}, hidden=4, album_means=[], head_centering="album"
    ).eval()
    centred.m2.load_state_dict(net.m2.state_dict())
    torch.nn.init.normal_(centred.album_head.weight, std=1.0)
    x = torch.randn(2, 24, 9)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, :5] = True
    mask[1, :1] = True
    with torch.no_grad():
        added = centred(x, mask) - net.eval()(x, mask)  # M2's logits cancel
    torch.testing.assert_close(added[0, :5].sum(0), torch.zeros(5), rtol=0, atol=1e-5)
    assert float(added[0, :5].abs().max()) > 0.01  # photos move relative to their album
    assert float(added[1, 0].abs().max()) == 0.0  # an album of one gets nothing added


def test_the_m2_scale_is_a_temperature_that_starts_at_one():
    base = create_model("m3", num_classes=4, m2={"width": 8}, hidden=2).eval()
    scaled = create_model("m3", num_classes=4, m2={"width": 8}, hidden=2, m2_scale=True).eval()
    scaled.load_state_dict(base.state_dict(), strict=False)
    assert float(scaled.m2_logit_scale.detach()) == 1.0
    x = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(scaled(x, mask), base(x, mask), rtol=0, atol=0)
        scaled.m2_logit_scale.fill_(0.5)
        m2 = base.m2(x[mask])
        # Album weights and head at zero: exactly half of M2's logits, the same top cell.
        torch.testing.assert_close(scaled(x, mask)[mask], 0.5 * m2, rtol=0, atol=1e-6)
    # Saved with the network; without it there is no parameter, so older /2 directories load.
    again = create_model("m3", **scaled.hparams())
    again.load_state_dict(scaled.state_dict())
    assert float(again.m2_logit_scale.detach()) == 0.5
    assert "m2_logit_scale" not in base.state_dict()


def test_unknown_network_choices_are_refused():
    with pytest.raises(InputError, match="lstm_input"):
        M3Net(5, lstm_input="pixels")
    with pytest.raises(InputError, match="album_means"):
        M3Net(5, album_means=["median"])
    with pytest.raises(InputError, match="head_centering"):
        M3Net(5, head_centering="classes")


def test_masks_with_holes_or_empty_albums_are_refused():
    net = _net().eval()
    x = torch.zeros(1, 4, 9)
    with pytest.raises(InputError, match="before the padding"):
        net(x, torch.tensor([[True, False, True, False]]))
    with pytest.raises(InputError, match="1 or more photos"):
        net(x, torch.zeros(1, 4, dtype=torch.bool))


def test_model_directory_round_trip_predicts_every_photo(tmp_path):
    from trigeo.mesh import DelaunayMesh

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.normal(48, 0.5, 30), rng.normal(-30, 0.5, 30)])
    lon = np.concatenate([rng.normal(2, 0.5, 30), rng.normal(150, 0.5, 30)])
    mesh = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(lat, lon)
    mesh.save(tmp_path / "mesh.npz")
    net = _net(mesh.n_cells_).eval()
    m1 = {"model_id": "m1-x", "mesh_hash": mesh.mesh_hash, "dir": "/nowhere"}
    model = M3Model(net, mesh, label_kind="imagery", m1=m1, m2={"model_id": "m2-x"})
    out = model.save(tmp_path / "m3", tmp_path / "mesh.npz")
    record = json.loads((out / "model.json").read_text())
    assert record["format"] == "trigeo-m3/2" and record["album_size"] == 24
    assert record["m2"]["model_id"] == "m2-x" and record["net"]["hidden"] == 6
    loaded = load_model_dir(out)
    assert isinstance(loaded, M3Model)
    # 30 photos of one user (albums of 24 + 6) and one single-photo user, shuffled rows.
    n = 31
    x = rng.random((n, mesh.n_cells_ + 4)).astype(np.float32)
    users = np.array(["u"] * 30 + ["solo"])
    times = pd.date_range("2015-01-01", periods=n, freq="h", tz="UTC")
    ids = np.array([f"p{i:02d}" for i in range(n)])
    perm = rng.permutation(n)
    probs = loaded.predict_albums(x[perm], users[perm], times[perm], ids[perm])
    assert probs.shape == (n, mesh.n_cells_)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # Independently: the first album is photos 0-23 in time order, fed to the net directly.
    with torch.no_grad():
        first = net(torch.from_numpy(x[None, :24]), torch.ones(1, 24, dtype=torch.bool))[0]
        solo = net(torch.from_numpy(x[None, 30:31]), torch.ones(1, 1, dtype=torch.bool))[0]
    back = np.argsort(perm)
    np.testing.assert_allclose(probs[back][:24], torch.softmax(first, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(probs[back][30:], torch.softmax(solo, 1).numpy(), atol=1e-6)


def test_a_trigeo_m3_1_directory_still_loads(tmp_path):
    from trigeo.mesh import DelaunayMesh

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.normal(48, 0.5, 30), rng.normal(-30, 0.5, 30)])
    lon = np.concatenate([rng.normal(2, 0.5, 30), rng.normal(150, 0.5, 30)])
    mesh = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(lat, lon)
    mesh.save(tmp_path / "mesh.npz")
    torch.manual_seed(0)
    old = M3Net(mesh.n_cells_, m2={"width": 16}, hidden=6, **V1_NET).eval()
    torch.nn.init.normal_(old.album_head.weight, std=0.5)
    m1 = {"model_id": "m1-x", "mesh_hash": mesh.mesh_hash, "dir": "/nowhere"}
    out = _M3ModelV1(old, mesh, label_kind="imagery", m1=m1).save(
        tmp_path / "m3", tmp_path / "mesh.npz"
    )
    # As the old code wrote it: no new network keys in model.json.
    record = json.loads((out / "model.json").read_text())
    record["net"] = {k: v for k, v in record["net"].items() if k not in V1_NET}
    (out / "model.json").write_text(json.dumps(record))
    loaded = load_model_dir(out)
    assert isinstance(loaded, M3Model) and loaded.net.lstm_input == "features"
    assert loaded.net.album_means == [] and loaded.net.album_head.bias is not None
    x = torch.from_numpy(rng.random((1, 24, mesh.n_cells_ + 4)).astype(np.float32))
    mask = torch.ones(1, 24, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(loaded.net(x, mask), old(x, mask))
