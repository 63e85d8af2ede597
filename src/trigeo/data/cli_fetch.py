"""``trigeo data download / urls / images``: fetch a dataset's images, or attach img2dataset's.

Registered on :data:`trigeo.data.cli.app` (imported at the end of that module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trigeo import options
from trigeo.data.cli import _table_column, _track, app, console


@app.command()
def download(
    data: Annotated[Path, options.data("Dataset whose image column holds URLs.")],
    workers: Annotated[int, options.workers("Concurrent downloads.")] = 16,
    retries: Annotated[int, typer.Option(help="Retries after a transient failure.")] = 3,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 20.0,
    backoff: Annotated[float, typer.Option(help="First retry delay (doubles).")] = 1.0,
    drop_failed: Annotated[
        bool, typer.Option("--drop-failed", help="Remove rows whose image failed.")
    ] = False,
    out: Annotated[
        Path | None, options.out("Then write webdataset shards to this dataset directory.")
    ] = None,
) -> None:
    """Fetch images into local files (resumable; dead links reported).

    A thread pool on one machine, for small sets. For large ones (millions of
    images, or more than one machine) use img2dataset: `trigeo data urls`
    writes its input, `trigeo data images --from-img2dataset` attaches its output.
    """
    import pyarrow.compute as pc

    from trigeo.data.download import DEAD_FILE, REPORT_FILE, download_images

    images = _table_column(data, "image")
    _, report = _track(
        "downloading",
        None if images is None else pc.sum(pc.match_substring(images, "://")).as_py(),
        download_images,
        data,
        workers=workers,
        retries=retries,
        timeout=timeout,
        backoff=backoff,
        drop_failed=drop_failed,
    )
    report.print_summary(console, data / REPORT_FILE)
    if report.n_skipped:
        console.print(f"dead links: {data / DEAD_FILE}")
    if out is not None:
        from trigeo.data.shard import REPORT_FILE as SHARD_REPORT
        from trigeo.data.shard import shard_dataset

        _, shard_report = shard_dataset(data, out)
        shard_report.print_summary(console, out / SHARD_REPORT)


@app.command()
def urls(
    data: Annotated[Path, options.data("Dataset whose image column holds URLs.")],
    out: Annotated[Path, options.out("Parquet file to write (img2dataset's --url_list).")],
) -> None:
    """Write img2dataset's input: url and photo_id of every photo whose image is a URL.

    img2dataset downloads millions of images on one machine or over a Spark or
    Ray cluster; `trigeo data images --from-img2dataset` then attaches its
    output in place. On one machine:

    \b
      img2dataset --url_list urls.parquet --input_format parquet \\
        --url_col url --save_additional_columns '["photo_id"]' \\
        --output_format webdataset --output_folder shards \\
        --processes_count 16 --thread_count 64 --image_size 512 \\
        --resize_mode keep_ratio_largest --resize_only_if_bigger True

    On a Spark cluster, call img2dataset's download() with the same arguments
    and distributor="pyspark" from a script run by spark-submit (this command
    prints one), with the list and --output_folder on storage every executor
    reaches; docs/datasets.md has both.
    """
    from rich.markup import escape

    from trigeo.data.img2dataset import img2dataset_command, spark_script, write_url_list

    counts = write_url_list(data, out)
    console.print(
        f"[green]wrote[/green] {escape(str(out))}: {counts['urls']} URLs "
        f"({counts['local']} of {counts['rows']} rows have their image already)"
    )
    folder = out.with_name(f"{out.stem}-img2dataset")
    console.print("download on one machine:", soft_wrap=True)
    console.print(escape(img2dataset_command(out, folder)), soft_wrap=True, highlight=False)
    console.print("on a Spark cluster (spark-submit this script; shared storage paths):")
    console.print(
        escape(spark_script(f"hdfs:///trigeo/{out.name}", f"hdfs:///trigeo/{folder.name}")),
        soft_wrap=True,
        highlight=False,
    )
    attach = f"trigeo data images --data {data} --from-img2dataset {folder}"
    console.print(f"then: {escape(attach)}", soft_wrap=True, highlight=False)


@app.command()
def images(
    data: Annotated[Path, options.data("Dataset to attach the images to (rewritten in place).")],
    from_img2dataset: Annotated[
        Path,
        typer.Option(
            "--from-img2dataset",
            help="img2dataset's --output_folder (webdataset or files output), read in place.",
        ),
    ],
    drop_failed: Annotated[
        bool,
        typer.Option(
            "--drop-failed",
            help="Remove rows whose download failed (else they keep the URL for another run).",
        ),
    ] = False,
) -> None:
    """Attach downloaded images to a dataset without copying them.

    Rows whose photo img2dataset fetched point into its shards (NNNNN.tar#KEY)
    or files; failed downloads are reported by reason from its status files.
    A run in which at most half of the photos can be attached stops with an
    error and leaves the table unchanged.
    """
    from rich.markup import escape

    from trigeo.data.img2dataset import FAILED_FILE, REPORT_FILE, attach_img2dataset

    dataset, report = _track(
        "attaching shards",
        None,
        attach_img2dataset,
        data,
        from_img2dataset,
        drop_failed=drop_failed,
    )
    report.print_summary(console, data / REPORT_FILE)
    if report.n_skipped:
        console.print(f"failed downloads: {escape(str(data / FAILED_FILE))}")
    unfinished = report.notes.get("unfinished_shards")
    if unfinished:
        console.print(
            f"[yellow]{len(unfinished)} unfinished shard(s) left out[/yellow] "
            f"(e.g. {unfinished[0]}): run the same img2dataset command again to finish them"
        )
    remaining = report.notes["remaining_urls"]
    console.print(
        f"[green]attached[/green] {report.written} photos; {len(dataset.table)} rows, "
        f"{remaining} still URLs"
    )
    if remaining:
        # Training refuses URL rows: say both ways out.
        console.print(
            "training needs every image local: `trigeo data urls` lists just the URL rows "
            "for another img2dataset run, or attach again with --drop-failed"
        )
