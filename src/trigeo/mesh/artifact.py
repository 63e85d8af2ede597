"""Mesh files of either kind: the shared reader and :func:`load_mesh`.

A mesh file is one ``.npz`` holding arrays and a JSON ``meta`` record whose
``format`` names the kind (``trigeo.mesh.DelaunayMesh`` or
``trigeo.mesh.QuadtreeMesh``) and whose ``format_version`` is that kind's.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo import __version__
from trigeo.errors import ArtifactError
from trigeo.provenance import atomic_path, make_provenance

__all__ = ["MESH_FORMATS", "load_mesh", "mesh_kind", "read_arrays", "read_mesh_file"]

#: format name in a mesh file -> (kind, module, class)
MESH_FORMATS: dict[str, tuple[str, str, str]] = {
    "trigeo.mesh.DelaunayMesh": ("delaunay", "trigeo.mesh.delaunay", "DelaunayMesh"),
    "trigeo.mesh.QuadtreeMesh": ("quadtree", "trigeo.mesh.quadtree", "QuadtreeMesh"),
}


def read_arrays(path: Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Arrays and JSON metadata of a mesh file, or ArtifactError in words."""
    if not path.is_file():
        raise ArtifactError(f"{path}: mesh file does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a readable mesh file ({exc})") from exc
    try:
        meta = json.loads(bytes(arrays["meta"]).decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: mesh file has no valid metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: not a trigeo mesh file")
    return arrays, meta


#: ``summary()`` warns when the kept cells hold fewer photos than this on average.
#: A softmax classifier needs tens of examples per class to learn more than the
#: examples themselves; the study's cells hold at least 50 (fineP) to 1000 (coarse)
#: photos and thousands on average. 20 is the bottom of "tens": below it a mesh
#: has about as many classes as a classifier can memorize rather than learn, and
#: a 9% validation split gives each cell fewer than two photos to be judged on
#: (docs/mesh.md, "Small datasets").
MIN_PHOTOS_PER_CELL = 20


def summary_record(mesh: Any, structure: dict[str, Any], unit: str) -> dict[str, Any]:
    """The ``trigeo mesh info`` record shared by both mesh kinds.

    Parameters
    ----------
    structure
        The kind's own entries (triangles and vertices, or leaves and levels),
        placed after ``cells``.
    unit
        What the kind splits ("triangle", "leaf"), for the warnings.
    """
    areas = np.asarray(mesh.cell_areas_km2())
    per_cell = np.asarray(mesh.cell_counts())
    n = max(mesh.n_points_, 1)
    return {
        "kind": mesh.kind,
        "cells": mesh.n_cells_,
        **structure,
        "points": mesh.n_points_,
        "points_in_kept_cells": mesh.n_points_kept_,
        "dropped_share": 1.0 - mesh.n_points_kept_ / n,
        "cell_area_km2": {
            "min": float(areas.min()) if areas.size else None,
            "median": float(np.median(areas)) if areas.size else None,
            "max": float(areas.max()) if areas.size else None,
        },
        "photos_per_cell": {
            "mean": mesh.n_points_kept_ / mesh.n_cells_ if mesh.n_cells_ else None,
            "min": int(per_cell.min()) if per_cell.size else None,
            "median": float(np.median(per_cell)) if per_cell.size else None,
        },
        "params": mesh.get_params(),
        "preset": getattr(mesh, "preset_", None),
        "points_source": getattr(mesh, "points_source_", None),
        "mesh_hash": mesh.mesh_hash,
        "warnings": photo_warnings(mesh, unit),
    }


def photo_warnings(mesh: Any, unit: str) -> list[str]:
    """Problems in words: no cell kept, or cells too small to learn a class from."""
    if mesh.n_cells_ == 0:
        return [
            f"no {unit} holds minimum_examples={mesh.minimum_examples:g} photos, "
            "so the mesh has no cells"
        ]
    mean = mesh.n_points_kept_ / mesh.n_cells_
    if mean >= MIN_PHOTOS_PER_CELL:
        return []
    return [
        f"kept cells hold {mean:.1f} photos each on average, fewer than "
        f"{MIN_PHOTOS_PER_CELL}: too few to learn a class from. Use fewer, larger cells: "
        "raise --refinement-limit and --minimum-examples (docs/mesh.md, 'Small datasets')"
    ]


def restore_mesh(
    cls: type, path: Path, arrays: dict[str, NDArray[Any]], meta: dict[str, Any], own: set[str]
) -> Any:
    """A mesh of ``cls`` with the fitted state every kind shares, read back from a file.

    Checks that the kind's ``own`` arrays and the shared ones are present, then
    restores params, preset, counts, kept flags, imagery centroids, point
    counts, points source and provenance. The caller sets its own arrays and
    checks its shapes and hash.
    """
    from trigeo.errors import InputError
    from trigeo.points import check_points_source

    missing = (own | {"counts", "kept", "imagery_centroids"}) - set(arrays)
    if missing:
        raise ArtifactError(f"{path}: mesh file lacks {sorted(missing)}")
    mesh = cls(**meta["params"])
    if meta.get("preset"):
        mesh.preset_ = meta["preset"]
    mesh.counts_ = arrays["counts"].astype(np.int64)
    mesh.kept_ = arrays["kept"].astype(bool)
    mesh.imagery_centroids_ = arrays["imagery_centroids"].astype(np.float64)
    mesh.n_points_ = int(meta["n_points"])
    mesh.n_points_kept_ = int(meta["n_points_kept"])
    for name in ("n_points_fit", "n_rounds", "n_unsplittable"):
        if meta.get(name) is not None:
            setattr(mesh, name + "_", int(meta[name]))
    mesh.points_hash_ = meta["provenance"]["inputs"].get("points")
    # Meshes saved before the record existed have no key: None, not an error.
    mesh.points_source_ = None
    if meta.get("points_source") is not None:
        try:
            mesh.points_source_ = check_points_source(meta["points_source"])
        except InputError as exc:
            raise ArtifactError(f"{path}: mesh file has a bad points source ({exc})") from exc
    mesh.provenance_ = meta["provenance"]
    return mesh


def write_mesh_file(
    mesh: Any, path: str | Path, format_name: str, version: int, arrays: dict[str, NDArray[Any]]
) -> Path:
    """Write a fitted mesh of either kind to ONE ``.npz`` file, atomically.

    ``arrays`` are the kind's own arrays; the metadata every kind shares
    (format, kind, hash, params, point counts, points source, provenance)
    is added here, so both kinds' files read the same way.
    """
    path = Path(path)
    meta = {
        "format": format_name,
        "format_version": version,
        "kind": mesh.kind,
        "mesh_hash": mesh.mesh_hash,
        "params": mesh.get_params(),
        "preset": getattr(mesh, "preset_", None),
        "n_points": mesh.n_points_,
        "n_points_kept": mesh.n_points_kept_,
        "n_points_fit": getattr(mesh, "n_points_fit_", None),
        "n_rounds": getattr(mesh, "n_rounds_", None),
        "n_unsplittable": getattr(mesh, "n_unsplittable_", None),
        "points_source": getattr(mesh, "points_source_", None),
        "provenance": make_provenance(
            mesh.get_params(), {"points": mesh.points_hash_}, mesh_hash=mesh.mesh_hash
        ),
    }
    payload = {
        **{name: np.ascontiguousarray(array) for name, array in arrays.items()},
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    }
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **payload)
    return path


