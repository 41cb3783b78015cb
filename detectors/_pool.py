"""Row storage shared by the detector pools: one row per series, grown by doubling."""

from __future__ import annotations

import numpy as np


def grow_rows(arr: np.ndarray, needed: int, fill: float | int = 0) -> np.ndarray:
    """Return ``arr`` with at least ``needed`` rows (capacity doubles), new rows = ``fill``."""
    if arr.shape[0] >= needed:
        return arr
    cap = max(needed, 2 * arr.shape[0], 4)
    out = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def grow_axis(arr: np.ndarray, axis: int, needed: int, fill: float | int = 0) -> np.ndarray:
    """Return ``arr`` with at least ``needed`` entries along ``axis`` (exact size)."""
    if arr.shape[axis] >= needed:
        return arr
    shape = list(arr.shape)
    shape[axis] = needed
    out = np.full(shape, fill, dtype=arr.dtype)
    out[tuple(slice(0, n) for n in arr.shape)] = arr
    return out
