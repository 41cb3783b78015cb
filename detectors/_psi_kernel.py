"""Compiled kernels for windowed PSI over many series at once.

Binning and window counting are sequential per series (a window closes after exactly N
values), so they run compiled over segmented arrays; the PSI arithmetic on the closed
windows is plain vectorized numpy in :mod:`detectors.psi`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bin_numeric(
    values: np.ndarray,
    seg_series: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    edges: np.ndarray,
    n_edges: np.ndarray,
    out: np.ndarray,
) -> None:
    """Bin index of each value against its series' inner edges (open outer bins).

    ``edges[s, :n_edges[s]]`` are sorted inner edges; a value ``x`` lands in bin
    ``searchsorted(edges, x, side="right")`` in ``0..n_edges[s]``; NaN lands in the
    missing bin ``n_edges[s] + 1``.
    """
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        m = n_edges[s]
        for i in range(seg_start[k], seg_end[k]):
            x = values[i]
            if x != x:  # NaN: missing
                out[i] = m + 1
                continue
            lo = 0
            hi = m
            while lo < hi:
                mid = (lo + hi) >> 1
                if edges[s, mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            out[i] = lo


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
    """Add each bin to its series' open window; close windows that reach their size.

    A closed window's series, the index of its last value and its histogram go to the
    ``out_*`` arrays; the series' counts start again from zero. Returns windows closed.
    """
    n_out = 0
    n_bins = counts.shape[1]
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        size = window[s]
        for i in range(seg_start[k], seg_end[k]):
            counts[s, bins[i]] += 1
            filled[s] += 1
            if filled[s] >= size:
                out_series[n_out] = s
                out_pos[n_out] = i
                out_seg[n_out] = k
                for b in range(n_bins):
                    out_counts[n_out, b] = counts[s, b]
                    counts[s, b] = 0
                filled[s] = 0
                n_out += 1
    return n_out
