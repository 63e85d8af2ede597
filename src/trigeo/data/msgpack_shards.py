"""MP-16 msgpack shards, read in place as a dataset's image store.

Layout, as the S2-cell geolocation systems publish and write it: a folder of
``shard_<N>.msg`` files (``N`` not zero-padded), each a plain concatenation
of msgpack maps ``{"id": IMG_ID, "image": <JPEG bytes>}`` (one ``packb`` per
photo, some 4,096 per shard), with ``IMG_ID`` matching ``mp16_places365.csv``.
Files written by msgpack < 1.0 store both as raw strings; both kinds are read.

:func:`scan_shards` reads every record once, streaming (one record in memory
at a time), and notes where it starts and how long it is. The dataset's
``image`` column then holds ``images/shard_<N>.msg#OFFSET+LENGTH``
(:mod:`trigeo.data.stores`), so the M1 loader and ``trigeo predict`` seek
straight to a record, and ``trigeo data shard`` converts the set to
webdataset tars. Each shard's scan is cached next to the output
(``.msgpack-scan/``, keyed by the shard's size and mtime), so an interrupted
import does not re-read the shards already scanned.

Reported per shard, without stopping: a record cut off by the end of the file
(``truncated msgpack record``: the shard is read up to it), bytes that are
not msgpack (``corrupt msgpack data``: the rest of that shard cannot be
resynchronized and is skipped), a value that is not a map with ``id`` and
binary ``image`` (``bad msgpack record``), and, once rows are matched,
image bytes Pillow cannot open (``not an image``, on the row) and records no
metadata row names (``record without metadata``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trigeo.data.image_index import LINK, KeyedImages
from trigeo.data.images import BadImageError, sniff_image
from trigeo.data.report import ImportReport
from trigeo.data.stores import msgpack_ref, record_image
from trigeo.errors import InputError
from trigeo.provenance import atomic_path

__all__ = ["SHARD_PATTERN", "list_shards", "scan_shard", "scan_shards"]

SHARD_PATTERN = re.compile(r"^shard_(\d+)\.msg$")
_SCAN_DIR = ".msgpack-scan"
_MAX_RECORD = 256 << 20  # a record larger than this is not a photo


def list_shards(folder: Path) -> list[Path]:
    """``shard_<N>.msg`` files directly in ``folder``, by ``N``.

    Raises
    ------
    InputError
        If the folder is missing or holds no shard.
    """
    if not folder.is_dir():
        raise InputError("no such folder (the msgpack shards' folder)", source=folder)
    shards = [p for p in folder.iterdir() if SHARD_PATTERN.match(p.name)]
    if not shards:
        raise InputError(
            "no shard_<N>.msg files here; --images must be the folder of MP-16 msgpack shards",
            source=folder,
        )
    return sorted(shards, key=lambda p: int(SHARD_PATTERN.match(p.name).group(1)))  # type: ignore[union-attr]


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def scan_shard(path: Path, check_images: bool = True) -> dict[str, Any]:
    """Read every record of one shard: its id, position and image problem, if any.

    Returns
    -------
    dict
        ``ids``, ``offsets``, ``lengths``, ``problems`` (reason or ``None``
        per record), ``records`` (records read) and ``issues``: shard-level
        problems as ``[reason, byte offset, detail]``.
    """
    import msgpack

    ids: list[str] = []
    offsets: list[int] = []
    lengths: list[int] = []
    problems: list[str | None] = []
    issues: list[list[Any]] = []
    size = path.stat().st_size
    with open(path, "rb") as handle:
        unpacker = msgpack.Unpacker(
            handle, raw=True, max_buffer_size=_MAX_RECORD, strict_map_key=False
        )
        records = 0
        while True:
            start = unpacker.tell()
            try:
                record = unpacker.unpack()
            except msgpack.OutOfData:
                if start < size:
                    issues.append(
                        [
                            "truncated msgpack record",
                            start,
                            f"the file ends {size - start} bytes into a record",
                        ]
                    )
                break
            except (ValueError, msgpack.UnpackException) as exc:
                issues.append(
                    [
                        "corrupt msgpack data",
                        start,
                        f"{type(exc).__name__}: {exc}; the rest of the shard "
                        f"({size - start} bytes) is skipped",
                    ]
                )
                break
            end = unpacker.tell()
            records += 1
            if record is None:  # the published readers skip nil values too
                continue
            photo_id = (
                _text(record.get(b"id", record.get("id"))) if isinstance(record, dict) else None
            )
            try:
                image = record_image(record)
            except ValueError as exc:
                issues.append(["bad msgpack record", start, f"id {photo_id!r}: {exc}"])
                continue
            if photo_id is None or not photo_id.strip():
                issues.append(["bad msgpack record", start, "no text 'id' value"])
                continue
            problem = None
            if check_images:
                try:
                    sniff_image(image)
                except BadImageError as exc:
                    problem = "not an image" if exc.reason != "empty file" else "empty image"
            ids.append(photo_id)
            offsets.append(start)
            lengths.append(end - start)
            problems.append(problem)
    return {
        "ids": ids,
        "offsets": offsets,
        "lengths": lengths,
        "problems": problems,
        "records": records,
        "issues": issues,
    }


def _cached_scan(path: Path, cache: Path, check_images: bool) -> dict[str, Any]:
    """:func:`scan_shard`, or its result saved by an earlier run on the same file."""
    stat = path.stat()
    signature = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "check": check_images}
    saved = cache / f"{path.name}.parquet"
    if saved.exists():
        try:
            table = pq.read_table(saved)
            meta = json.loads(table.schema.metadata[b"trigeo"])
            if meta["signature"] == signature:
                return {**table.to_pydict(), "records": meta["records"], "issues": meta["issues"]}
        except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
            pass  # an unreadable cache is rebuilt
    scan = scan_shard(path, check_images)
    table = pa.table(
        {
            "ids": pa.array(scan["ids"], type=pa.string()),
            "offsets": pa.array(scan["offsets"], type=pa.int64()),
            "lengths": pa.array(scan["lengths"], type=pa.int64()),
            "problems": pa.array(scan["problems"], type=pa.string()),
        }
    )
    meta = {"signature": signature, "records": scan["records"], "issues": scan["issues"]}
    table = table.replace_schema_metadata({"trigeo": json.dumps(meta)})
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(saved) as tmp:
        pq.write_table(table, tmp)
    return scan


def scan_shards(
    folder: Path,
    out: Path,
    report: ImportReport,
    *,
    check_images: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[KeyedImages, dict[str, Any]]:
    """Scan every shard of ``folder`` into an id index of image references.

    Parameters
    ----------
    folder
        The folder of ``shard_<N>.msg`` files (linked into ``out`` as ``images``).
    out
        The dataset directory (holds the scan cache).
    report
        Receives shard-level problems and duplicate record ids.
    check_images
        Open each record's image header (:func:`trigeo.data.images.sniff_image`).
    progress
        Called with 1 after each shard.

    Returns
    -------
    (KeyedImages, summary)
        The index, and ``{"shards": n, "records": n}`` for the report.
    """
    shards = list_shards(folder)
    ids: list[pa.Array] = []
    refs: list[pa.Array] = []
    problems: list[pa.Array] = []
    details: list[pa.Array] = []
    total = 0
    for path in shards:
        scan = _cached_scan(path, out / _SCAN_DIR, check_images)
        total += int(scan["records"])
        for reason, offset, detail in scan["issues"]:
            report.skip(reason, where=f"{path.name} byte {offset}", detail=detail)
        shard_ref = f"{LINK}/{path.name}"
        ids.append(pa.array(scan["ids"], type=pa.string()))
        refs.append(
            pa.array(
                [
                    msgpack_ref(shard_ref, o, n)
                    for o, n in zip(scan["offsets"], scan["lengths"], strict=True)
                ],
                type=pa.string(),
            )
        )
        problems.append(pa.array(scan["problems"], type=pa.string()))
        details.append(
            pa.array([f"{path.name} byte {o}" for o in scan["offsets"]], type=pa.string())
        )
        if progress:
            progress(1)

    def join(parts: list[pa.Array]) -> pa.Array:
        return pa.concat_arrays(parts) if parts else pa.array([], type=pa.string())

    index = KeyedImages(join(ids), join(refs), join(problems), join(details), report)
    return index, {"shards": len(shards), "records": total}
