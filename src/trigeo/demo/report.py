"""The demo's study-shaped report: findings first, then the study's tables, figures, stages.

:func:`write_demo_report` turns one ``trigeo evaluate`` run (its
``metrics.json`` and figures) into ``report.md``, ``report.html``,
``report.json`` and ``figures/*.png``. Every number of this run sits beside
the study's published one (grey in HTML, ``(study 38.7)`` in markdown) where
the study has one. The HTML is plain and self-contained apart from the
figures, which it references as ``figures/x.png`` next to it.

Each finding says which unit its test resamples (users or photos), and the
model table says which unit each row's intervals resample (``ci_unit``). Given
another run's ``report.json`` (``other_run``), each finding also shows that
run's verdict, and "not robust at this size" where the two disagree.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from trigeo.demo.figures import plot_longitude_vs_hour
from trigeo.demo.findings import ROLE_KEYS, Finding, evaluate_findings
from trigeo.demo.metrics_view import MetricsView
from trigeo.demo.render import Cell, Page, Table, render_html, render_markdown
from trigeo.demo.robustness import NOT_ROBUST, RunComparison, compare_runs, load_findings
from trigeo.demo.study import StudyErrors, StudyRow, study_key
from trigeo.errors import ArtifactError, InputError
from trigeo.evaluate.tables import slug
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = ["write_demo_report"]

_STAGE_FIELDS = ("name", "command", "seconds", "status")


def _pct(view: MetricsView, row: dict[str, Any], study: StudyRow | None) -> list[Cell]:
    """Accuracy cells of a row, each with the study's number where it has one."""
    cells: list[Cell] = []
    for t in view.thresholds:
        theirs = study.accuracy_pct.get(study_key(t)) if study else None
        cells.append((f"{view.acc(row, t):.1f}", None if theirs is None else f"{theirs:.1f}"))
    return cells


def _num(value: float | None, spec: str) -> str:
    """A number in ``spec``; ``—`` for none, and never ``-0.000`` (a constant prior's entropy)."""
    if value is None:
        return "—"
    text = format(value, spec)
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _geoscore(row: dict[str, Any]) -> str:
    """``2,301 (1,928-2,663)``; a dash for an evaluation written before GeoScore."""
    score = row.get("geoscore")
    if score is None:
        return "—"
    ci = row.get("geoscore_ci")
    if isinstance(ci, list) and len(ci) == 2 and None not in ci:
        return f"{score:,.0f} ({ci[0]:,.0f}-{ci[1]:,.0f})"
    return f"{score:,.0f}"


def _ci_unit(row: dict[str, Any]) -> str:
    """What a row's 95% intervals resample: its ``ci_unit``, else photos (older evaluations)."""
    if row.get("ci_unit"):
        return str(row["ci_unit"])
    # metrics.json rows from before ci_unit were bootstrapped over photos.
    return "photo" if row.get("accuracy_ci95_pct") else "—"


def _errors_cells(row: dict[str, Any], study: StudyErrors | None) -> list[Cell]:
    """KL, entropy, mean and median km of a row, each beside Table 7's value where it has one."""
    cells: list[Cell] = []
    # Table 7 gives KL to 4 decimals: the study's M3 / M2 tie (0.4991 / 0.4998) needs them.
    for field, theirs, spec, study_spec in (
        ("kl_divergence", study and study.kl, ".3f", ".4f"),
        ("prediction_entropy", study and study.entropy, ".3f", ".3f"),
        ("mean_error_km", study and study.mean_km, ",.0f", ",.0f"),
        ("median_error_km", study and study.median_km, ",.0f", ",.0f"),
    ):
        grey = None if study is None else _num(theirs, study_spec)
        cells.append((_num(row.get(field), spec), grey))
    return cells


