"""Reading ``data csv``'s input table: CSV (plain, gzip, bz2) or Parquet, in batches.

A CSV is read with pyarrow's streaming reader, every column as text (the
importer parses numbers and times itself, so that a bad value costs its row,
not the column); rows with the wrong number of fields are reported and
skipped. A Parquet file is read by row groups, with its own column types.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trigeo.data.report import ImportReport
from trigeo.errors import InputError

__all__ = ["input_types", "iterate_batches", "open_table"]


def open_table(path: Path, batch_rows: int, report: ImportReport) -> tuple[list[str], Any]:
    """Column names and a batch iterator of the CSV or Parquet input."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"PAR1":
        parquet = pq.ParquetFile(path)
        report.notes["input_kind"] = "parquet"
        return parquet.schema_arrow.names, parquet.iter_batches(batch_size=batch_rows)
    import pyarrow.csv as pacsv

    report.notes["input_kind"] = "csv"
    try:
        probe = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
        names = probe.schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read as CSV ({exc})", source=path) from exc
    names = [name.lstrip("\ufeff") for name in names]

    def on_invalid(row: Any) -> str:
        where = f"line {row.number}" if row.number is not None else None
        detail = f"{row.actual_columns} fields, expected {row.expected_columns}"
        report.skip("wrong column count", where=where, detail=detail)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=1, block_size=min(max(1 << 16, batch_rows * 128), 1 << 26)
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
        ),
    )
    return names, reader


def input_types(table: Path, names: list[str]) -> list[pa.DataType]:
    """Types of the input columns as they will be kept (CSV: strings)."""
    with open(table, "rb") as handle:
        if handle.read(4) == b"PAR1":
            schema = pq.read_schema(table)
            return [schema.field(name).type for name in names]
    return [pa.string()] * len(names)


def iterate_batches(batches: Any, size: int) -> Iterator[pa.RecordBatch]:
    """The input's batches, cut to at most ``size`` rows (CSV blocks vary in rows)."""

    def raw() -> Iterator[pa.RecordBatch]:
        if hasattr(batches, "read_next_batch"):
            while True:
                try:
                    yield batches.read_next_batch()
                except StopIteration:
                    return
        else:
            yield from batches

    for batch in raw():
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)
