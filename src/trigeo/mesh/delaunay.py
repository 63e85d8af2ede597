"""The adaptive spherical Delaunay mesh of the reference study.

Build: a 31x31 latitude/longitude grid (rows uniform in sin(latitude), so the
triangles have nearly equal area) plus the poles, triangulated as the convex
hull of the unit vectors (on the sphere, the convex hull IS the Delaunay
triangulation). Every triangle holding more than ``refinement_limit`` photos
gets a new vertex at its centroid and the whole vertex set is re-triangulated;
this repeats until no triangle is over the limit or none of those over it can
usefully split. Triangles with fewer than ``minimum_examples`` photos are
dropped; the rest are the cells (classes), numbered 0..K-1 in triangle order.

A mesh also records where its points came from (``points_source_``: file,
dataset hash, split filter, splits used), so that training can refuse a mesh
built partly from evaluation photos, and warns (``summary()["warnings"]``)
when its kept cells hold too few photos to learn a class from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import ConvexHull

from trigeo.errors import ArtifactError, InputError
from trigeo.mesh.artifact import (
    MIN_PHOTOS_PER_CELL,
    read_mesh_file,
    restore_mesh,
    summary_record,
    write_mesh_file,
)
from trigeo.mesh.locate import (
    TriangleLocator,
    edge_normals,
    exact_from_walk,
    triangle_neighbors,
    walk_locate,
)
from trigeo.points import check_points_source, validate_latlng
from trigeo.provenance import hash_arrays
from trigeo.sphere import EARTH_RADIUS_KM, latlng_to_xyz, triangle_area, xyz_to_latlng

__all__ = ["FORMAT_VERSION", "MIN_PHOTOS_PER_CELL", "PRESETS", "DelaunayMesh", "initial_grid"]

#: Version of the on-disk mesh format; a file with another version is refused.
#: Optional metadata added later (``points_source``) does not change it: older
#: files load without it, and older trigeo versions ignore it.
FORMAT_VERSION = 1
_FORMAT_NAME = "trigeo.mesh.DelaunayMesh"

#: name -> (refinement limit, minimum examples, number of photos the study built it from)
PRESETS: dict[str, tuple[float, float, int]] = {
    "coarse": (8000, 1000, 2_000_000),
    "fine": (5000, 500, 14_000_000),
    "fineP": (10000, 50, 14_000_000),
}

ProgressCallback = Callable[[dict[str, Any]], None]


def initial_grid(n: int = 31) -> NDArray[np.float64]:
    """Initial vertices ``(n*n + 2, 2)`` as (lat, lon) degrees.

    ``n`` rows uniform in sin(latitude) at ``z = -1 + (2i - 1)/n`` (the middle
    row is the equator) with ``n`` equally spaced longitudes each, every other
    row shifted by half a step, then the south and north poles. By Archimedes
    the bands between rows have equal area and each polar cap half that, so a
    cap's n triangles and a band's 2n triangles have nearly the same area (the
    study's "equal surface area per triangle"); the half-step shift makes the
    band triangles near-isosceles instead of cut trapezoids, and avoids four
    co-circular vertices, so the Delaunay triangulation is unique.
    """
    z = -1.0 + (2.0 * np.arange(1, n + 1) - 1.0) / n
    lat = np.degrees(np.arcsin(z))
    lon = -180.0 + 360.0 * np.arange(n) / n
    grid_lat, grid_lon = np.meshgrid(lat, lon, indexing="ij")
    grid_lon = grid_lon + (np.arange(n)[:, None] % 2) * (180.0 / n)
    vertices = np.column_stack([grid_lat.ravel(), grid_lon.ravel()])
    poles = np.array([[-90.0, 0.0], [90.0, 0.0]])
    return np.vstack([vertices, poles])


def _hull_triangles(xyz: NDArray[np.float64]) -> NDArray[np.int64]:
    """Delaunay triangulation of points on the sphere, in a canonical order.

    Triangles are made counter-clockwise seen from outside, rotated so their
    smallest vertex index comes first, and sorted, so the result does not
    depend on qhull's facet order.
    """
    tri = ConvexHull(xyz).simplices.astype(np.int64)
    a, b, c = xyz[tri[:, 0]], xyz[tri[:, 1]], xyz[tri[:, 2]]
    det = np.einsum("ij,ij->i", a, np.cross(b, c))
    flip = det < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    shift = np.argmin(tri, axis=1)
    rows = np.arange(len(tri))[:, None]
    tri = tri[rows, (shift[:, None] + np.arange(3)[None, :]) % 3]
    order = np.lexsort((tri[:, 2], tri[:, 1], tri[:, 0]))
    return np.ascontiguousarray(tri[order])


def _areas_km2(xyz: NDArray[np.float64], triangles: NDArray[np.int64]) -> NDArray[np.float64]:
    t = triangles
    return triangle_area(xyz[t[:, 0]], xyz[t[:, 1]], xyz[t[:, 2]]) * EARTH_RADIUS_KM**2


def _triangle_keys(tri: NDArray[np.int64], n_vertices: int) -> NDArray[np.int64]:
    s = np.sort(tri, axis=1)
    return (s[:, 0] * n_vertices + s[:, 1]) * n_vertices + s[:, 2]


class DelaunayMesh:
    """Adaptive spherical Delaunay mesh whose kept triangles are the classes.

    Parameters
    ----------
    refinement_limit
        Split a triangle that holds MORE than this many photos.
    minimum_examples
        Drop a triangle that holds FEWER than this many photos.
    init_grid
        Rows and columns of the initial grid (31 in the study).
    min_area_km2
        Stop rule: a triangle smaller than this never splits again. Together
        with the rule that a triangle whose photos all share one coordinate
        never splits, this ends refinement on stacks of identical coordinates.
    max_rounds
        Safety cap on refinement rounds.

    Attributes
    ----------
    vertices_ : ndarray (V, 2)
        Vertex (lat, lon) in degrees.
    triangles_ : ndarray (T, 3)
        Vertex indices, counter-clockwise seen from outside.
    counts_ : ndarray (T,)
        Photos per triangle (from ``fit`` or ``fill``).
    kept_ : ndarray (T,) bool
        Triangles kept as cells.
    cell_triangles_ : ndarray (K,)
        Triangle index of each cell; cell ids are 0..K-1 in triangle order.
    n_cells_ : int
        K.
    points_source_ : dict or None
        Where the points of the last ``fit``/``fill`` came from, as passed in
        ``source`` (see :func:`trigeo.points.read_points_with_source`): keys
        ``path``, ``dataset_sha256``, ``split`` and ``splits_used``. None when
        not given, and for meshes saved before trigeo recorded it. Not part of
        ``mesh_hash``: the same points give the same mesh wherever they were
        read from.
    """

    kind = "delaunay"

    def __init__(
        self,
        refinement_limit: float = 5000,
        minimum_examples: float = 500,
        init_grid: int = 31,
        min_area_km2: float = 0.01,
        max_rounds: int = 200,
    ) -> None:
        self.refinement_limit = refinement_limit
        self.minimum_examples = minimum_examples
        self.init_grid = init_grid
        self.min_area_km2 = min_area_km2
        self.max_rounds = max_rounds

    # ----------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, scale_to: int | None = None, **kwargs: Any) -> DelaunayMesh:
        """A mesh with the study's parameters ``coarse``, ``fine`` or ``fineP``.

        With ``scale_to=N`` both limits are multiplied by ``N / N_study`` so a
        sample of N photos gives about the study's number of cells
        (N_study = 2,000,000 for coarse, 14,000,000 for fine and fineP).
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
            "init_grid": self.init_grid,
            "min_area_km2": self.min_area_km2,
            "max_rounds": self.max_rounds,
        }

    # --------------------------------------------------------------------- fit
    def fit(
        self,
        lat: ArrayLike,
        lon: ArrayLike,
        *,
        progress: ProgressCallback | None = None,
        source: dict[str, Any] | None = None,
    ) -> DelaunayMesh:
        """Refine the mesh on training photos, then count and keep cells.

        Parameters
        ----------
        lat, lon
            Photo coordinates in degrees.
        progress
            Called after each refinement round with a dict (``round``,
            ``triangles``, ``over_limit``, ``splitting``).
        source
            Where ``lat``/``lon`` came from, kept as ``points_source_`` and
            saved with the mesh: the record :func:`trigeo.points.read_points_with_source`
            returns. None records nothing (``points_source_ = None``).

        Raises
        ------
        InputError
            On bad coordinates, or a ``source`` without exactly the keys
            ``path``, ``dataset_sha256``, ``split``, ``splits_used``.
        """
        # Checked first: a bad record should not cost a whole refinement.
        checked = None if source is None else check_points_source(source)
        lat, lon = validate_latlng(np.asarray(lat), np.asarray(lon), source="fit")
        vertices = initial_grid(self.init_grid)
        xyz = latlng_to_xyz(vertices[:, 0], vertices[:, 1])
        triangles = _hull_triangles(xyz)
        # Unit vectors once: every round re-locates photos by walking on them.
        points = latlng_to_xyz(lat, lon)
        tri_of = self._walk_from_grid(xyz, triangles, points, lat, lon)
        self.n_rounds_ = 0
        self.n_unsplittable_ = 0
        for round_index in range(self.max_rounds):
            counts = np.bincount(tri_of, minlength=len(triangles))
            over = counts > self.refinement_limit
            n_over = int(over.sum())
            split = over & self._splittable(over, tri_of, lat, lon, xyz, triangles)
            n_split = int(split.sum())
            self.n_unsplittable_ = n_over - n_split
            if progress is not None:
                progress(
                    {
                        "round": round_index,
                        "triangles": len(triangles),
                        "over_limit": n_over,
                        "splitting": n_split,
                    }
                )
            if n_split == 0:
                break
            self.n_rounds_ = round_index + 1
            corners = xyz[triangles[split]]
            centre = corners.sum(axis=1)
            new_lat, new_lon = xyz_to_latlng(centre)
            # Store vertices as lat/lon and derive xyz from them, so a vertex given
            # back as lat/lon maps to exactly the same unit vector.
            vertices = np.vstack([vertices, np.column_stack([new_lat, new_lon])])
            xyz = np.vstack([xyz, latlng_to_xyz(new_lat, new_lon)])
            new_triangles = _hull_triangles(xyz)
            tri_of = self._relocate(xyz, triangles, new_triangles, tri_of, points, lat, lon)
            triangles = new_triangles
        self.vertices_ = vertices
        self.triangles_ = triangles
        self._locator = None
        self.n_points_fit_ = int(lat.size)
        self.points_hash_ = hash_arrays(lat, lon)
        self.points_source_ = checked
        # The walk's triangle is the exact answer wherever the point is certainly
        # inside it; only points at an edge or vertex need the tie rule.
        self._fill(lat, lon, exact_from_walk(xyz, triangles, points, tri_of, lat, lon), points)
        return self

    def _splittable(
        self,
        over: NDArray[np.bool_],
        tri_of: NDArray[np.int64],
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        xyz: NDArray[np.float64],
        triangles: NDArray[np.int64],
    ) -> NDArray[np.bool_]:
        """Triangles that can usefully split: photos at >1 coordinate, area above the floor."""
        n_tri = len(triangles)
        if not over.any():
            return np.zeros(n_tri, dtype=bool)
        sel = np.flatnonzero(over[tri_of])
        t = tri_of[sel]
        # A representative photo per triangle (any one): the triangle has more than
        # one coordinate iff some photo differs from it.
        rep_lat = np.zeros(n_tri)
        rep_lon = np.zeros(n_tri)
        rep_lat[t] = lat[sel]
        rep_lon[t] = lon[sel]
        differs = (lat[sel] != rep_lat[t]) | (lon[sel] != rep_lon[t])
        varied = np.bincount(t[differs], minlength=n_tri) > 0
        return varied & (_areas_km2(xyz, triangles) >= self.min_area_km2)

    @staticmethod
    def _walk_from_grid(
        xyz: NDArray[np.float64],
        triangles: NDArray[np.int64],
        points: NDArray[np.float64],
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
    ) -> NDArray[np.int64]:
        """Locate photos in the initial grid: walk from the triangle of a 1° cell's centre."""
        rows, cols = np.divmod(np.arange(180 * 360), 360)
        centres = latlng_to_xyz(-89.5 + rows, -179.5 + cols)
        # Centres walk one after another from the previous centre's triangle.
        start = np.zeros(len(centres), dtype=np.int64)
        grid = np.empty(len(centres), dtype=np.int64)
        normals = edge_normals(xyz, triangles)
        neighbors = triangle_neighbors(triangles)
        prev = 0
        for row in range(180):
            block = slice(row * 360, (row + 1) * 360)
            start[block] = prev
            found = walk_locate(
                xyz, triangles, centres[block], start[block], normals, neighbors, 100_000
            )
            grid[block] = np.where(found >= 0, found, 0)
            prev = int(grid[row * 360])
        r = np.clip((lat + 90.0).astype(np.int64), 0, 179)
        c = np.clip((lon + 180.0).astype(np.int64), 0, 359)
        result = walk_locate(xyz, triangles, points, grid[r * 360 + c], normals, neighbors)
        lost = np.flatnonzero(result < 0)
        if lost.size:
            result[lost] = TriangleLocator(xyz, triangles).locate(lat[lost], lon[lost])
        return result

    @staticmethod
    def _relocate(
        xyz: NDArray[np.float64],
        old: NDArray[np.int64],
        new: NDArray[np.int64],
        tri_of: NDArray[np.int64],
        points: NDArray[np.float64],
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
    ) -> NDArray[np.int64]:
        """Triangle of every photo after re-triangulation, touching only changed triangles.

        Triangles present in both triangulations keep their photos. A photo of
        a vanished triangle walks from a new triangle at one of its old
        corners (every old vertex survives), which is a few steps away.
        """
        n_v = len(xyz)
        _, old_idx, new_idx = np.intersect1d(
            _triangle_keys(old, n_v), _triangle_keys(new, n_v), return_indices=True
        )
        old_to_new = np.full(len(old), -1, dtype=np.int64)
        old_to_new[old_idx] = new_idx
        result = old_to_new[tri_of]
        moved = np.flatnonzero(result < 0)
        if moved.size:
            incident = np.empty(n_v, dtype=np.int64)
            incident[new.ravel()] = np.repeat(np.arange(len(new)), 3)
            start = incident[old[tri_of[moved], 0]]
            found = walk_locate(xyz, new, points[moved], start)
            result[moved] = found
            lost = moved[found < 0]
            if lost.size:  # rounding trapped a walk: ask the exact locator
                result[lost] = TriangleLocator(xyz, new).locate(lat[lost], lon[lost])
        return result

    # -------------------------------------------------------------------- fill
    def fill(
        self, lat: ArrayLike, lon: ArrayLike, *, source: dict[str, Any] | None = None
    ) -> DelaunayMesh:
        """Recount photos, kept cells and imagery centroids on the fixed triangulation.

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

    def _fill(
        self,
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        tri_of: NDArray[np.int64] | None = None,
        points: NDArray[np.float64] | None = None,
    ) -> None:
        """Counts, kept cells and imagery centroids; ``points`` is
        ``latlng_to_xyz(lat, lon)`` when the caller already has it."""
        if tri_of is None:
            tri_of = self._get_locator().locate(lat, lon)
        n_tri = len(self.triangles_)
        self.counts_ = np.bincount(tri_of, minlength=n_tri).astype(np.int64)
        self.kept_ = self.counts_ >= self.minimum_examples
        self._number_cells()
        self.n_points_ = int(lat.size)
        cell = self.cell_of_triangle_[tri_of]
        inside = cell >= 0
        self.n_points_kept_ = int(inside.sum())
        sums = np.zeros((self.n_cells_, 3))
        chunk = 1 << 20
        for start in range(0, lat.size, chunk):
            part = slice(start, start + chunk)
            c = cell[part]
            ok = c >= 0
            p = latlng_to_xyz(lat[part][ok], lon[part][ok]) if points is None else points[part][ok]
            for axis in range(3):
                sums[:, axis] += np.bincount(c[ok], weights=p[:, axis], minlength=self.n_cells_)
        self._set_imagery(sums)

    def _set_imagery(self, sums: NDArray[np.float64]) -> None:
        cell_lat, cell_lon = self.centroids("cell")
        norm = np.linalg.norm(sums, axis=1)
        # A cell with no photos (or photos that cancel out) falls back to its centre.
        ok = norm > 1e-12
        img_lat, img_lon = xyz_to_latlng(np.where(ok[:, None], sums, 1.0))
        self.imagery_centroids_ = np.column_stack(
            [np.where(ok, img_lat, cell_lat), np.where(ok, img_lon, cell_lon)]
        )

    def _number_cells(self) -> None:
        self.cell_triangles_ = np.flatnonzero(self.kept_).astype(np.int64)
        self.n_cells_ = int(self.cell_triangles_.size)
        self.cell_of_triangle_ = np.full(len(self.triangles_), -1, dtype=np.int64)
        self.cell_of_triangle_[self.cell_triangles_] = np.arange(self.n_cells_)

    # ------------------------------------------------------------------ access
    def _check_fitted(self) -> None:
        if not hasattr(self, "triangles_"):
            raise ArtifactError("this DelaunayMesh is not fitted; call fit() or load() first")

    @property
    def vertices_xyz_(self) -> NDArray[np.float64]:
        """Vertex unit vectors ``(V, 3)``."""
        self._check_fitted()
        return latlng_to_xyz(self.vertices_[:, 0], self.vertices_[:, 1])

    def _get_locator(self) -> TriangleLocator:
        if getattr(self, "_locator", None) is None:
            self._locator = TriangleLocator(self.vertices_xyz_, self.triangles_)
        return self._locator

    def locate_triangle(
        self, lat: ArrayLike, lon: ArrayLike, threads: int = 1
    ) -> NDArray[np.int64]:
        """Triangle index of each point (any triangle, kept or not)."""
        self._check_fitted()
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        shape = np.broadcast_shapes(lat.shape, lon.shape)
        lat, lon = np.broadcast_to(lat, shape).ravel(), np.broadcast_to(lon, shape).ravel()
        if lat.size == 0:
            return np.zeros(shape, dtype=np.int64)
        lat, lon = validate_latlng(lat, lon, source="locate")
        return self._get_locator().locate(lat, lon, threads=threads).reshape(shape)

    def locate(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Cell id (0..K-1) of each point, or -1 for a point in a dropped triangle.

        Exact: a point on an edge or vertex goes to the lowest-index triangle
        containing it (see :mod:`trigeo.mesh.locate`). ``threads`` spreads the
        work over threads of this process; the answer does not depend on it.
        """
        triangle = self.locate_triangle(lat, lon, threads=threads)
        return self.cell_of_triangle_[triangle]

    def centroids(self, kind: str = "cell") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of each kept cell's label point.

        ``kind="cell"``: the triangle's centroid (normalized sum of its corner
        unit vectors). ``kind="imagery"``: the mean of the unit vectors of the
        cell's training photos.
        """
        self._check_fitted()
        if kind == "cell":
            xyz = self.vertices_xyz_[self.triangles_[self.cell_triangles_]].sum(axis=1)
            return xyz_to_latlng(xyz)
        if kind == "imagery":
            return self.imagery_centroids_[:, 0].copy(), self.imagery_centroids_[:, 1].copy()
        raise InputError(f"unknown centroid kind {kind!r}; use 'cell' or 'imagery'")

    def triangle_areas_km2(self) -> NDArray[np.float64]:
        """Area of every triangle in km²."""
        return _areas_km2(self.vertices_xyz_, self.triangles_)

    def cell_areas_km2(self) -> NDArray[np.float64]:
        """Area of each kept cell in km² (cell order)."""
        return self.triangle_areas_km2()[self.cell_triangles_]

    def cell_counts(self) -> NDArray[np.int64]:
        """Photos per kept cell (cell order), from the last ``fit``/``fill``."""
        self._check_fitted()
        return self.counts_[self.cell_triangles_]

    def cell_corners_xyz(self) -> NDArray[np.float64]:
        """Unit-vector corners of each kept cell ``(K, 3, 3)``, counter-clockwise seen
        from outside (a quad-tree gives ``(K, 4, 3)``); edges are great-circle arcs."""
        self._check_fitted()
        return self.vertices_xyz_[self.triangles_[self.cell_triangles_]]

    def regions(self) -> dict[str, Any]:
        """Every triangle, kept or not, for drawing and export: ``name``, ``corners``
        ``(T, 3, 3)``, ``counts``, ``kept``, ``cell`` (-1 if dropped), ``areas_km2``."""
        self._check_fitted()
        return {
            "name": "triangle",
            "corners": self.vertices_xyz_[self.triangles_],
            "counts": self.counts_,
            "kept": self.kept_,
            "cell": self.cell_of_triangle_,
            "areas_km2": self.triangle_areas_km2(),
        }

    @property
    def mesh_hash(self) -> str:
        """Content hash of vertices, triangles and kept cells (stable across save/load).

        ``points_source_`` is left out on purpose: it says where the points
        were read from, and the same points read from a copy give the same mesh.
        """
        self._check_fitted()
        return hash_arrays(
            np.ascontiguousarray(self.vertices_, dtype=np.float64),
            np.ascontiguousarray(self.triangles_, dtype=np.int64),
            np.ascontiguousarray(self.kept_, dtype=bool),
        )

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write the mesh to ONE file (``.npz`` container), atomically.

        The file records the parameters, a hash of the input points, where
        they came from (``points_source_``), the trigeo version, the on-disk
        format version and the mesh hash.
        """
        self._check_fitted()
        arrays = {
            "vertices": np.asarray(self.vertices_, dtype=np.float64),
            "triangles": np.asarray(self.triangles_, dtype=np.int64),
            "counts": np.asarray(self.counts_, dtype=np.int64),
            "kept": np.asarray(self.kept_, dtype=bool),
            "imagery_centroids": np.asarray(self.imagery_centroids_, dtype=np.float64),
        }
        return write_mesh_file(self, path, _FORMAT_NAME, FORMAT_VERSION, arrays)

    @classmethod
    def load(cls, path: str | Path) -> DelaunayMesh:
        """Read a mesh written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If the file is missing, corrupt, not a mesh, or written in another
            format version.
        """
        path = Path(path)
        arrays, meta = read_mesh_file(path, _FORMAT_NAME, FORMAT_VERSION)
        mesh = restore_mesh(cls, path, arrays, meta, {"vertices", "triangles"})
        mesh.vertices_ = arrays["vertices"].astype(np.float64)
        mesh.triangles_ = arrays["triangles"].astype(np.int64)
        mesh._locator = None
        ok_shapes = (
            mesh.vertices_.ndim == 2
            and mesh.vertices_.shape[1] == 2
            and mesh.triangles_.ndim == 2
            and mesh.triangles_.shape[1] == 3
            and mesh.counts_.shape == mesh.kept_.shape == (len(mesh.triangles_),)
        )
        if not ok_shapes or mesh.mesh_hash != meta.get("mesh_hash"):
            raise ArtifactError(f"{path}: mesh file is corrupt (content hash does not match)")
        mesh._number_cells()
        if mesh.imagery_centroids_.shape != (mesh.n_cells_, 2):
            raise ArtifactError(f"{path}: mesh file is corrupt (imagery centroids)")
        return mesh

    # -------------------------------------------------------------- summaries
    def summary(self) -> dict[str, Any]:
        """Cells, triangles, dropped share, cell areas, photos per cell, points source
        and warnings, for ``trigeo mesh info``.

        ``warnings`` lists problems in words: no cell kept, or kept cells holding
        fewer than :data:`MIN_PHOTOS_PER_CELL` photos on average.
        """
        self._check_fitted()
        structure = {"triangles": len(self.triangles_), "vertices": len(self.vertices_)}
        return summary_record(self, structure, "triangle")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"DelaunayMesh({params})"
