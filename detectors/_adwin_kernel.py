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
def _compress_row(cnt, tot, var, level, n_elements):  # type: ignore[no-untyped-def]
    cur = cnt[level]
    remaining = cur - n_elements
    for j in range(remaining):
        tot[level, j] = tot[level, j + n_elements]
        var[level, j] = var[level, j + n_elements]
    for j in range(max(remaining, 0), cur):
        tot[level, j] = 0.0
        var[level, j] = 0.0
    cnt[level] = cur - n_elements


@njit(cache=True, nogil=True, inline="always")
def _evaluate_cut(n0, n1, delta_mean, delta_prime, var_per_width, min_window):  # type: ignore[no-untyped-def]
    # delta_prime and variance/width depend on the window only: hoisted out of the cut
    # loop by the caller, bit-identical to river computing them per cut.
    m_recip = 1.0 / (n0 - min_window + 1.0) + 1.0 / (n1 - min_window + 1.0)
    epsilon = math.sqrt(2.0 * m_recip * var_per_width * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
    return abs(delta_mean) > epsilon


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
    det_seg: np.ndarray,
) -> int:
    """Feed ``values[seg_start[k]:seg_end[k]]`` to series ``seg_series[k]`` for every k.

    NaN values are skipped (missing). Writes each detection's value index and its first
    cut (n0, u0, n1, u1, width) into ``det_pos``/``det_cut``; returns how many there were.
    The hot scalars of a series live in locals for the whole segment (the arrays may
    alias, so the compiler would otherwise reload them on every value).
    """
    n_det = 0
    full = max_buckets + 1
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        cnt = counts[s]
        tot = totals[s]
        var = variances[s]
        delta = params[s, P_DELTA]
        clock = int(params[s, P_CLOCK])
        min_window = params[s, P_MIN_WINDOW]
        grace = params[s, P_GRACE]
        total = st[s, TOTAL]
        variance = st[s, VARIANCE]
        width = st[s, WIDTH]
        total_width = st[s, TOTAL_WIDTH]
        n_buckets = st[s, N_BUCKETS]
        max_n_buckets = st[s, MAX_N_BUCKETS]
        tick = st[s, TICK]
        n_detections = st[s, N_DETECTIONS]
        drift = st[s, DRIFT] != 0.0
        n_levels = int(st[s, N_LEVELS])
        phase = int(tick) % clock
        # While every value in the window is exactly 0 (a missing indicator that never
        # fired), each cut has delta_mean == 0 and cannot fire: the scan is skipped. This
        # changes nothing but speed, so the flag is derived here rather than stored.
        zeros_only = total == 0.0 and variance == 0.0
        if zeros_only:
            for lv in range(n_levels):
                for j in range(cnt[lv]):
                    if tot[lv, j] != 0.0:
                        zeros_only = False
        for i in range(seg_start[k], seg_end[k]):
            value = values[i]
            if value != value:
                continue
            if drift:
                # river starts a fresh window on the update after a detection.
                total = variance = width = total_width = 0.0
                n_buckets = max_n_buckets = tick = n_detections = 0.0
                drift = False
                for lv in range(n_levels):
                    cnt[lv] = 0
                    for j in range(full):
                        tot[lv, j] = 0.0
                        var[lv, j] = 0.0
                n_levels = 1
                phase = 0
                zeros_only = True
            if value != 0.0:
                zeros_only = False
            # insert_element
            c = cnt[0]
            tot[0, c] = value
            var[0, c] = 0.0
            cnt[0] = c + 1
            n_buckets += 1.0
            max_n_buckets = max(max_n_buckets, n_buckets)
            width += 1.0
            incremental_variance = 0.0
            if width > 1.0:
                delta_v = value - total / (width - 1.0)
                incremental_variance = (width - 1.0) * delta_v * delta_v / width
            variance += incremental_variance
            total += value
            # compress_buckets
            idx = 0
            while cnt[idx] == full:
                n1 = float(1 << idx)
                t0 = tot[idx, 0]
                t1 = tot[idx, 1]
                mu1 = t0 / n1
                mu2 = t1 / n1
                total12 = t0 + t1
                temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
                v12 = var[idx, 0] + var[idx, 1] + temp
                if idx + 1 >= n_levels:
                    n_levels += 1
                c = cnt[idx + 1]
                tot[idx + 1, c] = total12
                var[idx + 1, c] = v12
                cnt[idx + 1] = c + 1
                n_buckets += 1.0
                _compress_row(cnt, tot, var, idx, 2)
                if cnt[idx + 1] <= max_buckets:
                    break
                idx += 1
            # detect_change
            change_detected = False
            tick += 1.0
            phase += 1
            if phase == clock:
                phase = 0
            if phase == 0 and width > grace and not zeros_only:
                reduce_width = True
                while reduce_width:
                    reduce_width = False
                    exit_flag = False
                    n0 = 0.0
                    n1 = width
                    u0 = 0.0
                    u1 = total
                    delta_prime = math.log(2.0 * math.log(width) / delta)
                    var_per_width = variance / width
                    deleted = False
                    for idx in range(n_levels - 1, -1, -1):
                        if exit_flag or deleted:
                            break
                        bucket_size = float(1 << idx)
                        cur = cnt[idx]
                        for kk in range(cur):
                            n0 += bucket_size
                            n1 -= bucket_size
                            total_at = tot[idx, kk]
                            u0 += total_at
                            u1 -= total_at
                            if idx == 0 and kk == cur - 1:
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
                                    det_cut[n_det, 0] = n0
                                    det_cut[n_det, 1] = u0
                                    det_cut[n_det, 2] = n1
                                    det_cut[n_det, 3] = u1
                                    det_cut[n_det, 4] = width
                                change_detected = True
                                if width > 0.0:
                                    # delete_element: drop the oldest bucket
                                    last = n_levels - 1
                                    nb = float(1 << last)
                                    u = tot[last, 0]
                                    v = var[last, 0]
                                    mu = u / nb
                                    width -= nb
                                    total -= u
                                    mu_window = total / width
                                    variance -= v + nb * width * (mu - mu_window) * (mu - mu_window) / (nb + width)
                                    _compress_row(cnt, tot, var, last, 1)
                                    n_buckets -= 1.0
                                    if cnt[last] == 0:
                                        n_levels -= 1
                                    deleted = True
                                    break
            total_width += width
            if change_detected:
                n_detections += 1.0
                drift = True
                det_pos[n_det] = i
                det_seg[n_det] = k
                n_det += 1
        st[s, TOTAL] = total
        st[s, VARIANCE] = variance
        st[s, WIDTH] = width
        st[s, TOTAL_WIDTH] = total_width
        st[s, N_BUCKETS] = n_buckets
        st[s, MAX_N_BUCKETS] = max_n_buckets
        st[s, TICK] = tick
        st[s, N_DETECTIONS] = n_detections
        st[s, DRIFT] = 1.0 if drift else 0.0
        st[s, N_LEVELS] = float(n_levels)
    return n_det
