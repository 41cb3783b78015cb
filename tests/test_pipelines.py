"""Pipelines: a downstream stage's alert names its upstream stages' recent alerts (pure, no broker)."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from detectors import ConfigError, EngineConfig, MonitorBank
from schemas import PredictionEvent, load_schema
from streams.topology import Homes

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
CFG = {"defaults": {"warmup_events": 2000}, "pipelines": [["speech/vad", "speech/asr"]], "related_within_s": 60}


def stream(n: int, vad_from: int, asr_from: int, seed: int = 5) -> list[PredictionEvent]:
    """vad and asr alternate, one event per 10 ms; each one's f1 shifts from its own index on."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    out = []
    for i in range(n):
        stage = "vad" if i % 2 == 0 else "asr"
        f1 = float(x[i, 1]) + (2.0 if i >= (vad_from if stage == "vad" else asr_from) else 0.0)
        out.append(PredictionEvent("speech", stage, {"f0": float(x[i, 0]), "f1": f1}, 1_000_000 + 10 * i))
    return out


def alerts_of(cfg: dict, events: list[PredictionEvent], step: int = 5000) -> list[dict]:  # type: ignore[type-arg]
    b = MonitorBank(EngineConfig.from_mapping(cfg), wall_clock_ms=lambda: 0)
    return [a for i in range(0, len(events), step) for a in b.process(events[i : i + step]).alerts]


def _related(alerts: list[dict]) -> list[tuple[str, str, list[str]]]:  # type: ignore[type-arg]
    """(id, status, related) of each alert, in a batching-independent order."""
    return sorted((a["alert_id"], a["status"], a.get("related") or []) for a in alerts)


def test_a_downstream_alert_lists_the_upstream_alerts_fired_shortly_before_it() -> None:
    alerts = alerts_of(CFG, stream(60_000, vad_from=30_000, asr_from=31_000))
    vad = {a["alert_id"]: a for a in alerts if a["stage"] == "vad" and a["status"] == "firing"}
    asr = [a for a in alerts if a["stage"] == "asr" and a["status"] == "firing"]
    assert vad and asr
    assert not any("related" in a for a in vad.values())
    for a in asr:
        assert a["related"], a["signal"]
        assert set(a["related"]) <= set(vad)
        for rid in a["related"]:
            assert 0 <= a["detected_at"] - vad[rid]["detected_at"] <= 60_000
        ALERT.validate(a)


def test_an_upstream_alert_long_before_is_not_related() -> None:
    # asr drifts 100 s of event time after vad: beyond related_within_s (60 s)
    alerts = alerts_of(CFG, stream(60_000, vad_from=20_000, asr_from=40_000))
    asr = [a for a in alerts if a["stage"] == "asr" and a["status"] == "firing"]
    assert asr and not any("related" in a for a in asr)


def test_without_pipelines_nothing_is_related_and_any_batching_relates_the_same() -> None:
    events = stream(60_000, vad_from=30_000, asr_from=31_000)
    assert not any("related" in a for a in alerts_of({"defaults": CFG["defaults"]}, events))
    ref = _related(alerts_of(CFG, events))
    assert any(r for _, _, r in ref)
    assert _related(alerts_of(CFG, events, step=777)) == ref
    assert _related(alerts_of(CFG, events, step=60_000)) == ref


def test_recent_firings_survive_a_snapshot() -> None:
    events = stream(60_000, vad_from=30_000, asr_from=31_000)
    ref = _related(alerts_of(CFG, events))
    first = MonitorBank(EngineConfig.from_mapping(CFG), wall_clock_ms=lambda: 0)
    head = [a for i in range(0, 31_500, 5000) for a in first.process(events[i : min(i + 5000, 31_500)]).alerts]
    second = MonitorBank(EngineConfig.from_mapping(CFG), wall_clock_ms=lambda: 0)
    for key in first.monitors:
        second.restore(first.snapshot(key))
    tail = [a for i in range(31_500, 60_000, 5000) for a in second.process(events[i : i + 5000]).alerts]
    assert _related(head + tail) == ref


def test_every_stage_of_a_pipeline_lives_in_its_first_stage_partition() -> None:
    cfg = EngineConfig.from_mapping({"pipelines": [["shop/profile", "shop/recommender", "shop/mailer"]]})
    homes = Homes(12, cfg.pipeline_anchor)
    plain = Homes(12)
    first = plain[("shop", "profile")][1]
    assert {homes[("shop", s)][1] for s in ("profile", "recommender", "mailer")} == {first}
    assert homes[("shop", "recommender")][0] == b"shop/recommender"  # the key stays the stage's own
    assert homes[("fraud", "score")] == plain[("fraud", "score")]
    assert cfg.upstream[("shop", "mailer")] == {("shop", "profile"), ("shop", "recommender")}


@pytest.mark.parametrize("bad", [[["speech/vad"]], [["speech/vad", "asr"]]])
def test_a_bad_pipeline_names_the_key(bad: list[list[str]]) -> None:
    with pytest.raises(ConfigError, match="pipelines"):
        EngineConfig.from_mapping({"pipelines": bad})
