"""One monitor per (model, stage, variant): its signals, their references and detector handles.

The detectors themselves live in the bank's pools (one row per signal); a monitor holds the
row ids, the warm-up buffers and the alert lifecycle, and knows how to snapshot all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .config import MonitorSettings
from .policy import AlertState
from .reference import SignalProfile, categorical_profile, numeric_profile

__all__ = ["Key", "Monitor", "Signal", "OUTCOME_ROLES"]

Key = tuple[str, str, str]
Role = Literal["feature", "missing", "prediction", "latency", "label", "error", "abs_error"]
OUTCOME_ROLES = frozenset(("label", "error", "abs_error"))  # fed by joined pairs, not by events
_MARKS = 1024
MARK_STRIDE = 64


@dataclass(slots=True)
class Signal:
    """One monitored series of a monitor, e.g. ``feature:amount`` or ``missing:amount``."""

    name: str
    role: Role
    source: str
    kind: Literal["numeric", "categorical"]
    started_at: int
    seen: int = 0
    profile: SignalProfile | None = None
    reference_source: str = "warmup"
    warm_values: list[Any] = field(default_factory=list)
    warm_pos: list[np.ndarray] = field(default_factory=list)
    warm_ts: list[np.ndarray] = field(default_factory=list)
    adwin: int | None = None
    adwin_pool: int = 0  # max_buckets of the ADWIN pool holding the row
    ph: int | None = None
    psi: int | None = None
    psi_pool: float = 0.0  # epsilon of the PSI pool holding the row
    alerts: dict[str, AlertState] = field(default_factory=dict)
    # Summary accumulators since the last window summary.
    s_count: int = 0
    s_missing: int = 0
    s_sum: float = 0.0
    s_psi: float | None = None

    @property
    def active(self) -> bool:
        return self.profile is not None

    def build_profile(self, bins: int, max_categories: int) -> SignalProfile:
        """The reference from the warm-up buffer; the buffer is kept for the caller to replay."""
        if self.kind == "numeric":
            return numeric_profile(np.concatenate(self.warm_values) if self.warm_values else np.empty(0), bins)
        return categorical_profile([v for chunk in self.warm_values for v in chunk], max_categories)

    def alert_state(self, detector: str) -> AlertState:
        st = self.alerts.get(detector)
        if st is None:
            st = self.alerts[detector] = AlertState()
        return st

    def reset_summary(self) -> None:
        self.s_count = self.s_missing = 0
        self.s_sum = 0.0
        self.s_psi = None


def missing_profile(feature: SignalProfile) -> SignalProfile:
    """Reference of a missing indicator (0/1), derived from its feature's reference."""
    p = feature.missing_rate
    return SignalProfile("numeric", (1.0 - p, p, 0.0), feature.count, edges=(1.0,), mean=p, std=math.sqrt(p * (1 - p)))


@dataclass(slots=True)
class Monitor:
    """State of one (model, stage, variant)."""

    key: Key
    settings: MonitorSettings
    position: int = 0
    version: str | None = None
    signals: dict[str, Signal] = field(default_factory=dict)
    # Ring of (position, event time) at every MARK_STRIDE-th position: 16 KB per monitor.
    marks: np.ndarray = field(default_factory=lambda: np.full((_MARKS, 2), -1, np.int64))
    summary_start_pos: int = 0
    summary_start_ts: int | None = None
    latencies: list[float] = field(default_factory=list)
    layout: Any = None  # the bank's cached mapping of signals to block rows
    comparison: Any = None  # variants.Comparison when this variant is compared with a baseline
    fired: list[tuple[int, str]] = field(default_factory=list)  # recent firings (event time, id): pipelines
    # Predictions joined with their labels (detectors.join) form a second stream of the monitor,
    # with its own positions and marks.
    joined: int = 0
    joined_marks: np.ndarray = field(default_factory=lambda: np.full((_MARKS, 2), -1, np.int64))

    def mark(self, pos: np.ndarray, ts: np.ndarray, outcomes: bool = False) -> None:
        """Remember the event time of every ``MARK_STRIDE``-th position, to date window starts
        that lie before the current batch. Fixed positions, so batching changes nothing."""
        marks = self.joined_marks if outcomes else self.marks
        first = (-int(pos[0])) % MARK_STRIDE
        p = pos[first::MARK_STRIDE]
        if p.shape[0]:
            slots = (p // MARK_STRIDE) % _MARKS
            marks[slots, 0] = p
            marks[slots, 1] = ts[first::MARK_STRIDE]

    def marks_state(self, outcomes: bool = False) -> np.ndarray:
        """The ring's used rows (a snapshot writes these, not the 16 KB ring)."""
        marks = self.joined_marks if outcomes else self.marks
        return marks[marks[:, 0] >= 0]

    def restore_marks(self, rows: np.ndarray, outcomes: bool = False) -> None:
        """The ring from :meth:`marks_state` (or from a whole ring, as older snapshots hold it)."""
        ring = np.full((_MARKS, 2), -1, np.int64)
        rows = rows[rows[:, 0] >= 0]
        ring[(rows[:, 0] // MARK_STRIDE) % _MARKS] = rows
        if outcomes:
            self.joined_marks = ring
        else:
            self.marks = ring

    def ts_at(self, position: int, outcomes: bool = False) -> int:
        """Event time at the last marked position at or before ``position`` (the oldest kept
        mark when the position is older than the ring: 64 k events)."""
        marks = self.joined_marks if outcomes else self.marks
        slot = (position // MARK_STRIDE) % _MARKS
        if marks[slot, 0] == position - position % MARK_STRIDE:
            return int(marks[slot, 1])
        kept = marks[marks[:, 0] >= 0]
        if not kept.shape[0]:
            return 0
        older = kept[kept[:, 0] <= position]
        row = older[older[:, 0].argmax()] if older.shape[0] else kept[kept[:, 0].argmin()]
        return int(row[1])

    def to_meta(self) -> dict[str, Any]:
        """JSON-able part of a snapshot (detector rows are packed by the bank)."""
        return {
            "key": list(self.key),
            "position": self.position,
            "version": self.version,
            "summary": [self.summary_start_pos, self.summary_start_ts],
            "signals": [
                {
                    "name": s.name,
                    "role": s.role,
                    "source": s.source,
                    "kind": s.kind,
                    "started_at": s.started_at,
                    "seen": s.seen,
                    "profile": s.profile.to_json() if s.profile else None,
                    "reference_source": s.reference_source,
                    "alerts": {k: v.to_json() for k, v in s.alerts.items()},
                    "warm_values": ([v for chunk in s.warm_values for v in chunk] if s.kind == "categorical" else None),
                    "summary": [s.s_count, s.s_missing, s.s_sum, s.s_psi],
                }
                for s in self.signals.values()
            ],
            "comparison": self.comparison.to_json() if self.comparison is not None else None,
            "fired": [list(f) for f in self.fired],
            "joined": self.joined,
        }
