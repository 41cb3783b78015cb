"""A checkpoint torn by a crash, for both runtimes: without transactions a crash can land
between two records of one checkpoint, leaving one monitor's snapshot ahead of its
partition's offsets record and of the committed offsets. The next process must skip exactly
the events that monitor holds already, and no others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from detectors import EngineConfig, MonitorBank
from schemas import decode
from streams.state import monitor_record_key, monitor_value, split_monitor

from .conftest import Broker
from .harness import (
    Run,
    alerts_of,
    committed_total,
    expected_alerts,
    produce,
    read_topic,
    scenario,
    topic_names,
    wait_for,
)

KEY = ("speech", "asr", "primary")
FIRST = 20_000  # events before the tear


@dataclass
class Torn:
    want: set[tuple[str, str]]  # alerts of one uninterrupted run
    got: set[tuple[str, str]]
    alerts: list[dict[str, Any]]  # every alert on the topic and the expected ones, for messages
    held: int  # events the torn monitor holds beyond its partition's offsets record
    probe: Any  # what ``probe`` read from the second process before it stopped


def all_alerts(broker: Broker, topic: str, want: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The alerts on ``topic`` once every wanted one is there (and a quiet spell after)."""
    has_all = lambda got: want <= {(a["alert_id"], a["status"]) for a in alerts_of(got)}  # noqa: E731
    read_topic(broker, topic, until=has_all, timeout=60)
    return alerts_of(read_topic(broker, topic, timeout=30, idle=3))


def detail(alerts: list[dict[str, Any]], ids: set[tuple[str, str]]) -> list[tuple[Any, ...]]:
    """Readable (model, signal, detector, status, position) of the alerts with those ids."""
    return sorted((a["model"], a["signal"], a["detector"], a["status"], a["window"]["last_position"],
                   a["window"]["first_position"], a["statistic"], a.get("emitted_at"))
                  for a in alerts if (a["alert_id"], a["status"]) in ids)  # fmt: skip


def tear(broker: Broker, names: dict[str, Any], n: int = 1_000) -> int:
    """Move KEY's state record ``n`` of its events past its partition's offsets record."""
    topic = names["input"][0]
    state = {m.key(): m for m in read_topic(broker, names["state"], timeout=30, idle=2)}
    rec = state[monitor_record_key(KEY)]
    covered, snapshot = split_monitor(rec.value())
    slot = rec.partition()
    start_at = covered[(topic, slot)]
    later = [m for m in read_topic(broker, topic, timeout=30, idle=2)
             if m.partition() == slot and m.offset() >= start_at and m.key() == b"speech/asr"]  # fmt: skip
    ahead = sorted(later, key=lambda m: m.offset())[:n]
    bank = MonitorBank(EngineConfig.from_mapping({"defaults": {"warmup_events": 2000}}))
    bank.restore(snapshot)
    # before the drift: alerts published before the crash are not part of this picture
    assert not bank.process([decode(m.value()) for m in ahead]).alerts
    moved = {**covered, (topic, slot): ahead[-1].offset() + 1}
    producer = Producer(broker.conf())
    producer.produce(names["state"], monitor_value(moved, bank.snapshot(KEY)), monitor_record_key(KEY), partition=slot)
    assert producer.flush(30) == 0
    return len(ahead)


def torn_checkpoint(broker: Broker, prefix: str, launch: Callable[[str], Run], probe: Callable[[Run], Any]) -> Torn:
    """Process 1 stops after FIRST events; the state is torn; process 2 finishes the input."""
    names = topic_names(prefix)
    topic = names["input"][0]
    group = f"{prefix}-group"
    items = scenario(2 * FIRST, {("speech", "asr"): (28_000, "f1", 2.0), ("shop", "profile"): (30_000, "f0", -2.0)})
    want = {(a["alert_id"], a["status"]) for a in expected_alerts(items)}
    runs = [launch("w0")]
    try:
        runs[0].wait_ready()
        produce(broker, topic, items[:FIRST])
        wait_for(lambda: committed_total(broker, group, topic) == FIRST, 90, "first half committed")
        rc, _ = runs[0].stop()
        assert rc == 0, runs[0].log()[-3000:]
        produce(broker, topic, items[FIRST:])
        held = tear(broker, names)
        runs.append(launch("w1"))
        runs[1].wait_ready()
        wait_for(lambda: committed_total(broker, group, topic) == len(items), 120, "all committed")
        alerts = all_alerts(broker, names["alerts"], want)
        seen = probe(runs[1])
        rc, _ = runs[1].stop()
        assert rc == 0, runs[1].log()[-3000:]
    finally:
        for r in runs:
            if r.proc.poll() is None:
                r.proc.kill()
    got = {(a["alert_id"], a["status"]) for a in alerts}
    return Torn(want, got, expected_alerts(items) + alerts, held, seen)
