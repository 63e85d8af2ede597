"""Write a dataset's images as webdataset tar shards.

Format contract (read by :mod:`trigeo.data.loading`):

* The output is a dataset directory. Its ``table.parquet`` ``image`` column
  holds ``shards/shard-NNNNNN.tar#KEY`` where ``KEY`` is the sample's
  ``__key__``: the zero-padded row index of the photo in the *input* table
  (photo ids may contain dots, which webdataset would read as extensions).
* Each sample has ``jpg`` (JPEG bytes, longer side at most ``max_side``) and
  ``json`` (``photo_id``, ``lat``, ``lon``, ``user_id``, ``posted_at`` ISO 8601
  UTC, ``split``, plus ``taken_at`` and ``outdoor`` when known).
* ``dataset.json`` has ``"images": "shards"`` and ``"shards"``: the list of
  relative tar paths.

Corrupt, truncated or missing images are skipped and reported, never fatal.
Each finished shard is recorded in a checkpoint, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.checkpoint import load_checkpoint
from trigeo.data.images import BadImageError, ShardIndex, encode_resized
from trigeo.data.report import ImportReport
from trigeo.data.split import keep_meta
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import atomic_path, make_provenance, write_json_atomic

__all__ = ["REPORT_FILE", "shard_dataset"]

REPORT_FILE = "shard-report.json"
_STATE_FILE = ".shard-state.json"


def _sample_json(row: pd.Series) -> bytes:
    record: dict[str, Any] = {
        "photo_id": str(row["photo_id"]),
        "lat": float(row["lat"]),
        "lon": float(row["lon"]),
        "user_id": str(row["user_id"]),
        "posted_at": pd.Timestamp(row["posted_at"]).isoformat(),
        "split": str(row["split"]),
    }
    if pd.notna(row["taken_at"]):
        record["taken_at"] = pd.Timestamp(row["taken_at"]).isoformat()
    if pd.notna(row["outdoor"]):
        record["outdoor"] = float(row["outdoor"])
    return json.dumps(record, sort_keys=True).encode()


def shard_dataset(
    root: str | Path,
    out: str | Path,
    *,
    shard_size: int = 10_000,
    max_side: int | None = 512,
    quality: int = 90,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, ImportReport]:
    """Write the images of dataset ``root`` into tar shards in dataset ``out``.

    Parameters
    ----------
    root
        Source dataset directory (images in a folder, or already sharded).
    out
        Output dataset directory (must differ from ``root``).
    shard_size
        Samples per shard (before skipping bad images).
    max_side
        Longer image side after resizing; ``None`` keeps the size.
    quality
        JPEG quality of re-encoded images.
    workers
        Threads decoding and re-encoding images.
    progress
        Called with the number of input rows processed after each chunk.

    Returns
    -------
    (Dataset, ImportReport)
    """
    from webdataset import TarWriter

    root, out = Path(root), Path(out)
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    if max_side is not None and max_side < 8:
        raise InputError(f"max_side must be >= 8, got {max_side}")
    if out.resolve() == root.resolve():
        raise InputError("the output directory must differ from the input dataset", source=out)
    source = Dataset.open(root)
    table = source.table
    n = len(table)
    width = max(9, len(str(n - 1)))
    n_shards = math.ceil(n / shard_size)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    config = {
        "stage": "data.shard",
        "shard_size": shard_size,
        "max_side": max_side,
        "quality": quality,
    }
    state_path = out / _STATE_FILE
    state = load_checkpoint(state_path, {**config, "source": source.hash}, {"done": {}})
    report = ImportReport("data.shard", root)
    reader = ShardIndex(root)

    images = [str(value) for value in table["image"].tolist()]

    def process(i: int) -> bytes | BadImageError:
        return _encode(images[i], reader, max_side, quality)

    kept: list[int] = []
    shards: list[str] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for s in range(n_shards):
            name = f"shards/shard-{s:06d}.tar"
            rows = range(s * shard_size, min((s + 1) * shard_size, n))
            done = state["done"].get(name)
            if done is not None and (out / name).exists():
                written, skipped = done["rows"], done["skipped"]
            else:
                written, skipped = [], []
                with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
                    writer = TarWriter(handle, mtime=0.0, user="trigeo", group="trigeo")
                    for i, result in zip(rows, pool.map(process, rows), strict=True):
                        if isinstance(result, BadImageError):
                            skipped.append([i, result.reason, result.detail])
                            continue
                        row = table.iloc[i]
                        writer.write(
                            {"__key__": f"{i:0{width}d}", "jpg": result, "json": _sample_json(row)}
                        )
                        written.append(i)
                    writer.close()
                if not written:
                    (out / name).unlink()
                state["done"][name] = {"rows": written, "skipped": skipped}
                write_json_atomic(state_path, state)
            report.read += len(rows)
            for i, reason, detail in skipped:
                report.skip(reason, where=f"row {i + 1}", detail=detail)
            if written:
                shards.append(name)
                kept.extend(written)
            if progress:
                progress(len(rows))

    report.written = len(kept)
    if not kept:
        report.write(out / REPORT_FILE)
        raise InputError(f"no usable image among {n} photos; see {out / REPORT_FILE}", source=root)
    result = _sharded_table(table, kept, shard_size, width)
    meta = {k: v for k, v in keep_meta(source.meta).items() if k not in ("images", "shards")}
    meta.update(images="shards", shards=shards, max_side=max_side)
    provenance = make_provenance(
        config, {"table.parquet": source.hash}, parent=source.meta.get("provenance")
    )
    dataset = Dataset.write(out, result.reset_index(drop=True), provenance, **meta)
    report.notes["shards"] = len(shards)
    report.write(out / REPORT_FILE)
    state_path.unlink(missing_ok=True)
    return dataset, report


def _encode(
    image: str, reader: ShardIndex, max_side: int | None, quality: int
) -> bytes | BadImageError:
    """One image re-encoded for a shard, or why it cannot be."""
    if "://" in image:
        return BadImageError("remote image", f"{image} (run `trigeo data download` first)")
    try:
        data = reader.read(image)
    except FileNotFoundError:
        return BadImageError("missing file", image)
    except (OSError, KeyError) as exc:
        return BadImageError("unreadable file", f"{image}: {exc}")
    try:
        return encode_resized(data, max_side=max_side, quality=quality)[0]
    except BadImageError as exc:
        return BadImageError(exc.reason, f"{image}: {exc.detail}")


def _sharded_table(
    table: pd.DataFrame, kept: list[int], shard_size: int, width: int
) -> pd.DataFrame:
    """The rows written to shards, their ``image`` pointing at their tar sample."""
    index = np.asarray(kept, dtype=np.int64)
    result = table.iloc[index].copy()
    shard_of = index // shard_size
    result["image"] = [
        f"shards/shard-{s:06d}.tar#{i:0{width}d}" for s, i in zip(shard_of, index, strict=True)
    ]
    return result
