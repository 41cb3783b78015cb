"""``driftstream smoke``: drift caught end to end over a real Kafka broker, in about a minute.

Starts the embedded broker (unless ``--bootstrap`` is given), publishes a small two-pipeline
scenario (speech: vad → asr; shop: profile → recommender) with one sudden shift injected in
``speech/asr`` feature ``snr_db``, consumes it back through a consumer group, decodes it with
the codec and runs the monitor bank. Exits 0 only if the shift is caught on that key and
signal and no other key alerts. The full processor (``driftstream run``) is a separate job.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent, decode

from .broker import FAST_GROUP_SETTINGS, EmbeddedBroker, wait_for_broker

__all__ = ["run_smoke"]

KEYS = [("speech", "vad"), ("speech", "asr"), ("shop", "profile"), ("shop", "recommender")]
DRIFT_KEY = ("speech", "asr")
DRIFT_FEATURE = "snr_db"


def _events(n: int, drift_at: int, seed: int = 7) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    t0 = 1_767_225_600_000
    for i in range(n):
        model, stage = KEYS[i % len(KEYS)]
        features: dict[str, float | str] = {
            "snr_db": float(rng.normal(20.0, 4.0)),
            "duration_s": float(rng.gamma(2.0, 1.5)),
            "speaker_rate": float(rng.normal(3.0, 0.5)),
            "lang": str(rng.choice(["en", "de", "fr"], p=[0.6, 0.25, 0.15])),
        }
        if (model, stage) == DRIFT_KEY and i >= drift_at:
            features[DRIFT_FEATURE] = float(features[DRIFT_FEATURE]) - 8.0  # noisy new microphone: -2 sigma
        ev = {"model": model, "stage": stage, "features": features, "ts": t0 + i * 5,
              "prediction": float(rng.random()), "latency_ms": float(rng.gamma(4.0, 5.0))}  # fmt: skip
        out.append(orjson.dumps(ev))
    return out


def _row(a: dict[str, Any]) -> str:
    return (
        f"{a['status']:8s} {a['severity']:8s} {a['model'] + '/' + a['stage']:18s} {a['signal']:18s} "
        f"{a['detector']:13s} stat={a['statistic']:<10.4g} at position {a['window']['last_position']}"
    )


def run_smoke(bootstrap: str | None = None, events: int = 48_000, drift_at: int = 30_000) -> int:
    broker = None
    if bootstrap is None:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
        print(f"embedded broker (Tansu) up at {bootstrap} in {broker.startup_seconds:.2f} s")
    else:
        wait_for_broker(bootstrap, timeout=15)
    try:
        topic = f"predictions-smoke-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for raw in _events(events, drift_at):
            ev = orjson.loads(raw)
            producer.produce(topic, key=f"{ev['model']}/{ev['stage']}".encode(), value=raw)
            producer.poll(0)
        producer.flush(30)
        print(f"published {events} events to {topic}; drift injected in {'/'.join(DRIFT_KEY)} "
              f"feature {DRIFT_FEATURE} from event {drift_at}")  # fmt: skip
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"smoke-{topic}",
                             "auto.offset.reset": "earliest",
                             **FAST_GROUP_SETTINGS})  # fmt: skip
        consumer.subscribe([topic])
        bank = MonitorBank(EngineConfig.from_mapping({"defaults": {"warmup_events": 2000}}))
        alerts: list[dict[str, Any]] = []
        seen = rejected = 0
        deadline = time.monotonic() + 120
        while seen + rejected < events and time.monotonic() < deadline:
            batch: list[PredictionEvent] = []
            for m in consumer.consume(5000, 0.5):
                err = m.error()
                if err is not None:
                    print(f"consumer error: {err}", file=sys.stderr)
                    continue
                ev = decode(m.value() or b"", fallback_ts_ms=m.timestamp()[1])
                if isinstance(ev, PredictionEvent):
                    batch.append(ev)
                else:
                    rejected += 1
            seen += len(batch)
            for a in bank.process(batch).alerts:
                alerts.append(a)
                print(_row(a))
        consumer.close()
    finally:
        if broker is not None:
            broker.stop()
    fired = {(a["model"], a["stage"], a["signal"]) for a in alerts if a["status"] == "firing"}
    caught = (*DRIFT_KEY, f"feature:{DRIFT_FEATURE}") in fired
    others = {f for f in fired if f[:2] != DRIFT_KEY}
    print(f"\nconsumed {seen} events ({rejected} rejected), {len(alerts)} alert events")
    print(f"injected drift caught: {'yes' if caught else 'NO'}; alerts on untouched keys: {len(others)}")
    return 0 if caught and not others and seen == events else 1


if __name__ == "__main__":
    sys.exit(run_smoke())
