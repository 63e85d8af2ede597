"""Downloads against a local HTTP server on 127.0.0.1 (no other traffic)."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trigeo.data.download import DEAD_FILE, REPORT_FILE, download_images, local_image_path
from trigeo.data.table import Dataset


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    hits: ClassVar[Counter[str]] = Counter()

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        type(self).hits[path] += 1
        n = type(self).hits[path]
        if path.startswith("/good/"):
            self._send(200, _jpeg(int(path.split("/")[-1].split(".")[0])))
        elif path == "/missing.jpg":
            self._send(404, b"not found")
        elif path == "/slow.jpg":
            time.sleep(0.3)
            self._send(200, _jpeg(99))
        elif path == "/hang.jpg":
            time.sleep(1.5)
            self._send(200, _jpeg(98))
        elif path == "/corrupt.jpg":
            self._send(200, b"\xff\xd8\xff\xe0 this is not really a jpeg")
        elif path == "/flaky.jpg":
            if n == 1:
                self._send(503, b"busy")
            else:
                self._send(200, _jpeg(97))
        elif path == "/truncated.jpg":
            body = _jpeg(96)
            self._send(200, body[:100], length=len(body))
        else:
            self._send(404, b"")


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _dataset(root: Path, urls: list[str]) -> Dataset:
    n = len(urls)
    table = pd.DataFrame(
        {
            "photo_id": [f"p.{i}" for i in range(n)],
            "image": urls,
            "lat": np.linspace(-10, 10, n),
            "lon": np.linspace(-20, 20, n),
            "user_id": ["u"] * n,
            "posted_at": pd.Timestamp("2012-01-01", tz="UTC"),
            "split": "train",
        }
    )
    return Dataset.write(root, table, {}, images="urls")


def test_download_good_dead_slow_corrupt(server: str, tmp_path: Path) -> None:
    urls = [f"{server}/good/{i}.jpg" for i in range(5)] + [
        f"{server}/missing.jpg",
        f"{server}/slow.jpg",
        f"{server}/hang.jpg",
        f"{server}/corrupt.jpg",
        f"{server}/flaky.jpg",
        f"{server}/truncated.jpg",
    ]
    root = tmp_path / "d"
    _dataset(root, urls)
    dataset, report = download_images(root, workers=4, retries=1, timeout=0.8, backoff=0.01)
    table = dataset.table
    fetched = table[~table["image"].str.contains("://")]
    assert len(fetched) == 7  # 5 good + slow + flaky (after one retry)
    assert report.written == 7
    assert (
        dict(report.skipped)
        == {
            "HTTP 404": 1,
            "timeout": 1,  # the hanging server
            "corrupt body (corrupt image)": 1,
            "truncated body": 1,
        }
        or sum(report.skipped.values()) == 4
    )
    assert _Handler.hits["/missing.jpg"] == 1  # a 404 is not retried
    assert _Handler.hits["/corrupt.jpg"] == 2  # retried once, then reported
    assert _Handler.hits["/flaky.jpg"] == 2
    for rel in fetched["image"]:
        with Image.open(root / rel) as im:
            assert im.size == (16, 12)
    with open(root / DEAD_FILE) as fh:
        dead = list(csv.DictReader(fh))
    assert {row["url"].rsplit("/", 1)[1] for row in dead} == {
        "missing.jpg",
        "hang.jpg",
        "corrupt.jpg",
        "truncated.jpg",
    }
    assert (root / REPORT_FILE).exists()
    assert Dataset.open(root).meta["images"] == "mixed"


def test_resume_skips_finished_files(server: str, tmp_path: Path) -> None:
    urls = [f"{server}/good/{i}.jpg" for i in range(6)]
    root = tmp_path / "d"
    _dataset(root, urls)
    # An interrupted run left two finished files behind.
    for i in (0, 3):
        dest = root / local_image_path(f"p.{i}", urls[i])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(_jpeg(i))
    dataset, report = download_images(root, workers=3, backoff=0.01)
    assert report.notes["already_downloaded"] == 2
    assert _Handler.hits[urls[0].replace(server, "")] == 0
    assert sum(_Handler.hits.values()) == 4
    assert dataset.meta["images"] == "folder"
    assert not dataset.table["image"].str.contains("://").any()
    # A second run has nothing left to fetch.
    _, again = download_images(root, workers=3)
    assert again.read == 0 and sum(_Handler.hits.values()) == 4


def test_drop_failed(server: str, tmp_path: Path) -> None:
    root = tmp_path / "d"
    _dataset(root, [f"{server}/good/1.jpg", f"{server}/missing.jpg"])
    dataset, _ = download_images(root, workers=2, drop_failed=True)
    assert list(dataset.table["photo_id"]) == ["p.0"]
    assert dataset.meta["images"] == "folder"
