"""Import the YFCC100M metadata TSV into a dataset table, streaming.

The file (plain, ``.bz2`` or ``.gz``, detected from its first bytes) is read
with pyarrow's streaming CSV reader in blocks and written to Parquet in
row-group batches, so memory stays bounded on the full 100M-line file. Bytes
that are not UTF-8 are replaced (U+FFFD) before parsing, so a bad byte costs
at most the row it is in, never the import.

The 25- and 23-column layouts and their detection from the first 100
non-empty lines are in :mod:`trigeo.data.yfcc_layout`; the byte streams
(hashing, decompression, UTF-8 cleaning) in :mod:`trigeo.data.streams`; the
conversion of a parsed block to rows in :mod:`trigeo.data.yfcc_rows`.

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
import io
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trigeo.data.checkpoint import load_checkpoint
from trigeo.data.ids import SeenIds, id_keys, split_from_keys
from trigeo.data.report import REPORT_FILE, ImportReport
from trigeo.data.streams import BROKEN_VERB, Decompressed, HashingReader, Utf8Clean, open_bytes
from trigeo.data.table import TableWriter
from trigeo.data.yfcc_layout import LAYOUT_SAMPLE_LINES, YfccLayout, detect_layout
from trigeo.data.yfcc_rows import EXTRA_FIELDS
from trigeo.data.yfcc_rows import convert_block as _convert
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

_PARTS_DIR = ".yfcc-parts"
_STATE_FILE = ".yfcc-state.json"
_FRESH = {"good_rows": 0, "invalid": 0, "skipped": {}, "examples": {}, "parts": []}


@dataclass
class _Input:
    """The metadata file opened for one import: its parsed blocks and byte streams."""

    reader: Any
    stream: io.BufferedReader
    compression: str
    hashing: HashingReader
    decompressed: Decompressed | None
    lines: Utf8Clean
    invalid: list[int] = field(default_factory=lambda: [0])


def _open_input(
    metadata: Path,
    layout: YfccLayout,
    used_columns: list[int],
    block_bytes: int,
    report: ImportReport,
    done_invalid: int,
) -> _Input:
    """Open ``metadata`` for streaming; lines of another width are counted and reported."""
    import pyarrow.csv as pacsv

    invalid = [0]

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
    used = [names[i] for i in used_columns]
    raw, compression, hashing, decompressed = open_bytes(metadata)
    lines = Utf8Clean(raw, decompressed)
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
    return _Input(reader, stream, compression, hashing, decompressed, lines, invalid)


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
    signature = _signature(config, metadata, block_bytes)
    parts_dir, state_path = out / _PARTS_DIR, out / _STATE_FILE
    state = load_checkpoint(state_path, signature, _FRESH, parts_dir)
    report = ImportReport("data.yfcc", metadata)
    report.notes["layout_columns"] = layout.columns
    report.skipped.update(state["skipped"])
    report.examples = {k: list(v) for k, v in state["examples"].items()}
    done_good, done_invalid = int(state["good_rows"]), int(state["invalid"])
    if done_good or done_invalid:
        report.notes["resumed_after_lines"] = done_good + done_invalid
    used = layout.used(root is not None, image_layout)
    source = _open_input(metadata, layout, used, block_bytes, report, done_invalid)
    report.notes["compression"] = source.compression
    start = time.perf_counter()
    try:
        good_rows, parts, stopped_at_limit = _convert_all(
            source,
            layout,
            report,
            state,
            parts_dir,
            state_path,
            limit=limit,
            root=root,
            image_layout=image_layout,
            split_args=(val_fraction, heads_fraction, seed),
            row_group_rows=row_group_rows,
            progress=progress,
        )
    finally:
        source.stream.close()
    report.read = good_rows + source.invalid[0]
    if not stopped_at_limit:
        _mark_broken(source, report)
    seconds = time.perf_counter() - start
    report.notes["rows_per_second"] = round(report.read / seconds) if seconds > 0 else None
    # A full read hashed the file on the way; a --limit run hashes it now.
    digest = source.hashing.digest.hexdigest() if source.hashing.eof else hash_file(metadata)
    images = "urls" if root is None else "paths"
    meta = _write_table(out, parts_dir, parts, report, config, metadata, digest, images)
    state_path.unlink(missing_ok=True)
    return meta, report


def _mark_broken(source: _Input, report: ImportReport) -> None:
    """Record in the report where compressed input broke off, if it did."""
    if source.decompressed is None or source.decompressed.broken is None:
        return
    # Keep what came before the break (a partial download is still worth
    # importing), but say so in the report and the dataset's provenance.
    reason, detail = source.decompressed.broken
    report.mark_incomplete(
        f"the {source.compression} data {BROKEN_VERB[reason]} after line "
        f"{source.lines.lines} ({detail})",
        reason=reason,
        last_complete_line=source.lines.lines,
    )


def _signature(config: dict[str, Any], metadata: Path, block_bytes: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the options, the input file, the blocks."""
    stat = metadata.stat()
    return {
        **config,
        "input": str(metadata.resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "block_bytes": block_bytes,
    }


def _convert_all(
    source: _Input,
    layout: YfccLayout,
    report: ImportReport,
    state: dict[str, Any],
    parts_dir: Path,
    state_path: Path,
    *,
    limit: int | None,
    root: Path | None,
    image_layout: str,
    split_args: tuple[float, float, int],
    row_group_rows: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, list[str], bool]:
    """Convert every block not converted before an interruption, writing parts.

    Returns
    -------
    (good_rows, parts, stopped_at_limit)
        Lines of the right width read in all (earlier runs included), the
        part files, and whether ``limit`` stopped the read.
    """
    done_good = int(state["good_rows"])
    parts: list[str] = list(state["parts"])
    seen = SeenIds()
    for name in parts:  # photo ids already kept, for duplicate detection
        ids = pq.read_table(parts_dir / name, columns=["photo_id"]).column("photo_id")
        seen.add(id_keys(ids.combine_chunks()))
    parts_dir.mkdir(parents=True, exist_ok=True)
    pending: list[pa.Table] = []
    pending_rows = 0
    good_rows = 0

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
                "signature": state["signature"],
                "good_rows": good_rows,
                "invalid": source.invalid[0],
                "skipped": dict(report.skipped),
                "examples": {k: list(v) for k, v in report.examples.items()},
                "parts": parts,
            }
            in_flight.append(write_pool.submit(write_part, pa.concat_tables(tables), snapshot))

        for batch in _batches(source.reader):
            if good_rows < done_good:  # converted before the interruption
                skip = min(batch.num_rows, done_good - good_rows)
                good_rows += skip
                batch = batch.slice(skip)
                if batch.num_rows == 0:
                    continue
            if limit is not None:
                room = limit - good_rows - source.invalid[0]
                if room <= 0:
                    return _drain(in_flight, flush, pending, good_rows, parts, True)
                batch = batch.slice(0, room)
            frame = _convert(batch, layout, good_rows, report, seen, root, image_layout, split_args)
            good_rows += batch.num_rows
            if frame is not None:
                pending.append(frame)
                pending_rows += frame.num_rows
            if pending_rows >= row_group_rows:
                flush(pending)
                pending, pending_rows = [], 0
            if progress:
                progress(batch.num_rows)
        return _drain(in_flight, flush, pending, good_rows, parts, False)


