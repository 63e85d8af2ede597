"""The :class:`Mesh` base: what every mesh kind shares, written once.

A mesh follows scikit-learn's conventions: the constructor only stores its
parameters, :meth:`Mesh.fit` learns from photo coordinates and returns the
mesh, and fitted attributes end in ``_``. A mesh splits the sphere into
*regions* (triangles of :class:`~trigeo.mesh.delaunay.DelaunayMesh`, S2 leaves
of :class:`~trigeo.mesh.quadtree.QuadtreeMesh`); the regions holding at least
``minimum_examples`` photos are kept as the *cells* (the classes), numbered
0..K-1 in region order.

This class is the mesh interface code downstream types against (evaluation,
training, prediction take a :class:`Mesh`). A kind implements the geometry:
``fit``, where a point lies (:meth:`Mesh._locate_regions`), the cell label
point, areas and corners, its own arrays on disk and its content hash. The
rest (presets, parameters, counting photos into cells, imagery centroids,
``fill``, ``locate``, save/load, the summary) is here.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import ArtifactError, InputError
from trigeo.mesh.artifact import read_mesh_file, restore_mesh, summary_record, write_mesh_file
from trigeo.points import check_points_source, validate_latlng
from trigeo.provenance import hash_arrays
from trigeo.sphere import latlng_to_xyz, xyz_to_latlng

__all__ = ["PRESETS", "Mesh", "ProgressCallback"]

#: name -> (refinement limit, minimum examples, number of photos the study built it from)
PRESETS: dict[str, tuple[float, float, int]] = {
    "coarse": (8000, 1000, 2_000_000),
    "fine": (5000, 500, 14_000_000),
    "fineP": (10000, 50, 14_000_000),
}

#: Called by ``fit`` after each refinement round with a dict: ``round``, the kind's
#: region count (``triangles`` or ``leaves``), ``over_limit`` and ``splitting``.
ProgressCallback = Callable[[dict[str, Any]], None]

#: Photos per chunk when summing unit vectors into imagery centroids.
_CHUNK = 1 << 20


class Mesh(ABC):
    """An adaptive mesh whose kept regions are the classes (the shared interface).

    Parameters (every kind)
    -----------------------
    refinement_limit
        Split a region that holds MORE than this many photos.
    minimum_examples
        Drop a region that holds FEWER than this many photos.

    Attributes (every fitted kind)
    ------------------------------
    counts_ : ndarray (R,)
        Photos per region (from ``fit`` or ``fill``).
    kept_ : ndarray (R,) bool
        Regions kept as cells.
    cell_regions_ : ndarray (K,)
        Region index of each cell; cell ids are 0..K-1 in region order.
    cell_of_region_ : ndarray (R,)
        Cell id of each region, -1 for a dropped one.
    n_cells_ : int
        K.
    imagery_centroids_ : ndarray (K, 2)
        (lat, lon) of the mean unit vector of each cell's photos.
    n_points_, n_points_kept_ : int
        Photos counted, and those in kept cells.
    points_hash_ : str
        Hash of the counted coordinates.
    points_source_ : dict or None
        Where the points of the last ``fit``/``fill`` came from, as passed in
        ``source`` (see :func:`trigeo.points.read_points_with_source`): keys
        ``path``, ``dataset_sha256``, ``split`` and ``splits_used``. None when
        not given, and for meshes saved before trigeo recorded it. Not part of
        ``mesh_hash``: the same points give the same mesh wherever they were
        read from.
    """

    #: ``delaunay`` or ``quadtree``: the name of the kind (``--kind``).
    kind: ClassVar[str]
    #: What the kind splits, singular and plural (``triangle``/``triangles``).
    region: ClassVar[str]
    regions_name: ClassVar[str]
    #: ``format`` in the kind's files, and the on-disk format version it reads and writes.
    format_name: ClassVar[str]
    format_version: ClassVar[int]
    #: The kind's own arrays in its files (beside counts, kept flags and imagery centroids).
    own_arrays: ClassVar[tuple[str, ...]]
    #: The fitted attribute that says the mesh is fitted.
    _fitted_attribute: ClassVar[str]

    refinement_limit: float
    minimum_examples: float

    # ----------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, scale_to: int | None = None, **kwargs: Any) -> Self:
        """A mesh with the limits of the study's ``coarse``, ``fine`` or ``fineP`` mesh.

        With ``scale_to=N`` both limits are multiplied by ``N / N_study`` so a
        sample of N photos gives about the study's number of cells
        (N_study = 2,000,000 for coarse, 14,000,000 for fine and fineP).
        ``kwargs`` are further constructor parameters.
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
        """Constructor parameters, in the constructor's order (scikit-learn convention)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------ the kind's part
    @abstractmethod
    def fit(
        self,
        lat: ArrayLike,
        lon: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        source: dict[str, Any] | None = None,
    ) -> Self:
        """Refine the mesh on training photos, then count and keep cells; return self."""

    @abstractmethod
    def _locate_regions(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], threads: int = 1
    ) -> NDArray[np.int64]:
        """Region index of each (valid, flat) point."""

    @abstractmethod
    def _region_count(self) -> int:
        """How many regions the mesh has, kept or not."""

    @abstractmethod
    def _set_geometry(self) -> None:
        """Derived state of the regions (search structures), after ``fit`` or ``load``."""

    @abstractmethod
    def _cell_label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of each kept cell's own centre (``centroids("cell")``)."""

    @abstractmethod
    def region_areas_km2(self) -> NDArray[np.float64]:
        """Area of every region, kept or not, in km²."""

    @abstractmethod
    def cell_areas_km2(self) -> NDArray[np.float64]:
        """Area of each kept cell in km² (cell order)."""

    @abstractmethod
    def cell_corners_xyz(self) -> NDArray[np.float64]:
        """Unit-vector corners of each kept cell ``(K, C, 3)``, counter-clockwise seen
        from outside; edges are great-circle arcs."""

    @abstractmethod
    def _region_corners(self) -> NDArray[np.float64]:
        """Unit-vector corners of every region ``(R, C, 3)``."""

    @abstractmethod
    def _hash_arrays(self) -> tuple[NDArray[Any], ...]:
        """The arrays whose hash is ``mesh_hash``."""

    @abstractmethod
    def _structure(self) -> dict[str, Any]:
        """The kind's own entries of :meth:`summary` (after ``cells``)."""

    @abstractmethod
    def _own_arrays(self) -> dict[str, NDArray[Any]]:
        """The kind's own arrays to save, named as in :attr:`own_arrays`."""

    @abstractmethod
    def _restore_own(self, arrays: dict[str, NDArray[Any]]) -> bool:
        """Set the kind's own arrays read back from a file; False if their shapes are wrong."""

    # ------------------------------------------------------------ fill and cells
    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise ArtifactError(
                f"this {type(self).__name__} is not fitted; call fit() or load() first"
            )

    def fill(self, lat: ArrayLike, lon: ArrayLike, *, source: dict[str, Any] | None = None) -> Self:
        """Recount photos, kept cells and imagery centroids on the fixed regions.

        The study built its coarse mesh from 2M photos and then filled it with
        all training photos without refining further; this is that step.
        ``source`` describes the new points as in :meth:`fit` and replaces
        ``points_source_``; without it the record becomes None, since the old
        one no longer describes the counts and labels.
        """
        self._check_fitted()
        checked = None if source is None else check_points_source(source)
        lat, lon = validate_latlng(np.asarray(lat), np.asarray(lon), source="fill")
        self.points_hash_ = hash_arrays(lat, lon)
        self.points_source_ = checked
        self._fill(lat, lon)
        return self

    def _record_points(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], source: dict[str, Any] | None
    ) -> None:
        """The fit's point records: count, hash and (checked) source."""
        self.n_points_fit_ = int(lat.size)
        self.points_hash_ = hash_arrays(lat, lon)
        self.points_source_ = source

    def _fill(
        self,
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        region_of: NDArray[np.int64] | None = None,
        points: NDArray[np.float64] | None = None,
    ) -> None:
        """Counts, kept cells and imagery centroids.

        ``region_of`` is each photo's region when the caller knows it, and
        ``points`` is ``latlng_to_xyz(lat, lon)`` when the caller has it.
        """
        if region_of is None:
            region_of = self._locate_regions(lat, lon)
        self.counts_ = np.bincount(region_of, minlength=self._region_count()).astype(np.int64)
        self.kept_ = self.counts_ >= self.minimum_examples
        self._number_cells()
        self.n_points_ = int(lat.size)
        cell = self.cell_of_region_[region_of]
        self.n_points_kept_ = int((cell >= 0).sum())
        sums = np.zeros((self.n_cells_, 3))
        for start in range(0, lat.size, _CHUNK):
            part = slice(start, start + _CHUNK)
            c = cell[part]
            ok = c >= 0
            p = latlng_to_xyz(lat[part][ok], lon[part][ok]) if points is None else points[part][ok]
            for axis in range(3):
                sums[:, axis] += np.bincount(c[ok], weights=p[:, axis], minlength=self.n_cells_)
        cell_lat, cell_lon = self.centroids("cell")
        norm = np.linalg.norm(sums, axis=1)
        # A cell with no photos (or photos that cancel out) falls back to its centre.
        ok = norm > 1e-12
        img_lat, img_lon = xyz_to_latlng(np.where(ok[:, None], sums, 1.0))
        self.imagery_centroids_ = np.column_stack(
            [np.where(ok, img_lat, cell_lat), np.where(ok, img_lon, cell_lon)]
        )

    def _number_cells(self) -> None:
        """Cell ids 0..K-1 of the kept regions, in region order."""
        self.cell_regions_ = np.flatnonzero(self.kept_).astype(np.int64)
        self.n_cells_ = int(self.cell_regions_.size)
        self.cell_of_region_ = np.full(len(self.kept_), -1, dtype=np.int64)
        self.cell_of_region_[self.cell_regions_] = np.arange(self.n_cells_)

    # ------------------------------------------------------------------ access
    @staticmethod
    def _flat_points(
        lat: ArrayLike, lon: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[int, ...]]:
        """Broadcast, flattened and (when not empty) validated points, and their shape."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        shape = np.broadcast_shapes(lat.shape, lon.shape)
        lat, lon = np.broadcast_to(lat, shape).ravel(), np.broadcast_to(lon, shape).ravel()
        if lat.size:
            lat, lon = validate_latlng(lat, lon, source="locate")
        return lat, lon, shape

    def locate_region(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Region index of each point (any region, kept or not)."""
        self._check_fitted()
        lat, lon, shape = self._flat_points(lat, lon)
        if lat.size == 0:
            return np.zeros(shape, dtype=np.int64)
        return self._locate_regions(lat, lon, threads=threads).reshape(shape)

    def locate(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Cell id (0..K-1) of each point, or -1 for a point in a dropped region.

        Exact, with one answer for a point on a shared edge or vertex (the
        kind's tie rule). ``threads`` spreads the work over threads of this
        process; the answer does not depend on it.
        """
        self._check_fitted()
        lat, lon, shape = self._flat_points(lat, lon)
        if lat.size == 0:
            return np.zeros(shape, dtype=np.int64)
        return self.cell_of_region_[self._locate_regions(lat, lon, threads=threads)].reshape(shape)

    def centroids(self, kind: str = "cell") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of each kept cell's label point.

        ``kind="cell"``: the cell's own centre (a triangle's centroid, an S2
        cell's centre). ``kind="imagery"``: the mean of the unit vectors of the
        cell's training photos.
        """
        self._check_fitted()
        if kind == "cell":
            return self._cell_label_points()
        if kind == "imagery":
            return self.imagery_centroids_[:, 0].copy(), self.imagery_centroids_[:, 1].copy()
        raise InputError(f"unknown centroid kind {kind!r}; use 'cell' or 'imagery'")

    def cell_counts(self) -> NDArray[np.int64]:
        """Photos per kept cell (cell order), from the last ``fit``/``fill``."""
        self._check_fitted()
        return self.counts_[self.cell_regions_]

    def regions(self) -> dict[str, Any]:
        """Every region, kept or not, for drawing and export: ``name`` (the region
        word), ``corners`` ``(R, C, 3)``, ``counts``, ``kept``, ``cell`` (-1 if
        dropped) and ``areas_km2``, plus the kind's own entries."""
        self._check_fitted()
        return {
            "name": self.region,
            "corners": self._region_corners(),
            "counts": self.counts_,
            "kept": self.kept_,
            "cell": self.cell_of_region_,
            "areas_km2": self.region_areas_km2(),
            **self._extra_regions(),
        }

    def _extra_regions(self) -> dict[str, Any]:
        return {}

    @property
    def mesh_hash(self) -> str:
        """Content hash of the regions and kept flags (stable across save/load).

        ``points_source_`` is left out on purpose: it says where the points
        were read from, and the same points read from a copy give the same mesh.
        """
        self._check_fitted()
        return hash_arrays(*self._hash_arrays())

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write the mesh to ONE file (``.npz`` container), atomically.

        The file records the parameters, a hash of the input points, where
        they came from (``points_source_``), the trigeo version, the on-disk
        format version and the mesh hash.
        """
        self._check_fitted()
        arrays = {
            **self._own_arrays(),
            "counts": np.asarray(self.counts_, dtype=np.int64),
            "kept": np.asarray(self.kept_, dtype=bool),
            "imagery_centroids": np.asarray(self.imagery_centroids_, dtype=np.float64),
        }
        return write_mesh_file(self, path, self.format_name, self.format_version, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a mesh of this kind written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If the file is missing, corrupt, not a mesh of this kind, or
            written in another format version.
        """
        path = Path(path)
        arrays, meta = read_mesh_file(path, cls.format_name, cls.format_version)
        mesh = restore_mesh(cls, path, arrays, meta, set(cls.own_arrays))
        ok_shapes = mesh._restore_own(arrays)
        if not ok_shapes or mesh.mesh_hash != meta.get("mesh_hash"):
            raise ArtifactError(f"{path}: mesh file is corrupt (content hash does not match)")
        mesh._set_geometry()
        mesh._number_cells()
        if mesh.imagery_centroids_.shape != (mesh.n_cells_, 2):
            raise ArtifactError(f"{path}: mesh file is corrupt (imagery centroids)")
        return mesh

    # -------------------------------------------------------------- summaries
    def summary(self) -> dict[str, Any]:
        """Cells, the kind's regions, dropped share, cell areas, photos per cell, points
        source and warnings, for ``trigeo mesh info``.

        ``warnings`` lists problems in words: no cell kept, or kept cells holding
        fewer than :data:`~trigeo.mesh.artifact.MIN_PHOTOS_PER_CELL` photos on average.
        """
        self._check_fitted()
        return summary_record(self, self._structure(), self.region)
