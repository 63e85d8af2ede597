"""The dataset table: schema, validation, and the dataset directory artifact.

A dataset directory holds::

    table.parquet   one row per photo (schema below)
    dataset.json    schema version, provenance, counts
    images/ ...     JPEG files referenced by the ``image`` column, and/or
    shards/ ...     webdataset tar shards (``image`` then holds the shard key)

==========  ===========================  ======================================
column      type                         meaning
==========  ===========================  ======================================
photo_id    string                       unique within the dataset
image       string                       path relative to the root, shard key or URL
lat, lon    float64                      degrees, WGS84 GPS (ground truth)
user_id     string                       Flickr NSID or any user key
posted_at   timestamp[us, UTC]           upload time
taken_at    timestamp[us, UTC], nullable capture time
outdoor     float64 in [0, 1], nullable  P(outdoor) from a scene model
split       string                       ``train`` | ``heads`` | ``val`` (or custom)
==========  ===========================  ======================================

Split convention (the study's protocol): ``train`` trains M1; M1's validation
photos are re-split into ``heads`` (trains M2/M3) and ``val`` (held out: every
model is reported on it). No ``train`` photo ever trains M2 or M3.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trigeo.data.ids import unique_keys
from trigeo.errors import ArtifactError, InputError
from trigeo.points import DATASET_META_FILE, DATASET_TABLE_FILE, validate_latlng
from trigeo.provenance import atomic_path, hash_file, write_json_atomic

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SPLITS",
    "Dataset",
    "TableWriter",
    "validate_table",
]

SCHEMA_VERSION = 1
SPLITS = ("train", "heads", "val")
TABLE_FILE = DATASET_TABLE_FILE
META_FILE = DATASET_META_FILE

SCHEMA = pa.schema(
    [
        pa.field("photo_id", pa.string(), nullable=False),
        pa.field("image", pa.string(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("posted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("taken_at", pa.timestamp("us", tz="UTC"), nullable=True),
        pa.field("outdoor", pa.float64(), nullable=True),
        pa.field("split", pa.string(), nullable=False),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_REQUIRED = ("photo_id", "image", "lat", "lon", "user_id", "posted_at", "split")


def validate_table(df: pd.DataFrame, source: str | Path | None = None) -> pd.DataFrame:
    """Check a photo table against the schema and return it normalized.

    Optional columns (``taken_at``, ``outdoor``) are added as nulls when
    missing; timestamps are converted to UTC; column order follows ``COLUMNS``.

    Raises
    ------
    InputError
        Naming the column and, where it applies, the first bad row (1-based).
    """
    missing = [name for name in _REQUIRED if name not in df.columns]
    if missing:
        raise InputError(
            f"missing required column(s) {missing}; a dataset table needs {list(COLUMNS)}",
            source=source,
        )
    if len(df) == 0:
        raise InputError("the table has no rows", source=source)
    df = df.copy()
    for name in ("taken_at", "outdoor"):
        if name not in df.columns:
            df[name] = None
    for name in ("photo_id", "image", "user_id", "split"):
        nulls = df[name].isna().to_numpy()
        if nulls.any():
            row = int(np.flatnonzero(nulls)[0]) + 1
            raise InputError("missing value", source=source, row=row, column=name)
        df[name] = df[name].astype(str)
    dup = df["photo_id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0]) + 1
        raise InputError(
            f"duplicate photo_id {df['photo_id'].iloc[row - 1]!r} ({int(dup.sum())} duplicates)",
            source=source,
            row=row,
            column="photo_id",
        )
    for name in ("lat", "lon", "outdoor"):
        try:
            df[name] = pd.to_numeric(df[name], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            bad = pd.to_numeric(df[name], errors="coerce").isna() & df[name].notna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1 if bad.any() else None
            raise InputError(f"not numeric ({exc})", source=source, row=row, column=name) from exc
    validate_latlng(df["lat"].to_numpy(), df["lon"].to_numpy(), source=source)
    outdoor = df["outdoor"].to_numpy()
    bad = np.isfinite(outdoor) & ((outdoor < 0) | (outdoor > 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise InputError("outdoor must lie in [0, 1]", source=source, row=row, column="outdoor")
    for name in ("posted_at", "taken_at"):
        try:
            # The table stores microseconds; finer times (file mtimes) are floored.
            df[name] = pd.to_datetime(df[name], utc=True).dt.floor("us")
        except (TypeError, ValueError) as exc:
            raise InputError(f"not a timestamp ({exc})", source=source, column=name) from exc
    nulls = df["posted_at"].isna().to_numpy()
    if nulls.any():
        row = int(np.flatnonzero(nulls)[0]) + 1
        raise InputError("missing posting time", source=source, row=row, column="posted_at")
    extra = [name for name in df.columns if name not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    extra = [name for name in df.columns if name not in COLUMNS]
    table = pa.Table.from_pandas(df[list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    for name in extra:
        table = table.append_column(name, pa.array(df[name].to_numpy()))
    return table


def _write_meta(
    root: Path, counts: dict[str, Any], provenance: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """Write ``dataset.json`` for the table already in ``root``; returns the record."""
    record = {
        "schema_version": SCHEMA_VERSION,
        **meta,
        "counts": counts,
        "table_sha256": hash_file(root / TABLE_FILE),
        "provenance": provenance,
    }
    write_json_atomic(root / META_FILE, record)
    return record


class Dataset:
    """A dataset directory: the photo table plus its images and metadata.

    Open one with :meth:`Dataset.open`; write one with :meth:`Dataset.write`.

    Attributes
    ----------
    root : Path
        The dataset directory.
    table : pandas.DataFrame
        The validated photo table (see module docstring for the schema).
    meta : dict
        Contents of ``dataset.json`` (schema version, provenance, counts).
    """

    def __init__(self, root: Path, table: pd.DataFrame, meta: dict[str, Any]) -> None:
        self.root = Path(root)
        self.table = table
        self.meta = meta

    # --- reading -----------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, validate: bool = True) -> Dataset:
        """Open a dataset directory, checking its schema version and table.

        Raises
        ------
        ArtifactError
            If the directory is not a dataset or was written by a newer schema.
        InputError
            If the table violates the schema (names the column and row).
        """
        root = Path(root)
        meta_path, table_path = root / META_FILE, root / TABLE_FILE
        if not root.is_dir():
            raise ArtifactError(f"{root}: not a directory; expected a trigeo dataset directory")
        if not table_path.exists():
            raise ArtifactError(f"{root}: no {TABLE_FILE}; is this a trigeo dataset directory?")
        meta: dict[str, Any] = {}
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text("utf-8"))
            except json.JSONDecodeError as exc:
                raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from exc
            version = meta.get("schema_version")
            if not isinstance(version, int) or version > SCHEMA_VERSION:
                raise ArtifactError(
                    f"{meta_path}: schema_version {version!r} is not supported by this "
                    f"trigeo (supports <= {SCHEMA_VERSION}); upgrade trigeo"
                )
        try:
            df = pq.read_table(table_path).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(f"{table_path}: corrupt Parquet ({exc})") from exc
        if validate:
            df = validate_table(df, source=table_path)
        return cls(root, df, meta)

    @property
    def table_path(self) -> Path:
        return self.root / TABLE_FILE

    @functools.cached_property
    def hash(self) -> str:
        """SHA-256 of ``table.parquet``: identifies the dataset's content.

        Cached: a ``Dataset`` object never rewrites its table (writes return a new one).
        """
        return hash_file(self.table_path)

    def photos(self, split: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Rows of the given split(s), or all rows; raises if the selection is empty."""
        if split is None:
            return self.table
        splits = [split] if isinstance(split, str) else list(split)
        rows = self.table[self.table["split"].isin(splits)]
        if len(rows) == 0:
            present = sorted(self.table["split"].unique())
            raise InputError(
                f"split {splits} is empty; the dataset has splits {present}",
                source=self.root,
                column="split",
            )
        return rows

    def image_path(self, image: str) -> Path:
        """Filesystem path of an ``image`` value stored relative to the root."""
        return self.root / image

    # --- writing -----------------------------------------------------------------
    @classmethod
    def write(
        cls,
        root: str | Path,
        table: pd.DataFrame,
        provenance: dict[str, Any],
        **meta: Any,
    ) -> Dataset:
        """Validate ``table`` and write ``table.parquet`` + ``dataset.json`` atomically.

        Extra keyword arguments are stored in ``dataset.json`` (e.g. ``images="folder"``).
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        table = validate_table(table, source=root / TABLE_FILE)
        with atomic_path(root / TABLE_FILE) as tmp:
            pq.write_table(_to_arrow(table), tmp, compression="zstd")
        counts = {
            "photos": len(table),
            "users": int(table["user_id"].nunique()),
            "splits": {str(k): int(v) for k, v in table["split"].value_counts().items()},
        }
        return cls(root, table, _write_meta(root, counts, provenance, meta))

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, photos={len(self.table)})"


class TableWriter:
    """Write a dataset table in row-group batches, for tables too big for memory.

    Each batch is validated with :func:`validate_table` and appended to a
    temporary Parquet file; :meth:`close` renames it to ``table.parquet`` and
    writes ``dataset.json`` (counts, table hash, provenance), exactly as
    :meth:`Dataset.write` would. Photo ids must be unique across batches: the
    caller (an importer) removes duplicates, since only it can report them.

    Parameters
    ----------
    root
        Dataset directory.
    extra_fields
        Arrow fields of the extra columns every batch carries, in order.

    Examples
    --------
    >>> with TableWriter("out", [pa.field("country", pa.string())]) as writer:  # doctest: +SKIP
    ...     for batch in batches:
    ...         writer.write(batch)
    ...     writer.close(provenance, images="urls")
    """

    def __init__(self, root: str | Path, extra_fields: Iterable[pa.Field] = ()) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([*SCHEMA, *extra_fields])
        self._tmp = self.root / f".{TABLE_FILE}.{os.getpid()}.partial"
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self._tmp, self.schema, compression="zstd"
        )
        self.rows = 0
        self._splits: Counter[str] = Counter()
        self._user_runs: list[np.ndarray] = []

    def write(self, df: pd.DataFrame | pa.Table) -> None:
        """Append one batch (an empty batch is ignored).

        A DataFrame is validated with :func:`validate_table`. A ``pyarrow.Table``
        is only cast to the schema: importers that build rows column-wise and
        check them themselves use it to skip the pandas round trip.
        """
        if self._writer is None:
            raise ArtifactError(f"{self.root}: TableWriter is closed")
        if len(df) == 0:
            return
        if isinstance(df, pa.Table):
            table = df.select(self.schema.names).cast(self.schema)
        else:
            df = validate_table(df, source=self.root / TABLE_FILE)
            table = pa.Table.from_pandas(
                df[self.schema.names], schema=self.schema, preserve_index=False
            )
        self._writer.write_table(table)
        self.rows += table.num_rows
        counts = table.column("split").value_counts()
        for item in counts.to_pylist():
            self._splits[str(item["values"])] += int(item["counts"])
        users = table.column("user_id").unique().to_numpy(zero_copy_only=False)
        # Hashes of each batch's users, merged now and then: a union per batch
        # would re-sort every user seen so far (millions when each photo is its
        # own user). categorize=False: the same hashes, faster on distinct values.
        self._user_runs.append(unique_keys(pd.util.hash_array(users, categorize=False)))
        if len(self._user_runs) > 8:
            self._user_runs = [unique_keys(np.concatenate(self._user_runs))]

    def close(self, provenance: dict[str, Any], **meta: Any) -> dict[str, Any]:
        """Finish the table and write ``dataset.json``; returns its content.

        The table is not read back (it may not fit in memory); open it with
        :meth:`Dataset.open` when it does.
        """
        if self._writer is None:
            raise ArtifactError(f"{self.root}: TableWriter is closed")
        self._writer.close()
        self._writer = None
        if self.rows == 0:
            self._tmp.unlink(missing_ok=True)
            raise InputError("the table has no rows", source=self.root / TABLE_FILE)
        os.replace(self._tmp, self.root / TABLE_FILE)
        counts = {
            "photos": self.rows,
            "users": int(
                np.unique(np.concatenate([np.empty(0, np.uint64), *self._user_runs])).size
            ),
            "splits": {str(k): int(v) for k, v in self._splits.items()},
        }
        return _write_meta(self.root, counts, provenance, meta)

    def abort(self) -> None:
        """Drop the partial table (nothing under the final name is touched)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
