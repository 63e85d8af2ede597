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

Resumable: each row group is written as a part file followed by a checkpoint
(``.csv-state.json``); the same command run again after an interruption
skips the rows already converted. MP-16 shard scans are cached per shard.

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

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trigeo.data.formats import FORMATS, TableFormat, resolve_columns
from trigeo.data.image_index import LINK, FolderLocator, KeyedImages, scan_stems
from trigeo.data.images import BadImageError, sniff_image
from trigeo.data.report import ImportReport
from trigeo.data.stores import StoreReader
from trigeo.data.table import COLUMNS, TableWriter
from trigeo.data.yfcc import _SeenIds, id_keys, split_from_keys
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = ["REPORT_FILE", "import_csv", "parse_times"]

REPORT_FILE = "import-report.json"
_PARTS_DIR = ".csv-parts"
_STATE_FILE = ".csv-state.json"
_MS_THRESHOLD = 1e11
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_REASONS = (
    "missing id",
    "bad number",
    "missing coordinates",
    "latitude beyond ±90",
    "longitude beyond ±180",
    "bad time",
    "missing split",
    "duplicate id",
)


def _strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column as trimmed strings (nulls as empty)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    return pc.fill_null(pc.utf8_trim_whitespace(values), "")


def _floats(values: pa.Array) -> np.ndarray:
    """Column to float64; empty or unparsable values become NaN."""
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    text = _strings(values)
    try:  # fast path: every value a number (a bad one falls back to the checked path)
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = pc.match_substring_regex(text, _NUMBER).to_numpy(zero_copy_only=False)
    out = np.full(len(text), np.nan)
    where = np.flatnonzero(ok)
    if where.size:
        out[where] = pc.cast(text.take(pa.array(where)), pa.float64()).to_numpy(
            zero_copy_only=False
        )
    return out


