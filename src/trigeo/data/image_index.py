"""Finding each photo's image: the image root is listed once, then joined to the rows as arrays.

Importers ask a locator for the images of a batch of values (an image column
entry, or the photo id) and get back :class:`Matches`: per value, an image
reference (:mod:`trigeo.data.stores` explains the syntax) or nothing, and a
text naming where the image is. No image file is opened here: reading the
headers is the importer's optional check pass (:mod:`trigeo.data.imagecheck`).
Two kinds:

* :class:`FolderIndex`: ``ROOT/<value>`` with or without an extension. The
  folder is listed once (:func:`list_files`, ``os.scandir``); each batch is
  then three or four array lookups, not some nine ``stat`` calls per row.
* :class:`KeyedImages`: images found by id in a scan done before the rows are
  read: msgpack shard records (:mod:`trigeo.data.msgpack_shards`) or image
  files and zip members named ``<id>.<ext>`` anywhere under a folder
  (:func:`scan_stems`, OpenStreetView-5M's layout).

Both keep their names as sorted 64-bit keys plus the strings
(:class:`trigeo.data.ids.KeyIndex`), so memory is some 60-100 bytes per image
whatever the table's size.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trigeo.data.ids import KeyIndex
from trigeo.data.images import IMAGE_EXTENSIONS
from trigeo.data.listing import list_files, normal_path
from trigeo.data.report import ImportReport

__all__ = [
    "LINK",
    "FolderIndex",
    "KeyedImages",
    "Matches",
    "image_candidates",
    "list_files",
    "scan_stems",
]

LINK = "images"
"""Name of the link, inside the dataset directory, to the image root."""

# Tried in this order after the bare name: lower case first, then upper case.
_EXTENSIONS = tuple(f".{e}" for e in IMAGE_EXTENSIONS) + tuple(
    f".{e.upper()}" for e in IMAGE_EXTENSIONS
)


def _mask(values: pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _has_image_ext(names: pa.Array) -> np.ndarray:
    """Whether each name ends with one of the rule's extensions (case as listed)."""
    out = np.zeros(len(names), dtype=bool)
    dotted = np.flatnonzero(_mask(pc.match_substring(names, ".")))
    if dotted.size:  # most ids have no dot: only dotted names are tested further
        sub = names.take(pa.array(dotted))
        hit = np.zeros(dotted.size, dtype=bool)
        for ext in _EXTENSIONS:
            hit |= _mask(pc.ends_with(sub, ext))
        out[dotted] = hit
    return out


def _unusual(names: pa.Array) -> np.ndarray:
    """Names that a path join would change ("a//b", "./a", "a/", "a/.") or that leave the root.

    A cheap superset (also ".hidden" and "a/.b"): those names are resolved one
    by one, by the rule's own words, which is exact for any name.
    """
    out = _mask(pc.equal(pc.utf8_length(names), 0)) | _mask(pc.starts_with(names, "."))
    slashed = np.flatnonzero(_mask(pc.match_substring(names, "/")))
    if slashed.size:
        sub = names.take(pa.array(slashed))
        odd = _mask(pc.match_substring(sub, "/.")) | _mask(pc.match_substring(sub, "//"))
        out[slashed] |= odd | _mask(pc.ends_with(sub, "/"))
    return out


@dataclass
class Matches:
    """The images found for a batch of values.

    Attributes
    ----------
    refs
        The image reference per value; null where none was found.
    problems
        A reason (``"not an image"`` ...) per value whose image is known to be
        unusable from the scan (msgpack records checked there), else null.
    where
        Text naming the found image of value ``i`` (for reports).
    missing
        The report detail of value ``i`` that has no image.
    """

    refs: pa.Array
    problems: pa.Array
    where: Callable[[int], str]
    missing: Callable[[int], str]


def image_candidates(value: str, basename_fallback: bool = False) -> list[str]:
    """The names tried, in order, for one value: the name rule of :class:`FolderIndex`.

    The value itself; then, unless it ends with an image extension, the value
    plus each extension (``.jpg``, ``.jpeg``, ... lower case, then upper
    case); then, with ``basename_fallback`` and a ``/`` in the value, its last
    component, and that plus ``.jpg`` unless it has an extension.
    """
    value = value.strip().lstrip("/")
    names = [value]
    if not value.endswith(_EXTENSIONS):
        names += [value + ext for ext in _EXTENSIONS]
    if basename_fallback and "/" in value:
        base = value.rsplit("/", 1)[1]
        names += [base] + ([] if base.endswith(_EXTENSIONS) else [base + ".jpg"])
    return names


