"""Photo datasets: the table schema, importers, splits, shards and the synthetic world."""

from trigeo.data.table import COLUMNS, SCHEMA, SPLITS, Dataset, validate_table

__all__ = ["COLUMNS", "SCHEMA", "SPLITS", "Dataset", "validate_table"]
