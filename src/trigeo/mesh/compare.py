"""Meshes side by side: ``trigeo mesh compare``.

For each mesh, on one set of photos: cells, the cell-area distribution, photos
per cell, and the best possible accuracy (every photo labelled with its own
cell's label point) at every threshold, for both label kinds. Two
denominators: the study's (photos in kept cells only) and all photos (a photo
in a dropped cell counts as a miss), because a mesh that drops its sparse
photos looks better on the first alone.

``sweep`` builds both kinds at several limits (the same ratio of refinement
limit to minimum examples for both) and, for each Delaunay mesh, a quad-tree
whose limits are bisected to give the same number of cells, so the two
partitions are compared at equal cell counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.mesh.oracle import STUDY_THRESHOLDS_KM, _accuracy, _key
from trigeo.provenance import atomic_path

__all__ = [
    "DEFAULT_REGION",
    "format_table",
    "mesh_stats",
    "plot_accuracy_vs_cells",
    "plot_cell_areas",
    "plot_region",
    "sweep",
    "write_report",
]

#: (lon0, lat0, lon1, lat1) drawn when ``--region`` is not given: western and central Europe.
DEFAULT_REGION = (-11.0, 35.0, 25.0, 60.0)

_LABELS = {"cell": "cell_centroid", "imagery": "imagery_centroid"}
_SHORT_KIND = {"delaunay": "tri", "quadtree": "quad"}

Progress = Callable[[str], None]


def mesh_stats(
    name: str,
    mesh: Any,
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    thresholds_km: Sequence[float] = STUDY_THRESHOLDS_KM,
) -> dict[str, Any]:
    """One mesh's row: cells, areas, photos per cell and best possible accuracy.

    Photos per cell are counted from ``lat``/``lon`` (not from the counts the
    mesh was built with), so every mesh is measured on the same photos.
    """
    cells = mesh.locate(lat, lon)
    kept = cells >= 0
    n, n_kept = int(lat.size), int(kept.sum())
    per_cell = np.bincount(cells[kept], minlength=mesh.n_cells_)
    areas = mesh.cell_areas_km2()
    row: dict[str, Any] = {
        "name": name,
        "kind": mesh.kind,
        "cells": int(mesh.n_cells_),
        "regions": len(mesh.counts_),  # one per triangle or leaf, kept or not
        "params": mesh.get_params(),
        "mesh_hash": mesh.mesh_hash,
        "points": n,
        "points_in_kept_cells": n_kept,
        "kept_share": n_kept / n if n else float("nan"),
        "cell_area_km2": _quantiles(areas),
        "photos_per_cell": _quantiles(per_cell.astype(np.float64)),
        "empty_cells": int((per_cell == 0).sum()),
    }
    for label, key in _LABELS.items():
        in_kept = _accuracy(mesh, lat, lon, cells, thresholds_km, label)
        row[key] = in_kept
        # Over all photos: the same hits, divided by every photo.
        row[key + "_all"] = {k: (v * n_kept / n if n else float("nan")) for k, v in in_kept.items()}
    return row


def _quantiles(values: NDArray[np.float64]) -> dict[str, float | None]:
    if values.size == 0:
        return {k: None for k in ("min", "p10", "p25", "median", "p75", "p90", "max", "mean")}
    q = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    out = dict(
        zip(("min", "p10", "p25", "median", "p75", "p90", "max"), map(float, q), strict=True)
    )
    out["mean"] = float(values.mean())
    return out


# -------------------------------------------------------------------- sweep
def _build(kind: str, limit: float, ratio: float, lat, lon, init_grid: int, init_level: int):  # type: ignore[no-untyped-def]
    from trigeo.mesh.delaunay import DelaunayMesh
    from trigeo.mesh.quadtree import QuadtreeMesh

    if kind == "delaunay":
        mesh = DelaunayMesh(
            refinement_limit=limit, minimum_examples=limit / ratio, init_grid=init_grid
        )
    else:
        mesh = QuadtreeMesh(
            refinement_limit=limit, minimum_examples=limit / ratio, init_level=init_level
        )
    return mesh.fit(lat, lon)


def default_limits(n_points: int) -> list[float]:
    """Refinement limits for a sweep on ``n_points`` photos: from N/50 down to N/3200,
    halving (7 limits; with a ratio of 10, about 20 to 2000 cells per 100,000 photos
    at the top and thousands at the bottom)."""
    return [n_points / 50.0 / 2**k for k in range(7)]


def sweep(
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    limits: Sequence[float],
    ratio: float = 10.0,
    init_grid: int = 31,
    init_level: int = 4,
    match_tolerance: float = 0.01,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build both kinds at ``limits`` (minimum examples = limit / ``ratio``), and for
    each Delaunay mesh a quad-tree bisected to the same cell count.

    Returns ``{"delaunay": [(limit, mesh)], "quadtree": [(limit, mesh)],
    "matched": [(delaunay mesh, quadtree mesh, quadtree limit)]}``. A match is
    the quad-tree whose cell count is closest to the Delaunay mesh's within at
    most 24 bisection steps on log(limit), stopping once it is within
    ``match_tolerance`` (relative).
    """
    out: dict[str, Any] = {"delaunay": [], "quadtree": [], "matched": []}
    for kind in ("delaunay", "quadtree"):
        for limit in limits:
            if progress:
                progress(f"{kind} limit {limit:g}")
            out[kind].append(
                (float(limit), _build(kind, limit, ratio, lat, lon, init_grid, init_level))
            )
    quads = sorted(out["quadtree"], key=lambda item: item[0])
    for _, tri in out["delaunay"]:
        if progress:
            progress(f"quadtree matching {tri.n_cells_} cells")
        target = tri.n_cells_
        if target == 0:
            continue
        # Bracket on log(limit): cells fall as the limit rises.
        lo = min(limits) / 8.0
        hi = max(limits) * 8.0
        best = min(
            ((limit, mesh) for limit, mesh in quads),
            key=lambda item: abs(item[1].n_cells_ - target),
        )
        for limit, mesh in quads:
            if mesh.n_cells_ >= target:
                lo = max(lo, limit)
            else:
                hi = min(hi, limit)
                break
        for _ in range(24):
            if abs(best[1].n_cells_ - target) <= match_tolerance * target:
                break
            mid = math.sqrt(lo * hi)
            mesh = _build("quadtree", mid, ratio, lat, lon, init_grid, init_level)
            if abs(mesh.n_cells_ - target) < abs(best[1].n_cells_ - target):
                best = (mid, mesh)
            if mesh.n_cells_ > target:
                lo = mid
            else:
                hi = mid
        out["matched"].append((tri, best[1], best[0]))
    return out


