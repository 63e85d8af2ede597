"""Describe a dataset: counts, time span, density map and the time-longitude figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.stats import circular_correlation, one_photo_per_user
from trigeo.data.table import Dataset
from trigeo.provenance import atomic_path

__all__ = ["describe_dataset", "plot_density_map", "plot_time_longitude"]


def describe_dataset(dataset: Dataset) -> dict[str, Any]:
    """Counts, users, time span and coverage of a dataset, as plain values."""
    table = dataset.table
    per_user = table.groupby("user_id").size()
    posted = table["posted_at"]
    info: dict[str, Any] = {
        "root": str(dataset.root),
        "photos": len(table),
        "users": int(per_user.size),
        "splits": {str(k): int(v) for k, v in table["split"].value_counts().sort_index().items()},
        "photos_per_user": {
            "median": float(per_user.median()),
            "mean": round(float(per_user.mean()), 2),
            "max": int(per_user.max()),
        },
        "posted_from": posted.min().isoformat(),
        "posted_to": posted.max().isoformat(),
        "lat_range": [float(table["lat"].min()), float(table["lat"].max())],
        "lon_range": [float(table["lon"].min()), float(table["lon"].max())],
        "distinct_positions": int(table[["lat", "lon"]].drop_duplicates().shape[0]),
        "images": dataset.meta.get("images", "unknown"),
    }
    taken = table["taken_at"].dropna()
    if len(taken):
        info["taken_from"] = taken.min().isoformat()
        info["taken_to"] = taken.max().isoformat()
    outdoor = table["outdoor"].dropna()
    if len(outdoor):
        info["outdoor_share"] = round(float((outdoor >= 0.5).mean()), 4)
    if "country" in table.columns:
        top = table["country"].value_counts().head(5)
        info["countries"] = int(table["country"].nunique())
        info["top_countries"] = {str(k): int(v) for k, v in top.items()}
    return info


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=(path.suffix or ".png")[1:])
    return path


def plot_density_map(table: pd.DataFrame, path: str | Path, bins: int = 180) -> Path:
    """World map of photo density (log colour scale) over offline coastlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from mpl_toolkits.basemap import Basemap

    fig, ax = plt.subplots(figsize=(10, 5.2))
    world = Basemap(projection="cyl", resolution="c", ax=ax)
    world.drawcoastlines(linewidth=0.4, color="0.35")
    world.drawcountries(linewidth=0.2, color="0.6")
    counts, xedges, yedges = np.histogram2d(
        table["lon"].to_numpy(),
        table["lat"].to_numpy(),
        bins=[bins * 2, bins],
        range=[[-180, 180], [-90, 90]],
    )
    masked = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(
        xedges, yedges, masked, cmap="magma_r", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2))
    )
    fig.colorbar(mesh, ax=ax, shrink=0.7, label="photos per cell")
    ax.set_title(f"{len(table):,} photos, {table['user_id'].nunique():,} users")
    path = _save(fig, path)
    plt.close(fig)
    return path


def plot_time_longitude(table: pd.DataFrame, path: str | Path, seed: int = 0) -> dict[str, Any]:
    """Box plots of true longitude by UTC hour of posting, one random photo per user.

    This is the study's figure: people post in their local evening, so the
    UTC posting hour carries information about longitude.

    Returns
    -------
    dict
        ``path``, ``photos`` (one per user), ``circular_correlation`` of the
        posting hour and the longitude.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = one_photo_per_user(table, seed=seed)
    hour = sample["posted_at"].dt.hour.to_numpy()
    lon = sample["lon"].to_numpy()
    groups = [lon[hour == h] for h in range(24)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.boxplot(groups, positions=range(24), widths=0.6, showfliers=False)
    ax.set_xticks(range(24))
    ax.set_xlabel("UTC hour of posting")
    ax.set_ylabel("true longitude (degrees)")
    ax.set_ylim(-180, 180)
    ax.axhline(0, color="0.8", linewidth=0.6, zorder=0)
    minutes = sample["posted_at"].dt.minute.to_numpy()
    corr = circular_correlation(2 * np.pi * (hour + minutes / 60) / 24, np.radians(lon))
    ax.set_title(
        f"Longitude by posting hour, one photo per user (n={len(sample):,}); "
        f"circular correlation {corr:.2f}"
    )
    _save(fig, path)
    plt.close(fig)
    return {"path": str(path), "photos": len(sample), "circular_correlation": corr}
