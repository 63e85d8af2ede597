"""Compiled inner loops for point location (numba, optional).

Every kernel here has a pure-numpy twin in :mod:`trigeo.mesh.locate`; both
give identical answers (the tests run both against brute force). numba only
makes them faster. Set ``TRIGEO_NO_NUMBA=1`` to force the numpy path.

None of these kernels decides a sign that floating point cannot certify:
values within the filter band are reported back as "unsure" and decided in
exact integer arithmetic by the caller.
"""

from __future__ import annotations

import os

import numpy as np

try:  # pragma: no cover - exercised in both configurations by the tests
    if os.environ.get("TRIGEO_NO_NUMBA"):
        raise ImportError("numba disabled by TRIGEO_NO_NUMBA")
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA"]

if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def classify_pairs(unit_normals, margin, centre, radius, cell, tri):  # type: ignore[no-untyped-def]
        """(certainly disjoint, cell certainly inside) per (cell, triangle) pair."""
        m = cell.size
        disjoint = np.zeros(m, dtype=np.bool_)
        inside = np.zeros(m, dtype=np.bool_)
        for k in range(m):
            c = cell[k]
            t = tri[k]
            cx = centre[c, 0]
            cy = centre[c, 1]
            cz = centre[c, 2]
            all_in = True
            for e in range(3):
                d = (
                    unit_normals[t, e, 0] * cx
                    + unit_normals[t, e, 1] * cy
                    + unit_normals[t, e, 2] * cz
                )
                r = radius[c] + margin[t, e]
                if d < -r:
                    disjoint[k] = True
                    all_in = False
                    break
                if not d > r:
                    all_in = False
            inside[k] = all_in
        return disjoint, inside

    @njit(cache=True, nogil=True, inline="always")
    def _sin_cos(x, table_sin, table_cos, lo):  # type: ignore[no-untyped-def]
        """sin/cos of x degrees from a 0.1-degree table plus a Taylor series.

        |d| <= 0.05° (8.7e-4 rad), so the truncated series terms are below
        1e-30; the result is within a few ulp of libm (never bitwise-identical),
        and callers only use it through a filter band far wider than that.
        The tables are small enough to stay in cache.
        """
        k = np.int64((x - lo) * 10.0 + 0.5)
        g = lo + k * 0.1
        d = (x - g) * 0.017453292519943295
        d2 = d * d
        sd = d * (1.0 - d2 * (1.0 / 6.0) * (1.0 - d2 * (1.0 / 20.0) * (1.0 - d2 * (1.0 / 42.0))))
        cd = 1.0 - d2 * 0.5 * (
            1.0 - d2 * (1.0 / 12.0) * (1.0 - d2 * (1.0 / 30.0) * (1.0 - d2 * (1.0 / 56.0)))
        )
        sg = table_sin[k]
        cg = table_cos[k]
        return sg * cd + cg * sd, cg * cd - sg * sd

    @njit(cache=True, nogil=True)
    def locate_points(  # type: ignore[no-untyped-def]
        lat,
        lon,
        codes,
        level_offset,
        inv_dlat,
        inv_dlon,
        block_row,
        block_col,
        block_offset,
        n_lat0,
        n_lon0,
        factor,
        leaf_base,
        leaf_data,
        normals,
        band,
        lat_sin,
        lat_cos,
        lon_sin,
        lon_cos,
    ):
        """Descend the raster and test leaf candidates.

        Work goes in passes over all points (root lookups, then each level,
        then the leaf tests) rather than point by point: each pass is a short
        loop of independent loads, so the CPU keeps many cache misses in
        flight; this is about twice as fast as one fused loop.

        ``leaf_data`` holds each leaf as a run ``[count, t1, ..., tk]`` in any
        order: a triangle that certainly contains the point is the only one that
        contains it. A leaf code is ``-2 - position of its count``. Returns
        triangle ids, -1 (no triangle), or ``-2 - k`` where the candidate at
        ``leaf_data[k]`` was unsure (the caller then redoes the leaf exactly,
        in ascending triangle order).
        """
        n = lat.size
        out = np.empty(n, dtype=np.int64)
        ff = factor * factor
        for i in range(n):
            r = np.int64((lat[i] + 90.0) * inv_dlat[0])
            c = np.int64((lon[i] + 180.0) * inv_dlon[0])
            r = min(max(r, 0), n_lat0 - 1)
            c = min(max(c, 0), n_lon0 - 1)
            out[i] = codes[r * n_lon0 + c]
        pending = np.empty(n, dtype=np.int64)
        m = 0
        for i in range(n):
            if out[i] <= leaf_base:
                pending[m] = i
                m += 1
        d = 0
        while m > 0:
            d += 1
            still = 0
            for j in range(m):
                i = pending[j]
                b = leaf_base - out[i]
                r = np.int64((lat[i] + 90.0) * inv_dlat[d]) - block_row[block_offset[d - 1] + b]
                c = np.int64((lon[i] + 180.0) * inv_dlon[d]) - block_col[block_offset[d - 1] + b]
                r = min(max(r, 0), factor - 1)
                c = min(max(c, 0), factor - 1)
                code = np.int64(codes[level_offset[d] + b * ff + r * factor + c])
                out[i] = code
                if code <= leaf_base:
                    pending[still] = i
                    still += 1
            m = still
        for i in range(n):
            code = out[i]
            if code >= -1:
                continue
            head = -2 - code
            s_lat, c_lat = _sin_cos(lat[i], lat_sin, lat_cos, -90.0)
            s_lon, c_lon = _sin_cos(lon[i], lon_sin, lon_cos, -180.0)
            px = c_lat * c_lon
            py = c_lat * s_lon
            pz = s_lat
            res = -1
            for k in range(head + 1, head + 1 + leaf_data[head]):
                t = leaf_data[k]
                outside = False
                certain = True
                for e in range(3):
                    s = normals[t, e, 0] * px + normals[t, e, 1] * py + normals[t, e, 2] * pz
                    if s < -band:
                        outside = True
                        break
                    if not s > band:
                        certain = False
                if outside:
                    continue
                res = t if certain else -2 - k
                break
            out[i] = res
        return out

    @njit(cache=True, nogil=True)
    def walk(p, start, normals, neighbors, max_steps):  # type: ignore[no-untyped-def]
        """Visibility walk: from ``start[i]`` step across the most violated edge.

        Returns the triangle reached, or -1 after ``max_steps`` (the caller
        then asks the exact locator). A Delaunay triangulation has no walk
        cycles, so this ends quickly when the start is near the point.
        """
        m = start.size
        out = np.empty(m, dtype=np.int64)
        for i in range(m):
            px = p[i, 0]
            py = p[i, 1]
            pz = p[i, 2]
            t = start[i]
            found = -1
            for _ in range(max_steps):
                worst = 0.0
                edge = -1
                for e in range(3):
                    s = normals[t, e, 0] * px + normals[t, e, 1] * py + normals[t, e, 2] * pz
                    if s < worst:
                        worst = s
                        edge = e
                if edge < 0:
                    found = t
                    break
                t = neighbors[t, edge]
            out[i] = found
        return out

    @njit(cache=True, nogil=True)
    def inside_depth(unit_normals, points, tri):  # type: ignore[no-untyped-def]
        """min over the 3 edges of n̂·p for pairs (point k, triangle tri[k])."""
        m = tri.size
        out = np.empty(m)
        for k in range(m):
            t = tri[k]
            best = np.inf
            for e in range(3):
                d = (
                    unit_normals[t, e, 0] * points[k, 0]
                    + unit_normals[t, e, 1] * points[k, 1]
                    + unit_normals[t, e, 2] * points[k, 2]
                )
                best = min(best, d)
            out[k] = best
        return out
