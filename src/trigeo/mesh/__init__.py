"""Adaptive spherical Delaunay meshes: build, exact point location, labels, I/O.

Imports without torch. The main entry point is :class:`DelaunayMesh`.
"""

from trigeo.mesh.delaunay import FORMAT_VERSION, PRESETS, DelaunayMesh, initial_grid
from trigeo.mesh.locate import TriangleLocator, locate_brute_force
from trigeo.mesh.oracle import STUDY_THRESHOLDS_KM, oracle_accuracy, oracle_report

__all__ = [
    "FORMAT_VERSION",
    "PRESETS",
    "STUDY_THRESHOLDS_KM",
    "DelaunayMesh",
    "TriangleLocator",
    "initial_grid",
    "locate_brute_force",
    "oracle_accuracy",
    "oracle_report",
]
