"""Running ``driftstream run`` as a real subprocess against a test broker, and reading what it wrote."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent, decode

from .conftest import Broker

ROOT = Path(__file__).resolve().parent.parent


def topic_names(prefix: str) -> dict[str, Any]:
    return {
        "input": [f"{prefix}-predictions"],
        "alerts": f"{prefix}-alerts",
        "metrics": f"{prefix}-metrics",
        "deadletter": f"{prefix}-deadletter",
        "state": f"{prefix}-state",
        "repartition": f"{prefix}-repartition",
        "labels": f"{prefix}-labels",
        "partitions": 4,
    }


@dataclass
class Run:
    """One processor subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    _log_offset: int = field(default=0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"metrics on (http://[0-9.:]+)/metrics", self.log())
            if m:
                self.url = m.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"processor exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"processor never served HTTP:\n{self.log()[-3000:]}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_url()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:  # connection refused/reset: starting up, or exiting (checked next)
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"processor exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"processor never became ready:\n{self.log()[-3000:]}")

    def metrics(self) -> dict[str, float]:
        """Prometheus text → {'name{labels}': value} (HELP/TYPE lines dropped)."""
        out: dict[str, float] = {}
        for line in self.get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, prefix: str) -> float:
        return sum(v for k, v in self.metrics().items() if k == prefix or k.startswith(prefix + "{"))

    def stop(self, timeout: float = 15.0) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"processor ignored SIGTERM for {timeout} s:\n{self.log()[-3000:]}") from None
        return rc, time.monotonic() - t0

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start(
    tmp_path: Path, broker: Broker, prefix: str, config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None, name: str = "p", command: str = "run",
) -> Run:  # fmt: skip
    """``driftstream <command>`` (``run`` or ``faust-worker``) with test topics and fast checkpoints."""
    cfg: dict[str, Any] = {
        "kafka": {"bootstrap": broker.bootstrap},
        "topics": topic_names(prefix),
        "processor": {"group": f"{prefix}-group", "checkpoint_interval_s": 1.0},
        "http": {"port": 0},
        "logging": {"progress_interval_s": 2},
        "defaults": {"warmup_events": 2000},
    }
    for k, v in (config or {}).items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log_path = path.with_suffix(".log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", command, "-c", str(path)],
        cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return Run(proc, log_path)


# ----------------------------------------------------------------------------- traffic
KEYS = [("speech", "vad"), ("speech", "asr"), ("shop", "profile"), ("shop", "recommender")]


def scenario(
    n: int, drifts: dict[tuple[str, str], tuple[int, str, float]], keys: list[tuple[str, str]] = KEYS, seed: int = 3
) -> list[tuple[bytes, bytes]]:
    """(kafka key, value) pairs, round-robin over ``keys``; drift = (from event i, feature, shift)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    cat = rng.choice(["en", "de", "fr"], size=n, p=[0.6, 0.25, 0.15])
    out = []
    for i in range(n):
        model, stage = keys[i % len(keys)]
        f: dict[str, Any] = {"f0": float(x[i, 0]), "f1": float(x[i, 1]), "f2": float(x[i, 2]), "lang": str(cat[i])}
        d = drifts.get((model, stage))
        if d is not None and i >= d[0]:
            f[d[1]] += d[2]
        ev = {"model": model, "stage": stage, "features": f, "ts": 1_767_225_600_000 + i * 10}
        out.append((f"{model}/{stage}".encode(), orjson.dumps(ev)))
    return out


def produce(broker: Broker, topic: str, items: Iterable[tuple[bytes | None, bytes | None]],
            rate: float | None = None, **conf: Any) -> int:  # fmt: skip
    """Java-compatible partitioning, like a JVM model service; ``rate`` events/s if given."""
    p = Producer(broker.conf(**{"linger.ms": 5, "partitioner": "murmur2_random", **conf}))
    t0 = time.monotonic()
    n = 0
    for key, value in items:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
            if rate:
                ahead = n / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    assert p.flush(60) == 0
    return n


def read_topic(broker: Broker, topic: str, until: Callable[[list[Any]], bool] | None = None,
               timeout: float = 60.0, idle: float = 3.0) -> list[Any]:  # fmt: skip
    """Every committed record of ``topic`` from the beginning, until ``until(records)`` or idle."""
    admin = AdminClient(broker.conf())
    parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
    c = Consumer(broker.consumer_conf(**{"group.id": f"reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                                         "isolation.level": "read_committed"}))  # fmt: skip
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if until is not None and until(got):
                break
            if until is None and time.monotonic() - last > idle:
                break
            for m in c.consume(1000, 0.3):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise AssertionError(m.error())
                    continue
                got.append(m)
                last = time.monotonic()
    finally:
        c.close()
    return got


def alerts_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in messages]


def expected_alerts(items: list[tuple[bytes, bytes]], config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What one uninterrupted engine run gives for the same events."""
    bank = MonitorBank(EngineConfig.from_mapping(config or {"defaults": {"warmup_events": 2000}}))
    evs = [e for e in (decode(v) for _, v in items) if isinstance(e, PredictionEvent)]
    out: list[dict[str, Any]] = []
    for i in range(0, len(evs), 5000):
        out += bank.process(evs[i : i + 5000]).alerts
    return out


def committed_total(broker: Broker, group: str, topic: str) -> int:
    """Sum of the group's committed offsets over ``topic`` (= messages consumed, offsets from 0).

    Not compared with high watermarks: Tansu 0.6 answers ListOffsets(latest) with values
    below offsets it has already served.
    """
    admin = AdminClient(broker.conf())
    parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
    c = Consumer(broker.consumer_conf(**{"group.id": group, "enable.auto.commit": False}))
    try:
        committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        c.close()


_TRANSIENT = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
}


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll ``cond`` until true; a retriable Kafka error (e.g. NOT_COORDINATOR while a restarted
    broker re-elects the group coordinator) counts as "not yet", any other error fails at once."""
    deadline = time.monotonic() + timeout
    last: KafkaException | None = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except KafkaException as exc:
            if not (exc.args[0].retriable() or exc.args[0].code() in _TRANSIENT):
                raise
            last = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last})" if last else "")
    )
