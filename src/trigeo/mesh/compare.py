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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from trigeo.errors import InputError
from trigeo.mesh.compare_plots import plot_accuracy_vs_cells, plot_cell_areas, plot_region
from trigeo.mesh.compare_tables import (
    LABELS,
    SHORT_KIND,
    format_matched,
    format_table,
    markdown,
    tables_json,
    tables_text,
)
from trigeo.mesh.factory import create_mesh
from trigeo.mesh.oracle import STUDY_THRESHOLDS_KM, located_accuracy, threshold_key
from trigeo.provenance import atomic_path

if TYPE_CHECKING:
    from trigeo.mesh.inputs import PointsInput

__all__ = [
    "DEFAULT_REGION",
    "Comparison",
    "compare_meshes",
    "format_matched",
    "format_table",
    "mesh_stats",
    "parse_limits",
    "parse_region",
    "plot_accuracy_vs_cells",
    "plot_cell_areas",
    "plot_region",
    "sweep",
    "tables_json",
    "tables_text",
    "write_report",
]

#: (lon0, lat0, lon1, lat1) drawn when ``--region`` is not given: western and central Europe.
DEFAULT_REGION = (-11.0, 35.0, 25.0, 60.0)

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
    for label, key in LABELS.items():
        in_kept = located_accuracy(mesh, lat, lon, cells, thresholds_km, label)
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
    """A mesh of ``kind`` at ``limit`` (minimum examples ``limit / ratio``), fitted."""
    start = {"init_grid": init_grid} if kind == "delaunay" else {"init_level": init_level}
    mesh = create_mesh(kind, refinement_limit=limit, minimum_examples=limit / ratio, **start)
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
                stats(f"sweep-{SHORT_KIND[kind]}-{limit:g}", mesh) for limit, mesh in swept[kind]
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
        "thresholds_km": [threshold_key(t) for t in thresholds_km],
        "region": list(region),
        "meshes": rows,
        "sweep": {"curves": curves, "matched": matched} if swept is not None else None,
        "inputs": inputs or {},
    }
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md"}
    with atomic_path(paths["json"], suffix=".json") as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=float) + "\n", "utf-8")
    with atomic_path(paths["md"], suffix=".md") as tmp:
        tmp.write_text(markdown(rows, matched), "utf-8")
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


def parse_limits(text: str) -> list[float]:
    """``--sweep-limits``: comma-separated positive numbers."""
    try:
        limits = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--sweep-limits must be numbers, got {text!r}") from exc
    if not limits or min(limits) <= 0:
        raise InputError("--sweep-limits must be positive numbers")
    return limits


# -------------------------------------------------------------- the command
class Steps(Protocol):
    """Progress of :func:`compare_meshes`: told the number of steps, then each step."""

    def total(self, steps: int) -> None: ...

    def __call__(self, step: str) -> None: ...


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_meshes` wrote: the rows, the JSON document and the files."""

    out: Path
    rows: list[dict[str, Any]]
    document: dict[str, Any]
    paths: dict[str, Path]


def _named_meshes(paths: Sequence[Path]) -> list[tuple[str, Any]]:
    """Each mesh file loaded, named by its stem (``name-2`` for a repeated stem)."""
    from trigeo.mesh.artifact import load_mesh

    loaded = []
    seen: dict[str, int] = {}
    for path in paths:
        name = path.stem
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        loaded.append((name, load_mesh(path)))
    return loaded


def compare_meshes(
    out: Path,
    mesh_paths: Sequence[Path],
    points: PointsInput,
    region: str | None = None,
    with_sweep: bool = False,
    sweep_limits: str | None = None,
    sweep_ratio: float = 10.0,
    init_grid: int = 31,
    init_level: int = 4,
    progress: Steps | None = None,
) -> Comparison:
    """``trigeo mesh compare``: score mesh files (and a sweep) on one set of photos and
    write the report (:func:`write_report`) to ``out``.

    ``region`` is ``lon0,lat0,lon1,lat1`` text (default :data:`DEFAULT_REGION`);
    ``sweep_limits`` comma-separated refinement limits (default
    :func:`default_limits`). Arguments are checked before any photo is read.
    """
    from trigeo.provenance import hash_file

    if not mesh_paths and not with_sweep:
        raise InputError("give at least one --mesh FILE, or --sweep")
    box = parse_region(region) if region is not None else DEFAULT_REGION
    limits = parse_limits(sweep_limits) if sweep_limits is not None else None
    loaded = _named_meshes(mesh_paths)
    lat, lon, source = points.read()
    limits = limits or default_limits(lat.size)
    if progress is not None:  # builds, matching and scoring (an estimate)
        progress.total(len(loaded) + (2 * len(limits) * 3 if with_sweep else 0) + 1)
    rows = []
    for name, item in loaded:
        if progress is not None:
            progress(f"scoring {name}")
        rows.append(mesh_stats(name, item, lat, lon))
    swept = None
    if with_sweep:
        swept = sweep(lat, lon, limits, sweep_ratio, init_grid, init_level, progress=progress)
    inputs = {
        "points_source": source,
        "meshes": {str(p): hash_file(p) for p in mesh_paths},
        "sweep_limits": limits if with_sweep else None,
        "sweep_ratio": sweep_ratio if with_sweep else None,
    }
    paths = write_report(out, rows, loaded, lat, lon, box, swept, progress=progress, inputs=inputs)
    document = json.loads(paths["json"].read_text("utf-8"))
    return Comparison(out, rows, document, paths)
