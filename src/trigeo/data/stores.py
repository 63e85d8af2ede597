"""Image stores read in place: msgpack shard records and zip archive members.

Image references (the table's ``image`` column) for these stores are

* ``PATH.msg#OFFSET+LENGTH``: the msgpack record (a map with an ``image``
  key holding the encoded bytes) that starts ``OFFSET`` bytes into the shard
  and is ``LENGTH`` bytes long. The position is in the reference itself, so a
  reader needs no index in memory: an id -> position dictionary of the 4.7M
  MP-16 records would cost about a gigabyte in every DataLoader worker.
* ``PATH.zip#MEMBER``: a member of a zip archive (OpenStreetView-5M's
  ``images/<split>/<NN>.zip``), found through the archive's central directory,
  which :mod:`zipfile` reads once per archive and process.

``PATH`` is relative to the dataset root (importers link the image folder
into the dataset as ``images``). Webdataset tars (``PATH.tar#KEY``) are read
by :class:`trigeo.data.images.ShardIndex` and :mod:`trigeo.data.loading`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["StoreReader", "msgpack_ref", "parse_msgpack_key", "record_image"]


def msgpack_ref(shard: str, offset: int, length: int) -> str:
    """The image reference of the record at ``offset`` (``length`` bytes) in ``shard``."""
    return f"{shard}#{offset}+{length}"


def parse_msgpack_key(key: str) -> tuple[int, int]:
    """``"OFFSET+LENGTH"`` -> ``(offset, length)``; raises ``KeyError`` if malformed."""
    offset, sep, length = key.partition("+")
    if not sep or not offset.isdigit() or not length.isdigit():
        raise KeyError(f"{key!r} is not a msgpack record position (OFFSET+LENGTH)")
    return int(offset), int(length)


def record_image(record: Any) -> bytes:
    """The encoded image of one unpacked record (keys as ``bytes`` or ``str``).

    Raises
    ------
    ValueError
        If the record is not a map with binary ``image`` data.
    """
    if not isinstance(record, dict):
        raise ValueError(f"record is a {type(record).__name__}, not a map")
    image = record.get(b"image", record.get("image"))
    if isinstance(image, str):  # written by msgpack < 1.0 without bin types
        image = image.encode("utf-8", "surrogateescape")
    if not isinstance(image, bytes | bytearray):
        raise ValueError("record has no binary 'image' value")
    return bytes(image)


class StoreReader:
    """Read image bytes from msgpack shards and zip archives under one root.

    File handles are opened lazily, per process (a reader copied into a
    forked DataLoader worker opens its own).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._files: dict[str, Any] = {}
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"], state["_zips"] = {}, {}
        return state

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            self._files, self._zips, self._pid = {}, {}, os.getpid()

    def read(self, path: str, key: str) -> bytes:
        """Bytes of the image at ``path#key``.

        Raises
        ------
        OSError
            If the store cannot be read.
        KeyError
            If ``key`` is not in the store or malformed.
        ValueError
            If a msgpack record at that position is not an image record.
        """
        self._check_pid()
        if path.endswith(".msg"):
            return self._read_msgpack(path, key)
        if path.endswith(".zip"):
            return self._read_zip(path, key)
        raise KeyError(f"{path}: not a msgpack shard or zip archive")

    def _read_msgpack(self, path: str, key: str) -> bytes:
        import msgpack

        offset, length = parse_msgpack_key(key)
        handle = self._files.get(path)
        if handle is None:
            handle = self._files[path] = open(self.root / path, "rb")
        handle.seek(offset)
        data = handle.read(length)
        if len(data) != length:
            raise OSError(f"{path}: record at byte {offset} is cut short (the shard shrank?)")
        try:
            record = msgpack.unpackb(data, raw=True)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ValueError(f"{path}: no msgpack record at byte {offset} ({exc})") from exc
        return record_image(record)

    def _read_zip(self, path: str, key: str) -> bytes:
        archive = self._zips.get(path)
        if archive is None:
            try:
                archive = self._zips[path] = zipfile.ZipFile(self.root / path)
            except zipfile.BadZipFile as exc:
                raise OSError(f"{path}: not a readable zip archive ({exc})") from exc
        try:
            return archive.read(key)
        except KeyError:
            raise KeyError(f"{path}: no member {key!r}") from None
        except (zipfile.BadZipFile, EOFError) as exc:
            raise OSError(f"{path}: member {key!r} is unreadable ({exc})") from exc
