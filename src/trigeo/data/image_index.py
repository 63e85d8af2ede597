"""Finding each photo's image: in a folder by path, or in a scanned index by id.

Importers ask a locator for the image of a batch of rows and get back, per
row, an image reference (:mod:`trigeo.data.stores` explains the syntax) or
the reason there is none. Three kinds:

* :class:`FolderLocator`: ``ROOT/<value>`` with or without an extension (the
  value is an image column entry or the photo id), checked with one ``stat``
  and a header read per row.
* :class:`KeyedImages`: images found by id in a scan done before the rows are
  read: msgpack shard records (:mod:`trigeo.data.msgpack_shards`) or image
  files and zip members named ``<id>.<ext>`` anywhere under a folder
  (:func:`scan_stems`, OpenStreetView-5M's layout). Lookups are vectorized:
  ids are kept as sorted 64-bit keys (:func:`trigeo.data.yfcc.id_keys`) plus
  the id strings to rule out hash collisions, so memory is some 60-100 bytes
  per image whatever the table's size.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trigeo.data.ids import id_keys
from trigeo.data.images import IMAGE_EXTENSIONS, BadImageError, sniff_image
from trigeo.data.report import ImportReport

__all__ = ["LINK", "FolderLocator", "KeyedImages", "scan_stems"]

LINK = "images"
"""Name of the link, inside the dataset directory, to the image root."""

_EXTENSIONS = tuple(f".{e}" for e in IMAGE_EXTENSIONS) + tuple(
    f".{e.upper()}" for e in IMAGE_EXTENSIONS
)

Found = tuple[str | None, str | None, str]
"""(image reference, failure reason, detail): a reference when found."""


class FolderLocator:
    """Images as files under ``root``, by relative path with or without extension.

    Parameters
    ----------
    root
        The image folder (linked into the dataset as :data:`LINK`).
    basename_fallback
        Also try the value's last path component directly under ``root``.
    check
        Read each found file's header (:func:`trigeo.data.images.sniff_image`).
    """

    def __init__(self, root: Path, basename_fallback: bool = False, check: bool = True) -> None:
        self.root = root
        self.basename_fallback = basename_fallback
        self.check = check

    def _candidates(self, value: str) -> list[str]:
        value = value.strip().lstrip("/")
        names = [value]
        if not value.endswith(_EXTENSIONS):
            names += [value + ext for ext in _EXTENSIONS]
        if self.basename_fallback and "/" in value:
            base = value.rsplit("/", 1)[1]
            names += [base] + ([] if base.endswith(_EXTENSIONS) else [base + ".jpg"])
        return names

    def find(self, value: str) -> Found:
        """Look up one image by its column value (or photo id)."""
        if not value.strip() or ".." in Path(value).parts:
            return None, "missing image", f"{value!r} is not a relative path"
        for name in self._candidates(value):
            path = self.root / name
            if path.is_file():
                ref = f"{LINK}/{name}"
                if self.check:
                    try:
                        with open(path, "rb") as handle:
                            sniff_image(handle.read())
                    except BadImageError as exc:
                        return None, exc.reason, f"{path}: {exc.detail}"
                    except OSError as exc:
                        return None, "unreadable image", f"{path}: {exc}"
                return ref, None, ""
        return None, "missing image", f"no file {self.root / value.strip()}[.jpg|...]"


class KeyedImages:
    """Images found by id: sorted id keys, ids, references and per-image problems.

    Parameters
    ----------
    ids
        Image ids (file stems, msgpack record ids), in scan order.
    refs
        The image reference of each.
    problems
        A reason (``"not an image"`` ...) per image that cannot be used, else null.
    details
        Text naming where each image is (for reports).
    report
        Receives ``duplicate image id`` for ids seen before (the first is kept).
    """

    def __init__(
        self,
        ids: pa.Array,
        refs: pa.Array,
        problems: pa.Array,
        details: pa.Array,
        report: ImportReport,
    ) -> None:
        keys = id_keys(ids) if len(ids) else np.empty(0, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")  # first in scan order wins a tie
        keys = keys[order]
        dup = np.zeros(keys.size, dtype=bool)
        if keys.size > 1:
            same = keys[1:] == keys[:-1]
            take = pa.array(order, type=pa.int64())
            sorted_ids = ids.take(take)
            same &= pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
            dup[1:] = same
        for i in np.flatnonzero(dup)[:5].tolist():
            report.skip(
                "duplicate image id", where=details[order[i]].as_py(), detail=str(ids[order[i]])
            )
        if dup.sum() > 5:  # beyond the examples, counted only
            report.skipped["duplicate image id"] += int(dup.sum()) - 5
        keep = order[~dup]
        take = pa.array(keep, type=pa.int64())
        self.keys = keys[~dup]
        self.ids = ids.take(take)
        self.refs = refs.take(take)
        self.problems = problems.take(take)
        self.details = details.take(take)
        self.matched = np.zeros(self.keys.size, dtype=bool)

    def __len__(self) -> int:
        return int(self.keys.size)

    def lookup(self, ids: pa.Array) -> np.ndarray:
        """Position of each id in the index, or -1 (marks the found ones as matched)."""
        if not len(self):
            return np.full(len(ids), -1, dtype=np.int64)
        keys = id_keys(ids)
        pos = np.searchsorted(self.keys, keys).clip(0, self.keys.size - 1)
        found = self.keys[pos] == keys
        where = np.flatnonzero(found)
        if where.size:
            same = pc.equal(
                self.ids.take(pa.array(pos[where])), ids.take(pa.array(where))
            ).to_numpy(zero_copy_only=False)
            found[where[~same]] = False
        pos = np.where(found, pos, -1)
        self.matched[pos[found]] = True
        return pos

    def report_unmatched(self, report: ImportReport, reason: str) -> int:
        """Count images no row asked for under ``reason``; returns how many."""
        unmatched = np.flatnonzero(~self.matched)
        for i in unmatched[:5].tolist():
            report.skip(reason, where=self.details[i].as_py(), detail=f"id {self.ids[i].as_py()!r}")
        if unmatched.size > 5:
            report.skipped[reason] += unmatched.size - 5
        return int(unmatched.size)


def scan_stems(
    root: Path,
    report: ImportReport,
    progress: Callable[[int], None] | None = None,
) -> KeyedImages:
    """Index image files and zip members under ``root`` by file stem.

    ``root/NN/<id>.jpg`` and ``root/NN.zip`` (members ``NN/<id>.jpg`` or
    ``<id>.jpg``) are both found, so OpenStreetView-5M's image folders work
    extracted or not. Zip archives are read through their central directory
    only (no member is decompressed here).
    """
    ids: list[str] = []
    refs: list[str] = []
    details: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        rel = Path(folder).relative_to(root)
        for name in sorted(files):
            rel_name = (rel / name).as_posix()
            if name.endswith(_EXTENSIONS):
                ids.append(name.rsplit(".", 1)[0])
                refs.append(f"{LINK}/{rel_name}")
                details.append(rel_name)
            elif name.endswith(".zip"):
                try:
                    with zipfile.ZipFile(Path(folder) / name) as archive:
                        members = archive.namelist()
                except (OSError, zipfile.BadZipFile) as exc:
                    report.skip("unreadable zip archive", where=rel_name, detail=str(exc))
                    continue
                for member in members:
                    if member.endswith(_EXTENSIONS):
                        stem = member.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                        ids.append(stem)
                        refs.append(f"{LINK}/{rel_name}#{member}")
                        details.append(f"{rel_name}#{member}")
                if progress:
                    progress(1)
    n = len(ids)
    return KeyedImages(
        pa.array(ids, type=pa.string()),
        pa.array(refs, type=pa.string()),
        pa.nulls(n, type=pa.string()),
        pa.array(details, type=pa.string()),
        report,
    )
