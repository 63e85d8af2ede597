"""The YFCC100M metadata layouts (25 or 23 columns) and their detection.

0-based columns of the two layouts:

* **25 columns**: line number, photo id, hash, user NSID, nickname, date taken,
  date uploaded (epoch s), device, title, description, user tags, machine tags,
  longitude, latitude, accuracy, page URL, download URL, license name, license
  URL, server id, farm id, secret, original secret, original extension, marker.
* **23 columns**: two of the first three are missing and every later column
  moves two places left. If the first field is numeric it is the photo id
  (the 2014 release: no line number, no hash); otherwise it is the hash and
  the photo id is taken from the page URL (``.../photos/USER/ID/``).

The layout, and with it the id/hash choice, is the majority of the first 100
non-empty lines (:func:`detect_layout`), so a corrupt first line is one
reported line, not a refused file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigeo.data.streams import BROKEN_VERB, open_bytes
from trigeo.errors import InputError

__all__ = ["LAYOUT_SAMPLE_LINES", "YfccLayout", "detect_layout"]


@dataclass(frozen=True)
class YfccLayout:
    """Where each field sits in one layout (``None``: absent)."""

    columns: int
    photo_id: int | None
    hash: int | None
    user: int
    taken: int
    uploaded: int
    lon: int
    lat: int
    accuracy: int
    page_url: int
    download_url: int
    extension: int
    marker: int

    @classmethod
    def of(cls, columns: int, first_field_numeric: bool = True) -> YfccLayout:
        if columns == 25:
            return cls(25, 1, 2, 3, 5, 6, 12, 13, 14, 15, 16, 23, 24)
        if columns == 23:
            photo_id, hash_ = (0, None) if first_field_numeric else (None, 0)
            return cls(23, photo_id, hash_, 1, 3, 4, 10, 11, 12, 13, 14, 21, 22)
        raise ValueError(f"no YFCC layout has {columns} columns")

    def used(self, with_root: bool = False, image_layout: str = "id") -> list[int]:
        """Columns an import reads (others are tokenized but never converted)."""
        fields = [
            self.photo_id if self.photo_id is not None else self.page_url,
            self.user,
            self.taken,
            self.uploaded,
            self.lon,
            self.lat,
            self.accuracy,
            self.marker,
        ]
        if not with_root:
            fields.append(self.download_url)
        elif image_layout == "hash":
            fields.append(self.hash)
        else:
            fields.append(self.extension)
        return sorted({f for f in fields if f is not None})


#: Non-empty lines read to choose the layout: enough that a few corrupt lines
#: (a damaged first line included) cannot outvote the rest.
LAYOUT_SAMPLE_LINES = 100

#: Lines (empty ones included) read at most while looking for that sample.
_LAYOUT_SCAN_LINES = 10_000


def detect_layout(path: str | Path) -> YfccLayout:
    """Detect the 25- or 23-column layout from the first 100 non-empty lines.

    Each sampled line is split on tabs; the layout is the width, 25 or 23,
    that more sampled lines have (25 on a tie: the original release), and for
    23 columns the id/hash choice is the majority of those lines' first
    fields (numeric: the photo id; otherwise the hash). A corrupt line, the
    first one included, therefore cannot decide the layout: the import reads
    every line with the chosen width and reports only the lines of another
    width (``wrong column count``).

    Raises
    ------
    InputError
        If no line can be read (empty file, or compressed data that breaks
        off before its first line is complete), or if no sampled line has 25
        or 23 fields (not YFCC100M metadata). Any sampled line of either
        width makes the file importable, so a file whose lines are mostly
        well formed is never refused whole; damaged lines are reported.
    """
    path = Path(path)
    raw, compression, _, decompressed = open_bytes(path)
    sample: list[tuple[int, bytes]] = []
    number = 0
    with raw:
        for number, candidate in enumerate(raw, start=1):
            if candidate.strip():
                sample.append((number, candidate))
                if len(sample) >= LAYOUT_SAMPLE_LINES:
                    break
            if number >= _LAYOUT_SCAN_LINES:
                break
    if decompressed is not None and decompressed.broken:
        # A line cut short by a broken stream is not a line: the import drops it too.
        if sample and not sample[-1][1].endswith(b"\n"):
            number = sample.pop()[0]
        if not sample:
            reason, detail = decompressed.broken
            raise InputError(
                f"the {compression} data {BROKEN_VERB[reason]} before line {max(number, 1)} "
                f"is complete ({detail}), so nothing can be read from it",
                source=path,
            )
    if not sample:
        raise InputError("no data lines; is this a YFCC100M metadata file?", source=path)
    fields = [
        line.rstrip(b"\r\n").decode("utf-8", errors="replace").split("\t") for _, line in sample
    ]
    widths = np.array([len(f) for f in fields])
    n25, n23 = int((widths == 25).sum()), int((widths == 23).sum())
    if n25 + n23 == 0:
        values, counts = np.unique(widths, return_counts=True)
        seen = ", ".join(f"{c} with {v}" for v, c in zip(values, counts, strict=True))
        raise InputError(
            f"none of the first {len(sample)} non-empty lines (from line {sample[0][0]}) has "
            "the 25 tab-separated columns of the YFCC100M metadata (or 23 in copies without "
            f"the line number and hash); lines seen: {seen} columns",
            source=path,
        )
    if n25 >= n23:
        return YfccLayout.of(25)
    numeric = sum(f[0].strip().isdigit() for f in fields if len(f) == 23)
    # The id/hash choice by majority too: a corrupt first field cannot flip it.
    return YfccLayout.of(23, first_field_numeric=2 * numeric >= n23)
