"""Fetch the images of a table whose ``image`` column holds URLs.

* **Bounded concurrency:** a fixed pool of ``workers`` threads (stdlib
  ``urllib``: no extra dependency).
* **Retries with backoff:** timeouts, connection errors, truncated bodies,
  HTTP 429 and 5xx are retried after ``backoff * 2**attempt`` seconds (with
  jitter); 4xx answers other than 429 are dead links at once. A body that is
  not a decodable image is retried too (a broken transfer looks the same),
  then reported as corrupt.
* **Resume:** each image goes to a path derived from its photo id and is
  written atomically, so an existing file is a finished download. After an
  interruption, run again: finished files are not fetched twice.
* **Report:** dead links are counted by reason in ``download-report.json`` and
  listed in ``dead-links.csv``. Their rows keep the URL (a later run retries
  them) unless ``drop_failed`` removes them.

For large sets (millions of images, or more than one machine) use img2dataset
instead: :mod:`trigeo.data.img2dataset` writes its input and attaches its output.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.images import BadImageError, decode_image
from trigeo.data.report import ImportReport
from trigeo.data.split import keep_meta
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, make_provenance

__all__ = ["DEAD_FILE", "REPORT_FILE", "download_images", "local_image_path"]

REPORT_FILE = "download-report.json"
DEAD_FILE = "dead-links.csv"
_USER_AGENT = "trigeo-download/1 (+https://github.com/)"


class _FetchError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class _RetryError(_FetchError):
    """A transient failure: worth another attempt."""


class _DeadLinkError(_FetchError):
    """A permanent failure: the link is reported dead."""


def local_image_path(photo_id: str, url: str) -> str:
    """Relative path a photo's image is downloaded to (stable across runs)."""
    digest = hashlib.sha1(photo_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]
    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    suffix = suffix if suffix in (".jpg", ".jpeg", ".png", ".webp", ".gif") else ".jpg"
    return f"images/{digest[:2]}/{digest}{suffix}"


# Loopback never goes through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _fetch_once(url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    host = urllib.parse.urlsplit(url).hostname or ""
    opener = _DIRECT if host in _LOOPBACK else urllib.request.build_opener()
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _RetryError(f"HTTP {exc.code}", url) from exc
        raise _DeadLinkError(f"HTTP {exc.code}", url) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _RetryError("timeout", url) from exc
        if isinstance(exc.reason, OSError):
            raise _RetryError("connection error", f"{url}: {exc.reason}") from exc
        raise _DeadLinkError("bad URL", f"{url}: {exc.reason}") from exc
    except TimeoutError as exc:
        raise _RetryError("timeout", url) from exc
    except http.client.IncompleteRead as exc:
        raise _RetryError("truncated body", url) from exc
    except (http.client.HTTPException, ConnectionError, OSError) as exc:
        raise _RetryError("connection error", f"{url}: {exc}") from exc
    except ValueError as exc:
        raise _DeadLinkError("bad URL", f"{url}: {exc}") from exc
    if len(data) > max_bytes:
        raise _DeadLinkError("too large", f"{url}: more than {max_bytes} bytes")
    return data


def download_images(
    root: str | Path,
    *,
    workers: int = 16,
    retries: int = 3,
    timeout: float = 20.0,
    backoff: float = 1.0,
    max_bytes: int = 50_000_000,
    drop_failed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, ImportReport]:
    """Download every URL in dataset ``root`` into ``root/images/`` and rewrite the table.

    Parameters
    ----------
    root
        Dataset directory whose ``image`` column holds http(s) URLs (other
        rows are left alone).
    workers
        Concurrent downloads.
    retries
        Further attempts after a transient failure.
    timeout
        Seconds per request.
    backoff
        First retry delay in seconds; doubles each attempt.
    max_bytes
        Larger bodies are refused.
    drop_failed
        Remove rows whose image could not be fetched (else they keep the URL).
    progress
        Called with 1 after each image.

    Returns
    -------
    (Dataset, ImportReport)
    """
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    root = Path(root)
    dataset = Dataset.open(root)
    table = dataset.table.copy()
    images = table["image"].to_numpy(dtype=object)
    remote = np.flatnonzero(table["image"].str.contains("://", regex=False).to_numpy())
    report = ImportReport("data.download", root)
    report.read = int(remote.size)
    targets = {
        int(i): local_image_path(str(table["photo_id"].iat[i]), str(images[i])) for i in remote
    }

    def fetch(i: int) -> str | _DeadLinkError:
        url, rel = str(images[i]), targets[i]
        dest = root / rel
        if dest.exists():
            return "cached"
        last: _RetryError | None = None
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1) * (0.75 + 0.5 * random.random()))
            try:
                data = _fetch_once(url, timeout, max_bytes)
                try:
                    decode_image(data)
                except BadImageError as exc:
                    raise _RetryError(f"corrupt body ({exc.reason})", url) from exc
            except _RetryError as exc:
                last = exc
                continue
            except _DeadLinkError as exc:
                return exc
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                tmp.write_bytes(data)
            return "fetched"
        assert last is not None
        return _DeadLinkError(last.reason, f"{last.detail} (after {retries + 1} attempts)")

    failed: list[int] = []
    dead_rows: list[tuple[str, str, str, str]] = []
    cached = 0
    with ThreadPoolExecutor(workers) as pool:
        for i, result in zip(remote.tolist(), pool.map(fetch, remote.tolist()), strict=True):
            if isinstance(result, _DeadLinkError):
                failed.append(i)
                photo = str(table["photo_id"].iat[i])
                report.skip(result.reason, where=f"photo {photo}", detail=result.detail)
                dead_rows.append((photo, str(images[i]), result.reason, result.detail))
            else:
                cached += result == "cached"
                images[i] = targets[i]
            if progress:
                progress(1)
    report.written = int(remote.size - len(failed))
    report.notes["already_downloaded"] = cached
    with atomic_path(root / DEAD_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["photo_id", "url", "reason", "detail"])
        writer.writerows(dead_rows)
    table["image"] = images
    if drop_failed and failed:
        table = table.drop(index=table.index[failed]).reset_index(drop=True)
    # Every fetched row now holds a local path; only failed rows keep their URL.
    still_remote = 0 if drop_failed else len(failed)
    meta = keep_meta(dataset.meta)
    meta["images"] = "folder" if still_remote == 0 else "mixed"
    config: dict[str, Any] = {
        "stage": "data.download",
        "retries": retries,
        "timeout": timeout,
        "drop_failed": drop_failed,
    }
    provenance = make_provenance(
        config, {"table.parquet": dataset.hash}, parent=dataset.meta.get("provenance")
    )
    if len(table):
        dataset = Dataset.write(root, table, provenance, **meta)
    report.notes["remaining_urls"] = still_remote
    report.write(root / REPORT_FILE)
    return dataset, report
