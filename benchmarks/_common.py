"""What several benchmarks share: the MP-16 sample's default path, timing and sampling helpers.

Benchmarks run as scripts (``python benchmarks/bench_x.py``), so this folder is on
``sys.path`` and they import it as ``_common``; ``run_all.py`` only runs ``bench_*.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: The MP-16 coordinate sample next to a checkout (never committed; pass --mp16 otherwise).
DEFAULT_MP16 = HERE.parent.parent / "shared" / "data" / "mp16_gps_100k.csv"


def machine_load() -> str:
    """The machine's 1-minute load against its cores, printed beside shared-machine timings."""
    return f"load avg {os.getloadavg()[0]:.1f}/{os.cpu_count() or 1} CPUs"


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` runs (the machine is shared; best is least noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def jitter(lat, lon, n, km, rng):
    """n points resampled from (lat, lon) with Gaussian jitter of `km` per axis."""
    pick = rng.integers(0, lat.size, n)
    jlat = lat[pick] + rng.normal(0.0, km / 111.2, n)
    cos = np.maximum(np.cos(np.radians(lat[pick])), 0.01)
    jlon = lon[pick] + rng.normal(0.0, 1.0, n) * (km / 111.2) / cos
    return np.clip(jlat, -90.0, 90.0), (jlon + 180.0) % 360.0 - 180.0
