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

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import ConvexHull

from trigeo.mesh.artifact import MIN_PHOTOS_PER_CELL
from trigeo.mesh.base import PRESETS, Mesh, ProgressCallback
from trigeo.mesh.locate import (
    TriangleLocator,
    edge_normals,
    exact_from_walk,
    triangle_neighbors,
    walk_locate,
)
from trigeo.points import check_points_source, validate_latlng
from trigeo.sphere import EARTH_RADIUS_KM, latlng_to_xyz, triangle_area, xyz_to_latlng

__all__ = ["FORMAT_VERSION", "MIN_PHOTOS_PER_CELL", "PRESETS", "DelaunayMesh", "initial_grid"]

#: Version of the on-disk mesh format; a file with another version is refused.
#: Optional metadata added later (``points_source``) does not change it: older
#: files load without it, and older trigeo versions ignore it.
FORMAT_VERSION = 1
_FORMAT_NAME = "trigeo.mesh.DelaunayMesh"


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


class DelaunayMesh(Mesh):
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
        Triangle index of each cell (``cell_regions_``); cell ids are 0..K-1 in
        triangle order.
    n_cells_ : int
        K.

    and the attributes every :class:`~trigeo.mesh.base.Mesh` has
    (``imagery_centroids_``, ``points_source_``, ...).
    """

    kind = "delaunay"
    region = "triangle"
    regions_name = "triangles"
    format_name = _FORMAT_NAME
    format_version = FORMAT_VERSION
    own_arrays = ("vertices", "triangles")
    _fitted_attribute = "triangles_"

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
        self._set_geometry()
        self._record_points(lat, lon, checked)
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

    # ------------------------------------------------------------------ geometry
    def _region_count(self) -> int:
        return len(self.triangles_)

    def _set_geometry(self) -> None:
        self._locator: TriangleLocator | None = None

    @property
    def vertices_xyz_(self) -> NDArray[np.float64]:
        """Vertex unit vectors ``(V, 3)``."""
        self._check_fitted()
        return latlng_to_xyz(self.vertices_[:, 0], self.vertices_[:, 1])

    @property
    def cell_triangles_(self) -> NDArray[np.int64]:
        """Triangle index of each cell (``cell_regions_``)."""
        return self.cell_regions_

    @property
    def cell_of_triangle_(self) -> NDArray[np.int64]:
        """Cell id of each triangle, -1 if dropped (``cell_of_region_``)."""
        return self.cell_of_region_

    def _get_locator(self) -> TriangleLocator:
        if getattr(self, "_locator", None) is None:
            self._locator = TriangleLocator(self.vertices_xyz_, self.triangles_)
        return self._locator

    def _locate_regions(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], threads: int = 1
    ) -> NDArray[np.int64]:
        # Exact: a point on an edge or vertex goes to the lowest-index triangle
        # containing it (see trigeo.mesh.locate).
        return self._get_locator().locate(lat, lon, threads=threads)

    def locate_triangle(
        self, lat: ArrayLike, lon: ArrayLike, threads: int = 1
    ) -> NDArray[np.int64]:
        """Triangle index of each point (any triangle, kept or not)."""
        return self.locate_region(lat, lon, threads=threads)

    def _cell_label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        # The triangle's centroid: the normalized sum of its corner unit vectors.
        return xyz_to_latlng(self.vertices_xyz_[self.triangles_[self.cell_regions_]].sum(axis=1))

    def region_areas_km2(self) -> NDArray[np.float64]:
        """Area of every triangle in km²."""
        return _areas_km2(self.vertices_xyz_, self.triangles_)

    triangle_areas_km2 = region_areas_km2

    def cell_areas_km2(self) -> NDArray[np.float64]:
        """Area of each kept cell in km² (cell order)."""
        return self.region_areas_km2()[self.cell_regions_]

    def cell_corners_xyz(self) -> NDArray[np.float64]:
        """Unit-vector corners of each kept cell ``(K, 3, 3)``, counter-clockwise seen
        from outside (a quad-tree gives ``(K, 4, 3)``); edges are great-circle arcs."""
        self._check_fitted()
        return self.vertices_xyz_[self.triangles_[self.cell_regions_]]

    def _region_corners(self) -> NDArray[np.float64]:
        return self.vertices_xyz_[self.triangles_]

    def _hash_arrays(self) -> tuple[NDArray[Any], ...]:
        return (
            np.ascontiguousarray(self.vertices_, dtype=np.float64),
            np.ascontiguousarray(self.triangles_, dtype=np.int64),
            np.ascontiguousarray(self.kept_, dtype=bool),
        )

    # -------------------------------------------------------------- file, summary
    def _own_arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "vertices": np.asarray(self.vertices_, dtype=np.float64),
            "triangles": np.asarray(self.triangles_, dtype=np.int64),
        }

    def _restore_own(self, arrays: dict[str, NDArray[Any]]) -> bool:
        self.vertices_ = arrays["vertices"].astype(np.float64)
        self.triangles_ = arrays["triangles"].astype(np.int64)
        return (
            self.vertices_.ndim == 2
            and self.vertices_.shape[1] == 2
            and self.triangles_.ndim == 2
            and self.triangles_.shape[1] == 3
            and self.counts_.shape == self.kept_.shape == (len(self.triangles_),)
        )

    def _structure(self) -> dict[str, Any]:
        return {"triangles": len(self.triangles_), "vertices": len(self.vertices_)}
