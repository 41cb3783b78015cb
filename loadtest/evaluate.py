"""Score alerts against the ground truth of a generated scenario.

An alert is *attributed* when a ground-truth entry of its key names its signal and its window
ends inside that entry's span (plus ``tolerance`` events after the span: returning to the old
concept is a change too). Entries of signals from joined labels (``clock: ts``) are spans of event
time, up to the last label of the span, since positions in the stream of joined pairs depend on
which labels met their predictions. Every other firing alert is a false alert. A drift is *detected* by
the first attributed alert of its key, or by one still firing when it started (a recurring
concept); the delay is counted in the key's events and in event-time seconds.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import defaultdict
from typing import Any

import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

__all__ = ["read_topic_docs", "score", "throughput"]


def read_topic_docs(bootstrap: str, topic: str, idle_s: float = 5.0, max_s: float = 120.0,
                    client: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every JSON document of ``topic`` from the start: all partitions assigned (no group to join),
    until each has reached its end and nothing new came for ``idle_s``."""
    conf = {"bootstrap.servers": bootstrap, "group.id": f"driftstream-evaluate-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": "read_committed",
            **(client or {})}  # fmt: skip
    c = Consumer(conf)
    out: list[dict[str, Any]] = []
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return out
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        at_end: set[int] = set()
        deadline = time.monotonic() + max_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            if len(at_end) == len(meta.partitions) and time.monotonic() - last >= min(idle_s, 1.0):
                break
            if time.monotonic() - last >= idle_s:
                break
            for m in c.consume(1000, 0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())  # type: ignore[arg-type]
                        continue
                    raise RuntimeError(f"reading {topic}: {err}")
                at_end.discard(m.partition())
                out.append(orjson.loads(m.value() or b"null"))
                last = time.monotonic()
    finally:
        c.close()
    return out


def _key(doc: dict[str, Any]) -> str:
    return f"{doc['model']}/{doc['stage']}"


def score(truth: dict[str, Any], alerts: list[dict[str, Any]], *, ts_shift_ms: int = 0,
          tolerance: int = 5_000) -> dict[str, Any]:  # fmt: skip
    """Per drift: detected or missed and delays; false alerts; latency. JSON-ready.

    Alerts of keys outside the scenario (other traffic on a shared topic) are left out."""
    ours = {k["key"] for k in truth["keys"]}
    alerts = [a for a in alerts if _key(a) in ours]
    entries = truth["drifts"]
    by_key_signal: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in entries:  # positions count in the variant's own stream (a canary's events only)
        by_key_signal[(e["key"], e.get("variant", "primary"), e["signal"])].append(e)
    firing = sorted((a for a in alerts if a["status"] == "firing"), key=lambda a: a["detected_at"])
    sc = truth["scenario"]
    tolerance_ms = tolerance * len(sc["keys"]) * 1000 / sc["rate"]

    def inside(e: dict[str, Any], a: dict[str, Any]) -> bool:
        if e.get("clock") == "ts":
            at = a["window"]["last_ts"] - ts_shift_ms
            return bool(e["start_ts"] <= at < e["end_ts"] + tolerance_ms)
        return bool(e["start_position"] <= a["window"]["last_position"] < e["end_position"] + tolerance)

    resolved = {a["alert_id"]: a["window"]["last_position"] for a in alerts if a["status"] == "resolved"}
    attributed: list[tuple[dict[str, Any], dict[str, Any]]] = []
    false: list[dict[str, Any]] = []
    for a in firing:
        hits = [e for e in by_key_signal.get((_key(a), a.get("variant", "primary"), a["signal"]), []) if inside(e, a)]
        if hits:
            attributed += [(a, e) for e in hits]
        else:
            false.append(a)
    drifts = []
    for e in (e for e in entries if e["role"] == "injected"):
        # alerts on any signal this drift moved on its own key (e.g. PSI of a feature whose missing rate spiked)
        mine = [(a, x) for a, x in attributed if x["source"] == e["source"] and x["key"] == e["key"]
                and x["start_position"] == e["start_position"]]  # fmt: skip
        first = min(mine, key=lambda ax: ax[0]["detected_at"])[0] if mine else None
        still = None
        if first is None:  # a recurring concept: the alert of an earlier phase may still be firing
            for a, x in attributed:
                if (
                    x["source"] == e["source"]
                    and x["key"] == e["key"]
                    and a["window"]["last_position"] < e["start_position"] <= resolved.get(a["alert_id"], 1 << 62)
                ):
                    still = a
                    break
        row = {k: e[k] for k in ("key", "signal", "kind", "start_position", "end_position", "magnitude")}
        row["start_ts"] = e["start_ts"] + ts_shift_ms
        if first is not None:
            by_ts = e.get("clock") == "ts"  # no position of the key's stream to count from
            row |= {"detected": True, "by": f"{first['signal']} {first['detector']}",
                    "delay_events": None if by_ts else first["window"]["last_position"] - e["start_position"],
                    "delay_s": (first["detected_at"] - row["start_ts"]) / 1000.0}  # fmt: skip
        elif still is not None:
            row |= {"detected": True, "by": f"{still['signal']} {still['detector']} (still firing)",
                    "delay_events": 0, "delay_s": 0.0}  # fmt: skip
        else:
            row |= {"detected": False, "by": None, "delay_events": None, "delay_s": None}
        drifts.append(row)
    series_events = sum(len(k["signals"]) * k["events"] for k in truth["keys"])
    lat = np.array([a["emitted_at"] - a["window"]["last_ts"] for a in firing], dtype=np.float64)
    detected = [d for d in drifts if d["detected"]]
    delays = [d["delay_events"] for d in detected if d["delay_events"] is not None]
    false_by_signal: dict[str, int] = defaultdict(int)
    for a in false:
        false_by_signal[f"{_key(a)} {a['signal']} {a['detector']}"] += 1
    return {
        "events": truth["events"],
        "drifts": drifts,
        "injected": len(drifts),
        "detected": len(detected),
        "missed": len(drifts) - len(detected),
        "detection_delay_events_median": float(np.median(delays)) if delays else None,
        "firing_alerts": len(firing),
        "attributed_alerts": len({id(a) for a, _ in attributed}),
        "distinct_alert_ids": len({a["alert_id"] for a in firing}),
        "false_alerts": len(false),
        "false_alerts_by_signal": dict(false_by_signal),
        "false_alerts_per_signal_per_million_events": len(false) / series_events * 1e6 if series_events else 0.0,
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "keys_alerting": sorted({_key(a) for a in firing}),
    }


def throughput(samples: list[dict[str, float]]) -> dict[str, Any]:
    """Processor events/s between metric samples, and the consumer lag, over the run."""
    if len(samples) < 2:
        return {"series": [], "mean_events_per_s": None, "peak_events_per_s": None, "max_lag": None}
    series = []
    for a, b in itertools.pairwise(samples):
        dt = b["t"] - a["t"]
        if dt > 0:
            series.append({"t": b["t"], "events_per_s": (b["consumed"] - a["consumed"]) / dt, "lag": b["lag"],
                           "sent": b["sent"]})  # fmt: skip
    busy = [s["events_per_s"] for s in series if s["events_per_s"] > 0]
    span = samples[-1]["t"] - samples[0]["t"]
    return {
        "series": series,
        "mean_events_per_s": (samples[-1]["consumed"] - samples[0]["consumed"]) / span if span > 0 else None,
        "peak_events_per_s": max(busy) if busy else 0.0,
        "max_lag": max(s["lag"] for s in samples),
        "final_lag": samples[-1]["lag"],
    }
