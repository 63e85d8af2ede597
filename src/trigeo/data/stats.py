"""Summary statistics of photo tables: time versus longitude, user dispersion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trigeo.sphere import distance_km, mean_position

__all__ = [
    "circular_correlation",
    "local_hour_concentration",
    "one_photo_per_user",
    "user_dispersion_km",
]


def circular_correlation(alpha: np.ndarray, beta: np.ndarray) -> float:
    """Jammalamadaka-Sarma circular correlation of two angle arrays (radians).

    Lies in [-1, 1]; 0 for independent angles. Posting hour (as an angle) and
    longitude correlate negatively: east of Greenwich the local evening comes
    earlier in UTC.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    a_bar = np.angle(np.exp(1j * alpha).mean())
    b_bar = np.angle(np.exp(1j * beta).mean())
    sa, sb = np.sin(alpha - a_bar), np.sin(beta - b_bar)
    denom = np.sqrt((sa * sa).sum() * (sb * sb).sum())
    return float((sa * sb).sum() / denom) if denom > 0 else 0.0


def local_hour_concentration(posted_at: pd.Series, lon: np.ndarray) -> float:
    """Mean resultant length of the solar local posting hour (UTC hour + lon / 15).

    Near 1 when people post at the same local time everywhere; near 0 when the
    UTC hour carries no information about longitude.
    """
    ts = pd.to_datetime(posted_at, utc=True)
    hours = (ts.dt.hour + ts.dt.minute / 60.0).to_numpy(dtype=np.float64)
    angle = 2 * np.pi * (hours + np.asarray(lon, dtype=np.float64) / 15.0) / 24.0
    return float(np.abs(np.exp(1j * angle).mean()))


def one_photo_per_user(table: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One random photo of each user, so heavy users do not dominate a figure."""
    rng = np.random.default_rng(seed)
    shuffled = table.iloc[rng.permutation(len(table))]
    return shuffled.drop_duplicates("user_id").sort_index()


def user_dispersion_km(table: pd.DataFrame, min_photos: int = 2) -> pd.Series:
    """Median distance (km) of each user's photos from the user's mean position.

    Users with fewer than ``min_photos`` photos are left out.
    """
    out: dict[str, float] = {}
    for user, group in table.groupby("user_id", sort=True):
        if len(group) < min_photos:
            continue
        lat, lon = group["lat"].to_numpy(), group["lon"].to_numpy()
        try:
            c_lat, c_lon = mean_position(lat, lon)
        except ValueError:  # photos that cancel out on the sphere: no meaningful centre
            continue
        out[str(user)] = float(np.median(distance_km(lat, lon, c_lat, c_lon)))
    return pd.Series(out, name="dispersion_km", dtype=np.float64)
