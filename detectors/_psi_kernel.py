"""Compiled kernels for windowed PSI over many series at once.

Binning and window counting are sequential per series (a window closes after exactly N
values), so they run compiled over segmented arrays; the PSI arithmetic on the closed
windows is plain vectorized numpy in :mod:`detectors.psi`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _bin_of(x, edges, s, m):  # type: ignore[no-untyped-def]
    """Bin of ``x`` against ``edges[s, :m]`` (open outer bins); NaN and ±inf → missing."""
    if x - x != 0.0:
        return m + 1
    if m <= 32:
        # Few edges (the usual 10 bins): a branch-free count beats a binary search whose
        # branches the CPU cannot predict on random data. Same bin either way.
        lo = 0
        for j in range(m):
            lo += edges[s, j] <= x
        return lo
    lo = 0
    hi = m
    while lo < hi:
        mid = (lo + hi) >> 1
        if edges[s, mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _add(s, b, i, k, counts, filled, size, out_series, out_pos, out_counts, out_seg, n_out):  # type: ignore[no-untyped-def]
    """Count bin ``b`` for series ``s``; close the window when full. Returns windows closed so far."""
    counts[s, b] += 1
    filled[s] += 1
    if filled[s] >= size:
        out_series[n_out] = s
        out_pos[n_out] = i
        out_seg[n_out] = k
        for j in range(counts.shape[1]):
            out_counts[n_out, j] = counts[s, j]
            counts[s, j] = 0
        filled[s] = 0
        n_out += 1
    return n_out


@njit(cache=True, nogil=True)
def count_windows(
    bins: np.ndarray,
    seg_series: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    counts: np.ndarray,
    filled: np.ndarray,
    window: np.ndarray,
    out_series: np.ndarray,
    out_pos: np.ndarray,
    out_counts: np.ndarray,
    out_seg: np.ndarray,
) -> int:
    """Add each bin code to its series' open window; close windows that reach their size.

    A closed window's series, the index of its last value, its segment and its histogram go
    to the ``out_*`` arrays; the series' counts start again from zero. Returns windows closed.
    """
    n_out = 0
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        size = window[s]
        for i in range(seg_start[k], seg_end[k]):
            n_out = _add(s, bins[i], i, k, counts, filled, size, out_series, out_pos, out_counts, out_seg, n_out)
    return n_out


@njit(cache=True, nogil=True)
def count_numeric_windows(
    values: np.ndarray,
    seg_series: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    edges: np.ndarray,
    n_edges: np.ndarray,
    counts: np.ndarray,
    filled: np.ndarray,
    window: np.ndarray,
    out_series: np.ndarray,
    out_pos: np.ndarray,
    out_counts: np.ndarray,
    out_seg: np.ndarray,
) -> int:
    """:func:`count_windows` on numeric values, binned on the fly (no bin array)."""
    n_out = 0
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        size = window[s]
        m = n_edges[s]
        for i in range(seg_start[k], seg_end[k]):
            b = _bin_of(values[i], edges, s, m)
            n_out = _add(s, b, i, k, counts, filled, size, out_series, out_pos, out_counts, out_seg, n_out)
    return n_out
