"""Read and validate coordinate tables (CSV or Parquet) with lat/lon columns.

Shared by every command that takes ``--points FILE``. Errors name the file,
the column and the 1-based data row (the header is row 0), so a user can open
the file and fix it.

A trigeo dataset (a directory holding ``table.parquet`` and ``dataset.json``)
can stand in for a file. :func:`read_points_with_source` also returns a record
of where the points came from (file, dataset hash, split filter, splits used),
which a mesh keeps as ``points_source_`` so that training can tell whether
evaluation photos went into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from trigeo import sphere
from trigeo.errors import InputError

__all__ = [
    "DATASET_META_FILE",
    "DATASET_TABLE_FILE",
    "LAT_NAMES",
    "LON_NAMES",
    "POINTS_SOURCE_KEYS",
    "check_points_source",
    "column_to_float",
    "dataset_table_path",
    "find_column",
    "points_from_table",
    "read_points",
    "read_points_with_source",
    "read_table",
    "validate_latlng",
]

#: The two files that make a directory a trigeo dataset. Defined here, the lowest module that
#: must recognise a dataset; ``trigeo.data.table`` (which writes them) imports them.
DATASET_TABLE_FILE = "table.parquet"
DATASET_META_FILE = "dataset.json"

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "lng", "longitude", "long")

#: Keys of a points-source record, in this order (see :func:`read_points_with_source`).
POINTS_SOURCE_KEYS = ("path", "dataset_sha256", "split", "splits_used")


def read_table(path: str | Path) -> pa.Table:
    """Read a CSV or Parquet file into an Arrow table, with clear errors.

    CSV columns are read as strings first so that a non-numeric cell can be
    reported by row rather than failing type inference somewhere in the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", source=path)
    if path.is_dir():
        raise InputError("expected a file, got a directory", source=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty", source=path)
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".parquet", ".pq")):
            return pq.read_table(path)
        convert = pacsv.ConvertOptions(strings_can_be_null=False)
        table = pacsv.read_csv(path, convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot be read as a table ({exc})", source=path) from exc
    return table


def find_column(
    table: pa.Table, wanted: str | None, candidates: tuple[str, ...], what: str, source: Path
) -> str:
    """Return the column to use for ``what`` (case-insensitive match)."""
    names = {name.lower().strip(): name for name in table.column_names}
    if wanted is not None:
        if wanted in table.column_names:
            return wanted
        if wanted.lower() in names:
            return names[wanted.lower()]
        raise InputError(
            f"no column named {wanted!r} for {what}; columns are {table.column_names}",
            source=source,
            column=wanted,
        )
    for candidate in candidates:
        if candidate in names:
            return names[candidate]
    raise InputError(
        f"no {what} column found (looked for {', '.join(candidates)}, any case); "
        f"columns are {table.column_names}. Name it with --{what[:3]}-col.",
        source=source,
    )


def column_to_float(table: pa.Table, column: str, source: Path) -> NDArray[np.float64]:
    """A numeric column as float64; a missing or non-numeric value names its row."""
    array = table.column(column).combine_chunks()
    if pa.types.is_floating(array.type) or pa.types.is_integer(array.type):
        if array.null_count:
            row = int(np.flatnonzero(np.asarray(array.is_null()))[0]) + 1
            raise InputError("missing value", source=source, row=row, column=column)
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    strings = pc.utf8_trim_whitespace(pc.cast(array, pa.string()))
    try:
        return np.asarray(pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = strings.to_pylist()
    for index, value in enumerate(values):
        try:
            float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(
                f"value {value!r} is not a number", source=source, row=index + 1, column=column
            ) from None
    raise InputError("values could not be converted to numbers", source=source, column=column)


def validate_latlng(
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    *,
    source: str | Path | None = None,
    lat_col: str = "lat",
    lon_col: str = "lon",
    wrap_longitude: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Check coordinates and return them (longitudes wrapped if asked).

    Raises
    ------
    InputError
        Naming the first offending row for NaN/inf, ``|lat| > 90`` and, unless
        ``wrap_longitude``, longitudes outside ``[-180, 180]``.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size == 0:
        raise InputError("no coordinates (zero data rows)", source=source)
    for values, name in ((lat, lat_col), (lon, lon_col)):
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"value {values[row]} is not finite ({int(bad.sum())} such rows)",
                source=source,
                row=row + 1,
                column=name,
            )
    bad = np.abs(lat) > 90.0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"latitude {lat[row]} is outside [-90, 90] ({int(bad.sum())} such rows); "
            "are latitude and longitude swapped?",
            source=source,
            row=row + 1,
            column=lat_col,
        )
    if wrap_longitude:
        lon = sphere.wrap_longitude(lon)
    else:
        bad = np.abs(lon) > 180.0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"longitude {lon[row]} is outside [-180, 180] ({int(bad.sum())} such rows); "
                "pass --wrap-longitude to wrap them",
                source=source,
                row=row + 1,
                column=lon_col,
            )
    return lat, lon


