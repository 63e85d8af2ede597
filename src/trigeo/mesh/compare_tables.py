"""The tables of ``trigeo mesh compare``: console text, its JSON twin, and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trigeo.mesh.compare import Comparison

__all__ = [
    "LABELS",
    "MATCHED_SHOWN",
    "SHORT_KIND",
    "format_matched",
    "format_table",
    "markdown",
    "tables_json",
    "tables_text",
]

#: Label kind -> its key in a comparison row.
LABELS = {"cell": "cell_centroid", "imagery": "imagery_centroid"}
#: Mesh kind -> its short name in tables.
SHORT_KIND = {"delaunay": "tri", "quadtree": "quad"}


def _fmt_pct(value: float) -> str:
    return "   nan" if value != value else f"{value:6.2f}"


def format_table(rows: Sequence[dict[str, Any]], label: str = "imagery", over: str = "kept") -> str:
    """A plain-text table at most 80 columns wide: one line per mesh.

    ``label`` is ``cell`` or ``imagery``; ``over`` is ``kept`` (the study's
    denominator) or ``all`` (dropped photos count as misses).
    """
    key = LABELS[label] + ("" if over == "kept" else "_all")
    thresholds = list(rows[0][key]) if rows else []
    shown = thresholds[:5]
    head = f"{'mesh':<18} {'kind':<4} {'cells':>6} {'kept%':>6}"
    head += "".join(f" {t + 'km':>7}" for t in shown)
    lines = [
        f"best possible accuracy, {label} label, % of "
        + ("photos in kept cells" if over == "kept" else "all photos"),
        head,
        "-" * len(head),
    ]
    for row in rows:
        name = row["name"] if len(row["name"]) <= 18 else row["name"][:17] + "~"
        line = f"{name:<18} {SHORT_KIND.get(row['kind'], row['kind'][:4]):<4} "
        line += f"{row['cells']:>6} {100 * row['kept_share']:6.2f}"
        line += "".join(f"  {_fmt_pct(row[key][t]):>6}" for t in shown)
        lines.append(line)
    return "\n".join(lines)


def format_matched(matched: Sequence[dict[str, Any]], thresholds: Sequence[str]) -> str:
    """Equal-cell-count pairs: imagery-label accuracy of each kind and the difference
    (quad-tree minus Delaunay), at most 80 columns."""
    shown = list(thresholds)[:3]
    head = f"{'cells t/q':>13} {'kept% t/q':>9}"
    head += "".join(f" {t + 'km t/q/diff':>18}" for t in shown)
    lines = ["equal cell counts: best possible accuracy, imagery label, % of kept", head]
    lines.append("-" * len(head))
    for pair in matched:
        tri, quad = pair["delaunay"], pair["quadtree"]
        line = f"{tri['cells']:>6}/{quad['cells']:<6} "
        line += f"{100 * tri['kept_share']:4.0f}/{100 * quad['kept_share']:<4.0f}"
        for t in shown:
            a = tri["imagery_centroid"][t]
            b = quad["imagery_centroid"][t]
            line += f" {a:5.1f}/{b:5.1f}/{b - a:+6.1f}"
        lines.append(line)
    return "\n".join(lines)


def markdown(rows: Sequence[dict[str, Any]], matched: Sequence[dict[str, Any]]) -> str:
    """``compare.md``: every mesh's row and every equal-cell-count pair, all thresholds."""
    out = ["# Mesh comparison", ""]
    if rows:
        out.append(f"{rows[0]['points']} photos. Best possible accuracy: every photo labelled")
        out.append("with its own cell's label point; % within each threshold (km).")
        out.append("")
        out += [
            "| mesh | kind | cells | regions | photos kept % | cell area km² median (p10-p90) "
            "| photos per cell mean (min, median) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            a, p = row["cell_area_km2"], row["photos_per_cell"]
            area = (
                f"{a['median']:.4g} ({a['p10']:.4g}-{a['p90']:.4g})"
                if a["median"] is not None
                else "-"
            )
            ppc = (
                f"{p['mean']:.1f} ({p['min']:.0f}, {p['median']:.0f})"
                if p["mean"] is not None
                else "-"
            )
            out.append(
                f"| {row['name']} | {row['kind']} | {row['cells']} | {row['regions']} | "
                f"{100 * row['kept_share']:.2f} | {area} | {ppc} |"
            )
        thresholds = list(rows[0]["imagery_centroid"])
        for key, title in (
            ("cell_centroid", "cell label, % of photos in kept cells (the study's)"),
            ("imagery_centroid", "imagery label, % of photos in kept cells (the study's)"),
            ("cell_centroid_all", "cell label, % of all photos"),
            ("imagery_centroid_all", "imagery label, % of all photos"),
        ):
            out += ["", f"## Best possible accuracy: {title}", ""]
            out.append(
                "| mesh | kind | cells | " + " | ".join(f"{t} km" for t in thresholds) + " |"
            )
            out.append("|---|---|---|" + "---|" * len(thresholds))
            for row in rows:
                values = " | ".join(f"{row[key][t]:.2f}" for t in thresholds)
                out.append(f"| {row['name']} | {row['kind']} | {row['cells']} | {values} |")
    if matched:
        thresholds = list(matched[0]["delaunay"]["imagery_centroid"])
        for key, title in (
            ("imagery_centroid", "imagery label, % of photos in kept cells"),
            ("cell_centroid", "cell label, % of photos in kept cells"),
            ("imagery_centroid_all", "imagery label, % of all photos"),
        ):
            out += ["", f"## Equal cell counts ({title}): Delaunay / quad-tree", ""]
            out.append(
                "| cells (tri / quad) | kept % (tri / quad) | "
                + " | ".join(f"{t} km" for t in thresholds)
                + " |"
            )
            out.append("|---|---|" + "---|" * len(thresholds))
            for pair in matched:
                tri, quad = pair["delaunay"], pair["quadtree"]
                values = " | ".join(
                    f"{tri[key][t]:.2f} / {quad[key][t]:.2f} ({quad[key][t] - tri[key][t]:+.2f})"
                    for t in thresholds
                )
                out.append(
                    f"| {tri['cells']} / {quad['cells']} | {100 * tri['kept_share']:.1f} / "
                    f"{100 * quad['kept_share']:.1f} | {values} |"
                )
    return "\n".join(out) + "\n"


#: Thresholds (km) of the equal-cell-count table.
MATCHED_SHOWN = ("1", "25", "200")


def tables_text(comparison: Comparison) -> str:
    """The console report: the three accuracy tables, the equal-cell-count table
    after a sweep, and the files written."""
    rows, document = comparison.rows, comparison.document
    blocks = []
    if rows:
        blocks += [
            format_table(rows, "cell"),
            format_table(rows, "imagery"),
            format_table(rows, "imagery", over="all"),
        ]
    if document["sweep"] and document["sweep"]["matched"]:
        blocks.append(format_matched(document["sweep"]["matched"], list(MATCHED_SHOWN)))
    files = "\n".join(f"  {name}" for name in sorted(p.name for p in comparison.paths.values()))
    blocks.append(f"written in {comparison.out}:\n{files}")
    return "\n\n".join(blocks)


def tables_json(comparison: Comparison) -> dict[str, Any]:
    """:func:`tables_text` as a JSON document: the same numbers, kept% and accuracy in %."""
    rows, document = comparison.rows, comparison.document
    shown = list(rows[0]["imagery_centroid"])[:5] if rows else []
    keys = ("cell_centroid", "imagery_centroid", "imagery_centroid_all")
    meshes = [
        {
            "name": row["name"],
            "kind": row["kind"],
            "cells": row["cells"],
            "kept_pct": 100 * row["kept_share"],
            **{key: {t: row[key][t] for t in shown} for key in keys},
        }
        for row in rows
    ]
    matched = []
    for pair in (document["sweep"] or {}).get("matched", []):
        tri, quad = pair["delaunay"], pair["quadtree"]
        matched.append(
            {
                "cells": {"delaunay": tri["cells"], "quadtree": quad["cells"]},
                "kept_pct": {
                    "delaunay": 100 * tri["kept_share"],
                    "quadtree": 100 * quad["kept_share"],
                },
                "imagery_centroid": {
                    t: {
                        "delaunay": tri["imagery_centroid"][t],
                        "quadtree": quad["imagery_centroid"][t],
                        "diff": quad["imagery_centroid"][t] - tri["imagery_centroid"][t],
                    }
                    for t in MATCHED_SHOWN
                },
            }
        )
    return {
        "meshes": meshes,
        "matched": matched,
        "out": str(comparison.out),
        "written": sorted(p.name for p in comparison.paths.values()),
    }