def parse_times(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times to UTC microseconds by the module's time rule.

    Returns
    -------
    (micros, ok, empty)
        int64 microseconds since the epoch (0 where not ``ok``), whether each
        value parsed, and whether it was empty.
    """
    n = len(values)
    if pa.types.is_timestamp(values.type):
        tz = values.type.tz
        cast = values if tz else pc.assume_timezone(values, "UTC")
        micros = pc.cast(pc.cast(cast, pa.timestamp("us", tz="UTC")), pa.int64())
        empty = pc.is_null(micros).to_numpy(zero_copy_only=False)
        return pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), ~empty, empty
    text = _strings(values)
    empty = pc.equal(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    numeric = pc.match_substring_regex(text, _NUMBER).to_numpy(zero_copy_only=False)
    micros = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    where = np.flatnonzero(numeric)
    if where.size:
        seconds = _floats(text.take(pa.array(where)))
        seconds = np.where(np.abs(seconds) >= _MS_THRESHOLD, seconds / 1000.0, seconds)
        good = np.isfinite(seconds) & (np.abs(seconds) < 9.2e12)
        micros[where[good]] = np.round(seconds[good] * 1e6).astype(np.int64)
        ok[where[good]] = True
    where = np.flatnonzero(~numeric & ~empty)
    if where.size:
        strings = pd.Series(text.take(pa.array(where)).to_numpy(zero_copy_only=False))
        parsed = pd.to_datetime(strings, utc=True, format="ISO8601", errors="coerce")
        good = parsed.notna().to_numpy()
        stamps = parsed[good].dt.as_unit("us").astype("int64").to_numpy()
        micros[where[good]] = stamps
        ok[where[good]] = True
    return micros, ok, empty


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


def _load_state(path: Path, signature: dict[str, Any], parts_dir: Path) -> dict[str, Any]:
    fresh = {"rows_done": 0, "skipped": {}, "examples": {}, "parts": [], "notes": {}}
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


class _Converter:
    """Turns input batches into table rows, reporting every dropped row."""

    def __init__(
        self,
        fmt: TableFormat,
        columns: dict[str, str],
        extras: list[pa.Field],
        report: ImportReport,
        locate: Any,
        split: str | None,
        split_args: tuple[float, float, int],
        allow_missing: bool,
        check_images: bool,
        out: Path,
    ) -> None:
        self.fmt, self.columns, self.extras, self.report = fmt, columns, extras, report
        self.locate, self.split, self.split_args = locate, split, split_args
        self.allow_missing, self.check_images = allow_missing, check_images
        self.seen = _SeenIds()
        self.sources: dict[str, str] = {}
        self.out = out
        self.stores = StoreReader(out)  # references start with "images/", the link in out
        self.counts: dict[str, int] = {
            "missing_images_kept": 0,
            "times_absent": 0,
            "users_absent": 0,
            "outdoor_out_of_range": 0,
            "absent_expected": 0,
        }

    def _skip(
        self, reason: str, rows: np.ndarray, offset: int, detail: Callable[[int], str]
    ) -> None:
        for i in rows[:5].tolist():
            self.report.skip(reason, where=f"row {offset + i + 1}", detail=detail(i))
        if rows.size > 5:  # beyond the examples, counted only
            self.report.skipped[reason] += rows.size - 5

    def convert(self, batch: pa.RecordBatch, offset: int) -> pa.Table | None:
        cols = self.columns
        n = batch.num_rows
        reason = np.zeros(n, dtype=np.int8)
        detail: dict[int, Callable[[int], str]] = {}

        def flag(code: int, mask: np.ndarray, text: Callable[[int], str]) -> None:
            new = (reason == 0) & mask
            reason[new] = code
            detail.setdefault(code, text)

        def col(name: str) -> pa.Array:
            values = batch.column(cols[name])
            return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values

        ids = _strings(col("id"))
        flag(1, pc.equal(pc.utf8_length(ids), 0).to_numpy(zero_copy_only=False), lambda i: "")
        lat_raw, lon_raw = col("lat"), col("lon")
        lat_s, lon_s = _strings(lat_raw), _strings(lon_raw)
        lat, lon = _floats(lat_raw), _floats(lon_raw)
        lat_empty = pc.equal(pc.utf8_length(lat_s), 0).to_numpy(zero_copy_only=False)
        lon_empty = pc.equal(pc.utf8_length(lon_s), 0).to_numpy(zero_copy_only=False)
        flag(3, lat_empty | lon_empty, lambda i: f"{cols['lat']}/{cols['lon']} empty")
        flag(
            2,
            ~(np.isfinite(lat) & np.isfinite(lon)),
            lambda i: (
                f"{cols['lat']} {lat_s[i].as_py()!r}, {cols['lon']} {lon_s[i].as_py()!r}: "
                "not a number"
            ),
        )
        with np.errstate(invalid="ignore"):
            flag(4, np.abs(lat) > 90, lambda i: f"{cols['lat']} {lat[i]}")
            flag(5, np.abs(lon) > 180, lambda i: f"{cols['lon']} {lon[i]}")
        micros = np.zeros(n, dtype=np.int64)
        has_time = np.zeros(n, dtype=bool)
        if "time" in cols:
            time_raw = col("time")
            micros, ok, empty = parse_times(time_raw)
            time_s = _strings(time_raw)
            flag(6, ~ok & ~empty, lambda i: f"{cols['time']} {time_s[i].as_py()!r}")
            has_time = ok
        split_s = None
        if "split" in cols:
            split_s = _strings(col("split"))
            flag(
                7,
                pc.equal(pc.utf8_length(split_s), 0).to_numpy(zero_copy_only=False),
                lambda i: f"{cols['split']} empty",
            )
        ok_rows = np.flatnonzero(reason == 0)
        keys = id_keys(ids.take(pa.array(ok_rows, type=pa.int64())))
        dup = self.seen.contains(keys) | pd.Series(keys).duplicated().to_numpy()
        reason[ok_rows[dup]] = 8
        detail[8] = lambda i: f"{cols['id']} {ids[i].as_py()!r}"
        self.seen.add(keys[~dup])
        for code in np.unique(reason[reason > 0]).tolist():
            self._skip(_REASONS[code - 1], np.flatnonzero(reason == code), offset, detail[code])

        keep = np.flatnonzero(reason == 0)
        refs, keep = self._images(batch, ids, keep, offset)
        k = keep.size
        if k == 0:
            return None
        take = pa.array(keep, type=pa.int64())
        ids_k = ids.take(take)
        if "user" in cols:
            users = _strings(col("user")).take(take)
            # OSV-5M writes numeric creator ids as floats ("111336221091714.0").
            users = pc.replace_substring_regex(users, r"^([0-9]+)\.0$", r"\1")
            absent = pc.equal(pc.utf8_length(users), 0)
            self.counts["users_absent"] += int(pc.sum(absent).as_py() or 0)
        else:
            absent = pa.array(np.ones(k, dtype=bool))
            users = ids_k
        # A photo without a user is its own user: albums never mix strangers' photos.
        users = pc.if_else(absent, pc.binary_join_element_wise("photo:", ids_k, ""), users)
        times = micros[keep]
        known = has_time[keep]
        self.counts["times_absent"] += int((~known).sum())
        posted = pa.array(np.where(known, times, 0), type=pa.timestamp("us", tz="UTC"))
        taken = pa.array(
            np.where(known, times, 0),
            type=pa.timestamp("us", tz="UTC"),
            mask=~known if self.fmt.time_is_capture else np.ones(k, dtype=bool),
        )
        if self.split is not None:
            split = pa.array([self.split] * k, type=pa.string())
        elif split_s is not None:
            split = split_s.take(take)
        else:
            # The id keys were computed for the duplicate check: reuse them (hashing is costly).
            kept_keys = keys[np.searchsorted(ok_rows, keep)]
            split = pa.array(split_from_keys(kept_keys, *self.split_args), type=pa.string())
        columns: dict[str, pa.Array] = {
            "photo_id": ids_k,
            "image": pa.array(refs, type=pa.string()),
            "lat": pa.array(lat[keep]),
            "lon": pa.array(lon[keep]),
            "user_id": users,
            "posted_at": posted,
            "taken_at": taken,
            "outdoor": self._outdoor(batch, take),
            "split": split,
            "time_source": pa.array(
                np.where(known, "column", "none").astype(object), type=pa.string()
            ),
        }
        for f in self.extras:
            if f.name == "time_source":
                continue
            source = self.sources.get(f.name, f.name)
            values = batch.column(source)
            if isinstance(values, pa.ChunkedArray):
                values = values.combine_chunks()
            values = values.take(take)
            if pa.types.is_floating(f.type):
                columns[f.name] = pa.array(_floats(values))
            elif pa.types.is_integer(f.type):
                floats = _floats(values)
                whole = np.isfinite(floats) & (floats == np.round(floats))
                columns[f.name] = pa.array(np.where(whole, floats, 0).astype(np.int64), mask=~whole)
            elif values.type != f.type:
                columns[f.name] = pc.cast(values, f.type)
            else:
                columns[f.name] = values
        return pa.table(columns)

    def _outdoor(self, batch: pa.RecordBatch, take: pa.Array) -> pa.Array:
        names = batch.schema.names
        if "outdoor" in names:
            values = _floats(batch.column("outdoor").take(take))
        elif "Prob_indoor" in names:
            values = 1.0 - _floats(batch.column("Prob_indoor").take(take))
        else:
            return pa.nulls(len(take), type=pa.float64())
        with np.errstate(invalid="ignore"):
            # Rounding can put 1 - p a hair outside [0, 1]; clip that, drop real outliers.
            inside = (values > -1e-9) & (values < 1 + 1e-9)
        self.counts["outdoor_out_of_range"] += int((np.isfinite(values) & ~inside).sum())
        values = np.where(inside, values.clip(0, 1), np.nan)
        return pa.array(values, mask=np.isnan(values))

    def _images(
        self, batch: pa.RecordBatch, ids: pa.Array, keep: np.ndarray, offset: int
    ) -> tuple[list[str], np.ndarray]:
        """References of the kept rows' images; rows without one are reported."""
        if keep.size == 0:
            return [], keep
        take = pa.array(keep, type=pa.int64())
        if "image" in self.columns:
            values = _strings(batch.column(self.columns["image"])).take(take)
        else:
            values = ids.take(take)
        texts = values.to_pylist()
        refs: list[str | None] = [None] * keep.size
        failed: list[tuple[int, str, str]] = []
        if isinstance(self.locate, KeyedImages):
            pos = self.locate.lookup(values)
            all_refs: list[str | None] = [None] * pos.size
            all_problems: list[str | None] = [None] * pos.size
            if len(self.locate):
                where = pa.array(np.maximum(pos, 0))
                # Bulk conversions: per-element Arrow access costs microseconds per row.
                all_refs = self.locate.refs.take(where).to_pylist()
                all_problems = self.locate.problems.take(where).to_pylist()
            for j, p in enumerate(pos.tolist()):
                if p < 0:
                    reason = (
                        "not in the image set"
                        if self.fmt.absent_images_expected
                        else "missing image"
                    )
                    failed.append((j, reason, f"no image with id {texts[j]!r}"))
                    continue
                ref, problem = all_refs[j], all_problems[j]
                if problem is None and self.check_images and self.fmt.store != "msgpack":
                    problem = self._check_ref(ref)  # msgpack records were checked in the scan
                if problem is not None:
                    failed.append((j, problem, self.locate.details[p].as_py()))
                    continue
                refs[j] = ref
        else:
            for j, text in enumerate(texts):
                if "://" in text:  # a URL: kept for `trigeo data download`
                    refs[j] = text
                    continue
                ref, why, about = self.locate.find(text)
                if why == "missing image" and self.fmt.absent_images_expected:
                    why = "not in the image set"
                if ref is None:
                    failed.append((j, str(why), about))
                else:
                    refs[j] = ref
        drop = np.zeros(keep.size, dtype=bool)
        for j, why, about in failed:
            missing = why in ("missing image", "not in the image set")
            if why == "not in the image set":
                self.counts["absent_expected"] += 1
            if missing and self.allow_missing:
                # Kept on request: the loaders skip and report it when it is still absent.
                self.counts["missing_images_kept"] += 1
                refs[j] = f"{LINK}/{texts[j]}"
                continue
            drop[j] = True
            self.report.skip(why, where=f"row {offset + int(keep[j]) + 1}", detail=about)
        kept = [r for r, d in zip(refs, drop, strict=True) if not d]
        return kept, keep[~drop]  # type: ignore[return-value]

    def _check_ref(self, ref: str) -> str | None:
        path, _, member = ref.partition("#")
        try:
            data = self.stores.read(path, member) if member else (self.out / path).read_bytes()
            sniff_image(data)
        except BadImageError as exc:
            return exc.reason if exc.reason != "empty file" else "empty image"
        except (OSError, KeyError, ValueError):
            return "unreadable image"
        return None


def import_csv(
    table: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    fmt: str = "generic",
    columns: dict[str, str | None] | None = None,
    split: str | None = None,
    allow_missing_images: bool = False,
    check_images: bool = True,
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
        Open each image's header; unreadable ones are reported and dropped.
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
    if not table.is_file():
        raise InputError("no such file", source=table)
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {sorted(FORMATS)}, got {fmt!r}")
    spec = FORMATS[fmt]
    root = Path(images) if images is not None else table.parent
    if not root.exists():
        raise InputError("no such image folder (--images)", source=root)
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
    stat = table.stat()
    signature = {
        **config,
        "input": str(table.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "batch_rows": batch_rows,
    }
    parts_dir, state_path = out / _PARTS_DIR, out / _STATE_FILE
    state = _load_state(state_path, signature, parts_dir)
    # A resumed run's checkpoint already holds what the image scan reports: scan quietly.
    scan_report = (
        ImportReport("data.csv", table) if state["parts"] or state["rows_done"] else report
    )
    locate: Any
    store_summary: dict[str, Any] = {}
    if spec.store == "msgpack":
        from trigeo.data.msgpack_shards import scan_shards

        locate, store_summary = scan_shards(root, out, scan_report, check_images=check_images)
    elif spec.by_stem:
        locate = scan_stems(root, scan_report)
        store_summary = {"images": len(locate)}
    else:
        locate = FolderLocator(root, spec.basename_fallback, check_images)
    used = set(chosen.values())
    extras: list[pa.Field] = [pa.field("time_source", pa.string())]
    sources: dict[str, str] = {}  # output column -> input column (renamed on a clash)
    input_types = dict(zip(names, _input_types(table, names), strict=True))
    for name in names:
        if name in used or name == "outdoor":
            continue
        out_name = name if name not in COLUMNS and name != "time_source" else f"input_{name}"
        kind = spec.extra_types.get(name, input_types[name])
        extras.append(pa.field(out_name, kind))
        sources[out_name] = name

    if scan_report is not report:
        report.skipped.update(state["skipped"])
        report.examples = {k: list(v) for k, v in state["examples"].items()}
    done = int(state["rows_done"])
    parts: list[str] = list(state["parts"])
    if done:
        report.notes["resumed_after_rows"] = done
    converter = _Converter(
        spec,
        chosen,
        extras,
        report,
        locate,
        split,
        (val_fraction, heads_fraction, seed),
        allow_missing_images,
        check_images,
        out,
    )
    converter.sources = sources
    for key, value in state["notes"].items():
        converter.counts[key] = int(value)
    for name in parts:  # ids already kept: duplicates and matched images
        ids = pq.read_table(parts_dir / name, columns=["photo_id"]).column("photo_id")
        ids = ids.combine_chunks()
        converter.seen.add(id_keys(ids))
        if isinstance(locate, KeyedImages):
            locate.lookup(ids)
    parts_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = 0
    pending: list[pa.Table] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_rows
        name = f"part-{len(parts):06d}.parquet"
        if pending:
            with atomic_path(parts_dir / name) as tmp:
                # Parts are read back once and deleted: fast lz4, not the table's zstd.
                pq.write_table(
                    pa.concat_tables(pending), tmp, compression="lz4", use_dictionary=False
                )
            parts.append(name)
        write_json_atomic(
            state_path,
            {
                "signature": signature,
                "rows_done": rows,
                "skipped": dict(report.skipped),
                "examples": report.examples,
                "parts": parts,
                "notes": converter.counts,
            },
        )
        pending, pending_rows = [], 0

    for batch in _iterate(batches, batch_rows):
        if rows + batch.num_rows <= done:  # converted before the interruption
            rows += batch.num_rows
            continue
        if rows < done:
            batch = batch.slice(done - rows)
            rows = done
        frame = converter.convert(batch, rows)
        rows += batch.num_rows
        if frame is not None:
            pending.append(frame)
            pending_rows += frame.num_rows
        if pending_rows >= row_group_rows:
            flush()
        if progress:
            progress(batch.num_rows)
    flush()
    report.read = rows
    seconds = time.perf_counter() - start
    report.notes["rows_per_second"] = round(rows / seconds) if seconds > 0 else None
    report.notes.update({k: v for k, v in converter.counts.items() if v})
    if isinstance(locate, KeyedImages) and spec.store == "msgpack":
        store_summary["records_without_metadata"] = locate.report_unmatched(
            report, "record without metadata"
        )
    report.notes["image_store"] = {"kind": spec.store, "root": str(root.resolve()), **store_summary}
    with TableWriter(out, extras) as writer:
        for name in parts:
            writer.write(pq.read_table(parts_dir / name))
        report.written = writer.rows
        counted = rows - converter.counts["absent_expected"]
        if writer.rows == 0 or writer.rows * 2 <= counted:
            report.write(out / REPORT_FILE)
            shutil.rmtree(parts_dir, ignore_errors=True)
            state_path.unlink(missing_ok=True)
            top = ", ".join(f"{k}: {v}" for k, v in report.skipped.most_common(3))
            raise InputError(
                f"only {writer.rows} of {counted} rows could be imported ({top}); a wrong "
                f"--format, column or --images is the usual cause; see {out / REPORT_FILE}",
                source=table,
            )
        provenance = make_provenance(config, {table.name: hash_file(table)})
        meta = writer.close(
            provenance,
            images=spec.store if spec.store == "msgpack" else "folder",
            source=fmt,
            columns=chosen,
            image_root=str(root.resolve()),
        )
    report.write(out / REPORT_FILE)
    shutil.rmtree(parts_dir, ignore_errors=True)
    state_path.unlink(missing_ok=True)
    return meta, report


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
