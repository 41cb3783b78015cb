"""Alert and window-summary documents, shaped as ``schemas/alert.schema.json`` and
``schemas/metrics.schema.json`` say."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .monitor import Monitor, Signal

__all__ = ["alert_doc", "firing_doc", "resolved_doc", "summary_doc"]


def _num(x: float) -> float:
    """JSON has no NaN or infinity: clamp to something a consumer can read."""
    if math.isnan(x):
        return 0.0
    if math.isinf(x):
        return 1e308 if x > 0 else -1e308
    return float(x)


def alert_doc(mon: Monitor, sig: Signal, **doc: Any) -> dict[str, Any]:
    """A firing alert on one of the monitor's own signals (see :func:`firing_doc`)."""
    prof = sig.profile
    return firing_doc(mon, sig.name, sig.reference_source, prof.count if prof else 0, **doc)


def firing_doc(
    mon: Monitor,
    signal: str,
    reference_source: str,
    reference_size: int,
    *,
    aid: str,
    detector: str,
    severity: str,
    statistic: float,
    threshold: float,
    window: tuple[int, int, int, int, int],
    details: dict[str, Any],
    emitted_at: int,
) -> dict[str, Any]:
    """A firing alert of ``mon``. ``window`` is (events, first_ts, last_ts, first_pos, last_pos)."""
    model, stage, variant = mon.key
    events, first_ts, last_ts, first_pos, last_pos = window
    return {
        "schema_version": 1,
        "alert_id": aid,
        "status": "firing",
        "severity": severity,
        "model": model,
        "version": mon.version,
        "stage": stage,
        "variant": variant,
        "signal": signal,
        "detector": detector,
        "statistic": _num(statistic),
        "threshold": _num(threshold),
        "window": {
            "events": int(events),
            "first_ts": int(first_ts),
            "last_ts": int(last_ts),
            "first_position": int(first_pos),
            "last_position": int(last_pos),
        },
        "reference": {"source": reference_source, "size": int(reference_size)},
        "detected_at": int(last_ts),
        "emitted_at": emitted_at,
        "details": details,
    }


def resolved_doc(firing: dict[str, Any], at_ts: int, reason: str, emitted_at: int) -> dict[str, Any]:
    """The event that ends a firing alert: same id and attribution, status resolved."""
    doc = dict(firing)
    doc["status"] = "resolved"
    doc["detected_at"] = int(at_ts)
    doc["emitted_at"] = emitted_at
    doc["details"] = {**firing.get("details", {}), "resolved_because": reason}
    return doc


def summary_doc(mon: Monitor, last_ts: int) -> dict[str, Any]:
    """What the monitor saw since its previous summary."""
    model, stage, variant = mon.key
    signals: dict[str, Any] = {}
    warming = False
    for s in mon.signals.values():
        if s.role == "missing":
            continue
        total = s.s_count + s.s_missing
        warming |= not s.active
        signals[s.name] = {
            "count": s.s_count,
            "missing_rate": s.s_missing / total if total else 0.0,
            "mean": _num(s.s_sum / s.s_count) if s.s_count and s.kind == "numeric" else None,
            "psi": s.s_psi,
        }
    lat = None
    if mon.latencies:
        arr = np.asarray(mon.latencies)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99]).tolist()
        lat = {"p50": p50, "p90": p90, "p99": p99, "mean": float(arr.mean())}
    return {
        "schema_version": 1,
        "model": model,
        "stage": stage,
        "variant": variant,
        "window": {
            "events": mon.position - mon.summary_start_pos,
            "first_ts": int(mon.summary_start_ts if mon.summary_start_ts is not None else last_ts),
            "last_ts": int(last_ts),
            "first_position": mon.summary_start_pos,
            "last_position": max(mon.position - 1, 0),
        },
        "warming_up": warming,
        "latency_ms": lat,
        "signals": signals,
    }
