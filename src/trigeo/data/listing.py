"""Listing an image root once: every file below a folder, as relative paths.

:class:`trigeo.data.image_index.FolderIndex` joins table rows to this
listing instead of asking the file system about each row. A file here is
what ``Path.is_file`` calls one, so the join finds what per-row ``stat``
calls would have found.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

import pyarrow as pa

from trigeo.data.report import ImportReport

__all__ = ["list_files", "normal_path"]


def list_files(root: Path, report: ImportReport | None = None) -> tuple[list[str], int]:
    """Every file under ``root``, as paths relative to it, in one recursive walk.

    A file is what ``Path.is_file`` calls one: symbolic links to files count,
    broken links do not, and linked folders are walked too (a link back to a
    folder being walked is not followed again). Folders that cannot be read
    are reported as ``unreadable image folder`` when ``report`` is given.

    Returns
    -------
    (names, not_utf8)
        The relative POSIX paths, and how many names were left out because
        they are not valid UTF-8 (no table value can name them).
    """
    names: list[str] = []
    not_utf8 = 0
    # (folder, its path relative to root, (st_dev, st_ino) of it and its parents)
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = []
    try:
        info = os.stat(root)
    except OSError:
        return names, not_utf8
    stack.append((str(root), "", frozenset({(info.st_dev, info.st_ino)})))
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if report is not None:
                report.skip("unreadable image folder", where=rel or ".", detail=str(exc))
            continue
        for entry in entries:
            name = rel + entry.name
            try:
                if entry.is_file():
                    names.append(name)
                elif entry.is_dir():
                    if entry.is_symlink():
                        info = entry.stat()
                        key = (info.st_dev, info.st_ino)
                        if key in ancestors:
                            continue  # a link to a folder being walked: a cycle
                    else:
                        info = entry.stat(follow_symlinks=False)
                        key = (info.st_dev, info.st_ino)
                    if stat.S_ISDIR(info.st_mode):
                        stack.append((entry.path, name + "/", ancestors | {key}))
            except OSError:
                continue  # vanished or unreadable entry: not a usable file
    try:
        pa.array(names, type=pa.string())
    except (UnicodeEncodeError, pa.ArrowException):
        kept = [n for n in names if _is_utf8(n)]
        not_utf8 = len(names) - len(kept)
        names = kept
    return names, not_utf8


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a non-UTF-8 name
        return False
    return True


def normal_path(name: str) -> str:
    """``name`` as the path it names below the root ("a//./b/" -> "a/b")."""
    return str(PurePosixPath(*[p for p in name.split("/") if p not in ("", ".")]))
