"""img2dataset's input: the URL list, and the command or Spark script that downloads it.

Part of :mod:`trigeo.data.img2dataset`, which re-exports these names and
describes the whole round trip.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trigeo.data.table import TABLE_FILE
from trigeo.errors import ArtifactError, InputError
from trigeo.provenance import atomic_path

__all__ = ["img2dataset_command", "spark_script", "write_url_list"]


def write_url_list(data: str | Path, out: str | Path) -> dict[str, int]:
    """Write img2dataset's input for dataset ``data``: ``url`` and ``photo_id`` per photo.

    A row is listed when its ``image`` holds a URL (contains ``://``), the rule
    ``trigeo data download`` uses; rows with a local image or one already
    attached are left out, so after a partial download the list holds just
    what is still missing.

    Parameters
    ----------
    data
        Dataset directory.
    out
        Parquet file to write (atomically).

    Returns
    -------
    dict
        ``rows`` in the table, ``urls`` written, ``local`` left out.

    Raises
    ------
    InputError
        If no row's image is a URL (nothing to download).
    """
    root, out = Path(data), Path(out)
    table_path = root / TABLE_FILE
    if not table_path.exists():
        raise ArtifactError(f"{root}: no {TABLE_FILE}; is this a trigeo dataset directory?")
    # Two columns through Arrow: a 14M-row table is never converted to pandas here.
    try:
        table = pq.read_table(table_path, columns=["photo_id", "image"])
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise ArtifactError(f"{table_path}: cannot read photo_id and image ({exc})") from exc
    images = table.column("image")
    remote = pc.fill_null(pc.match_substring(images, "://"), False)
    n_urls = int(pc.sum(remote).as_py() or 0)
    if n_urls == 0:
        raise InputError(
            f"no image of the {table.num_rows} rows is a URL: nothing for img2dataset to "
            "download (the images are local or attached already)",
            source=table_path,
            column="image",
        )
    picked = table.filter(remote)
    urls = pa.table(
        {
            "url": picked.column("image").cast(pa.string()),
            "photo_id": picked.column("photo_id").cast(pa.string()),
        }
    )
    with atomic_path(out, suffix=".parquet") as tmp:
        pq.write_table(urls, tmp, compression="zstd")
    return {"rows": table.num_rows, "urls": n_urls, "local": table.num_rows - n_urls}


def img2dataset_command(
    url_list: str | Path,
    output_folder: str | Path,
    *,
    output_format: str = "webdataset",
    processes: int = 16,
    threads: int = 64,
    image_size: int = 512,
) -> str:
    """The img2dataset command that downloads ``url_list`` on one machine.

    The flags are img2dataset's own (``img2dataset --help``). Images keep their
    aspect ratio and are only shrunk, to ``image_size`` on the longer side
    (``keep_ratio_largest``, ``resize_only_if_bigger``): its default
    ``border`` mode would pad every photo to a square, and a crop would cut
    away the clues a geolocator reads.
    """
    args = [
        "img2dataset",
        "--url_list",
        str(url_list),
        "--input_format",
        "parquet",
        "--url_col",
        "url",
        "--save_additional_columns",
        '["photo_id"]',
        "--output_format",
        output_format,
        "--output_folder",
        str(output_folder),
        "--processes_count",
        str(processes),
        "--thread_count",
        str(threads),
        "--image_size",
        str(image_size),
        "--resize_mode",
        "keep_ratio_largest",
        "--resize_only_if_bigger",
        "True",
        "--retries",
        "2",
        "--timeout",
        "20",
    ]
    return shlex.join(args)


def spark_script(url_list: str, output_folder: str, *, image_size: int = 512) -> str:
    """A Python script that downloads ``url_list`` over a Spark cluster.

    ``--distributor pyspark`` on the command line only starts a local Spark
    session (``local[processes_count]``); img2dataset uses a cluster when the
    calling process already holds a session on it, so the download runs from
    a script started with ``spark-submit``. ``url_list`` and ``output_folder``
    should be shared storage (``hdfs://``, ``s3://`` or a network mount) every
    executor reaches.
    """
    return (
        "from pyspark.sql import SparkSession\n"
        "from img2dataset import download\n\n"
        'spark = SparkSession.builder.appName("trigeo-img2dataset").getOrCreate()\n'
        "download(\n"
        f"    url_list={json.dumps(url_list)},\n"
        '    input_format="parquet",\n'
        '    url_col="url",\n'
        '    save_additional_columns=["photo_id"],\n'
        '    output_format="webdataset",\n'
        f"    output_folder={json.dumps(output_folder)},\n"
        f"    image_size={image_size},\n"
        '    resize_mode="keep_ratio_largest",\n'
        "    resize_only_if_bigger=True,\n"
        "    processes_count=16,  # per executor\n"
        "    thread_count=64,\n"
        '    distributor="pyspark",\n'
        "    number_sample_per_shard=10000,\n"
        "    retries=2,\n"
        ")\n"
    )