class FolderIndex:
    """Images as files under ``root``, by relative path with or without extension.

    Finds, for each value, the same file as trying :func:`image_candidates`
    in order against the file system would, from one listing of ``root``.

    Parameters
    ----------
    root
        The image folder (linked into the dataset as :data:`LINK`).
    basename_fallback
        Also try the value's last path component directly under ``root``.
    report
        Receives folders that cannot be listed.
    """

    def __init__(
        self, root: Path, basename_fallback: bool = False, report: ImportReport | None = None
    ) -> None:
        self.root = root
        self.basename_fallback = basename_fallback
        self._report = report
        self.seconds: float | None = None
        """Seconds the listing and indexing took (``None`` until needed)."""
        self.not_utf8 = 0
        self.files = pa.array([], type=pa.string())
        self._index = KeyIndex(self.files)
        self._entry_file = np.empty(0, np.int64)
        self._is_stem = np.empty(0, bool)

    def _list(self) -> None:
        """List and index the root, once, when a value first needs a file.

        Tables whose images are all URLs never list it (the root defaults to
        the table's folder, which may hold anything).
        """
        if self.seconds is not None:
            return
        start = time.perf_counter()
        names, self.not_utf8 = list_files(self.root, self._report)
        self.files = pa.array(names, type=pa.string())
        # One index of every file name, then every stem (the name less an image
        # extension) in _EXTENSIONS order: KeyIndex keeps the first of equal
        # strings, so a file beats a stem, and a stem's first extension wins.
        entries: list[pa.Array] = [self.files]
        entry_file: list[np.ndarray] = [np.arange(len(self.files), dtype=np.int64)]
        for ext in _EXTENSIONS:
            where = np.flatnonzero(_mask(pc.ends_with(self.files, ext)))
            if where.size:
                named = self.files.take(pa.array(where))
                entries.append(pc.utf8_slice_codeunits(named, 0, -len(ext)))
                entry_file.append(where)
        self._index = KeyIndex(pa.concat_arrays(entries))
        self._entry_file = np.concatenate(entry_file)[self._index.order]
        self._is_stem = self._index.order >= len(self.files)
        self.seconds = time.perf_counter() - start

    def __len__(self) -> int:
        self._list()
        return len(self.files)

    def _lookup(self, names: pa.Array, keys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """File position of each name by file name or stem, or -1; and whether by stem."""
        pos = self._index.lookup(names, keys)
        hit = pos >= 0
        at = np.maximum(pos, 0)
        return np.where(hit, self._entry_file[at], -1), hit & self._is_stem[at]

    def _file(self, names: pa.Array, keys: np.ndarray | None = None) -> np.ndarray:
        """Position in :attr:`files` of each name (as a file name only), or -1."""
        pos, by_stem = self._lookup(names, keys)
        pos[by_stem] = -1
        return pos

    def match(self, values: pa.Array, keys: np.ndarray | None = None) -> Matches:
        """The image of each value (trimmed strings; URLs are their own reference).

        ``keys`` are the values' :func:`~trigeo.data.ids.id_keys` when the
        caller has them (photo ids it hashed already).
        """
        n = len(values)
        url = pc.match_substring(values, "://").to_numpy(zero_copy_only=False)
        names = pc.utf8_ltrim(values, "/")
        unusual = _unusual(names) & ~url
        if not url.all():
            self._list()
        pos = np.full(n, -1, dtype=np.int64)
        plain = np.flatnonzero(~url & ~unusual)
        if plain.size and len(self.files):
            if keys is not None and pc.any(pc.starts_with(values, "/")).as_py():
                keys = None  # "/a" is looked up as "a": the caller's keys do not apply
            take = pa.array(plain)
            pos[plain] = self._resolve(names.take(take), None if keys is None else keys[plain])
        if len(self.files):
            refs = pc.binary_join_element_wise(
                LINK, self.files.take(pa.array(np.maximum(pos, 0))), "/"
            )
            refs = pc.if_else(pa.array(pos >= 0), refs, pa.scalar(None, type=pa.string()))
        else:
            refs = pa.nulls(n, type=pa.string())
        refs = pc.if_else(pa.array(url), values, refs)
        notes: dict[int, str] = {}
        if unusual.any():
            fixed = refs.to_pylist()
            for i in np.flatnonzero(unusual).tolist():
                fixed[i], note = self._one(values[i].as_py())
                if note:
                    notes[i] = note
            refs = pa.array(fixed, type=pa.string())

        def where(i: int) -> str:
            return str(self.root / refs[i].as_py()[len(LINK) + 1 :])

        def missing(i: int) -> str:
            if i in notes:
                return notes[i]
            return f"no file {self.root / values[i].as_py().strip()}[.jpg|...]"

        return Matches(refs, pa.nulls(n, type=pa.string()), where, missing)

    def _resolve(self, names: pa.Array, keys: np.ndarray | None = None) -> np.ndarray:
        """File position of each plain name (no "//", ".", ".." parts), or -1.

        The name rule as array lookups: the name itself, else (for names
        without an image extension) the name as a stem, in one lookup; then
        the basename fallback.
        """
        pos, by_stem = self._lookup(names, keys)
        stem_rows = np.flatnonzero(by_stem)
        if stem_rows.size:
            # A stem stands for name + extension: only names without one try it.
            has_ext = _has_image_ext(names.take(pa.array(stem_rows)))
            pos[stem_rows[has_ext]] = -1
        if self.basename_fallback:
            self._basenames(names, pos)
        return pos

    def _basenames(self, names: pa.Array, pos: np.ndarray) -> None:
        """Try the last path component of the names still without a file (in place)."""
        todo = np.flatnonzero(pos < 0)
        if not todo.size:
            return
        sub = names.take(pa.array(todo))
        nested = pc.match_substring(sub, "/").to_numpy(zero_copy_only=False)
        todo, sub = todo[nested], sub.filter(pa.array(nested))
        if not todo.size:
            return
        base = pc.replace_substring_regex(sub, "^.*/", "")
        found = self._file(base)
        pos[todo[found >= 0]] = found[found >= 0]
        left = found < 0
        no_ext = ~_has_image_ext(base)
        again = left & no_ext
        if again.any():
            jpg = pc.binary_join_element_wise(base.filter(pa.array(again)), ".jpg", "")
            found = self._file(jpg)
            rows = todo[again]
            pos[rows[found >= 0]] = found[found >= 0]

    def _one(self, value: str) -> tuple[str | None, str]:
        """One unusual value by the rule's own words: its reference, or why there is none."""
        if not value.strip() or ".." in Path(value).parts:
            return None, f"{value!r} is not a relative path"
        names = image_candidates(value, self.basename_fallback)
        normal = [normal_path(name) for name in names]
        found = self._file(pa.array(normal, type=pa.string()))
        for name, norm, p in zip(names, normal, found.tolist(), strict=True):
            if p >= 0 and norm != ".":  # "." is the root itself, never a file
                return f"{LINK}/{name}", ""
        return None, ""

    def find(self, value: str) -> tuple[str | None, str]:
        """The reference of one value's image, or ``None`` and the reason in words."""
        matches = self.match(pa.array([value.strip()], type=pa.string()))
        ref = matches.refs[0].as_py()
        return ref, "" if ref is not None else matches.missing(0)


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
        self._index = KeyIndex(ids)
        dup = self._index.duplicates
        for i in dup[:5].tolist():
            report.skip("duplicate image id", where=details[i].as_py(), detail=str(ids[i]))
        if dup.size > 5:  # beyond the examples, counted only
            report.skipped["duplicate image id"] += int(dup.size) - 5
        take = pa.array(self._index.order, type=pa.int64())
        self.keys = self._index.keys
        self.ids = self._index.strings
        self.refs = refs.take(take)
        self.problems = problems.take(take)
        self.details = details.take(take)
        self.matched = np.zeros(self.keys.size, dtype=bool)

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, ids: pa.Array) -> np.ndarray:
        """Position of each id in the index, or -1 (marks the found ones as matched)."""
        pos = self._index.lookup(ids)
        self.matched[pos[pos >= 0]] = True
        return pos

    def match(self, values: pa.Array, keys: np.ndarray | None = None) -> Matches:
        """The image of each id (marks the found ones as matched); ``keys`` as in lookups."""
        pos = self._index.lookup(values, keys)
        self.matched[pos[pos >= 0]] = True
        found = pa.array(pos >= 0)
        none = pa.scalar(None, type=pa.string())
        if len(self):
            where = pa.array(np.maximum(pos, 0))
            refs = pc.if_else(found, self.refs.take(where), none)
            problems = pc.if_else(found, self.problems.take(where), none)
        else:
            refs = problems = pa.nulls(len(values), type=pa.string())
        return Matches(
            refs,
            problems,
            lambda i: str(self.details[int(pos[i])].as_py()),
            lambda i: f"no image with id {values[i].as_py()!r}",
        )

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
