"""Posting times of image files outside a dataset: ``--posted-at`` or EXIF.

M2 and M3 need each photo's posting time in UTC. For loose image files it
comes from ``--posted-at`` (ISO 8601 with an offset, for every image given),
else from the file's EXIF ``DateTimeOriginal`` with its ``OffsetTimeOriginal``
(or ``OffsetTime``). A local time without an offset cannot be placed in UTC
without knowing where the photo was taken (which is what is being
predicted), so such a photo has no time.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from trigeo.errors import InputError

__all__ = ["SOURCES", "exif_posting_time", "parse_posted_at"]

#: Values of the ``time source`` a prediction reports.
SOURCES = ("dataset", "--posted-at", "exif-offset")
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME = 0x9010
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


def parse_posted_at(text: str) -> pd.Timestamp:
    """An ISO 8601 time with an offset (``2014-07-01T21:30:00+02:00``, or ``...Z``) in UTC.

    Raises
    ------
    InputError
        Not ISO 8601, or no offset (naming ``--posted-at``).
    """
    value = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InputError(
            f"not an ISO 8601 time: {text!r} (e.g. 2014-07-01T21:30:00+02:00)",
            column="--posted-at",
        ) from exc
    if parsed.tzinfo is None:
        raise InputError(
            f"{text!r} has no UTC offset; M2 needs the UTC time: add one, e.g. {value}+02:00 "
            "or Z for UTC",
            column="--posted-at",
        )
    return pd.Timestamp(parsed).tz_convert("UTC")


def _offset(value: object) -> dt.timedelta | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _OFFSET.match(str(value or "").strip("\x00"))
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * dt.timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def exif_posting_time(path: str | Path) -> tuple[pd.Timestamp | None, str]:
    """UTC time from EXIF ``DateTimeOriginal`` + ``OffsetTimeOriginal`` (or ``OffsetTime``).

    Returns
    -------
    time, note
        ``(timestamp, "exif-offset")``, or ``(None, reason)`` when the file
        has no readable EXIF, no ``DateTimeOriginal``, or no offset.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            tags = dict(exif.get_ifd(_EXIF_IFD))
    except Exception as exc:  # unreadable file or EXIF block: no time, with the reason
        return None, f"unreadable EXIF ({type(exc).__name__})"
    raw = tags.get(_DATETIME_ORIGINAL)
    if raw is None:
        return None, "no EXIF DateTimeOriginal"
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    try:
        local = dt.datetime.strptime(str(raw).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, f"malformed EXIF DateTimeOriginal {raw!r}"
    offset = _offset(tags.get(_OFFSET_TIME_ORIGINAL)) or _offset(tags.get(_OFFSET_TIME))
    if offset is None:
        return None, "EXIF DateTimeOriginal without OffsetTimeOriginal/OffsetTime"
    return pd.Timestamp(local - offset, tz="UTC"), "exif-offset"
