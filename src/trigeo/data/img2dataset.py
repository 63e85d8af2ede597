"""Downloads at scale through img2dataset: its input list, and its output read in place.

`img2dataset <https://github.com/rom1504/img2dataset>`_ is the field's downloader
(YFCC100M, MP-16, LAION-scale sets): processes and threads on one machine, or
Spark or Ray over many. It cannot share trigeo's environment (it pins
``webdataset<0.3`` and ``pandas<3``), so trigeo speaks its formats instead of
importing it:

* :func:`write_url_list` (``trigeo data urls``) writes its input: a Parquet
  file with one row per photo whose ``image`` is still a URL, columns ``url``
  and ``photo_id``. Run img2dataset on it with
  ``--save_additional_columns '["photo_id"]'`` so every sample carries its
  photo id back (:func:`img2dataset_command` prints the command).
* :func:`attach_img2dataset` (``trigeo data images --from-img2dataset``)
  points the dataset's ``image`` column into img2dataset's output folder,
  which stays where it is (no image is copied):

  - ``--output_format webdataset``: ``NNNNN.tar`` holding ``KEY.jpg``,
    ``KEY.json`` and, with a caption column, ``KEY.txt``; rows become
    ``<link>/NNNNN.tar#KEY``, the tar reference trigeo's loaders read
    (:class:`trigeo.data.loading.ImageReader`);
  - ``--output_format files``: ``NNNNN/KEY.jpg`` beside ``NNNNN/KEY.json``;
    rows become the plain path ``<link>/NNNNN/KEY.jpg``.

  ``<link>`` is the output folder's path inside the dataset, or, for a folder
  elsewhere, a symbolic link ``img2dataset`` (``img2dataset-2``... for
  further folders) made inside the dataset, as ``trigeo data csv`` links
  its image root.

The photo id of each sample is read from its ``.json``. Every shard also has
``NNNNN.parquet`` (one row per URL, with ``status`` and ``error_message``)
and ``NNNNN_stats.json`` (counts, written when the shard is finished): the
failures are reported by reason from them, as ``trigeo data download``
reports dead links. A shard without its stats file was cut off (img2dataset
is still running, or was interrupted): it is left out and named, and running
the same img2dataset command again finishes it.

Failed photos keep their URL (so ``trigeo data urls`` lists just them for
another run) unless ``drop_failed`` removes them. A run in which at most half
of the attempted photos can be attached stops with an error and leaves the
table alone: that is a wrong ``--data`` or a dead URL source far more often
than a usable result.

The code is split by job: :mod:`trigeo.data.img2dataset_input` (the URL list,
the command, the Spark script), :mod:`trigeo.data.img2dataset_shards` (the
output layouts and tar headers) and :mod:`trigeo.data.img2dataset_status`
(the status and stats files, the failures); this module attaches the output
to the table and re-exports the public names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from trigeo.data.img2dataset_input import img2dataset_command, spark_script, write_url_list
from trigeo.data.img2dataset_shards import _find_shards
from trigeo.data.img2dataset_shards import _tarfile_members as _tarfile_members
from trigeo.data.img2dataset_shards import _ustar_members as _ustar_members
from trigeo.data.img2dataset_status import _Outcome, _read_output, _write_failed
from trigeo.data.report import ImportReport
from trigeo.data.split import keep_meta
from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.provenance import make_provenance

__all__ = [
    "FAILED_FILE",
    "LINK_NAME",
    "REPORT_FILE",
    "attach_img2dataset",
    "img2dataset_command",
    "spark_script",
    "write_url_list",
]

REPORT_FILE = "img2dataset-report.json"
FAILED_FILE = "img2dataset-failed.csv"
LINK_NAME = "img2dataset"
"""Name of the link, inside the dataset, to an output folder that lies elsewhere."""

#: More than this share of attempted photos not attached stops the run.
MAX_FAILED_SHARE = 0.5


def _plan_link(root: Path, source: Path) -> str:
    """The output folder's path as the dataset's rows will reach it.

    Its path inside the dataset when it lies there; else the name of a link in
    the dataset: the existing one to the same folder, or the first free
    ``img2dataset``, ``img2dataset-2``, ... (:func:`_make_link` makes it).
    """
    target, base = source.resolve(), root.resolve()
    if target.is_relative_to(base):
        return target.relative_to(base).as_posix()
    for n in range(1, 1000):
        name = LINK_NAME if n == 1 else f"{LINK_NAME}-{n}"
        link = root / name
        if not (link.is_symlink() or link.exists()) or link.resolve() == target:
            return name
    raise InputError(f"no free link name {LINK_NAME}-N for {target}", source=root)


def _make_link(root: Path, source: Path, prefix: str) -> None:
    """Make ``root/prefix`` a link to ``source`` unless the rows reach it already."""
    link, target = root / prefix, source.resolve()
    if link.resolve() == target:
        return
    # Made under a temporary name and renamed: a crash never leaves a half-made link.
    tmp = root / f".{prefix}.{os.getpid()}.link"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def attach_img2dataset(
    data: str | Path,
    source: str | Path,
    *,
    drop_failed: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Dataset, ImportReport]:
    """Point dataset ``data``'s ``image`` column into img2dataset's output ``source``.

    Parameters
    ----------
    data
        Dataset directory; its table is rewritten in place.
    source
        img2dataset's ``--output_folder`` (webdataset or files output), read
        in place: nothing is copied.
    drop_failed
        Remove the rows whose download failed (else they keep their URL).
    progress
        Called with 1 after each shard.

    Returns
    -------
    (Dataset, ImportReport)
        The report (``img2dataset-report.json`` in the dataset) counts the
        attempted photos (``read``), the attached ones (``written``) and the
        others by reason; ``img2dataset-failed.csv`` lists the failed photos.

    Raises
    ------
    InputError
        If the folder holds no img2dataset output, a sample carries no photo
        id, or at most half of the attempted photos could be attached (the
        table is then left untouched; the report says why).
    """
    root, source = Path(data), Path(source)
    if not source.is_dir():
        raise InputError(
            "not a folder: give the folder passed as img2dataset's --output_folder", source=source
        )
    dataset = Dataset.open(root)
    report = ImportReport("data.images", source.resolve())
    shards = _find_shards(source)
    report.notes["shards"] = len(shards)
    # The link's name is chosen before the scan (rows are written with it) but made
    # only once the output proved usable.
    prefix = _plan_link(root, source)
    outcome = _read_output(source, shards, prefix, report, progress)
    report.read = outcome.attempted
    report.notes["img2dataset_stats"] = outcome.stats
    if outcome.incomplete:
        report.notes["unfinished_shards"] = outcome.incomplete

    # No copy: ``dataset`` is replaced by the one written below.
    table = dataset.table
    position = pd.Index(table["photo_id"].to_numpy(dtype=object))
    images, attached = _match(table, position, outcome, report)
    _write_failed(root / FAILED_FILE, outcome)
    _check_enough(root, source, outcome, report)

    _make_link(root, source, prefix)
    urls = table["image"].str.contains("://", regex=False).to_numpy()
    keep = np.ones(len(table), dtype=bool)
    if drop_failed:
        failed_ids = [p for p, *_ in outcome.failed if p is not None]
        failed_rows = position.get_indexer(failed_ids) if failed_ids else np.empty(0, np.int64)
        failed_rows = failed_rows[failed_rows >= 0]
        # Only rows still waiting on a URL go: one attached from another folder stays.
        keep[failed_rows[urls[failed_rows] & ~attached[failed_rows]]] = False
    table["image"] = images
    table = table[keep].reset_index(drop=True)
    remaining = int(table["image"].str.contains("://", regex=False).sum())
    report.notes["dropped_rows"] = int((~keep).sum())
    report.notes["remaining_urls"] = remaining

    layout = outcome.layout
    meta = keep_meta(dataset.meta)
    sources = [s for s in meta.get("img2dataset", []) if s.get("link") != prefix]
    sources.append(
        {"link": prefix, "path": str(source.resolve()), "layout": layout, "photos": report.written}
    )
    meta["img2dataset"] = sources
    meta["images"] = "mixed" if remaining else ("shards" if layout == "webdataset" else "folder")
    config = {"stage": "data.images", "source": str(source.resolve()), "drop_failed": drop_failed}
    provenance = make_provenance(
        config, {"table.parquet": dataset.hash}, parent=dataset.meta.get("provenance")
    )
    dataset = Dataset.write(root, table, provenance, **meta)
    report.write(root / REPORT_FILE)
    return dataset, report


def _match(
    table: pd.DataFrame, position: pd.Index, outcome: _Outcome, report: ImportReport
) -> tuple[np.ndarray, np.ndarray]:
    """The ``image`` column with the samples' references, and which rows got one."""
    ids = outcome.photo_ids
    rows = position.get_indexer(ids) if ids else np.empty(0, dtype=np.int64)
    images = table["image"].to_numpy(dtype=object).copy()
    attached = np.zeros(len(table), dtype=bool)
    for ref, photo_id, row in zip(outcome.refs, ids, rows.tolist(), strict=True):
        if row < 0:
            detail = f"photo_id {photo_id!r} (was the URL list written from this --data?)"
            report.skip("photo id not in the dataset", where=ref, detail=detail)
        elif attached[row]:
            report.skip("duplicate photo id", where=ref, detail=f"photo {photo_id}")
        else:
            attached[row] = True
            images[row] = ref
    report.written = int(attached.sum())
    return images, attached


def _check_enough(root: Path, source: Path, outcome: _Outcome, report: ImportReport) -> None:
    """Stop, with the report written, when at most half of the attempted photos attach."""
    if report.written > (1 - MAX_FAILED_SHARE) * report.read and report.written > 0:
        return
    report_path = report.write(root / REPORT_FILE)
    reasons = ", ".join(f"{r} ({n})" for r, n in report.skipped.most_common(3)) or "none"
    if outcome.incomplete:
        reasons += f"; {len(outcome.incomplete)} unfinished shard(s) left out"
    raise InputError(
        f"only {report.written} of {report.read} attempted photos could be attached "
        f"(most common reasons: {reasons}); the table is unchanged, see {report_path} "
        f"and {root / FAILED_FILE}",
        source=source,
    )
