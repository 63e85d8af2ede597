"""Table rows to dataset rows: value parsing (numbers, times) and the row converter.

Used by :mod:`trigeo.data.csvimport`, which streams batches through
:class:`RowConverter`; the rules (time rule, users, reasons) are described
there and in ``docs/datasets.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from trigeo.data.formats import TableFormat
from trigeo.data.ids import SPLIT_NAMES, SeenIds, id_keys, split_codes
from trigeo.data.image_index import LINK
from trigeo.data.imagecheck import HeaderCheck, checkable
from trigeo.data.report import ImportReport

__all__ = ["RowConverter", "as_floats", "as_strings", "parse_times"]

_SPLIT_NAMES = pa.array(SPLIT_NAMES, type=pa.string())
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


def as_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column as trimmed strings (nulls as empty)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    return pc.fill_null(pc.utf8_trim_whitespace(values), "")


def as_floats(values: pa.Array) -> np.ndarray:
    """Column to float64; empty or unparsable values become NaN."""
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    text = as_strings(values)
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
    text = as_strings(values)
    empty = pc.equal(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    numeric = pc.match_substring_regex(text, _NUMBER).to_numpy(zero_copy_only=False)
    micros = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    where = np.flatnonzero(numeric)
    if where.size:
        seconds = as_floats(text.take(pa.array(where)))
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


class RowConverter:
    """Turns input batches into table rows, reporting every dropped row.

    Parameters
    ----------
    fmt
        The table format (image layout, time and absent-image rules).
    columns
        Field -> input column.
    extras
        Extra output fields (input columns kept, and ``time_source``).
    report
        Receives every dropped row, by reason.
    locate
        The image locator: ``match(values) -> Matches``
        (:class:`trigeo.data.image_index.FolderIndex` or ``KeyedImages``).
    split
        One split for every photo, or ``None`` (a split column, or the seeded split).
    split_args
        ``(val_fraction, heads_fraction, seed)`` of the seeded split.
    allow_missing
        Keep rows whose image is missing (counted).
    check
        The optional header check of the matched images, or ``None``.
    """

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
        check: HeaderCheck | None,
    ) -> None:
        self.fmt, self.columns, self.extras, self.report = fmt, columns, extras, report
        self.locate, self.split, self.split_args = locate, split, split_args
        self.allow_missing, self.check = allow_missing, check
        self.seen = SeenIds()
        self.sources: dict[str, str] = {}
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

    def _col(self, batch: pa.RecordBatch, name: str) -> pa.Array:
        values = batch.column(self.columns[name])
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values

    def convert(self, batch: pa.RecordBatch, offset: int) -> pa.Table | None:
        """Table rows of the batch's good rows; ``offset`` is the batch's first row (0-based)."""
        parsed = self._validate(batch, offset)
        refs, keep = self._images(batch, parsed, offset)
        if keep.size == 0:
            return None
        return self._assemble(batch, parsed, refs, keep)

    def _validate(self, batch: pa.RecordBatch, offset: int) -> dict[str, Any]:
        """Parse ids, coordinates, times and splits; report and drop the bad rows."""
        cols = self.columns
        reason = np.zeros(batch.num_rows, dtype=np.int8)
        detail: dict[int, Callable[[int], str]] = {}

        def flag(code: int, mask: np.ndarray, text: Callable[[int], str]) -> None:
            new = (reason == 0) & mask
            reason[new] = code
            detail.setdefault(code, text)

        def empty(values: pa.Array) -> np.ndarray:
            return pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)

        ids = as_strings(self._col(batch, "id"))
        flag(1, empty(ids), lambda i: "")
        lat_raw, lon_raw = self._col(batch, "lat"), self._col(batch, "lon")
        lat_s, lon_s = as_strings(lat_raw), as_strings(lon_raw)
        lat, lon = as_floats(lat_raw), as_floats(lon_raw)
        flag(3, empty(lat_s) | empty(lon_s), lambda i: f"{cols['lat']}/{cols['lon']} empty")
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
        micros = np.zeros(batch.num_rows, dtype=np.int64)
        has_time = np.zeros(batch.num_rows, dtype=bool)
        if "time" in cols:
            time_raw = self._col(batch, "time")
            micros, ok, blank = parse_times(time_raw)
            time_s = as_strings(time_raw)
            flag(6, ~ok & ~blank, lambda i: f"{cols['time']} {time_s[i].as_py()!r}")
            has_time = ok
        split_s = None
        if "split" in cols:
            split_s = as_strings(self._col(batch, "split"))
            flag(7, empty(split_s), lambda i: f"{cols['split']} empty")
        ok_rows = np.flatnonzero(reason == 0)
        keys = id_keys(ids.take(pa.array(ok_rows, type=pa.int64())))
        dup = self.seen.contains(keys) | pd.Series(keys).duplicated().to_numpy()
        reason[ok_rows[dup]] = 8
        detail[8] = lambda i: f"{cols['id']} {ids[i].as_py()!r}"
        self.seen.add(keys[~dup])
        for code in np.unique(reason[reason > 0]).tolist():
            self._skip(_REASONS[code - 1], np.flatnonzero(reason == code), offset, detail[code])
        return {
            "ids": ids,
            "keep": np.flatnonzero(reason == 0),
            "lat": lat,
            "lon": lon,
            "micros": micros,
            "has_time": has_time,
            "split": split_s,
            "ok_rows": ok_rows,
            "keys": keys,
        }

    @staticmethod
    def _kept_keys(parsed: dict[str, Any]) -> np.ndarray:
        """Positions in ``parsed["keys"]`` (keys of the rows that passed) of the kept rows."""
        return np.searchsorted(parsed["ok_rows"], parsed["keep"])

    def _assemble(
        self, batch: pa.RecordBatch, parsed: dict[str, Any], refs: pa.Array, keep: np.ndarray
    ) -> pa.Table:
        """The output table of the kept rows."""
        k = keep.size
        take = pa.array(keep, type=pa.int64())
        ids_k = parsed["ids"].take(take)
        if "user" in self.columns:
            users = as_strings(self._col(batch, "user")).take(take)
            # OSV-5M writes numeric creator ids as floats ("111336221091714.0").
            users = pc.replace_substring_regex(users, r"^([0-9]+)\.0$", r"\1")
            absent = pc.equal(pc.utf8_length(users), 0)
            self.counts["users_absent"] += int(pc.sum(absent).as_py() or 0)
        else:
            absent = pa.array(np.ones(k, dtype=bool))
            users = ids_k
        # A photo without a user is its own user: albums never mix strangers' photos.
        users = pc.if_else(absent, pc.binary_join_element_wise("photo:", ids_k, ""), users)
        times = parsed["micros"][keep]
        known = parsed["has_time"][keep]
        self.counts["times_absent"] += int((~known).sum())
        posted = pa.array(np.where(known, times, 0), type=pa.timestamp("us", tz="UTC"))
        taken = pa.array(
            np.where(known, times, 0),
            type=pa.timestamp("us", tz="UTC"),
            mask=~known if self.fmt.time_is_capture else np.ones(k, dtype=bool),
        )
        if self.split is not None:
            split = pa.array([self.split] * k, type=pa.string())
        elif parsed["split"] is not None:
            split = parsed["split"].take(take)
        else:
            # The id keys were computed for the duplicate check: reuse them (hashing is costly).
            kept_keys = parsed["keys"][np.searchsorted(parsed["ok_rows"], keep)]
            codes = split_codes(kept_keys, *self.split_args)
            split = _SPLIT_NAMES.take(pa.array(codes))
        columns: dict[str, pa.Array] = {
            "photo_id": ids_k,
            "image": refs,
            "lat": pa.array(parsed["lat"][keep]),
            "lon": pa.array(parsed["lon"][keep]),
            "user_id": users,
            "posted_at": posted,
            "taken_at": taken,
            "outdoor": self._outdoor(batch, take),
            "split": split,
            "time_source": pc.if_else(pa.array(known), "column", "none"),
        }
        columns.update(self._extras(batch, take))
        return pa.table(columns)

    def _extras(self, batch: pa.RecordBatch, take: pa.Array) -> dict[str, pa.Array]:
        """The input's other columns, typed as the format says."""
        columns: dict[str, pa.Array] = {}
        for f in self.extras:
            if f.name == "time_source":
                continue
            source = self.sources.get(f.name, f.name)
            values = batch.column(source)
            if isinstance(values, pa.ChunkedArray):
                values = values.combine_chunks()
            values = values.take(take)
            if pa.types.is_floating(f.type):
                columns[f.name] = pa.array(as_floats(values))
            elif pa.types.is_integer(f.type):
                floats = as_floats(values)
                whole = np.isfinite(floats) & (floats == np.round(floats))
                columns[f.name] = pa.array(np.where(whole, floats, 0).astype(np.int64), mask=~whole)
            elif values.type != f.type:
                columns[f.name] = pc.cast(values, f.type)
            else:
                columns[f.name] = values
        return columns

    def _outdoor(self, batch: pa.RecordBatch, take: pa.Array) -> pa.Array:
        names = batch.schema.names
        if "outdoor" in names:
            values = as_floats(batch.column("outdoor").take(take))
        elif "Prob_indoor" in names:
            values = 1.0 - as_floats(batch.column("Prob_indoor").take(take))
        else:
            return pa.nulls(len(take), type=pa.float64())
        with np.errstate(invalid="ignore"):
            # Rounding can put 1 - p a hair outside [0, 1]; clip that, drop real outliers.
            inside = (values > -1e-9) & (values < 1 + 1e-9)
        self.counts["outdoor_out_of_range"] += int((np.isfinite(values) & ~inside).sum())
        values = np.where(inside, values.clip(0, 1), np.nan)
        return pa.array(values, mask=np.isnan(values))

    def _images(
        self, batch: pa.RecordBatch, parsed: dict[str, Any], offset: int
    ) -> tuple[pa.Array, np.ndarray]:
        """References of the kept rows' images; rows without one are reported.

        One array join per batch (no file is opened), then, when asked, the
        header check of the matched images.
        """
        keep = parsed["keep"]
        if keep.size == 0:
            return pa.array([], type=pa.string()), keep
        take = pa.array(keep, type=pa.int64())
        if "image" in self.columns:
            values = as_strings(self._col(batch, "image")).take(take)
            matches = self.locate.match(values)
        else:
            values = parsed["ids"].take(take)
            # The ids were hashed for the duplicate check: the lookup reuses the keys.
            matches = self.locate.match(values, parsed["keys"][self._kept_keys(parsed)])
        refs = matches.refs
        problems: dict[int, tuple[str, str]] = {}
        for j in np.flatnonzero(pc.is_valid(matches.problems).to_numpy(zero_copy_only=False)):
            problems[int(j)] = (matches.problems[int(j)].as_py(), "")
        if self.check is not None:
            rows = checkable(refs)
            rows = rows[~np.isin(rows, list(problems))] if problems else rows
            problems.update(self.check.check(refs, rows))
        drop = np.zeros(keep.size, dtype=bool)

        def at(row: int) -> int:  # batch row -> position among the kept rows
            return int(np.searchsorted(keep, row))

        missing = np.flatnonzero(~pc.is_valid(refs).to_numpy(zero_copy_only=False))
        if missing.size:
            reason = "not in the image set" if self.fmt.absent_images_expected else "missing image"
            if self.fmt.absent_images_expected:
                self.counts["absent_expected"] += int(missing.size)
            if self.allow_missing:
                # Kept on request: the loaders skip and report it when it is still absent.
                self.counts["missing_images_kept"] += int(missing.size)
                linked = pc.binary_join_element_wise(LINK, values, "/")
                refs = pc.if_else(pc.is_valid(refs), refs, linked)
            else:
                drop[missing] = True
                self._skip(reason, keep[missing], offset, lambda i: matches.missing(at(i)))
        by_reason: dict[str, list[int]] = {}
        for j in sorted(problems):
            by_reason.setdefault(problems[j][0], []).append(j)
        for why, rows in by_reason.items():
            drop[rows] = True

            def detail(j: int) -> str:
                where, text = matches.where(j), problems[j][1]
                return f"{where}: {text}" if text else where

            self._skip(why, keep[rows], offset, lambda i: detail(at(i)))
        return refs.filter(pa.array(~drop)), keep[~drop]
