"""Photo datasets: the table schema, importers, splits, shards and the synthetic world.

Entry points (all importable without torch):

* :func:`trigeo.data.synth.make_world`: the built-in synthetic dataset.
* :func:`trigeo.data.split.split_photos` / :func:`~trigeo.data.split.split_dataset`.
* :func:`trigeo.data.shard.shard_dataset`: webdataset tar shards.
* :func:`trigeo.data.yfcc.import_yfcc`, :func:`trigeo.data.photos.import_photos`,
  :func:`trigeo.data.download.download_images`: importers.
"""

from trigeo.data.split import split_dataset, split_photos
from trigeo.data.table import COLUMNS, SCHEMA, SPLITS, Dataset, TableWriter, validate_table

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
