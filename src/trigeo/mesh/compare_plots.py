"""The plots of ``trigeo mesh compare``: accuracy against cell count, cell areas, a region."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.provenance import atomic_path

__all__ = ["plot_accuracy_vs_cells", "plot_cell_areas", "plot_region"]


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
