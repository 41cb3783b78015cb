"""Alert lifecycle per (monitor, signal, detector): firing, resolved, cooldown, no storms.

- ADWIN and Page-Hinkley report change points. The first one fires an alert; further
  detections while it fires only keep it alive; it resolves after ``resolve_after_s`` of
  event time without a detection. A new firing needs ``cooldown_s`` of event time since
  the previous one; detections inside the cooldown are counted as suppressed.
- PSI fires when a window reaches the warning threshold, is re-sent once if it escalates
  to critical, and resolves after ``resolve_windows`` consecutive windows below warning.

All times are event times, so a replay of the same input gives the same alerts and ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["AlertState", "alert_id"]


def alert_id(model: str, stage: str, variant: str, signal: str, detector: str, where: int) -> str:
    """Deterministic id: the same detection at the same stream position → the same id."""
    text = "\x1f".join((model, stage, variant, signal, detector, str(where)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class AlertState:
    """Lifecycle of one (signal, detector) of one monitor. Plain data: it goes in snapshots."""

    firing_id: str | None = None
    severity: str = "warning"
    fired_ts: int | None = None
    last_detection_ts: int = 0
    below_streak: int = 0
    suppressed: int = 0
    firing_doc: dict[str, Any] | None = None

    def on_change_point(self, ts: int, cooldown_ms: float) -> bool:
        """A change point at event time ``ts``: should a firing alert go out?"""
        if self.firing_id is not None:
            self.last_detection_ts = max(self.last_detection_ts, ts)
            self.suppressed += 1
            return False
        if self.fired_ts is not None and ts - self.fired_ts < cooldown_ms:
            self.suppressed += 1
            return False
        return True

    def change_point_resolves(self, now_ts: int, resolve_after_ms: float) -> bool:
        return self.firing_id is not None and now_ts - self.last_detection_ts >= resolve_after_ms

    def on_psi_window(self, severity: str | None, cooldown_ms: float, ts: int, resolve_windows: int) -> str:
        """A closed PSI window with ``severity`` (None = below warning).

        Returns ``"fire"``, ``"escalate"``, ``"resolve"`` or ``""`` (nothing to send).
        """
        if severity is None:
            if self.firing_id is None:
                return ""
            self.below_streak += 1
            return "resolve" if self.below_streak >= resolve_windows else ""
        self.below_streak = 0
        if self.firing_id is not None:
            if severity == "critical" and self.severity == "warning":
                return "escalate"
            self.suppressed += 1
            return ""
        if self.fired_ts is not None and ts - self.fired_ts < cooldown_ms:
            self.suppressed += 1
            return ""
        return "fire"

    def start(self, aid: str, severity: str, ts: int, doc: dict[str, Any]) -> None:
        self.firing_id = aid
        self.severity = severity
        self.fired_ts = ts
        self.last_detection_ts = ts
        self.below_streak = 0
        self.firing_doc = doc

    def end(self) -> dict[str, Any] | None:
        doc = self.firing_doc
        self.firing_id = None
        self.firing_doc = None
        self.below_streak = 0
        return doc

    def to_json(self) -> dict[str, Any]:
        return {
            "firing_id": self.firing_id,
            "severity": self.severity,
            "fired_ts": self.fired_ts,
            "last_detection_ts": self.last_detection_ts,
            "below_streak": self.below_streak,
            "suppressed": self.suppressed,
            "firing_doc": self.firing_doc,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        return cls(**data)
