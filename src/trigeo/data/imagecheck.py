"""The optional header check of an import's matched images (``--check-images``).

An import joins rows to image names without opening a file. This pass then
reads each matched image (a file, a zip member or a msgpack record, through
the dataset's ``images`` link) and opens its header with Pillow
(:func:`trigeo.data.images.sniff_image`, no pixel decode), so a file that is
not an image is reported and dropped at import time rather than by the
loaders. It is timed on its own, so the report gives its rate beside the
import's.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trigeo.data.images import BadImageError, sniff_image
from trigeo.data.stores import StoreReader

__all__ = ["HeaderCheck", "checkable"]


class HeaderCheck:
    """Reads the header of every image it is given, counting images and seconds.

    Parameters
    ----------
    out
        The dataset directory (references are relative to it: ``images/...``).
    workers
        Threads reading files. Reading is I/O: threads overlap the waits, which
        matters most on network file systems and cold caches.
    """

    def __init__(self, out: Path, workers: int = 4) -> None:
        self.out = out
        self.workers = max(1, workers)
        self.images = 0
        self.seconds = 0.0
        self._local = threading.local()

    def _reader(self) -> StoreReader:
        # One reader per thread: a reader's open shard handles are seeked per read.
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = StoreReader(self.out)
        return reader

    def _problem(self, ref: str) -> tuple[str, str] | None:
        """``(reason, detail)`` when the image at ``ref`` is unusable, else ``None``."""
        path, _, member = ref.partition("#")
        try:
            data = self._reader().read(path, member) if member else (self.out / path).read_bytes()
            sniff_image(data)
        except BadImageError as exc:
            return ("empty image" if exc.reason == "empty file" else exc.reason), exc.detail
        except (OSError, KeyError, ValueError) as exc:
            return "unreadable image", str(exc)
        return None

    def check(self, refs: pa.Array, rows: np.ndarray) -> dict[int, tuple[str, str]]:
        """Check the images of ``refs[rows]``; returns ``{row: (reason, detail)}`` for bad ones."""
        if rows.size == 0:
            return {}
        start = time.perf_counter()
        texts = refs.take(pa.array(rows, type=pa.int64())).to_pylist()
        with ThreadPoolExecutor(self.workers) as pool:
            results = list(pool.map(self._problem, texts, chunksize=256))
        self.images += rows.size
        self.seconds += time.perf_counter() - start
        return {
            int(row): result
            for row, result in zip(rows.tolist(), results, strict=True)
            if result is not None
        }

    def summary(self) -> dict[str, Any]:
        """``images``, ``seconds`` and ``images_per_second`` of the pass so far."""
        rate = round(self.images / self.seconds) if self.seconds > 0 else None
        return {
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "images_per_second": rate,
        }


def checkable(refs: pa.Array) -> np.ndarray:
    """Rows whose reference is an image to check: found, and not a URL."""
    found = pc.is_valid(refs).to_numpy(zero_copy_only=False)
    url = pc.fill_null(pc.match_substring(refs, "://"), False).to_numpy(zero_copy_only=False)
    return np.flatnonzero(found & ~url)
