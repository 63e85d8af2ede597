"""The page in a real browser: Playwright drives Debian's headless Chromium against a real
``trigeo serve`` process, drops a photo on the page and screenshots the shaded map.

Chromium resolves ``rebind.example`` to 127.0.0.1 (``--host-resolver-rules``), as a DNS
rebinding attacker's name would: the same server must refuse the page under that name,
and answer it under ``localhost``."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serve.conftest import photo_with_gps

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # An attacker's name pointed at this machine, as DNS rebinding does.
    "--host-resolver-rules=MAP rebind.example 127.0.0.1",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _trigeo_serve(world_model, tmp_path: Path, *extra: str):
    """A real ``trigeo serve`` process on a free loopback port; yields its URL."""
    model_dir, _, index_dir = world_model
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # closed below, after the server stops
    command = [str(Path(sys.executable).with_name("trigeo")), "serve", "--model", str(model_dir)]
    command += ["--index", str(index_dir), "--port", str(port), "--max-concurrent", "1", *extra]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture
def server(world_model, tmp_path):
    with _trigeo_serve(world_model, tmp_path) as url:
        yield url


DROP = """(b64) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const file = new File([bytes], "tokyo.jpg", { type: "image/jpeg" });
    const dt = new DataTransfer();
    dt.items.add(file);
    const target = document.getElementById("drop");
    for (const type of ["dragenter", "dragover", "drop"]) {
        const init = { dataTransfer: dt, bubbles: true };
        target.dispatchEvent(new DragEvent(type, init));
    }
}"""


# Visible marker labels and how many pairs of them overlap on screen.
LABEL_OVERLAPS = """() => {
    const rs = [...document.querySelectorAll('#markers text')]
        .filter(t => getComputedStyle(t).visibility !== 'hidden')
        .map(t => t.getBoundingClientRect());
    let overlaps = 0;
    for (let i = 0; i < rs.length; i++)
        for (let j = i + 1; j < rs.length; j++) {
            const a = rs[i], b = rs[j];
            if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
                overlaps++;
        }
    return { visible: rs.length, overlaps };
}"""


def test_a_coarsened_server_shows_no_thumbnails(world_model, tmp_path):
    from playwright.sync_api import sync_playwright

    photo = base64.b64encode(photo_with_gps((40, 40, 220), 35.68, 139.7)).decode()
    with _trigeo_serve(world_model, tmp_path, "--coarsen-km", "250") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                thumbnails: list[str] = []
                page.on("request", lambda r: thumbnails.append(r.url) if "thumb" in r.url else None)
                page.goto(url + "/")
                page.wait_for_function("document.querySelectorAll('#land path').length > 50")
                page.evaluate(DROP, photo)
                page.wait_for_selector("body[data-state=shown]", timeout=60_000)
                # Neighbours are listed by caption only; no thumbnail is asked for.
                assert page.locator("#neighbours figure").count() == 6
                assert page.locator("#neighbours img").count() == 0
                assert page.is_visible("#nothumbs") and thumbnails == []
                assert "does not echo" in page.inner_text("#truth")
                assert page.locator("#regions path.region").count() >= 1
            finally:
                browser.close()


def test_dropping_a_photo_shades_the_map_and_lists_the_top_k(server, tmp_path):
    from playwright.sync_api import sync_playwright

    photo = base64.b64encode(photo_with_gps((40, 40, 220), 35.68, 139.7)).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            outside: list[str] = []
            seen: list[str] = []
            page.on("request", lambda r: seen.append(r.url))
            page.on(
                "request",
                lambda r: (
                    None if r.url.startswith((server, "data:", "blob:")) else outside.append(r.url)
                ),
            )
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#land path').length > 50")
            # Drop the photo on the drop zone, as a person dragging a file would.
            page.evaluate(DROP, photo)
            page.wait_for_selector("body[data-state=shown]", timeout=60_000)
            items = page.locator("#topk li")
            assert items.count() >= 1 and "Tokyo" in items.first.inner_text()
            fills = page.eval_on_selector_all(
                "#regions path.region", "ps => ps.map(p => p.getAttribute('fill'))"
            )
            assert len(fills) >= 1 and all(f.startswith("rgb(") for f in fills)
            credible = page.get_attribute("#credible path.credible90", "d")
            assert credible and credible.startswith("M")
            assert page.locator("#markers .topk").count() == items.count()
            labels = page.evaluate(LABEL_OVERLAPS)
            assert labels["visible"] >= 1 and labels["overlaps"] == 0, labels
            assert "km away" in page.inner_text("#truth")
            assert page.locator("#neighbours img").count() == 6
            page.wait_for_function(
                "[...document.querySelectorAll('#neighbours img')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            shot = tmp_path / "serve-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            # Zoom with the button, then pan by dragging: the view box changes.
            before = page.get_attribute("#map", "viewBox")
            page.click("#zoomin")
            zoomed = page.get_attribute("#map", "viewBox")
            box = page.locator("#map").bounding_box()
            page.mouse.move(box["x"] + 300, box["y"] + 200)
            page.mouse.down()
            page.mouse.move(box["x"] + 400, box["y"] + 250)
            page.mouse.up()
            assert len({before, zoomed, page.get_attribute("#map", "viewBox")}) == 3
            assert page.evaluate(LABEL_OVERLAPS)["overlaps"] == 0
            assert outside == []  # offline: nothing but the trigeo server was asked for
            # Region geometry came once, from /v1/regions; the answer named regions by id.
            assert [u for u in seen if u.endswith("/v1/regions")] == [server + "/v1/regions"]
            assert [u for u in seen if "/v1/predict" in u] == [server + "/v1/predict"]
            # Under localhost the page works; under the rebinding name the server refuses it.
            port = server.rsplit(":", 1)[1]
            local = browser.new_page()
            local.goto(f"http://localhost:{port}/")
            local.wait_for_function("document.querySelectorAll('#land path').length > 50")
            assert "Drop a photo" in local.inner_text("#status")
            rebound = browser.new_page()
            response = rebound.goto(f"http://rebind.example:{port}/")
            assert response is not None and response.status == 421
            assert "--allowed-host" in rebound.inner_text("body")
            assert rebound.evaluate("fetch('/v1/model').then(r => r.status)") == 421
        finally:
            browser.close()
    keep = os.environ.get("TRIGEO_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
