"""S2 cell ids, vectorized: the cube-face projection and Hilbert curve of Google's S2.

Only what :class:`~trigeo.mesh.quadtree.QuadtreeMesh` needs, written from the
S2 definitions (``S2CellId::FromPoint``, the quadratic projection, the 4-bit
Hilbert lookup tables) and checked against ``s2sphere`` in the tests. Every
function works on whole numpy arrays; point location also has a compiled
numba kernel (the numpy twin gives the same ids, more slowly; see
``TRIGEO_NO_NUMBA`` in :mod:`trigeo.mesh._kernels`).

Ids are ``uint64``. A cell at level ``L`` (0..30) covers the leaf ids
``id - (lsb - 1) .. id + (lsb - 1)`` with ``lsb = 1 << 2*(30 - L)``, and the
cells at one level are in Hilbert order, so a set of disjoint cells sorted by
id can be searched with :func:`numpy.searchsorted` on their smallest leaf ids.

Floating point follows ``s2sphere`` step by step (``radians`` as ``x * pi/180``,
``cos``/``sin`` of the C library under numba, the same face tie rule and the
same divisions), so ids agree except, in principle, for a point within a few
ulps of a level-30 cell edge, where two ``cos`` implementations could round
differently.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.sphere import EARTH_RADIUS_KM, triangle_area

__all__ = [
    "MAX_LEVEL",
    "cell_areas_km2",
    "cell_center_latlng",
    "cell_corners_xyz",
    "cell_level",
    "children",
    "face_cells",
    "leaf_ids",
    "locate_sorted",
    "parent",
    "range_max",
    "range_min",
]

MAX_LEVEL = 30
_MAX_SIZE = 1 << MAX_LEVEL
_LOOKUP_BITS = 4
_SWAP, _INVERT = 1, 2
_POS_TO_IJ = ((0, 1, 3, 2), (0, 2, 3, 1), (3, 2, 0, 1), (3, 1, 0, 2))
_POS_TO_ORIENTATION = (_SWAP, 0, 0, _INVERT | _SWAP)


def _lookup_tables() -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """S2's LOOKUP_POS and LOOKUP_IJ: 4 bits of i and j (plus orientation) <-> 8 bits of pos."""
    size = 1 << (2 * _LOOKUP_BITS + 2)
    pos_table = np.zeros(size, dtype=np.int64)
    ij_table = np.zeros(size, dtype=np.int64)

    def fill(level: int, i: int, j: int, orig: int, pos: int, orientation: int) -> None:
        if level == _LOOKUP_BITS:
            ij = (i << _LOOKUP_BITS) + j
            pos_table[(ij << 2) + orig] = (pos << 2) + orientation
            ij_table[(pos << 2) + orig] = (ij << 2) + orientation
            return
        r = _POS_TO_IJ[orientation]
        for index in range(4):
            fill(
                level + 1,
                (i << 1) + (r[index] >> 1),
                (j << 1) + (r[index] & 1),
                orig,
                (pos << 2) + index,
                orientation ^ _POS_TO_ORIENTATION[index],
            )

    for orientation in (0, _SWAP, _INVERT, _SWAP | _INVERT):
        fill(0, 0, 0, orientation, 0, orientation)
    return pos_table, ij_table


LOOKUP_POS, LOOKUP_IJ = _lookup_tables()

_DEG = math.pi / 180.0  # math.radians and numpy.radians both multiply by this


