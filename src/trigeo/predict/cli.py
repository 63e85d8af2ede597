"""``trigeo predict``: a saved model (M1, M2 or M3) over image files or a split -> predictions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from trigeo.runtime.options import InferenceOptions

console = Console(stderr=True)


def _report(message: str) -> None:
    console.print(f"[cyan]predict[/cyan] {message}", highlight=False)


# The command's own options (the shared ones come from trigeo.options).
ModelDirs = Annotated[
    list[Path], options.model("M1, M2 or M3 model directory (several M1s with --hierarchical).")
]
Out = Annotated[Path, options.out("Predictions Parquet file.")]
Images = Annotated[
    list[Path] | None,
    typer.Argument(help="Image files or folders of images."),
]
Data = Annotated[Path | None, options.data("Dataset directory (instead of images).")]
Split = Annotated[str, options.split()]
Name = Annotated[
    str | None,
    typer.Option("--name", help="Display name in the file (default: the model's name)."),
]
TopK = Annotated[int, typer.Option("--top-k", help="Cells kept per photo.")]
FiveCrop = Annotated[
    bool, typer.Option("--five-crop", help="Average over 4 corner + center crops.")
]
FullProbs = Annotated[
    bool, typer.Option("--full-probs", help="Also write every cell's probability.")
]
Show = Annotated[int, typer.Option(help="Cells shown per image (image mode).")]
M1Pred = Annotated[
    Path | None,
    typer.Option(
        "--m1-pred",
        help="M2/M3: M1's predictions for the same photos (default: run the head's M1).",
    ),
]
M1Dir = Annotated[
    Path | None,
    typer.Option("--m1", help="M2/M3: the M1 directory, if it moved since training."),
]
Hierarchical = Annotated[
    bool,
    typer.Option(
        "--hierarchical",
        help="Combine several M1 --model dirs: the finest mesh's cells, weighted by the "
        "coarser meshes' probabilities.",
    ),
]
Head = Annotated[
    list[str] | None,
    typer.Option(
        "--head",
        metavar="<name>",
        help="Multi-head M1: predict only this head (default: every head, one file each, "
        "<out stem>-<head>.parquet); with --hierarchical, repeat it to choose the heads.",
    ),
]
Label = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="M1: report cells at this label point, imagery or cell (default: the model's).",
    ),
]
AnswerRule = Annotated[
    Answer,
    typer.Option(
        "--answer",
        help="The reported point: top-cell (the top cell's label point), geoscore "
        "(maximises the expected GeoScore over the top-k cells), median (minimises the "
        "expected distance), refine (retrieval inside the top cells; needs --index) or "
        "knn (the kNN predictor; needs --index). The cells and probabilities written "
        "are the same for every rule.",
    ),
]
Index = Annotated[
    Path | None,
    options.index("Retrieval index directory (trigeo index build) for --answer refine or knn."),
]
Knn = Annotated[
    Path | None,
    typer.Option(
        "--knn",
        hidden=True,
        help="Renamed: --answer knn --index INDEX.",
    ),
]
PostedAt = Annotated[
    str | None,
    typer.Option(
        "--posted-at",
        help="M2/M3 on image files: posting time, ISO 8601 with an offset "
        "(default: EXIF DateTimeOriginal + OffsetTimeOriginal).",
    ),
]


def predict(
    model: ModelDirs,
    out: Out,
    images: Images = None,
    data: Data = None,
    split: Split = "val",
    name: Name = None,
    max_unreadable: MaxUnreadable = 0.05,
    top_k: TopK = 20,
    five_crop: FiveCrop = False,
    full_probs: FullProbs = False,
    batch_size: BatchSize = 64,
    num_workers: Workers = 2,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    show: Show = 3,
    progress: Progress = True,
    m1_pred: M1Pred = None,
    m1: M1Dir = None,
    hierarchical: Hierarchical = False,
    head: Head = None,
    label: Label = None,
    answer: AnswerRule = DEFAULT_ANSWER,
    index: Index = None,
    knn: Knn = None,
    knn_k: Neighbours = 10,
    cpu_threads: Threads = None,
    posted_at: PostedAt = None,
) -> None:
    """Predict where photos were taken with a trained M1, M2 or M3 model (or kNN)."""
    from trigeo.runtime.options import InferenceOptions

    rule, index = _answer_rule(answer.value, index, knn)
    job = _Job(
        out=out,
        images=images or None,
        data=data,
        split=None if split == "all" else split,
        name=name,
        options=InferenceOptions.from_cli(
            max_unreadable=max_unreadable,
            batch_size=batch_size,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            progress=progress,
            cpu_threads=cpu_threads,
        ),
        index=index,
        k=knn_k,
    )
    if rule == "knn":
        _predict_knn(model, m1, job)
    elif hierarchical:
        _predict_hierarchical(
            model, m1, job, heads=head, top_k=top_k, five_crop=five_crop, rule=rule
        )
    else:
        _predict_one(
            model,
            m1,
            job,
            m1_pred=m1_pred,
            head=head,
            label=label,
            posted_at=posted_at,
            top_k=top_k,
            five_crop=five_crop,
            full_probs=full_probs,
            rule=rule,
            show=show,
        )


@dataclass(frozen=True)
class _Job:
    """What every mode shares: the output, the photos, the inference options, the index."""

    out: Path
    images: list[Path] | None
    data: Path | None
    split: str | None
    name: str | None
    options: InferenceOptions
    #: The retrieval index of --answer refine or knn, and its -k.
    index: Path | None
    k: int


def _answer_rule(rule: str, index: Path | None, knn: Path | None) -> tuple[str, Path | None]:
    """The answer rule and its index, the renamed ``--knn INDEX`` read as ``--answer knn``.

    Raises
    ------
    InputError
        ``--knn`` and ``--index`` disagree, a rule that needs an index has
        none, or an index given to a rule that does not read it.
    """
    from trigeo.answer import check_answer
    from trigeo.errors import InputError

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
    return rule, index


def _cell_rule(rule: str) -> str:
    """The classifier's rule: refine runs it with top-cell, then rewrites the points."""
    return rule if rule not in INDEX_ANSWERS else "top-cell"


