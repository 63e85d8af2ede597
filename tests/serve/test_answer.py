"""``trigeo serve --answer``: the reported point of each rule, checked against numpy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from serve.conftest import photo_with_gps
from trigeo.answer import answer_points
from trigeo.serve.app import create_app
from trigeo.sphere import distance_km

BASE = "http://127.0.0.1:8000"
TOKYO = (35.68, 139.7)
BLUE = (40, 40, 220)


def _ask(engine, data: bytes) -> dict:
    with TestClient(create_app(engine), base_url=BASE) as client:
        response = client.post("/v1/predict", files={"image": ("photo.jpg", data)})
        assert response.status_code == 200, response.text
        model = client.get("/v1/model").json()
    assert model["answer"] == engine.answer_rule
    return response.json()


def _inference(engine, data: bytes):
    with Image.open(io.BytesIO(data)) as img:
        return engine.backend.infer([img.convert("RGB")], [None])[0]


def test_the_default_answer_is_the_top_region_and_the_truth_error_is_measured_to_it(engine):
    data = photo_with_gps(BLUE, *TOKYO)
    body = _ask(engine, data)
    answer, top = body["answer"], body["top_k"][0]
    assert answer["rule"] == "top-cell" and answer["note"] is None
    assert (answer["lat"], answer["lon"]) == (top["lat"], top["lon"])
    assert answer["place"] == top["place"]
    want = distance_km(*TOKYO, top["lat"], top["lon"])
    assert body["truth"]["error_km"] == pytest.approx(want, abs=0.01)


@pytest.mark.parametrize("rule", ["geoscore", "median"])
def test_cell_rules_answer_over_the_top_20_regions(engine, rule):
    from trigeo.serve.engine import Engine

    data = photo_with_gps(BLUE, *TOKYO)
    served = Engine(engine.backend, index=engine.index, answer=rule)
    body = _ask(served, data)
    p = _inference(engine, data).probs
    order = np.argsort(-p, kind="stable")[:20]
    lat, lon = engine.backend.label_points()
    want = answer_points(rule, order[None], p[order][None], lat, lon)
    answer = body["answer"]
    assert answer["rule"] == rule
    assert (answer["lat"], answer["lon"]) == pytest.approx((want[0][0], want[1][0]), abs=1e-5)
    error = distance_km(*TOKYO, want[0][0], want[1][0])
    assert body["truth"]["error_km"] == pytest.approx(error, abs=0.01)
    # The distribution reported is the same whatever the rule.
    assert body["regions"] == _ask(engine, data)["regions"]


def test_knn_answers_with_the_knn_predictor_over_10_neighbours(engine):
    from trigeo.retrieve.knn import knn_locate
    from trigeo.serve.engine import Engine

    data = photo_with_gps(BLUE, *TOKYO)
    body = _ask(Engine(engine.backend, index=engine.index, answer="knn"), data)
    descriptor = _inference(engine, data).descriptor
    distance, rows = engine.index.search(descriptor[None], 10)
    photos = engine.index.photos
    want = knn_locate(photos["lat"].to_numpy()[rows], photos["lon"].to_numpy()[rows], distance)
    answer = body["answer"]
    assert answer["rule"] == "knn" and answer["note"] is None
    assert (answer["lat"], answer["lon"]) == pytest.approx((want[0][0], want[1][0]), abs=1e-5)
    # --neighbours still sets only what is shown.
    assert len(body["neighbours"]) == 6


def test_refine_answers_from_indexed_photos_inside_the_top_regions(engine):
    from trigeo.retrieve.refine import refine_points
    from trigeo.serve.engine import Engine

    data = photo_with_gps(BLUE, *TOKYO)
    served = Engine(engine.backend, index=engine.index, answer="refine")
    body = _ask(served, data)
    inference = _inference(engine, data)
    p = inference.probs
    order = np.argsort(-p, kind="stable")[:20]
    distance, rows = engine.index.search(inference.descriptor[None], 100)
    photos = engine.index.photos
    i_lat, i_lon = photos["lat"].to_numpy()[rows], photos["lon"].to_numpy()[rows]
    cells = engine.backend.mesh.locate(i_lat.ravel(), i_lon.ravel()).reshape(rows.shape)
    lat, lon = engine.backend.label_points()
    want = refine_points(
        order[None], p[order][None], lat[order[:1]], lon[order[:1]], i_lat, i_lon, cells,
        distance,
    )  # fmt: skip
    answer = body["answer"]
    assert answer["rule"] == "refine" and answer["note"] is None and want.refined[0]
    assert (answer["lat"], answer["lon"]) == pytest.approx((want.lat[0], want.lon[0]), abs=1e-5)
    assert distance_km(*TOKYO, answer["lat"], answer["lon"]) < 100


def test_coarsened_answers_are_on_the_grid(world_model):
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.serve.coarsen import round_to_grid
    from trigeo.serve.engine import Engine, load_backend

    model_dir, _, index_dir = world_model
    backend, index = load_backend(model_dir), RetrievalIndex.load(index_dir)
    for rule in ("geoscore", "refine"):
        body = _ask(
            Engine(backend, index=index, coarsen_km=250, answer=rule), photo_with_gps(BLUE, *TOKYO)
        )
        answer = body["answer"]
        r_lat, r_lon = round_to_grid(answer["lat"], answer["lon"], 250)
        assert (answer["lat"], answer["lon"]) == pytest.approx(
            (float(r_lat), float(r_lon)), abs=1e-4
        )
        assert body["truth"]["withheld"] is True


def test_index_rules_need_an_index(world_model, engine):
    from trigeo.cli import app
    from trigeo.errors import InputError
    from trigeo.serve.engine import Engine

    with pytest.raises(InputError, match=r"--answer refine.*--index"):
        Engine(engine.backend, answer="refine")
    model_dir = world_model[0]
    for rule in ("refine", "knn"):
        # Refused before the model loads or a port opens.
        result = CliRunner().invoke(app, ["serve", "--model", str(model_dir), "--answer", rule])
        assert result.exit_code == 2
        assert f"--answer {rule}" in result.output and "--index" in result.output
