"""Compiled Page-Hinkley kernel over many series at once.

The arithmetic is a line-for-line port of ``river.drift.PageHinkley.update`` (and of
``river.stats.Mean.update``) so every float is computed with the same IEEE operations in
the same order: detections are identical to river's, not merely close. One call updates
every series of a batch; the per-call cost is paid once per batch, not once per key.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Columns of the state matrix, one row per series.
N, MEAN, SUM_INC, SUM_DEC, MIN_INC, MAX_DEC, DRIFT = range(7)
STATE_WIDTH = 7
# Columns of the parameter matrix.
P_MIN_INSTANCES, P_DELTA, P_THRESHOLD, P_ALPHA, P_MODE = range(5)
PARAM_WIDTH = 5
MODE_UP, MODE_DOWN, MODE_BOTH = 0, 1, 2
# Direction flags reported per detection.
DIR_UP, DIR_DOWN = 1, 2


def fresh_state() -> np.ndarray:
    """State of a detector that has seen nothing, as river's ``_reset`` leaves it."""
    row = np.zeros(STATE_WIDTH)
    row[MIN_INC] = np.inf
    row[MAX_DEC] = -1.0
    return row


@njit(cache=True, nogil=True)
def ph_update(
    values: np.ndarray,
    seg_series: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    state: np.ndarray,
    params: np.ndarray,
    det_pos: np.ndarray,
    det_dir: np.ndarray,
    det_stat: np.ndarray,
    det_mean: np.ndarray,
    det_n: np.ndarray,
    det_seg: np.ndarray,
) -> int:
    """Feed ``values[seg_start[k]:seg_end[k]]`` to series ``seg_series[k]`` for every k.

    NaN values are skipped (missing).
    Writes each detection's value index, direction, test statistic, running mean and run
    length (values since the last reset) into the ``det_*`` arrays (capacity
    ``len(values)``) and returns how many there were.
    """
    n_det = 0
    for k in range(seg_series.shape[0]):
        s = seg_series[k]
        n = state[s, N]
        mean = state[s, MEAN]
        s_inc = state[s, SUM_INC]
        s_dec = state[s, SUM_DEC]
        min_inc = state[s, MIN_INC]
        max_dec = state[s, MAX_DEC]
        drift = state[s, DRIFT] != 0.0
        min_instances = params[s, P_MIN_INSTANCES]
        delta = params[s, P_DELTA]
        threshold = params[s, P_THRESHOLD]
        alpha = params[s, P_ALPHA]
        mode = int(params[s, P_MODE])
        for i in range(seg_start[k], seg_end[k]):
            x = values[i]
            if x != x:  # NaN: missing, not fed
                continue
            if drift:
                n = 0.0
                mean = 0.0
                s_inc = 0.0
                s_dec = 0.0
                min_inc = np.inf
                max_dec = -1.0
                drift = False
            n += 1.0
            mean += (1.0 / n) * (x - mean)
            dev = x - mean
            s_inc = alpha * s_inc + dev - delta
            s_dec = alpha * s_dec + dev + delta
            min_inc = min(min_inc, s_inc)
            max_dec = max(max_dec, s_dec)
            if n >= min_instances:
                t_inc = s_inc - min_inc
                t_dec = max_dec - s_dec
                up = t_inc > threshold
                down = t_dec > threshold
                if mode == MODE_UP:
                    drift = up
                elif mode == MODE_DOWN:
                    drift = down
                else:
                    drift = up or down
                if drift:
                    det_pos[n_det] = i
                    direction = 0
                    if up and mode != MODE_DOWN:
                        direction |= DIR_UP
                    if down and mode != MODE_UP:
                        direction |= DIR_DOWN
                    det_dir[n_det] = direction
                    if direction == DIR_UP:
                        det_stat[n_det] = t_inc
                    elif direction == DIR_DOWN:
                        det_stat[n_det] = t_dec
                    else:
                        det_stat[n_det] = max(t_inc, t_dec)
                    det_mean[n_det] = mean
                    det_n[n_det] = n
                    det_seg[n_det] = k
                    n_det += 1
        state[s, N] = n
        state[s, MEAN] = mean
        state[s, SUM_INC] = s_inc
        state[s, SUM_DEC] = s_dec
        state[s, MIN_INC] = min_inc
        state[s, MAX_DEC] = max_dec
        state[s, DRIFT] = 1.0 if drift else 0.0
    return n_det
