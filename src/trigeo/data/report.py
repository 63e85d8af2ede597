"""Import reports: what was read, written and skipped, and why.

Every importer (YFCC, EXIF folders, shards, downloads) counts skipped rows
by reason and keeps a few examples of each, writes the report as JSON
(atomically) next to its output, and prints a short summary. An input that
could not be read to its end (a truncated download) is recorded under
``incomplete``: the rows before the break are kept, and the report says where
it broke. The key is absent when the whole input was read.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from trigeo.provenance import write_json_atomic

__all__ = ["REPORT_FILE", "ImportReport"]

#: The report's file name in an imported dataset (``data yfcc``, ``data csv``,
#: ``data photos``); ``data shard`` and ``data download`` write their own.
REPORT_FILE = "import-report.json"
_EXAMPLES = 5


class ImportReport:
    """Counts of rows read/written and of skipped rows by reason.

    Parameters
    ----------
    stage
        Which importer wrote the report (``data.yfcc``, ``data.photos`` ...).
    source
        The input (file or directory) the rows came from.
    """

    def __init__(self, stage: str, source: str | Path) -> None:
        self.stage = stage
        self.source = str(source)
        self.read = 0
        self.written = 0
        self.skipped: Counter[str] = Counter()
        self.examples: dict[str, list[dict[str, Any]]] = {}
        self.notes: dict[str, Any] = {}
        self.incomplete: dict[str, Any] | None = None
        self._start = time.perf_counter()

    def skip(self, reason: str, where: str | int | None = None, detail: str = "") -> None:
        """Record one skipped row (or image) under ``reason``."""
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES:
            item: dict[str, Any] = {"where": where}
            if detail:
                item["detail"] = detail[:300]
            examples.append(item)

    def mark_incomplete(self, message: str, **details: Any) -> None:
        """Record that the input broke off before its end (what came before was kept).

        Parameters
        ----------
        message
            What happened and where, in words (shown by :meth:`print_summary`).
        **details
            JSON-serializable facts, such as ``last_complete_line``.
        """
        self.incomplete = {"message": message, **details}

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "source": self.source,
            "read": self.read,
            "written": self.written,
            "skipped": self.n_skipped,
            "skipped_by_reason": dict(self.skipped.most_common()),
            "examples": self.examples,
            "seconds": round(time.perf_counter() - self._start, 3),
            **({"incomplete": self.incomplete} if self.incomplete is not None else {}),
            **self.notes,
        }

    def write(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically; returns the path."""
        path = Path(path)
        write_json_atomic(path, self.to_dict())
        return path

    def print_summary(self, console: Any, path: str | Path | None = None) -> None:
        """A short rich summary: counts, then one line per skip reason."""
        from rich.markup import escape
        from rich.table import Table

        # File names and examples come from the input: escape them, or a "[" in
        # a path would be read as rich markup.
        console.print(
            f"[bold]{self.stage}[/bold] {escape(self.source)}: read {self.read}, "
            f"wrote [green]{self.written}[/green], skipped [yellow]{self.n_skipped}[/yellow]"
        )
        if self.incomplete is not None:
            message = escape(self.incomplete["message"])
            console.print(f"[bold yellow]incomplete input:[/bold yellow] {message}")
        if self.skipped:
            table = Table("reason", "rows", "first example", box=None, pad_edge=False)
            for reason, count in self.skipped.most_common():
                first = self.examples.get(reason, [{}])[0]
                example = f"{first.get('where', '')} {first.get('detail', '')}".strip()
                table.add_row(escape(reason), str(count), escape(example[:80]))
            console.print(table)
        if path is not None:
            console.print(f"report: {escape(str(path))}")