def read_points(
    path: str | Path,
    lat_col: str | None = None,
    lon_col: str | None = None,
    *,
    wrap_longitude: bool = False,
    split: str | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read validated latitude/longitude arrays (degrees) from CSV or Parquet.

    Parameters
    ----------
    path
        A ``.csv`` (optionally compressed) or ``.parquet`` file with a header,
        or a trigeo dataset directory (its ``table.parquet`` is read).
    lat_col, lon_col
        Column names; found case-insensitively among ``lat/latitude`` and
        ``lon/lng/longitude`` when not given.
    wrap_longitude
        Wrap longitudes outside ``[-180, 180]`` instead of rejecting them.
    split
        Keep only rows whose ``split`` column equals this (e.g. ``train`` when
        the file is a dataset's ``table.parquet``: meshes are built on training
        photos only).
    """
    lat, lon, _ = read_points_with_source(
        path, lat_col, lon_col, wrap_longitude=wrap_longitude, split=split
    )
    return lat, lon


def points_from_table(
    table: pa.Table,
    path: str | Path,
    lat_col: str | None = None,
    lon_col: str | None = None,
    *,
    wrap_longitude: bool = False,
    split: str | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`read_points` on a table already read from ``path`` by :func:`read_table`."""
    lat, lon, _ = _points_and_splits(
        table, Path(path), lat_col, lon_col, wrap_longitude=wrap_longitude, split=split
    )
    return lat, lon


def _points_and_splits(
    table: pa.Table,
    path: Path,
    lat_col: str | None,
    lon_col: str | None,
    *,
    wrap_longitude: bool,
    split: str | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str] | None]:
    """Coordinates of the rows ``split`` selects, and the sorted distinct splits among
    them (None when the table has no ``split`` column)."""
    if table.num_rows == 0:
        raise InputError("file has a header but no data rows", source=path)
    has_split = "split" in table.column_names
    if split is not None:
        if not has_split:
            raise InputError(
                f"--split {split!r} needs a 'split' column; columns are {table.column_names}",
                source=path,
                column="split",
            )
        splits = table.column("split").cast(pa.string())
        table = table.filter(pc.equal(splits, split))
        if table.num_rows == 0:
            present = sorted(set(splits.to_pylist()))
            raise InputError(
                f"no rows with split {split!r}; splits present are {present}",
                source=path,
                column="split",
            )
    lat_name = find_column(table, lat_col, LAT_NAMES, "latitude", path)
    lon_name = find_column(table, lon_col, LON_NAMES, "longitude", path)
    lat = column_to_float(table, lat_name, path)
    lon = column_to_float(table, lon_name, path)
    lat, lon = validate_latlng(
        lat, lon, source=path, lat_col=lat_name, lon_col=lon_name, wrap_longitude=wrap_longitude
    )
    used = None
    if has_split:
        # Nulls name no split (a dataset table has none); every other value is listed.
        values = pc.unique(table.column("split").cast(pa.string())).drop_null()
        used = sorted(values.to_pylist())
    return lat, lon, used


