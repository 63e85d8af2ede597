"""Import any CSV or Parquet table of photos, and the field's standard sets, streaming.

``trigeo data csv TABLE --out DIR [--format NAME] [--images ROOT] ...``: the
columns and image layout of each format are in :mod:`trigeo.data.formats`;
images are found by :mod:`trigeo.data.image_index` (files, zip members) or
:mod:`trigeo.data.msgpack_shards` (MP-16 records), read in place: the image
root is linked into the dataset as ``images`` and the table's ``image``
column points into it.

Streaming: the table is read in batches (pyarrow's CSV reader or Parquet row
groups) and written in row groups, so memory is bounded by the batch, the row
group, 8 bytes per kept photo (duplicate detection) and, for images found by
id, the index of the image set (some 60-100 bytes per image).

Images are joined, not probed: the image root is listed once and each
batch's values are looked up in that listing as arrays; no image is opened.
With ``check_images`` a second pass reads each matched image's header, timed
on its own (:mod:`trigeo.data.imagecheck`).

Resumable: each row group is written as a part file (Arrow IPC: read back
once, at the end) followed by a checkpoint (``.csv-state.json``); the same
command run again after an interruption skips the rows already converted.
MP-16 shard scans are cached per shard.

Rows are kept or reported, never fatal one by one: ``missing id``, ``bad
number``, ``missing coordinates``, ``latitude beyond ±90``, ``longitude
beyond ±180``, ``bad time``, ``missing split``, ``duplicate id``, ``missing
image``, ``not an image``, ``empty image``, ``unreadable image`` (and
``not in the image set`` for YFCC4k). A run in which at most half of the rows
could be imported stops with an error naming the report, since that is a
wrong column or image root far more often than a bad dataset.

Time rule: a numeric time is unix time in seconds (in milliseconds when its
magnitude is at least 1e11, i.e. beyond the year 5138 in seconds, as
Mapillary's ``captured_at`` is); a text time is ISO 8601; one with a UTC
offset is converted to UTC, one without is taken as UTC already (local
times without an offset cannot be placed without the photo's timezone).
Without a time column, or for an empty time, ``posted_at`` is the unix epoch
and ``time_source`` says ``none``, so such rows are easy to leave out of
anything that uses time (M2/M3 albums).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc

from trigeo.data.checkpoint import load_checkpoint
from trigeo.data.csvinput import input_types, iterate_batches, open_table
from trigeo.data.csvrows import RowConverter, parse_times
from trigeo.data.formats import FORMATS, TableFormat, resolve_columns
from trigeo.data.ids import id_keys
from trigeo.data.image_index import LINK, FolderIndex, KeyedImages, scan_stems
from trigeo.data.imagecheck import HeaderCheck
from trigeo.data.report import REPORT_FILE, ImportReport
from trigeo.data.table import COLUMNS, TableWriter
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = ["REPORT_FILE", "import_csv", "parse_times"]

_FRESH = {"rows_done": 0, "skipped": {}, "examples": {}, "parts": [], "notes": {}}
_PARTS_DIR = ".csv-parts"
_STATE_FILE = ".csv-state.json"


def _link_images(out: Path, root: Path) -> None:
    """Make ``out/images`` a link to the image root (the table's paths go through it)."""
    link = out / LINK
    target = root.resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        if link.resolve() == target:
            return
        raise InputError(
            f"{link} exists and is not the image root {target}; choose another --out",
            source=out,
        )
    link.symlink_to(target, target_is_directory=True)


def import_csv(
    table: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    fmt: str = "generic",
    columns: dict[str, str | None] | None = None,
    split: str | None = None,
    allow_missing_images: bool = False,
    check_images: bool = False,
    val_fraction: float = 0.18,
    heads_fraction: float = 0.5,
    seed: int = 0,
    batch_rows: int = 100_000,
    row_group_rows: int = 500_000,
    progress: Callable[[int], None] | None = None,
    on_columns: Callable[[dict[str, str], dict[str, str]], None] | None = None,
) -> tuple[dict[str, Any], ImportReport]:
    """Stream a photo table (CSV or Parquet) and its images into a dataset directory.

    Parameters
    ----------
    table
        The CSV (plain, ``.gz`` or ``.bz2``) or Parquet file.
    out
        Dataset directory to write.
    images
        The image root: a folder of images (``generic``, ``im2gps3k``,
        ``yfcc4k``), of ``shard_*.msg`` files (``mp16``), or OpenStreetView-5M's
        ``images/<split>`` (``osv5m``). Defaults to the table's folder.
    fmt
        ``generic``, ``im2gps3k``, ``yfcc4k``, ``mp16`` or ``osv5m``.
    columns
        Field (``id``, ``lat``, ``lon``, ``image``, ``user``, ``time``,
        ``split``) -> input column, overriding the format and auto-detection.
    split
        Put every photo in this split (``test`` for benchmark sets). Otherwise
        a ``split`` column (given in ``columns``) is kept, or the seeded split
        of :func:`trigeo.data.ids.split_from_keys` is drawn.
    allow_missing_images
        Keep rows whose image is missing (still counted in the report).
    check_images
        After joining rows to images (which opens no image), read each matched
        image's header (:mod:`trigeo.data.imagecheck`); unusable ones are
        reported and dropped. Timed apart: ``report.notes["image_check"]``.
    val_fraction, heads_fraction, seed
        The seeded split's parameters.
    batch_rows, row_group_rows
        Rows per parsed batch and per written row group (bound memory).
    progress
        Called with the number of rows read after each batch.
    on_columns
        Called once with the chosen columns and how each was chosen.

    Returns
    -------
    (meta, ImportReport)
        The written ``dataset.json`` content and the report.

    Raises
    ------
    InputError
        If the input or the image root cannot be used, or at most half of
        the rows could be imported (the report is written first).
    """
    table, out = Path(table), Path(out)
    spec, root = _check_inputs(table, fmt, images)
    report = ImportReport("data.csv", table)
    report.notes["format"] = fmt
    names, batches = open_table(table, batch_rows, report)
    chosen = _choose_columns(names, spec, columns or {}, split, report, on_columns)
    out.mkdir(parents=True, exist_ok=True)
    _link_images(out, root)
    config = {
        "stage": "data.csv",
        "format": fmt,
        "images": str(root.resolve()),
        "columns": chosen,
        "split": split,
        "allow_missing_images": allow_missing_images,
        "check_images": check_images,
        "val_fraction": val_fraction,
        "heads_fraction": heads_fraction,
        "seed": seed,
    }
    parts = _Parts(out, _signature(config, table, batch_rows))
    # A resumed run's checkpoint already holds what the image scan reports: scan quietly.
    scan_report = ImportReport("data.csv", table) if parts.resumed else report
    locate, store_summary = _locator(spec, root, out, scan_report)
    converter = _converter(names, chosen, spec, table, report, locate, config, out)
    start = time.perf_counter()
    # The table is written on a second thread while later batches are converted.
    with TableWriter(out, converter.extras) as writer, ThreadPoolExecutor(1) as pool:
        sink = _Sink(writer, pool)
        digest = pool.submit(hash_file, table)
        parts.restore(report, converter, sink)
        batched = iterate_batches(batches, batch_rows)
        rows = _convert_batches(batched, converter, parts, sink, report, row_group_rows, progress)
        sink.wait()
        report.read = rows
        seconds = time.perf_counter() - start
        report.notes["rows_per_second"] = round(rows / seconds) if seconds > 0 else None
        _notes(report, converter, spec, root, store_summary)
        counted = rows - converter.counts["absent_expected"]
        provenance = make_provenance(config, {table.name: digest.result()})
        meta = _close(writer, parts, report, counted, provenance, table, chosen, root)
    report.write(out / REPORT_FILE)
    parts.remove()
    return meta, report


def _choose_columns(
    names: list[str],
    spec: TableFormat,
    given: dict[str, str | None],
    split: str | None,
    report: ImportReport,
    on_columns: Callable[[dict[str, str], dict[str, str]], None] | None,
) -> dict[str, str]:
    """Field -> input column (:func:`~trigeo.data.formats.resolve_columns`), noted in the report."""
    chosen, how = resolve_columns(names, spec, given, report.source)
    if split is not None and "split" in chosen:
        raise InputError("give --split or --split-col, not both")
    report.notes["columns"] = {name: [chosen[name], how[name]] for name in chosen}
    if on_columns:
        on_columns(chosen, how)
    return chosen


def _check_inputs(table: Path, fmt: str, images: str | Path | None) -> tuple[TableFormat, Path]:
    """The format and the image root, once both (and the table) are known to exist."""
    if not table.is_file():
        raise InputError("no such file", source=table)
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {sorted(FORMATS)}, got {fmt!r}")
    root = Path(images) if images is not None else table.parent
    if not root.exists():
        raise InputError("no such image folder (--images)", source=root)
    return FORMATS[fmt], root


def _notes(
    report: ImportReport,
    converter: RowConverter,
    spec: TableFormat,
    root: Path,
    store: dict[str, Any],
) -> None:
    """What the report says of the counts, the image store, its listing and the header check."""
    report.notes.update({k: v for k, v in converter.counts.items() if v})
    locate = converter.locate
    if isinstance(locate, KeyedImages) and spec.store == "msgpack":
        store["records_without_metadata"] = locate.report_unmatched(
            report, "record without metadata"
        )
    if isinstance(locate, FolderIndex) and locate.seconds is not None:
        store.update(files=len(locate), list_seconds=round(locate.seconds, 3))
        if locate.not_utf8:
            store["names_not_utf8"] = locate.not_utf8
    report.notes["image_store"] = {"kind": spec.store, "root": str(root.resolve()), **store}
    if converter.check is not None:
        report.notes["image_check"] = converter.check.summary()


class _Sink:
    """Hands tables to a :class:`TableWriter` on the pool's one thread, in order.

    At most two tables wait, so memory stays bounded by a few row groups; an
    error in the writer is raised here, on the next :meth:`put` or :meth:`wait`.
    """

    def __init__(self, writer: TableWriter, pool: ThreadPoolExecutor) -> None:
        self._writer, self._pool = writer, pool
        self._in_flight: list[Future[None]] = []

    def put(self, table: pa.Table) -> None:
        while len(self._in_flight) >= 2:
            self._in_flight.pop(0).result()
        self._in_flight.append(self._pool.submit(self._writer.write, table))

    def wait(self) -> None:
        while self._in_flight:
            self._in_flight.pop(0).result()


class _Parts:
    """Converted row groups as part files, each followed by a checkpoint.

    Parts are Arrow IPC files: they are read back once, when the table is
    written, so they are stored as cheaply as possible (no encoding, no
    compression), not as the table's zstd Parquet.
    """

    def __init__(self, out: Path, signature: dict[str, Any]) -> None:
        self.dir, self.state_path = out / _PARTS_DIR, out / _STATE_FILE
        self.state = load_checkpoint(self.state_path, signature, _FRESH, self.dir)
        self.names: list[str] = list(self.state["parts"])
        self.done = int(self.state["rows_done"])
        self.resumed = bool(self.names or self.done)

    def read(self, name: str) -> pa.Table:
        with pa.memory_map(str(self.dir / name)) as source:
            return pa.ipc.open_file(source).read_all()

    def restore(self, report: ImportReport, converter: RowConverter, sink: _Sink) -> None:
        """Bring back what the interrupted run had counted and kept; its parts go to ``sink``."""
        if not self.resumed:
            self.dir.mkdir(parents=True, exist_ok=True)
            return
        report.skipped.update(self.state["skipped"])
        report.examples = {k: list(v) for k, v in self.state["examples"].items()}
        if self.done:
            report.notes["resumed_after_rows"] = self.done
        for key, value in self.state["notes"].items():
            converter.counts[key] = int(value)
        for name in self.names:  # ids already kept: duplicates and matched images
            table = self.read(name)
            sink.put(table)
            ids = table.column("photo_id").combine_chunks()
            converter.seen.add(id_keys(ids))
            if isinstance(converter.locate, KeyedImages):
                converter.locate.lookup(ids)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(
        self, tables: list[pa.Table], rows: int, report: ImportReport, counts: dict[str, int]
    ) -> pa.Table | None:
        """Write one part (if any rows), then the checkpoint saying ``rows`` were read.

        Returns the part's rows (``None`` when there were none).
        """
        table = None
        if tables:
            name = f"part-{len(self.names):06d}.arrow"
            table = pa.concat_tables(tables)
            with atomic_path(self.dir / name) as tmp, pa.ipc.new_file(tmp, table.schema) as sink:
                sink.write_table(table)
            self.names.append(name)
        write_json_atomic(
            self.state_path,
            {
                "signature": self.state["signature"],
                "rows_done": rows,
                "skipped": dict(report.skipped),
                "examples": report.examples,
                "parts": self.names,
                "notes": counts,
            },
        )
        return table

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)


