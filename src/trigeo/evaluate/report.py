"""Render an :class:`~trigeo.evaluate.results.Evaluation`: report.md, report.html, metrics.json.

The tables come from :mod:`trigeo.evaluate.tables` and the figures from
:mod:`trigeo.evaluate.figures`. ``report.html`` is self-contained: figures are
embedded as base64 PNG and there are no external links, so it opens offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.evaluate.geography import country_of
from trigeo.evaluate.inputs import MeshLike
from trigeo.evaluate.results import Evaluation
from trigeo.evaluate.tables import Table, build_tables, ci_description, slug
from trigeo.evaluate.truth import Truth
from trigeo.provenance import atomic_path, write_json_atomic

__all__ = ["Figure", "Table", "build_figures", "build_tables", "write_report"]


@dataclass
class Figure:
    """A report figure: PNG bytes plus the file name it is saved under."""

    name: str
    caption: str
    png: bytes = field(repr=False)


def build_figures(
    evaluation: Evaluation,
    truth: Truth,
    meshes: Sequence[tuple[str, MeshLike]] = (),
    *,
    max_models: int = 6,
) -> list[Figure]:
    """The report's figures: error CDF, median-error maps, country confusion, reliability."""
    from trigeo.evaluate.figures import (
        plot_country_confusion,
        plot_error_cdf,
        plot_median_error_map,
        plot_reliability,
    )

    figures = []
    models = evaluation.models
    if not models:
        return figures
    figures.append(
        Figure(
            "error_cdf.png",
            "Cumulative share of photos within each error, every model (log km).",
            plot_error_cdf({m.name: m.errors_km for m in models}, evaluation.config.thresholds_km),
        )
    )
    mesh_by_hash = {mesh.mesh_hash: mesh for _, mesh in meshes}
    centroids = {h: mesh.centroids(kind="cell") for h, mesh in mesh_by_hash.items()}
    for m in models[:max_models]:
        mesh = mesh_by_hash.get(m.mesh_hash or "") or (
            next(iter(mesh_by_hash.values())) if mesh_by_hash else None
        )
        lat, lon = truth.lat[m.truth_rows], truth.lon[m.truth_rows]
        kwargs: dict[str, Any] = {}
        if mesh is not None:
            cell_lat, cell_lon = centroids[mesh.mesh_hash]
            # Truth locates its photos once per mesh; each model's map takes its own rows.
            cells = truth.cells_in(mesh)[m.truth_rows]
            kwargs = {"cells": cells, "cell_lat": cell_lat, "cell_lon": cell_lon}
        figures.append(
            Figure(
                f"median_error_map_{slug(m.name)}.png",
                f"Median error per {'mesh cell' if mesh is not None else '5° box'} of the true "
                f"location: {m.name}.",
                plot_median_error_map(lat, lon, m.errors_km, m.name, **kwargs),
            )
        )
        answered = m.answered
        figures.append(
            Figure(
                f"country_confusion_{slug(m.name)}.png",
                f"Where each frequent true country's photos were placed: {m.name}.",
                plot_country_confusion(
                    truth.country[m.truth_rows[answered]],
                    m.pred_country
                    if m.pred_country is not None
                    else country_of(m.pred_lat[answered], m.pred_lon[answered]),
                    m.name,
                ),
            )
        )
    curves = {m.name: m.reliability for m in models if m.reliability is not None}
    if curves:
        figures.append(
            Figure(
                "reliability.png",
                "Reliability of the top-1 cell probability (closer to the diagonal is better).",
                plot_reliability(curves),
            )
        )
    return figures