def dataset_table_path(path: str | Path) -> Path | None:
    """The ``table.parquet`` of the trigeo dataset ``path`` names, or None.

    ``path`` names a dataset when it is a directory holding ``table.parquet``
    and ``dataset.json``, or the ``table.parquet`` inside such a directory.
    Any other file is a plain points file (None).

    Raises
    ------
    InputError
        If ``path`` is a directory but not a dataset.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / DATASET_TABLE_FILE).is_file() or not (path / DATASET_META_FILE).is_file():
            raise InputError(
                f"not a trigeo dataset directory (it needs {DATASET_TABLE_FILE} and "
                f"{DATASET_META_FILE}); "
                "give a CSV or Parquet file of points, or a dataset directory",
                source=path,
            )
        return path / DATASET_TABLE_FILE
    if path.name == DATASET_TABLE_FILE and (path.parent / DATASET_META_FILE).is_file():
        return path
    return None


def read_points_with_source(
    path: str | Path,
    lat_col: str | None = None,
    lon_col: str | None = None,
    *,
    wrap_longitude: bool = False,
    split: str | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    """:func:`read_points`, plus a record of where the points came from.

    The record is what ``DelaunayMesh.fit(..., source=record)`` keeps as
    ``points_source_``; its keys are :data:`POINTS_SOURCE_KEYS`:

    ``path`` : str
        ``path`` as given.
    ``dataset_sha256`` : str or None
        The dataset's hash (``trigeo.data.table.Dataset.open(root).hash``, the
        sha256 of its ``table.parquet``) when ``path`` is a trigeo dataset
        directory or its ``table.parquet``; None for any other file.
    ``split`` : str or None
        The ``split`` filter applied; None means every row.
    ``splits_used`` : list of str or None
        The distinct values of the ``split`` column among the rows read,
        sorted; None when the file has no ``split`` column.

    Parameters are those of :func:`read_points`; ``split=None`` reads every
    row (no default split here: the CLI chooses one for datasets).
    """
    from trigeo.provenance import hash_file

    table_path = dataset_table_path(path)
    source = Path(path) if table_path is None else table_path
    lat, lon, used = _points_and_splits(
        read_table(source), source, lat_col, lon_col, wrap_longitude=wrap_longitude, split=split
    )
    record = {
        "path": str(path),
        # By definition the same as Dataset.open(root).hash, without reading the table
        # into pandas and validating it a second time.
        "dataset_sha256": None if table_path is None else hash_file(table_path),
        "split": split,
        "splits_used": used,
    }
    return lat, lon, record


def check_points_source(record: Any) -> dict[str, Any]:
    """Check a points-source record and return a copy with its keys in order.

    Raises
    ------
    InputError
        If ``record`` is not a dict with exactly :data:`POINTS_SOURCE_KEYS`
        and values of the documented types (``splits_used`` sorted).
    """
    if not isinstance(record, dict):
        raise InputError(f"a points source must be a dict, got {type(record).__name__}")
    if set(record) != set(POINTS_SOURCE_KEYS):
        raise InputError(
            f"a points source needs exactly the keys {list(POINTS_SOURCE_KEYS)}, "
            f"got {sorted(record)}"
        )
    if not isinstance(record["path"], str):
        raise InputError(f"points source 'path' must be a string, got {record['path']!r}")
    for key in ("dataset_sha256", "split"):
        if record[key] is not None and not isinstance(record[key], str):
            raise InputError(f"points source {key!r} must be a string or None, got {record[key]!r}")
    used = record["splits_used"]
    if used is not None:
        if not isinstance(used, list) or not all(isinstance(v, str) for v in used):
            raise InputError(
                f"points source 'splits_used' must be a list of strings or None, got {used!r}"
            )
        if used != sorted(set(used)):
            raise InputError(f"points source 'splits_used' must be sorted and distinct: {used}")
    checked = {key: record[key] for key in POINTS_SOURCE_KEYS}
    checked["splits_used"] = None if used is None else list(used)
    return checked
