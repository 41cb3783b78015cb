"""Compiled ADWIN kernel over many series at once.

A near-line port of river's ADWIN (its Rust ``AdaptiveWindowing`` plus the Python wrapper
that starts a fresh window on the update after a detection). The order of floating-point
operations is kept, so detections are identical to river's. Each series keeps its
exponential histogram in fixed-shape arrays: ``levels`` rows of ``max_buckets + 1`` slots,
the row count grown by the caller (see :func:`levels_needed`) before a call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Columns of the scalar state matrix, one row per series.
TOTAL, VARIANCE, WIDTH, TOTAL_WIDTH, N_BUCKETS, MAX_N_BUCKETS, TICK, N_DETECTIONS, DRIFT, N_LEVELS = range(10)
STATE_WIDTH = 10
# Columns of the parameter matrix.
P_DELTA, P_CLOCK, P_MIN_WINDOW, P_GRACE = range(4)
PARAM_WIDTH = 4


def fresh_state() -> np.ndarray:
    """State of a detector that has seen nothing: an empty window with one bucket row."""
    row = np.zeros(STATE_WIDTH)
    row[N_LEVELS] = 1.0
    return row


def levels_needed(width_after: float) -> int:
    """An upper bound on bucket rows for a window of ``width_after`` values.

    Row ``i`` only ever holds buckets of ``2**i`` values, so a window of ``w`` values never
    needs a row past ``floor(log2(w))``; one spare row covers the merge in flight.
    """
    return max(2, math.floor(math.log2(max(width_after, 1.0))) + 2)


@njit(cache=True, nogil=True, inline="always")
def _insert(s, value, variance, level, st, counts, totals, variances, max_buckets):  # type: ignore[no-untyped-def]
    c = counts[s, level]
    totals[s, level, c] = value
    variances[s, level, c] = variance
    counts[s, level] = c + 1


@njit(cache=True, nogil=True, inline="always")
def _compress_row(s, level, n_elements, counts, totals, variances):  # type: ignore[no-untyped-def]
    cur = counts[s, level]
    remaining = cur - n_elements
    for j in range(remaining):
        totals[s, level, j] = totals[s, level, j + n_elements]
        variances[s, level, j] = variances[s, level, j + n_elements]
    for j in range(max(remaining, 0), cur):
        totals[s, level, j] = 0.0
        variances[s, level, j] = 0.0
    counts[s, level] = cur - n_elements


@njit(cache=True, nogil=True)
def _reset(s, st, counts, totals, variances):  # type: ignore[no-untyped-def]
    for j in range(st.shape[1]):
        st[s, j] = 0.0
    st[s, N_LEVELS] = 1.0
    for lv in range(counts.shape[1]):
        counts[s, lv] = 0
        for j in range(totals.shape[2]):
            totals[s, lv, j] = 0.0
            variances[s, lv, j] = 0.0


@njit(cache=True, nogil=True)
def _insert_element(s, value, st, counts, totals, variances, max_buckets):  # type: ignore[no-untyped-def]
    _insert(s, value, 0.0, 0, st, counts, totals, variances, max_buckets)
    st[s, N_BUCKETS] += 1.0
    if st[s, N_BUCKETS] > st[s, MAX_N_BUCKETS]:
        st[s, MAX_N_BUCKETS] = st[s, N_BUCKETS]
    width = st[s, WIDTH] + 1.0
    st[s, WIDTH] = width
    incremental_variance = 0.0
    if width > 1.0:
        delta_v = value - st[s, TOTAL] / (width - 1.0)
        incremental_variance = (width - 1.0) * delta_v * delta_v / width
    st[s, VARIANCE] += incremental_variance
    st[s, TOTAL] += value
    # Merge the two oldest buckets of every full row into the next row.
    idx = 0
    while counts[s, idx] == max_buckets + 1:
        n1 = float(1 << idx)
        t0 = totals[s, idx, 0]
        t1 = totals[s, idx, 1]
        v0 = variances[s, idx, 0]
        v1 = variances[s, idx, 1]
        mu1 = t0 / n1
        mu2 = t1 / n1
        total12 = t0 + t1
        temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        v12 = v0 + v1 + temp
        if idx + 1 >= int(st[s, N_LEVELS]):
            st[s, N_LEVELS] += 1.0
        _insert(s, total12, v12, idx + 1, st, counts, totals, variances, max_buckets)
        st[s, N_BUCKETS] += 1.0
        _compress_row(s, idx, 2, counts, totals, variances)
        if counts[s, idx + 1] <= max_buckets:
            break
        idx += 1


@njit(cache=True, nogil=True)
def _delete_element(s, st, counts, totals, variances):  # type: ignore[no-untyped-def]
    last = int(st[s, N_LEVELS]) - 1
    n = float(1 << last)
    u = totals[s, last, 0]
    v = variances[s, last, 0]
    mu = u / n
    st[s, WIDTH] -= n
    st[s, TOTAL] -= u
    width = st[s, WIDTH]
    mu_window = st[s, TOTAL] / width
    inc = v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    st[s, VARIANCE] -= inc
    _compress_row(s, last, 1, counts, totals, variances)
    st[s, N_BUCKETS] -= 1.0
    if counts[s, last] == 0:
        st[s, N_LEVELS] -= 1.0
    return n


@njit(cache=True, nogil=True, inline="always")
def _evaluate_cut(n0, n1, delta_mean, delta_prime, var_per_width, min_window):  # type: ignore[no-untyped-def]
    # delta_prime and variance/width depend on the window only: hoisted out of the cut
    # loop by the caller, bit-identical to river computing them per cut.
    m_recip = 1.0 / (n0 - min_window + 1.0) + 1.0 / (n1 - min_window + 1.0)
    epsilon = math.sqrt(2.0 * m_recip * var_per_width * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
    return abs(delta_mean) > epsilon


@njit(cache=True, nogil=True)
def _detect_change(s, st, counts, totals, variances, delta, clock, min_window, grace, cut):  # type: ignore[no-untyped-def]
    """river's ``detect_change``; ``cut`` receives (n0, u0, n1, u1, width) of the first cut."""
    change_detected = False
    st[s, TICK] += 1.0
    if (int(st[s, TICK]) % clock == 0) and (st[s, WIDTH] > grace):
        reduce_width = True
        while reduce_width:
            reduce_width = False
            exit_flag = False
            n0 = 0.0
            n1 = st[s, WIDTH]
            u0 = 0.0
            u1 = st[s, TOTAL]
            deque_len = int(st[s, N_LEVELS])
            width = st[s, WIDTH]
            delta_prime = math.log(2.0 * math.log(width) / delta)
            var_per_width = st[s, VARIANCE] / width
            deleted = False
            for idx in range(deque_len - 1, -1, -1):
                if exit_flag or deleted:
                    break
                bucket_size = float(1 << idx)
                cur = counts[s, idx]
                for k in range(cur):
                    n0 += bucket_size
                    n1 -= bucket_size
                    total_at = totals[s, idx, k]
                    u0 += total_at
                    u1 -= total_at
                    if idx == 0 and k == cur - 1:
                        exit_flag = True
                        break
                    delta_mean = (u0 / n0) - (u1 / n1)
                    if (
                        n1 >= min_window
                        and n0 >= min_window
                        and _evaluate_cut(n0, n1, delta_mean, delta_prime, var_per_width, min_window)
                    ):
                        reduce_width = True
                        if not change_detected:
                            cut[0] = n0
                            cut[1] = u0
                            cut[2] = n1
                            cut[3] = u1
                            cut[4] = st[s, WIDTH]
                        change_detected = True
                        if st[s, WIDTH] > 0.0:
                            _delete_element(s, st, counts, totals, variances)
                            deleted = True
                            break
    st[s, TOTAL_WIDTH] += st[s, WIDTH]
    if change_detected:
        st[s, N_DETECTIONS] += 1.0
    return change_detected


