"""Exact point location in a triangulation of the sphere.

The predicate
-------------
A triangle ``(a, b, c)`` is stored counter-clockwise seen from outside the
sphere. A point ``p`` (the unit vector ``latlng_to_xyz(lat, lon)``, rounded to
float64 exactly as :func:`trigeo.sphere.latlng_to_xyz` computes it) lies in the
triangle when the three determinants ``det(a, b, p)``, ``det(b, c, p)`` and
``det(c, a, p)`` are all ``>= 0``, the determinants taken in EXACT arithmetic
on the float64 inputs. Exactness means the triangles of a triangulation cover
every point (no gaps between neighbours from rounding) and a point on an edge
or a vertex is in every triangle that touches it.

Tie rule: a point is assigned to the LOWEST triangle index among all triangles
that contain it. :func:`locate_brute_force` implements the rule literally by
testing every triangle; :class:`TriangleLocator` gives the same answer fast.

How exactness stays cheap: the determinant is first evaluated in floating point
as ``n · p`` with the edge normal ``n = a × b`` precomputed. Its rounding error
is below ``2e-15`` for unit vectors, so any value with ``|n · p| > 1e-13`` has
the right sign; only the rare values inside that band are recomputed with
Python integers (exact).

The fast path
-------------
A hierarchy of latitude/longitude rasters. A raster cell whose whole area
(plus a safety margin) lies strictly inside one triangle answers directly,
without trigonometry. A cell that only one triangle can touch also answers
directly (the triangulation covers the sphere, so that triangle contains every
point of the cell). Other cells split ``factor x factor`` into children, down
to a maximum depth. The numpy path tests a leaf's candidate list in ascending
triangle order with the exact predicate, which is the tie rule; the compiled
path stores leaves as edge, fan and general records (see
:meth:`TriangleLocator._compile_leaves`) and sends any point whose sign it
cannot certify back to that exact scan.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.mesh import _kernels
from trigeo.sphere import latlng_to_xyz, xyz_to_latlng

__all__ = [
    "TriangleLocator",
    "contains_exact",
    "edge_normals",
    "exact_from_walk",
    "locate_brute_force",
    "orient_exact",
    "triangle_neighbors",
    "walk_locate",
]

# |n·p| above this has a certain sign (float error < 2e-15 for unit vectors).
_FILTER = 1e-13
# Raster cells are widened by this many degrees so a point that floor() puts in
# a neighbouring cell by rounding is still inside the rectangle we reasoned about.
_PAD_DEG = 1e-7
# Margin on normalized n·p when deciding "certainly inside/outside" for a cell.
_MARGIN = 1e-9
_SCALE_BITS = 1100  # 2**1100 turns every float64 (>= 2**-1074) into an integer


def edge_normals(xyz: NDArray[np.float64], triangles: NDArray[np.integer]) -> NDArray[np.float64]:
    """Edge normals ``(T, 3, 3)``: row ``i`` is ``v_i × v_{i+1}`` of each triangle.

    Written out component by component (not ``np.cross``) so the rounding is
    fixed and identical wherever the normals are computed.
    """
    a = xyz[triangles]  # (T, 3, 3): corner, component
    b = a[:, [1, 2, 0], :]
    n = np.empty_like(a)
    n[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    n[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    n[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return n


def _dot3(n: NDArray[np.float64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    # Fixed evaluation order: (nx*px + ny*py) + nz*pz.
    return n[..., 0] * p[..., 0] + n[..., 1] * p[..., 1] + n[..., 2] * p[..., 2]


def _as_int(value: float) -> int:
    num, den = float(value).as_integer_ratio()
    return num * ((1 << _SCALE_BITS) // den)


def orient_exact(a: ArrayLike, b: ArrayLike, p: ArrayLike) -> int:
    """Exact sign (-1, 0, 1) of ``det([a; b; p])`` for float64 3-vectors."""
    ax, ay, az = (_as_int(v) for v in np.asarray(a, dtype=np.float64))
    bx, by, bz = (_as_int(v) for v in np.asarray(b, dtype=np.float64))
    px, py, pz = (_as_int(v) for v in np.asarray(p, dtype=np.float64))
    det = ax * (by * pz - bz * py) - ay * (bx * pz - bz * px) + az * (bx * py - by * px)
    return (det > 0) - (det < 0)


def _edge_signs(
    s: NDArray[np.float64],
    xyz: NDArray[np.float64],
    tri: NDArray[np.integer],
    p: NDArray[np.float64],
) -> NDArray[np.int8]:
    """Exact signs of float estimates ``s`` (m, 3) for triangles ``tri`` (m, 3), points p (m, 3)."""
    sign = np.sign(s).astype(np.int8)
    rows, cols = np.nonzero(np.abs(s) <= _FILTER)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        sign[r, c] = orient_exact(xyz[tri[r, c]], xyz[tri[r, (c + 1) % 3]], p[r])
    return sign


def contains_exact(
    xyz: NDArray[np.float64],
    triangles: NDArray[np.integer],
    normals: NDArray[np.float64],
    tri_index: NDArray[np.integer],
    p: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Exact test: does triangle ``tri_index[k]`` contain point ``p[k]`` (closed)?"""
    s = _dot3(normals[tri_index], p[:, None, :])  # (m, 3)
    certain_out = (s < -_FILTER).any(axis=1)
    result = (s > _FILTER).all(axis=1)
    unsure = np.flatnonzero(~certain_out & ~result)
    if unsure.size:
        signs = _edge_signs(s[unsure], xyz, triangles[tri_index[unsure]], p[unsure])
        result[unsure] = (signs >= 0).all(axis=1)
    return result


