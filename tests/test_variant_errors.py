"""A canary's error rate against its baseline's, from delayed labels (in memory)."""

from __future__ import annotations

from typing import Any

import jsonschema
import numpy as np
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import LabelEvent, PredictionEvent, load_schema

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
T0 = 1_700_000_000_000
RULE = {"baseline": "primary", "candidates": ["canary"], "window_s": 60, "min_events": 300, "min_outcomes": 200}
CFG: dict[str, Any] = {"defaults": {"warmup_events": 1000, "labels": {"join": "always", "warmup_pairs": 500}},
                       "variants": [RULE]}  # fmt: skip


def traffic(n: int, canary_wrong: float, base_wrong: float = 0.1, worse_from: int = 0, seed: int = 3,
            share: float = 0.3) -> list[tuple[int, PredictionEvent | LabelEvent]]:  # fmt: skip
    """A 20 % canary, 10 ms apart; a ``share`` of requests get a label 5 s later. The canary's
    predictions are wrong ``canary_wrong`` of the time from ``worse_from`` on (``base_wrong``
    before that and on the baseline). Inputs and predictions have the same distribution on
    both variants: only the labels tell them apart."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    canary = rng.random(n) < 0.2
    flip = rng.random(n)
    gets = rng.random(n) < share
    items: list[tuple[int, PredictionEvent | LabelEvent]] = []
    for i in range(n):
        ts = T0 + i * 10
        pred = "yes" if x[i] > 0 else "no"
        wrong_rate = canary_wrong if canary[i] and i >= worse_from else base_wrong
        truth = pred if flip[i] >= wrong_rate else ("no" if pred == "yes" else "yes")
        variant = "canary" if canary[i] else "primary"
        items.append((2 * ts, PredictionEvent("shop", "ranker", {"x": float(x[i])}, ts, variant=variant,
                                              prediction=pred, request_id=f"r{i}")))  # fmt: skip
        if gets[i]:
            items.append((2 * (ts + 5_000) + 1, LabelEvent(f"r{i}", truth, ts + 5_000, "shop", "ranker")))
    items.sort(key=lambda t: t[0])
    return items


def run(b: MonitorBank, items: list[tuple[int, Any]], size: int) -> list[dict[str, Any]]:
    alerts = []
    for k in range(0, len(items), size):
        chunk = [e for _, e in items[k : k + size]]
        evs = [e for e in chunk if isinstance(e, PredictionEvent)]
        labs = [e for e in chunk if isinstance(e, LabelEvent)]
        alerts += b.process(evs, labs).alerts
    return alerts


def error_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["detector"] == "error_rate"]


def bank(**rule: Any) -> MonitorBank:
    return MonitorBank(EngineConfig.from_mapping({**CFG, "variants": [{**RULE, **rule}]}), wall_clock_ms=lambda: 0)


def test_a_canary_that_is_wrong_more_often_is_caught_from_its_labels() -> None:
    items = traffic(60_000, canary_wrong=0.35, worse_from=30_000)
    alerts = run(bank(), items, 2000)
    got = error_alerts(alerts)
    firing = [a for a in got if a["status"] == "firing"]
    assert firing, "the canary's error rate regression was missed"
    first = firing[0]
    assert (first["variant"], first["signal"]) == ("canary", "variant:canary:error")
    assert first["window"]["last_ts"] >= T0 + 30_000 * 10 + 5_000  # label time: the change's labels are in it
    assert not [a for a in got if a["window"]["last_ts"] < T0 + 30_000 * 10]  # none before
    worst = next(a for a in firing if a["severity"] == "critical")  # escalated once a window is all after it
    assert worst["alert_id"] == first["alert_id"]
    d = worst["details"]
    assert d["baseline"]["variant"] == "primary" and d["candidate"]["variant"] == "canary"
    assert 0.05 < d["baseline"]["error_rate"] < 0.15 and 0.25 < d["candidate"]["error_rate"] < 0.45
    assert worst["statistic"] == pytest.approx(d["candidate"]["error_rate"] - d["baseline"]["error_rate"])
    assert d["p_value"] < 1e-3 and d["candidate"]["outcomes"] >= 200
    for a in got:
        ALERT.validate(a)
    # the inputs and predictions of both variants stay alike: no other variant alert
    assert not [a for a in alerts if a["signal"].startswith("variant:") and a["detector"] != "error_rate"]


def test_no_error_alert_when_both_variants_are_as_good() -> None:
    items = traffic(60_000, canary_wrong=0.1, seed=4)
    assert error_alerts(run(bank(), items, 2000)) == []


def test_a_candidate_that_is_better_does_not_alert() -> None:
    items = traffic(60_000, canary_wrong=0.0, base_wrong=0.3, seed=5)
    assert error_alerts(run(bank(), items, 2000)) == []


@pytest.mark.parametrize("size", [700, 5000])
def test_batching_does_not_change_the_error_alerts(size: int) -> None:
    items = traffic(50_000, canary_wrong=0.35, worse_from=20_000, seed=6)
    ref = [(a["alert_id"], a["status"], a["statistic"]) for a in error_alerts(run(bank(), items, 2000))]
    got = [(a["alert_id"], a["status"], a["statistic"]) for a in error_alerts(run(bank(), items, size))]
    assert ref and got == ref


def test_open_error_windows_survive_a_snapshot() -> None:
    items = traffic(50_000, canary_wrong=0.35, worse_from=20_000, seed=6)
    whole = error_alerts(run(bank(), items, 2000))
    first = bank()
    head = run(first, items[:33_000], 2000)
    cand = first.monitors[("shop", "ranker", "canary")].comparison
    assert cand is not None and cand.error_windows  # mid-window
    second = bank()
    for key in first.take_dirty():
        second.restore(first.snapshot(key))
    tail = run(second, items[33_000:], 2000)
    key = lambda docs: [(a["alert_id"], a["status"], a["statistic"]) for a in error_alerts(docs)]  # noqa: E731
    assert key(head + tail) == key(whole) and whole


def test_regression_stages_are_not_judged() -> None:
    """abs_error has no scale-free threshold: numeric predictions and labels give no error_rate alert."""
    items = traffic(40_000, canary_wrong=0.5, seed=8)
    numeric = [(k, e) for k, e in items]
    for i, (k, e) in enumerate(numeric):
        if isinstance(e, PredictionEvent):
            e.prediction = 1.0 if e.prediction == "yes" else 0.0
        else:
            numeric[i] = (k, LabelEvent(e.request_id, 1.0 if e.label == "yes" else 0.0, e.ts, e.model, e.stage))
    b = bank()
    assert error_alerts(run(b, numeric, 2000)) == []
    assert "abs_error" in b.monitors[("shop", "ranker", "canary")].signals
