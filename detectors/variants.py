"""Deployment patterns: a candidate variant (canary, shadow, green) against its baseline,
over the same event-time windows.

For each (model, stage) a ``variants`` rule covers, each candidate variant's events and the
baseline's are binned, per signal, with the bins of the baseline monitor's reference, into
tumbling event-time windows of ``window_s``. When a window closes, each signal gets the PSI
between the candidate's and the baseline's distributions in that window. Both sides come
from the same time span, so neither a traffic split (a 5 % canary) nor a change that hits
both variants alike (a daily cycle, real data drift) reads as a difference. A window alerts
only when PSI reaches the threshold *and* a chi-square test of equal distributions rejects
at ``alpha``: small windows have a PSI bias of about (bins - 1) / n that the test accounts for.

Alerts: signal ``variant:<candidate>:<signal>``, detector ``psi``, attributed to the
candidate; lifecycle as PSI's (fire, escalate, resolve after ``resolve_windows`` quiet
windows, cooldown). Window ``k`` closes at the first event of either variant with event time
at or after ``(k + 1 + lateness_windows) * window``; an event of a closed window is late
(counted, not binned). Everything is decided per event in stream order, so any batching of
the same input gives the same windows, statistics and alert ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import chdtrc

from .columns import numeric_column
from .config import VariantRule
from .documents import firing_doc, resolved_doc
from .monitor import Monitor, Signal
from .policy import AlertState, alert_id
from .reference import SignalProfile
from .shadow import Pending, pair

__all__ = ["Comparison", "compare"]

_ROLES = ("feature", "prediction", "latency")
_FAR_PAST = -(2**62)


@dataclass(slots=True)
class Window:
    """One open window: events per side (baseline, candidate), per-signal bin counts, and the
    candidate's first and last stream positions in it."""

    counts: list[int]
    hists: dict[str, np.ndarray]  # signal -> (2, bins); only signals ready when it opened
    span: list[int] = field(default_factory=lambda: [-1, -1])
    pairs: list[int] = field(default_factory=lambda: [0, 0])  # shadow mode: pairs, pairs that agree

    def to_json(self) -> dict[str, Any]:
        hists = {s: h.tolist() for s, h in self.hists.items()}
        return {"counts": self.counts, "hists": hists, "span": self.span, "pairs": self.pairs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        hists = {s: np.asarray(h, np.int64) for s, h in data["hists"].items()}
        return cls(list(data["counts"]), hists, list(data["span"]), list(data["pairs"]))


@dataclass(slots=True)
class Comparison:
    """One candidate against its baseline; lives on the candidate's monitor (and snapshot)."""

    baseline: str
    max_ts: int = _FAR_PAST
    late: int = 0
    windows: dict[int, Window] = field(default_factory=dict)
    alerts: dict[str, AlertState] = field(default_factory=dict)  # per signal name, "agreement" and "error"
    pending: Pending = field(default_factory=Pending)
    # joined pairs by label time (see ``variant_errors``): window -> [baseline pairs, errors, candidate pairs,
    # errors, candidate's first and last position]
    error_windows: dict[int, list[int]] = field(default_factory=dict)
    errors_max_ts: int = _FAR_PAST
    errors_late: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "max_ts": self.max_ts,
            "late": self.late,
            "windows": {str(k): w.to_json() for k, w in self.windows.items()},
            "alerts": {s: a.to_json() for s, a in self.alerts.items()},
            "pending": self.pending.to_json(),
            "error_windows": {str(k): w for k, w in self.error_windows.items()},
            "errors_max_ts": self.errors_max_ts,
            "errors_late": self.errors_late,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        return cls(
            data["baseline"],
            int(data["max_ts"]),
            int(data["late"]),
            {int(k): Window.from_json(w) for k, w in data["windows"].items()},
            {s: AlertState.from_json(a) for s, a in data["alerts"].items()},
            Pending.from_json(data["pending"]),
            {int(k): [int(x) for x in w] for k, w in data.get("error_windows", {}).items()},
            int(data.get("errors_max_ts", _FAR_PAST)),
            int(data.get("errors_late", 0)),
        )


def compare(
    rule: VariantRule, cand: Monitor, base: Monitor | None, events: Sequence[Any], emitted_at: int
) -> list[dict[str, Any]]:
    """Feed one batch's events of the candidate and the baseline (stream order, after the
    monitors ingested them) to ``cand.comparison``; the alerts of the windows it closes."""
    cmp = cand.comparison
    if cmp is None or cmp.baseline != rule.baseline:
        cmp = cand.comparison = Comparison(rule.baseline)
    n = len(events)
    if not n:
        return []
    ts = np.fromiter((e.ts for e in events), np.int64, n)
    side = np.fromiter((e.variant != rule.baseline for e in events), np.int64, n)
    width, idx, late = windows_of(rule, cmp.max_ts, ts)
    cmp.max_ts = max(cmp.max_ts, int(ts.max()))
    cmp.late += int(late.sum())
    keep = ~late
    if base is not None and keep.any():
        _bin(rule, cmp, base, cand, events, side, idx, keep)
        if rule.pairing:
            pair(cmp.pending, cmp.windows, events, side, idx, keep, rule.agreement_tolerance, rule.max_pending)
    return _close(rule, cmp, cand, width, emitted_at)


def windows_of(rule: VariantRule, max_ts: int, ts: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(window width in ms, each item's window, whether it is late): an item is late when its
    window is more than ``lateness_windows`` behind the newest time before it (``max_ts`` and
    the items ahead of it in this batch), so the verdict does not depend on batching."""
    width = max(int(rule.window_s * 1000), 1)
    before = np.maximum.accumulate(np.concatenate(([max_ts], ts)))[:-1]  # max time before each
    idx = ts // width
    return width, idx, idx < before // width - rule.lateness_windows


def _ready_signals(rule: VariantRule, base: Monitor, position: int) -> list[Signal]:
    """Baseline signals whose reference bins existed at baseline position ``position``."""
    out = []
    for s in base.signals.values():
        if s.profile is None or s.role not in _ROLES or (rule.signals is not None and s.name not in rule.signals):
            continue
        ready = s.started_at + (0 if s.reference_source != "warmup" else base.settings.warmup_events)
        if ready <= position:
            out.append(s)
    return out


def _bin(rule: VariantRule, cmp: Comparison, base: Monitor, cand: Monitor, events: Sequence[Any],
         side: np.ndarray, idx: np.ndarray, keep: np.ndarray) -> None:  # fmt: skip
    is_base = side == 0
    base_pos = base.position - int(is_base.sum()) + np.cumsum(is_base) - is_base  # baseline events before each
    cand_pos = cand.position - int(side.sum()) + np.cumsum(side) - 1  # a candidate event's own position
    kept = np.flatnonzero(keep)
    wins, first = np.unique(idx[kept], return_index=True)
    codes: dict[str, np.ndarray] = {}
    for k, j in zip(wins.tolist(), kept[first].tolist(), strict=True):
        win = cmp.windows.get(k)
        if win is None:
            sigs = _ready_signals(rule, base, int(base_pos[j]))
            win = cmp.windows[k] = Window([0, 0], {s.name: np.zeros((2, _n_bins(s)), np.int64) for s in sigs})
        rows = kept[idx[kept] == k]
        mine = rows[side[rows] == 1]
        win.counts[0] += len(rows) - len(mine)
        win.counts[1] += len(mine)
        if len(mine):
            win.span[0] = int(cand_pos[mine[0]]) if win.span[0] < 0 else win.span[0]
            win.span[1] = int(cand_pos[mine[-1]])
        for name, hist in win.hists.items():
            if name not in codes:
                codes[name] = _codes(base.signals[name], events)
            c = codes[name][rows]
            np.add.at(hist, (side[rows], c), 1)


def _n_bins(sig: Signal) -> int:
    assert sig.profile is not None
    return sig.profile.n_bins


def _codes(sig: Signal, events: Sequence[Any]) -> np.ndarray:
    """Bin of every event's value of ``sig`` in the baseline's reference bins."""
    prof: SignalProfile = sig.profile  # type: ignore[assignment]  # ready signals only
    if sig.role == "feature":
        values = [e.features.get(sig.source) for e in events]
    elif sig.role == "prediction":
        values = [e.prediction for e in events]
    else:
        values = [e.latency_ms for e in events]
    if prof.kind == "categorical":
        return prof.encode(values)
    arr, _ = numeric_column(values)
    out = np.searchsorted(np.asarray(prof.edges, np.float64), arr, side="right")
    out[np.isnan(arr)] = prof.n_bins - 1
    return out


def _close(rule: VariantRule, cmp: Comparison, cand: Monitor, width: int, emitted_at: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    limit = cmp.max_ts // width - rule.lateness_windows
    closing = sorted(w for w in cmp.windows if w < limit)
    for k in closing:
        win = cmp.windows.pop(k)
        verdicts = []
        if min(win.counts) >= rule.min_events:  # else too few events on one side to compare
            verdicts += [_psi_verdict(rule, name, hist) for name, hist in win.hists.items()]
        if rule.pairing and win.pairs[0] >= rule.min_pairs:
            verdicts.append(_agreement_verdict(rule, win))
        for v in verdicts:
            out += _alert(rule, cmp, cand, v, k, width, win, emitted_at)
    if closing and rule.pairing:
        cmp.pending.expire(limit)
    return out


def statistics(hist: np.ndarray, epsilon: float) -> tuple[float, float, int]:
    """(PSI of candidate vs baseline, chi-square p-value of equal distributions, bins used)."""
    totals = hist.sum(axis=1).astype(np.float64)
    used = hist.sum(axis=0) > 0
    h = hist[:, used].astype(np.float64)
    p = np.maximum(h / totals[:, None], epsilon)
    psi = float(((p[1] - p[0]) * np.log(p[1] / p[0])).sum())
    if h.shape[1] < 2:
        return psi, 1.0, int(h.shape[1])
    expected = totals[:, None] * h.sum(axis=0)[None, :] / totals.sum()
    chi2 = float(((h - expected) ** 2 / expected).sum())
    return psi, float(chdtrc(h.shape[1] - 1, chi2)), int(h.shape[1])


@dataclass(slots=True)
class _Verdict:
    """One closed window's judgement of one signal (or of shadow agreement)."""

    state: str  # key in Comparison.alerts
    signal: str  # the candidate's signal compared
    detector: str
    severity: str | None
    statistic: float
    threshold: float
    details: dict[str, Any]


def _psi_verdict(rule: VariantRule, name: str, hist: np.ndarray) -> _Verdict:
    psi, pval, bins = statistics(hist, rule.epsilon)
    severity = None
    if pval < rule.alpha:
        severity = "critical" if psi >= rule.critical else "warning" if psi >= rule.warning else None
    totals = hist.sum(axis=1)
    details = {
        "baseline": {"variant": rule.baseline, "events": int(totals[0]), "counts": hist[0].tolist()},
        "candidate": {"events": int(totals[1]), "counts": hist[1].tolist()},
        "p_value": pval,
        "bins_used": bins,
    }
    return _Verdict(name, name, "psi", severity, psi, rule.critical if severity == "critical" else rule.warning,
                    details)  # fmt: skip


def _agreement_verdict(rule: VariantRule, win: Window) -> _Verdict:
    pairs, agreed = win.pairs
    rate = agreed / pairs
    severity = "critical" if rate < rule.agreement_critical else "warning" if rate < rule.agreement_warning else None
    threshold = rule.agreement_critical if severity == "critical" else rule.agreement_warning
    details = {"baseline": {"variant": rule.baseline}, "pairs": pairs, "agreed": agreed,
               "tolerance": rule.agreement_tolerance}  # fmt: skip
    return _Verdict("agreement", "prediction", "agreement", severity, rate, threshold, details)


def _alert(rule: VariantRule, cmp: Comparison, cand: Monitor, v: _Verdict, k: int, width: int, win: Window,
           emitted_at: int) -> list[dict[str, Any]]:  # fmt: skip
    """The verdict through the alert lifecycle (PSI's): a firing, escalating or resolved doc."""
    state = cmp.alerts.setdefault(v.state, AlertState())
    end_ts = (k + 1) * width - 1
    action = state.on_psi_window(v.severity, rule.cooldown_s * 1000, end_ts, rule.resolve_windows)
    if not action:
        return []
    model, stage, variant = cand.key
    signal = f"variant:{variant}:{v.signal}"
    if action == "resolve":
        firing = state.end()
        assert firing is not None
        return [resolved_doc(firing, end_ts, f"{rule.resolve_windows} windows alike", emitted_at)]
    aid = state.firing_id if action == "escalate" else alert_id(model, stage, variant, signal, v.detector, k)
    assert aid is not None
    assert v.severity is not None  # fire and escalate come with one
    details = {**v.details, "candidate": {"variant": variant, **v.details.get("candidate", {})},
               "window_s": rule.window_s}  # fmt: skip
    window = (win.counts[1], k * width, end_ts, win.span[0], win.span[1])
    doc = firing_doc(cand, signal, f"variant:{rule.baseline}", win.counts[0], aid=aid, detector=v.detector,
                     severity=v.severity, statistic=v.statistic, threshold=v.threshold, window=window,
                     details=details, emitted_at=emitted_at)  # fmt: skip
    if action == "escalate":
        state.severity = "critical"
        state.firing_doc = doc
    else:
        state.start(aid, v.severity, end_ts, doc)
    return [doc]