def _mesh_key(view: MetricsView, mesh_name: str | None) -> str | None:
    """The demo's mesh name (coarse/fine/s2) of an evaluation mesh name (the file's stem)."""
    for key, mesh in view.meshes.items():
        if mesh_name in (key, Path(str(mesh["path"])).stem):
            return key
    return mesh_name


def _mesh_text(view: MetricsView, key: str | None) -> str:
    mesh = view.meshes.get(key or "")
    return f"{key} ({mesh['kind']}, {mesh['cells']:,} cells)" if mesh else str(key or "—")


def _tables(view: MetricsView) -> list[Table]:
    study = view.study
    ts = [f"{t:g} km" for t in view.thresholds]
    best = Table(
        "(a) Best possible accuracy by mesh and label (%)",
        ["mesh", "label", "photos in kept cells", *ts],
    )
    for row in view.oracle:
        key = _mesh_key(view, row.get("mesh"))
        label = str(row.get("label"))
        photos = f"{row.get('photos', 0):,} ({row.get('photos_outside', 0):,} outside)"
        best.rows.append(
            [
                _mesh_text(view, key),
                f"{label} centroid",
                photos,
                *_pct(view, row, study.best_possible.get((key or "", label))),
            ]
        )
    best.note = (
        f"Every photo gets its true cell's label point. Study: {study.cells['coarse']} "
        f"coarse and {study.cells['fine']} fine cells; {study.source}."
    )
    models = Table(
        "(b) Models (% within threshold)",
        ["role", "model", "photos", *ts, "GeoScore", "95% CI by"],
    )
    m1 = view.roles.get("m1_coarse")
    order: list[tuple[str, str | None, str | None]] = [
        ("M1 coarse", m1, "m1_coarse"),
        ("M1 fine", view.roles.get("m1_fine"), "m1_fine"),
        ("M2 (time)", view.roles.get("m2"), "m2"),
        ("M3 (albums)", view.roles.get("m3"), "m3"),
        ("user averaging", m1 and f"{m1} +user-avg", "user_avg"),
        ("album averaging", m1 and f"{m1} +album-avg", None),
        ("M2 album averaging", view.roles.get("m2") and f"{view.roles['m2']} +album-avg", None),
        ("hierarchical", view.roles.get("hier"), None),
        ("kNN", view.roles.get("knn"), None),
        ("prior", view.roles.get("prior"), None),
    ]
    for role, name, study_row in order:
        row = view.by_name.get(name or "")
        if row is not None:
            models.rows.append(
                [
                    role,
                    name or "",
                    f"{view.count(row, 'photos_scored'):,}",
                    *_pct(view, row, study.headline.get(study_row or "")),
                    _geoscore(row),
                    _ci_unit(row),
                ]
            )
    models.note = (
        f"Grey: the study's {study.headline['m1_coarse'].name} and its other headline "
        f'rows on {study.photos["validation"]:,} validation photos. "95% CI by": what the '
        "evaluation's bootstrap intervals resample (users, or photos). GeoScore: OSV-5M's "
        "mean 5000 exp(-d / 1492.7 km), with its 95% interval (the study reports none)."
    )
    errors = Table(
        "(c) Class frequencies and errors",
        ["model", "KL mesh", "KL divergence", "entropy", "mean km", "median km"],
    )
    # Table 7's rows by this run's model names (the study's coarse models and fine M1).
    table7 = {view.roles.get(r): r for r in ("m1_coarse", "m1_fine", "m2", "m3")}
    if m1:
        table7[f"{m1} +user-avg"] = "user_avg"
    for row in view.metrics["models"]:
        key = table7.get(row["model"])
        errors.rows.append(
            [
                row["model"],
                str(row.get("kl_mesh") or "—"),
                *_errors_cells(row, study.errors.get(key) if key else None),
            ]
        )
    errors.note = (
        "KL of true vs predicted class frequencies (+1 counts, nats); lower is closer. "
        "Grey: the study's Table 7."
    )
    compare = Table("(d) Mesh and label: M1 on each mesh (%)", ["mesh", "label", "model", *ts])
    for role, mesh, label, study_row in (
        ("m1_coarse_cell", "coarse", "cell centroid", None),
        ("m1_coarse", "coarse", "imagery centroid", "m1_coarse"),
        ("m1_fine_cell", "fine", "cell centroid", None),
        ("m1_fine", "fine", "imagery centroid", "m1_fine"),
        ("m1_s2_cell", "s2", "cell centroid", None),
        ("m1_s2", "s2", "imagery centroid", None),
        ("hier", "coarse x fine", "imagery centroid", None),
    ):
        row = view.row(role)
        if row is not None:
            compare.rows.append(
                [
                    _mesh_text(view, mesh),
                    label,
                    row["model"],
                    *_pct(view, row, study.headline.get(study_row or "")),
                ]
            )
    compare.note = "Same predictions reported at the cell's centroid or its photos' mean position."
    return [best, models, errors, compare]


