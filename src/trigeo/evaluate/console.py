"""The accuracy table ``trigeo evaluate`` prints to the terminal.

It has to stay readable in an 80-column terminal: models appear under their
short display names, units sit in the title and a second header line instead
of every column's width, accuracies have one decimal (report.md has two), and
the location label (file / cell / imagery) is left to the report except on the
oracle rows, where it is the only difference between them. Only the model
column may wrap, so numbers are never cut.
"""

from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from trigeo.evaluate.results import Evaluation

__all__ = ["accuracy_table"]


def _km(value: float) -> str:
    """Median error: one decimal under 100 km, whole km (with separators) above."""
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def accuracy_table(evaluation: Evaluation) -> Table:
    """Accuracy (%) per threshold and median error of the oracle rows and every model."""
    table = Table(
        title=f"accuracy (%), {evaluation.n_truth:,} photos",
        box=box.SIMPLE_HEAD,
        # Two spaces between columns and none at the edges: rules would cost 3 per column.
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("model", overflow="fold")
    table.add_column("mesh", no_wrap=True, overflow="ellipsis", max_width=14)
    for t in evaluation.config.thresholds_km:
        table.add_column(f"{t:g}\nkm", justify="right", no_wrap=True)
    table.add_column("median\nkm", justify="right", no_wrap=True)
    for row in evaluation.oracle:
        table.add_row(
            f"oracle ({row['label']})",
            escape(row["mesh"]),
            *(f"{v:.1f}" for v in row["accuracy_pct"].values()),
            _km(row["median_km"]),
        )
    for result in evaluation.models:
        table.add_row(
            escape(result.name),
            escape(result.mesh_name or "-"),
            *(f"{v:.1f}" for v in result.accuracy),
            _km(result.median_km),
        )
    return table
