"""The demo report's own figure: photo longitude against UTC posting hour.

The study motivates M2 with this picture: people post in their waking hours,
so a photo's UTC posting hour says roughly where on Earth (which longitude)
it was posted from, and the photos line up along diagonals of local time. The
figure is drawn from the dataset's ``table.parquet`` with matplotlib's Agg
backend and returned as PNG bytes, in the style of
:mod:`trigeo.evaluate.figures`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigeo.errors import InputError
from trigeo.evaluate.figures import png_bytes, pyplot

__all__ = ["plot_longitude_vs_hour"]

#: The dataset table's posting time (UTC) and longitude columns (trigeo.data.table.SCHEMA).
TIME_COLUMN, LON_COLUMN = "posted_at", "lon"


def _read(table_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and fractional UTC posting hours of every photo in the table."""
    import pyarrow.parquet as pq

    if not table_path.is_file():
        raise InputError(
            "no such dataset table (expected a trigeo table.parquet)", source=table_path
        )
    names = pq.read_schema(table_path).names
    for column in (LON_COLUMN, TIME_COLUMN):
        if column not in names:
            raise InputError(
                "the dataset table lacks this column", source=table_path, column=column
            )
    frame = pq.read_table(table_path, columns=[LON_COLUMN, TIME_COLUMN]).to_pandas()
    posted = frame[TIME_COLUMN]
    if posted.dt.tz is not None:
        posted = posted.dt.tz_convert("UTC")
    hours = (posted.dt.hour + posted.dt.minute / 60.0 + posted.dt.second / 3600.0).to_numpy()
    lon = frame[LON_COLUMN].to_numpy(dtype=np.float64)
    keep = np.isfinite(lon) & np.isfinite(hours)
    if not keep.any():
        raise InputError(
            "the dataset table has no photo with a longitude and a posting time", source=table_path
        )
    return lon[keep], hours[keep]


def plot_longitude_vs_hour(table_path: str | Path) -> bytes:
    """Photo longitude against UTC posting hour, as a 2-D histogram (PNG bytes).

    Parameters
    ----------
    table_path
        A dataset's ``table.parquet`` (or the dataset directory holding it);
        every photo is drawn, whatever its split.

    Returns
    -------
    bytes
        The PNG. Dashed lines mark local solar noon and midnight (UTC hour +
        longitude / 15), the time of day the diagonals follow.

    Raises
    ------
    InputError
        When the table is missing, lacks ``lon`` or ``posted_at``, or holds no
        usable photo.
    """
    from matplotlib.colors import LogNorm

    path = Path(table_path)
    if path.is_dir():
        path = path / "table.parquet"
    lon, hours = _read(path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.set_facecolor("0.96")
    # One bin per UTC hour and per 10 degrees of longitude: a few photos per bin at demo size.
    counts, xedges, yedges = np.histogram2d(
        hours, lon, bins=(24, 36), range=((0.0, 24.0), (-180.0, 180.0))
    )
    masked = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(xedges, yedges, masked, cmap="viridis", norm=LogNorm(vmin=1))
    fig.colorbar(mesh, ax=ax, label="photos per bin")
    # Local solar time = UTC + lon/15 h: noon and midnight are lines lon = 15 (h_local - h_utc).
    hour_grid = np.linspace(0.0, 24.0, 97)
    for local, style in ((12.0, "--"), (0.0, ":")):
        line = ((local - hour_grid) * 15.0 + 180.0) % 360.0 - 180.0
        # Break the line where it wraps from +180 to -180 so no stroke crosses the plot.
        line[np.r_[False, np.abs(np.diff(line)) > 180.0]] = np.nan
        label = "local noon" if local else "local midnight"
        ax.plot(hour_grid, line, style, color="0.15", linewidth=1.3, label=label)
    ax.set_xlim(0, 24)
    ax.set_ylim(-180, 180)
    ax.set_xticks(range(0, 25, 3))
    ax.set_yticks(range(-180, 181, 60))
    ax.set_xlabel("posting hour (UTC)")
    ax.set_ylabel("photo longitude (°)")
    ax.set_title(f"Longitude against UTC posting hour, {lon.size:,} photos", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
    return png_bytes(fig)
