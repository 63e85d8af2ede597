"""``trigeo predict``: a saved model (M1, M2 or M3) over image files or a split -> predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trigeo import options
from trigeo.answer import DEFAULT_ANSWER, INDEX_ANSWERS, Answer
from trigeo.options import (
    Accelerator,
    BatchSize,
    Devices,
    MaxUnreadable,
    Neighbours,
    Progress,
    Threads,
    Workers,
)

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]predict[/cyan] {message}", highlight=False)


def predict(
    model: Annotated[
        list[Path], options.model("M1, M2 or M3 model directory (several M1s with --hierarchical).")
    ],
    out: Annotated[Path, options.out("Predictions Parquet file.")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Image files or folders of images."),
    ] = None,
    data: Annotated[Path | None, options.data("Dataset directory (instead of images).")] = None,
    split: Annotated[str, options.split()] = "val",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Display name in the file (default: the model's name)."),
    ] = None,
    max_unreadable: MaxUnreadable = 0.05,
    top_k: Annotated[int, typer.Option("--top-k", help="Cells kept per photo.")] = 20,
    five_crop: Annotated[
        bool, typer.Option("--five-crop", help="Average over 4 corner + center crops.")
    ] = False,
    full_probs: Annotated[
        bool, typer.Option("--full-probs", help="Also write every cell's probability.")
    ] = False,
    batch_size: BatchSize = 64,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    show: Annotated[int, typer.Option(help="Cells shown per image (image mode).")] = 3,
    progress: Progress = True,
    m1_pred: Annotated[
        Path | None,
        typer.Option(
            "--m1-pred",
            help="M2/M3: M1's predictions for the same photos (default: run the head's M1).",
        ),
    ] = None,
    m1: Annotated[
        Path | None,
        typer.Option("--m1", help="M2/M3: the M1 directory, if it moved since training."),
    ] = None,
    hierarchical: Annotated[
        bool,
        typer.Option(
            "--hierarchical",
            help="Combine several M1 --model dirs: the finest mesh's cells, weighted by the "
            "coarser meshes' probabilities.",
        ),
    ] = False,
    head: Annotated[
        list[str] | None,
        typer.Option(
            "--head",
            metavar="<name>",
            help="Multi-head M1: predict only this head (default: every head, one file each, "
            "<out stem>-<head>.parquet); with --hierarchical, repeat it to choose the heads.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            help="M1: report cells at this label point, imagery or cell (default: the model's).",
        ),
    ] = None,
    answer: Annotated[
        Answer,
        typer.Option(
            "--answer",
            help="The reported point: top-cell (the top cell's label point), geoscore "
            "(maximises the expected GeoScore over the top-k cells), median (minimises the "
            "expected distance), refine (retrieval inside the top cells; needs --index) or "
            "knn (the kNN predictor; needs --index). The cells and probabilities written "
            "are the same for every rule.",
        ),
    ] = DEFAULT_ANSWER,
    index: Annotated[
        Path | None,
        options.index("Retrieval index directory (trigeo index build) for --answer refine or knn."),
    ] = None,
    knn: Annotated[
        Path | None,
        typer.Option(
            "--knn",
            hidden=True,
            help="Renamed: --answer knn --index INDEX.",
        ),
    ] = None,
    knn_k: Neighbours = 10,
    cpu_threads: Threads = None,
    posted_at: Annotated[
        str | None,
        typer.Option(
            "--posted-at",
            help="M2/M3 on image files: posting time, ISO 8601 with an offset "
            "(default: EXIF DateTimeOriginal + OffsetTimeOriginal).",
        ),
    ] = None,
) -> None:
    """Predict where photos were taken with a trained M1, M2 or M3 model (or kNN)."""
    from trigeo.answer import check_answer
    from trigeo.errors import InputError
    from trigeo.predict.run import predict_model
    from trigeo.runtime.devices import parse_devices

    rule = answer.value
    if knn is not None:
        console.print(
            "[yellow]predict:[/yellow] --knn INDEX is renamed to --answer knn --index INDEX",
            highlight=False,
        )
        if index is not None and index != knn:
            raise InputError("--knn and --index name two different indexes; give --index only")
        index, rule = knn, "knn"
    check_answer(rule, has_index=index is not None)
    if index is not None and rule not in INDEX_ANSWERS:
        raise InputError(
            f"--index is read by --answer refine or knn, not --answer {rule}; add one of them"
        )

    common = {
        "images": images or None,
        "data": data,
        "split": None if split == "all" else split,
        "name": name,
        "max_unreadable": max_unreadable,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "accelerator": accelerator,
        "devices": parse_devices(devices) or "auto",
        "progress": progress,
        "report": _report,
    }
    # refine runs the classifier with the top-cell answer, then rewrites the points.
    cell_rule = rule if rule not in INDEX_ANSWERS else "top-cell"
    if rule == "knn":
        _predict_knn(model, m1, index, out, knn_k, common)
        return
    if hierarchical:
        from trigeo.predict.hierarchical import predict_hierarchical

        result: Any = predict_hierarchical(
            model,
            out,
            heads=head,
            top_k=top_k,
            answer=cell_rule,
            five_crop=five_crop,
            cpu_threads=cpu_threads,
            **common,
        )
        if rule == "refine":
            files = result.outputs() if result is not None else []
            _refine(files, index, [*model, m1], knn_k, common, out)
        return
    if head and len(head) > 1:
        raise InputError("give one --head (several are for --hierarchical)")
    if len(model) != 1:
        raise InputError(f"{len(model)} --model directories given; pass one, or --hierarchical")
    (model_dir,) = model
    result = predict_model(
        model_dir,
        out,
        top_k=top_k,
        full_probs=full_probs,
        m1_pred=m1_pred,
        m1_dir=m1,
        posted_at=posted_at,
        head=head[0] if head else None,
        label=label,
        answer=cell_rule,
        five_crop=five_crop,
        cpu_threads=cpu_threads,
        **common,
    )
    if rule == "refine":
        # Every DDP rank joins the embedding pass; only rank 0 has files to rewrite.
        files = result.outputs() if result is not None else []
        refined = _refine(files, index, [model_dir, m1], knn_k, common, out)
        primary = refined.get(result.path) if result is not None else None
        if primary is not None:
            result.lat, result.lon = primary.lat, primary.lon
    if result is not None and data is None:
        _print_summary(result, show, rule)


def _predict_knn(
    model: list[Path], m1: Path | None, index: Path | None, out: Path, k: int, common: dict
) -> None:
    """``--answer knn``: the kNN predictor over the index, with the index's M1."""
    # The kNN predictor lives downstream of predict (in retrieve); the CLI joins them.
    from trigeo.models.registry import model_dir_format
    from trigeo.predictions import rewrite_answer
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.retrieve.knn import KNN_RADIUS_KM, predict_knn
    from trigeo.retrieve.refine import index_model_dir

    assert index is not None
    if len(model) == 1 and model_dir_format(model[0]) == "trigeo-m1/1":
        # The M1 given answers (and is refused when the index holds another's descriptors).
        m1_dir = model[0]
    else:
        # An M2/M3 or a hierarchical set: kNN runs on the M1 the index was built with.
        m1_dir = index_model_dir(RetrievalIndex.load(index), [*model, m1])
    result = predict_knn(m1_dir, index, out, k=k, **common)
    if result is not None:
        rewrite_answer(
            out,
            result.lat,
            result.lon,
            answer="knn",
            params={"k": k, "radius_km": KNN_RADIUS_KM, "index": str(index)},
        )