#: Copied figures wider than this are scaled down: about 100 dpi at the report's figure width.
MAX_FIGURE_WIDTH_PX = 1000


def _small_png(data: bytes, source: Path) -> bytes:
    """The PNG, scaled down to :data:`MAX_FIGURE_WIDTH_PX` when wider (mesh plots are ~200 dpi)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ArtifactError(f"{source} is not a readable PNG ({err})") from None
    if image.width <= MAX_FIGURE_WIDTH_PX:
        return data
    height = round(image.height * MAX_FIGURE_WIDTH_PX / image.width)
    buffer = io.BytesIO()
    small = image.resize((MAX_FIGURE_WIDTH_PX, height), Image.LANCZOS).convert("RGB")
    # A 256-colour palette keeps a map's flat fills and colour bar, at a third of the bytes.
    small.quantize(256).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _figures(
    out: Path, view: MetricsView, evaluation_dir: Path, mesh_maps: dict[str, Path], world: Path
) -> tuple[list[tuple[str, str]], list[str], dict[str, Path]]:
    """Write figures/*.png; returns (name, caption) pairs, notes on missing ones, paths."""
    pngs: list[tuple[str, str, bytes]] = []
    notes: list[str] = []
    for name, path in mesh_maps.items():
        if not Path(path).is_file():
            raise ArtifactError(f"mesh map of {name!r} not found: {path} (trigeo mesh plot)")
        data = _small_png(Path(path).read_bytes(), Path(path))
        pngs.append((f"mesh_{slug(name)}.png", f"The {_mesh_text(view, name)} mesh.", data))
    pngs.append(
        (
            "longitude_vs_hour.png",
            "Photo longitude against UTC posting hour (the time signal M2 uses).",
            plot_longitude_vs_hour(world),
        )
    )
    m1 = view.roles.get("m1_coarse")
    wanted = [("error_cdf.png", "Error CDF of every model (evaluation figure).")]
    maps = sorted((evaluation_dir / "figures").glob("median_error_map_*.png"))
    first = f"median_error_map_{slug(m1)}.png" if m1 else (maps[0].name if maps else "")
    if first:
        wanted.append((first, f"Median error per cell of the true location: {m1 or first}."))
    for name, caption in wanted:
        source = evaluation_dir / "figures" / name
        if source.is_file():
            pngs.append((name, caption, source.read_bytes()))
        else:
            notes.append(f"The evaluation has no {name} (was it run with --no-figures?).")
    written: dict[str, Path] = {}
    for name, _, png in pngs:
        path = out / "figures" / name
        with atomic_path(path, suffix=".png") as tmp:
            tmp.write_bytes(png)
        written[f"figures/{name}"] = path
    return [(name, caption) for name, caption, _ in pngs], notes, written


def _units_line(findings: Sequence[Finding]) -> str:
    """Which findings' tests are over users and which over photos, in one line."""
    by_unit: dict[str, list[str]] = {}
    for f in findings:
        if f.unit:
            by_unit.setdefault(f.unit, []).append(f.key)
    parts = [f"over {unit}s: {', '.join(keys)}" for unit, keys in by_unit.items()]
    return (
        "tests "
        + ("; ".join(parts) if parts else "none run")
        # Photos of one user are not independent: the user-level test is the honest one.
        + " (paired tests over users where metrics.json has them; each finding says when "
        "photos stood in)"
    )


def _check_stages(stages: Sequence[dict[str, Any]]) -> None:
    for i, stage in enumerate(stages):
        lacking = [f for f in _STAGE_FIELDS if f not in stage]
        if lacking:
            raise InputError(f"stage {i + 1} lacks field(s) {lacking}", column=lacking[0])
        if stage["status"] not in ("ran", "reused"):
            raise InputError(
                f"stage {stage['name']!r}: status must be 'ran' or 'reused', got "
                f"{stage['status']!r}",
                column="status",
            )


def write_demo_report(
    out_dir: str | Path,
    *,
    metrics: dict[str, Any],
    roles: dict[str, str],
    meshes: dict[str, dict[str, Any]],
    stages: Sequence[dict[str, Any]],
    evaluation_dir: str | Path,
    mesh_maps: dict[str, str | Path],
    world: str | Path,
    other_run: str | Path | Sequence[Finding] | None = None,
    other_label: str | None = None,
) -> dict[str, Path]:
    """Write the demo's study report: report.md, report.html, report.json, figures/*.png.

    Parameters
    ----------
    out_dir
        Directory to write (not the evaluation's own directory: its report.html would be
        replaced).
    metrics
        The evaluation's ``metrics.json``, loaded.
    roles
        Role (``m1_coarse``, ``m1_fine``, ``m1_s2``, ``m1_coarse_cell``, ``m1_fine_cell``,
        ``m1_s2_cell``, ``m2``, ``m3``, ``hier``, ``knn``, ``prior``) -> model display
        name in ``metrics``.
    meshes
        Mesh name -> ``{"path", "cells", "kind", "rule"}``.
    stages
        The pipeline's stages: ``{"name", "command", "seconds", "status"}`` each,
        status ``ran`` or ``reused``.
    evaluation_dir
        The ``trigeo evaluate`` output (its metrics.json, figures and report.html).
    mesh_maps
        Mesh name -> PNG of ``trigeo mesh plot``.
    world
        The synthetic dataset directory (``table.parquet`` inside).
    other_run
        Another run of the same size (another seed): its ``report.json``, the
        directory holding it, or its findings. Each finding then shows that
        run's verdict, and "not robust at this size" where they disagree.
    other_label
        The other run in words (``seed 8``); default: the path given, or
        "the other run" for findings.

    Returns
    -------
    dict
        Artifact name (``report.html``, ``figures/error_cdf.png``, ...) -> path.

    Raises
    ------
    InputError
        For a bad role, mesh or stage entry, or ``out_dir`` equal to ``evaluation_dir``.
    ArtifactError
        When the evaluation's metrics.json, the dataset table or a mesh map is
        missing, or ``other_run`` is not a readable demo report.json.
    """
    out, evaluation_dir, world = Path(out_dir), Path(evaluation_dir), Path(world)
    table = world / "table.parquet"
    _check_inputs(out, evaluation_dir, table)
    _check_stages(stages)
    findings = evaluate_findings(metrics, roles, meshes)
    comparison, other_record = _compare(findings, other_run, other_label)
    view = MetricsView(metrics, roles, meshes)
    figures, notes, written = _figures(
        out, view, evaluation_dir, {k: Path(v) for k, v in mesh_maps.items()}, world
    )
    head = _head(metrics, roles, view, findings, comparison, world)
    eval_link = os.path.relpath(evaluation_dir / "report.html", out)
    tables = _tables(view)
    page = Page(head, findings, tables, figures, notes, stages, eval_link, comparison)
    for name, render in (("report.md", render_markdown), ("report.html", render_html)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(render(page), "utf-8")
        written[name] = out / name
    record = {
        "source": view.study.source,
        "findings": [asdict(f) for f in findings],
        "roles": dict(roles),
        "stages": [dict(s) for s in stages],
        "figures": [name for name, _ in figures],
        "other_run": other_record,
        "provenance": _provenance(roles, meshes, evaluation_dir, table),
    }
    write_json_atomic(out / "report.json", record)
    written["report.json"] = out / "report.json"
    return written


def _check_inputs(out: Path, evaluation_dir: Path, table: Path) -> None:
    """Refuse to write into the evaluation's directory, or without its metrics.json or table."""
    if out.resolve() == evaluation_dir.resolve():
        raise InputError(
            f"out_dir {out} is the evaluation's directory; its report.html would "
            "be overwritten: write the demo report elsewhere"
        )
    for path, what in (
        (evaluation_dir / "metrics.json", "the evaluation's metrics.json"),
        (table, "the dataset table"),
    ):
        if not path.is_file():
            raise ArtifactError(f"{what} not found: {path}")


def _compare(
    findings: Sequence[Finding],
    other_run: str | Path | Sequence[Finding] | None,
    other_label: str | None,
) -> tuple[list[RunComparison], dict[str, Any] | None]:
    """Another run's verdicts beside these (none without ``other_run``), and their record."""
    if other_run is None:
        return [], None
    if isinstance(other_run, (str, Path)):
        other, label = load_findings(other_run), other_label or str(other_run)
    else:
        other, label = list(other_run), other_label or "the other run"
    comparison = compare_runs(findings, other, label)
    other_record = {
        "label": label,
        "path": str(other_run) if isinstance(other_run, (str, Path)) else None,
        "comparison": [asdict(c) for c in comparison],
    }
    return comparison, other_record


def _head(
    metrics: dict[str, Any],
    roles: dict[str, str],
    view: MetricsView,
    findings: Sequence[Finding],
    comparison: Sequence[RunComparison],
    world: Path,
) -> list[str]:
    """The report's opening lines: what was evaluated, the verdicts, models, sources, tests."""
    verdicts = [f.verdict for f in findings]
    config = metrics.get("config") or {}
    head = [
        f"{metrics.get('photos_evaluated', 0):,} photos evaluated (split "
        f"{config.get('split') or 'all'}) of a synthetic world in {world}",
        f"{verdicts.count('reproduced')} of {len(findings)} findings reproduced, "
        f"{verdicts.count('not reproduced')} not reproduced, {verdicts.count('not run')} not run",
        f"models: {', '.join(f'{r} = {roles[r]}' for r in ROLE_KEYS if r in roles)}",
        f"study numbers (grey): {view.study.source}",
        _units_line(findings),
    ]
    if comparison:
        agree = sum(c.agrees is True for c in comparison)
        flips = sum(c.agrees is False for c in comparison)
        head.append(
            f"compared with {comparison[0].other_label}: {agree} verdicts agree, {flips} "
            f"{NOT_ROBUST}, {len(comparison) - agree - flips} not compared (not run)"
        )
    return head


def _provenance(
    roles: dict[str, str], meshes: dict[str, dict[str, Any]], evaluation_dir: Path, table: Path
) -> dict[str, Any]:
    """report.json's provenance: the roles and meshes, the hashes of the files read."""
    inputs = {
        "metrics.json": hash_file(evaluation_dir / "metrics.json"),
        "table.parquet": hash_file(table),
    }
    for name, mesh in meshes.items():
        if Path(str(mesh["path"])).is_file():
            inputs[f"mesh {name}"] = hash_file(mesh["path"])
    return make_provenance(
        {"roles": dict(roles), "meshes": meshes, "evaluation_dir": str(evaluation_dir)},
        inputs,
    )
