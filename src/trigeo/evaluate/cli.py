"""``trigeo evaluate``: score predictions files against a dataset and write a report."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from trigeo import options
from trigeo.sphere import EARTH_RADIUS_KM


class Label(StrEnum):
    cell = "cell"
    imagery = "imagery"


class Missing(StrEnum):
    miss = "miss"
    exclude = "exclude"


class CiUnit(StrEnum):
    user = "user"
    photo = "photo"


def _thresholds(text: str) -> tuple[float, ...]:
    from trigeo.errors import InputError

    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise InputError(f"--thresholds must be comma-separated km values, got {text!r}") from exc
    if not values or any(v < 0 for v in values):
        raise InputError(f"--thresholds must be non-negative km values, got {text!r}")
    return values


PredOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--pred",
        metavar="<file>",
        help="Predictions Parquet file, or a peer's photo_id,lat,lon CSV. Repeatable.",
    ),
]
NameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--name",
        metavar="<name>",
        help="Short display name of a --pred in tables and figures ('M1 coarse'); "
        "repeatable, one per --pred, in order. Default: the file's model name, else its "
        "shortened file name.",
    ),
]
LabelOpt = Annotated[
    Label | None,
    typer.Option(
        "--label",
        help="Re-derive predicted locations from the top cell's centroid of this kind "
        "(default: use the file's lat/lon).",
    ),
]
OutdoorOnlyOpt = Annotated[
    bool, typer.Option("--outdoor-only", help="Evaluate only photos with outdoor >= 0.5.")
]
EarthRadiusOpt = Annotated[
    float,
    typer.Option(
        "--earth-radius-km",
        min=1.0,
        help="Earth's radius in the thresholds' great-circle distances (the study's "
        "6372.795; GeoScore keeps OSV-5M's 6371).",
    ),
]
StrictLessOpt = Annotated[
    bool, typer.Option("--strict-less", help="Count d < t as correct instead of d <= t.")
]
MissingOpt = Annotated[
    Missing,
    typer.Option("--missing", help="Photos a model did not predict: score as misses or exclude."),
]
ThresholdsOpt = Annotated[
    str, typer.Option("--thresholds", help="Accuracy thresholds in km, comma-separated.")
]
OracleOpt = Annotated[
    bool,
    typer.Option("--oracle", help="Add the best possible rows of each mesh (needs --mesh)."),
]
AveragingOpt = Annotated[
    bool,
    typer.Option("--averaging", help="Also score user- and album-averaged versions of each model."),
]
BaselineOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--baseline",
        metavar="<name>",
        help="Add a reference predictor scored like a model, once per --mesh: 'prior' "
        "always predicts the mesh's training class frequencies (most populous cell first).",
    ),
]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", min=10, help="Bootstrap resamples for the CIs.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]
CiUnitOpt = Annotated[
    CiUnit,
    typer.Option(
        "--ci-unit",
        help="What the bootstrap CIs resample: 'user' draws users with all their photos "
        "(one user's photos are not independent); 'photo' draws single photos, which is "
        "narrower when a few users hold many photos. Without a user_id column 'user' "
        "falls back to 'photo' with a note.",
    ),
]
FiguresOpt = Annotated[
    bool, typer.Option("--figures/--no-figures", help="Draw the report's figures.")
]


def evaluate(
    data: Annotated[Path, options.data("Dataset directory holding the true locations.")],
    out: Annotated[Path, options.out("Report directory to write.")],
    pred: PredOpt = None,
    name: NameOpt = None,
    mesh: Annotated[
        list[Path] | None,
        options.mesh("Mesh file; each model uses the mesh matching its hash. Repeatable."),
    ] = None,
    label: LabelOpt = None,
    outdoor_only: OutdoorOnlyOpt = False,
    split: Annotated[str, options.split()] = "val",
    earth_radius_km: EarthRadiusOpt = EARTH_RADIUS_KM,
    strict_less: StrictLessOpt = False,
    missing: MissingOpt = Missing.miss,
    thresholds: ThresholdsOpt = "1,25,200,750,2500",
    oracle: OracleOpt = False,
    averaging: AveragingOpt = False,
    baseline: BaselineOpt = None,
    bootstrap: BootstrapOpt = 1000,
    seed: SeedOpt = 0,
    ci_unit: CiUnitOpt = CiUnit.user,
    figures: FiguresOpt = True,
) -> None:
    """Score models against a dataset's true locations: tables, tests, figures.

    Writes report.md, a self-contained report.html and metrics.json to --out.
    """
    from rich.console import Console

    from trigeo.evaluate.console import accuracy_table
    from trigeo.evaluate.results import EvaluationConfig
    from trigeo.evaluate.run import run_evaluation

    config = EvaluationConfig(
        thresholds_km=_thresholds(thresholds),
        radius_km=earth_radius_km,
        strict_less=strict_less,
        missing=missing.value,
        label=None if label is None else label.value,
        outdoor_only=outdoor_only,
        split=None if split == "all" else split,
        n_resamples=bootstrap,
        seed=seed,
        ci_unit=ci_unit.value,
        averaging=averaging,
    )
    run = run_evaluation(
        data,
        out,
        preds=pred or [],
        names=name or [],
        meshes=mesh or [],
        baselines=baseline or [],
        config=config,
        oracle=oracle,
        figures=figures,
    )
    errors = Console(stderr=True)
    for message in run.evaluation.warnings:
        errors.print(f"[bold yellow]warning:[/bold yellow] {message}", highlight=False)
    for message in run.evaluation.notes:
        errors.print(f"[bold]note:[/bold] {message}", highlight=False)
    Console().print(accuracy_table(run.evaluation))
    written = run.written
    typer.echo(f"wrote {written['report.html']}, {written['report.md']}, {written['metrics.json']}")
