"""Photo datasets: the table schema, importers, splits, shards and the synthetic world.

Entry points (all importable without torch):

* :func:`trigeo.data.synth.make_world`: the built-in synthetic dataset.
* :func:`trigeo.data.split.split_photos` / :func:`~trigeo.data.split.split_dataset`.
* :func:`trigeo.data.shard.shard_dataset`: webdataset tar shards.
* :func:`trigeo.data.yfcc.import_yfcc`, :func:`trigeo.data.photos.import_photos`,
  :func:`trigeo.data.download.download_images`: importers.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports: `trigeo --help` imports trigeo.data.cli, which must not pull in
# pandas and pyarrow just to print help.
_EXPORTS = {
    "COLUMNS": "trigeo.data.table",
    "SCHEMA": "trigeo.data.table",
    "SPLITS": "trigeo.data.table",
    "Dataset": "trigeo.data.table",
    "TableWriter": "trigeo.data.table",
    "validate_table": "trigeo.data.table",
    "split_dataset": "trigeo.data.split",
    "split_photos": "trigeo.data.split",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trigeo.data' has no attribute {name!r}")


__all__ = [
    "COLUMNS",
    "SCHEMA",
    "SPLITS",
    "Dataset",
    "TableWriter",
    "split_dataset",
    "split_photos",
    "validate_table",
]
