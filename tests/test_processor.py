"""``driftstream run`` as a subprocess on real brokers: drift caught, bad input dead-lettered."""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import Broker
from .harness import (
    alerts_of,
    committed_total,
    expected_alerts,
    produce,
    read_topic,
    scenario,
    start,
    topic_names,
    wait_for,
)
from .torn import FIRST, detail, torn_checkpoint

pytestmark = pytest.mark.broker


def _prefix() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


def test_known_drift_alerts_only_on_the_drifted_key(broker: Broker, tmp_path: Path) -> None:
    prefix = _prefix()
    items = scenario(32_000, {("speech", "asr"): (16_000, "f1", 2.0)})
    run = start(tmp_path, broker, prefix)
    try:
        run.wait_ready()
        half = len(items) // 2  # the second half finds its monitors: every event of it takes the column path
        produce(broker, f"{prefix}-predictions", items[:half])
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= half, 90, "half the events processed")
        produce(broker, f"{prefix}-predictions", items[half:])
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= len(items), 90, "all events processed")
        firing = lambda got: any(orjson.loads(m.value())["status"] == "firing" for m in got)  # noqa: E731
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", until=firing, timeout=30))
        alerts += alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=20, idle=3))[len(alerts) :]
        metrics = run.metrics()
        assert run.get("/healthz")[0] == 200
        rc, took = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert took < 10, f"SIGTERM → exit took {took:.1f} s"
    fired = {(a["model"], a["stage"], a["signal"]) for a in alerts if a["status"] == "firing"}
    assert ("speech", "asr", "feature:f1") in fired
    assert {f[:2] for f in fired} == {("speech", "asr")}, fired
    want = {(a["alert_id"], a["status"]) for a in expected_alerts(items) if a["status"] == "firing"}
    assert {(a["alert_id"], a["status"]) for a in alerts if a["status"] == "firing"} == want
    assert not any(k.startswith("driftstream_events_rejected_total") for k in metrics)
    assert sum(v for k, v in metrics.items() if k.startswith("driftstream_alerts_total")) >= len(want)
    assert metrics["driftstream_ready"] == 1.0
    assert metrics["driftstream_events_columnar_total"] >= half  # the batch decoder's path, same alerts
    assert committed_total(broker, f"{prefix}-group", f"{prefix}-predictions") == len(items)
    assert "stopped cleanly" in run.log()


BAD: list[tuple[bytes | None, str]] = [
    (b"{", "invalid_json"),
    (b"\xff\xfe\x00garbage", "invalid_json"),
    (os.urandom(64).replace(b"{", b"(").replace(b"[", b"("), "invalid_json"),
    (b"", "invalid_json"),
    (None, "empty"),
    (b"[1, 2]", "not_an_object"),
    (b'"text"', "not_an_object"),
    (b'{"stage": "s", "features": {}}', "missing_field:model"),
    (b'{"model": "m", "features": {}}', "missing_field:stage"),
    (b'{"model": "m", "stage": "s"}', "missing_field:features"),
    (b'{"model": 7, "stage": "s", "features": {}}', "bad_type:model"),
    (b'{"model": "", "stage": "s", "features": {}}', "bad_value:model"),
    (b'{"model": "m", "stage": "s", "features": [1, 2]}', "bad_type:features"),
    (b'{"model": "m", "stage": "s", "features": {"x": NaN}}', "invalid_json"),
    (b'{"model": "m", "stage": "s", "features": {"x": {"nested": 1}}}', "bad_type:features.x"),
    (b'{"model": "m", "stage": "s", "features": {}, "ts": "yesterday"}', "bad_value:ts"),
    (b'{"model": "m", "stage": "s", "features": {}, "latency_ms": -3}', "bad_value:latency_ms"),
    (b'{"model": "m", "stage": "s", "features": {}, "schema_version": 2}', "bad_value:schema_version"),
    (b'{"model": "m", "stage": "s", "features": {"x": "' + b"a" * 2_000_000 + b'"}}', "too_large"),
]