def _markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [f"## {table.title}", ""]
    lines.append("| " + " | ".join(cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    if table.note:
        lines += ["", f"_{table.note}_"]
    if table.footnotes:
        lines.append("")
        lines += [f"- {cell(note)}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


def _header_lines(evaluation: Evaluation, provenance: dict[str, Any]) -> list[tuple[str, str]]:
    cfg = evaluation.config
    compare = "d < t" if cfg.strict_less else "d <= t"
    return [
        (
            "photos evaluated",
            f"{evaluation.n_truth:,} (split {cfg.split or 'all'}"
            + (", outdoor only" if cfg.outdoor_only else "")
            + ")",
        ),
        ("distance", f"great circle (haversine), R = {cfg.radius_km} km; correct when {compare}"),
        (
            "missing predictions",
            "scored as misses (error π R)" if cfg.missing == "miss" else "excluded",
        ),
        ("confidence intervals", ci_description(cfg)),
        *(("note", note) for note in evaluation.notes),
        ("trigeo", str(provenance.get("trigeo_version", ""))),
        ("created", str(provenance.get("created_at", ""))),
    ]


def render_markdown(
    evaluation: Evaluation, tables: list[Table], figures: list[Figure], provenance: dict[str, Any]
) -> str:
    lines = ["# trigeo evaluation report", ""]
    for key, value in _header_lines(evaluation, provenance):
        lines.append(f"- **{key}**: {value}")
    lines.append("")
    if evaluation.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {w}" for w in evaluation.warnings]
        lines.append("")
    for table in tables:
        lines.append(_markdown_table(table))
    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            lines += [f"![{fig.caption}](figures/{fig.name})", "", f"_{fig.caption}_", ""]
    lines += ["## Inputs", ""]
    for name, digest in provenance.get("inputs", {}).items():
        lines.append(f"- `{name}`: sha256 `{digest}`")
    lines.append("")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.5em 0 0.3em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f3f7}td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:0.8em;margin-bottom:1.5em}
.warn{background:#fff6e0;border-left:4px solid #e0a000;padding:0.5em 1em}
figure{margin:1em 0}figcaption{color:#555;font-size:0.85em}
img{max-width:100%}code{font-size:0.85em}
"""


def render_html(
    evaluation: Evaluation, tables: list[Table], figures: list[Figure], provenance: dict[str, Any]
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>trigeo evaluation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>trigeo evaluation report</h1><ul>",
    ]
    for key, value in _header_lines(evaluation, provenance):
        parts.append(f"<li><b>{esc(key)}</b>: {esc(value)}</li>")
    parts.append("</ul>")
    if evaluation.warnings:
        parts.append('<h2>Warnings</h2><div class="warn"><ul>')
        parts += [f"<li>{esc(w)}</li>" for w in evaluation.warnings]
        parts.append("</ul></div>")
    for table in tables:
        parts.append(f"<h2>{esc(table.title)}</h2><table><thead><tr>")
        parts += [f"<th>{esc(c)}</th>" for c in table.columns]
        parts.append("</tr></thead><tbody>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        if table.note:
            parts.append(f'<div class="note">{esc(table.note)}</div>')
        if table.footnotes:
            parts.append('<ul class="note">')
            parts += [f"<li>{esc(note)}</li>" for note in table.footnotes]
            parts.append("</ul>")
    if figures:
        parts.append("<h2>Figures</h2>")
        for fig in figures:
            data = base64.b64encode(fig.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(fig.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
            )
    parts.append("<h2>Inputs</h2><ul>")
    for name, digest in provenance.get("inputs", {}).items():
        parts.append(f"<li><code>{esc(name)}</code>: sha256 <code>{esc(digest)}</code></li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def _finite(value: Any) -> Any:
    """Replace NaN/inf by None so that metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def write_report(
    evaluation: Evaluation,
    out_dir: str | Path,
    provenance: dict[str, Any],
    figures: list[Figure] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json, figures/*.png and missing/*.txt atomically.

    Returns
    -------
    dict
        Artifact name -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = figures or []
    tables = build_tables(evaluation)
    written: dict[str, Path] = {}
    for fig in figures:
        path = out / "figures" / fig.name
        with atomic_path(path, suffix=".png") as tmp:
            tmp.write_bytes(fig.png)
        written[f"figures/{fig.name}"] = path
    for m in evaluation.models:
        if m.missing_ids.size:
            path = out / "missing" / f"{slug(m.name)}.txt"
            with atomic_path(path, suffix=".txt") as tmp:
                tmp.write_text("\n".join(m.missing_ids.tolist()) + "\n", "utf-8")
            written[f"missing/{path.name}"] = path
    record = {
        "provenance": provenance,
        **evaluation.to_json(),
        "figures": [fig.name for fig in figures],
    }
    write_json_atomic(out / "metrics.json", _finite(record))
    written["metrics.json"] = out / "metrics.json"
    for name, text in (
        ("report.md", render_markdown(evaluation, tables, figures, provenance)),
        ("report.html", render_html(evaluation, tables, figures, provenance)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, "utf-8")
        written[name] = out / name
    return written
