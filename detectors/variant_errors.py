"""A candidate variant's error rate against its baseline's, once labels join.

A canary can keep the baseline's input and prediction distributions and still be wrong more
often: only labels show it. The joined pairs of both variants (``detectors.join``) are
counted into tumbling windows of ``window_s`` by *label* event time: labels come late, and
long after the predictions' windows closed. When a window closes, the candidate's error rate
is compared with the baseline's in that window. It alerts when the candidate is worse by at
least ``error_warning`` (``error_critical``), absolute, and a chi-square test of equal rates
rejects at ``error_alpha``. A window with fewer than ``min_outcomes`` pairs on either side is
not judged.

Classification only (the ``error`` signal: 1 when the prediction differs from its label):
an absolute error has no scale-free threshold. Alerts: signal ``variant:<candidate>:error``,
detector ``error_rate``, statistic the difference of the rates, with both sides' counts in
``details``; the PSI comparisons' lifecycle. Window ``k`` closes at the first pair of either
variant with label time at or after ``(k + 1 + lateness_windows) * window``; a later pair of
a closed window is late (counted, not counted in). Decided per pair in the join's output
order, so batching does not change the windows, statistics or alert ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import VariantRule
from .monitor import Monitor
from .variants import Comparison, Window, _alert, _Verdict, statistics, windows_of

__all__ = ["compare_errors"]


def compare_errors(rule: VariantRule, cand: Monitor, side: np.ndarray, ts: np.ndarray, wrong: np.ndarray,
                   pos: np.ndarray, judge: bool, emitted_at: int) -> list[dict[str, Any]]:  # fmt: skip
    """Count one batch of joined pairs of the candidate (``side`` 1) and its baseline (0), in
    the join's order: label times ``ts``, ``wrong`` 1/0 (nan: no prediction to judge), ``pos``
    the candidate's positions in its stream of joined pairs. The alerts of the windows it
    closes; none unless ``judge`` (the candidate's task is classification)."""
    cmp = cand.comparison
    if cmp is None or cmp.baseline != rule.baseline:
        cmp = cand.comparison = Comparison(rule.baseline)
    if not len(ts):
        return []
    width, idx, late = windows_of(rule, cmp.errors_max_ts, ts)
    cmp.errors_max_ts = max(cmp.errors_max_ts, int(ts.max()))
    cmp.errors_late += int(late.sum())
    keep = ~late & ~np.isnan(wrong)
    for k in np.unique(idx[keep]).tolist():
        win = cmp.error_windows.setdefault(k, [0, 0, 0, 0, -1, -1])
        rows = keep & (idx == k)
        base, mine = rows & (side == 0), rows & (side == 1)
        win[0] += int(base.sum())
        win[1] += int(wrong[base].sum())
        win[2] += int(mine.sum())
        win[3] += int(wrong[mine].sum())
        if mine.any():
            at = pos[mine]
            win[4] = int(at[0]) if win[4] < 0 else win[4]
            win[5] = int(at[-1])
    return _close(rule, cmp, cand, width, judge, emitted_at)


def _close(rule: VariantRule, cmp: Comparison, cand: Monitor, width: int, judge: bool,
           emitted_at: int) -> list[dict[str, Any]]:  # fmt: skip
    out: list[dict[str, Any]] = []
    limit = cmp.errors_max_ts // width - rule.lateness_windows
    for k in sorted(w for w in cmp.error_windows if w < limit):
        counts = cmp.error_windows.pop(k)
        if not judge or min(counts[0], counts[2]) < rule.min_outcomes:
            continue
        win = Window([counts[0], counts[2]], {}, counts[4:6])
        out += _alert(rule, cmp, cand, _verdict(rule, counts), k, width, win, emitted_at)
    return out


def _verdict(rule: VariantRule, counts: list[int]) -> _Verdict:
    n_base, e_base, n_cand, e_cand = counts[:4]
    rate_base, rate_cand = e_base / n_base, e_cand / n_cand
    diff = rate_cand - rate_base
    table = np.array([[n_base - e_base, e_base], [n_cand - e_cand, e_cand]], np.int64)
    _, pval, _ = statistics(table, rule.epsilon)
    severity = None
    if diff > 0 and pval < rule.error_alpha:
        severity = "critical" if diff >= rule.error_critical else "warning" if diff >= rule.error_warning else None
    details = {
        "baseline": {"variant": rule.baseline, "outcomes": n_base, "errors": e_base, "error_rate": rate_base},
        "candidate": {"outcomes": n_cand, "errors": e_cand, "error_rate": rate_cand},
        "p_value": pval,
    }
    threshold = rule.error_critical if severity == "critical" else rule.error_warning
    return _Verdict("error", "error", "error_rate", severity, diff, threshold, details)
