"""Exceptions that carry enough context to fix the input they complain about."""

from __future__ import annotations

from pathlib import Path


class TrigeoError(Exception):
    """Base class for every error trigeo raises on purpose.

    The CLI prints the message of a ``TrigeoError`` without a traceback and
    exits with status 2, so messages must be complete sentences a user can act on.
    """


class InputError(TrigeoError, ValueError):
    """Bad user input: a file, a row or a field that cannot be used.

    Parameters
    ----------
    message
        What is wrong, in words.
    source
        The file (or other source) the bad value came from.
    row
        1-based data row (header excluded) of the bad value, when known.
    column
        The column or field name, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.source = None if source is None else str(source)
        self.row = row
        self.column = column
        where = []
        if self.source is not None:
            where.append(self.source)
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ArtifactError(TrigeoError):
    """An artifact on disk (mesh, model, predictions, dataset) is corrupt,
    incomplete, or was written by an incompatible version of trigeo."""


class UnreadableImagesError(TrigeoError):
    """Too many of a run's images could not be read or decoded.

    Raised instead of "succeeding" on a handful of photos (or none): a run
    skips and reports the odd corrupt image, but stops when more than the
    configured share of a stage's images fail.
    """


class TrigeoWarning(UserWarning):
    """A warning trigeo raises on purpose (it always reaches the console)."""
