"""Serving an M2: with a posting time it answers with M2 (checked against M2Model by hand),
without one it falls back to M1 and says so."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serve.conftest import photo_with_gps
from trigeo.serve.app import create_app


@pytest.fixture(scope="module")
def m2_dir(world_model, tmp_path_factory):
    from trigeo.train.heads_config import load_head_config
    from trigeo.train.m2 import train_m2

    model_dir, dataset, _ = world_model
    out = tmp_path_factory.mktemp("serve-m2") / "m2"
    train_m2(dataset.root, model_dir, out, load_head_config("m2", "test"), report=lambda _: None)
    return out


def test_m2_answers_with_a_posting_time_and_m1_without(m2_dir, world_model):
    from trigeo.models.m2 import M2Model, m2_inputs
    from trigeo.serve.engine import Engine, M2Backend, load_backend

    backend = load_backend(m2_dir)
    assert isinstance(backend, M2Backend)
    engine = Engine(backend)
    data = photo_with_gps((40, 40, 220), 35.68, 139.7)
    with TestClient(create_app(engine), base_url="http://127.0.0.1:8000") as client:
        model = client.get("/v1/model").json()
        timed = client.post(
            "/v1/predict",
            files={"image": ("t.jpg", data)},
            data={"posted_at": "2015-06-01T09:30:00+02:00", "top_k": "3"},
        ).json()
        untimed = client.post("/v1/predict", files={"image": ("t.jpg", data)}).json()
    assert model["kind"] == "M2" and model["uses_time"] is True
    assert model["m1_model_id"] == backend.m1.model_id
    assert timed["model"]["answered_by"] == "M2" and timed["model"]["time_used"] is True
    assert untimed["model"]["answered_by"] == "M1" and "no posting time" in untimed["model"]["note"]
    # By hand: M1's probabilities, its top 10 cells and the UTC time into M2.
    m1 = backend.m1
    m1.net.eval()
    x = backend.m1_backend.transform(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0)
    import torch

    with torch.no_grad():
        p1 = torch.softmax(m1.net(x).double() / m1.temperature, 1)[0].numpy()
    k = min(10, len(p1))
    cells = np.argsort(-p1, kind="stable")[:k][None, :]
    when = [pd.Timestamp("2015-06-01T07:30:00", tz="UTC")]
    p2 = M2Model.load(m2_dir).predict_proba(m2_inputs(cells, p1[cells], len(p1), when, top_k=k))[0]
    order = np.argsort(-p2, kind="stable")[:3]
    assert [t["cell"] for t in timed["top_k"]] == order.tolist()
    np.testing.assert_allclose([t["probability"] for t in timed["top_k"]], p2[order], rtol=1e-5)
    assert [t["cell"] for t in untimed["top_k"][:1]] == [int(np.argmax(p1))]


def test_m2_requests_with_and_without_a_time_share_a_forward_pass(m2_dir):
    from serve.test_batching import Gated, _run
    from trigeo.serve.engine import Engine, load_backend
    from trigeo.serve.limits import Limits

    engine = Engine(load_backend(m2_dir))
    gated = Gated(engine)
    app = create_app(gated, Limits(max_concurrent=1, batch_size=8))
    data = photo_with_gps((40, 40, 220), 35.68, 139.7)
    when = "2015-06-01T09:30:00+02:00"

    def send(**fields):
        return lambda c: c.post("/v1/predict", files={"image": ("t.jpg", data)}, data=fields)

    first, timed, untimed = _run(app, send(), [send(posted_at=when, top_k="3"), send(top_k="2")])
    assert gated.passes == [1, 2]  # the timed and the untimed photo in one pass
    timed, untimed = timed.json(), untimed.json()
    assert timed["model"]["answered_by"] == "M2" and len(timed["top_k"]) == 3
    assert untimed["model"]["answered_by"] == "M1" and len(untimed["top_k"]) == 2
    # The same answers as each photo alone.
    image = Image.open(io.BytesIO(data)).convert("RGB")
    alone = engine.predict([image], [pd.Timestamp(when).tz_convert("UTC")], [None], 3)[0]
    assert [t["cell"] for t in timed["top_k"]] == [t["cell"] for t in alone["top_k"]]
    np.testing.assert_allclose(
        [t["probability"] for t in timed["top_k"]],
        [t["probability"] for t in alone["top_k"]],
        atol=1e-6,
    )
    # Float32 batching differences only.
    lone = first.json()["top_k"][:2]
    assert [t["cell"] for t in lone] == [t["cell"] for t in untimed["top_k"]]
    np.testing.assert_allclose(
        [t["probability"] for t in lone], [t["probability"] for t in untimed["top_k"]], atol=1e-6
    )