def read_mesh_file(
    path: Path, format_name: str, format_version: int
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Arrays and metadata of a mesh file of one kind (format name) and version."""
    arrays, meta = read_arrays(path)
    if meta.get("format") != format_name:
        other = meta.get("format")
        if other in MESH_FORMATS:
            raise ArtifactError(
                f"{path}: a {str(other).removeprefix('trigeo.mesh.')} file, not a "
                f"{format_name.removeprefix('trigeo.mesh.')}; read it with trigeo.mesh.load_mesh"
            )
        raise ArtifactError(f"{path}: not a trigeo mesh file")
    version = meta.get("format_version")
    if version != format_version:
        written_by = meta.get("provenance", {}).get("trigeo_version", "unknown")
        raise ArtifactError(
            f"{path}: mesh format version {version} (written by trigeo {written_by}) "
            f"is not supported by trigeo {__version__} (format {format_version}); "
            "rebuild the mesh with `trigeo mesh build`"
        )
    return arrays, meta


def mesh_kind(path: str | Path) -> str:
    """``"delaunay"`` or ``"quadtree"``: the kind a mesh file says it is."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: mesh file does not exist")
    try:  # only the metadata: the arrays are read once, by the kind's own load
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ArtifactError(f"{path}: not a readable mesh file ({exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: mesh file has no valid metadata ({exc})") from exc
    entry = MESH_FORMATS.get(str(meta.get("format"))) if isinstance(meta, dict) else None
    if entry is None:
        raise ArtifactError(f"{path}: not a trigeo mesh file")
    return entry[0]


def load_mesh(path: str | Path) -> Any:
    """Read a mesh file of either kind: a ``DelaunayMesh`` or a ``QuadtreeMesh``.

    Raises
    ------
    ArtifactError
        If the file is missing, corrupt, not a mesh, or in an unsupported
        format version.
    """
    import importlib

    _, module, name = MESH_FORMATS[_format_of(Path(path))]
    return getattr(importlib.import_module(module), name).load(path)


def _format_of(path: Path) -> str:
    kind = mesh_kind(path)
    return next(key for key, entry in MESH_FORMATS.items() if entry[0] == kind)
