"""One factory from a mesh kind's name to an unfitted mesh: :func:`create_mesh`."""

from __future__ import annotations

from trigeo.errors import InputError
from trigeo.mesh.base import Mesh

__all__ = ["MESH_KINDS", "create_mesh", "mesh_class"]

#: The mesh kinds (``--kind``), the study's triangles first.
MESH_KINDS: tuple[str, ...] = ("delaunay", "quadtree")


def mesh_class(kind: str) -> type[Mesh]:
    """The class of mesh ``kind`` (``delaunay`` or ``quadtree``, any case).

    Raises
    ------
    InputError
        For any other kind.
    """
    name = str(kind).lower()
    if name == "delaunay":
        from trigeo.mesh.delaunay import DelaunayMesh

        return DelaunayMesh
    if name == "quadtree":
        from trigeo.mesh.quadtree import QuadtreeMesh

        return QuadtreeMesh
    raise InputError(f"--kind must be one of {', '.join(MESH_KINDS)}, got {kind!r}")


def create_mesh(
    kind: str,
    preset: str | None = None,
    refinement_limit: float | None = None,
    minimum_examples: float | None = None,
    init_grid: int | None = None,
    init_level: int | None = None,
    scale_to: int | None = None,
) -> Mesh:
    """An unfitted mesh of ``kind``: from a study preset, or from both limits.

    Parameters
    ----------
    kind
        ``delaunay`` or ``quadtree``.
    preset
        ``coarse``, ``fine`` or ``fineP`` (:meth:`Mesh.from_preset`); not
        together with the limits.
    refinement_limit, minimum_examples
        Both, when no preset is given.
    init_grid
        Delaunay only: rows and columns of the initial grid (default 31).
    init_level
        Quad-tree only: the S2 level every leaf starts at (default 4).
    scale_to
        With a preset: scale its limits to this many photos.

    Raises
    ------
    InputError
        For an unknown kind or preset, a preset together with limits (or
        neither), ``scale_to`` without a preset, or the other kind's option.
    """
    cls = mesh_class(kind)
    if preset is None and (refinement_limit is None or minimum_examples is None):
        raise InputError("give --preset NAME, or both --refinement-limit and --minimum-examples")
    if preset is not None and (refinement_limit is not None or minimum_examples is not None):
        raise InputError("--preset cannot be combined with --refinement-limit/--minimum-examples")
    if scale_to is not None and preset is None:
        raise InputError("--scaled only applies to --preset")
    extra: dict[str, int] = {}
    if cls.kind == "delaunay":
        if init_level is not None:
            raise InputError("--init-level applies to --kind quadtree; use --init-grid")
        if init_grid is not None:
            extra["init_grid"] = init_grid
    else:
        if init_grid is not None:
            raise InputError("--init-grid applies to --kind delaunay; use --init-level")
        if init_level is not None:
            extra["init_level"] = init_level
    if preset is not None:
        return cls.from_preset(preset, scale_to=scale_to, **extra)
    return cls(refinement_limit=refinement_limit, minimum_examples=minimum_examples, **extra)
