"""The photo-table formats ``trigeo data csv`` reads: column names and image layouts.

Each named format fixes which input column fills which dataset field and
where the images are, so one command shape imports every standard set:

* ``generic``: any CSV or Parquet; the columns are given by name or found
  among the common spellings (:data:`SPELLINGS`); images are files under the
  image root, found by the image column or by the photo id.
* ``im2gps3k`` / ``yfcc4k``: the test-set CSVs the S2-cell systems publish
  (``IMG_ID, AUTHOR, LAT, LON, S3_Label, S16_Label, S365_Label, Prob_indoor,
  Prob_natural, Prob_urban``) beside a folder of the images; ``IMG_ID`` is the
  image's path relative to that folder. The published YFCC4k metadata
  (``yfcc25600_places365.csv``) lists 25,600 photos, of which the 4,536-image
  archive holds a subset: rows without an image are expected there.
* ``mp16``: ``mp16_places365.csv`` (same columns) beside ``shard_*.msg``
  msgpack files whose records ``{"id": IMG_ID, "image": JPEG bytes}`` are read
  in place (:mod:`trigeo.data.msgpack_shards`).
* ``osv5m``: OpenStreetView-5M's ``train.csv`` / ``test.csv`` (``id,
  latitude, longitude, thumb_original_url, country, sequence, captured_at,
  ..., creator_username, creator_id``) beside ``images/<split>``, holding
  ``<NN>/<id>.jpg`` or the still-zipped ``<NN>.zip``.

``Prob_indoor`` (a Places365 scene probability), wherever present, fills the
table's ``outdoor`` column as ``1 - Prob_indoor``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from trigeo.errors import InputError

__all__ = ["FIELDS", "FORMATS", "SPELLINGS", "TableFormat", "resolve_columns"]

FIELDS = ("id", "lat", "lon", "image", "user", "time", "split")

# Common spellings, tried in order, case-insensitively. The image column is not
# guessed from the id column: without one, images are looked up by id.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "id": ("photo_id", "IMG_ID", "id", "image_id", "img_id", "key"),
    "lat": ("lat", "LAT", "latitude"),
    "lon": ("lon", "LON", "lng", "longitude", "long"),
    "image": ("image", "image_path", "img_path", "path", "file", "filename"),
    "user": ("user_id", "AUTHOR", "user", "owner", "creator_id", "author"),
    "time": ("posted_at", "timestamp", "datetime", "time", "date_taken", "taken_at", "date"),
}

_SCENE_TYPES = {
    "S3_Label": pa.int64(),
    "S16_Label": pa.int64(),
    "S365_Label": pa.int64(),
    "Prob_indoor": pa.float64(),
    "Prob_natural": pa.float64(),
    "Prob_urban": pa.float64(),
}
_S2_COLUMNS = {"id": "IMG_ID", "image": "IMG_ID", "lat": "LAT", "lon": "LON", "user": "AUTHOR"}
_OSV5M_NUMERIC = (
    "lon_bin",
    "lat_bin",
    "land_cover",
    "road_index",
    "drive_side",
    "climate",
    "soil",
    "dist_sea",
    "quadtree_10_5000",
    "quadtree_10_25000",
    "quadtree_10_1000",
    "quadtree_10_50000",
    "quadtree_10_12500",
    "quadtree_10_500",
    "quadtree_10_2500",
)


@dataclass(frozen=True)
class TableFormat:
    """How one format maps to the dataset table.

    Attributes
    ----------
    name
        The ``--format`` value.
    columns
        Field (:data:`FIELDS`) -> input column fixed by the format; fields not
        given here come from options or auto-detection.
    store
        ``folder`` (image files, also ``NN/<id>.jpg`` and ``NN.zip`` trees when
        ``by_stem``), or ``msgpack`` (``shard_*.msg`` records).
    by_stem
        Images are found by file stem (= photo id) anywhere below the image
        root or inside its zip archives, rather than by relative path.
    basename_fallback
        When the relative path is not found, try its last component directly
        under the image root (YFCC4k archives are flat).
    absent_images_expected
        The metadata lists more photos than the image set holds (YFCC4k):
        rows without an image are reported apart and do not count as failures.
    time_is_capture
        The time column is the capture time (fills ``taken_at`` too).
    extra_types
        Arrow types of known extra columns (others are kept as strings).
    """

    name: str
    columns: dict[str, str] = field(default_factory=dict)
    store: str = "folder"
    by_stem: bool = False
    basename_fallback: bool = False
    absent_images_expected: bool = False
    time_is_capture: bool = False
    extra_types: dict[str, pa.DataType] = field(default_factory=dict)


FORMATS: dict[str, TableFormat] = {
    "generic": TableFormat("generic", extra_types=dict(_SCENE_TYPES)),
    "im2gps3k": TableFormat("im2gps3k", dict(_S2_COLUMNS), extra_types=dict(_SCENE_TYPES)),
    "yfcc4k": TableFormat(
        "yfcc4k",
        dict(_S2_COLUMNS),
        basename_fallback=True,
        absent_images_expected=True,
        extra_types=dict(_SCENE_TYPES),
    ),
    "mp16": TableFormat("mp16", dict(_S2_COLUMNS), store="msgpack", extra_types=dict(_SCENE_TYPES)),
    "osv5m": TableFormat(
        "osv5m",
        {
            "id": "id",
            "lat": "latitude",
            "lon": "longitude",
            "user": "creator_id",
            "time": "captured_at",
        },
        by_stem=True,
        time_is_capture=True,
        extra_types=dict.fromkeys(_OSV5M_NUMERIC, pa.float64()),
    ),
}


def resolve_columns(
    names: list[str], fmt: TableFormat, given: dict[str, str | None], source: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Choose the input column of each field.

    Parameters
    ----------
    names
        The input's column names.
    fmt
        The format (its fixed columns come first, then ``given``, then spellings).
    given
        Field -> column name from the command line (``None``: not given).
    source
        The input file, for error messages.

    Returns
    -------
    (columns, how)
        Field -> chosen column, and field -> ``"format"``, ``"option"`` or
        ``"auto"`` (only for fields found).

    Raises
    ------
    InputError
        If a named column is absent, or no id/lat/lon column is found.
    """
    lower = {name.lower(): name for name in reversed(names)}
    columns: dict[str, str] = {}
    how: dict[str, str] = {}
    for name in FIELDS:
        option = given.get(name)
        if option is not None:
            if option not in names:
                raise InputError(
                    f"--{name}-col {option!r} is not a column; the columns are {names}",
                    source=source,
                )
            columns[name], how[name] = option, "option"
            continue
        fixed = fmt.columns.get(name)
        if fixed is not None:
            if fixed not in names:
                raise InputError(
                    f"the {fmt.name} format needs a column {fixed!r} ({name}); the columns "
                    f"are {names}. Is this the right --format?",
                    source=source,
                    column=fixed,
                )
            columns[name], how[name] = fixed, "format"
            continue
        if fmt.name != "generic" or name == "split":
            continue  # named formats fix their columns; a split is only taken when asked
        for spelling in SPELLINGS.get(name, ()):
            found = lower.get(spelling.lower())
            if found is not None and found not in columns.values():
                columns[name], how[name] = found, "auto"
                break
    for name in ("id", "lat", "lon"):
        if name not in columns:
            tried = ", ".join(SPELLINGS[name])
            raise InputError(
                f"no {name} column found (tried {tried}); name it with --{name}-col. "
                f"The columns are {names}",
                source=source,
            )
    return columns, how
