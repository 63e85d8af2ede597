"""Downloads at scale through img2dataset: its input list, and its output read in place.

`img2dataset <https://github.com/rom1504/img2dataset>`_ is the field's downloader
(YFCC100M, MP-16, LAION-scale sets): processes and threads on one machine, or
Spark or Ray over many. It cannot share trigeo's environment (it pins
``webdataset<0.3`` and ``pandas<3``), so trigeo speaks its formats instead of
importing it:

* :func:`write_url_list` (``trigeo data urls``) writes its input: a Parquet
  file with one row per photo whose ``image`` is still a URL, columns ``url``
  and ``photo_id``. Run img2dataset on it with
  ``--save_additional_columns '["photo_id"]'`` so every sample carries its
  photo id back (:func:`img2dataset_command` prints the command).
* :func:`attach_img2dataset` (``trigeo data images --from-img2dataset``)
  points the dataset's ``image`` column into img2dataset's output folder,
  which stays where it is (no image is copied):

  - ``--output_format webdataset``: ``NNNNN.tar`` holding ``KEY.jpg``,
    ``KEY.json`` and, with a caption column, ``KEY.txt``; rows become
    ``<link>/NNNNN.tar#KEY``, the tar reference trigeo's loaders read
    (:class:`trigeo.data.loading.ImageReader`);
  - ``--output_format files``: ``NNNNN/KEY.jpg`` beside ``NNNNN/KEY.json``;
    rows become the plain path ``<link>/NNNNN/KEY.jpg``.

  ``<link>`` is the output folder's path inside the dataset, or, for a folder
  elsewhere, a symbolic link ``img2dataset`` (``img2dataset-2``... for
  further folders) made inside the dataset, as ``trigeo data csv`` links
  its image root.

The photo id of each sample is read from its ``.json``. Every shard also has
``NNNNN.parquet`` (one row per URL, with ``status`` and ``error_message``)
and ``NNNNN_stats.json`` (counts, written when the shard is finished): the
failures are reported by reason from them, as ``trigeo data download``
reports dead links. A shard without its stats file was cut off (img2dataset
is still running, or was interrupted): it is left out and named, and running
the same img2dataset command again finishes it.

Failed photos keep their URL (so ``trigeo data urls`` lists just them for
another run) unless ``drop_failed`` removes them. A run in which at most half
of the attempted photos can be attached stops with an error and leaves the
table alone: that is a wrong ``--data`` or a dead URL source far more often
than a usable result.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trigeo.data.images import IMAGE_EXTENSIONS
from trigeo.data.report import ImportReport
from trigeo.data.split import keep_meta
from trigeo.data.table import TABLE_FILE, Dataset
from trigeo.errors import ArtifactError, InputError
from trigeo.provenance import atomic_path, make_provenance

__all__ = [
    "FAILED_FILE",
    "LINK_NAME",
    "REPORT_FILE",
    "attach_img2dataset",
    "img2dataset_command",
    "spark_script",
    "write_url_list",
]

REPORT_FILE = "img2dataset-report.json"
FAILED_FILE = "img2dataset-failed.csv"
LINK_NAME = "img2dataset"
"""Name of the link, inside the dataset, to an output folder that lies elsewhere."""

#: More than this share of attempted photos not attached stops the run.
MAX_FAILED_SHARE = 0.5
_SUCCESS = "success"


# --- the input list ----------------------------------------------------------------------


def write_url_list(data: str | Path, out: str | Path) -> dict[str, int]:
    """Write img2dataset's input for dataset ``data``: ``url`` and ``photo_id`` per photo.

    A row is listed when its ``image`` holds a URL (contains ``://``), the rule
    ``trigeo data download`` uses; rows with a local image or one already
    attached are left out, so after a partial download the list holds just
    what is still missing.

    Parameters
    ----------
    data
        Dataset directory.
    out
        Parquet file to write (atomically).

    Returns
    -------
    dict
        ``rows`` in the table, ``urls`` written, ``local`` left out.

    Raises
    ------
    InputError
        If no row's image is a URL (nothing to download).
    """
    root, out = Path(data), Path(out)
    table_path = root / TABLE_FILE
    if not table_path.exists():
        raise ArtifactError(f"{root}: no {TABLE_FILE}; is this a trigeo dataset directory?")
    # Two columns through Arrow: a 14M-row table is never converted to pandas here.
    try:
        table = pq.read_table(table_path, columns=["photo_id", "image"])
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise ArtifactError(f"{table_path}: cannot read photo_id and image ({exc})") from exc
    images = table.column("image")
    remote = pc.fill_null(pc.match_substring(images, "://"), False)
    n_urls = int(pc.sum(remote).as_py() or 0)
    if n_urls == 0:
        raise InputError(
            f"no image of the {table.num_rows} rows is a URL: nothing for img2dataset to "
            "download (the images are local or attached already)",
            source=table_path,
            column="image",
        )
    picked = table.filter(remote)
    urls = pa.table(
        {
            "url": picked.column("image").cast(pa.string()),
            "photo_id": picked.column("photo_id").cast(pa.string()),
        }
    )
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(urls, tmp, compression="zstd")
    return {"rows": table.num_rows, "urls": n_urls, "local": table.num_rows - n_urls}


def img2dataset_command(
    url_list: str | Path,
    output_folder: str | Path,
    *,
    output_format: str = "webdataset",
    processes: int = 16,
    threads: int = 64,
    image_size: int = 512,
) -> str:
    """The img2dataset command that downloads ``url_list`` on one machine.

    The flags are img2dataset's own (``img2dataset --help``). Images keep their
    aspect ratio and are only shrunk, to ``image_size`` on the longer side
    (``keep_ratio_largest``, ``resize_only_if_bigger``): its default
    ``border`` mode would pad every photo to a square, and a crop would cut
    away the clues a geolocator reads.
    """
    args = [
        "img2dataset",
        "--url_list",
        str(url_list),
        "--input_format",
        "parquet",
        "--url_col",
        "url",
        "--save_additional_columns",
        '["photo_id"]',
        "--output_format",
        output_format,
        "--output_folder",
        str(output_folder),
        "--processes_count",
        str(processes),
        "--thread_count",
        str(threads),
        "--image_size",
        str(image_size),
        "--resize_mode",
        "keep_ratio_largest",
        "--resize_only_if_bigger",
        "True",
        "--retries",
        "2",
        "--timeout",
        "20",
    ]
    return shlex.join(args)


def spark_script(url_list: str, output_folder: str, *, image_size: int = 512) -> str:
    """A Python script that downloads ``url_list`` over a Spark cluster.

    ``--distributor pyspark`` on the command line only starts a local Spark
    session (``local[processes_count]``); img2dataset uses a cluster when the
    calling process already holds a session on it, so the download runs from
    a script started with ``spark-submit``. ``url_list`` and ``output_folder``
    should be shared storage (``hdfs://``, ``s3://`` or a network mount) every
    executor reaches.
    """
    return (
        "from pyspark.sql import SparkSession\n"
        "from img2dataset import download\n\n"
        'spark = SparkSession.builder.appName("trigeo-img2dataset").getOrCreate()\n'
        "download(\n"
        f"    url_list={json.dumps(url_list)},\n"
        '    input_format="parquet",\n'
        '    url_col="url",\n'
        '    save_additional_columns=["photo_id"],\n'
        '    output_format="webdataset",\n'
        f"    output_folder={json.dumps(output_folder)},\n"
        f"    image_size={image_size},\n"
        '    resize_mode="keep_ratio_largest",\n'
        "    resize_only_if_bigger=True,\n"
        "    processes_count=16,  # per executor\n"
        "    thread_count=64,\n"
        '    distributor="pyspark",\n'
        "    number_sample_per_shard=10000,\n"
        "    retries=2,\n"
        ")\n"
    )


# --- reading img2dataset's output ------------------------------------------------------------


@dataclass
class _Shard:
    """What one shard id ``NNNNN`` has in the output folder."""

    stem: str
    tar: Path | None = None
    folder: Path | None = None
    status: Path | None = None
    stats: Path | None = None


def _find_shards(source: Path) -> dict[str, _Shard]:
    """Shards by id: tars, sample folders, status parquets and stats files."""
    shards: dict[str, _Shard] = {}

    def shard(stem: str) -> _Shard:
        return shards.setdefault(stem, _Shard(stem))

    with os.scandir(source) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith("_stats.json") and name[: -len("_stats.json")].isdigit():
                shard(name[: -len("_stats.json")]).stats = Path(entry.path)
            elif name.endswith(".tar") and name[:-4].isdigit():
                shard(name[:-4]).tar = Path(entry.path)
            elif name.endswith(".parquet") and name[:-8].isdigit():
                shard(name[:-8]).status = Path(entry.path)
            elif name.isdigit() and entry.is_dir():
                shard(name).folder = Path(entry.path)
    return dict(sorted(shards.items()))


class _BadJsonError(Exception):
    """A sample's json that cannot be read: that sample is skipped and reported."""


def _sample_photo_id(data: bytes, where: Path, key: str) -> str:
    """The photo id in one sample's json.

    Raises
    ------
    _BadJsonError
        If the json cannot be parsed (one sample is skipped).
    InputError
        If it has no ``photo_id``: img2dataset was run without keeping it,
        so no sample of the folder can be matched to a row.
    """
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _BadJsonError(f"unreadable json ({exc})") from exc
    if not isinstance(record, dict):
        raise _BadJsonError(f"json is a {type(record).__name__}, not an object")
    photo_id = record.get("photo_id")
    if photo_id is None:
        raise InputError(
            f"sample {key!r} has no 'photo_id' in its json: run img2dataset with "
            "--save_additional_columns '[\"photo_id\"]' on the list `trigeo data urls` wrote",
            source=where,
        )
    return str(photo_id)


_BLOCK = 512


class _NotPlainUstarError(Exception):
    """A tar header the fast reader leaves to :mod:`tarfile` (pax, GNU long name, link)."""


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """The ``LENGTH key=value\\n`` records of a pax extended header."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _ustar_members(path: Path) -> list[tuple[str, bytes | None]]:
    """``(name, data)`` of each file in a tar, ``data`` read for ``.json`` members only.

    Walks the headers that webdataset's ``TarWriter`` (Python's :mod:`tarfile`)
    writes for img2dataset (a pax header carrying ``mtime`` before each
    ustar member): 100k samples scan in 3.5 s against :mod:`tarfile`'s 15 s
    (its member objects), which matters at 14M images. Checksums and sizes
    are checked; a pax ``path`` or ``size`` is applied.

    Raises
    ------
    _NotPlainUstarError
        On any other kind of header: the caller reads the file with :mod:`tarfile`.
    tarfile.ReadError
        If the file is truncated or a header is corrupt.
    """
    members: list[tuple[str, bytes | None]] = []
    pax: dict[bytes, bytes] = {}
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        while True:
            at = handle.tell()
            header = handle.read(_BLOCK)
            if not header or header == bytes(_BLOCK):
                return members  # end of archive
            if len(header) < _BLOCK:
                raise tarfile.ReadError(f"truncated header at byte {at}")
            kind = header[156:157]
            if header[257:262] != b"ustar" or kind not in (b"0", b"\0", b"x"):
                raise _NotPlainUstarError
            try:
                stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
                size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            except ValueError as exc:
                raise tarfile.ReadError(f"corrupt header at byte {at}") from exc
            # The checksum sums the header with its own field read as eight spaces.
            if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
                raise tarfile.ReadError(f"bad header checksum at byte {at}")
            if kind == b"x":  # applies to the next member only
                try:
                    pax = _pax_records(handle.read(size))
                    if b"size" in pax:
                        int(pax[b"size"])
                except ValueError as exc:
                    raise tarfile.ReadError(f"corrupt pax header at byte {at}") from exc
                handle.seek(at + _BLOCK + -(-size // _BLOCK) * _BLOCK)
                continue
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            folder = header[345:500].split(b"\0", 1)[0]
            if folder:
                name = f"{folder.decode('utf-8', 'surrogateescape')}/{name}"
            if b"path" in pax:
                name = pax[b"path"].decode("utf-8", "surrogateescape")
            if b"size" in pax:
                size = int(pax[b"size"])
            pax = {}
            padded = -(-size // _BLOCK) * _BLOCK
            if handle.tell() + size > end:
                raise tarfile.ReadError(f"member {name!r} is cut short by the end of the file")
            if name.endswith(".json"):
                members.append((name, handle.read(size)))
                handle.seek(padded - size, os.SEEK_CUR)
            else:
                members.append((name, None))
                handle.seek(padded, os.SEEK_CUR)


def _tarfile_members(path: Path) -> list[tuple[str, bytes | None]]:
    """:func:`_ustar_members` through :mod:`tarfile`, for tars with other headers."""
    members: list[tuple[str, bytes | None]] = []
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            data = None
            if member.name.endswith(".json"):
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
            members.append((member.name, data))
    return members


def _scan_tar(path: Path, prefix: str, report: ImportReport) -> tuple[_Samples, set[str]]:
    """The samples of a webdataset tar with a photo id, and the keys of all its images."""
    try:
        try:
            members = _ustar_members(path)
        except _NotPlainUstarError:
            members = _tarfile_members(path)
    except (OSError, tarfile.TarError) as exc:
        raise InputError(
            f"cannot read the shard ({exc}); if img2dataset was still writing it, wait for its "
            "_stats.json, else run the same img2dataset command again to redo it",
            source=path,
        ) from exc
    images: dict[str, str] = {}
    ids: dict[str, str | None] = {}
    for name, data in members:
        key, _, ext = name.rpartition(".")
        ext = ext.lower()
        if ext in IMAGE_EXTENSIONS:
            images.setdefault(key, ext)
        elif data is not None:
            try:
                ids[key] = _sample_photo_id(data, path, key)
            except _BadJsonError as exc:
                ids[key] = None
                report.skip("unreadable sample json", where=f"{path.name}#{key}", detail=str(exc))
    return _pair(images, ids, f"{prefix}/{path.name}#{{key}}", path, report), set(images)


def _scan_folder(path: Path, prefix: str, report: ImportReport) -> tuple[_Samples, set[str]]:
    """Like :func:`_scan_tar` for a ``files`` shard folder: ``KEY.<ext>`` beside ``KEY.json``."""
    images: dict[str, str] = {}
    ids: dict[str, str | None] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            key, _, ext = entry.name.rpartition(".")
            ext = ext.lower()
            if ext in IMAGE_EXTENSIONS:
                images.setdefault(key, ext)
            elif ext == "json":
                try:
                    ids[key] = _sample_photo_id(Path(entry.path).read_bytes(), path, key)
                except (OSError, _BadJsonError) as exc:
                    ids[key] = None
                    report.skip("unreadable sample json", where=entry.path, detail=str(exc))
    template = f"{prefix}/{path.name}/{{key}}.{{ext}}"
    return _pair(images, ids, template, path, report), set(images)


_Samples = tuple[list[str], list[str]]
"""Image references and photo ids of a shard's samples, in step: two lists rather than
an object per sample, which at 14M samples would cost gigabytes."""


def _pair(
    images: dict[str, str],
    ids: dict[str, str | None],
    template: str,
    where: Path,
    report: ImportReport,
) -> _Samples:
    refs: list[str] = []
    photo_ids: list[str] = []
    for key, ext in images.items():
        if key not in ids:
            report.skip("sample without json", where=f"{where}: {key}")
            continue
        photo_id = ids[key]
        if photo_id is not None:  # else its unreadable json was reported already
            refs.append(template.format(key=key, ext=ext))
            photo_ids.append(photo_id)
    return refs, photo_ids


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


def _plan_link(root: Path, source: Path) -> str:
    """The output folder's path as the dataset's rows will reach it.

    Its path inside the dataset when it lies there; else the name of a link in
    the dataset: the existing one to the same folder, or the first free
    ``img2dataset``, ``img2dataset-2``, ... (:func:`_make_link` makes it).
    """
    target, base = source.resolve(), root.resolve()
    if target.is_relative_to(base):
        return target.relative_to(base).as_posix()
    for n in range(1, 1000):
        name = LINK_NAME if n == 1 else f"{LINK_NAME}-{n}"
        link = root / name
        if not (link.is_symlink() or link.exists()) or link.resolve() == target:
            return name
    raise InputError(f"no free link name {LINK_NAME}-N for {target}", source=root)


def _make_link(root: Path, source: Path, prefix: str) -> None:
    """Make ``root/prefix`` a link to ``source`` unless the rows reach it already."""
    link, target = root / prefix, source.resolve()
    if link.resolve() == target:
        return
    # Made under a temporary name and renamed: a crash never leaves a half-made link.
    tmp = root / f".{prefix}.{os.getpid()}.link"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


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


def attach_img2dataset(
    data: str | Path,
    source: str | Path,
    *,
    drop_failed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, ImportReport]:
    """Point dataset ``data``'s ``image`` column into img2dataset's output ``source``.

    Parameters
    ----------
    data
        Dataset directory; its table is rewritten in place.
    source
        img2dataset's ``--output_folder`` (webdataset or files output), read
        in place: nothing is copied.
    drop_failed
        Remove the rows whose download failed (else they keep their URL).
    progress
        Called with 1 after each shard.

    Returns
    -------
    (Dataset, ImportReport)
        The report (``img2dataset-report.json`` in the dataset) counts the
        attempted photos (``read``), the attached ones (``written``) and the
        others by reason; ``img2dataset-failed.csv`` lists the failed photos.

    Raises
    ------
    InputError
        If the folder holds no img2dataset output, a sample carries no photo
        id, or at most half of the attempted photos could be attached (the
        table is then left untouched; the report says why).
    """
    root, source = Path(data), Path(source)
    if not source.is_dir():
        raise InputError(
            "not a folder: give the folder passed as img2dataset's --output_folder", source=source
        )
    dataset = Dataset.open(root)
    report = ImportReport("data.images", source.resolve())
    shards = _find_shards(source)
    report.notes["shards"] = len(shards)
    # The link's name is chosen before the scan (rows are written with it) but made
    # only once the output proved usable.
    prefix = _plan_link(root, source)
    outcome = _read_output(source, shards, prefix, report, progress)
    report.read = outcome.attempted
    report.notes["img2dataset_stats"] = outcome.stats
    if outcome.incomplete:
        report.notes["unfinished_shards"] = outcome.incomplete

    # No copy: ``dataset`` is replaced by the one written below.
    table = dataset.table
    position = pd.Index(table["photo_id"].to_numpy(dtype=object))
    images, attached = _match(table, position, outcome, report)
    _write_failed(root / FAILED_FILE, outcome)
    _check_enough(root, source, outcome, report)

    _make_link(root, source, prefix)
    urls = table["image"].str.contains("://", regex=False).to_numpy()
    keep = np.ones(len(table), dtype=bool)
    if drop_failed:
        failed_ids = [p for p, *_ in outcome.failed if p is not None]
        failed_rows = position.get_indexer(failed_ids) if failed_ids else np.empty(0, np.int64)
        failed_rows = failed_rows[failed_rows >= 0]
        # Only rows still waiting on a URL go: one attached from another folder stays.
        keep[failed_rows[urls[failed_rows] & ~attached[failed_rows]]] = False
    table["image"] = images
    table = table[keep].reset_index(drop=True)
    remaining = int(table["image"].str.contains("://", regex=False).sum())
    report.notes["dropped_rows"] = int((~keep).sum())
    report.notes["remaining_urls"] = remaining

    layout = outcome.layout
    meta = keep_meta(dataset.meta)
    sources = [s for s in meta.get("img2dataset", []) if s.get("link") != prefix]
    sources.append(
        {"link": prefix, "path": str(source.resolve()), "layout": layout, "photos": report.written}
    )
    meta["img2dataset"] = sources
    meta["images"] = "mixed" if remaining else ("shards" if layout == "webdataset" else "folder")
    config = {"stage": "data.images", "source": str(source.resolve()), "drop_failed": drop_failed}
    provenance = make_provenance(
        config, {"table.parquet": dataset.hash}, parent=dataset.meta.get("provenance")
    )
    dataset = Dataset.write(root, table, provenance, **meta)
    report.write(root / REPORT_FILE)
    return dataset, report


def _match(
    table: pd.DataFrame, position: pd.Index, outcome: _Outcome, report: ImportReport
) -> tuple[np.ndarray, np.ndarray]:
    """The ``image`` column with the samples' references, and which rows got one."""
    ids = outcome.photo_ids
    rows = position.get_indexer(ids) if ids else np.empty(0, dtype=np.int64)
    images = table["image"].to_numpy(dtype=object).copy()
    attached = np.zeros(len(table), dtype=bool)
    for ref, photo_id, row in zip(outcome.refs, ids, rows.tolist(), strict=True):
        if row < 0:
            detail = f"photo_id {photo_id!r} (was the URL list written from this --data?)"
            report.skip("photo id not in the dataset", where=ref, detail=detail)
        elif attached[row]:
            report.skip("duplicate photo id", where=ref, detail=f"photo {photo_id}")
        else:
            attached[row] = True
            images[row] = ref
    report.written = int(attached.sum())
    return images, attached


def _write_failed(path: Path, outcome: _Outcome) -> None:
    """List the failed downloads (photo, URL, img2dataset's status and error)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["photo_id", "url", "status", "error_message"])
        writer.writerows((p or "", u, st, m) for p, u, st, m in outcome.failed)


def _check_enough(root: Path, source: Path, outcome: _Outcome, report: ImportReport) -> None:
    """Stop, with the report written, when at most half of the attempted photos attach."""
    if report.written > (1 - MAX_FAILED_SHARE) * report.read and report.written > 0:
        return
    report_path = report.write(root / REPORT_FILE)
    reasons = ", ".join(f"{r} ({n})" for r, n in report.skipped.most_common(3)) or "none"
    if outcome.incomplete:
        reasons += f"; {len(outcome.incomplete)} unfinished shard(s) left out"
    raise InputError(
        f"only {report.written} of {report.read} attempted photos could be attached "
        f"(most common reasons: {reasons}); the table is unchanged, see {report_path} "
        f"and {root / FAILED_FILE}",
        source=source,
    )
