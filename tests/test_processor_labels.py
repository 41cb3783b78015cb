"""``driftstream run`` joins delayed labels on real brokers: a concept drift (inputs and predictions
unchanged, the right answers changed) is caught from labels alone, the predictions waiting
for their labels survive a restart through the state topic, and labels read by a worker without
their stage's home reach it through the repartition topic."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import LabelEvent, PredictionEvent
from streams.topology import home_partition

from .conftest import Broker
from .harness import alerts_of, produce, read_topic, start, topic_names, wait_for
from .labels_synth import Labelled, concept_stream

pytestmark = pytest.mark.broker

# join from the first prediction, and room for every prediction and label of the test: which labels
# meet their predictions then does not depend on how the two topics interleave (a worker may read
# every label before the predictions), so ids match an in-memory run
LABELS = {"join": "always", "max_pending": 100_000, "max_waiting": 100_000, "warmup_pairs": 1000}
CFG: dict[str, Any] = {"defaults": {"warmup_events": 2000, "labels": LABELS}, "label_targets": ["fraud/score"]}


def _prediction(e: PredictionEvent) -> tuple[bytes, bytes]:
    doc = {"model": e.model, "stage": e.stage, "ts": e.ts, "features": e.features, "prediction": e.prediction,
           "request_id": e.request_id}  # fmt: skip
    return f"{e.model}/{e.stage}".encode(), orjson.dumps(doc)


def _label(e: LabelEvent) -> tuple[bytes, bytes]:
    # one key: the labels keep their order through one partition (see README, Labels)
    return b"fraud/score", orjson.dumps({"request_id": e.request_id, "label": e.label, "ts": e.ts})


def _expected(data: Labelled) -> set[str]:
    bank = MonitorBank(EngineConfig.from_mapping(CFG))
    fired = set()
    for evs, labs in data.batches(5000):
        fired |= {a["alert_id"] for a in bank.process(evs, labs).alerts if a["status"] == "firing"}
    return fired


def _split(data: Labelled) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    preds = [_prediction(e) for e in data.items if isinstance(e, PredictionEvent)]
    labels = [_label(e) for e in data.items if isinstance(e, LabelEvent)]
    return preds, labels


def _firing(broker: Broker, prefix: str, want: set[str]) -> list[dict[str, Any]]:
    has_all = lambda got: want <= {a["alert_id"] for a in alerts_of(got)}  # noqa: E731
    read_topic(broker, f"{prefix}-alerts", until=has_all, timeout=90)
    return [a for a in alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=30, idle=3)) if a["status"] == "firing"]


@pytest.mark.parametrize("command", ["run", "faust-worker"])
def test_concept_drift_is_caught_from_delayed_labels_alone(broker: Broker, tmp_path: Path, command: str) -> None:
    prefix = f"l{uuid.uuid4().hex[:8]}"
    data = concept_stream(40_000, drift_at=20_000, named=False)  # labels without model/stage: label_targets
    want = _expected(data)
    assert want
    preds, labels = _split(data)
    run = start(tmp_path, broker, prefix, CFG, command=command)
    try:
        run.wait_ready()
        produce(broker, f"{prefix}-predictions", preds)
        produce(broker, f"{prefix}-labels", labels)
        wait_for(lambda: run.metric("driftstream_labels_total") >= len(labels), 120, "every label joined or not")
        firing = _firing(broker, prefix, want)
        joined = run.metric('driftstream_labels_total{outcome="joined"}')
        delays = run.metric("driftstream_label_delay_seconds_count")
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert {a["alert_id"] for a in firing} == want
    assert {(a["signal"], a["detector"]) for a in firing} == {("error", "adwin")}  # not the inputs, not predictions
    assert joined == len(labels) == delays


def test_predictions_waiting_for_labels_survive_a_restart(broker: Broker, tmp_path: Path) -> None:
    """All predictions and the first half of the labels, stop; a new process gets the rest of the
    labels: they meet predictions that only the state topic still holds."""
    prefix = f"r{uuid.uuid4().hex[:8]}"
    data = concept_stream(40_000, drift_at=20_000)
    want = _expected(data)
    preds, labels = _split(data)
    half = len(labels) // 2
    first = start(tmp_path, broker, prefix, CFG, name="first")
    try:
        first.wait_ready()
        produce(broker, f"{prefix}-predictions", preds)
        produce(broker, f"{prefix}-labels", labels[:half])
        wait_for(lambda: first.metric("driftstream_labels_total") >= half, 120, "first half joined")
        rc, _ = first.stop()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert rc == 0, first.log()[-3000:]
    second = start(tmp_path, broker, prefix, CFG, name="second")
    try:
        second.wait_ready()
        produce(broker, f"{prefix}-labels", labels[half:])
        wait_for(lambda: second.metric("driftstream_labels_total") >= len(labels) - half, 120, "second half")
        firing = _firing(broker, prefix, want)
        joined = second.metric('driftstream_labels_total{outcome="joined"}')
        rc, _ = second.stop()
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert rc == 0, second.log()[-3000:]
    assert joined == len(labels) - half  # every one met a prediction restored from the state topic
    assert {a["alert_id"] for a in firing} == want


def test_bad_and_unplaceable_labels_are_dead_lettered(broker: Broker, tmp_path: Path) -> None:
    """Without label_targets a label naming no stage cannot be placed: dead-lettered, like bad ones."""
    prefix = f"d{uuid.uuid4().hex[:8]}"
    bad = {
        b'{"label": 1}': "missing_field:request_id",
        b'{"request_id": "r", "label": null}': "bad_type:label",
        b'{"request_id": "r", "label": 1, "model": "m"}': "missing_field:stage",
        b"not json": "invalid_json",
        b'{"request_id": "r", "label": 1}': "unroutable_label",
    }
    good = [(b"k", orjson.dumps({"request_id": f"r{i}", "label": 1, "model": "m", "stage": "s"})) for i in range(5)]
    run = start(tmp_path, broker, prefix, {"defaults": CFG["defaults"]})
    try:
        run.wait_ready()
        produce(broker, f"{prefix}-labels", [(b"k", raw) for raw in bad] + good)
        dead = read_topic(broker, f"{prefix}-deadletter", until=lambda got: len(got) >= len(bad), timeout=60)
        waiting = lambda: run.metric('driftstream_join_pending{side="labels"}')  # noqa: E731
        wait_for(lambda: waiting() >= len(good), 60, "the good labels waiting")
        held = waiting()
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    got = {m.value(): dict(m.headers())["driftstream.reason"].decode() for m in dead}
    assert got == bad
    assert held == len(good)  # for m/s's predictions, which have not come (yet)


@pytest.mark.parametrize("command", ["run", "faust-worker"])
def test_labels_reach_homes_another_worker_owns_through_the_repartition_topic(
    broker: Broker, tmp_path: Path, command: str
) -> None:
    """Two workers in one group, labels keyed by request_id: a label whose stage lives with the
    worker that read it goes straight to its join, the others take the repartition topic; every
    one meets its prediction and each stage's concept drift is caught."""
    prefix = f"h{uuid.uuid4().hex[:8]}"
    partitions = topic_names(prefix)["partitions"]
    stages, seen = [], set()
    for i in range(100):  # one stage per partition, so both workers own some
        home = home_partition(f"fraud{i}/score".encode(), partitions)
        if home not in seen:
            seen.add(home)
            stages.append(f"fraud{i}")
    preds: list[tuple[bytes, bytes]] = []
    labels: list[tuple[bytes, bytes]] = []
    for i, model in enumerate(stages):
        data = concept_stream(20_000, drift_at=10_000, seed=i, model=model)
        p, _ = _split(data)
        preds += p
        labels += [(e.request_id.encode(), orjson.dumps({"request_id": e.request_id, "label": e.label, "ts": e.ts,
                    "model": e.model, "stage": e.stage})) for e in data.items if isinstance(e, LabelEvent)]  # fmt: skip
    a = start(tmp_path, broker, prefix, CFG, name="a", command=command)
    b = start(tmp_path, broker, prefix, CFG, name="b", command=command)
    workers = (a, b)
    try:
        for w in workers:
            w.wait_ready()
        wait_for(lambda: all(w.metric("driftstream_partitions_assigned") > 0 for w in workers), 60, "both to own")
        produce(broker, f"{prefix}-predictions", preds)
        produce(broker, f"{prefix}-labels", labels)
        total = lambda name: sum(w.metric(name) for w in workers)  # noqa: E731
        wait_for(lambda: total("driftstream_labels_total") >= len(labels), 120, "every label joined or not")
        joined = total('driftstream_labels_total{outcome="joined"}')
        hops = total("driftstream_events_repartitioned_total")
        alerts = alerts_of(read_topic(broker, f"{prefix}-alerts", timeout=30, idle=3))
        for w in workers:
            assert w.stop()[0] == 0, w.log()[-3000:]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
    assert joined == len(labels)
    assert 0.2 * len(labels) < hops < len(labels)  # about half the labels: read by the worker without their home
    caught = {a["model"] for a in alerts if a["status"] == "firing" and a["signal"] == "error"}
    assert caught == set(stages)
