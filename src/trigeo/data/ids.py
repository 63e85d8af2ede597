"""Photo ids as 64-bit keys: duplicate detection, seeded splits and id lookups.

Every importer keys photos by :func:`id_keys` (the number itself for numeric
ids, a hash otherwise), which makes duplicate detection (:class:`SeenIds`),
the streaming split (:func:`split_from_keys`) and lookups of ids or file
names among millions (:class:`KeyIndex`) vectorized numpy work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "SPLIT_NAMES",
    "KeyIndex",
    "SeenIds",
    "id_keys",
    "mix64",
    "split_codes",
    "split_from_keys",
    "unique_keys",
]

#: The seeded split's names, indexed by :func:`split_codes`.
SPLIT_NAMES = ("train", "val", "heads")


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: spreads 64-bit keys uniformly (for hash-based splits)."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def id_keys(ids: pa.Array) -> np.ndarray:
    """64-bit keys of photo ids: the number itself for numeric ids, else a hash.

    Parameters
    ----------
    ids
        Strings (no nulls).

    Returns
    -------
    numpy.ndarray
        uint64 per id. Hashed keys have the top bit set, so they never equal
        a numeric id below 2**63; two different strings can still share a
        hash, which :class:`KeyIndex` rules out by comparing the strings.
    """
    # Numeric: 1 to 19 ASCII digits (what ^[0-9]{1,19}$ matches, without a regex).
    numeric = pc.and_(pc.ascii_is_decimal(ids), pc.less_equal(pc.binary_length(ids), 19)).to_numpy(
        zero_copy_only=False
    )
    keys = np.empty(len(ids), dtype=np.uint64)
    if numeric.all():
        return pc.cast(ids, pa.uint64()).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(numeric)
    if where.size:
        keys[where] = pc.cast(ids.take(pa.array(where)), pa.uint64()).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(~numeric)
    text = ids.take(pa.array(other)).to_numpy(zero_copy_only=False)
    # categorize=False gives the same hashes (pandas hashes the categories, then
    # maps them back) some five times faster on mostly distinct ids.
    keys[other] = pd.util.hash_array(text, categorize=False) | np.uint64(1 << 63)
    return keys


def unique_keys(keys: np.ndarray) -> np.ndarray:
    """The distinct values of a uint64 array, sorted.

    ``np.unique`` gives the same, but numpy 2.3 takes a hash-table path for
    it that is some ten times slower than sorting on millions of keys.
    """
    ordered = np.sort(keys)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def split_codes(
    keys: np.ndarray, val_fraction: float, heads_fraction: float, seed: int
) -> np.ndarray:
    """Per-photo split as an index into :data:`SPLIT_NAMES` (int8); see :func:`split_from_keys`."""
    salt = mix64(np.array([seed], dtype=np.uint64))[0]
    u = (mix64(keys ^ salt) >> np.uint64(11)).astype(np.float64) / 2.0**53
    codes = np.zeros(keys.size, dtype=np.int8)
    codes[u < val_fraction] = 1
    codes[u < val_fraction * heads_fraction] = 2
    return codes


def split_from_keys(
    keys: np.ndarray, val_fraction: float, heads_fraction: float, seed: int
) -> np.ndarray:
    """Per-photo split from a seeded hash of its id key: streaming and order-free.

    Parameters
    ----------
    keys
        :func:`id_keys` of the photos.
    val_fraction, heads_fraction, seed
        A photo is ``val`` with probability ``val_fraction``, and ``heads``
        (taken out of ``val``) with ``val_fraction * heads_fraction``.

    Returns
    -------
    numpy.ndarray
        ``"train"``, ``"val"`` or ``"heads"`` per key (object array).
    """
    return np.array(SPLIT_NAMES, dtype=object)[
        split_codes(keys, val_fraction, heads_fraction, seed)
    ]


class SeenIds:
    """Membership of 64-bit id keys in sorted runs (bounded work per batch).

    Importers add each batch's kept keys and ask whether the next batch's
    keys were seen; runs are merged once there are more than eight, so a
    lookup costs a few binary searches whatever the number of batches.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each key was added before (bool array)."""
        found = np.zeros(hashes.size, dtype=bool)
        if not self._runs or hashes.size == 0:
            return found
        # Sorted needles let each binary search start where the last one ended:
        # some three times faster than random ones in runs of millions.
        order = np.argsort(hashes)
        needles = hashes[order]
        hit = np.zeros(hashes.size, dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, needles).clip(0, run.size - 1)
            hit |= run[pos] == needles
        found[order] = hit
        return found

    def add(self, hashes: np.ndarray) -> None:
        """Remember these keys."""
        if hashes.size == 0:
            return
        self._runs.append(np.sort(hashes))
        if len(self._runs) > 8:
            # A stable sort finds the sorted runs in the concatenation and merges them.
            self._runs = [np.sort(np.concatenate(self._runs), kind="stable")]


class KeyIndex:
    """Exact lookup of strings among many, as arrays: sorted 64-bit keys plus the strings.

    Some 16 bytes per entry beside the strings themselves, and a batch of
    lookups is one hash, one binary search and one string comparison per
    value, whatever the number of entries.

    Parameters
    ----------
    strings
        The entries (no nulls). On a repeated string the first one wins.

    Attributes
    ----------
    keys
        Sorted :func:`id_keys` of the kept entries.
    order
        Position in ``strings`` of each kept entry (aligned with ``keys``).
    strings
        The kept entries, aligned with ``keys``.
    duplicates
        Positions in ``strings`` of the entries dropped as repeats.
    """

    def __init__(self, strings: pa.Array) -> None:
        keys = id_keys(strings) if len(strings) else np.empty(0, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")  # first in input order wins a tie
        keys = keys[order]
        dup = np.zeros(keys.size, dtype=bool)
        if keys.size > 1:
            same = keys[1:] == keys[:-1]
            where = np.flatnonzero(same)
            if where.size:
                # Equal keys are equal strings, or a hash collision: compare to tell.
                a = strings.take(pa.array(order[where], type=pa.int64()))
                b = strings.take(pa.array(order[where + 1], type=pa.int64()))
                same[where] = pc.equal(a, b).to_numpy(zero_copy_only=False)
            dup[1:] = same
        self.duplicates = order[dup]
        self.order = order[~dup]
        self.keys = keys[~dup]
        self.strings = strings.take(pa.array(self.order, type=pa.int64()))

    def __len__(self) -> int:
        return int(self.keys.size)

    def lookup(self, values: pa.Array, keys: np.ndarray | None = None) -> np.ndarray:
        """Position (into the kept entries) of each value, or -1 where absent.

        ``keys``, when the caller has them, are the values' :func:`id_keys`
        (hashing is most of a lookup's cost).
        """
        if not len(self) or not len(values):
            return np.full(len(values), -1, dtype=np.int64)
        if keys is None:
            keys = id_keys(values)
        order = np.argsort(keys)  # sorted needles: see SeenIds.contains
        pos = np.empty(keys.size, dtype=np.int64)
        pos[order] = np.searchsorted(self.keys, keys[order])
        pos = pos.clip(0, self.keys.size - 1)
        found = self.keys[pos] == keys
        where = np.flatnonzero(found)
        if where.size:
            same = pc.equal(
                self.strings.take(pa.array(pos[where])), values.take(pa.array(where))
            ).to_numpy(zero_copy_only=False)
            found[where[~same]] = False
        return np.where(found, pos, -1).astype(np.int64)
