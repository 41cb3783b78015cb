"""The generator's labels and ``concept`` drift, scored by ``evaluate`` after the engine in memory."""

from __future__ import annotations

import orjson
import pytest

from detectors import ConfigError, EngineConfig, MonitorBank
from loadtest.evaluate import score
from loadtest.generate import generate
from loadtest.scenario import Scenario, preset
from schemas import LabelEvent, PredictionEvent, decode, decode_label


def _split(lines: list[bytes]) -> tuple[list[PredictionEvent], list[LabelEvent]]:
    evs = [decode(x) for x in lines if b'"features"' in x]
    labs = [decode_label(x) for x in lines if b'"features"' not in x]
    assert all(isinstance(e, PredictionEvent) for e in evs) and all(isinstance(x, LabelEvent) for x in labs)
    return evs, labs  # type: ignore[return-value]


def test_concept_drifts_are_caught_from_labels_alone_also_downstream_and_nothing_else_fires() -> None:
    gen = generate(preset("concept"))
    truth = gen.truth_document()
    lines = list(gen.events())
    evs, labs = _split(lines)
    assert len(evs) == truth["events"] and len(labs) == truth["labels"] > 0.15 * len(evs)
    bank = MonitorBank(EngineConfig.from_mapping({"defaults": {"warmup_events": 5000}}), wall_clock_ms=lambda: 0)
    alerts = []
    for i in range(0, len(lines), 10_000):
        alerts += bank.process(*_split(lines[i : i + 10_000])).alerts
    result = score(truth, alerts)
    assert result["injected"] == result["detected"] == 3, result["drifts"]
    assert result["false_alerts"] == 0, result["false_alerts_by_signal"]
    fired = {(a["model"], a["stage"], a["signal"]) for a in alerts if a["status"] == "firing"}
    assert {s for *_, s in fired} <= {"error", "abs_error", "label"}  # inputs and predictions never moved
    assert ("speech", "asr", "abs_error") in fired  # vad's changed truth, inherited downstream
    for row in result["drifts"]:
        assert row["delay_s"] < 60, row  # labels come 5-10 s (mean) after their predictions


def test_labels_follow_their_predictions_by_the_delay_and_change_no_prediction() -> None:
    doc = preset("concept").model_dump()
    doc["events"] = 40_000
    labelled = generate(Scenario.from_mapping(doc))
    for k in doc["keys"]:
        k["label_share"] = 0.0
    doc["drifts"] = []
    plain = generate(Scenario.from_mapping(doc))
    lines = list(labelled.events())
    assert [x for x in lines if b'"features"' in x] == list(plain.events())
    sent_ts = {}
    last = 0
    for x in lines:
        d = orjson.loads(x)
        assert d["ts"] >= last - 1  # one event-time order (a label just before the next later prediction)
        last = max(last, d["ts"])
        if "features" in d:
            sent_ts[(d["model"], d["stage"], d["request_id"])] = d["ts"]
        else:
            assert d["ts"] >= sent_ts[(d["model"], d["stage"], d["request_id"])]  # after its prediction
    fixed = preset("concept").model_dump()
    fixed["events"] = 8_000
    fixed["keys"] = [{**fixed["keys"][0], "label_delay_dist": "fixed", "label_delay_s": 3.0}]
    fixed["pipelines"], fixed["drifts"] = [], []
    gen = generate(Scenario.from_mapping(fixed))
    preds = {d["request_id"]: d["ts"] for d in map(orjson.loads, gen.events()) if "features" in d}
    labs = [d for d in map(orjson.loads, gen.events()) if "features" not in d]
    assert labs and all(d["ts"] - preds[d["request_id"]] == 3000 for d in labs)


def test_concept_needs_labels_on_its_key() -> None:
    doc = preset("concept").model_dump()
    doc["keys"][0]["label_share"] = 0.0
    with pytest.raises(ConfigError, match="label_share"):
        Scenario.from_mapping(doc)
