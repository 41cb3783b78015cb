"""``driftstream run`` with a ``variants`` rule on real brokers: a diverging canary is caught
without any label, and a canary serving the same model as its baseline raises nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent

from .conftest import Broker
from .harness import alerts_of, produce, read_topic, start, wait_for
from .test_variants import CFG, traffic

pytestmark = pytest.mark.broker


def _doc(e: PredictionEvent, model: str) -> tuple[bytes, bytes]:
    doc = {"model": model, "stage": e.stage, "variant": e.variant, "ts": e.ts, "features": e.features,
           "prediction": e.prediction, "latency_ms": e.latency_ms}  # fmt: skip
    return f"{model}/{e.stage}".encode(), orjson.dumps(doc)


def test_a_diverging_canary_is_caught_and_a_healthy_one_is_not(broker: Broker, tmp_path: Path) -> None:
    prefix = f"v{uuid.uuid4().hex[:8]}"
    diverging = traffic(120_000, shift_from=60_000, seed=1)
    healthy = traffic(120_000, seed=2)
    items = [x for pair in zip(diverging, healthy, strict=True)
             for x in (_doc(pair[0], "shop"), _doc(pair[1], "speech"))]  # fmt: skip
    bank = MonitorBank(EngineConfig.from_mapping(CFG))
    want = set()
    for model, evs in (("shop", diverging), ("speech", healthy)):
        renamed = [PredictionEvent(model, e.stage, e.features, e.ts, variant=e.variant, prediction=e.prediction,
                                   latency_ms=e.latency_ms) for e in evs]  # fmt: skip
        want |= {
            (a["alert_id"], a["status"]) for a in bank.process(renamed).alerts if a["signal"].startswith("variant:")
        }
    assert want and all(aid for aid, _ in want)
    run = start(tmp_path, broker, prefix, {"variants": CFG["variants"]})
    try:
        run.wait_ready()
        produce(broker, f"{prefix}-predictions", items)
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= len(items), 120, "all events processed")
        has_all = lambda got: want <= {(a["alert_id"], a["status"]) for a in alerts_of(got)}  # noqa: E731
        read_topic(broker, f"{prefix}-alerts", until=has_all, timeout=60)
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=30, idle=3))
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    variant_alerts = [a for a in alerts if a["signal"].startswith("variant:")]
    assert {(a["alert_id"], a["status"]) for a in variant_alerts} == want
    assert {(a["model"], a["variant"], a["signal"]) for a in variant_alerts} == {
        ("shop", "canary", "variant:canary:prediction")
    }