def _refine(
    files: list[tuple[Path, Any]],
    index: Path | None,
    candidates: list[Path | None],
    k: int,
    common: dict,
    out: Path,
) -> dict[Path, Any]:
    """``--answer refine``: rewrite the written files' points by retrieval in their top cells."""
    from trigeo.retrieve.refine import refine_predictions

    assert index is not None
    return refine_predictions(files, index, out=out, model_candidates=candidates, k=k, **common)


def _print_summary(result: Any, show: int, rule: str) -> None:
    """Image mode: each photo's top cells, and its answer when another rule chose it."""
    from rich.table import Table

    from trigeo.predict.m1 import nearest_place, summary_rows

    table = Table(title=f"{result.model_name}: most probable places")
    for name in ("photo", "rank", "nearest city", "probability", "lat", "lon"):
        table.add_column(name, justify="right" if name in ("rank", "probability") else "left")
    for photo, rank, place, prob, lat, lon in summary_rows(result, show):
        table.add_row(str(photo), str(rank), place, f"{prob:.3f}", f"{lat:.3f}", f"{lon:.3f}")
    Console().print(table)
    if rule == "top-cell":
        return  # rank 1 is the answer
    answers = Table(title=f"{result.model_name}: answer by {rule}")
    for name in ("photo", "nearest city", "lat", "lon"):
        answers.add_column(name)
    for photo, lat, lon in zip(result.photo_id, result.lat, result.lon, strict=True):
        answers.add_row(
            str(photo), nearest_place(float(lat), float(lon)), f"{lat:.3f}", f"{lon:.3f}"
        )
    Console().print(answers)