def _drain(
    in_flight: list[Future[None]],
    flush: Callable[[list[pa.Table]], None],
    pending: list[pa.Table],
    good_rows: int,
    parts: list[str],
    stopped_at_limit: bool,
) -> tuple[int, list[str], bool]:
    """Write what is pending and wait for every part in flight."""
    if pending:
        flush(pending)
    for future in in_flight:
        future.result()
    return good_rows, parts, stopped_at_limit


def _write_table(
    out: Path,
    parts_dir: Path,
    parts: list[str],
    report: ImportReport,
    config: dict[str, Any],
    metadata: Path,
    digest: str,
    images: str,
) -> dict[str, Any]:
    """Join the parts into the dataset table and write the report; the dataset's meta.

    Raises
    ------
    InputError
        If no photo was kept (the report is written first).
    """
    with TableWriter(out, EXTRA_FIELDS) as writer:
        for name in parts:
            writer.write(pq.read_table(parts_dir / name))
        report.written = writer.rows
        if writer.rows == 0:
            report.write(out / REPORT_FILE)
            incomplete = "" if report.incomplete is None else f"; {report.incomplete['message']}"
            raise InputError(
                f"no geotagged photo among {report.read} lines{incomplete}; "
                f"see {out / REPORT_FILE}",
                source=metadata,
            )
        extra = {} if report.incomplete is None else {"input_incomplete": report.incomplete}
        provenance = make_provenance(config, {metadata.name: digest}, **extra)
        meta = writer.close(provenance, images=images, source="yfcc100m")
    report.write(out / REPORT_FILE)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return meta


def _batches(reader: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        yield batch


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