def test_malformed_input_is_dead_lettered_and_nothing_is_lost(broker: Broker, tmp_path: Path) -> None:
    prefix = _prefix()
    names = topic_names(prefix)
    admin = AdminClient(broker.conf())
    # an input topic that accepts 2 MB messages, as a misconfigured producer's cluster might
    new = NewTopic(names["input"][0], names["partitions"], 1, config={"max.message.bytes": "4194304"})
    admin.create_topics([new])[names["input"][0]].result(30)
    good = scenario(6_000, {})
    many_keys = [(f"m{i}/s".encode(), orjson.dumps({"model": f"m{i}", "stage": "s", "features": {"x": i}}))
                 for i in range(3_000)]  # fmt: skip
    items: list[tuple[bytes | None, bytes | None]] = []
    for i, (k, v) in enumerate(good):
        items.append((k, v))
        if i % 300 == 0:
            items.append((b"bad", BAD[(i // 300) % len(BAD)][0]))
    bad_sent = Counter(BAD[(i // 300) % len(BAD)][1] for i in range(0, len(good), 300))
    items += many_keys
    run = start(tmp_path, broker, prefix, {"limits": {"max_series": 500}})
    try:
        run.wait_ready()
        produce(broker, names["input"][0], items, **{"message.max.bytes": 4_000_000})
        total = len(items)
        wait_for(
            lambda: (
                run.metric("driftstream_events_processed_total") + run.metric("driftstream_events_rejected_total")
                >= total
            ),
            90,
            "every message accounted for",
        )
        dead = read_topic(broker, names["deadletter"], until=lambda got: len(got) >= sum(bad_sent.values()))
        metrics = run.metrics()
        assert run.get("/healthz")[0] == 200
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert metrics["driftstream_events_processed_total"] == len(good) + len(many_keys)
    assert metrics[f'driftstream_events_consumed_total{{topic="{names["input"][0]}"}}'] == total
    assert metrics["driftstream_events_untracked_total"] > 0  # keys over limits.max_series: counted, not monitored
    got = Counter(dict(m.headers())["driftstream.reason"].decode() for m in dead)
    assert got == bad_sent
    rejected = {k: v for k, v in metrics.items() if k.startswith("driftstream_events_rejected_total")}
    assert sum(rejected.values()) == sum(bad_sent.values())
    for m in dead:
        h = dict(m.headers())
        assert h["driftstream.source.topic"].decode() == names["input"][0]
        assert int(h["driftstream.source.offset"]) >= 0
        reason = h["driftstream.reason"].decode()
        assert m.value() in {v for v, r in BAD if r == reason}  # the original bytes, untouched


def test_crash_recovery_survivor_restores_state_and_alerts_match(broker: Broker, tmp_path: Path) -> None:
    """kill -9 one of two workers mid-stream: the other takes its partitions over with their
    monitors restored, and the alerts equal an uninterrupted run's (same ids)."""
    prefix = _prefix()
    # keys spread over all 4 partitions (murmur2), so each of the two workers owns a drifting key
    keys = [("speech", "vad"), ("speech", "asr"), ("speech", "diarize"), ("shop", "ranker"), ("shop", "profile")]
    drifts = {("speech", "asr"): (40_000, "f1", 2.0), ("speech", "diarize"): (90_000, "f0", -2.0)}
    items = scenario(120_000, drifts, keys)
    eos = broker.hides_aborted_transactions
    cfg = {"processor": {"guarantee": "exactly_once" if eos else "at_least_once", "transaction_timeout_s": 10}}
    a = start(tmp_path, broker, prefix, cfg, name="a")
    b = start(tmp_path, broker, prefix, cfg, name="b")
    try:
        a.wait_ready()
        b.wait_ready()
        wait_for(lambda: a.metric("driftstream_partitions_assigned") > 0 and b.metric("driftstream_partitions_assigned")
                 > 0, 60, "both workers to own partitions")  # fmt: skip
        victim = a if a.metric("driftstream_partitions_assigned") > 0 else b
        survivor = b if victim is a else a
        produce(broker, f"{prefix}-predictions", items[:60_000], rate=20_000)
        wait_for(lambda: victim.metric("driftstream_events_processed_total") > 10_000, 30, "the victim to work")
        victim.kill9()
        produce(broker, f"{prefix}-predictions", items[60_000:], rate=20_000)
        wait_for(lambda: committed_total(broker, f"{prefix}-group", f"{prefix}-predictions") == len(items), 180,
                 "the survivor to finish every partition")  # fmt: skip
        want = {(x["alert_id"], x["status"]) for x in expected_alerts(items) if x["status"] == "firing"}
        has_all = lambda got: want <= {(x["alert_id"], x["status"]) for x in alerts_of(got)}  # noqa: E731
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", until=has_all, timeout=60))
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=30, idle=4))
        restored = survivor.log()
        rc, _ = survivor.stop()
    finally:
        for r in (a, b):
            if r.proc.poll() is None:
                r.proc.kill()
    assert rc == 0, survivor.log()[-3000:]
    assert len(want) >= 4, want  # both drifts, several detectors each
    firing = [(x["alert_id"], x["status"]) for x in alerts if x["status"] == "firing"]
    assert set(firing) == want
    if eos:
        assert len(firing) == len(set(firing)), "exactly-once: no alert twice"
    assert any(int(m) > 0 for m in re.findall(r"restored (\d+) monitors", restored)), (
        "the survivor should have restored monitors from the state topic"
    )


def test_at_least_once_a_crash_between_two_records_of_a_checkpoint_counts_no_event_twice(
    broker: Broker, tmp_path: Path
) -> None:
    """The state topic as a crash between two records of one checkpoint leaves it (possible
    without transactions): one monitor's record covers events its partition's offsets record
    and the committed offsets do not. The next process skips exactly those, for that monitor."""
    prefix = _prefix()
    cfg = {"processor": {"guarantee": "at_least_once"}}
    t = torn_checkpoint(broker, prefix, lambda name: start(tmp_path, broker, prefix, cfg, name=name),
                        lambda run: (run.metric("driftstream_events_processed_total"), run.log()))  # fmt: skip
    assert t.got == t.want, f"missing {detail(t.alerts, t.want - t.got)}; unexpected {detail(t.alerts, t.got - t.want)}"
    processed, log = t.probe
    assert processed == FIRST - t.held, "every event of the second half once, less those the torn monitor held"
    assert "monitor speech/asr/primary is ahead of partition" in log
