"""End-to-end processor benchmark on a real broker, beside a raw consume+parse baseline.

One worker, 60 (model, stage) keys × 10 numeric features, ADWIN + Page-Hinkley + PSI on each.

1. Throughput: N events are produced first; then (a) a bare confluent-kafka consumer with
   ``orjson.loads`` per message reads them all (the ceiling), and (b) the processor reads the
   same topic as a fresh group, with dead-letter checks, monitors, checkpoints and alerts.
2. Latency: a fresh processor is fed at half the measured rate, with drift injected into
   every key one after another; event-to-alert latency = time an alert is read from the
   alerts topic minus the event time (= produce wall clock) of the event that completed it.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.broker import FAST_GROUP_SETTINGS
from streams.processor import Processor
from streams.settings import RunConfig

__all__ = ["bench_processor"]

KEYS, FEATURES, PARTITIONS = 60, 10, 6


def _payloads(n: int, seed: int, ts0: int | None = None, shift_from: int | None = None) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, FEATURES)).round(6).tolist()
    out = []
    for i in range(n):
        model = f"model{i % KEYS}"
        f = {f"f{j}": rows[i][j] for j in range(FEATURES)}
        if shift_from is not None and i >= shift_from:
            f["f0"] += 3.0
        ev = {"model": model, "stage": "serve", "features": f, "ts": (ts0 or 1_767_225_600_000) + i}
        out.append((f"{model}/serve".encode(), orjson.dumps(ev)))
    return out


def _produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]], client: dict[str, Any]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "partitioner": "murmur2_random", **client})  # fmt: skip
    for k, v in items:
        while True:
            try:
                p.produce(topic, v, k)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)


def _raw_rate(bootstrap: str, topic: str, n: int, client: dict[str, Any]) -> float:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.queue.backoff.ms": 10,
                  **FAST_GROUP_SETTINGS, **client})  # fmt: skip
    c.subscribe([topic])
    seen, t0 = 0, 0.0
    loads = orjson.loads
    while seen < n:
        msgs = c.consume(10_000, 1.0)
        if msgs and not t0:
            t0 = time.perf_counter()
        for m in msgs:
            if m.error() is None:
                loads(m.value())  # type: ignore[arg-type]
                seen += 1
    rate = n / (time.perf_counter() - t0)
    c.close()
    return rate


def _config(bootstrap: str, prefix: str, client: dict[str, Any], guarantee: str, run: str = "") -> RunConfig:
    """Topics of one processor run; ``run`` separates state (a state topic belongs to one group)."""
    own = f"{prefix}{run}"
    return RunConfig.from_mapping({
        "kafka": {"bootstrap": bootstrap, "client": client},
        "topics": {"input": [f"{prefix}-in"], "alerts": f"{own}-alerts", "metrics": f"{own}-metrics",
                   "deadletter": f"{own}-dlq", "state": f"{own}-state", "repartition": f"{own}-rep",
                   "partitions": PARTITIONS},
        "processor": {"group": f"{own}-g", "guarantee": guarantee},
        "http": {"enabled": False},
        "logging": {"progress_interval_s": 3600},
        # the engine benchmark's "spec" monitor: ADWIN + Page-Hinkley + PSI per feature, no missing indicators
        "defaults": {"warmup_events": 1000, "signals": {"missing": False}},
    })  # fmt: skip


def _run_until(proc: Processor, n: int, timeout: float) -> float:
    """Run the processor in a thread; seconds from its first processed event to the n-th."""
    proc.start()
    th = threading.Thread(target=proc.run, daemon=True)
    th.start()
    t0 = 0.0
    deadline = time.monotonic() + timeout
    while proc._counts["processed"] < n and time.monotonic() < deadline:
        if not t0 and proc._counts["consumed"] > 0:
            t0 = time.perf_counter()
        time.sleep(0.005)
    took = time.perf_counter() - t0
    proc.stopping = True
    th.join(30)
    if proc._counts["processed"] < n:
        raise RuntimeError(f"processor handled {proc._counts['processed']} of {n} events in {timeout:.0f} s")
    return took


def bench_processor(bootstrap: str, n: int, client: dict[str, Any] | None = None, guarantee: str = "auto",
                    latency_s: float = 20.0) -> dict[str, float]:  # fmt: skip
    client = client or {}
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, **client})
    admin.create_topics([NewTopic(f"{prefix}-in", PARTITIONS, 1)])[f"{prefix}-in"].result(30)
    _produce(bootstrap, f"{prefix}-in", _payloads(n, 1), client)
    figures: dict[str, float] = {}
    raw = max(_raw_rate(bootstrap, f"{prefix}-in", n, client) for _ in range(2))
    figures["raw_consume_parse_events_per_s"] = raw
    best = 0.0
    for i in range(2):
        proc = Processor(_config(bootstrap, prefix, client, guarantee, run=f"-{i}"))
        best = max(best, n / _run_until(proc, n, 600))
        figures["processor_guarantee_exactly_once"] = float(proc.guarantee == "exactly_once")
    figures["processor_events_per_s"] = best
    figures["processor_vs_raw_percent"] = 100 * best / raw
    figures |= _latency(bootstrap, client, guarantee, rate=best / 2, seconds=latency_s)
    return figures


def _paced_load(bootstrap: str, topic: str, client: dict[str, Any], rate: float, total: int) -> None:
    """Events stamped with the wall clock at ``rate``/s; drift starts key by key.

    Bodies are made before the clock starts and only the timestamp is appended while
    sending, so the load generator takes as little of the 2 cores as it can.
    """
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "partitioner": "murmur2_random", **client})
    rows = np.random.default_rng(3).normal(size=(total, FEATURES)).round(6).tolist()
    shift_at = {k: int(total * (0.2 + 0.6 * k / KEYS)) for k in range(KEYS)}
    bodies = []
    for i, row in enumerate(rows):
        k = i % KEYS
        f = {f"f{j}": x for j, x in enumerate(row)}
        if i >= shift_at[k]:
            f["f0"] += 3.0
        body = orjson.dumps({"model": f"model{k}", "stage": "serve", "features": f})
        bodies.append((body[:-1] + b',"ts":', f"model{k}/serve".encode()))
    t0 = time.perf_counter()
    for i, (head, key) in enumerate(bodies):
        p.produce(topic, head + str(int(time.time() * 1000)).encode() + b"}", key)
        if i % 500 == 0:
            p.poll(0)
            ahead = i / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
    p.flush(30)


def _latency(bootstrap: str, client: dict[str, Any], guarantee: str, rate: float, seconds: float) -> dict[str, float]:
    prefix = f"lat-{uuid.uuid4().hex[:6]}"
    cfg = _config(bootstrap, prefix, client, guarantee)
    proc = Processor(cfg)
    proc.start()
    th = threading.Thread(target=proc.run, daemon=True)
    th.start()
    got: list[float] = []
    done = threading.Event()

    def read_alerts() -> None:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-reader", "auto.offset.reset": "earliest",
                      **FAST_GROUP_SETTINGS, **client})  # fmt: skip
        c.subscribe([cfg.topics.alerts])
        while not done.is_set():
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    now = time.time() * 1000
                    doc = orjson.loads(m.value())  # type: ignore[arg-type]
                    if doc["status"] == "firing":
                        got.append(now - doc["window"]["last_ts"])
        c.close()

    reader = threading.Thread(target=read_alerts, daemon=True)
    reader.start()
    warm = 1000 * KEYS
    _produce(bootstrap, cfg.topics.input[0], _payloads(warm, 2), client)  # reference windows, as fast as possible
    while proc._counts["processed"] < warm:
        time.sleep(0.05)
    total = int(rate * seconds)
    # the load comes from another process, so it does not share the processor's GIL
    load = mp.get_context("spawn").Process(target=_paced_load, args=(bootstrap, cfg.topics.input[0], client, rate,
                                                                       total))  # fmt: skip
    load.start()
    load.join(seconds * 3 + 60)
    time.sleep(cfg.processor.checkpoint_interval_s + 3)
    done.set()
    proc.stopping = True
    th.join(30)
    reader.join(10)
    lat = np.array(got) if got else np.array([np.nan])
    return {
        "latency_rate_events_per_s": rate,
        "latency_alerts": float(len(got)),
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p99_ms": float(np.percentile(lat, 99)),
    }
