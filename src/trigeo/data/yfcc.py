"""Import the YFCC100M metadata TSV into a dataset table, streaming.

The file (plain, ``.bz2`` or ``.gz``, detected from its first bytes) is read
with pyarrow's streaming CSV reader in blocks and written to Parquet in
row-group batches, so memory stays bounded on the full 100M-line file. Bytes
that are not UTF-8 are replaced (U+FFFD) before parsing, so a bad byte costs
at most the row it is in, never the import.

Layouts (see ``docs`` and paper-notes), 0-based columns:

* **25 columns**: line number, photo id, hash, user NSID, nickname, date taken,
  date uploaded (epoch s), device, title, description, user tags, machine tags,
  longitude, latitude, accuracy, page URL, download URL, license name, license
  URL, server id, farm id, secret, original secret, original extension, marker.
* **23 columns**: two of the first three are missing and every later column
  moves two places left. If the first field is numeric it is the photo id
  (the 2014 release: no line number, no hash); otherwise it is the hash and
  the photo id is taken from the page URL (``.../photos/USER/ID/``).

The layout, and with it the id/hash choice, is the majority of the first 100
non-empty lines (:func:`detect_layout`), so a corrupt first line is one
reported line, not a refused file.

Memory is bounded by the parsing block (``block_bytes``, read ahead by
Arrow), the Parquet row group (``row_group_rows``) and 8 bytes per kept photo
for duplicate detection: peak RSS measured about 0.7 GB on a 1M-line file and
0.9 GB on a 3M-line file (16 MB blocks, 100k-row groups); 4 MB blocks cut it to
0.4 GB for some 20% less speed.

Resumable: every row group is written as a part file followed by a
checkpoint (``.yfcc-state.json``); run the same command again after an
interruption and it re-reads the input but converts and writes only what is
left, then joins the parts into ``table.parquet``.

A compressed file that breaks off (a partial download) or turns corrupt
part-way is read up to its last complete line: those rows are imported, and
the report's ``incomplete`` entry and the dataset's provenance
(``input_incomplete``) name that line. bz2 restores whole blocks (about
900 kB of text) only, so a cut loses the block it falls in.

Kept: photos (marker 0) with both coordinates. Every other row is counted in
the import report under a reason: wrong column count, bad marker, video, not
geotagged, bad coordinate number, coordinates out of range, bad upload time,
missing user id, missing photo id, duplicate photo id.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import shutil
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trigeo.data.report import ImportReport
from trigeo.data.table import TableWriter
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = [
    "LAYOUT_SAMPLE_LINES",
    "REPORT_FILE",
    "YfccLayout",
    "detect_layout",
    "id_keys",
    "import_yfcc",
    "split_from_keys",
    "write_yfcc",
]

REPORT_FILE = "import-report.json"
_PARTS_DIR = ".yfcc-parts"
_STATE_FILE = ".yfcc-state.json"
EXTRA_FIELDS = (pa.field("accuracy", pa.float64()), pa.field("taken_local", pa.string()))
_MIN_UPLOAD, _MAX_UPLOAD = 0, 4_102_444_800  # 1970 .. 2100


@dataclass(frozen=True)
class YfccLayout:
    """Where each field sits in one layout (``None``: absent)."""

    columns: int
    photo_id: int | None
    hash: int | None
    user: int
    taken: int
    uploaded: int
    lon: int
    lat: int
    accuracy: int
    page_url: int
    download_url: int
    extension: int
    marker: int

    @classmethod
    def of(cls, columns: int, first_field_numeric: bool = True) -> YfccLayout:
        if columns == 25:
            return cls(25, 1, 2, 3, 5, 6, 12, 13, 14, 15, 16, 23, 24)
        if columns == 23:
            photo_id, hash_ = (0, None) if first_field_numeric else (None, 0)
            return cls(23, photo_id, hash_, 1, 3, 4, 10, 11, 12, 13, 14, 21, 22)
        raise ValueError(f"no YFCC layout has {columns} columns")

    def used(self, with_root: bool = False, image_layout: str = "id") -> list[int]:
        """Columns an import reads (others are tokenized but never converted)."""
        fields = [
            self.photo_id if self.photo_id is not None else self.page_url,
            self.user,
            self.taken,
            self.uploaded,
            self.lon,
            self.lat,
            self.accuracy,
            self.marker,
        ]
        if not with_root:
            fields.append(self.download_url)
        elif image_layout == "hash":
            fields.append(self.hash)
        else:
            fields.append(self.extension)
        return sorted({f for f in fields if f is not None})


class _HashingReader(io.RawIOBase):
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


_RAW_CHUNK = 1 << 20
_BROKEN_VERB = {"truncated": "ends early,", "corrupt": "is corrupt"}


class _Decompressed(io.RawIOBase):
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
                chunk = self._raw.read(_RAW_CHUNK)
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
            feed = self._raw.read(_RAW_CHUNK)
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


def _open_bytes(path: Path) -> tuple[BinaryIO, str, _HashingReader, _Decompressed | None]:
    """The file's (decompressed) bytes, its compression, its hasher and its decompressor."""
    with open(path, "rb") as handle:
        magic = handle.read(3)
    hashing = _HashingReader(path)
    raw = io.BufferedReader(hashing, buffer_size=_RAW_CHUNK)
    kind = "bz2" if magic.startswith(b"BZh") else "gzip" if magic.startswith(b"\x1f\x8b") else None
    if kind is None:
        return raw, "none", hashing, None
    decompressed = _Decompressed(raw, kind)
    stream = io.BufferedReader(decompressed, buffer_size=_RAW_CHUNK)
    return stream, kind, hashing, decompressed  # type: ignore[return-value]