# -------------------------------------------------------------------- tables
def _fmt_pct(value: float) -> str:
    return "   nan" if value != value else f"{value:6.2f}"


def format_table(rows: Sequence[dict[str, Any]], label: str = "imagery", over: str = "kept") -> str:
    """A plain-text table at most 80 columns wide: one line per mesh.

    ``label`` is ``cell`` or ``imagery``; ``over`` is ``kept`` (the study's
    denominator) or ``all`` (dropped photos count as misses).
    """
    key = _LABELS[label] + ("" if over == "kept" else "_all")
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
        line = f"{name:<18} {_SHORT_KIND.get(row['kind'], row['kind'][:4]):<4} "
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


def _markdown(rows: Sequence[dict[str, Any]], matched: Sequence[dict[str, Any]]) -> str:
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


# -------------------------------------------------------------------- plots
def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


_COLORS = {"delaunay": "#1f77b4", "quadtree": "#d62728"}


def plot_accuracy_vs_cells(
    rows: Sequence[dict[str, Any]],
    curves: dict[str, list[dict[str, Any]]] | None,
    path: Path,
) -> Path:
    """Best possible accuracy against cell count: one panel per threshold, both labels;
    the sweep's curves when given, the compared meshes as labelled points."""
    plt = _pyplot()
    source = rows[0] if rows else next(iter(v for v in (curves or {}).values() if v))[0]
    thresholds = list(source["imagery_centroid"])
    fig, axes = plt.subplots(1, len(thresholds), figsize=(3.6 * len(thresholds), 3.8), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, thresholds, strict=True):
        for kind, points in (curves or {}).items():
            points = sorted(points, key=lambda r: r["cells"])
            x = [r["cells"] for r in points]
            for key, style in (("imagery_centroid", "-"), ("cell_centroid", "--")):
                ax.plot(
                    x,
                    [r[key][t] for r in points],
                    style,
                    marker="o",
                    ms=3,
                    color=_COLORS.get(kind, "k"),
                    label=f"{kind}, {key.split('_')[0]} label",
                )
        for row in rows:
            for key, marker in (("imagery_centroid", "*"), ("cell_centroid", "x")):
                ax.plot(
                    row["cells"], row[key][t], marker, color=_COLORS.get(row["kind"], "k"), ms=9
                )
            ax.annotate(
                row["name"],
                (row["cells"], row["imagery_centroid"][t]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_title(f"within {t} km")
        ax.set_xlabel("cells")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best possible accuracy, % of photos in kept cells")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.06)
        )
    fig.suptitle(
        "Best possible accuracy against cell count "
        "(solid/star: imagery centroid; dashed/x: cell centroid)"
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_cell_areas(meshes: Sequence[tuple[str, Any]], path: Path) -> Path:
    """Cumulative distribution of cell area (log scale), one line per mesh."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.get_cmap("tab10")
    for index, (name, mesh) in enumerate(meshes):
        areas = np.sort(mesh.cell_areas_km2())
        if areas.size:
            ax.step(
                areas,
                np.arange(1, areas.size + 1) / areas.size,
                where="post",
                color=colors(index % 10),
                ls="-" if mesh.kind == "delaunay" else "--",
                label=f"{name} ({mesh.kind}, {mesh.n_cells_} cells)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("cell area, km²")
    ax.set_ylabel("share of cells")
    ax.set_title("Cell-area distribution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_region(
    meshes: Sequence[tuple[str, Any]],
    region: tuple[float, float, float, float],
    path: Path,
    points: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> Path:
    """The meshes side by side on one region (lon0, lat0, lon1, lat1), same colour scale."""
    from trigeo.mesh.plot import draw_mesh

    plt = _pyplot()
    lon0, lat0, lon1, lat1 = region
    width = 6.0 * min(2.0, max(0.5, (lon1 - lon0) / max(lat1 - lat0, 1e-9) / 1.4))
    fig, axes = plt.subplots(1, len(meshes), figsize=(width * len(meshes), 5.2), squeeze=False)
    top = max(
        (float(np.log10(max(int(m.cell_counts().max()), 1))) for _, m in meshes if m.n_cells_),
        default=1.0,
    )
    for ax, (name, mesh) in zip(axes[0], meshes, strict=True):
        draw_mesh(
            mesh,
            ax,
            points=points,
            region=region,
            colorbar=False,
            vmax=top,
            title=f"{name}: {mesh.kind}, {mesh.n_cells_} cells",
        )
    fig.tight_layout()
    return _save(fig, path)


# -------------------------------------------------------------------- report
def write_report(
    out_dir: Path,
    rows: list[dict[str, Any]],
    meshes: Sequence[tuple[str, Any]],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    region: tuple[float, float, float, float],
    swept: dict[str, Any] | None = None,
    thresholds_km: Sequence[float] = STUDY_THRESHOLDS_KM,
    progress: Progress | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``compare.json``, ``compare.md``, ``accuracy_vs_cells.png``,
    ``cell_areas.png`` and ``region.png`` to ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    curves: dict[str, list[dict[str, Any]]] = {}
    matched: list[dict[str, Any]] = []
    region_meshes = list(meshes)
    if swept is not None:
        cache: dict[int, dict[str, Any]] = {}

        def stats(name: str, mesh: Any) -> dict[str, Any]:
            if id(mesh) not in cache:
                if progress:
                    progress(f"scoring {name}")
                cache[id(mesh)] = mesh_stats(name, mesh, lat, lon, thresholds_km)
                cache[id(mesh)]["limit"] = mesh.refinement_limit
            return cache[id(mesh)]

        for kind in ("delaunay", "quadtree"):
            curves[kind] = [
                stats(f"sweep-{_SHORT_KIND[kind]}-{limit:g}", mesh) for limit, mesh in swept[kind]
            ]
        for tri, quad, limit in swept["matched"]:
            matched.append(
                {
                    "delaunay": stats(f"sweep-tri-{tri.refinement_limit:g}", tri),
                    "quadtree": stats(f"match-quad-{limit:.4g}", quad),
                }
            )
        if not region_meshes and swept["matched"]:
            tri, quad, _ = swept["matched"][len(swept["matched"]) // 2]
            region_meshes = [
                (f"tri {tri.refinement_limit:g}", tri),
                (f"quad {quad.refinement_limit:.4g}", quad),
            ]
    document = {
        "points": int(lat.size),
        "thresholds_km": [_key(t) for t in thresholds_km],
        "region": list(region),
        "meshes": rows,
        "sweep": {"curves": curves, "matched": matched} if swept is not None else None,
        "inputs": inputs or {},
    }
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md"}
    with atomic_path(paths["json"], suffix=".json") as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=float) + "\n", "utf-8")
    with atomic_path(paths["md"], suffix=".md") as tmp:
        tmp.write_text(_markdown(rows, matched), "utf-8")
    if progress:
        progress("drawing")
    if rows or curves:
        paths["accuracy_vs_cells"] = plot_accuracy_vs_cells(
            rows, curves or None, out_dir / "accuracy_vs_cells.png"
        )
    area_meshes = list(meshes) + [
        item for item in region_meshes if all(item[1] is not m for _, m in meshes)
    ]
    if area_meshes:
        paths["cell_areas"] = plot_cell_areas(area_meshes, out_dir / "cell_areas.png")
    if region_meshes:
        paths["region"] = plot_region(region_meshes, region, out_dir / "region.png", (lat, lon))
    return paths


def parse_region(text: str) -> tuple[float, float, float, float]:
    """``lon0,lat0,lon1,lat1`` -> floats, checked (lon0 < lon1, lat0 < lat1)."""
    from trigeo.errors import InputError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--region must be lon0,lat0,lon1,lat1 (four numbers), got {text!r}")
    lon0, lat0, lon1, lat1 = values
    if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
        raise InputError(
            f"--region {text!r}: need -180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90"
        )
    return lon0, lat0, lon1, lat1
