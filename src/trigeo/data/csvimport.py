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
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from trigeo.data.checkpoint import load_checkpoint
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


def _open_table(path: Path, batch_rows: int, report: ImportReport) -> tuple[list[str], Any]:
    """Column names and a batch iterator of the CSV or Parquet input."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"PAR1":
        parquet = pq.ParquetFile(path)
        report.notes["input_kind"] = "parquet"
        return parquet.schema_arrow.names, parquet.iter_batches(batch_size=batch_rows)
    import pyarrow.csv as pacsv

    report.notes["input_kind"] = "csv"
    try:
        probe = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
        names = probe.schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read as CSV ({exc})", source=path) from exc
    names = [name.lstrip("\ufeff") for name in names]

    def on_invalid(row: Any) -> str:
        where = f"line {row.number}" if row.number is not None else None
        detail = f"{row.actual_columns} fields, expected {row.expected_columns}"
        report.skip("wrong column count", where=where, detail=detail)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=1, block_size=min(max(1 << 16, batch_rows * 128), 1 << 26)
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
        ),
    )
    return names, reader


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
        of :func:`trigeo.data.yfcc.split_from_keys` is drawn.
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
    names, batches = _open_table(table, batch_rows, report)
    chosen, how = resolve_columns(names, spec, columns or {}, str(table))
    if split is not None and "split" in chosen:
        raise InputError("give --split or --split-col, not both")
    report.notes["format"] = fmt
    report.notes["columns"] = {name: [chosen[name], how[name]] for name in chosen}
    if on_columns:
        on_columns(chosen, how)
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
    extras, sources = _extras(names, chosen, spec, table)
    converter = RowConverter(
        spec,
        chosen,
        extras,
        report,
        locate,
        split,
        (val_fraction, heads_fraction, seed),
        allow_missing_images,
        HeaderCheck(out) if check_images else None,
    )
    converter.sources = sources
    parts.restore(report, converter)
    start = time.perf_counter()
    rows = _convert_batches(
        _iterate(batches, batch_rows), converter, parts, report, row_group_rows, progress
    )
    report.read = rows
    seconds = time.perf_counter() - start
    report.notes["rows_per_second"] = round(rows / seconds) if seconds > 0 else None
    report.notes.update({k: v for k, v in converter.counts.items() if v})
    _image_notes(report, converter, spec, root, store_summary)
    counted = rows - converter.counts["absent_expected"]
    meta = _write_dataset(out, parts, extras, report, counted, config, table, chosen, root)
    return meta, report


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


def _image_notes(
    report: ImportReport,
    converter: RowConverter,
    spec: TableFormat,
    root: Path,
    store: dict[str, Any],
) -> None:
    """What the report says of the image store, its listing and the header check."""
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

    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        with pa.memory_map(str(self.dir / name)) as source:
            table = pa.ipc.open_file(source).read_all()
        return table.select(columns) if columns else table

    def restore(self, report: ImportReport, converter: RowConverter) -> None:
        """Bring back what the interrupted run had counted and kept."""
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
            ids = self.read(name, ["photo_id"]).column("photo_id").combine_chunks()
            converter.seen.add(id_keys(ids))
            if isinstance(converter.locate, KeyedImages):
                converter.locate.lookup(ids)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(
        self, tables: list[pa.Table], rows: int, report: ImportReport, counts: dict[str, int]
    ) -> None:
        """Write one part (if any rows), then the checkpoint saying ``rows`` were read."""
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


def _extras(
    names: list[str], chosen: dict[str, str], spec: TableFormat, table: Path
) -> tuple[list[pa.Field], dict[str, str]]:
    """The output's extra fields, and output column -> input column (renamed on a clash)."""
    used = set(chosen.values())
    extras: list[pa.Field] = [pa.field("time_source", pa.string())]
    sources: dict[str, str] = {}
    input_types = dict(zip(names, _input_types(table, names), strict=True))
    for name in names:
        if name in used or name == "outdoor":
            continue
        out_name = name if name not in COLUMNS and name != "time_source" else f"input_{name}"
        extras.append(pa.field(out_name, spec.extra_types.get(name, input_types[name])))
        sources[out_name] = name
    return extras, sources


def _convert_batches(
    batches: Iterator[pa.RecordBatch],
    converter: RowConverter,
    parts: _Parts,
    report: ImportReport,
    row_group_rows: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Convert the batches not converted before an interruption; returns the rows read."""
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
            parts.write(pending, rows, report, converter.counts)
            pending, pending_rows = [], 0
        if progress:
            progress(batch.num_rows)
    parts.write(pending, rows, report, converter.counts)
    return rows


def _write_dataset(
    out: Path,
    parts: _Parts,
    extras: list[pa.Field],
    report: ImportReport,
    counted: int,
    config: dict[str, Any],
    table: Path,
    chosen: dict[str, str],
    root: Path,
) -> dict[str, Any]:
    """Join the parts into the dataset; the report is written whatever happens.

    Raises
    ------
    InputError
        If at most half of the ``counted`` rows were kept.
    """
    fmt = config["format"]
    with TableWriter(out, extras) as writer:
        for name in parts.names:
            writer.write(parts.read(name))
        report.written = writer.rows
        if writer.rows == 0 or writer.rows * 2 <= counted:
            report.write(out / REPORT_FILE)
            parts.remove()
            top = ", ".join(f"{k}: {v}" for k, v in report.skipped.most_common(3))
            raise InputError(
                f"only {writer.rows} of {counted} rows could be imported ({top}); a wrong "
                f"--format, column or --images is the usual cause; see {out / REPORT_FILE}",
                source=table,
            )
        provenance = make_provenance(config, {table.name: hash_file(table)})
        meta = writer.close(
            provenance,
            images="msgpack" if FORMATS[fmt].store == "msgpack" else "folder",
            source=fmt,
            columns=chosen,
            image_root=str(root.resolve()),
        )
    report.write(out / REPORT_FILE)
    parts.remove()
    return meta


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


def _input_types(table: Path, names: list[str]) -> list[pa.DataType]:
    """Types of the input columns as they will be kept (CSV: strings)."""
    with open(table, "rb") as handle:
        if handle.read(4) == b"PAR1":
            schema = pq.read_schema(table)
            return [schema.field(name).type for name in names]
    return [pa.string()] * len(names)


def _iterate(batches: Any, size: int) -> Iterator[pa.RecordBatch]:
    """The input's batches, cut to at most ``size`` rows (CSV blocks vary in rows)."""

    def raw() -> Iterator[pa.RecordBatch]:
        if hasattr(batches, "read_next_batch"):
            while True:
                try:
                    yield batches.read_next_batch()
                except StopIteration:
                    return
        else:
            yield from batches

    for batch in raw():
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)