def locate_brute_force(
    xyz: NDArray[np.float64],
    triangles: NDArray[np.integer],
    p: NDArray[np.float64],
    chunk: int = 256,
) -> NDArray[np.int64]:
    """Reference point location: lowest index of every triangle containing each point.

    Tests every triangle for every point (O(n·T)); for tests and validation.
    Returns -1 where no triangle contains the point (impossible for a valid
    triangulation of the whole sphere).
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
    normals = edge_normals(xyz, triangles)
    out = np.full(len(p), -1, dtype=np.int64)
    for start in range(0, len(p), chunk):
        q = p[start : start + chunk]
        s = _dot3(normals[None, :, :, :], q[:, None, None, :])  # (m, T, 3)
        inside = (s > _FILTER).all(axis=2)
        maybe_p, maybe_t = np.nonzero(~(s < -_FILTER).any(axis=2) & ~inside)
        if maybe_p.size:
            signs = _edge_signs(s[maybe_p, maybe_t], xyz, triangles[maybe_t], q[maybe_p])
            inside[maybe_p, maybe_t] = (signs >= 0).all(axis=1)
        has = inside.any(axis=1)
        first = np.argmax(inside, axis=1)
        out[start : start + len(q)] = np.where(has, first, -1)
        del s
    return out


def triangle_neighbors(triangles: NDArray[np.integer]) -> NDArray[np.int64]:
    """Neighbour across each edge: ``(T, 3)``, edge ``i`` runs from corner i to i+1."""
    tri = np.asarray(triangles, dtype=np.int64)
    n_v = int(tri.max()) + 1
    a = tri.ravel()
    b = tri[:, [1, 2, 0]].ravel()
    keys = a * n_v + b
    order = np.argsort(keys)
    pos = np.searchsorted(keys[order], b * n_v + a)
    pos = np.minimum(pos, len(keys) - 1)
    found = keys[order][pos] == b * n_v + a
    neighbours = np.where(found, order[pos] // 3, -1)
    return neighbours.reshape(-1, 3)


def walk_locate(
    xyz: NDArray[np.float64],
    triangles: NDArray[np.integer],
    p: NDArray[np.float64],
    start: NDArray[np.int64],
    normals: NDArray[np.float64] | None = None,
    neighbors: NDArray[np.int64] | None = None,
    max_steps: int = 4096,
) -> NDArray[np.int64]:
    """A triangle containing each point (floating-point walk, no tie rule), -1 if lost.

    Used while refining, where only counts matter; the final counts of a mesh
    come from the exact :class:`TriangleLocator`.
    """
    if normals is None:
        normals = edge_normals(xyz, np.asarray(triangles))
    if neighbors is None:
        neighbors = triangle_neighbors(triangles)
    start = np.ascontiguousarray(start, dtype=np.int64)
    p = np.ascontiguousarray(p, dtype=np.float64)
    if _kernels.HAVE_NUMBA:
        return _kernels.walk(p, start, normals, neighbors, max_steps)
    out = np.full(len(start), -1, dtype=np.int64)
    active = np.arange(len(start))
    t = start.copy()
    for _ in range(max_steps):
        if not active.size:
            break
        s = _dot3(normals[t], p[active][:, None, :])
        edge = np.argmin(s, axis=1)
        worst = s[np.arange(active.size), edge]
        done = ~(worst < 0.0)
        out[active[done]] = t[done]
        keep = ~done
        active = active[keep]
        t = neighbors[t[keep], edge[keep]]
    return out


def exact_from_walk(
    xyz: NDArray[np.float64],
    triangles: NDArray[np.int64],
    points: NDArray[np.float64],
    tri_of: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    chunk: int = 1 << 20,
) -> NDArray[np.int64]:
    """Turn walk results into the exact tie-rule answer without building a locator.

    A point certainly inside its walk triangle (all three signs beyond the
    filter band) is in no other triangle, so the walk's answer stands. A point
    near that triangle's boundary can only be in triangles sharing a vertex
    with it; those are tested exactly in ascending order. ``points`` must be
    ``latlng_to_xyz(lat, lon)``.
    """
    normals = edge_normals(xyz, triangles)
    result = np.asarray(tri_of, dtype=np.int64).copy()
    unsure: list[NDArray[np.int64]] = []
    for start in range(0, len(result), chunk):
        t = result[start : start + chunk]
        ok = t >= 0
        s = _dot3(normals[np.where(ok, t, 0)], points[start : start + chunk][:, None, :])
        certain = ok & (s > _FILTER).all(axis=1)
        unsure.append(np.flatnonzero(~certain) + start)
    todo = np.concatenate(unsure) if unsure else np.zeros(0, dtype=np.int64)
    # One locator for the points the walk lost, or for all of them when many
    # are near edges (then it is cheaper than the scans below).
    lost = todo if todo.size > 10_000 else todo[result[todo] < 0]
    if lost.size:
        result[lost] = TriangleLocator(xyz, triangles).locate(lat[lost], lon[lost])
        todo = np.setdiff1d(todo, lost, assume_unique=True)
    if todo.size == 0:
        return result
    order = np.argsort(triangles.ravel(), kind="stable")
    incident = (order // 3).astype(np.int64)
    bounds = np.searchsorted(triangles.ravel()[order], np.arange(len(xyz) + 1))
    for i in todo.tolist():
        t = int(result[i])
        cands = np.unique(
            np.concatenate([incident[bounds[v] : bounds[v + 1]] for v in triangles[t].tolist()])
        )
        hit = contains_exact(
            xyz, triangles, normals, cands, np.repeat(points[i : i + 1], len(cands), 0)
        )
        result[i] = int(cands[np.argmax(hit)]) if hit.any() else -1
    return result


_TABLES: tuple[NDArray[np.float64], ...] | None = None
_ROOT_CACHE: dict[tuple[int, int], tuple[NDArray[np.float64], NDArray[np.float64]]] = {}


def _trig_tables() -> tuple[NDArray[np.float64], ...]:
    """sin/cos of latitudes and longitudes on a 0.1-degree grid (for the kernel)."""
    global _TABLES
    if _TABLES is None:
        lat = np.radians(-90.0 + np.arange(1802) * 0.1)
        lon = np.radians(-180.0 + np.arange(3602) * 0.1)
        _TABLES = (np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon))
    return _TABLES


_CHUNK = 1 << 20  # points per kernel call: bounds the scratch memory
_WORKSPACE = threading.local()


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A long-lived pool per size, so workers keep their scratch between calls.

    Keyed by process id too: a child forked after a pool started inherits it
    without its threads, and would wait on it forever.
    """
    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="trigeo-locate")
        return _POOLS[key]


