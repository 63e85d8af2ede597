"""The accuracy table ``trigeo evaluate`` prints to the terminal."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from trigeo.evaluate.results import Evaluation

__all__ = ["accuracy_table"]


def accuracy_table(evaluation: Evaluation) -> Table:
    """Accuracy per threshold and median error of the oracle rows and every model."""
    table = Table(title=f"accuracy (%), {evaluation.n_truth:,} photos")
    table.add_column("model", overflow="fold")
    table.add_column("mesh")
    table.add_column("label")
    for t in evaluation.config.thresholds_km:
        table.add_column(f"{t:g} km", justify="right")
    table.add_column("median km", justify="right")
    for row in evaluation.oracle:
        table.add_row(
            "oracle",
            escape(row["mesh"]),
            row["label"],
            *(f"{v:.2f}" for v in row["accuracy_pct"].values()),
            f"{row['median_km']:.1f}",
        )
    for result in evaluation.models:
        table.add_row(
            escape(result.name),
            escape(result.mesh_name or "-"),
            result.label,
            *(f"{v:.2f}" for v in result.accuracy),
            f"{result.median_km:.1f}",
        )
    return table