# ------------------------------------------------------------------ numpy path
def _face_uv(
    x: NDArray[np.float64], y: NDArray[np.float64], z: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Face (0..5) and (u, v) of unit vectors: S2's largest-component rule and ties."""
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    axis = np.where(ax > ay, np.where(ax > az, 0, 2), np.where(ay > az, 1, 2))
    comp = np.choose(axis, (x, y, z))
    face = axis + 3 * (comp < 0)
    u = np.empty_like(x)
    v = np.empty_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        for f, (nu, du, nv, dv) in enumerate(
            (
                (y, x, z, x),
                (-x, y, z, y),
                (-x, z, -y, z),
                (z, x, y, x),
                (z, y, -x, y),
                (-y, z, -x, z),
            )
        ):
            sel = face == f
            if sel.any():
                u[sel] = nu[sel] / du[sel]
                v[sel] = nv[sel] / dv[sel]
    return face.astype(np.int64), u, v


def _uv_to_st(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """The quadratic projection (S2's default)."""
    pos = u >= 0
    out = np.empty_like(u)
    out[pos] = 0.5 * np.sqrt(1.0 + 3.0 * u[pos])
    out[~pos] = 1.0 - 0.5 * np.sqrt(1.0 - 3.0 * u[~pos])
    return out


def _st_to_uv(s: NDArray[np.float64]) -> NDArray[np.float64]:
    s = np.asarray(s, dtype=np.float64)
    return np.where(
        s >= 0.5, (1.0 / 3.0) * (4.0 * s * s - 1.0), (1.0 / 3.0) * (1.0 - 4.0 * (1.0 - s) ** 2)
    )


def _st_to_ij(s: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.clip(np.floor(_MAX_SIZE * s), 0, _MAX_SIZE - 1).astype(np.int64)


def _from_face_ij(
    face: NDArray[np.int64], i: NDArray[np.int64], j: NDArray[np.int64]
) -> NDArray[np.uint64]:
    n = face << 60
    bits = face & _SWAP
    mask = (1 << _LOOKUP_BITS) - 1
    for k in range(7, -1, -1):
        bits = bits + (((i >> (k * _LOOKUP_BITS)) & mask) << (_LOOKUP_BITS + 2))
        bits = bits + (((j >> (k * _LOOKUP_BITS)) & mask) << 2)
        bits = LOOKUP_POS[bits]
        n |= (bits >> 2) << (k * 2 * _LOOKUP_BITS)
        bits = bits & (_SWAP | _INVERT)
    return n.astype(np.uint64) * np.uint64(2) + np.uint64(1)


def _leaf_ids_numpy(lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.uint64]:
    phi = lat * _DEG
    theta = lon * _DEG
    cosphi = np.cos(phi)
    face, u, v = _face_uv(np.cos(theta) * cosphi, np.sin(theta) * cosphi, np.sin(phi))
    return _from_face_ij(face, _st_to_ij(_uv_to_st(u)), _st_to_ij(_uv_to_st(v)))


# ------------------------------------------------------------------ numba path
try:  # pragma: no cover - both configurations run in the tests
    if os.environ.get("TRIGEO_NO_NUMBA"):
        raise ImportError("numba disabled by TRIGEO_NO_NUMBA")
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def _leaf_id_one(la, lo, lookup_pos):  # type: ignore[no-untyped-def]
        phi = la * _DEG
        theta = lo * _DEG
        cosphi = math.cos(phi)
        x = math.cos(theta) * cosphi
        y = math.sin(theta) * cosphi
        z = math.sin(phi)
        ax, ay, az = abs(x), abs(y), abs(z)
        if ax > ay:
            axis = 0 if ax > az else 2
        else:
            axis = 1 if ay > az else 2
        if axis == 0:
            face = 0 if x >= 0 else 3
        elif axis == 1:
            face = 1 if y >= 0 else 4
        else:
            face = 2 if z >= 0 else 5
        if face == 0:
            u, v = y / x, z / x
        elif face == 1:
            u, v = -x / y, z / y
        elif face == 2:
            u, v = -x / z, -y / z
        elif face == 3:
            u, v = z / x, y / x
        elif face == 4:
            u, v = z / y, -x / y
        else:
            u, v = -y / z, -x / z
        s = 0.5 * math.sqrt(1.0 + 3.0 * u) if u >= 0 else 1.0 - 0.5 * math.sqrt(1.0 - 3.0 * u)
        t = 0.5 * math.sqrt(1.0 + 3.0 * v) if v >= 0 else 1.0 - 0.5 * math.sqrt(1.0 - 3.0 * v)
        fi = math.floor(1073741824.0 * s)
        fj = math.floor(1073741824.0 * t)
        i = np.int64(min(max(fi, 0.0), 1073741823.0))
        j = np.int64(min(max(fj, 0.0), 1073741823.0))
        n = np.int64(face) << 60
        bits = np.int64(face & 1)
        for k in range(7, -1, -1):
            bits += ((i >> (k * 4)) & 15) << 6
            bits += ((j >> (k * 4)) & 15) << 2
            bits = lookup_pos[bits]
            n |= (bits >> 2) << (k * 8)
            bits &= 3
        return np.uint64(n) * np.uint64(2) + np.uint64(1)

    @njit(cache=True, nogil=True)
    def _leaf_ids_kernel(lat, lon, lookup_pos, out):  # type: ignore[no-untyped-def]
        for k in range(lat.size):
            out[k] = _leaf_id_one(lat[k], lon[k], lookup_pos)

    @njit(cache=True, nogil=True)
    def _locate_kernel(lat, lon, lookup_pos, starts, first, last, values, out):  # type: ignore[no-untyped-def]
        """values[index of the last start <= leaf id], or -1 before the first start.

        ``first``/``last`` bound that index for every level-``INDEX_LEVEL`` cell, so
        the binary search runs over the few starts inside the point's cell (none,
        usually: most such cells lie inside one leaf).
        """
        shift = np.uint64(2 * (MAX_LEVEL - INDEX_LEVEL) + 1)
        for k in range(lat.size):
            q = _leaf_id_one(lat[k], lon[k], lookup_pos)
            c = np.int64(q >> shift)
            lo = np.int64(first[c]) + 1
            hi = np.int64(last[c]) + 1  # first index with starts[index] > q, in [lo, hi]
            while lo < hi:
                mid = (lo + hi) >> 1
                if starts[mid] <= q:
                    lo = mid + 1
                else:
                    hi = mid
            out[k] = values[lo - 1] if lo > 0 else -1


def _chunks(n: int, threads: int) -> list[slice]:
    step = -(-n // max(threads, 1))
    return [slice(a, min(a + step, n)) for a in range(0, n, step)]


def leaf_ids(lat: ArrayLike, lon: ArrayLike) -> NDArray[np.uint64]:
    """Level-30 S2 cell id of each point (degrees), as ``s2sphere.CellId.from_lat_lng``."""
    lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
    lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
    if HAVE_NUMBA:
        out = np.empty(lat.size, dtype=np.uint64)
        _leaf_ids_kernel(lat, lon, LOOKUP_POS, out)
        return out
    return _leaf_ids_numpy(lat, lon)


#: Level of the lookup table that narrows the search (6 * 4**8 = 393,216 cells, 3 MB).
INDEX_LEVEL = 8


def search_index(starts: NDArray[np.uint64]) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """For each level-``INDEX_LEVEL`` cell, the indices into sorted ``starts`` of the last
    start at or before its first leaf id and of the last start at or before its last
    leaf id (-1 for none): the range :func:`locate_sorted` searches for a point in it."""
    cells = face_cells(INDEX_LEVEL)
    starts = np.asarray(starts, dtype=np.uint64)
    first = np.searchsorted(starts, range_min(cells, INDEX_LEVEL), side="right") - 1
    last = np.searchsorted(starts, range_max(cells, INDEX_LEVEL), side="right") - 1
    return first.astype(np.int32), last.astype(np.int32)


def locate_sorted(
    lat: ArrayLike,
    lon: ArrayLike,
    starts: NDArray[np.uint64],
    values: NDArray[np.int64],
    threads: int = 1,
    index: tuple[NDArray[np.int32], NDArray[np.int32]] | None = None,
) -> NDArray[np.int64]:
    """``values[k]`` for the cell ``k`` whose first leaf id ``starts[k]`` is the last one
    at or before each point's leaf id (``starts`` sorted; -1 before the first).

    With ``starts = range_min(cells)`` of disjoint cells that cover the sphere,
    this is the cell holding each point. ``index`` is ``search_index(starts)``,
    computed here when not given (keep it when locating against the same
    starts again).
    """
    lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
    lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
    starts = np.ascontiguousarray(starts, dtype=np.uint64)
    values = np.ascontiguousarray(values, dtype=np.int64)
    if not HAVE_NUMBA:
        found = np.searchsorted(starts, _leaf_ids_numpy(lat, lon), side="right") - 1
        return np.where(found >= 0, values[np.maximum(found, 0)], -1)
    first, last = search_index(starts) if index is None else index
    out = np.empty(lat.size, dtype=np.int64)
    if threads <= 1 or lat.size < 100_000:
        _locate_kernel(lat, lon, LOOKUP_POS, starts, first, last, values, out)
        return out
    with ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(
                _locate_kernel, lat[s], lon[s], LOOKUP_POS, starts, first, last, values, out[s]
            )
            for s in _chunks(lat.size, threads)
        ]
        for job in jobs:
            job.result()
    return out


# ---------------------------------------------------------------- cell algebra
def _lsb(level: ArrayLike) -> NDArray[np.uint64]:
    level = np.asarray(level, dtype=np.int64)
    return np.left_shift(np.uint64(1), (2 * (MAX_LEVEL - level)).astype(np.uint64))


def cell_level(ids: ArrayLike) -> NDArray[np.int64]:
    """Level (0..30) of each cell id: 30 minus half the trailing zero bits."""
    ids = np.asarray(ids, dtype=np.uint64)
    low = ids & (~ids + np.uint64(1))  # lowest set bit
    zeros = np.round(np.log2(low.astype(np.float64))).astype(np.int64)
    return MAX_LEVEL - zeros // 2


def parent(ids: ArrayLike, level: int) -> NDArray[np.uint64]:
    """Ancestor of each cell id at ``level`` (at most the cells' own level)."""
    ids = np.asarray(ids, dtype=np.uint64)
    lsb = _lsb(level)
    return (ids & ~(lsb - np.uint64(1)) & ~lsb) | lsb


def children(ids: ArrayLike, level: int) -> NDArray[np.uint64]:
    """The four children (in Hilbert order) of cells at ``level``, shape ``(n, 4)``."""
    ids = np.asarray(ids, dtype=np.uint64)
    lsb = _lsb(level)
    child_lsb = lsb >> np.uint64(2)
    offsets = child_lsb * np.arange(1, 8, 2, dtype=np.uint64)
    return (ids - lsb)[:, None] + offsets[None, :]


def face_cells(level: int) -> NDArray[np.uint64]:
    """Every cell at ``level``, in id order (``6 * 4**level`` cells)."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"S2 level must be 0..30, got {level}")
    per_face = 1 << (2 * level)
    face = np.repeat(np.arange(6, dtype=np.uint64), per_face)
    pos = np.tile(np.arange(per_face, dtype=np.uint64), 6)
    lsb = _lsb(level)
    return (face << np.uint64(61)) | (pos * (lsb << np.uint64(1))) | lsb


def range_min(ids: ArrayLike, level: ArrayLike) -> NDArray[np.uint64]:
    """Smallest leaf id inside each cell."""
    return np.asarray(ids, dtype=np.uint64) - (_lsb(level) - np.uint64(1))


def range_max(ids: ArrayLike, level: ArrayLike) -> NDArray[np.uint64]:
    """Largest leaf id inside each cell."""
    return np.asarray(ids, dtype=np.uint64) + (_lsb(level) - np.uint64(1))


def _to_face_ij(ids: NDArray[np.uint64]) -> tuple[NDArray[np.int64], ...]:
    """Face and the (i, j) of the leaf cell that each id names (S2's ToFaceIJOrientation)."""
    ids = np.asarray(ids, dtype=np.uint64)
    face = (ids >> np.uint64(61)).astype(np.int64)
    bits = face & _SWAP
    i = np.zeros(ids.shape, dtype=np.int64)
    j = np.zeros(ids.shape, dtype=np.int64)
    for k in range(7, -1, -1):
        nbits = MAX_LEVEL - 7 * _LOOKUP_BITS if k == 7 else _LOOKUP_BITS
        chunk = (ids >> np.uint64(k * 2 * _LOOKUP_BITS + 1)) & np.uint64((1 << (2 * nbits)) - 1)
        bits = LOOKUP_IJ[bits + (chunk.astype(np.int64) << 2)]
        i += (bits >> (_LOOKUP_BITS + 2)) << (k * _LOOKUP_BITS)
        j += ((bits >> 2) & ((1 << _LOOKUP_BITS) - 1)) << (k * _LOOKUP_BITS)
        bits = bits & (_SWAP | _INVERT)
    return face, i, j


def _face_uv_to_xyz(
    face: NDArray[np.int64], u: NDArray[np.float64], v: NDArray[np.float64]
) -> NDArray[np.float64]:
    one = np.ones_like(u)
    table = (
        (one, u, v),
        (-u, one, v),
        (-u, -v, one),
        (-one, -v, -u),
        (v, -one, -u),
        (v, u, -one),
    )
    out = np.empty((*u.shape, 3))
    for f, (x, y, z) in enumerate(table):
        sel = face == f
        out[sel] = np.stack([x[sel], y[sel], z[sel]], axis=-1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _bounds_st(ids: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64], ...]:
    ids = np.asarray(ids, dtype=np.uint64).ravel()
    face, i, j = _to_face_ij(ids)
    size = (1 << (MAX_LEVEL - cell_level(ids))).astype(np.int64)
    i0, j0 = i & ~(size - 1), j & ~(size - 1)
    return face, i0 / _MAX_SIZE, (i0 + size) / _MAX_SIZE, j0 / _MAX_SIZE, (j0 + size) / _MAX_SIZE


def cell_corners_xyz(ids: ArrayLike) -> NDArray[np.float64]:
    """Unit-vector corners ``(n, 4, 3)``, counter-clockwise seen from outside.

    The edges between consecutive corners are great-circle arcs: a line of
    constant u or v on a cube face lies in a plane through the centre.
    """
    face, s0, s1, t0, t1 = _bounds_st(ids)
    u0, u1, v0, v1 = _st_to_uv(s0), _st_to_uv(s1), _st_to_uv(t0), _st_to_uv(t1)
    us = np.stack([u0, u1, u1, u0], axis=1)
    vs = np.stack([v0, v0, v1, v1], axis=1)
    return _face_uv_to_xyz(np.repeat(face[:, None], 4, axis=1), us, vs)


def cell_center_latlng(ids: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lat, lon) of each cell's centre: the middle of its (s, t) square, as
    ``s2sphere.CellId.to_lat_lng``."""
    from trigeo.sphere import xyz_to_latlng

    face, s0, s1, t0, t1 = _bounds_st(ids)
    xyz = _face_uv_to_xyz(face, _st_to_uv(0.5 * (s0 + s1)), _st_to_uv(0.5 * (t0 + t1)))
    return xyz_to_latlng(xyz)


def cell_areas_km2(ids: ArrayLike, radius_km: float = EARTH_RADIUS_KM) -> NDArray[np.float64]:
    """Exact area of each cell (a spherical quadrilateral) in km²."""
    c = cell_corners_xyz(ids)
    steradians = triangle_area(c[:, 0], c[:, 1], c[:, 2]) + triangle_area(c[:, 0], c[:, 2], c[:, 3])
    return steradians * radius_km**2