def _workspace(n: int) -> tuple[NDArray, ...]:
    """Scratch buffers for the compiled kernel, kept per thread between calls.

    Fresh multi-megabyte buffers on every call cost page faults and zeroing
    on the order of the whole search; reusing them keeps repeated calls fast.
    """
    arrays = getattr(_WORKSPACE, "arrays", None)
    if arrays is None or len(arrays[0]) < n:
        size = max(n, 1024)
        arrays = (
            np.empty(size, dtype=np.int32),  # indices of points still descending
            np.empty(size, dtype=np.int64),  # their finest row << 32 | column
            np.empty(size, dtype=np.int32),  # their current code
            np.empty(size, dtype=np.int32),  # indices of points at a leaf
            np.empty((size, 3), dtype=np.float64),  # unit vectors of those
        )
        _WORKSPACE.arrays = arrays
    return arrays


def _unique_rows(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``np.unique(rows, axis=0, return_inverse=True)``, via a 64-bit row hash.

    Sorting one integer key is far faster than sorting rows as byte strings.
    Rows are compared with their group's first row afterwards, so a hash
    collision only costs a duplicate record, never a wrong one.
    """
    if len(rows) == 0:
        return rows, np.zeros(0, dtype=np.int64)
    weights = np.random.default_rng(0).integers(1, 2**62, rows.shape[1], dtype=np.int64) | 1
    with np.errstate(over="ignore"):
        key = (rows * weights).sum(axis=1)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group_start = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
    same = (rows[order] == rows[group_start]).all(axis=1)
    representative = np.empty(len(rows), dtype=np.int64)
    representative[order] = np.where(same, group_start, order)
    uniq, inverse = np.unique(representative, return_inverse=True)
    return rows[uniq], inverse.ravel()


class TriangleLocator:
    """Fast exact point location for a triangulation of the whole sphere.

    Parameters
    ----------
    xyz
        Vertex unit vectors ``(V, 3)``.
    triangles
        Counter-clockwise vertex indices ``(T, 3)``.
    root_deg
        Cell size in degrees of the root raster.
    factor
        Children per side when a cell splits.
    max_depth
        Number of split levels below the root.
    leaf_size
        A cell with at most this many candidate triangles stops splitting.
    split_ratio
        A cell whose bounding radius is below this fraction of its smallest
        candidate triangle's radius stops splitting.
    full_cover
        The triangles cover the whole sphere, so a cell with one candidate
        answers directly. Set False for a patch of triangles.
    """

    def __init__(
        self,
        xyz: NDArray[np.float64],
        triangles: NDArray[np.integer],
        *,
        root_deg: float = 0.5,
        factor: int = 8,
        max_depth: int = 3,
        leaf_size: int = 3,
        split_ratio: float = 0.1,
        full_cover: bool = True,
    ) -> None:
        self.xyz = np.ascontiguousarray(xyz, dtype=np.float64)
        self.triangles = np.ascontiguousarray(triangles, dtype=np.int64)
        self.normals = edge_normals(self.xyz, self.triangles)
        self.factor = int(factor)
        if self.factor < 2 or self.factor & (self.factor - 1):
            raise ValueError(f"factor must be a power of two >= 2, got {factor}")
        self.max_depth = int(max_depth)
        self.leaf_size = int(leaf_size)
        self.split_ratio = float(split_ratio)
        self.full_cover = bool(full_cover)
        self.n_lat0 = round(180.0 / root_deg)
        self.n_lon0 = 2 * self.n_lat0
        # The kernel packs a point's finest row and column into one int64.
        if self.n_lon0 * self.factor**self.max_depth >= 2**31:
            raise ValueError(
                f"root_deg={root_deg}, factor={factor}, max_depth={max_depth} give a finest "
                "raster over 2**31 columns; use fewer levels or a coarser root"
            )
        self._build()

    # ------------------------------------------------------------------ build
    def _triangle_caps(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        v = self.xyz[self.triangles]
        c = v.sum(axis=1)
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        chord = np.linalg.norm(v - c[:, None, :], axis=2).max(axis=1)
        radius = 2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)) + 1e-9
        return c, radius

    def _root_pairs(
        self, centre: NDArray[np.float64], radius: NDArray[np.float64], n_lat: int, n_lon: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(root cell, triangle) pairs whose lat/lon boxes overlap a triangle's bounding cap."""
        clat, clon = xyz_to_latlng(centre)
        r_deg = np.degrees(radius) + 1e-6
        lat_lo = clat - r_deg
        lat_hi = clat + r_deg
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.sin(radius + 1e-8) / np.cos(np.radians(clat))
        full = (lat_hi >= 90.0) | (lat_lo <= -90.0) | ~(ratio < 1.0) | (r_deg >= 90.0)
        half = np.where(full, 180.0, np.degrees(np.arcsin(np.clip(ratio, 0.0, 1.0))) + 1e-6)
        dlat = 180.0 / n_lat
        dlon = 360.0 / n_lon
        r0 = np.clip(np.floor((lat_lo + 90.0) / dlat), 0, n_lat - 1).astype(np.int64)
        r1 = np.clip(np.floor((lat_hi + 90.0) / dlat), 0, n_lat - 1).astype(np.int64)
        c0 = np.floor((clon - half + 180.0) / dlon).astype(np.int64)
        c1 = np.floor((clon + half + 180.0) / dlon).astype(np.int64)
        wide = full | (c1 - c0 + 1 >= n_lon)
        c0 = np.where(wide, 0, c0)
        c1 = np.where(wide, n_lon - 1, c1)
        nr = r1 - r0 + 1
        nc = c1 - c0 + 1
        sizes = nr * nc
        tri = np.repeat(np.arange(len(centre), dtype=np.int64), sizes)
        offset = np.arange(sizes.sum(), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        nc_rep = np.repeat(nc, sizes)
        row = np.repeat(r0, sizes) + offset // nc_rep
        col = (np.repeat(c0, sizes) + offset % nc_rep) % n_lon
        return row * n_lon + col, tri

    def _cell_geometry(
        self, lat0: NDArray[np.float64], lon0: NDArray[np.float64], dlat: float, dlon: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Centre unit vector and an angular radius (rad) bounding each padded cell."""
        lo_lat = np.maximum(lat0 - _PAD_DEG, -90.0)
        hi_lat = np.minimum(lat0 + dlat + _PAD_DEG, 90.0)
        clat = 0.5 * (lo_lat + hi_lat)
        clon = lon0 + 0.5 * dlon
        centre = latlng_to_xyz(clat, clon)
        # Any point: walk along the centre meridian, then along a parallel.
        cos_max = np.where(
            (lo_lat <= 0.0) & (hi_lat >= 0.0),
            1.0,
            np.cos(np.radians(np.minimum(np.abs(lo_lat), np.abs(hi_lat)))),
        )
        half_lat = np.radians(0.5 * (hi_lat - lo_lat))
        half_lon = np.radians(0.5 * dlon + _PAD_DEG)
        return centre, half_lat + cos_max * half_lon + 1e-12

    def _classify(
        self,
        centre: NDArray[np.float64],
        radius: NDArray[np.float64],
        cell: NDArray[np.int64],
        tri: NDArray[np.int64],
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """For pairs (cell, triangle): (certainly disjoint, cell certainly inside)."""
        if _kernels.HAVE_NUMBA:
            return _kernels.classify_pairs(
                self._unit_normals, self._margin, centre, radius, cell, tri
            )
        n = self._unit_normals[tri]  # (m, 3, 3)
        c = centre[cell]
        d = n[:, :, 0] * c[:, None, 0] + n[:, :, 1] * c[:, None, 1] + n[:, :, 2] * c[:, None, 2]
        r = radius[cell][:, None] + self._margin[tri]
        disjoint = (d < -r).any(axis=1)
        inside = (d > r).all(axis=1)
        return disjoint, inside

    def _build(self) -> None:
        norms = np.linalg.norm(self.normals, axis=2)
        self._neighbors = triangle_neighbors(self.triangles)
        self._unit_normals = self.normals / np.maximum(norms, 1e-300)[:, :, None]
        # Normalizing a short edge's normal amplifies its rounding error.
        self._margin = _MARGIN + 1e-13 / np.maximum(norms, 1e-300)
        tri_centre, tri_radius = self._triangle_caps()

        f = self.factor
        n_lat, n_lon = self.n_lat0, self.n_lon0
        dlat = 180.0 / n_lat
        dlon = 360.0 / n_lon
        rows, cols = np.divmod(np.arange(n_lat * n_lon), n_lon)
        key = (n_lat, n_lon)
        if key not in _ROOT_CACHE:
            _ROOT_CACHE[key] = self._cell_geometry(
                -90.0 + rows * dlat, -180.0 + cols * dlon, dlat, dlon
            )
        centre, radius = _ROOT_CACHE[key]
        cell, tri = self._root_pairs(tri_centre, tri_radius, n_lat, n_lon)

        self.levels: list[NDArray[np.int64]] = []
        self.level_dlat: list[float] = []
        self.level_dlon: list[float] = []
        self.block_row: list[NDArray[np.int64]] = []  # global row/col of each block's origin
        self.block_col: list[NDArray[np.int64]] = []
        leaf_ptr: list[int] = [0]
        leaf_tris: list[NDArray[np.int64]] = []
        leaf_centres: list[NDArray[np.float64]] = []
        n_leaves = 0

        # Level bookkeeping: cells at this level are identified by global (row, col).
        cell_row = rows.astype(np.int64)
        cell_col = cols.astype(np.int64)
        depth = 0
        while True:
            n_cells = len(cell_row)
            code = np.full(n_cells, -1, dtype=np.int64)
            disjoint, inside = self._classify(centre, radius, cell, tri)
            # Direct answers: a cell strictly inside one triangle.
            if inside.any():
                code[cell[inside]] = tri[inside]
            keep = ~disjoint & ~inside
            direct = np.zeros(n_cells, dtype=bool)
            direct[cell[inside]] = True
            keep &= ~direct[cell]
            cell, tri = cell[keep], tri[keep]
            order = np.lexsort((tri, cell))
            cell, tri = cell[order], tri[order]
            counts = np.bincount(cell, minlength=n_cells)
            if self.full_cover:
                single = (counts == 1) & ~direct
                sel = single[cell]
                code[cell[sel]] = tri[sel]
                direct |= single
                cell, tri = cell[~sel], tri[~sel]
                counts[single] = 0
            pending = np.flatnonzero(counts > 0)
            # Cells touching a pole meet every triangle around it at any size:
            # splitting them never helps, so they are leaves.
            at_pole = (cell_row == 0) | (cell_row == self.n_lat0 * f**depth - 1)
            # A cell much smaller than its smallest candidate sits on a vertex or an
            # edge; splitting it would only follow that vertex down.
            smallest = np.full(n_cells, np.inf)
            if cell.size:
                starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
                smallest[cell[starts]] = np.minimum.reduceat(tri_radius[tri], starts)
            big = radius > self.split_ratio * smallest
            wants = (counts > self.leaf_size) & ~at_pole & big
            split = pending[wants[pending]] if depth < self.max_depth else []
            split = np.asarray(split, dtype=np.int64)
            leaf = np.setdiff1d(pending, split, assume_unique=True)
            # Leaves: candidate lists in ascending triangle order.
            if leaf.size:
                in_leaf = np.zeros(n_cells, dtype=bool)
                in_leaf[leaf] = True
                sel = in_leaf[cell]
                lc, lt = cell[sel], tri[sel]
                lcounts = np.bincount(lc, minlength=n_cells)[leaf]
                leaf_tris.append(lt)
                leaf_centres.append(centre[lc])
                ends = np.cumsum(lcounts) + leaf_ptr[-1]
                leaf_ptr.extend(ends.tolist())
                code[leaf] = -2 - (n_leaves + np.arange(leaf.size))  # fixed up below
                n_leaves += leaf.size
            self.levels.append(code)
            self.level_dlat.append(dlat)
            self.level_dlon.append(dlon)
            if split.size == 0:
                break
            # Children of split cells, block by block (f x f per parent).
            in_split = np.full(n_cells, -1, dtype=np.int64)
            in_split[split] = np.arange(split.size)
            sel = in_split[cell] >= 0
            pc, pt = in_split[cell[sel]], tri[sel]
            code[split] = -(10**15) - np.arange(split.size)  # child marker, fixed up below
            dlat /= f
            dlon /= f
            sub = np.arange(f * f)
            child_row = (cell_row[split][:, None] * f + sub[None, :] // f).ravel()
            child_col = (cell_col[split][:, None] * f + sub[None, :] % f).ravel()
            self.block_row.append(cell_row[split] * f)
            self.block_col.append(cell_col[split] * f)
            lat0 = -90.0 + child_row * dlat
            lon0 = -180.0 + child_col * dlon
            centre, radius = self._cell_geometry(lat0, lon0, dlat, dlon)
            # Each parent pair (block b, tri) expands to f*f child pairs.
            cell = (pc[:, None] * (f * f) + sub[None, :]).ravel()
            tri = np.repeat(pt, f * f)
            cell_row, cell_col = child_row, child_col
            depth += 1
        self._resolve_codes(leaf_ptr, leaf_tris, leaf_centres, n_leaves)

    def _resolve_codes(
        self,
        leaf_ptr: list[int],
        leaf_tris: list[NDArray[np.int64]],
        leaf_centres: list[NDArray[np.float64]],
        n_leaves: int,
    ) -> None:
        """Number child blocks per level and leaves globally, and build the compiled
        kernel's flat tables (``_build``'s last step)."""
        self.leaf_ptr = np.asarray(leaf_ptr, dtype=np.int64)
        self.leaf_tris = (
            np.concatenate(leaf_tris) if leaf_tris else np.zeros(0, dtype=np.int64)
        ).astype(np.int64)
        self.n_leaves = n_leaves
        for code in self.levels:
            child = code <= -(10**15)
            # child block j -> code -2 - n_leaves - j
            code[child] = -2 - n_leaves - (-(10**15) - code[child])
        # Flat copies for the compiled kernel.
        self._level_offset = np.cumsum([0] + [len(c) for c in self.levels]).astype(np.int64)
        self._inv_dlat = 1.0 / np.asarray(self.level_dlat)
        self._inv_dlon = 1.0 / np.asarray(self.level_dlon)
        # Compiled path: the leaves become records in one int32 array, so a point
        # costs one cache miss for its candidates. Leaves with identical records
        # share one (neighbouring cells along an edge repeat the same list), which
        # shrinks the array about fivefold and keeps it in cache.
        self._leaf_data, leaf_position = self._compile_leaves(leaf_centres)
        codes = np.concatenate(self.levels).astype(np.int64)
        is_leaf = (codes <= -2) & (codes > -2 - n_leaves)
        is_child = codes <= -2 - n_leaves
        codes[is_leaf] = -2 - leaf_position[-2 - codes[is_leaf]]
        codes[is_child] = -2 - self._leaf_data.size - (-2 - n_leaves - codes[is_child])
        if codes.min(initial=0) < np.iinfo(np.int32).min or len(self.triangles) * 3 > 2**31 - 1:
            raise ValueError("mesh too large for the compiled locator's int32 tables")
        self._codes_compiled = codes.astype(np.int32)

    def _compile_leaves(
        self, leaf_centres: list[NDArray[np.float64]]
    ) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
        """Leaf records for the compiled kernel, and each leaf's record position.

        Three record kinds:

        * ``[-1, 3 * t + e, u]``: the cell meets exactly two triangles ``t`` and
          ``u`` that share edge ``e`` of ``t``. Since the triangles cover the
          sphere, the point is in ``t`` or ``u``, and the sign of one edge
          determinant decides which (one dot product instead of up to six).
        * ``[-k, 3 * t1 + c1, ..., 3 * tk + ck]``: the k candidates share one
          vertex, corner ``c`` of each (see :meth:`_mark_fans`).
        * ``[k, t1, ..., tk]``: candidates, most likely first (deepest inside at
          the cell's centre). A triangle that certainly contains the point is
          the only one that contains it, so any order gives the tie rule's
          answer; unsure points go to the exact path, which scans the record's
          triangles in ascending order.
        """
        n_leaves = self.n_leaves
        counts = np.diff(self.leaf_ptr)
        self._fan_start = self._general_start = 0
        if n_leaves == 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(n_leaves), counts)
        at = np.concatenate(leaf_centres)
        if _kernels.HAVE_NUMBA:
            depth_in = _kernels.inside_depth(self._unit_normals, at, self.leaf_tris)
        else:
            depth_in = np.concatenate(
                [
                    _dot3(self._unit_normals[t], c[:, None, :]).min(axis=1)
                    for t, c in zip(
                        np.array_split(self.leaf_tris, 1 + len(at) // 500_000),
                        np.array_split(at, 1 + len(at) // 500_000),
                        strict=True,
                    )
                ]
            )
        ordered = self.leaf_tris[np.lexsort((-depth_in, owner))]

        # Leaves grouped by candidate count: each group is a matrix of records
        # of one length, deduplicated as rows (neighbouring cells along an
        # edge repeat the same list).
        # Records are laid out by kind (edges, fans, general lists), so the
        # kernel tells a record's kind from its position alone.
        groups: list[tuple[int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = []
        for k in np.unique(counts).tolist():
            ids = np.flatnonzero(counts == k)
            rows = np.empty((ids.size, k + 1), dtype=np.int64)
            rows[:, 0] = k
            rows[:, 1:] = ordered[self.leaf_ptr[ids][:, None] + np.arange(k)]
            if self.full_cover and k == 2:
                self._mark_edges(rows)
            if self.full_cover and 2 <= k <= _kernels.FAN_WIDTH:
                self._mark_fans(rows)
            unique_rows, inverse = _unique_rows(rows)
            header = unique_rows[:, 0]
            kind = np.where(header == -1, 0, np.where(header < -1, 1, 2))
            for wanted in range(3):
                keep = np.flatnonzero(kind == wanted)
                if keep.size:
                    renumber = np.full(len(unique_rows), -1, dtype=np.int64)
                    renumber[keep] = np.arange(keep.size)
                    mine = kind[inverse] == wanted
                    groups.append((wanted, unique_rows[keep], ids[mine], renumber[inverse[mine]]))
        position = np.empty(n_leaves, dtype=np.int64)
        pieces: list[NDArray[np.int64]] = []
        offset = 0
        kind_start = [0, 0, 0]
        for wanted in range(3):
            kind_start[wanted] = offset
            for kind_of, unique_rows, ids, index in groups:
                if kind_of == wanted:
                    position[ids] = offset + index * unique_rows.shape[1]
                    pieces.append(unique_rows.ravel())
                    offset += unique_rows.size
        self._fan_start, self._general_start = kind_start[1], kind_start[2]
        return np.concatenate(pieces).astype(np.int32), position

    def _mark_edges(self, rows: NDArray[np.int64]) -> None:
        """Rewrite two-candidate rows whose triangles share an edge as edge records."""
        first, second = rows[:, 1], rows[:, 2]
        shared = (self._neighbors[first] == second[:, None]).any(axis=1)
        # Canonical order (lower triangle first) so both orders share a record.
        t = np.minimum(first, second)[shared]
        u = np.maximum(first, second)[shared]
        e = np.argmax(self._neighbors[t] == u[:, None], axis=1)
        rows[shared] = np.stack([np.full(t.size, -1), 3 * t + e, u], axis=1)

    def _mark_fans(self, rows: NDArray[np.int64]) -> None:
        """Rewrite rows whose candidates all share one vertex as fan records.

        A fan record ``[-k, 3 * t1 + c1, ..., 3 * tk + ck]`` lists each
        triangle with the corner ``c`` of the shared vertex ``v``. The two edges
        of a triangle through ``v`` bound a lune (the wedge at ``v`` extended
        over the sphere), and the lunes of triangles around one vertex are
        disjoint. The point lies in some candidate (full cover), so a lune
        that certainly holds it names its triangle: two dot products per
        candidate instead of three, and no early exits to mispredict.
        """
        fan = np.flatnonzero(rows[:, 0] > 0)
        if fan.size == 0:
            return
        cand = rows[fan, 1:]
        corners = self.triangles[cand]  # (f, k, 3)
        common = np.full(fan.size, -1, dtype=np.int64)
        for c in range(3):
            v = corners[:, 0, c]
            has = (corners == v[:, None, None]).any(axis=2).all(axis=1)
            common = np.where((common < 0) & has, v, common)
        ok = common >= 0
        fan, cand, corners, common = fan[ok], cand[ok], corners[ok], common[ok]
        corner = np.argmax(corners == common[:, None, None], axis=2)
        entry = np.sort(3 * cand + corner, axis=1)
        rows[fan, 0] = -cand.shape[1]
        rows[fan, 1:] = entry

    # ------------------------------------------------------------------ query
    def locate_xyz_latlng(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64]
    ) -> NDArray[np.int64]:
        """Triangle index for each (lat, lon) in degrees (validated by the caller)."""
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        n = lat.size
        out = np.empty(n, dtype=np.int64)
        f = self.factor
        row = ((lat + 90.0) * (1.0 / self.level_dlat[0])).astype(np.int64)
        col = ((lon + 180.0) * (1.0 / self.level_dlon[0])).astype(np.int64)
        np.clip(row, 0, self.n_lat0 - 1, out=row)
        np.clip(col, 0, self.n_lon0 - 1, out=col)
        code = self.levels[0][row * self.n_lon0 + col]
        idx = np.arange(n)
        depth = 0
        leaf_base = -2 - self.n_leaves
        while True:
            done = code >= -1
            if done.all():
                out[idx] = code
                break
            out[idx[done]] = code[done]
            is_leaf = (code <= -2) & (code > leaf_base)
            if is_leaf.any():
                self._resolve_leaves(
                    lat[idx[is_leaf]], lon[idx[is_leaf]], -2 - code[is_leaf], out, idx[is_leaf]
                )
            go = code <= leaf_base
            if not go.any():
                break
            idx = idx[go]
            block = leaf_base - code[go]
            depth += 1
            dlat = self.level_dlat[depth]
            dlon = self.level_dlon[depth]
            la = lat[idx]
            lo = lon[idx]
            r = ((la + 90.0) * (1.0 / dlat)).astype(np.int64) - self.block_row[depth - 1][block]
            c = ((lo + 180.0) * (1.0 / dlon)).astype(np.int64) - self.block_col[depth - 1][block]
            np.clip(r, 0, f - 1, out=r)
            np.clip(c, 0, f - 1, out=c)
            code = self.levels[depth][block * (f * f) + r * f + c]
        return out

    def _resolve_leaves(
        self,
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        leaf: NDArray[np.int64],
        out: NDArray[np.int64],
        where: NDArray[np.int64],
    ) -> None:
        p = latlng_to_xyz(lat, lon)
        start = self.leaf_ptr[leaf]
        length = self.leaf_ptr[leaf + 1] - start
        result = np.full(len(leaf), -1, dtype=np.int64)
        pending = np.arange(len(leaf))
        k = 0
        while pending.size:
            pending = pending[length[pending] > k]
            if not pending.size:
                break
            t = self.leaf_tris[start[pending] + k]
            hit = contains_exact(self.xyz, self.triangles, self.normals, t, p[pending])
            result[pending[hit]] = t[hit]
            pending = pending[~hit]
            k += 1
        out[where] = result

    def _locate_compiled(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], threads: int = 1
    ) -> NDArray[np.int64]:
        out = np.empty(lat.size, dtype=np.int64)
        # Contiguous slices of at most _CHUNK points; one per thread when each
        # thread gets at least 4096 points (fewer are not worth a thread).
        n_parts = max(-(-lat.size // _CHUNK), min(threads, lat.size // 4096), 1)
        bounds = np.linspace(0, lat.size, n_parts + 1).astype(np.int64).tolist()
        parts = list(itertools.pairwise(bounds))

        def run(part: tuple[int, int]) -> None:
            start, stop = part
            self._locate_chunk(lat[start:stop], lon[start:stop], out[start:stop])

        if threads > 1 and len(parts) > 1:
            # The kernel releases the GIL; each worker keeps its own scratch.
            list(_pool(threads).map(run, parts))
        else:
            for part in parts:
                run(part)
        unsure = np.flatnonzero(out <= -2)
        if unsure.size:
            # Decide these on the canonical unit vector (trigeo.sphere), exactly.
            p = latlng_to_xyz(lat[unsure], lon[unsure])
            for j in range(unsure.size):
                record = -2 - int(out[unsure[j]])
                out[unsure[j]] = self._finish_exact(p[j], self._record_triangles(record))
        return out

    def _locate_chunk(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], out: NDArray[np.int64]
    ) -> None:
        leaf_base = -2 - len(self._leaf_data)
        n_levels = len(self.levels)
        fine = self.factor ** (n_levels - 1)
        raster = (
            self._codes_compiled,
            self._level_offset,
            # Scaling by a power of two is exact, so these equal the finest
            # level's reciprocals and the kernel's cells match the numpy path's.
            float(self._inv_dlat[0] * fine),
            float(self._inv_dlon[0] * fine),
            self.n_lat0,
            self.n_lon0,
            self.factor.bit_length() - 1,
            n_levels,
            leaf_base,
        )
        # The kernel's table-based unit vector is within ~1e-15 of the
        # canonical one; a band 10x wider than usual keeps its signs certain.
        records = (
            self._leaf_data,
            self.normals,
            10.0 * _FILTER,
            *_trig_tables(),
            self._fan_start,
            self._general_start,
        )
        _kernels.locate_points(lat, lon, out, *_workspace(lat.size), raster, records)

    def _record_triangles(self, record: int) -> list[int]:
        """Candidate triangles of the compiled leaf record at ``record``, ascending."""
        data = self._leaf_data
        head = int(data[record])
        if head == -1:
            return sorted([int(data[record + 1]) // 3, int(data[record + 2])])
        if head < -1:
            return sorted(int(v) // 3 for v in data[record + 1 : record + 1 - head])
        return sorted(data[record + 1 : record + 1 + head].tolist())

    def _finish_exact(self, p: NDArray[np.float64], candidates: list[int]) -> int:
        """Exact test of a point against candidate triangles in ascending order."""
        for t in candidates:
            tri = np.array([t], dtype=np.int64)
            if contains_exact(self.xyz, self.triangles, self.normals, tri, p[None, :])[0]:
                return t
        return -1

    def locate(self, lat: ArrayLike, lon: ArrayLike, threads: int = 1) -> NDArray[np.int64]:
        """Triangle index of each point (lowest containing index), -1 if none.

        ``threads > 1`` splits the points over that many threads of this
        process (compiled path only); the answer does not depend on it.
        """
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        if lat.shape != lon.shape:
            raise ValueError(f"lat and lon differ in size: {lat.size} vs {lon.size}")
        # NaN fails both comparisons, so this also rejects it.
        bad = ~((np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0))
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"point {row} is not a latitude/longitude in degrees: "
                f"({lat[row]!r}, {lon[row]!r}); DelaunayMesh.locate validates and explains"
            )
        if _kernels.HAVE_NUMBA:
            return self._locate_compiled(lat, lon, int(threads))
        return self.locate_xyz_latlng(lat, lon)