def _signature(config: dict[str, Any], table: Path, batch_rows: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the options, the input file, the batches."""
    stat = table.stat()
    return {
        **config,
        "input": str(table.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "batch_rows": batch_rows,
        "parts": "arrow-ipc",  # checkpoints of Parquet parts (before 2025-10) start over
    }


def _converter(
    names: list[str],
    chosen: dict[str, str],
    spec: TableFormat,
    table: Path,
    report: ImportReport,
    locate: FolderIndex | KeyedImages,
    config: dict[str, Any],
    out: Path,
) -> RowConverter:
    """The row converter of this import's options (``config``)."""
    extras, sources = _extras(names, chosen, spec, table)
    converter = RowConverter(
        spec,
        chosen,
        extras,
        report,
        locate,
        config["split"],
        (config["val_fraction"], config["heads_fraction"], config["seed"]),
        config["allow_missing_images"],
        HeaderCheck(out) if config["check_images"] else None,
    )
    converter.sources = sources
    return converter


def _extras(
    names: list[str], chosen: dict[str, str], spec: TableFormat, table: Path
) -> tuple[list[pa.Field], dict[str, str]]:
    """The output's extra fields, and output column -> input column (renamed on a clash)."""
    used = set(chosen.values())
    extras: list[pa.Field] = [pa.field("time_source", pa.string())]
    sources: dict[str, str] = {}
    types = dict(zip(names, input_types(table, names), strict=True))
    for name in names:
        if name in used or name == "outdoor":
            continue
        out_name = name if name not in COLUMNS and name != "time_source" else f"input_{name}"
        extras.append(pa.field(out_name, spec.extra_types.get(name, types[name])))
        sources[out_name] = name
    return extras, sources


def _convert_batches(
    batches: Iterator[pa.RecordBatch],
    converter: RowConverter,
    parts: _Parts,
    sink: _Sink,
    report: ImportReport,
    row_group_rows: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Convert the batches not converted before an interruption; returns the rows read.

    Each row group is saved as a part (with its checkpoint), then handed to ``sink``.
    """
    rows = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    for batch in batches:
        if rows + batch.num_rows <= parts.done:  # converted before the interruption
            rows += batch.num_rows
            continue
        if rows < parts.done:
            batch = batch.slice(parts.done - rows)
            rows = parts.done
        frame = converter.convert(batch, rows)
        rows += batch.num_rows
        if frame is not None:
            pending.append(frame)
            pending_rows += frame.num_rows
        if pending_rows >= row_group_rows:
            _put(sink, parts.write(pending, rows, report, converter.counts))
            pending, pending_rows = [], 0
        if progress:
            progress(batch.num_rows)
    _put(sink, parts.write(pending, rows, report, converter.counts))
    return rows


def _put(sink: _Sink, table: pa.Table | None) -> None:
    if table is not None:
        sink.put(table)


def _close(
    writer: TableWriter,
    parts: _Parts,
    report: ImportReport,
    counted: int,
    provenance: dict[str, Any],
    table: Path,
    chosen: dict[str, str],
    root: Path,
) -> dict[str, Any]:
    """Finish the dataset's table and ``dataset.json``; returns the meta.

    Raises
    ------
    InputError
        If at most half of the ``counted`` rows were kept (the report is
        written and the parts removed first; the table is not kept).
    """
    report.written = writer.rows
    out = writer.root
    if writer.rows == 0 or writer.rows * 2 <= counted:
        report.write(out / REPORT_FILE)
        parts.remove()
        top = ", ".join(f"{k}: {v}" for k, v in report.skipped.most_common(3))
        raise InputError(
            f"only {writer.rows} of {counted} rows could be imported ({top}); a wrong "
            f"--format, column or --images is the usual cause; see {out / REPORT_FILE}",
            source=table,
        )
    fmt = report.notes["format"]
    return writer.close(
        provenance,
        images="msgpack" if FORMATS[fmt].store == "msgpack" else "folder",
        source=fmt,
        columns=chosen,
        image_root=str(root.resolve()),
    )


def _locator(
    spec: TableFormat, root: Path, out: Path, report: ImportReport
) -> tuple[FolderIndex | KeyedImages, dict[str, Any]]:
    """The format's image locator and what the report says of the image store."""
    if spec.store == "msgpack":
        from trigeo.data.msgpack_shards import scan_shards

        # Headers are the check pass's job (--check-images): the scan reads positions only.
        return scan_shards(root, out, report, check_images=False)
    if spec.by_stem:
        keyed = scan_stems(root, report)
        return keyed, {"images": len(keyed)}
    return FolderIndex(root, spec.basename_fallback, report), {}
