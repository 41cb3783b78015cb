"""The generator's deployment-pattern drifts, scored by ``evaluate`` after the engine in memory."""

from __future__ import annotations

import pytest

from detectors import ConfigError, EngineConfig, MonitorBank
from loadtest.evaluate import score
from loadtest.generate import generate
from loadtest.scenario import Scenario, preset
from schemas import PredictionEvent, decode

RULES = {
    "defaults": {"warmup_events": 5000},
    "variants": [
        {"model": "*", "stage": "score", "candidates": ["canary"], "window_s": 2, "min_events": 400},
        {"model": "*", "stage": "profile", "candidates": ["shadow"], "window_s": 2, "min_events": 400,
         "pairing": True},
    ],
}  # fmt: skip


def test_a_regressing_canary_and_a_disagreeing_shadow_are_detected_and_nothing_else_fires() -> None:
    gen = generate(preset("variants"))
    truth = gen.truth_document()
    events = [decode(x) for x in gen.events()]
    assert all(isinstance(e, PredictionEvent) for e in events)
    assert len(events) == truth["events"]
    variants = {(e.model, e.variant) for e in events}  # type: ignore[union-attr]
    assert variants == {("fraud", "primary"), ("fraud", "canary"), ("churn", "primary"), ("churn", "canary"),
                        ("shop", "primary"), ("shop", "shadow")}  # fmt: skip
    bank = MonitorBank(EngineConfig.from_mapping(RULES), wall_clock_ms=lambda: 0)
    alerts = [a for i in range(0, len(events), 10_000) for a in bank.process(events[i : i + 10_000]).alerts]
    result = score(truth, alerts)
    rows = {r["kind"]: r for r in result["drifts"]}
    assert rows["canary-regression"]["detected"], result
    assert rows["shadow-disagreement"]["detected"], result
    fired = {(a["model"], a["variant"], a["signal"], a["detector"]) for a in alerts if a["status"] == "firing"}
    # the comparisons with the baseline, besides each candidate's own monitor (which may be first)
    assert ("fraud", "canary", "variant:canary:prediction", "psi") in fired
    assert ("shop", "shadow", "variant:shadow:prediction", "agreement") in fired
    assert result["false_alerts"] == 0, [(a["model"], a["variant"], a["signal"], a["detector"]) for a in alerts
                                         if a["status"] == "firing"]  # fmt: skip
    # the healthy canary of churn/score: compared, never different
    assert bank.monitors[("churn", "score", "canary")].comparison is not None


def test_variant_drifts_need_their_variant_on_the_key() -> None:
    doc = preset("variants").model_dump()
    doc["keys"][0]["canary_share"] = 0.0
    with pytest.raises(ConfigError, match="canary_share"):
        Scenario.from_mapping(doc)
