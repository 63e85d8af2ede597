"""Dynamic batching: concurrent requests share forward passes, answers stay per request.

A gate holds the first forward pass so that the requests sent meanwhile are all queued,
deterministically; the next pass must then take them together (at most ``batch_size``).
"""

from __future__ import annotations

import asyncio
import io
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from serve.conftest import photo_with_gps, png_bytes
from trigeo.serve.app import create_app
from trigeo.serve.limits import Limits

BASE = "http://127.0.0.1:8000"


class Gated:
    """The real engine with its forward passes held at a gate; records each pass."""

    def __init__(self, engine, fail_on=None):
        self.engine = engine
        self.gate, self.started = threading.Event(), threading.Event()
        self.passes: list[list[int]] = []
        self.fail_on = fail_on

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def infer_prepared(self, inputs, posted_at):
        self.passes.append(len(inputs))
        self.started.set()
        self.gate.wait(30)
        if self.fail_on is not None and any(self.fail_on(x) for x in inputs):
            raise RuntimeError("this photo breaks the model")
        return self.engine.infer_prepared(inputs, posted_at)


def _run(app, first, rest, timeout=60):
    """Send ``first``, wait until its pass holds the gate, send ``rest`` concurrently,
    let a moment pass for them to queue, open the gate; all responses in order."""

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=timeout) as c:
            head = asyncio.create_task(first(c))
            await asyncio.to_thread(app.state.engine.started.wait, 30)
            tail = [asyncio.create_task(send(c)) for send in rest]
            admission = app.state.admission
            for _ in range(500):  # until every request is admitted and has its photos queued
                if admission.inflight == 1 + len(rest) and admission.arriving == 0:
                    break
                await asyncio.sleep(0.02)
            app.state.engine.gate.set()
            return [await head] + [await t for t in tail]

    return asyncio.run(go())


def _single(data, **fields):
    return lambda client: client.post("/v1/predict", files={"image": ("a.png", data)}, data=fields)


def test_concurrent_requests_with_different_top_k_share_one_forward_pass(engine):
    gated = Gated(engine)
    app = create_app(gated, Limits(max_concurrent=1, batch_size=8, batch_wait_ms=5))
    photos = [png_bytes(seed=s) for s in range(7)]
    first = _single(photos[0])
    rest = [_single(photos[i], top_k=str(i)) for i in range(1, 7)]
    responses = _run(app, first, rest)
    assert [r.status_code for r in responses] == [200] * 7
    # The first pass held one photo; the six sent while it ran went in one pass together.
    assert gated.passes == [1, 6]
    assert [len(r.json()["top_k"]) for r in responses[1:]] == [1, 2, 3, 4, 5, 6]
    # Each answer is its own photo's: the same as the engine's unbatched answer.
    for data, response in zip(photos, responses, strict=True):
        alone = engine.predict([Image.open(io.BytesIO(data)).convert("RGB")], [None], [None], 6)
        got = response.json()["top_k"]
        assert [t["cell"] for t in got] == [t["cell"] for t in alone[0]["top_k"]][: len(got)]
        np.testing.assert_allclose(
            [t["probability"] for t in got],
            [t["probability"] for t in alone[0]["top_k"]][: len(got)],
            atol=1e-6,
        )
    assert app.state.admission.inflight == 0 and app.state.admission.in_pass == 0


def test_a_batch_request_is_split_into_passes_of_at_most_batch_size(engine):
    gated = Gated(engine)
    gated.gate.set()
    app = create_app(gated, Limits(max_concurrent=1, batch_size=4))
    files = [("images", (f"{i}.png", png_bytes(seed=i))) for i in range(10)]

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as c:
            return await c.post("/v1/predict/batch", files=files)

    response = asyncio.run(go())
    assert response.status_code == 200
    assert len(response.json()["results"]) == 10
    assert gated.passes == [4, 4, 2]


def test_one_photo_that_breaks_the_pass_fails_only_its_own_request(engine):
    # The poisoned photo is the one whose tensor starts at the normalised value of a
    # black pixel; the model "fails" on any pass that holds it.
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 0, 0)).save(buffer, format="PNG")
    black = buffer.getvalue()
    marker = float(engine.prepare(Image.new("RGB", (32, 32), (0, 0, 0))).flatten()[0])
    gated = Gated(engine, fail_on=lambda x: abs(float(x.flatten()[0]) - marker) < 1e-6)
    app = create_app(gated, Limits(max_concurrent=1, batch_size=8))
    good = [png_bytes(seed=s) for s in range(1, 5)]
    first = _single(good[0])
    rest = [_single(good[1]), _single(black), _single(good[2])]
    rest.append(
        lambda c: c.post(
            "/v1/predict/batch",
            files=[("images", ("g.png", good[3])), ("images", ("b.png", black))],
        )
    )
    responses = _run(app, first, rest)
    assert [r.status_code for r in responses] == [200, 200, 500, 200, 200]
    assert "inference failed" in responses[2].json()["detail"]
    batch = responses[4].json()["results"]
    assert "top_k" in batch[0] and batch[1]["status"] == 500
    # The shared pass failed, then each of its photos ran alone.
    assert gated.passes[:2] == [1, 5] and len(gated.passes) == 2 + 5


def test_a_lone_request_does_not_wait_to_fill_a_pass(engine):
    app = create_app(engine, Limits(max_concurrent=1, batch_size=16, batch_wait_ms=500))
    data = photo_with_gps((40, 40, 220), 35.68, 139.7)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as c:
            for _ in range(3):  # one at a time, as a single client sends them
                response = await c.post("/v1/predict", files={"image": ("a.jpg", data)})
                assert response.status_code == 200
                await asyncio.sleep(0.6)  # slower than the pass's wait: a trickle

    asyncio.run(go())
    assert list(app.state.batcher.pass_sizes) == [1, 1, 1]
    assert app.state.batcher.fill_waits == 0


def test_a_fast_stream_of_requests_fills_passes(engine):
    """Requests admitted less than --batch-wait-ms apart: a pass waits for the next one."""
    app = create_app(engine, Limits(max_concurrent=1, batch_size=16, batch_wait_ms=200))
    photos = [png_bytes(seed=s) for s in range(8)]

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as c:

            async def client(i):
                await asyncio.sleep(0.02 * i)  # staggered: each arrives after the last
                files = {"image": ("a.png", photos[i])}
                return await c.post("/v1/predict", files=files)

            return await asyncio.gather(*(client(i) for i in range(8)))

    responses = asyncio.run(go())
    assert [r.status_code for r in responses] == [200] * 8
    # Not eight passes of one: later arrivals joined a waiting pass.
    assert len(app.state.batcher.pass_sizes) < 8 and app.state.batcher.fill_waits >= 1


@pytest.mark.parametrize("batch_size", [1, 3])
def test_health_reports_the_batching_settings(engine, batch_size):
    app = create_app(engine, Limits(batch_size=batch_size, batch_wait_ms=7))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return (await c.get("/v1/health")).json()

    health = asyncio.run(go())
    assert health["batch_size"] == batch_size and health["batch_wait_ms"] == 7
    assert health["queued"] == 0 and health["running"] == 0
