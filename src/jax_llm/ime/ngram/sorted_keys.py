"""Lookups in arrays of sorted int64 keys, shared by the n-gram tables: a key's row is found by binary
search (`np.searchsorted`), for many queries at once or for one (a keystroke)."""

import numpy as np


def find(keys: np.ndarray, q) -> np.ndarray:
    """Row of each query in sorted `keys`, or -1."""
    q = np.asarray(q)
    if not len(keys):
        return np.full(q.shape, -1, np.int64)
    i = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return np.where(keys[i] == q, i, -1)


def find_one(keys: np.ndarray, q: int) -> int:
    """`find` for one query, with Python scalars."""
    i = int(keys.searchsorted(q))
    return i if i < len(keys) and keys[i] == q else -1


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of range(lo[j], hi[j]) for all j, without a Python loop."""
    n = hi - lo
    return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())
