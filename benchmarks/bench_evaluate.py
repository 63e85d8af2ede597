"""Time evaluating 1M predictions (distance, accuracy, 1000-resample bootstrap, KL, entropy).

Peers, measured in the same run on the same data:

- **naive pandas/python**: a Python haversine per row (``math``), accuracy by
  pandas comparisons per threshold, a bootstrap by ``DataFrame.sample(replace=True)``
  per resample, KL from ``collections.Counter`` and Python loops. Its bootstrap
  runs a few resamples and is extrapolated linearly to the same count (each
  resample costs the same), which the output says.
- **numpy index bootstrap**: the textbook vectorized bootstrap (resample photo
  indices with numpy, count hits), extrapolated the same way.

True locations are the MP-16 sample (``--mp16``) resampled to N photos;
predictions are the truth moved by a heavy-tailed random error. Classes for
KL are 2°x2° boxes (any integer labels time the same).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from trigeo.evaluate.metrics import (
    DEFAULT_THRESHOLDS_KM,
    accuracy_at,
    bootstrap_accuracy_ci,
    error_km,
    kl_divergence,
    prediction_entropy,
)
from trigeo.sphere import EARTH_RADIUS_KM

HERE = Path(__file__).resolve().parent
from _common import DEFAULT_MP16  # noqa: E402 (benchmarks run as scripts)


def load_truth(path: Path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    if path.exists():
        frame = pd.read_csv(path)
        lat = frame.iloc[:, 0].to_numpy(dtype=float)
        lon = frame.iloc[:, 1].to_numpy(dtype=float)
        pick = rng.integers(0, lat.size, n)
        return lat[pick], lon[pick], f"MP-16 sample {path} resampled to {n:,}"
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return lat, rng.uniform(-180, 180, n), f"{path} not found: uniform random points"


def make_predictions(lat, lon, rng):
    # Heavy-tailed displacement: many within a few km, some across the globe.
    step = np.exp(rng.normal(3.0, 2.5, lat.size)) / 111.0
    plat = np.clip(lat + step * rng.normal(size=lat.size), -90, 90)
    plon = (lon + step * rng.normal(size=lat.size) + 180) % 360 - 180
    return plat, plon


def box_class(lat, lon):
    return (np.floor((lat + 90) / 2).clip(0, 89) * 180 + np.floor((lon + 180) / 2) % 180).astype(
        np.int64
    )


def run_trigeo(lat, lon, plat, plon, n_classes, resamples):
    start = time.perf_counter()
    errors = error_km(lat, lon, plat, plon)
    acc = accuracy_at(errors)
    low, high = bootstrap_accuracy_ci(errors, n_resamples=resamples, seed=0)
    true_c, pred_c = box_class(lat, lon), box_class(plat, plon)
    kl = kl_divergence(true_c, pred_c, n_classes)
    ent = prediction_entropy(pred_c, n_classes)
    return time.perf_counter() - start, acc, (low, high), kl, ent


def naive_haversine(a_lat, a_lon, b_lat, b_lon):
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def run_naive(lat, lon, plat, plon, resamples, naive_resamples):
    start = time.perf_counter()
    df = pd.DataFrame({"lat": lat, "lon": lon, "plat": plat, "plon": plon})
    df["err"] = [
        naive_haversine(a, b, c, d)
        for a, b, c, d in zip(df["lat"], df["lon"], df["plat"], df["plon"], strict=True)
    ]
    acc = [100.0 * (df["err"] <= t).mean() for t in DEFAULT_THRESHOLDS_KM]
    true_c = [
        int(min(max((a + 90) // 2, 0), 89) * 180 + ((b + 180) // 2) % 180)
        for a, b in zip(df["lat"], df["lon"], strict=True)
    ]
    pred_c = [
        int(min(max((a + 90) // 2, 0), 89) * 180 + ((b + 180) // 2) % 180)
        for a, b in zip(df["plat"], df["plon"], strict=True)
    ]
    n_classes = 90 * 180
    tc, pc = Counter(true_c), Counter(pred_c)
    n = len(df)
    kl = 0.0
    for k in range(n_classes):
        p = (tc.get(k, 0) + 1) / (n + n_classes)
        q = (pc.get(k, 0) + 1) / (n + n_classes)
        kl += p * math.log(p / q)
    ent = -sum((c / n) * math.log(c / n) for c in pc.values())
    fixed = time.perf_counter() - start
    boot_start = time.perf_counter()
    boots = []
    for seed in range(naive_resamples):
        sample = df["err"].sample(frac=1.0, replace=True, random_state=seed)
        boots.append([100.0 * (sample <= t).mean() for t in DEFAULT_THRESHOLDS_KM])
    per_resample = (time.perf_counter() - boot_start) / naive_resamples
    return fixed + per_resample * resamples, acc, kl, ent, per_resample


def run_numpy_index_bootstrap(errors, resamples, measured):
    rng = np.random.default_rng(0)
    thresholds = np.asarray(DEFAULT_THRESHOLDS_KM)
    start = time.perf_counter()
    for _ in range(measured):
        sample = errors[rng.integers(0, errors.size, errors.size)]
        np.searchsorted(np.sort(sample), thresholds, side="right")
    per_resample = (time.perf_counter() - start) / measured
    return per_resample * resamples, per_resample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=DEFAULT_MP16)
    parser.add_argument("--quick", action="store_true", help="100k predictions instead of 1M")
    parser.add_argument("--n", type=int, default=None, help="number of predictions")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    naive_resamples = 3 if args.quick else 5
    rng = np.random.default_rng(42)
    lat, lon, where = load_truth(args.mp16, n, rng)
    plat, plon = make_predictions(lat, lon, rng)
    print(f"data: {where}; {n:,} predictions, {args.resamples} bootstrap resamples")

    t_trigeo, acc, (low, high), kl, ent = run_trigeo(lat, lon, plat, plon, 90 * 180, args.resamples)
    t_naive, acc_naive, kl_naive, ent_naive, naive_per = run_naive(
        lat, lon, plat, plon, args.resamples, naive_resamples
    )
    errors = error_km(lat, lon, plat, plon)
    t_index, index_per = run_numpy_index_bootstrap(errors, args.resamples, 5)

    # Same numbers from both implementations, or the timing means nothing.
    np.testing.assert_allclose(acc, acc_naive, atol=1e-9)
    assert math.isclose(kl, kl_naive, rel_tol=1e-9), (kl, kl_naive)
    assert math.isclose(ent, ent_naive, rel_tol=1e-9), (ent, ent_naive)

    print(
        "accuracy %:",
        " ".join(
            f"{t:g}km={a:.2f} [{lo:.2f},{hi:.2f}]"
            for t, a, lo, hi in zip(DEFAULT_THRESHOLDS_KM, acc, low, high, strict=True)
        ),
    )
    print(f"KL = {kl:.5f}, entropy = {ent:.4f} (identical in the naive baseline)")
    print(f"trigeo.evaluate (distance + accuracy + bootstrap + KL + entropy): {t_trigeo:8.3f} s")
    print(
        f"naive pandas/python baseline:                                  {t_naive:8.1f} s "
        f"(bootstrap extrapolated from {naive_resamples} resamples at {naive_per:.3f} s each)"
    )
    print(
        f"numpy index-resampling bootstrap alone:                        {t_index:8.1f} s "
        f"(extrapolated from 5 resamples at {index_per:.3f} s each)"
    )
    print(f"speed-up vs naive pandas/python: {t_naive / t_trigeo:,.0f}x")
    print(
        f"speed-up vs numpy index bootstrap (bootstrap only, trigeo total): "
        f"{t_index / t_trigeo:,.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
