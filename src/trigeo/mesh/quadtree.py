"""The adaptive S2 quad-tree of PlaNet and the S2-based geolocation systems.

Build: every S2 cell at ``init_level`` is a leaf. A leaf holding more than
``refinement_limit`` (t_max) photos splits into its four children, one level
down, and this repeats until no leaf is over the limit or none of those over it
can usefully split. Leaves with fewer than ``minimum_examples`` (t_min) photos
are dropped; the rest are the cells (classes), numbered 0..K-1 in S2 cell-id
order (the Hilbert curve).

:class:`QuadtreeMesh` has the interface and artifact conventions of
:class:`~trigeo.mesh.delaunay.DelaunayMesh` (``fit``, ``fill``, ``locate``,
``centroids``, ``cell_areas_km2``, ``save``/``load`` with format version and
hash, ``points_source_``, ``summary``), so code that takes a mesh takes either;
:func:`trigeo.mesh.load_mesh` reads either kind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import ArtifactError, InputError
from trigeo.mesh import s2
from trigeo.mesh.artifact import (
    read_mesh_file,
    restore_mesh,
    summary_record,
    write_mesh_file,
)
from trigeo.mesh.delaunay import PRESETS
from trigeo.points import check_points_source, validate_latlng
from trigeo.provenance import hash_arrays
from trigeo.sphere import latlng_to_xyz, xyz_to_latlng

__all__ = ["QUADTREE_FORMAT_VERSION", "QuadtreeMesh"]

#: Version of the quad-tree's on-disk format (independent of the Delaunay one's).
QUADTREE_FORMAT_VERSION = 1
_FORMAT_NAME = "trigeo.mesh.QuadtreeMesh"

ProgressCallback = Callable[[dict[str, Any]], None]


class QuadtreeMesh:
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
        Leaf index of each cell; cell ids are 0..K-1 in leaf order.
    cell_ids_ : ndarray (K,) uint64
        S2 cell id of each cell.
    n_cells_ : int
        K.
    points_source_ : dict or None
        As for ``DelaunayMesh``.
    """

    kind = "quadtree"

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

    # ----------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, scale_to: int | None = None, **kwargs: Any) -> QuadtreeMesh:
        """A quad-tree with the limits of the study's ``coarse``, ``fine`` or ``fineP`` mesh.

        The same limits as :meth:`DelaunayMesh.from_preset`, and the same
        ``scale_to=N`` rule (both limits times ``N / N_study``).
        """
        lookup = {key.lower(): key for key in PRESETS}
        key = lookup.get(str(name).lower())
        if key is None:
            raise InputError(f"unknown mesh preset {name!r}; choose one of {', '.join(PRESETS)}")
        limit, minimum, n_study = PRESETS[key]
        if scale_to is not None:
            if scale_to <= 0:
                raise InputError(f"scale_to must be a positive number of photos, got {scale_to}")
            factor = scale_to / n_study
            limit, minimum = limit * factor, minimum * factor
        mesh = cls(refinement_limit=limit, minimum_examples=minimum, **kwargs)
        mesh.preset_ = key
        return mesh

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        return {
            "refinement_limit": self.refinement_limit,
            "minimum_examples": self.minimum_examples,
            "init_level": self.init_level,
            "max_level": self.max_level,
            "min_area_km2": self.min_area_km2,
            "max_rounds": self.max_rounds,
        }

    def _check_params(self) -> None:
        if not 0 <= int(self.init_level) <= 12:
            raise InputError(f"init_level must be 0..12, got {self.init_level}")
        if not int(self.init_level) <= int(self.max_level) <= s2.MAX_LEVEL:
            raise InputError(f"max_level must be init_level..30, got {self.max_level}")

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
        self.n_points_fit_ = int(lat.size)
        self.points_hash_ = hash_arrays(lat, lon)
        self.points_source_ = checked
        self._set_geometry()
        self._fill(lat, lon)
        return self

    def fill(
        self, lat: ArrayLike, lon: ArrayLike, *, source: dict[str, Any] | None = None
    ) -> QuadtreeMesh:
        """Recount photos, kept cells and imagery centroids on the fixed leaves
        (see :meth:`DelaunayMesh.fill`)."""
        self._check_fitted()
        checked = None if source is None else check_points_source(source)
        lat, lon = validate_latlng(np.asarray(lat), np.asarray(lon), source="fill")
        self.points_hash_ = hash_arrays(lat, lon)
        self.points_source_ = checked
        self._fill(lat, lon)
        return self

    def _set_geometry(self) -> None:
        self.leaf_levels_ = s2.cell_level(self.leaves_)
        self._starts = s2.range_min(self.leaves_, self.leaf_levels_)
        self._index: tuple[NDArray[np.int32], NDArray[np.int32]] | None = None

    def _search_index(self) -> tuple[NDArray[np.int32], NDArray[np.int32]] | None:
        if not s2.HAVE_NUMBA:
            return None
        if self._index is None:
            self._index = s2.search_index(self._starts)
        return self._index

    def _fill(self, lat: NDArray[np.float64], lon: NDArray[np.float64]) -> None:
        n_leaves = len(self.leaves_)
        leaf = s2.locate_sorted(
            lat, lon, self._starts, np.arange(n_leaves, dtype=np.int64), index=self._search_index()
        )
        self.counts_ = np.bincount(leaf, minlength=n_leaves).astype(np.int64)
        self.kept_ = self.counts_ >= self.minimum_examples
        self._number_cells()
        self.n_points_ = int(lat.size)
        cell = self.cell_of_leaf_[leaf]
        self.n_points_kept_ = int((cell >= 0).sum())
        sums = np.zeros((self.n_cells_, 3))
        chunk = 1 << 20
        for start in range(0, lat.size, chunk):
            part = slice(start, start + chunk)
            c = cell[part]
            ok = c >= 0
            p = latlng_to_xyz(lat[part][ok], lon[part][ok])
            for axis in range(3):
                sums[:, axis] += np.bincount(c[ok], weights=p[:, axis], minlength=self.n_cells_)
        cell_lat, cell_lon = self.centroids("cell")
        norm = np.linalg.norm(sums, axis=1)
        ok = norm > 1e-12  # a cell without photos falls back to its centre
        img_lat, img_lon = xyz_to_latlng(np.where(ok[:, None], sums, 1.0))
        self.imagery_centroids_ = np.column_stack(
            [np.where(ok, img_lat, cell_lat), np.where(ok, img_lon, cell_lon)]
        )

    def _number_cells(self) -> None:
        self.cell_leaves_ = np.flatnonzero(self.kept_).astype(np.int64)
        self.cell_ids_ = self.leaves_[self.cell_leaves_]
        self.n_cells_ = int(self.cell_leaves_.size)
        self.cell_of_leaf_ = np.full(len(self.leaves_), -1, dtype=np.int64)
        self.cell_of_leaf_[self.cell_leaves_] = np.arange(self.n_cells_)

    # ------------------------------------------------------------------ access
    def _check_fitted(self) -> None:
        if not hasattr(self, "leaves_"):
            raise ArtifactError("this QuadtreeMesh is not fitted; call fit() or load() first")

    def _points(self, lat: ArrayLike, lon: ArrayLike):  # type: ignore[no-untyped-def]
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        shape = np.broadcast_shapes(lat.shape, lon.shape)
        lat, lon = np.broadcast_to(lat, shape).ravel(), np.broadcast_to(lon, shape).ravel()
        if lat.size:
            lat, lon = validate_latlng(lat, lon, source="locate")
        return lat, lon, shape

    def locate_leaf(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Leaf index of each point (any leaf, kept or not)."""
        self._check_fitted()
        lat, lon, shape = self._points(lat, lon)
        if lat.size == 0:
            return np.zeros(shape, dtype=np.int64)
        values = np.arange(len(self.leaves_), dtype=np.int64)
        return s2.locate_sorted(
            lat, lon, self._starts, values, threads=threads, index=self._search_index()
        ).reshape(shape)

    def locate(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Cell id (0..K-1) of each point, or -1 for a point in a dropped leaf.

        A point's S2 leaf id (as ``s2sphere.CellId.from_lat_lng``) lies in
        exactly one leaf, so there are no ties. ``threads`` spreads the work
        over threads of this process; the answer does not depend on it.
        """
        self._check_fitted()
        lat, lon, shape = self._points(lat, lon)
        if lat.size == 0:
            return np.zeros(shape, dtype=np.int64)
        return s2.locate_sorted(
            lat, lon, self._starts, self.cell_of_leaf_, threads=threads, index=self._search_index()
        ).reshape(shape)

    def centroids(self, kind: str = "cell") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of each kept cell's label point.

        ``kind="cell"``: the S2 cell's centre (the middle of its (s, t) square,
        ``S2CellId::ToPoint``). ``kind="imagery"``: the mean of the unit vectors
        of the cell's training photos.
        """
        self._check_fitted()
        if kind == "cell":
            return s2.cell_center_latlng(self.cell_ids_)
        if kind == "imagery":
            return self.imagery_centroids_[:, 0].copy(), self.imagery_centroids_[:, 1].copy()
        raise InputError(f"unknown centroid kind {kind!r}; use 'cell' or 'imagery'")

    def leaf_areas_km2(self) -> NDArray[np.float64]:
        """Area of every leaf in km²."""
        self._check_fitted()
        return s2.cell_areas_km2(self.leaves_)

    def cell_areas_km2(self) -> NDArray[np.float64]:
        """Area of each kept cell in km² (cell order)."""
        self._check_fitted()
        return s2.cell_areas_km2(self.cell_ids_)

    def cell_counts(self) -> NDArray[np.int64]:
        """Photos per kept cell (cell order), from the last ``fit``/``fill``."""
        self._check_fitted()
        return self.counts_[self.cell_leaves_]

    def cell_corners_xyz(self) -> NDArray[np.float64]:
        """Unit-vector corners of each kept cell ``(K, 4, 3)``, counter-clockwise seen
        from outside (a Delaunay mesh gives ``(K, 3, 3)``); edges are great-circle arcs."""
        self._check_fitted()
        return s2.cell_corners_xyz(self.cell_ids_)

    def regions(self) -> dict[str, Any]:
        """Every leaf, kept or not, for drawing and export: ``name``, ``corners``
        ``(L, 4, 3)``, ``counts``, ``kept``, ``cell`` (-1 if dropped), ``areas_km2``, ``ids``."""
        self._check_fitted()
        return {
            "name": "leaf",
            "corners": s2.cell_corners_xyz(self.leaves_),
            "counts": self.counts_,
            "kept": self.kept_,
            "cell": self.cell_of_leaf_,
            "areas_km2": self.leaf_areas_km2(),
            "ids": self.leaves_,
        }

    @property
    def mesh_hash(self) -> str:
        """Content hash of the leaves and kept flags (stable across save/load).

        ``points_source_`` is left out, as for ``DelaunayMesh``.
        """
        self._check_fitted()
        return hash_arrays(
            np.frombuffer(_FORMAT_NAME.encode(), dtype=np.uint8),
            np.ascontiguousarray(self.leaves_, dtype=np.uint64),
            np.ascontiguousarray(self.kept_, dtype=bool),
        )

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write the mesh to ONE ``.npz`` file, atomically (as ``DelaunayMesh.save``)."""
        self._check_fitted()
        arrays = {
            "leaves": np.asarray(self.leaves_, dtype=np.uint64),
            "counts": np.asarray(self.counts_, dtype=np.int64),
            "kept": np.asarray(self.kept_, dtype=bool),
            "imagery_centroids": np.asarray(self.imagery_centroids_, dtype=np.float64),
        }
        return write_mesh_file(self, path, _FORMAT_NAME, QUADTREE_FORMAT_VERSION, arrays)

    @classmethod
    def load(cls, path: str | Path) -> QuadtreeMesh:
        """Read a quad-tree written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If the file is missing, corrupt, not a quad-tree mesh, or written in
            another format version.
        """
        path = Path(path)
        arrays, meta = read_mesh_file(path, _FORMAT_NAME, QUADTREE_FORMAT_VERSION)
        mesh = restore_mesh(cls, path, arrays, meta, {"leaves"})
        mesh.leaves_ = arrays["leaves"].astype(np.uint64)
        ok_shapes = (
            mesh.leaves_.ndim == 1 and mesh.counts_.shape == mesh.kept_.shape == mesh.leaves_.shape
        )
        if not ok_shapes or mesh.mesh_hash != meta.get("mesh_hash"):
            raise ArtifactError(f"{path}: mesh file is corrupt (content hash does not match)")
        mesh._set_geometry()
        mesh._number_cells()
        if mesh.imagery_centroids_.shape != (mesh.n_cells_, 2):
            raise ArtifactError(f"{path}: mesh file is corrupt (imagery centroids)")
        return mesh

    # -------------------------------------------------------------- summaries
    def summary(self) -> dict[str, Any]:
        """The ``trigeo mesh info`` record (as ``DelaunayMesh.summary``, with
        ``leaves`` and ``levels`` in place of ``triangles`` and ``vertices``)."""
        self._check_fitted()
        levels = self.leaf_levels_[self.cell_leaves_]
        structure = {
            "leaves": len(self.leaves_),
            "levels": {
                "min": int(levels.min()) if levels.size else None,
                "max": int(levels.max()) if levels.size else None,
            },
        }
        return summary_record(self, structure, "leaf")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"QuadtreeMesh({params})"
