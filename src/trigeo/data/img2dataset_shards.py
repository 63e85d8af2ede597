"""Reading img2dataset's output layouts in place: shard files, tar headers, sample jsons.

A shard ``NNNNN`` is a webdataset tar (``NNNNN.tar``) or a folder of files
(``NNNNN/``); each sample's ``KEY.json`` carries its photo id. Part of
:mod:`trigeo.data.img2dataset`.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from trigeo.data.images import IMAGE_EXTENSIONS
from trigeo.data.report import ImportReport
from trigeo.errors import InputError


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
