"""The HTTP API: answers checked against numpy, each limit, privacy, and the CLI's host.

Clients talk to ``http://127.0.0.1:8000``: the ``Host`` check (test_hosts.py) refuses
TestClient's default ``testserver``, as it would any name a rebinding page sends."""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import threading

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serve.conftest import photo_with_gps, png_bytes
from trigeo.serve.app import create_app
from trigeo.serve.limits import Limits
from trigeo.sphere import distance_km

BASE = "http://127.0.0.1:8000"
TOKYO = (35.68, 139.7)
BLUE = (40, 40, 220)


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, Limits(max_concurrent=1, max_queue=4)), base_url=BASE) as c:
        yield c


def _post(client, data: bytes, name: str = "photo.jpg", **fields):
    return client.post("/v1/predict", files={"image": (name, data)}, data=fields)


def _reference_probs(engine, data: bytes) -> np.ndarray:
    """Cell probabilities computed here, by hand: transform, forward, softmax / T."""
    import torch

    model = engine.backend.model
    with Image.open(io.BytesIO(data)) as img:
        x = engine.backend.transform(img.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        logits = model.net(x).double() / model.temperature
    return torch.softmax(logits, 1)[0].numpy()


def test_predict_answers_top_k_credible_regions_geojson_and_exif_error(client, engine):
    data = photo_with_gps(BLUE, *TOKYO)
    response = _post(client, data, top_k="3", geojson="true")
    assert response.status_code == 200, response.text
    body = response.json()
    p = _reference_probs(engine, data)
    order = np.argsort(-p, kind="stable")
    top = body["top_k"]
    assert [t["cell"] for t in top] == order[:3].tolist()
    np.testing.assert_allclose([t["probability"] for t in top], p[order[:3]], rtol=1e-5)
    lat, lon = engine.backend.model.label_points()
    assert top[0]["lat"] == pytest.approx(lat[order[0]], abs=1e-5)
    assert distance_km(*TOKYO, top[0]["lat"], top[0]["lon"]) < 500
    assert "JP" in top[0]["place"]
    # Credible regions: the smallest set of most probable cells reaching each mass.
    areas = engine.backend.model.mesh.cell_areas_km2()
    cumulative = np.cumsum(p[order])
    for region, level in zip(body["credible_regions"], (0.5, 0.9, 0.95), strict=True):
        size = int(np.searchsorted(cumulative, level - 1e-6) + 1)
        assert region["level"] == level and region["cells"] == size
        assert region["area_km2"] == pytest.approx(areas[order[:size]].sum(), rel=1e-9)
    # Every region above 1e-4 or in a credible region, most probable first, by id: the
    # credible regions are prefixes of the list.
    listed = body["regions"]
    n = max(int((p >= 1e-4).sum()), body["credible_regions"][2]["cells"])
    assert listed["id"] == order[:n].tolist() and listed["total"] == len(p)
    np.testing.assert_allclose(listed["probability"], p[order[:n]], rtol=1e-5, atol=1e-8)
    features = body["geojson"]["features"]
    assert [f["id"] for f in features] == listed["id"]
    flagged = [f for f in features if f["properties"]["in_credible_90"]]
    assert len(flagged) == body["credible_regions"][1]["cells"]
    assert features[0]["properties"]["rank"] == 1
    assert features[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # Without the flag the answer names regions only; /v1/regions has their geometry.
    lean = _post(client, data, top_k="3").json()
    assert "geojson" not in lean and lean["regions"]["id"] == listed["id"]
    assert (
        "geojson"
        in client.post("/v1/predict?geojson=true", files={"image": ("a.jpg", data)}).json()
    )
    regions = client.get("/v1/regions").json()["features"]
    assert len(regions) == len(p) and [f["id"] for f in regions] == list(range(len(p)))
    assert regions[order[0]]["geometry"] == features[0]["geometry"]
    # The EXIF truth and the top prediction's distance from it.
    truth = body["truth"]
    assert (truth["lat"], truth["lon"]) == pytest.approx(TOKYO, abs=1e-4)
    want = distance_km(*TOKYO, lat[order[0]], lon[order[0]])
    assert truth["error_km"] == pytest.approx(want, abs=0.01)
    # Neighbours from the index: the nearest descriptors, brute force.
    index = engine.index
    x = index.index.reconstruct_n(0, len(index)).astype(np.float64)
    descriptor = engine.backend.infer([Image.open(io.BytesIO(data)).convert("RGB")], [None])[0]
    d = np.sqrt(((x - descriptor.descriptor) ** 2).sum(1))
    nearest = index.photos["photo_id"].to_numpy()[np.argsort(d, kind="stable")[:6]]
    assert [n["photo_id"] for n in body["neighbours"]] == nearest.tolist()
    assert all(n["photo_id"].startswith("p2-") for n in body["neighbours"])  # Tokyo's photos
    assert body["knn_estimate"] is not None
    thumb = client.get(body["neighbours"][0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    assert body["model"]["answered_by"] == "M1" and body["model"]["time_used"] is False


def test_batch_gives_the_same_answer_per_image_and_an_error_for_a_bad_one(client):
    good = photo_with_gps(BLUE, *TOKYO)
    other = png_bytes(seed=3)
    files = [
        ("images", ("a.jpg", good)),
        ("images", ("b.txt", b"not a photo")),
        ("images", ("c.png", other)),
    ]
    response = client.post("/v1/predict/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3 and results[1]["status"] == 415
    for got, data, name in ((results[0], good, "a.jpg"), (results[2], other, "c.png")):
        single = _post(client, data, name).json()["top_k"]
        # Same cells and places; probabilities equal up to float32 batching differences.
        assert [t["cell"] for t in got["top_k"]] == [t["cell"] for t in single]
        assert [t["place"] for t in got["top_k"]] == [t["place"] for t in single]
        np.testing.assert_allclose(
            [t["probability"] for t in got["top_k"]], [t["probability"] for t in single], atol=1e-6
        )


def test_model_mesh_land_health_page_and_docs(client, engine):
    model = client.get("/v1/model").json()
    assert model["model_id"] == engine.backend.model_id and model["kind"] == "M1"
    assert model["backbone"] == "test_resnet" and model["label_kind"] == "imagery"
    assert model["training_data_sha256"] and model["index"]["photos"] == len(engine.index)
    mesh = client.get("/v1/mesh").json()
    assert len(mesh["features"]) == len(engine.backend.mesh.triangles_)
    land = client.get("/v1/land").json()
    assert len(land["features"]) > 50
    assert client.get("/v1/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "Drop a photo" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/v1/index/photos/100000/thumbnail").status_code == 404


def test_uploads_over_20_mb_get_413(client):
    big = b"\xff\xd8\xff" + bytes(20 * 1024 * 1024)  # 20 MB + 3 bytes
    response = _post(client, big)
    assert response.status_code == 413 and "20 MB" in response.json()["detail"]
    files = [("images", (f"{i}.png", png_bytes(seed=i))) for i in range(17)]
    response = client.post("/v1/predict/batch", files=files)
    assert response.status_code == 413 and "at most 16" in response.json()["detail"]


def test_a_streamed_body_without_content_length_is_cut_at_the_limit(engine):
    app = create_app(engine, Limits(max_upload_mb=0.01))

    async def body():
        boundary = b"xyz"
        yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(50):
            yield bytes(1024)
        yield b"\r\n--" + boundary + b"--\r\n"

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return await c.post(
                "/v1/predict",
                content=body(),
                headers={"content-type": "multipart/form-data; boundary=xyz"},
            )

    response = asyncio.run(run())
    assert response.status_code == 413


def test_non_images_get_415_with_a_message(client):
    response = _post(client, b"hello, this is text", "notes.txt")
    assert response.status_code == 415 and "not an image" in response.json()["detail"]
    response = _post(client, b"", "empty.jpg")
    assert response.status_code == 415
    response = client.post("/v1/predict", json={"image": "x"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]


def test_decompression_bombs_and_broken_images_get_422(client):
    # 10000 x 10000 = 100 M pixels, over Pillow's MAX_IMAGE_PIXELS (89.5 M): its guard fires.
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 1024 * 1024
    response = _post(client, buffer.getvalue(), "bomb.png")
    assert response.status_code == 422 and "decompression bomb" in response.json()["detail"]
    truncated = photo_with_gps(BLUE, *TOKYO)[:300]
    assert _post(client, truncated).status_code == 422
    assert _post(client, png_bytes(), posted_at="yesterday").status_code == 422
    assert _post(client, png_bytes(), top_k="0").status_code == 422
    assert client.post("/v1/predict", files={"other": ("a.png", png_bytes())}).status_code == 422


class Gated:
    """The real engine, its forward passes held at a gate so requests pile up
    deterministically; ``passes`` records each pass's size."""

    def __init__(self, engine):
        self.engine, self.gate, self.started = engine, threading.Event(), threading.Event()
        self.passes: list[int] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def infer_prepared(self, inputs, posted_at):
        self.passes.append(len(inputs))
        self.started.set()
        self.gate.wait(30)
        return self.engine.infer_prepared(inputs, posted_at)


def test_past_the_bounded_queue_requests_get_503_with_retry_after(engine):
    gated = Gated(engine)
    app = create_app(gated, Limits(max_concurrent=1, max_queue=1, batch_size=1))
    data = png_bytes()

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as c:
            post = lambda: c.post("/v1/predict", files={"image": ("a.png", data)})  # noqa: E731
            first = asyncio.create_task(post())
            await asyncio.to_thread(gated.started.wait, 30)
            second = asyncio.create_task(post())  # waits in the queue
            await asyncio.sleep(0.3)
            third = await post()  # one in a running pass + one queued: refused
            health = (await c.get("/v1/health")).json()
            gated.gate.set()
            return third, health, await first, await second

    third, health, first, second = asyncio.run(run())
    assert third.status_code == 503 and int(third.headers["Retry-After"]) >= 1
    assert "busy" in third.json()["detail"]
    assert health["inflight"] == 2 and health["running"] == 1 and health["queued"] == 1
    assert first.status_code == 200 and second.status_code == 200


def test_uploads_and_their_exif_are_never_written_to_disk_or_logged(engine, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was about to be written to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    # A 3 MB photo: Starlette's own form parser would spool it to disk past 1 MB.
    pixels = np.random.default_rng(1).integers(0, 255, (1000, 1000, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010E] = "SECRET-MARKER-4711"
    exif.get_ifd(0x8825).update({1: "N", 2: (12.0, 34.0, 56.0), 3: "W", 4: (65.0, 43.0, 21.0)})
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif.tobytes())
    data = buffer.getvalue()
    assert len(data) > 2 * 1024 * 1024
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(engine), base_url=BASE) as client:
        response = _post(client, data, "secret.png")
    assert response.status_code == 200, response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SECRET-MARKER" not in logged and "12.58" not in logged and "65.72" not in logged


def test_coarsened_answers_round_every_coordinate_and_withhold_exif(world_model):
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.serve.coarsen import round_to_grid
    from trigeo.serve.engine import Engine, load_backend

    model_dir, _, index_dir = world_model
    engine = Engine(load_backend(model_dir), index=RetrievalIndex.load(index_dir), coarsen_km=250)
    with TestClient(create_app(engine), base_url=BASE) as client:
        body = _post(client, photo_with_gps(BLUE, *TOKYO)).json()
        # Thumbnails of other people's photos are off when coarsening: no link, and 404.
        assert all(n["thumbnail"] is None for n in body["neighbours"])
        thumb = client.get("/v1/index/photos/0/thumbnail")
        assert thumb.status_code == 404 and "thumbnails are off" in thumb.json()["detail"]
        assert client.get("/v1/model").json()["thumbnails"] is False
        regions = client.get("/v1/regions").json()
        assert len(regions["features"]) == len(engine.regions)
    points = [(t["lat"], t["lon"]) for t in body["top_k"]]
    points += [(n["lat"], n["lon"]) for n in body["neighbours"]]
    points += [(body["knn_estimate"]["lat"], body["knn_estimate"]["lon"])]
    for lat, lon in points:
        r_lat, r_lon = round_to_grid(lat, lon, 250)
        assert (lat, lon) == pytest.approx((float(r_lat), float(r_lon)), abs=1e-4)
    assert body["truth"]["withheld"] is True and "lat" not in body["truth"]
    text = str(body)
    assert "35.68" not in text and "139.7," not in text
    assert body["coarsen_km"] == 250 and "cells" in body["top_k"][0]
    # --thumbnails turns them back on for a coarsened server that wants them.
    engine = Engine(
        load_backend(model_dir),
        index=RetrievalIndex.load(index_dir),
        coarsen_km=250,
        thumbnails=True,
    )
    with TestClient(create_app(engine), base_url=BASE) as client:
        body = _post(client, photo_with_gps(BLUE, *TOKYO)).json()
        assert client.get(body["neighbours"][0]["thumbnail"]).status_code == 200


def test_serve_binds_loopback_by_default_and_warns_otherwise(world_model, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from trigeo.cli import app
    from trigeo.serve.cli import exposure_warning

    assert exposure_warning("127.0.0.1") is None and exposure_warning("::1") is None
    assert exposure_warning("localhost") is None
    assert "not 127.0.0.1" in exposure_warning("0.0.0.0")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({**kw, "app": app}))
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--model", str(world_model[0])])
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "127.0.0.1" and "warning" not in result.output
    result = runner.invoke(app, ["serve", "--model", str(world_model[0]), "--host", "0.0.0.0"])
    assert calls[-1]["host"] == "0.0.0.0" and "warning" in result.output
    assert "--coarsen-km" in result.output and "--allowed-host" in result.output
    # --allowed-host names reach the app's Host check; batching options its limits.
    options = ["--allowed-host", "photos.lan", "--allowed-host", "Other.Lan"]
    options += ["--batch-size", "4", "--batch-wait-ms", "2"]
    result = runner.invoke(app, ["serve", "--model", str(world_model[0]), *options])
    assert result.exit_code == 0, result.output
    served = calls[-1]["app"]
    limits = served.state.limits
    assert (limits.batch_size, limits.batch_wait_ms, limits.max_queue) == (4, 2.0, 32)
    for name, status in (("photos.lan", 200), ("other.lan:8000", 200), ("evil.example", 421)):
        with TestClient(served, base_url=f"http://{name}") as c:
            assert c.get("/v1/health").status_code == status, name
    # --accelerator: the CPU is named in the start line and /v1/model; a GPU this
    # machine lacks is refused before the model loads (nothing is served).
    result = runner.invoke(app, ["serve", "--model", str(world_model[0]), "--accelerator", "cpu"])
    assert result.exit_code == 0 and "(cpu, " in " ".join(result.output.split())
    with TestClient(calls[-1]["app"], base_url=BASE) as c:
        assert c.get("/v1/model").json()["device"] == "cpu"
    import torch

    if not torch.cuda.is_available():
        served_before = len(calls)
        result = runner.invoke(
            app, ["serve", "--model", str(world_model[0]), "--accelerator", "gpu"]
        )
        assert result.exit_code != 0 and "no CUDA GPU" in " ".join(result.output.split())
        assert len(calls) == served_before


def test_heic_uploads_are_answered_with_their_exif_gps(client, engine):
    from data.test_heic import TOKYO_GPS, photo

    data = photo("HEIF", TOKYO_GPS, size=(64, 48))
    assert data[4:12] == b"ftypheic"
    response = _post(client, data, "IMG_0001.HEIC")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["truth"]["lat"], body["truth"]["lon"]) == pytest.approx(TOKYO, abs=1e-4)
    p = _reference_probs(engine, data)
    assert body["top_k"][0]["cell"] == int(np.argmax(p))
    assert _post(client, photo("AVIF", TOKYO_GPS), "a.avif").status_code == 200


def test_a_sideways_phone_jpeg_is_answered_upright(client, engine):
    """EXIF Orientation 6 (rotate 90°): the server sees the photo as predict does."""
    import torch
    from PIL import ImageOps

    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, :40] = (220, 40, 40)  # left half red, right half blue: orientation matters
    pixels[:, 40:] = (40, 40, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    body = _post(client, data, top_k="3").json()
    with Image.open(io.BytesIO(data)) as img:
        upright = ImageOps.exif_transpose(img).convert("RGB")
    assert upright.size == (40, 80)
    model = engine.backend.model
    with torch.no_grad():
        logits = model.net(engine.backend.transform(upright).unsqueeze(0)).double()
    p = torch.softmax(logits / model.temperature, 1)[0].numpy()
    np.testing.assert_allclose(
        [t["probability"] for t in body["top_k"]], np.sort(p)[::-1][:3], rtol=1e-5
    )


def test_answers_are_the_json_of_the_standard_encoder_with_nan_as_null():
    import json

    from trigeo.serve.app import _Answer

    document = {
        "lat": 51.89583,
        "p": [0.0032331780595534244, 1e-05, 3],
        "place": "Zürich, CH (2 km)",
        "note": None,
        "missing": float("nan"),
    }
    response = _Answer(document)
    assert response.media_type == "application/json"
    # Same numbers back, bit for bit, as the standard library's encoder would give.
    reference = json.loads(json.dumps({**document, "missing": None}))
    assert json.loads(response.body) == reference
    assert "Zürich".encode() in response.body  # UTF-8, not \u escapes
