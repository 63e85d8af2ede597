"""Byte streams of the metadata importers: hashed, decompressed, UTF-8-cleaned.

:func:`open_bytes` opens a file once for everything an import needs from its
bytes: the SHA-256 for provenance (:class:`HashingReader`, no second pass),
bz2 or gzip decompression that hands on what came before a break instead of
raising (:class:`Decompressed`), and :class:`Utf8Clean`, which passes on whole
lines only, with invalid UTF-8 replaced, so a bad byte costs at most its row.
Used by :mod:`trigeo.data.yfcc`.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import zlib
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["BROKEN_VERB", "RAW_CHUNK", "Decompressed", "HashingReader", "Utf8Clean", "open_bytes"]


class HashingReader(io.RawIOBase):
    """A file read once, hashing its bytes on the way (no second pass for provenance)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")
        self.digest = hashlib.sha256()
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        n = self._file.readinto(target)
        if n:
            self.digest.update(memoryview(target)[:n])
        else:
            self.eof = True
        return n or 0

    def close(self) -> None:
        self._file.close()
        super().close()


#: Bytes read from the file per call (and the buffers' size).
RAW_CHUNK = 1 << 20
#: How a broken stream's reason reads in a sentence ("the gzip data ends early, ...").
BROKEN_VERB = {"truncated": "ends early,", "corrupt": "is corrupt"}


class Decompressed(io.RawIOBase):
    """The decompressed bytes of a bz2 or gzip file of one or more streams (members).

    Unlike ``bz2.open``/``gzip.open``, a file that ends inside a stream or holds
    corrupt data does not raise here and lose what was decompressed before:
    that is returned, then the stream ends and :attr:`broken` says why.
    (``bz2.open`` also takes a corrupt stream after the first for trailing
    junk and drops it without a word; here it is reported as corrupt.)
    Zero bytes between or after streams are skipped, as ``gzip`` does.
    """

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        self._raw = raw
        self._kind = kind
        self._decompressor = self._new()
        self._pending = b""  # compressed bytes read but not yet fed
        self._done = False
        self.broken: tuple[str, str] | None = None
        """``("truncated" | "corrupt", detail)`` once the data stopped early."""

    def _new(self) -> Any:
        return bz2.BZ2Decompressor() if self._kind == "bz2" else zlib.decompressobj(wbits=31)

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        while not self._done:
            data = self._step(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
        return 0

    def _step(self, size: int) -> bytes:
        """Decompress at most ``size`` bytes; ``b""`` may only mean more input is needed."""
        d = self._decompressor
        if d.eof:  # a stream ended: is another one next?
            rest = (d.unused_data + self._pending).lstrip(b"\0")
            while not rest:
                chunk = self._raw.read(RAW_CHUNK)
                if not chunk:
                    self._done = True
                    return b""
                rest = chunk.lstrip(b"\0")
            self._decompressor = d = self._new()
            self._pending = rest
        if self._kind == "bz2" and not d.needs_input:
            feed = b""  # it still holds input from the last call
        elif self._pending:
            feed, self._pending = self._pending, b""
        else:
            feed = self._raw.read(RAW_CHUNK)
            if not feed:
                self.broken = ("truncated", "the file stops mid-stream: a partial download?")
                self._done = True
                return b""
        try:
            out: bytes = d.decompress(feed, size)
        except (OSError, zlib.error) as exc:
            self.broken = ("corrupt", str(exc))
            self._done = True
            return b""
        if self._kind == "gzip":
            self._pending = d.unconsumed_tail + self._pending
        return out

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_bytes(path: Path) -> tuple[BinaryIO, str, HashingReader, Decompressed | None]:
    """The file's (decompressed) bytes, its compression, its hasher and its decompressor."""
    with open(path, "rb") as handle:
        magic = handle.read(3)
    hashing = HashingReader(path)
    raw = io.BufferedReader(hashing, buffer_size=RAW_CHUNK)
    kind = "bz2" if magic.startswith(b"BZh") else "gzip" if magic.startswith(b"\x1f\x8b") else None
    if kind is None:
        return raw, "none", hashing, None
    decompressed = Decompressed(raw, kind)
    stream = io.BufferedReader(decompressed, buffer_size=RAW_CHUNK)
    return stream, kind, hashing, decompressed  # type: ignore[return-value]


class Utf8Clean(io.RawIOBase):
    """Whole lines of a byte stream, invalid UTF-8 replaced by U+FFFD, counted.

    Bytes after the last newline of a chunk are held back until their line
    completes, so what is handed on always ends at a line end: no UTF-8
    sequence is split, and when compressed input breaks off (``source.broken``)
    the partial line at the break is dropped instead of being parsed as a row.
    Pure-ASCII chunks (nearly all of YFCC, whose text is URL-encoded) pass
    through as views, uncopied; others are decoded with ``errors="replace"``.
    """

    def __init__(
        self, raw: BinaryIO, source: Decompressed | None = None, chunk: int = 1 << 22
    ) -> None:
        self._raw = raw
        self._source = source
        self._chunk = chunk
        self._tail = b""  # the start of a line whose end is not read yet
        self._pieces: deque[memoryview] = deque()
        self._eof = False
        self.lines = 0
        """Complete lines handed on so far."""

    def readable(self) -> bool:
        return True

    def _refill(self) -> None:
        chunk = self._raw.read(self._chunk)
        broken = self._source is not None and self._source.broken is not None
        end = not chunk or broken
        cut = chunk.rfind(b"\n") + 1
        if not end and cut == 0:  # a line longer than the chunk: read on
            self._tail += chunk
            return
        if end:
            self._eof = True
            if not broken:
                cut = len(chunk)  # at the true end a last line needs no newline
        pieces = [] if broken and cut == 0 else [memoryview(self._tail), memoryview(chunk)[:cut]]
        ascii_only = self._tail.isascii() and chunk.isascii()
        self._tail = b"" if end else chunk[cut:]
        self.lines += chunk.count(b"\n", 0, cut)  # the tail holds none
        if pieces and not ascii_only:
            text = b"".join(pieces).decode("utf-8", errors="replace")
            pieces = [memoryview(text.encode("utf-8"))]
        self._pieces.extend(piece for piece in pieces if len(piece))

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        while not self._pieces and not self._eof:
            self._refill()
        if not self._pieces:
            return 0
        piece = self._pieces[0]
        n = min(len(view), len(piece))
        view[:n] = piece[:n]
        if n == len(piece):
            self._pieces.popleft()
        else:
            self._pieces[0] = piece[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()
