"""``driftstream faust-worker`` on real brokers: the same alerts as ``driftstream run``, dead
letters, and state that survives a stop and a crash through the Faust table's changelog."""

from __future__ import annotations

import re
import threading
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import Broker
from .harness import (
    Run,
    committed_total,
    expected_alerts,
    produce,
    read_topic,
    scenario,
    start,
    topic_names,
    wait_for,
)
from .test_processor import BAD
from .torn import all_alerts, detail, torn_checkpoint

pytestmark = pytest.mark.broker


def _prefix() -> str:
    return f"f{uuid.uuid4().hex[:8]}"


def _faust(tmp_path: Path, broker: Broker, prefix: str, config: dict[str, Any] | None = None, name: str = "f") -> Run:
    return start(tmp_path, broker, prefix, config, name=name, command="faust-worker")


def _json(run: Run, path: str) -> Any:
    with urllib.request.urlopen(run.url + path, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return orjson.loads(r.read())


def _kill(*runs: Run) -> None:
    for r in runs:
        if r.proc.poll() is None:
            r.proc.kill()


def test_same_alert_ids_as_driftstream_run(broker: Broker, tmp_path: Path) -> None:
    """One input through both runtimes (each with its own topics and group): equal alerts."""
    items = scenario(40_000, {("speech", "asr"): (16_000, "f1", 2.0)})
    # a categorical shift on shop/profile: every event says "de" from 24k on
    items = [(k, v.replace(b'"lang":"en"', b'"lang":"de"').replace(b'"lang":"fr"', b'"lang":"de"'))
             if i >= 24_000 and k == b"shop/profile" else (k, v) for i, (k, v) in enumerate(items)]  # fmt: skip
    pa, pf = _prefix(), _prefix()
    proc = start(tmp_path, broker, pa, name="run")
    worker = _faust(tmp_path, broker, pf)
    try:
        proc.wait_ready()
        worker.wait_ready()
        produce(broker, f"{pa}-predictions", items)
        produce(broker, f"{pf}-predictions", items)
        for r in (proc, worker):
            wait_for(lambda r=r: r.metric("driftstream_events_processed_total") >= len(items), 120, "all processed")
        want = {(a["alert_id"], a["status"]) for a in expected_alerts(items)}
        by_run = all_alerts(broker, f"{pa}-alerts", want)
        by_faust = all_alerts(broker, f"{pf}-alerts", want)
        monitors = _json(worker, "/drift/monitors")
        health = _json(worker, "/drift/health")
        metrics = worker.metrics()
        summaries = read_topic(broker, f"{pf}-metrics", timeout=20, idle=2)
        assert worker.get("/healthz")[0] == 200
        assert worker.get("/readyz")[0] == 200
        rc, took = worker.stop()
        proc.stop()
    finally:
        _kill(proc, worker)
    assert rc == 0, worker.log()[-3000:]
    assert took < 20, f"SIGTERM → exit took {took:.1f} s"
    assert "stopped cleanly" in worker.log()
    faust_ids = {(a["alert_id"], a["status"]) for a in by_faust}
    assert faust_ids == {(a["alert_id"], a["status"]) for a in by_run}
    assert faust_ids == want
    assert {(a["model"], a["stage"]) for a in by_faust} == {("speech", "asr"), ("shop", "profile")}
    assert len(by_faust) == len(faust_ids), "a clean run publishes every alert once"
    # the web views: every key, last statistics, and the firing alerts by id
    assert monitors["count"] == 4
    firing_now = {f["alert_id"] for m in monitors["monitors"] for f in m["firing"]}
    assert firing_now and firing_now <= {a for a, s in want if s == "firing"}
    asr = next(m for m in monitors["monitors"] if (m["model"], m["stage"]) == ("speech", "asr"))
    assert asr["events"] == 10_000 and asr["last_summary"]["signals"]["feature:f1"]["mean"] > 1.5
    assert health["ready"] and health["alive"] and health["counts"]["processed"] == len(items)
    assert health["counts"]["gaps"] == 0, "every offset of the input was delivered"
    assert metrics["driftstream_events_processed_total"] == len(items)
    assert metrics["driftstream_ready"] == 1.0
    assert summaries and all(orjson.loads(m.value())["schema_version"] == 1 for m in summaries)
    assert committed_total(broker, f"{pf}-group", f"{pf}-predictions") == len(items)


def test_bad_input_is_dead_lettered_and_unkeyed_events_are_rekeyed(broker: Broker, tmp_path: Path) -> None:
    prefix = _prefix()
    names = topic_names(prefix)
    # an input topic that accepts the 2 MB event (Apache Kafka's default is 1 MB): aiokafka must
    # fetch it whole, or the partition stalls behind it
    new = NewTopic(names["input"][0], names["partitions"], 1, config={"max.message.bytes": "4194304"})
    admin = AdminClient(broker.conf())  # held: a collected client cancels its futures
    admin.create_topics([new])[names["input"][0]].result(30)
    good = scenario(6_000, {})
    items: list[tuple[bytes | None, bytes | None]] = []
    for i, (k, v) in enumerate(good):
        items.append((k, v))
        if i % 300 == 0:
            items.append((b"bad", BAD[(i // 300) % len(BAD)][0]))
    bad_sent = Counter(BAD[(i // 300) % len(BAD)][1] for i in range(0, len(good), 300))
    # no key: spread over partitions at random, so most must be forwarded to their home partition
    unkeyed = [(None, orjson.dumps({"model": "loose", "stage": "s", "features": {"x": i}})) for i in range(2_000)]
    items += unkeyed
    worker = _faust(tmp_path, broker, prefix)
    try:
        worker.wait_ready()
        # sticky.partitioning 0: each unkeyed event to a random partition, not all to one (the home one?)
        produce(
            broker, names["input"][0], items, **{"message.max.bytes": 4_000_000, "sticky.partitioning.linger.ms": 0}
        )
        total = len(good) + len(unkeyed)
        wait_for(lambda: worker.metric("driftstream_events_processed_total") >= total, 120, "every event processed")
        wait_for(lambda: worker.metric("driftstream_events_rejected_total") >= sum(bad_sent.values()), 30,
                 "every bad message counted")  # fmt: skip
        dead = read_topic(broker, names["deadletter"], until=lambda got: len(got) >= sum(bad_sent.values()))
        metrics = worker.metrics()
        monitors = _json(worker, "/drift/monitors")
        rc, _ = worker.stop()
    finally:
        _kill(worker)
    assert rc == 0, worker.log()[-3000:]
    assert metrics["driftstream_events_processed_total"] == total
    assert metrics["driftstream_events_repartitioned_total"] > 0
    assert metrics[f'driftstream_events_consumed_total{{topic="{names["input"][0]}"}}'] == len(items)
    assert Counter(dict(m.headers())["driftstream.reason"].decode() for m in dead) == bad_sent
    rejected = {k: v for k, v in metrics.items() if k.startswith("driftstream_events_rejected_total")}
    assert sum(rejected.values()) == sum(bad_sent.values())
    for m in dead:
        h = dict(m.headers())
        assert h["driftstream.source.topic"].decode() == names["input"][0]
        assert int(h["driftstream.source.offset"]) >= 0
        assert m.value() in {v for v, r in BAD if r == h["driftstream.reason"].decode()}  # the original bytes
    loose = next(m for m in monitors["monitors"] if m["model"] == "loose")
    assert loose["events"] == len(unkeyed)  # every forwarded event reached the one monitor of its key


def test_stop_and_crash_mid_stream_give_the_alerts_of_an_uninterrupted_run(broker: Broker, tmp_path: Path) -> None:
    """Worker 1 is stopped (SIGTERM), worker 2 killed (-9) mid-stream, worker 3 finishes: the
    monitors continue from the table each time, so the alerts equal one uninterrupted run."""
    prefix = _prefix()
    drifts = {("speech", "asr"): (50_000, "f1", 2.0), ("shop", "recommender"): (100_000, "f0", -2.0)}
    items = scenario(120_000, drifts)
    want = {(a["alert_id"], a["status"]) for a in expected_alerts(items) if a["status"] == "firing"}
    topic = f"{prefix}-predictions"
    runs: list[Run] = []
    producer = threading.Thread(target=produce, args=(broker, topic, items), kwargs={"rate": 10_000}, daemon=True)
    try:
        for i in range(3):
            run = _faust(tmp_path, broker, prefix, name=f"w{i}")
            runs.append(run)
            run.wait_ready()
            if i == 0:
                producer.start()
            if i < 2:
                wait_for(lambda r=run: r.metric("driftstream_events_processed_total") > 20_000, 90, "progress")
                assert committed_total(broker, f"{prefix}-group", topic) < len(items), "not mid-stream"
            if i == 0:
                rc, _ = run.stop(timeout=30)
                assert rc == 0, run.log()[-3000:]
            elif i == 1:
                run.kill9()
        producer.join(60)
        wait_for(lambda: committed_total(broker, f"{prefix}-group", topic) == len(items), 180, "all committed")
        alerts = all_alerts(broker, f"{prefix}-alerts", want)
        gaps = _json(runs[-1], "/drift/health")["counts"]["gaps"]
        rc, _ = runs[-1].stop()
    finally:
        _kill(*runs)
    assert rc == 0, runs[-1].log()[-3000:]
    assert len(want) >= 4, want
    assert gaps == 0, "the last worker saw every offset of its partitions"
    got = {(a["alert_id"], a["status"]) for a in alerts if a["status"] == "firing"}

    every = expected_alerts(items) + alerts
    assert got == want, f"missing {detail(every, want - got)}; unexpected {detail(every, got - want)}"
    for later in runs[1:]:
        restored = [int(n) for n in re.findall(r"restored (\d+) monitors", later.log())]
        assert sum(restored) >= 4, f"monitors should come back from the table:\n{later.log()[-3000:]}"


def test_a_crash_between_two_records_of_a_checkpoint_counts_no_event_twice(broker: Broker, tmp_path: Path) -> None:
    """The table as a crash between two records of one checkpoint leaves it: one monitor's
    snapshot already covers events that its partition's offsets record and the committed
    offsets do not. The next worker skips exactly those events for that monitor only."""
    prefix = _prefix()
    t = torn_checkpoint(broker, prefix, lambda name: _faust(tmp_path, broker, prefix, name=name),
                        lambda run: _json(run, "/drift/health"))  # fmt: skip
    assert t.got == t.want, f"missing {detail(t.alerts, t.want - t.got)}; unexpected {detail(t.alerts, t.got - t.want)}"
    assert t.probe["counts"]["covered"] == t.held, "exactly that monitor's covered events are skipped"