def _predict_one(
    model: list[Path],
    m1: Path | None,
    job: _Job,
    *,
    m1_pred: Path | None,
    head: list[str] | None,
    label: str | None,
    posted_at: str | None,
    top_k: int,
    five_crop: bool,
    full_probs: bool,
    rule: str,
    show: int,
) -> None:
    """One M1, M2 or M3 model directory; a summary table in image mode."""
    from trigeo.errors import InputError
    from trigeo.predict.run import predict_model

    if head and len(head) > 1:
        raise InputError("give one --head (several are for --hierarchical)")
    if len(model) != 1:
        raise InputError(f"{len(model)} --model directories given; pass one, or --hierarchical")
    (model_dir,) = model
    result = predict_model(
        model_dir,
        job.out,
        images=job.images,
        data=job.data,
        split=job.split,
        name=job.name,
        top_k=top_k,
        full_probs=full_probs,
        m1_pred=m1_pred,
        m1_dir=m1,
        posted_at=posted_at,
        head=head[0] if head else None,
        label=label,
        answer=_cell_rule(rule),
        five_crop=five_crop,
        options=job.options,
        report=_report,
    )
    if rule == "refine":
        # Every DDP rank joins the embedding pass; only rank 0 has files to rewrite.
        files = result.outputs() if result is not None else []
        refined = _refine(files, [model_dir, m1], job)
        primary = refined.get(result.path) if result is not None else None
        if primary is not None:
            result.lat, result.lon = primary.lat, primary.lon
    if result is not None and job.data is None:
        _print_summary(result, show, rule)


def _predict_hierarchical(
    model: list[Path],
    m1: Path | None,
    job: _Job,
    *,
    heads: list[str] | None,
    top_k: int,
    five_crop: bool,
    rule: str,
) -> None:
    """``--hierarchical``: several M1s (or one multi-head M1) combined on the finest mesh.

    ``--label`` is not passed on: each part reports at its model's own label point.
    """
    from trigeo.predict.hierarchical import predict_hierarchical

    result = predict_hierarchical(
        model,
        job.out,
        images=job.images,
        data=job.data,
        split=job.split,
        heads=heads,
        name=job.name,
        top_k=top_k,
        five_crop=five_crop,
        answer=_cell_rule(rule),
        options=job.options,
        report=_report,
    )
    if rule == "refine":
        files = result.outputs() if result is not None else []
        _refine(files, [*model, m1], job)


def _predict_knn(model: list[Path], m1: Path | None, job: _Job) -> None:
    """``--answer knn``: the kNN predictor over the index, with the index's M1."""
    # The kNN predictor is retrieve's (a library below predict); the CLI picks its M1.
    from trigeo.models.registry import model_dir_format
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.retrieve.knn import predict_knn
    from trigeo.retrieve.refine import index_model_dir

    index = job.index
    assert index is not None
    if len(model) == 1 and model_dir_format(model[0]) == "trigeo-m1/1":
        # The M1 given answers (and is refused when the index holds another's descriptors).
        m1_dir = model[0]
    else:
        # An M2/M3 or a hierarchical set: kNN runs on the M1 the index was built with.
        m1_dir = index_model_dir(RetrievalIndex.load(index), [*model, m1])
    # The kNN file records its answer rule itself (k, cluster radius, index).
    predict_knn(
        m1_dir,
        index,
        job.out,
        images=job.images,
        data=job.data,
        split=job.split,
        k=job.k,
        name=job.name,
        options=job.options,
        report=_report,
    )


def _refine(
    files: list[tuple[Path, Any]], candidates: list[Path | None], job: _Job
) -> dict[Path, Any]:
    """``--answer refine``: rewrite the written files' points by retrieval in their top cells."""
    from trigeo.retrieve.refine import refine_predictions

    assert job.index is not None
    return refine_predictions(
        files,
        job.index,
        out=job.out,
        model_candidates=candidates,
        images=job.images,
        data=job.data,
        split=job.split,
        k=job.k,
        name=job.name,
        options=job.options,
        report=_report,
    )


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
