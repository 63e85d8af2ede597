"""The predictions artifact: one Parquet table per (model, dataset).

Columns
-------
photo_id : string
lat, lon : float64, the predicted location: the point the file's answer rule
    reports (the top cell's label point by default; see :mod:`trigeo.answer`),
    or a peer system's own estimate
top_cells : list<int32>[k], kept-cell ids, most probable first (absent for
    peer predictions, which have no mesh)
top_probs : list<float32>[k], their probabilities
model_id, mesh_hash : string (repeated per row so that concatenated files stay
    self-describing)

The file's schema metadata (key ``trigeo``) holds the provenance record, and
under ``answer`` the rule that chose lat/lon (``top-cell``, ``geoscore``,
``median``, ``refine`` or ``knn``) with its parameters under ``answer_params``.
Optional full probability vectors live in a side file ``<name>.probs.npy``
(float32, rows aligned with the table).

Torch-free on purpose: evaluation reads predictions without importing torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from trigeo.errors import ArtifactError, InputError
from trigeo.points import (
    LAT_NAMES,
    LON_NAMES,
    column_to_float,
    find_column,
    read_table,
    validate_latlng,
)
from trigeo.provenance import atomic_path, make_provenance

__all__ = [
    "Predictions",
    "answer_rule",
    "read_predictions",
    "rewrite_answer",
    "write_predictions",
]

_META_KEY = b"trigeo"


@dataclass
class Predictions:
    """Predictions of one model on one set of photos.

    ``top_cells``/``top_probs`` are ``None`` for peer predictions (lat/lon only).
    """

    photo_id: NDArray[np.str_]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    top_cells: NDArray[np.int32] | None = None
    top_probs: NDArray[np.float32] | None = None
    model_id: str = "unknown"
    mesh_hash: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    full_probs: NDArray[np.float32] | None = None
    #: Short display name for tables and reports (``M1 coarse``); the full
    #: ``model_id`` stays the identity. ``None`` for files written without one.
    model_name: str | None = None
    #: The rule that chose ``lat``/``lon`` (:func:`answer_rule`); ``None`` for a peer's file.
    answer: str | None = None

    def __len__(self) -> int:
        return len(self.photo_id)

    @property
    def has_cells(self) -> bool:
        return self.top_cells is not None


def write_predictions(
    path: str | Path,
    photo_id: Any,
    lat: Any,
    lon: Any,
    *,
    top_cells: Any | None = None,
    top_probs: Any | None = None,
    model_id: str,
    mesh_hash: str | None,
    provenance: dict[str, Any] | None = None,
    full_probs: Any | None = None,
    model_name: str | None = None,
    answer: str | None = None,
    answer_params: dict[str, Any] | None = None,
) -> Path:
    """Write a predictions Parquet file atomically; returns its path.

    ``model_name`` is the short display name kept in the file's metadata
    (reports show it; ``model_id`` stays the identity). ``answer`` names the
    rule that chose ``lat``/``lon`` (default: ``top-cell`` for a file with
    cells), ``answer_params`` its settings.
    """
    path = Path(path)
    photo_id = np.asarray(photo_id).astype(str)
    n = len(photo_id)
    columns: dict[str, pa.Array] = {
        "photo_id": pa.array(photo_id, pa.string()),
        "lat": pa.array(np.asarray(lat, dtype=np.float64)),
        "lon": pa.array(np.asarray(lon, dtype=np.float64)),
    }
    if top_cells is not None:
        cells = np.asarray(top_cells, dtype=np.int32)
        probs = np.asarray(top_probs, dtype=np.float32)
        if cells.shape != probs.shape or cells.ndim != 2 or cells.shape[0] != n:
            raise ValueError(f"top_cells {cells.shape} and top_probs {probs.shape} must be (n, k)")
        k = cells.shape[1]
        columns["top_cells"] = pa.FixedSizeListArray.from_arrays(pa.array(cells.ravel()), k)
        columns["top_probs"] = pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), k)
    columns["model_id"] = pa.array([model_id] * n, pa.string()).dictionary_encode()
    columns["mesh_hash"] = pa.array([mesh_hash] * n, pa.string()).dictionary_encode()
    table = pa.table(columns)
    record = provenance or make_provenance()
    record = {
        **record,
        "model_id": model_id,
        "model_name": model_name,
        "mesh_hash": mesh_hash,
        "answer": answer or ("top-cell" if top_cells is not None else None),
        "answer_params": answer_params or {},
        "format": "trigeo-predictions/1",
    }
    table = table.replace_schema_metadata({_META_KEY: json.dumps(record).encode()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
    if full_probs is not None:
        probs_path = path.with_suffix(".probs.npy")
        with atomic_path(probs_path, suffix=".npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(full_probs, dtype=np.float32))
    return path


def _ids_as_text(table: pa.Table, path: Path) -> pa.Table:
    """Re-read a CSV whose photo ids were inferred as numbers, keeping them verbatim.

    Type inference would turn ``00123`` into ``123``, which then matches no
    photo of the dataset.
    """
    names = {name.lower(): name for name in table.column_names}
    column = names.get("photo_id")
    if column is None or pa.types.is_string(table.schema.field(column).type):
        return table
    if not path.name.lower().endswith((".csv", ".csv.gz", ".csv.bz2", ".tsv")):
        return table
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(strings_can_be_null=False, column_types={column: pa.string()})
    return pacsv.read_csv(path, convert_options=convert)


def read_predictions(
    path: str | Path, *, lat_col: str | None = None, lon_col: str | None = None
) -> Predictions:
    """Read a trigeo predictions Parquet file, or a peer's ``photo_id,lat,lon`` CSV.

    Raises
    ------
    ArtifactError
        If a Parquet file is corrupt.
    InputError
        If required columns are missing or coordinates are invalid (names the row).
    """
    path = Path(path)
    try:
        table = read_table(path)
    except InputError:
        raise
    except Exception as exc:  # pragma: no cover - defensive: pyarrow raises many types
        raise ArtifactError(f"{path}: cannot read predictions ({exc})") from exc
    table = _ids_as_text(table, path)
    raw_meta = (table.schema.metadata or {}).get(_META_KEY)
    meta: dict[str, Any] = json.loads(raw_meta) if raw_meta else {}
    names = {name.lower(): name for name in table.column_names}
    if "photo_id" not in names:
        raise InputError(
            f"no photo_id column; columns are {table.column_names}", source=path, column="photo_id"
        )
    lat_name = find_column(table, lat_col, LAT_NAMES, "latitude", path)
    lon_name = find_column(table, lon_col, LON_NAMES, "longitude", path)
    lat = column_to_float(table, lat_name, path)
    lon = column_to_float(table, lon_name, path)
    lat, lon = validate_latlng(lat, lon, source=path, lat_col=lat_name, lon_col=lon_name)
    photo_id = np.asarray(table.column(names["photo_id"]).to_pylist()).astype(str)
    top_cells = top_probs = None
    if "top_cells" in table.column_names:
        k = table.schema.field("top_cells").type.list_size
        top_cells = (
            table.column("top_cells").combine_chunks().flatten().to_numpy().reshape(-1, k)
        ).astype(np.int32)
        top_probs = (
            table.column("top_probs").combine_chunks().flatten().to_numpy().reshape(-1, k)
        ).astype(np.float32)
    full_probs = None
    probs_path = path.with_suffix(".probs.npy")
    if probs_path.exists():
        full_probs = np.load(probs_path, mmap_mode="r")
    return Predictions(
        photo_id=photo_id,
        lat=lat,
        lon=lon,
        top_cells=top_cells,
        top_probs=top_probs,
        model_id=str(meta.get("model_id") or path.stem),
        mesh_hash=meta.get("mesh_hash"),
        meta=meta,
        full_probs=full_probs,
        model_name=meta.get("model_name") or None,
        answer=answer_rule(meta, has_cells=top_cells is not None),
    )


def answer_rule(meta: dict[str, Any], *, has_cells: bool) -> str | None:
    """The answer rule a predictions file records.

    Files written before the rule was recorded say nothing: a file with
    cells then answered by its top cell, a kNN file (``location_label``
    ``knn``) by kNN, and a peer's lat/lon file by a rule trigeo cannot know
    (``None``).
    """
    recorded = meta.get("answer")
    if recorded:
        return str(recorded)
    if meta.get("location_label") == "knn":
        return "knn"
    return "top-cell" if has_cells else None


def rewrite_answer(
    path: str | Path,
    lat: Any,
    lon: Any,
    *,
    answer: str,
    params: dict[str, Any] | None = None,
    model_id: str | None = None,
    model_name: str | None = None,
) -> Path:
    """Replace a predictions file's lat/lon with another answer rule's points, atomically.

    Every other column (top cells, probabilities, photo ids) and the
    provenance record are kept; the record's ``answer`` and
    ``answer_params`` are set, and ``model_id``/``model_name`` when given
    (in the column too). A side file of full probabilities is left as it is.

    Raises
    ------
    ValueError
        ``lat``/``lon`` not one value per row.
    """
    path = Path(path)
    table = pq.read_table(path)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.shape != (table.num_rows,) or lon.shape != (table.num_rows,):
        raise ValueError(f"{path}: {table.num_rows} rows but lat {lat.shape}, lon {lon.shape}")
    raw = (table.schema.metadata or {}).get(_META_KEY)
    record: dict[str, Any] = json.loads(raw) if raw else {}
    record.update(answer=answer, answer_params=params or {})
    table = table.set_column(table.column_names.index("lat"), "lat", pa.array(lat))
    table = table.set_column(table.column_names.index("lon"), "lon", pa.array(lon))
    if model_id is not None:
        record["model_id"] = model_id
        ids = pa.array([model_id] * table.num_rows, pa.string()).dictionary_encode()
        table = table.set_column(table.column_names.index("model_id"), "model_id", ids)
    if model_name is not None:
        record["model_name"] = model_name
    table = table.replace_schema_metadata({_META_KEY: json.dumps(record).encode()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path
