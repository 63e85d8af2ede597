"""Compiled inner loops for point location (numba, optional).

The pure-numpy code in :mod:`trigeo.mesh.locate` gives identical answers
without them (the tests run both against brute force); numba only makes it
faster. The compiled locator goes further than its numpy twin (edge and fan
records), but decides nothing the exact predicate would decide differently.
Set ``TRIGEO_NO_NUMBA=1`` to force the numpy path.

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

__all__ = ["FAN_WIDTH", "HAVE_NUMBA"]

# Most candidates a fan record holds (TriangleLocator._compile_leaves).
FAN_WIDTH = 16

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

    @njit(cache=True, nogil=True, inline="always", error_model="numpy")
    def _sin_cos_fast(x, table_sin, table_cos, lo):  # type: ignore[no-untyped-def]
        """sin/cos of x degrees from a 0.1-degree table plus a short series.

        |d| <= 0.05° (8.7e-4 rad): the dropped terms d**5/120 and d**6/720
        are below 1e-17, so the result is within a few ulp of libm.
        """
        k = np.int64((x - lo) * 10.0 + 0.5)
        d = (x - (lo + k * 0.1)) * 0.017453292519943295
        d2 = d * d
        sd = d - d * d2 * (1.0 / 6.0)
        cd = 1.0 - d2 * 0.5 + d2 * d2 * (1.0 / 24.0)
        sg = table_sin[k]
        cg = table_cos[k]
        return sg * cd + cg * sd, cg * cd - sg * sd

    @njit(cache=True, nogil=True, error_model="numpy")
    def descend(lat, lon, out, pending, place, pcode, leaves, raster):  # type: ignore[no-untyped-def]
        """Raster codes of all points into ``out``; returns how many of them
        (listed in ``leaves``) stopped at a leaf record.

        ``raster`` is ``(codes, level_offset, scale_lat, scale_lon, n_lat0,
        n_lon0, factor_bits, n_levels, leaf_base)``. Each point gets its row
        and column on the FINEST raster once; its cell at any coarser level is
        a right shift of those, because the factor is a power of two and
        scaling by it is exact in floating point. The root lookups run first,
        then one sweep per level over the points still descending: each sweep
        is a short loop of independent loads, so the CPU keeps many cache
        misses in flight, and the lists grow by branch-free appends because
        whether a point descends is unpredictable. ``pending``, ``place`` and
        ``pcode`` are scratch with one entry per point.
        """
        (
            codes,
            level_offset,
            scale_lat,
            scale_lon,
            n_lat0,
            n_lon0,
            factor_bits,
            n_levels,
            leaf_base,
        ) = raster
        depth = factor_bits * (n_levels - 1)
        n_rows = n_lat0 << depth
        n_cols = n_lon0 << depth
        m = 0
        n_leaf = 0
        for i in range(lat.size):
            r = min(max(np.int64((lat[i] + 90.0) * scale_lat), 0), n_rows - 1)
            c = min(max(np.int64((lon[i] + 180.0) * scale_lon), 0), n_cols - 1)
            code = codes[(r >> depth) * n_lon0 + (c >> depth)]
            out[i] = code
            pending[m] = i
            place[m] = (r << 32) | c
            pcode[m] = code
            m += np.int64(code <= leaf_base)
            leaves[n_leaf] = i
            n_leaf += np.int64((code <= -2) & (code > leaf_base))
        mask = (np.int64(1) << factor_bits) - 1
        level = 0
        while m > 0:
            level += 1
            base = level_offset[level]
            shift = factor_bits * (n_levels - 1 - level)
            still = 0
            for j in range(m):
                i = pending[j]
                rc = place[j]
                block = np.int64(leaf_base) - pcode[j]
                local = ((((rc >> 32) >> shift) & mask) << factor_bits) | (
                    ((rc & 0xFFFFFFFF) >> shift) & mask
                )
                code = codes[base + (block << (2 * factor_bits)) + local]
                out[i] = code
                pending[still] = i
                place[still] = rc
                pcode[still] = code
                still += np.int64(code <= leaf_base)
                leaves[n_leaf] = i
                n_leaf += np.int64((code <= -2) & (code > leaf_base))
            m = still
        return n_leaf

    @njit(cache=True, nogil=True, error_model="numpy")
    def leaf_pass(  # type: ignore[no-untyped-def]
        lat, lon, out, leaves, n_leaf, unit, heads, edge_list, other_list, records
    ):
        """Resolve the points ``leaves[:n_leaf]``, whose codes are leaf records.

        The cost here is branch mispredictions more than arithmetic: so a
        first loop computes the unit vectors and sorts the points by record
        kind (branch-free appends to ``edge_list``, and to ``other_list``:
        fans from the front, general records from the back). Fans are then
        bucketed by size so each bucket runs a loop of fixed length. The
        scratch ``heads`` (int64) and the lists hold ``n_leaf`` entries.
        ``records`` is ``(leaf_data, normals, band, lat_sin, lat_cos, lon_sin,
        lon_cos, fan_start, general_start)``: the record array, edge normals,
        the filter band, the trig tables, and where fan and general records
        begin in ``leaf_data``.
        """
        leaf_data, normals, band, lat_sin, lat_cos, lon_sin, lon_cos, fan_start, general_start = (
            records
        )
        n_edge = 0
        n_fan = 0
        n_general = 0
        for j in range(n_leaf):
            i = leaves[j]
            s_lat, c_lat = _sin_cos_fast(lat[i], lat_sin, lat_cos, -90.0)
            s_lon, c_lon = _sin_cos_fast(lon[i], lon_sin, lon_cos, -180.0)
            unit[j, 0] = c_lat * c_lon
            unit[j, 1] = c_lat * s_lon
            unit[j, 2] = s_lat
            head = -2 - out[i]
            heads[j] = head
            # Records lie by kind (edges, fans, general), so the position
            # alone gives the kind, without loading the record here.
            edge_list[n_edge] = j
            n_edge += np.int64(head < fan_start)
            # n_fan + n_general <= j, so neither write lands on a taken slot.
            other_list[n_fan] = j
            n_fan += np.int64((head >= fan_start) & (head < general_start))
            other_list[n_leaf - 1 - n_general] = j
            n_general += np.int64(head >= general_start)
        for q in range(n_edge):
            j = edge_list[q]
            head = heads[j]
            te = leaf_data[head + 1]
            t = te // 3
            e = te - 3 * t
            s = (
                normals[t, e, 0] * unit[j, 0]
                + normals[t, e, 1] * unit[j, 1]
                + normals[t, e, 2] * unit[j, 2]
            )
            # Selects, not branches: the side of the edge is a coin flip.
            side = t if s > 0.0 else np.int64(leaf_data[head + 2])
            out[leaves[j]] = side if abs(s) > band else -2 - head
        # Fans, bucketed by size into edge_list[n_edge:]: a fan's loop length
        # varies from point to point and would mispredict at every exit.
        by_size = np.zeros(FAN_WIDTH + 2, dtype=np.int64)
        for q in range(n_fan):
            by_size[-leaf_data[heads[other_list[q]]]] += 1
        position = np.empty(FAN_WIDTH + 2, dtype=np.int64)
        total = n_edge
        for k in range(FAN_WIDTH + 2):
            position[k] = total
            total += by_size[k]
        for q in range(n_fan):
            j = other_list[q]
            k = -leaf_data[heads[j]]
            edge_list[position[k]] = j
            position[k] += 1
        q = n_edge
        for k in range(FAN_WIDTH + 2):
            for _ in range(by_size[k]):
                # The one lune that certainly holds the point names its
                # triangle; none means unsure.
                j = edge_list[q]
                q += 1
                head = heads[j]
                px = unit[j, 0]
                py = unit[j, 1]
                pz = unit[j, 2]
                res = -2 - head
                for m in range(head + 1, head + 1 + k):
                    tc = leaf_data[m]
                    t = tc // 3
                    c = tc - 3 * t
                    c_in = c + 2 if c == 0 else c - 1  # the edge ending at the vertex
                    s1 = normals[t, c, 0] * px + normals[t, c, 1] * py + normals[t, c, 2] * pz
                    s2 = (
                        normals[t, c_in, 0] * px
                        + normals[t, c_in, 1] * py
                        + normals[t, c_in, 2] * pz
                    )
                    res = t if (s1 > band) & (s2 > band) else res
                out[leaves[j]] = res
        for q in range(n_leaf - n_general, n_leaf):
            # Any candidates, most likely first: a triangle that certainly
            # contains the point is the only one containing it.
            j = other_list[q]
            head = heads[j]
            px = unit[j, 0]
            py = unit[j, 1]
            pz = unit[j, 2]
            res = -1
            for m in range(head + 1, head + 1 + leaf_data[head]):
                t = leaf_data[m]
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
                res = t if certain else -2 - head
                break
            out[leaves[j]] = res

    @njit(cache=True, nogil=True, error_model="numpy")
    def locate_points(lat, lon, out, index, place, code, leaves, unit, raster, records):  # type: ignore[no-untyped-def]
        """Triangle of every point into ``out``.

        ``index``, ``place``, ``code``, ``leaves`` (one entry per point) and
        ``unit`` (``(n, 3)``) are scratch, kept by the caller between calls:
        fresh multi-megabyte buffers would cost about as much in page faults
        as the whole search. ``raster`` and ``records`` are described in
        :func:`descend` and :func:`leaf_pass`.

        ``out`` gets triangle ids, -1 (no triangle), or ``-2 - position`` of
        the leaf record of a point whose sign was unsure (the caller then
        decides it exactly, in ascending triangle order).
        """
        n_leaf = descend(lat, lon, out, index, place, code, leaves, raster)
        # After the descent, index/place/code are free to serve as the leaf
        # pass's lists.
        leaf_pass(lat, lon, out, leaves, n_leaf, unit, place, index, code, records)

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
