"""``trigeo evaluate``: score predictions files against a dataset and write a report."""

from __future__ import annotations

import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from trigeo.sphere import EARTH_RADIUS_KM


class Label(StrEnum):
    cell = "cell"
    imagery = "imagery"


class Missing(StrEnum):
    miss = "miss"
    exclude = "exclude"


def _thresholds(text: str) -> tuple[float, ...]:
    from trigeo.errors import InputError

    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise InputError(f"--thresholds must be comma-separated km values, got {text!r}") from exc
    if not values or any(v < 0 for v in values):
        raise InputError(f"--thresholds must be non-negative km values, got {text!r}")
    return values


def evaluate(
    truth: Annotated[
        Path, typer.Option("--truth", help="Dataset directory holding the true locations.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Report directory to write.")],
    pred: Annotated[
        list[Path] | None,
        typer.Option(
            "--pred",
            help="Predictions Parquet file, or a peer's photo_id,lat,lon CSV. Repeatable.",
        ),
    ] = None,
    mesh: Annotated[
        list[Path] | None,
        typer.Option("--mesh", help="Mesh file; each model uses the mesh matching its hash."),
    ] = None,
    label: Annotated[
        Label | None,
        typer.Option(
            "--label",
            help="Re-derive predicted locations from the top cell's centroid of this kind "
            "(default: use the file's lat/lon).",
        ),
    ] = None,
    outdoor_only: Annotated[
        bool, typer.Option("--outdoor-only", help="Evaluate only photos with outdoor >= 0.5.")
    ] = False,
    split: Annotated[
        str, typer.Option("--split", help="Split of the truth photos ('all' for every photo).")
    ] = "val",
    radius_km: Annotated[
        float, typer.Option("--radius-km", help="Sphere radius of the great-circle distance.")
    ] = EARTH_RADIUS_KM,
    strict_less: Annotated[
        bool, typer.Option("--strict-less", help="Count d < t as correct instead of d <= t.")
    ] = False,
    missing: Annotated[
        Missing,
        typer.Option(
            "--missing", help="Photos a model did not predict: score as misses or exclude."
        ),
    ] = Missing.miss,
    thresholds: Annotated[
        str, typer.Option("--thresholds", help="Accuracy thresholds in km, comma-separated.")
    ] = "1,25,200,750,2500",
    oracle: Annotated[
        bool,
        typer.Option("--oracle", help="Add the best possible rows of each mesh (needs --mesh)."),
    ] = False,
    averaging: Annotated[
        bool,
        typer.Option(
            "--averaging", help="Also score user- and album-averaged versions of each model."
        ),
    ] = False,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            help="Add a reference predictor scored like a model, once per --mesh: 'prior' "
            "always predicts the mesh's training class frequencies (most populous cell first).",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=10, help="Bootstrap resamples for the CIs.")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Draw the report's figures.")
    ] = True,
) -> None:
    """Score models against a dataset's true locations: tables, tests, figures.

    Writes report.md, a self-contained report.html and metrics.json to --out.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    from trigeo.data.table import Dataset
    from trigeo.errors import InputError
    from trigeo.evaluate.baselines import BASELINES, predict_prior
    from trigeo.evaluate.core import EvaluationConfig, Truth
    from trigeo.evaluate.core import evaluate as run_evaluation
    from trigeo.evaluate.inputs import EvaluationWarning, load_predictions
    from trigeo.evaluate.report import build_figures, write_report
    from trigeo.provenance import hash_file, make_provenance

    console = Console(stderr=True)
    config = EvaluationConfig(
        thresholds_km=_thresholds(thresholds),
        radius_km=radius_km,
        strict_less=strict_less,
        missing=missing.value,
        label=None if label is None else label.value,
        outdoor_only=outdoor_only,
        split=None if split == "all" else split,
        n_resamples=bootstrap,
        seed=seed,
        averaging=averaging,
    )
    dataset = Dataset.open(truth)
    truth_photos = Truth.from_dataset(dataset, split=config.split, outdoor_only=outdoor_only)
    inputs = {f"truth:{truth}": dataset.hash}
    meshes = []
    if mesh:
        from trigeo.mesh import DelaunayMesh

        for path in mesh:
            meshes.append((path.stem, DelaunayMesh.load(path)))
            inputs[f"mesh:{path}"] = hash_file(path)
    predictions = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        for path in pred or []:
            predictions.append((str(path), load_predictions(path)))
    for path in pred or []:
        inputs[f"pred:{path}"] = hash_file(path)
        probs = path.with_suffix(".probs.npy")
        if probs.exists():
            inputs[f"pred:{probs}"] = hash_file(probs)
    for name in baseline or []:
        if name not in BASELINES:
            raise InputError(f"unknown --baseline {name!r}; choose from {', '.join(BASELINES)}")
        if not meshes:
            raise InputError(f"--baseline {name} predicts from a mesh's class counts; add --mesh")
        for mesh_name, mesh_obj in meshes:
            model_id = f"{name} baseline ({mesh_name})"
            prior = predict_prior(
                mesh_obj, truth_photos.photo_id, label=config.label or "imagery", model_id=model_id
            )
            predictions.append((model_id, prior))
    evaluation = run_evaluation(
        truth_photos, predictions, meshes=meshes, config=config, oracle=oracle
    )
    # Problems found while reading files (e.g. swapped columns) lead the report's warnings.
    evaluation.warnings[:0] = [
        str(w.message) for w in caught if issubclass(w.category, EvaluationWarning)
    ]
    for message in evaluation.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {message}", highlight=False)
    provenance = make_provenance(
        {
            **config.as_dict(),
            "truth": str(truth),
            "pred": [str(p) for p in pred or []],
            "mesh": [str(m) for m in mesh or []],
            "oracle": oracle,
        },
        inputs,
    )
    drawn = build_figures(evaluation, truth_photos, meshes) if figures else []
    written = write_report(evaluation, out, provenance, drawn)

    table = RichTable(title=f"accuracy (%), {len(truth_photos):,} photos")
    table.add_column("model", overflow="fold")
    table.add_column("mesh")
    table.add_column("label")
    for t in config.thresholds_km:
        table.add_column(f"{t:g} km", justify="right")
    table.add_column("median km", justify="right")
    for row in evaluation.oracle:
        table.add_row(
            "oracle",
            escape(row["mesh"]),
            row["label"],
            *(f"{v:.2f}" for v in row["accuracy_pct"].values()),
            f"{row['median_km']:.1f}",
        )
    for result in evaluation.models:
        table.add_row(
            escape(result.name),
            escape(result.mesh_name or "-"),
            result.label,
            *(f"{v:.2f}" for v in result.accuracy),
            f"{result.median_km:.1f}",
        )
    Console().print(table)
    typer.echo(f"wrote {written['report.html']}, {written['report.md']}, {written['metrics.json']}")
