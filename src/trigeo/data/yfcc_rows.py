"""YFCC100M metadata rows to dataset rows: one parsed block at a time.

:func:`convert_block` maps a block of tab-separated fields (as parsed by
:func:`trigeo.data.yfcc.import_yfcc`) to table rows and counts every dropped
row under a reason: bad marker, video, not geotagged, bad coordinate number,
coordinates out of range, bad upload time, missing user id, missing photo id,
duplicate photo id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from trigeo.data.ids import SeenIds, id_keys, split_from_keys
from trigeo.data.report import ImportReport
from trigeo.data.yfcc_layout import YfccLayout

__all__ = ["EXTRA_FIELDS", "convert_block"]

#: The columns a YFCC import adds to the table schema.
EXTRA_FIELDS = (pa.field("accuracy", pa.float64()), pa.field("taken_local", pa.string()))
_MIN_UPLOAD, _MAX_UPLOAD = 0, 4_102_444_800  # 1970 .. 2100

_REASONS = (
    "bad marker",
    "video",
    "not geotagged",
    "bad coordinate number",
    "coordinates out of range",
    "bad upload time",
    "missing user id",
    "missing photo id",
    "duplicate photo id",
)
_ID_PATTERN = r"^[0-9A-Za-z_.:@-]{1,64}$"


def _to_float(values: pa.Array) -> np.ndarray:
    """Strings to float64; unparsable values become NaN (fast path: one Arrow cast)."""
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(values.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)


def convert_block(
    batch: pa.RecordBatch,
    layout: YfccLayout,
    offset: int,
    report: ImportReport,
    seen: SeenIds,
    root: Path | None,
    image_layout: str,
    split_args: tuple[float, float, int],
) -> pa.Table | None:
    """Map one parsed block to table rows; count every dropped row by reason."""
    n = batch.num_rows

    def col(index: int, trim: bool = False) -> pa.Array:
        values = batch.column(f"f{index}")
        # Only the last field can carry a stray "\r" (CRLF files) or blanks that
        # matter; numbers with blanks fall back to pandas parsing.
        return pc.utf8_trim_whitespace(values) if trim else values

    def is_empty(values: pa.Array) -> np.ndarray:
        return pc.equal(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)

    reason = np.zeros(n, dtype=np.int8)

    def flag(code: int, mask: np.ndarray) -> None:
        reason[(reason == 0) & mask] = code

    marker = col(layout.marker, trim=True)
    is_photo = pc.equal(marker, "0").to_numpy(zero_copy_only=False)
    is_video = pc.equal(marker, "1").to_numpy(zero_copy_only=False)
    flag(1, ~(is_photo | is_video))
    flag(2, is_video)
    lon_s, lat_s = col(layout.lon), col(layout.lat)
    flag(3, is_empty(lon_s) | is_empty(lat_s))
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    uploaded = np.full(n, np.nan)
    cand = np.flatnonzero(reason == 0)
    take = pa.array(cand, type=pa.int64())
    lon[cand] = _to_float(lon_s.take(take))
    lat[cand] = _to_float(lat_s.take(take))
    flag(4, ~(np.isfinite(lon) & np.isfinite(lat)))
    with np.errstate(invalid="ignore"):
        flag(5, (np.abs(lat) > 90) | (np.abs(lon) > 180))
    uploaded_s = col(layout.uploaded)
    uploaded[cand] = _to_float(uploaded_s.take(take))
    with np.errstate(invalid="ignore"):
        flag(6, ~((uploaded > _MIN_UPLOAD) & (uploaded < _MAX_UPLOAD)))
    user = col(layout.user)
    flag(7, is_empty(user))
    if layout.photo_id is not None:
        ids = col(layout.photo_id)
    else:
        found = pc.extract_regex(col(layout.page_url), r"/photos/[^/]+/(?P<id>[0-9]+)")
        ids = pc.fill_null(pc.struct_field(found, [0]), "")
    valid_id = pc.match_substring_regex(ids, _ID_PATTERN)
    flag(8, ~pc.fill_null(valid_id, False).to_numpy(zero_copy_only=False))

    ok = np.flatnonzero(reason == 0)
    keys = id_keys(ids.take(pa.array(ok, type=pa.int64())))
    dup = seen.contains(keys) | pd.Series(keys).duplicated().to_numpy()
    reason[ok[dup]] = 9
    seen.add(keys[~dup])
    keys = keys[~dup]

    bad = np.flatnonzero(reason)
    if bad.size:
        codes, counts = np.unique(reason[bad], return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            rows = bad[reason[bad] == code][:5]
            for i in rows.tolist():
                detail = {
                    1: f"marker {marker[i].as_py()!r}",
                    4: f"lat {lat_s[i].as_py()!r}, lon {lon_s[i].as_py()!r}",
                    5: f"lat {lat[i]}, lon {lon[i]}",
                    6: f"uploaded {uploaded_s[i].as_py()!r}",
                }.get(code, f"photo {ids[i].as_py()!r}")
                report.skip(_REASONS[code - 1], where=f"data row {offset + i + 1}", detail=detail)
            report.skipped[_REASONS[code - 1]] += count - rows.size

    keep = np.flatnonzero(reason == 0)
    k = keep.size
    if k == 0:
        return None
    take = pa.array(keep, type=pa.int64())
    ids_k = ids.take(take)
    if root is None:
        image = col(layout.download_url).take(take)
    elif image_layout == "hash":
        assert layout.hash is not None
        h = col(layout.hash).take(take)
        image = pc.binary_join_element_wise(
            str(root),
            pc.utf8_slice_codeunits(h, 0, 3),
            pc.utf8_slice_codeunits(h, 3, 6),
            pc.binary_join_element_wise(h, ".jpg", ""),
            "/",
        )
    else:
        ext = col(layout.extension).take(take)
        ext = pc.if_else(pc.equal(pc.utf8_length(ext), 0), "jpg", ext)
        image = pc.binary_join_element_wise(
            pc.binary_join_element_wise(str(root), ids_k, "/"), ext, "."
        )
    posted = (uploaded[keep] * 1e6).astype(np.int64)
    return pa.table(
        {
            "photo_id": ids_k,
            "image": image,
            "lat": pa.array(lat[keep]),
            "lon": pa.array(lon[keep]),
            "user_id": user.take(take),
            "posted_at": pa.array(posted, type=pa.timestamp("us", tz="UTC")),
            "taken_at": pa.nulls(k, type=pa.timestamp("us", tz="UTC")),
            "outdoor": pa.nulls(k, type=pa.float64()),
            "split": pa.array(split_from_keys(keys, *split_args), type=pa.string()),
            "accuracy": pa.array(_to_float(col(layout.accuracy).take(take))),
            "taken_local": col(layout.taken).take(take),
        }
    )
