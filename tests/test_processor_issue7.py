"""``driftstream run`` with issue 7's rules on real brokers: a diverging canary is caught without
any label and a healthy one raises nothing; a downstream stage's alerts name the upstream ones."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent

from .conftest import Broker
from .harness import alerts_of, produce, read_topic, start, wait_for
from .test_pipelines import CFG as PIPE
from .test_pipelines import stream as pipeline_stream
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


def test_a_downstream_stage_alert_names_the_upstream_alerts_across_the_repartition_hop(
    broker: Broker, tmp_path: Path
) -> None:
    """speech/asr lives in speech/vad's partition (pipeline), reached through the repartition
    topic; its alerts carry the vad alerts fired shortly before, as in memory."""
    prefix = f"q{uuid.uuid4().hex[:8]}"
    cfg = {"pipelines": PIPE["pipelines"], "related_within_s": PIPE["related_within_s"]}
    events = pipeline_stream(60_000, vad_from=30_000, asr_from=31_000)
    bank = MonitorBank(EngineConfig.from_mapping(PIPE))
    want = {(a["alert_id"], a["status"], tuple(a.get("related", ()))) for a in bank.process(events).alerts}
    assert any(r for *_, r in want)
    items = [(f"{e.model}/{e.stage}".encode(), orjson.dumps({"model": e.model, "stage": e.stage, "ts": e.ts,
              "features": e.features})) for e in events]  # fmt: skip
    run = start(tmp_path, broker, prefix, cfg)
    try:
        run.wait_ready()
        produce(broker, f"{prefix}-predictions", items)
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= len(items), 120, "all events processed")
        ids = {w[:2] for w in want}
        has_all = lambda got: ids <= {(a["alert_id"], a["status"]) for a in alerts_of(got)}  # noqa: E731
        read_topic(broker, f"{prefix}-alerts", until=has_all, timeout=60)
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=30, idle=3))
        rekeyed = run.metric("driftstream_events_repartitioned_total")
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert {(a["alert_id"], a["status"], tuple(a.get("related", ()))) for a in alerts} == want
    assert rekeyed > 0  # the asr events went to the vad partition
