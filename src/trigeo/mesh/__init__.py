"""Adaptive meshes: build, exact point location, labels, I/O.

Imports without torch. Two kinds of :class:`Mesh` (the interface, in
:mod:`trigeo.mesh.base`): :class:`DelaunayMesh` (the study's triangles) and
:class:`QuadtreeMesh` (the adaptive S2 quad-tree of the S2-based systems);
:func:`create_mesh` makes either from its kind name, :func:`load_mesh` reads
either.
Names are imported on first use, so ``trigeo mesh --help`` does not pay for
scipy and numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trigeo.mesh.artifact import load_mesh, mesh_kind
    from trigeo.mesh.base import PRESETS, Mesh
    from trigeo.mesh.delaunay import FORMAT_VERSION, MIN_PHOTOS_PER_CELL, DelaunayMesh, initial_grid
    from trigeo.mesh.factory import MESH_KINDS, create_mesh
    from trigeo.mesh.locate import TriangleLocator, locate_brute_force
    from trigeo.mesh.oracle import STUDY_THRESHOLDS_KM, oracle_accuracy, oracle_report
    from trigeo.mesh.quadtree import QUADTREE_FORMAT_VERSION, QuadtreeMesh

_EXPORTS = {
    "FORMAT_VERSION": "trigeo.mesh.delaunay",
    "MIN_PHOTOS_PER_CELL": "trigeo.mesh.delaunay",
    "PRESETS": "trigeo.mesh.base",
    "Mesh": "trigeo.mesh.base",
    "DelaunayMesh": "trigeo.mesh.delaunay",
    "initial_grid": "trigeo.mesh.delaunay",
    "MESH_KINDS": "trigeo.mesh.factory",
    "create_mesh": "trigeo.mesh.factory",
    "load_mesh": "trigeo.mesh.artifact",
    "mesh_kind": "trigeo.mesh.artifact",
    "QUADTREE_FORMAT_VERSION": "trigeo.mesh.quadtree",
    "QuadtreeMesh": "trigeo.mesh.quadtree",
    "TriangleLocator": "trigeo.mesh.locate",
    "locate_brute_force": "trigeo.mesh.locate",
    "STUDY_THRESHOLDS_KM": "trigeo.mesh.oracle",
    "oracle_accuracy": "trigeo.mesh.oracle",
    "oracle_report": "trigeo.mesh.oracle",
}

__all__ = [
    "FORMAT_VERSION",
    "MESH_KINDS",
    "MIN_PHOTOS_PER_CELL",
    "PRESETS",
    "QUADTREE_FORMAT_VERSION",
    "STUDY_THRESHOLDS_KM",
    "DelaunayMesh",
    "Mesh",
    "QuadtreeMesh",
    "TriangleLocator",
    "create_mesh",
    "initial_grid",
    "load_mesh",
    "locate_brute_force",
    "mesh_kind",
    "oracle_accuracy",
    "oracle_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trigeo.mesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
