"""M2's input builder (hand-computed), network, registry and model directory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from trigeo.errors import ArtifactError, InputError
from trigeo.models import M2Model, M2Net, create_model, list_models, load_model_dir
from trigeo.models.m2 import has_posting_time, m2_inputs, time_features

torch.set_num_threads(1)


def test_time_features_on_hand_computed_timestamps():
    times = [
        # New Year's Eve, one second to midnight UTC: a Wednesday (1 Jan 2015 was a Thursday).
        "2014-12-31T23:59:59+00:00",
        # EU daylight saving starts on Sunday 29 March 2015 at 01:00 UTC. 00:30 local CET
        # (+01:00) is still Saturday 23:30 UTC; 03:30 local CEST (+02:00) is Sunday 01:30 UTC.
        "2015-03-29T00:30:00+01:00",
        "2015-03-29T03:30:00+02:00",
        # A Sunday (4 July 2016 was a Monday), noon UTC, and the Monday at midnight.
        "2016-07-03T12:00:00Z",
        "2016-07-04T00:00:00Z",
    ]
    expected = [
        [(23 - 11.5) / 24, (4 - 3.5) / 7, (12 - 6.5) / 12],  # Wednesday = 4
        [(23 - 11.5) / 24, (7 - 3.5) / 7, (3 - 6.5) / 12],  # Saturday = 7
        [(1 - 11.5) / 24, (1 - 3.5) / 7, (3 - 6.5) / 12],  # Sunday = 1
        [(12 - 11.5) / 24, (1 - 3.5) / 7, (7 - 6.5) / 12],
        [(0 - 11.5) / 24, (2 - 3.5) / 7, (7 - 6.5) / 12],  # Monday = 2
    ]
    got = time_features(pd.to_datetime(times, utc=True))
    assert got.dtype == np.float32 and got.shape == (5, 3)
    np.testing.assert_allclose(got, np.array(expected), rtol=0, atol=1e-7)
    # The values as numbers, not formulas: 23:59:59 is hour 23 -> 0.47916...; Sunday -> -0.357...
    np.testing.assert_allclose(got[0], [0.4791667, 0.0714286, 0.4583333], atol=1e-6)
    np.testing.assert_allclose(got[2], [-0.4375, -0.3571429, -0.2916667], atol=1e-6)


def test_missing_time_is_refused_with_its_position():
    with pytest.raises(InputError, match="first at position 1"):
        time_features(pd.to_datetime(["2015-01-01T00:00:00Z", None], utc=True))


def test_inputs_keep_the_top_ten_renormalised_plus_their_mass():
    # 12 cells, given out of order: the two smallest (cells 10 and 11) must be dropped.
    probs = [0.05, 0.3, 0.02, 0.1, 0.05, 0.2, 0.01, 0.05, 0.05, 0.04, 0.03, 0.03]
    cells = [1, 3, 10, 0, 2, 7, 11, 4, 5, 6, 8, 9]
    when = pd.to_datetime(["2016-07-03T12:00:00Z"], utc=True)
    x = m2_inputs([cells], [probs], 12, when)
    assert x.shape == (1, 16) and x.dtype == np.float32
    s = 0.9  # 0.93 minus 0.02 and 0.01
    expected = np.zeros(16)
    for cell, p in zip(cells, probs, strict=True):
        if cell not in (10, 11):
            expected[cell] = p / s
    expected[12] = s
    expected[13:] = [(12 - 11.5) / 24, (1 - 3.5) / 7, (7 - 6.5) / 12]
    np.testing.assert_allclose(x[0], expected, atol=1e-6)
    assert x[0, 3] == pytest.approx(1 / 3) and x[0, :12].sum() == pytest.approx(1.0)


def test_inputs_with_few_cells_padding_and_zero_mass():
    when = pd.to_datetime(["2015-01-01T00:00:00Z"] * 2, utc=True)
    # A 3-cell mesh needs only 3 cells; -1 is padding; an all-zero row stays zero with s = 0.
    x = m2_inputs([[2, 0, -1], [0, 1, 2]], [[0.6, 0.2, 0.1], [0, 0, 0]], 3, when)
    np.testing.assert_allclose(x[0, :4], [0.25, 0, 0.75, 0.8], atol=1e-6)
    np.testing.assert_allclose(x[1, :4], [0, 0, 0, 0])


def test_inputs_refuse_too_few_cells_and_foreign_cell_ids():
    when = pd.to_datetime(["2015-01-01T00:00:00Z"], utc=True)
    with pytest.raises(InputError, match="--top-k 10"):
        m2_inputs([list(range(5))], [[0.2] * 5], 50, when)
    with pytest.raises(InputError, match="outside the mesh's 4 cells"):
        m2_inputs([[0, 1, 2, 7]], [[0.4, 0.3, 0.2, 0.1]], 4, when)


def test_rows_without_a_posting_time():
    rows = pd.DataFrame(
        {
            "posted_at": pd.to_datetime(["2015-01-01", None, "2015-01-02"], utc=True),
            "time_source": ["exif-offset", "exif-offset", "file-mtime"],
        }
    )
    assert has_posting_time(rows).tolist() == [True, False, False]
    assert has_posting_time(rows.drop(columns="time_source")).tolist() == [True, False, True]


def test_network_is_the_studys_stack():
    net = create_model("m2", num_classes=7)
    assert "m2" in list_models()
    kinds = [type(m) for m in net.trunk]
    assert kinds == [
        *(nn.Linear, nn.BatchNorm1d, nn.Sigmoid, nn.Dropout),
        *(nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout),
        *(nn.Linear, nn.BatchNorm1d, nn.Sigmoid, nn.Dropout),
    ]
    assert [m.out_features for m in net.trunk if isinstance(m, nn.Linear)] == [1626] * 3
    assert net.trunk[0].in_features == 7 + 4 and net.head.out_features == 7
    assert all(m.p == 0.5 for m in net.trunk if isinstance(m, nn.Dropout))
    w, n = 1626, 7
    expected = (n + 4) * w + w + 2 * w + 2 * (w * w + w + 2 * w) + w * n + n
    assert sum(p.numel() for p in net.parameters()) == expected
    # He initialization: std sqrt(2 / fan_in), zero biases.
    std = net.trunk[4].weight.std().item()
    assert std == pytest.approx((2 / 1626) ** 0.5, rel=0.02)
    assert float(net.trunk[4].bias.detach().abs().max()) == 0.0
    net.eval()
    assert net(torch.randn(3, 11)).shape == (3, 7)


def test_width_depth_and_bad_activations():
    net = M2Net(5, width=8, depth=4)
    assert net.activations == ["sigmoid", "relu", "sigmoid", "sigmoid"]
    assert len([m for m in net.trunk if isinstance(m, nn.Linear)]) == 4
    with pytest.raises(InputError, match="activations"):
        M2Net(5, depth=2, activations=["relu", "swish"])


@pytest.fixture
def mesh_file(tmp_path):
    from trigeo.mesh import DelaunayMesh

    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.normal(48, 0.5, 30), rng.normal(-30, 0.5, 30)])
    lon = np.concatenate([rng.normal(2, 0.5, 30), rng.normal(150, 0.5, 30)])
    mesh = DelaunayMesh(refinement_limit=1000, minimum_examples=5).fit(lat, lon)
    path = tmp_path / "mesh.npz"
    mesh.save(path)
    return mesh, path


M1_RECORD = {"model_id": "m1-x-imagery-0123456789", "mesh_hash": "h", "dir": "/nowhere"}


def test_model_directory_round_trip_and_dispatch(tmp_path, mesh_file):
    mesh, mesh_path = mesh_file
    net = M2Net(mesh.n_cells_, width=16).eval()
    model = M2Model(net, mesh, label_kind="cell", m1={**M1_RECORD, "mesh_hash": mesh.mesh_hash})
    model.name = "M2 tiny"
    out = model.save(tmp_path / "m2", mesh_path)
    record = json.loads((out / "model.json").read_text())
    assert record["format"] == "trigeo-m2/1" and record["m1"]["model_id"] == M1_RECORD["model_id"]
    assert record["net"]["width"] == 16 and record["model_id"].startswith("m2-cell-")
    loaded = load_model_dir(out)
    assert isinstance(loaded, M2Model) and loaded.name == "M2 tiny"
    x = np.random.default_rng(1).random((4, mesh.n_cells_ + 4)).astype(np.float32)
    probs = loaded.predict_proba(x)
    expected = torch.softmax(net(torch.from_numpy(x)), 1).detach().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_tampered_or_unknown_directories_are_refused(tmp_path, mesh_file):
    mesh, mesh_path = mesh_file
    out = M2Model(M2Net(mesh.n_cells_, width=8), mesh, label_kind="cell", m1=M1_RECORD).save(
        tmp_path / "m2", mesh_path
    )
    record = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**record, "mesh_hash": "0" * 64}))
    with pytest.raises(ArtifactError, match="mesh hash"):
        load_model_dir(out)
    (out / "model.json").write_text(json.dumps({**record, "format": "trigeo-m9/1"}))
    with pytest.raises(ArtifactError, match="unknown model format 'trigeo-m9/1'"):
        load_model_dir(out)
    with pytest.raises(ArtifactError, match=r"no model\.json"):
        load_model_dir(tmp_path)