@njit(cache=True, nogil=True)
def adwin_update(
    values: np.ndarray,
    seg_series: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    st: np.ndarray,
    params: np.ndarray,
    counts: np.ndarray,
    totals: np.ndarray,
    variances: np.ndarray,
    max_buckets: int,
    det_pos: np.ndarray,
    det_cut: np.ndarray,
) -> int:
    """Feed ``values[seg_start[k]:seg_end[k]]`` to series ``seg_series[k]`` for every k.

    Writes each detection's value index and its first cut (n0, u0, n1, u1, width) into
    ``det_pos``/``det_cut`` and returns how many there were.
    """
    n_det = 0
    cut = np.empty(5)
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        delta = params[s, P_DELTA]
        clock = int(params[s, P_CLOCK])
        min_window = params[s, P_MIN_WINDOW]
        grace = params[s, P_GRACE]
        for i in range(seg_start[k], seg_end[k]):
            if st[s, DRIFT] != 0.0:
                _reset(s, st, counts, totals, variances)
            _insert_element(s, values[i], st, counts, totals, variances, max_buckets)
            if _detect_change(s, st, counts, totals, variances, delta, clock, min_window, grace, cut):
                st[s, DRIFT] = 1.0
                det_pos[n_det] = i
                for j in range(5):
                    det_cut[n_det, j] = cut[j]
                n_det += 1
    return n_det