class _Utf8Clean(io.RawIOBase):
    """Whole lines of a byte stream, invalid UTF-8 replaced by U+FFFD, counted.

    Bytes after the last newline of a chunk are held back until their line
    completes, so what is handed on always ends at a line end: no UTF-8
    sequence is split, and when compressed input breaks off (``source.broken``)
    the partial line at the break is dropped instead of being parsed as a row.
    Pure-ASCII chunks (nearly all of YFCC, whose text is URL-encoded) pass
    through as views, uncopied; others are decoded with ``errors="replace"``.
    """

    def __init__(
        self, raw: BinaryIO, source: _Decompressed | None = None, chunk: int = 1 << 22
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


#: Non-empty lines read to choose the layout: enough that a few corrupt lines
#: (a damaged first line included) cannot outvote the rest.
LAYOUT_SAMPLE_LINES = 100

#: Lines (empty ones included) read at most while looking for that sample.
_LAYOUT_SCAN_LINES = 10_000


def detect_layout(path: str | Path) -> YfccLayout:
    """Detect the 25- or 23-column layout from the first 100 non-empty lines.

    Each sampled line is split on tabs; the layout is the width, 25 or 23,
    that more sampled lines have (25 on a tie: the original release), and for
    23 columns the id/hash choice is the majority of those lines' first
    fields (numeric: the photo id; otherwise the hash). A corrupt line, the
    first one included, therefore cannot decide the layout: the import reads
    every line with the chosen width and reports only the lines of another
    width (``wrong column count``).

    Raises
    ------
    InputError
        If no line can be read (empty file, or compressed data that breaks
        off before its first line is complete), or if no sampled line has 25
        or 23 fields (not YFCC100M metadata). Any sampled line of either
        width makes the file importable, so a file whose lines are mostly
        well formed is never refused whole; damaged lines are reported.
    """
    path = Path(path)
    raw, compression, _, decompressed = _open_bytes(path)
    sample: list[tuple[int, bytes]] = []
    number = 0
    with raw:
        for number, candidate in enumerate(raw, start=1):
            if candidate.strip():
                sample.append((number, candidate))
                if len(sample) >= LAYOUT_SAMPLE_LINES:
                    break
            if number >= _LAYOUT_SCAN_LINES:
                break
    if decompressed is not None and decompressed.broken:
        # A line cut short by a broken stream is not a line: the import drops it too.
        if sample and not sample[-1][1].endswith(b"\n"):
            number = sample.pop()[0]
        if not sample:
            reason, detail = decompressed.broken
            raise InputError(
                f"the {compression} data {_BROKEN_VERB[reason]} before line {max(number, 1)} "
                f"is complete ({detail}), so nothing can be read from it",
                source=path,
            )
    if not sample:
        raise InputError("no data lines; is this a YFCC100M metadata file?", source=path)
    fields = [
        line.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t") for _, line in sample
    ]
    widths = np.array([len(f) for f in fields])
    n25, n23 = int((widths == 25).sum()), int((widths == 23).sum())
    if n25 + n23 == 0:
        values, counts = np.unique(widths, return_counts=True)
        seen = ", ".join(f"{c} with {v}" for v, c in zip(values, counts, strict=True))
        raise InputError(
            f"none of the first {len(sample)} non-empty lines (from line {sample[0][0]}) has "
            "the 25 tab-separated columns of the YFCC100M metadata (or 23 in copies without "
            f"the line number and hash); lines seen: {seen} columns",
            source=path,
        )
    if n25 >= n23:
        return YfccLayout.of(25)
    numeric = sum(f[0].strip().isdigit() for f in fields if len(f) == 23)
    # The id/hash choice by majority too: a corrupt first field cannot flip it.
    return YfccLayout.of(23, first_field_numeric=2 * numeric >= n23)


class _SeenIds:
    """Membership of 64-bit id hashes in sorted runs (bounded work per batch)."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(hashes.size, dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, hashes).clip(0, run.size - 1)
            found |= run[pos] == hashes
        return found

    def add(self, hashes: np.ndarray) -> None:
        if hashes.size == 0:
            return
        self._runs.append(np.sort(hashes))
        if len(self._runs) > 8:
            self._runs = [np.sort(np.concatenate(self._runs))]


def import_yfcc(
    metadata: str | Path,
    out: str | Path,
    *,
    limit: int | None = None,
    download_root: str | Path | None = None,
    image_layout: str = "id",
    val_fraction: float = 0.18,
    heads_fraction: float = 0.5,
    seed: int = 0,
    row_group_rows: int = 500_000,
    block_bytes: int = 1 << 24,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], ImportReport]:
    """Stream a YFCC100M metadata TSV into a dataset directory.

    Parameters
    ----------
    metadata
        The TSV, plain or compressed (bz2/gzip, detected from the content).
    out
        Dataset directory to write.
    limit
        Stop after this many data lines.
    download_root
        Where the images were downloaded. ``image`` then holds absolute paths:
        ``ROOT/<photo_id>.<ext>`` with ``image_layout="id"``, or the Multimedia
        Commons layout ``ROOT/abc/def/<hash>.jpg`` with ``image_layout="hash"``.
        Without it, ``image`` holds the download URL.
    val_fraction, heads_fraction, seed
        Split assigned per photo from a seeded hash of its id (streaming);
        re-split exactly with ``trigeo data split``.
    row_group_rows
        Rows per Parquet row group (bounds memory).
    block_bytes
        Bytes per parsing block.
    progress
        Called with the number of lines read after each block.

    Returns
    -------
    (meta, ImportReport)
        ``meta`` is the content of the written ``dataset.json`` (the table is
        not read back: it may be larger than memory). When compressed input
        broke off, ``report.incomplete`` says after which line; callers
        should treat that as a failure to report (the CLI exits with status 2).

    Raises
    ------
    InputError
        If the file is missing, not YFCC metadata, breaks off before its first
        complete line, or holds no geotagged photo.
    """
    import pyarrow.csv as pacsv

    metadata, out = Path(metadata), Path(out)
    if not metadata.is_file():
        raise InputError("no such file", source=metadata)
    if image_layout not in ("id", "hash"):
        raise InputError(f"image_layout must be 'id' or 'hash', got {image_layout!r}")
    layout = detect_layout(metadata)
    if download_root is not None and image_layout == "hash" and layout.hash is None:
        raise InputError(
            "this file has no hash column, so images cannot be found by hash; "
            "use the id image layout",
            source=metadata,
        )
    root = None if download_root is None else Path(download_root).resolve()
    config = {
        "stage": "data.yfcc",
        "limit": limit,
        "download_root": None if root is None else str(root),
        "image_layout": image_layout,
        "val_fraction": val_fraction,
        "heads_fraction": heads_fraction,
        "seed": seed,
        "layout_columns": layout.columns,
    }
    stat = metadata.stat()
    signature = {
        **config,
        "input": str(metadata.resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "block_bytes": block_bytes,
    }
    parts_dir, state_path = out / _PARTS_DIR, out / _STATE_FILE
    state = _load_state(state_path, signature, parts_dir)
    report = ImportReport("data.yfcc", metadata)
    report.notes["layout_columns"] = layout.columns
    report.skipped.update(state["skipped"])
    report.examples = {k: list(v) for k, v in state["examples"].items()}
    done_good, done_invalid = int(state["good_rows"]), int(state["invalid"])
    parts: list[str] = list(state["parts"])
    if done_good or done_invalid:
        report.notes["resumed_after_lines"] = done_good + done_invalid
    invalid: list[int] = [0]

    def on_invalid(row: Any) -> str:
        invalid[0] += 1
        if invalid[0] > done_invalid:  # earlier ones are in the restored report
            report.skip(
                "wrong column count",
                where=f"line {row.number}" if row.number is not None else None,
                detail=f"{row.actual_columns} columns, expected {row.expected_columns}",
            )
        return "skip"

    names = [f"f{i}" for i in range(layout.columns)]
    used = [names[i] for i in layout.used(root is not None, image_layout)]
    raw, compression, hashing, decompressed = _open_bytes(metadata)
    report.notes["compression"] = compression
    lines = _Utf8Clean(raw, decompressed)
    stream = io.BufferedReader(lines, buffer_size=1 << 20)
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes),
        parse_options=pacsv.ParseOptions(
            delimiter="\t", quote_char=False, escape_char=False, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            include_columns=used,
            column_types=dict.fromkeys(used, pa.string()),
            strings_can_be_null=False,
        ),
    )
    seen = _SeenIds()
    for name in parts:  # photo ids already kept, for duplicate detection
        ids = pq.read_table(parts_dir / name, columns=["photo_id"]).column("photo_id")
        seen.add(id_keys(ids.combine_chunks()))
    pending: list[pa.Table] = []
    pending_rows = 0
    good_rows = 0
    start = time.perf_counter()
    parts_dir.mkdir(parents=True, exist_ok=True)

    def write_part(table: pa.Table, snapshot: dict[str, Any]) -> None:
        name = f"part-{len(snapshot['parts']):06d}.parquet"
        with atomic_path(parts_dir / name) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        snapshot["parts"].append(name)
        write_json_atomic(state_path, snapshot)

    # Parts are compressed and written on a second thread while the next blocks
    # are parsed (Arrow releases the GIL); at most two are in flight. Each part
    # is followed by a checkpoint, so an interrupted import resumes after it.
    with ThreadPoolExecutor(1) as write_pool:
        in_flight: list[Future[None]] = []

        def flush(tables: list[pa.Table]) -> None:
            while len(in_flight) >= 2:
                in_flight.pop(0).result()
            snapshot = {
                "signature": signature,
                "good_rows": good_rows,
                "invalid": invalid[0],
                "skipped": dict(report.skipped),
                "examples": {k: list(v) for k, v in report.examples.items()},
                "parts": parts,
            }
            in_flight.append(write_pool.submit(write_part, pa.concat_tables(tables), snapshot))

        stopped_at_limit = False
        try:
            for batch in _batches(reader):
                if good_rows < done_good:  # converted before the interruption
                    skip = min(batch.num_rows, done_good - good_rows)
                    good_rows += skip
                    batch = batch.slice(skip)
                    if batch.num_rows == 0:
                        continue
                if limit is not None:
                    room = limit - good_rows - invalid[0]
                    if room <= 0:
                        stopped_at_limit = True
                        break
                    batch = batch.slice(0, room)
                frame = _convert(
                    batch,
                    layout,
                    good_rows,
                    report,
                    seen,
                    root,
                    image_layout,
                    (val_fraction, heads_fraction, seed),
                )
                good_rows += batch.num_rows
                if frame is not None:
                    pending.append(frame)
                    pending_rows += frame.num_rows
                if pending_rows >= row_group_rows:
                    flush(pending)
                    pending, pending_rows = [], 0
                if progress:
                    progress(batch.num_rows)
            if pending:
                flush(pending)
            for future in in_flight:
                future.result()
        finally:
            stream.close()
    report.read = good_rows + invalid[0]
    broken = None if decompressed is None or stopped_at_limit else decompressed.broken
    if broken is not None:
        # Keep what came before the break (a partial download is still worth
        # importing), but say so in the report and the dataset's provenance.
        reason, detail = broken
        report.mark_incomplete(
            f"the {compression} data {_BROKEN_VERB[reason]} after line {lines.lines} ({detail})",
            reason=reason,
            last_complete_line=lines.lines,
        )
    seconds = time.perf_counter() - start
    report.notes["rows_per_second"] = round(report.read / seconds) if seconds > 0 else None
    # A full read hashed the file on the way; a --limit run hashes it now.
    digest = hashing.digest.hexdigest() if hashing.eof else hash_file(metadata)
    with TableWriter(out, EXTRA_FIELDS) as writer:
        for name in parts:
            writer.write(pq.read_table(parts_dir / name))
        report.written = writer.rows
        if writer.rows == 0:
            report.write(out / REPORT_FILE)
            incomplete = "" if broken is None else f"; {report.incomplete['message']}"
            raise InputError(
                f"no geotagged photo among {report.read} lines{incomplete}; "
                f"see {out / REPORT_FILE}",
                source=metadata,
            )
        extra = {} if broken is None else {"input_incomplete": report.incomplete}
        provenance = make_provenance(config, {metadata.name: digest}, **extra)
        meta = writer.close(
            provenance, images="urls" if root is None else "paths", source="yfcc100m"
        )
    report.write(out / REPORT_FILE)
    shutil.rmtree(parts_dir, ignore_errors=True)
    state_path.unlink(missing_ok=True)
    return meta, report


def _load_state(path: Path, signature: dict[str, Any], parts_dir: Path) -> dict[str, Any]:
    """The checkpoint of an interrupted import of the same input and options, or a fresh one."""
    fresh = {"good_rows": 0, "invalid": 0, "skipped": {}, "examples": {}, "parts": []}
    if path.exists():
        try:
            state = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}
        if state.get("signature") == signature and all(
            (parts_dir / name).exists() for name in state.get("parts", [])
        ):
            return state
    shutil.rmtree(parts_dir, ignore_errors=True)
    path.unlink(missing_ok=True)
    return fresh


def _batches(reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        yield batch


_REASONS = (
    "bad marker",
    "video",
    "not geotagged",
    "bad coordinate number",
    "coordinates out of range",
    "bad upload time",
    "missing user id",
    "missing photo id",
    "duplicate photo id",
)
_ID_PATTERN = r"^[0-9A-Za-z_.:@-]{1,64}$"
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _to_float(values: pa.Array) -> np.ndarray:
    """Strings to float64; unparsable values become NaN (fast path: one Arrow cast)."""
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(values.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: spreads 64-bit keys uniformly (for hash-based splits)."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def id_keys(ids: pa.Array) -> np.ndarray:
    """64-bit keys of photo ids: the number itself for numeric ids, else a hash."""
    numeric = pc.match_substring_regex(ids, r"^[0-9]{1,19}$").to_numpy(zero_copy_only=False)
    keys = np.empty(len(ids), dtype=np.uint64)
    if numeric.all():
        return pc.cast(ids, pa.uint64()).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(numeric)
    if where.size:
        keys[where] = pc.cast(ids.take(pa.array(where)), pa.uint64()).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(~numeric)
    text = ids.take(pa.array(other)).to_numpy(zero_copy_only=False).astype(object)
    keys[other] = pd.util.hash_array(text) | np.uint64(1 << 63)
    return keys


def split_from_keys(
    keys: np.ndarray, val_fraction: float, heads_fraction: float, seed: int
) -> np.ndarray:
    """Per-photo split from a seeded hash of its id key: streaming and order-free."""
    salt = _mix64(np.array([seed], dtype=np.uint64))[0]
    u = (_mix64(keys ^ salt) >> np.uint64(11)).astype(np.float64) / 2.0**53
    split = np.full(keys.size, "train", dtype=object)
    split[u < val_fraction] = "val"
    split[u < val_fraction * heads_fraction] = "heads"
    return split


def _convert(
    batch: pa.RecordBatch,
    layout: YfccLayout,
    offset: int,
    report: ImportReport,
    seen: _SeenIds,
    root: Path | None,
    image_layout: str,
    split_args: tuple[float, float, int],
) -> pa.Table | None:
    """Map one parsed block to table rows; count every dropped row by reason."""
    n = batch.num_rows

    def col(index: int, trim: bool = False) -> pa.Array:
        values = batch.column(f"f{index}")
        # Only the last field can carry a stray "\r" (CRLF files) or blanks that
        # matter; numbers with blanks fall back to pandas parsing.
        return pc.utf8_trim_whitespace(values) if trim else values

    def is_empty(values: pa.Array) -> np.ndarray:
        return pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)

    reason = np.zeros(n, dtype=np.int8)

    def flag(code: int, mask: np.ndarray) -> None:
        reason[(reason == 0) & mask] = code

    marker = col(layout.marker, trim=True)
    is_photo = pc.equal(marker, "0").to_numpy(zero_copy_only=False)
    is_video = pc.equal(marker, "1").to_numpy(zero_copy_only=False)
    flag(1, ~(is_photo | is_video))
    flag(2, is_video)
    lon_s, lat_s = col(layout.lon), col(layout.lat)
    flag(3, is_empty(lon_s) | is_empty(lat_s))
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    uploaded = np.full(n, np.nan)
    cand = np.flatnonzero(reason == 0)
    take = pa.array(cand, type=pa.int64())
    lon[cand] = _to_float(lon_s.take(take))
    lat[cand] = _to_float(lat_s.take(take))
    flag(4, ~(np.isfinite(lon) & np.isfinite(lat)))
    with np.errstate(invalid="ignore"):
        flag(5, (np.abs(lat) > 90) | (np.abs(lon) > 180))
    uploaded_s = col(layout.uploaded)
    uploaded[cand] = _to_float(uploaded_s.take(take))
    with np.errstate(invalid="ignore"):
        flag(6, ~((uploaded > _MIN_UPLOAD) & (uploaded < _MAX_UPLOAD)))
    user = col(layout.user)
    flag(7, is_empty(user))
    if layout.photo_id is not None:
        ids = col(layout.photo_id)
    else:
        found = pc.extract_regex(col(layout.page_url), r"/photos/[^/]+/(?P<id>[0-9]+)")
        ids = pc.fill_null(pc.struct_field(found, [0]), "")
    valid_id = pc.match_substring_regex(ids, _ID_PATTERN)
    flag(8, ~pc.fill_null(valid_id, False).to_numpy(zero_copy_only=False))

    ok = np.flatnonzero(reason == 0)
    keys = id_keys(ids.take(pa.array(ok, type=pa.int64())))
    dup = seen.contains(keys) | pd.Series(keys).duplicated().to_numpy()
    reason[ok[dup]] = 9
    seen.add(keys[~dup])
    keys = keys[~dup]

    bad = np.flatnonzero(reason)
    if bad.size:
        codes, counts = np.unique(reason[bad], return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            rows = bad[reason[bad] == code][:5]
            for i in rows.tolist():
                detail = {
                    1: f"marker {marker[i].as_py()!r}",
                    4: f"lat {lat_s[i].as_py()!r}, lon {lon_s[i].as_py()!r}",
                    5: f"lat {lat[i]}, lon {lon[i]}",
                    6: f"uploaded {uploaded_s[i].as_py()!r}",
                }.get(code, f"photo {ids[i].as_py()!r}")
                report.skip(_REASONS[code - 1], where=f"data row {offset + i + 1}", detail=detail)
            report.skipped[_REASONS[code - 1]] += count - rows.size

    keep = np.flatnonzero(reason == 0)
    k = keep.size
    if k == 0:
        return None
    take = pa.array(keep, type=pa.int64())
    ids_k = ids.take(take)
    if root is None:
        image = col(layout.download_url).take(take)
    elif image_layout == "hash":
        assert layout.hash is not None
        h = col(layout.hash).take(take)
        image = pc.binary_join_element_wise(
            str(root),
            pc.utf8_slice_codeunits(h, 0, 3),
            pc.utf8_slice_codeunits(h, 3, 6),
            pc.binary_join_element_wise(h, ".jpg", ""),
            "/",
        )
    else:
        ext = col(layout.extension).take(take)
        ext = pc.if_else(pc.equal(pc.utf8_length(ext), 0), "jpg", ext)
        image = pc.binary_join_element_wise(
            pc.binary_join_element_wise(str(root), ids_k, "/"), ext, "."
        )
    posted = (uploaded[keep] * 1e6).astype(np.int64)
    return pa.table(
        {
            "photo_id": ids_k,
            "image": image,
            "lat": pa.array(lat[keep]),
            "lon": pa.array(lon[keep]),
            "user_id": user.take(take),
            "posted_at": pa.array(posted, type=pa.timestamp("us", tz="UTC")),
            "taken_at": pa.nulls(k, type=pa.timestamp("us", tz="UTC")),
            "outdoor": pa.nulls(k, type=pa.float64()),
            "split": pa.array(split_from_keys(keys, *split_args), type=pa.string()),
            "accuracy": pa.array(_to_float(col(layout.accuracy).take(take))),
            "taken_local": col(layout.taken).take(take),
        }
    )


_DESCRIPTION = (
    "View+from+the+old+town+walls+at+sunset%2C+taken+on+our+second+day.+"
    "The+light+was+amazing+and+the+streets+were+full+of+people+walking+home.+"
    "More+photos+in+the+set%3A+%3Ca+href%3D%22http%3A%2F%2Fwww.flickr.com%2F%22%3Ehere%3C%2Fa%3E"
)


def write_yfcc(table: pd.DataFrame, path: str | Path, layout: int = 25) -> Path:
    """Write a dataset table as YFCC100M metadata lines (for tests and benchmarks).

    Coordinates, user, upload time and ids round-trip through :func:`import_yfcc`;
    free-text fields are filled with plausible URL-encoded placeholders.
    A ``.bz2`` or ``.gz`` suffix compresses the output.
    """
    path = Path(path)
    n = len(table)
    ids = table["photo_id"].astype(str).to_numpy(dtype=object)
    users = table["user_id"].astype(str).to_numpy(dtype=object)
    uploaded = (pd.to_datetime(table["posted_at"], utc=True).astype("int64") // 10**6).astype(str)
    taken = pd.to_datetime(table.get("taken_at", table["posted_at"]), utc=True)
    taken_s = taken.dt.strftime("%Y-%m-%d %H:%M:%S.0").fillna("").to_numpy(dtype=object)
    rng = np.random.default_rng(0)
    hashes = np.array([f"{v:032x}" for v in rng.integers(0, 2**62, size=n)], dtype=object)
    lon = np.char.mod("%.6f", table["lon"].to_numpy(dtype=np.float64)).astype(object)
    lat = np.char.mod("%.6f", table["lat"].to_numpy(dtype=np.float64)).astype(object)
    columns = [
        np.arange(n).astype(str).astype(object),
        ids,
        hashes,
        users,
        np.array(["nick"] * n, dtype=object),
        taken_s,
        uploaded.to_numpy(dtype=object),
        np.array(["Canon+EOS+400D"] * n, dtype=object),
        np.array(["a+title"] * n, dtype=object),
        np.array([_DESCRIPTION] * n, dtype=object),
        np.array(["tag,another"] * n, dtype=object),
        np.array([""] * n, dtype=object),
        lon,
        lat,
        np.array(["16"] * n, dtype=object),
        "http://www.flickr.com/photos/" + users + "/" + ids + "/",
        "http://farm4.staticflickr.com/3/" + ids + "_abc.jpg",
        np.array(["Attribution License"] * n, dtype=object),
        np.array(["http://creativecommons.org/licenses/by/2.0/"] * n, dtype=object),
        np.array(["3"] * n, dtype=object),
        np.array(["4"] * n, dtype=object),
        np.array(["abc"] * n, dtype=object),
        np.array(["def"] * n, dtype=object),
        np.array(["jpg"] * n, dtype=object),
        np.array(["0"] * n, dtype=object),
    ]
    if layout == 23:
        columns = [columns[1], *columns[3:]]
    elif layout != 25:
        raise InputError(f"layout must be 25 or 23, got {layout}")
    lines = pd.DataFrame({i: c for i, c in enumerate(columns)})
    text = lines.to_csv(sep="\t", header=False, index=False, lineterminator="\n", quoting=3)
    data = text.encode("utf-8")
    if path.suffix == ".bz2":
        data = bz2.compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
