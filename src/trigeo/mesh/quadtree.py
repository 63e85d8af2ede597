"""The adaptive S2 quad-tree of PlaNet and the S2-based geolocation systems.

Build: every S2 cell at ``init_level`` is a leaf. A leaf holding more than
``refinement_limit`` (t_max) photos splits into its four children, one level
down, and this repeats until no leaf is over the limit or none of those over it
can usefully split. Leaves with fewer than ``minimum_examples`` (t_min) photos
are dropped; the rest are the cells (classes), numbered 0..K-1 in S2 cell-id
order (the Hilbert curve).

:class:`QuadtreeMesh` is a :class:`~trigeo.mesh.base.Mesh`, as
:class:`~trigeo.mesh.delaunay.DelaunayMesh` is (``fit``, ``fill``, ``locate``,
``centroids``, ``cell_areas_km2``, ``save``/``load`` with format version and
hash, ``points_source_``, ``summary``), so code that takes a mesh takes either;
:func:`trigeo.mesh.load_mesh` reads either kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import InputError
from trigeo.mesh import s2
from trigeo.mesh.base import Mesh, ProgressCallback
from trigeo.points import check_points_source, validate_latlng

__all__ = ["QUADTREE_FORMAT_VERSION", "QuadtreeMesh"]

#: Version of the quad-tree's on-disk format (independent of the Delaunay one's).
QUADTREE_FORMAT_VERSION = 1
_FORMAT_NAME = "trigeo.mesh.QuadtreeMesh"


class QuadtreeMesh(Mesh):
    """Adaptive S2 quad-tree whose kept leaves are the classes.

    Parameters
    ----------
    refinement_limit
        t_max: split a leaf that holds MORE than this many photos.
    minimum_examples
        t_min: drop a leaf that holds FEWER than this many photos.
    init_level
        S2 level every leaf starts at (0..12). Level 4 (1536 cells of about
        332,000 km²) is the closest to the study's 31x31 Delaunay grid (1922
        triangles of about 265,000 km²).
    max_level
        Leaves never split below this level.
    min_area_km2
        Stop rule as in the Delaunay mesh: a leaf smaller than this never
        splits, nor does one whose photos all share one S2 leaf (1 cm) cell.
    max_rounds
        Accepted for symmetry with ``DelaunayMesh``; refinement takes at most
        ``max_level - init_level`` rounds.

    Attributes
    ----------
    leaves_ : ndarray (L,) uint64
        S2 cell ids of the leaves, sorted; they cover the sphere without overlap.
    counts_ : ndarray (L,)
        Photos per leaf.
    kept_ : ndarray (L,) bool
        Leaves kept as cells.
    cell_leaves_ : ndarray (K,)
        Leaf index of each cell (``cell_regions_``); cell ids are 0..K-1 in leaf order.
    cell_ids_ : ndarray (K,) uint64
        S2 cell id of each cell.
    n_cells_ : int
        K.

    and the attributes every :class:`~trigeo.mesh.base.Mesh` has
    (``imagery_centroids_``, ``points_source_``, ...).
    """

    kind = "quadtree"
    region = "leaf"
    regions_name = "leaves"
    format_name = _FORMAT_NAME
    format_version = QUADTREE_FORMAT_VERSION
    own_arrays = ("leaves",)
    _fitted_attribute = "leaves_"

    def __init__(
        self,
        refinement_limit: float = 5000,
        minimum_examples: float = 500,
        init_level: int = 4,
        max_level: int = s2.MAX_LEVEL,
        min_area_km2: float = 0.01,
        max_rounds: int = 200,
    ) -> None:
        self.refinement_limit = refinement_limit
        self.minimum_examples = minimum_examples
        self.init_level = init_level
        self.max_level = max_level
        self.min_area_km2 = min_area_km2
        self.max_rounds = max_rounds

    # --------------------------------------------------------------------- fit
    def fit(
        self,
        lat: ArrayLike,
        lon: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        source: dict[str, Any] | None = None,
    ) -> QuadtreeMesh:
        """Refine the quad-tree on training photos, then count and keep cells.

        ``progress`` is called once per level with ``round``, ``leaves``,
        ``over_limit`` and ``splitting``; ``source`` is kept as
        ``points_source_`` (see :meth:`DelaunayMesh.fit`).
        """
        self._check_params()
        checked = None if source is None else check_points_source(source)
        lat, lon = validate_latlng(np.asarray(lat), np.asarray(lon), source="fit")
        # One S2 leaf id per photo; a cell's photos are a contiguous run of the sorted ids.
        ids = np.sort(s2.leaf_ids(lat, lon))
        level = int(self.init_level)
        cells = s2.face_cells(level)
        leaves: list[NDArray[np.uint64]] = []
        self.n_rounds_ = 0
        self.n_unsplittable_ = 0
        done = 0
        for round_index in range(s2.MAX_LEVEL + 1):
            lo = np.searchsorted(ids, s2.range_min(cells, level), side="left")
            hi = np.searchsorted(ids, s2.range_max(cells, level), side="right")
            over = (hi - lo) > self.refinement_limit
            split = over.copy()
            if over.any():
                # All photos at one leaf id: no split can ever separate them.
                split[over] = ids[lo[over]] != ids[hi[over] - 1]
                if level >= self.max_level or round_index >= self.max_rounds:
                    split[:] = False
                elif split.any():
                    split[split] = s2.cell_areas_km2(cells[split]) >= self.min_area_km2
            n_over, n_split = int(over.sum()), int(split.sum())
            self.n_unsplittable_ += n_over - n_split
            done += int((~split).sum())
            if progress is not None:
                progress(
                    {
                        "round": round_index,
                        "leaves": done + 4 * n_split,
                        "over_limit": n_over,
                        "splitting": n_split,
                    }
                )
            leaves.append(cells[~split])
            if n_split == 0:
                break
            self.n_rounds_ = round_index + 1
            cells = np.sort(s2.children(cells[split], level).ravel())
            level += 1
        self.leaves_ = np.sort(np.concatenate(leaves))
        self._record_points(lat, lon, checked)
        self._set_geometry()
        self._fill(lat, lon)
        return self

    def _check_params(self) -> None:
        if not 0 <= int(self.init_level) <= 12:
            raise InputError(f"init_level must be 0..12, got {self.init_level}")
        if not int(self.init_level) <= int(self.max_level) <= s2.MAX_LEVEL:
            raise InputError(f"max_level must be init_level..30, got {self.max_level}")

    # ------------------------------------------------------------------ geometry
    def _region_count(self) -> int:
        return len(self.leaves_)

    def _set_geometry(self) -> None:
        self.leaf_levels_ = s2.cell_level(self.leaves_)
        self._starts = s2.range_min(self.leaves_, self.leaf_levels_)
        self._index: tuple[NDArray[np.int32], NDArray[np.int32]] | None = None

    def _number_cells(self) -> None:
        super()._number_cells()
        self.cell_ids_ = self.leaves_[self.cell_regions_]

    @property
    def cell_leaves_(self) -> NDArray[np.int64]:
        """Leaf index of each cell (``cell_regions_``)."""
        return self.cell_regions_

    @property
    def cell_of_leaf_(self) -> NDArray[np.int64]:
        """Cell id of each leaf, -1 if dropped (``cell_of_region_``)."""
        return self.cell_of_region_

    def _search_index(self) -> tuple[NDArray[np.int32], NDArray[np.int32]] | None:
        if not s2.HAVE_NUMBA:
            return None
        if self._index is None:
            self._index = s2.search_index(self._starts)
        return self._index

    def _locate_regions(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], threads: int = 1
    ) -> NDArray[np.int64]:
        # A point's S2 leaf id (as s2sphere.CellId.from_lat_lng) lies in exactly one
        # leaf, so there are no ties.
        values = np.arange(len(self.leaves_), dtype=np.int64)
        return s2.locate_sorted(
            lat, lon, self._starts, values, threads=threads, index=self._search_index()
        )

    def locate_leaf(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Leaf index of each point (any leaf, kept or not)."""
        return self.locate_region(lat, lon, threads=threads)

    def _cell_label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        # The S2 cell's centre: the middle of its (s, t) square (S2CellId::ToPoint).
        return s2.cell_center_latlng(self.cell_ids_)

    def region_areas_km2(self) -> NDArray[np.float64]:
        """Area of every leaf in km²."""
        self._check_fitted()
        return s2.cell_areas_km2(self.leaves_)

    leaf_areas_km2 = region_areas_km2

    def cell_areas_km2(self) -> NDArray[np.float64]:
        """Area of each kept cell in km² (cell order)."""
        self._check_fitted()
        return s2.cell_areas_km2(self.cell_ids_)

    def cell_corners_xyz(self) -> NDArray[np.float64]:
        """Unit-vector corners of each kept cell ``(K, 4, 3)``, counter-clockwise seen
        from outside (a Delaunay mesh gives ``(K, 3, 3)``); edges are great-circle arcs."""
        self._check_fitted()
        return s2.cell_corners_xyz(self.cell_ids_)

    def _region_corners(self) -> NDArray[np.float64]:
        return s2.cell_corners_xyz(self.leaves_)

    def _extra_regions(self) -> dict[str, Any]:
        return {"ids": self.leaves_}

    def _hash_arrays(self) -> tuple[NDArray[Any], ...]:
        return (
            np.frombuffer(_FORMAT_NAME.encode(), dtype=np.uint8),
            np.ascontiguousarray(self.leaves_, dtype=np.uint64),
            np.ascontiguousarray(self.kept_, dtype=bool),
        )

    # -------------------------------------------------------------- file, summary
    def _own_arrays(self) -> dict[str, NDArray[Any]]:
        return {"leaves": np.asarray(self.leaves_, dtype=np.uint64)}

    def _restore_own(self, arrays: dict[str, NDArray[Any]]) -> bool:
        self.leaves_ = arrays["leaves"].astype(np.uint64)
        return (
            self.leaves_.ndim == 1 and self.counts_.shape == self.kept_.shape == self.leaves_.shape
        )

    def _structure(self) -> dict[str, Any]:
        levels = self.leaf_levels_[self.cell_regions_]
        return {
            "leaves": len(self.leaves_),
            "levels": {
                "min": int(levels.min()) if levels.size else None,
                "max": int(levels.max()) if levels.size else None,
            },
        }
