"""img2dataset's per-shard status and stats files: one pass over the output, failures by reason.

Each finished shard has ``NNNNN.parquet`` (one row per URL, with ``status``
and ``error_message``) and ``NNNNN_stats.json`` (counts, written last); a
shard without its stats was cut off and is left out. Part of
:mod:`trigeo.data.img2dataset`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trigeo.data.img2dataset_shards import _scan_folder, _scan_tar, _Shard
from trigeo.data.report import ImportReport
from trigeo.errors import InputError
from trigeo.provenance import atomic_path

_SUCCESS = "success"


def _read_status(path: Path) -> pa.Table:
    """A shard's status parquet (one row per URL of the shard)."""
    try:
        schema = pq.read_schema(path)
        wanted = [
            c for c in ("key", "status", "error_message", "photo_id", "url") if c in schema.names
        ]
        table = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read img2dataset's status file ({exc})", source=path) from exc
    for column in ("key", "status"):
        if column not in table.column_names:
            raise InputError(
                f"no column {column!r}: not a status file of img2dataset "
                f"(columns {table.column_names})",
                source=path,
            )
    return table


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        stats = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read img2dataset's stats ({exc})", source=path) from exc
    if not isinstance(stats, dict) or "count" not in stats:
        raise InputError("no 'count': not a stats file of img2dataset", source=path)
    return stats


def _failure_reason(status: str | None, message: str | None) -> str:
    """``failed_to_download: HTTP Error 404: Not Found``: img2dataset's status and its error."""
    text = (message or "").strip().replace("\n", " ")
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{status or 'no status'}: {text}" if text else str(status or "no status")


@dataclass
class _Outcome:
    """What a pass over the output found, before anything is written."""

    attempted: int = 0
    refs: list[str] = field(default_factory=list)
    photo_ids: list[str] = field(default_factory=list)
    layout: str = "files"
    failed: list[tuple[str | None, str, str, str]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _read_output(
    source: Path,
    shards: dict[str, _Shard],
    prefix: str,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> _Outcome:
    if not any(s.tar or s.folder for s in shards.values()):
        _refuse_empty(source, shards)
    outcome = _Outcome()
    totals = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}
    starts, ends = [], []
    for shard in shards.values():
        if shard.stats is None or not (shard.tar or shard.folder):
            # No stats: img2dataset had not finished the shard (it writes them last).
            outcome.incomplete.append(shard.stem)
            if progress:
                progress(1)
            continue
        stats = _read_stats(shard.stats)
        for name in totals:
            totals[name] += int(stats.get(name) or 0)
        starts.append(float(stats.get("start_time") or 0.0))
        ends.append(float(stats.get("end_time") or 0.0))
        outcome.attempted += int(stats["count"])
        if shard.tar is not None:
            (refs, ids), found = _scan_tar(shard.tar, prefix, report)
            outcome.layout = "webdataset"
        else:
            assert shard.folder is not None
            (refs, ids), found = _scan_folder(shard.folder, prefix, report)
        outcome.refs.extend(refs)
        outcome.photo_ids.extend(ids)
        # Keys with an image count as found even when their json was bad (reported once).
        _shard_failures(shard, stats, found, outcome, report)
        if progress:
            progress(1)
    totals["seconds_summed_over_shards"] = round(
        sum(e - s for s, e in zip(starts, ends, strict=True)), 3
    )
    if starts:
        totals["seconds_first_start_to_last_end"] = round(max(ends) - min(starts), 3)
    outcome.stats = totals
    return outcome


def _shard_failures(
    shard: _Shard, stats: dict[str, Any], found: set[str], outcome: _Outcome, report: ImportReport
) -> None:
    """Failed URLs of one finished shard, by reason, from its status parquet (else its stats)."""
    where = shard.tar or shard.folder
    if shard.status is None:
        # The per-URL file is gone: the stats still count the failures by error.
        for message, count in (stats.get("status_dict") or {}).items():
            if message != _SUCCESS and int(count) > 0:
                reason = _failure_reason("failed", message)
                report.skip(reason, where=f"shard {shard.stem}", detail="no per-URL status file")
                report.skipped[reason] += int(count) - 1
        report.notes.setdefault("shards_without_status_file", []).append(shard.stem)
        return
    table = _read_status(shard.status).to_pydict()
    n = len(table["key"])
    ids = table.get("photo_id", [None] * n)
    urls = table.get("url", [""] * n)
    messages = table.get("error_message", [None] * n)
    for key, status, message, photo_id, url in zip(
        table["key"], table["status"], messages, ids, urls, strict=True
    ):
        photo = None if photo_id is None else str(photo_id)
        if status == _SUCCESS:
            if str(key) not in found:
                reason = "missing from shard"
                report.skip(reason, where=f"{where}: {key}", detail=f"photo {photo} {url}")
                outcome.failed.append((photo, str(url or ""), str(status), reason))
            continue
        reason = _failure_reason(status, message)
        report.skip(reason, where=f"photo {photo}" if photo else f"{where}: {key}", detail=url)
        outcome.failed.append((photo, str(url or ""), str(status), str(message or "")))


def _refuse_empty(source: Path, shards: dict[str, _Shard]) -> None:
    """Explain why a folder holds nothing to attach (parquet output, wrong folder)."""
    for shard in shards.values():
        if shard.status is None:
            continue
        names = pq.read_schema(shard.status).names
        inline = [e for e in ("jpg", "png", "webp") if e in names]
        if inline:
            raise InputError(
                f"img2dataset wrote the images inside its parquet files (--output_format "
                f"parquet, column {inline[0]!r}), which trigeo does not read in place; run it "
                "again with --output_format webdataset (or files)",
                source=shard.status,
            )
    raise InputError(
        "no img2dataset shard here (NNNNN.tar for --output_format webdataset, or NNNNN/ "
        "folders for files); give the folder passed as img2dataset's --output_folder",
        source=source,
    )


def _write_failed(path: Path, outcome: _Outcome) -> None:
    """List the failed downloads (photo, URL, img2dataset's status and error)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "url", "status", "error_message"])
        writer.writerows((p or "", u, st, m) for p, u, st, m in outcome.failed)
