"""Candidate variants against their baseline over the same event-time windows (pure, no broker)."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from detectors import EngineConfig, MonitorBank
from detectors.variants import statistics
from schemas import PredictionEvent, load_schema

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
RULE = {"baseline": "primary", "candidates": ["canary"], "window_s": 10, "min_events": 300}
CFG = {"defaults": {"warmup_events": 2000}, "variants": [RULE]}


def bank(cfg: dict | None = None) -> MonitorBank:  # type: ignore[type-arg]
    return MonitorBank(EngineConfig.from_mapping(cfg or CFG), wall_clock_ms=lambda: 0)


def traffic(n: int, canary_share: float = 0.05, shift_from: int | None = None, seed: int = 7,
            drift_all_from: int | None = None) -> list[PredictionEvent]:  # fmt: skip
    """One event per ms; the canary's predictions (and f0) shift from ``shift_from`` on;
    ``drift_all_from``: both variants' inputs and predictions move alike."""
    rng = np.random.default_rng(seed)
    canary = rng.random(n) < canary_share
    x = rng.normal(size=(n, 2))
    out = []
    for i in range(n):
        variant = "canary" if canary[i] else "primary"
        f0, f1 = float(x[i, 0]), float(x[i, 1])
        if drift_all_from is not None and i >= drift_all_from:
            f0 += 1.5
        pred = 1 / (1 + np.exp(-(f0 + f1)))
        if variant == "canary" and shift_from is not None and i >= shift_from:
            pred = min(1.0, pred + 0.3)
        out.append(PredictionEvent("shop", "ranker", {"f0": f0, "f1": f1}, 1_000_000 + i, variant=variant,
                                   prediction=float(pred), latency_ms=float(20 + rng.random())))  # fmt: skip
    return out


def run(b: MonitorBank, events: list[PredictionEvent], sizes: list[int] | None = None) -> list[dict]:  # type: ignore[type-arg]
    alerts: list[dict] = []  # type: ignore[type-arg]
    i = 0
    k = 0
    while i < len(events):
        step = sizes[k % len(sizes)] if sizes else 5000
        alerts += b.process(events[i : i + step]).alerts
        i += step
        k += 1
    return alerts


def variant_alerts(alerts: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return [a for a in alerts if a["signal"].startswith("variant:")]


def test_a_diverging_canary_is_caught_on_the_right_signal_with_both_sides_in_details() -> None:
    alerts = variant_alerts(run(bank(), traffic(200_000, shift_from=100_000)))
    firing = [a for a in alerts if a["status"] == "firing"]
    assert {a["signal"] for a in firing} == {"variant:canary:prediction"}
    first = min(firing, key=lambda a: a["detected_at"])
    assert 1_100_000 <= first["detected_at"] <= 1_130_000  # within the 2nd window after the shift
    assert first["variant"] == "canary" and first["detector"] == "psi"
    d = first["details"]
    assert d["baseline"]["variant"] == "primary" and d["candidate"]["variant"] == "canary"
    assert d["baseline"]["events"] > 10 * d["candidate"]["events"] >= 10 * RULE["min_events"]
    assert d["p_value"] < 1e-6 and first["statistic"] >= 0.1
    for a in alerts:
        ALERT.validate(a)


def test_no_variant_alert_when_both_variants_serve_the_same_model_even_through_a_shared_drift() -> None:
    b = bank()
    alerts = run(b, traffic(300_000, canary_share=0.05, drift_all_from=150_000))
    assert not variant_alerts(alerts)
    # the drift itself is caught by the per-variant monitors
    assert any(a["signal"] == "feature:f0" and a["variant"] == "primary" for a in alerts)
    cmp = b.monitors[("shop", "ranker", "canary")].comparison
    assert cmp is not None and cmp.late == 0


@pytest.mark.parametrize("sizes", [[1], [997, 13, 4000], [50_000]])
def test_any_batching_gives_the_same_windows_and_alert_ids(sizes: list[int]) -> None:
    events = traffic(120_000, shift_from=60_000)
    ref = [(a["alert_id"], a["status"], a["statistic"]) for a in variant_alerts(run(bank(), events))]
    got = [(a["alert_id"], a["status"], a["statistic"]) for a in variant_alerts(run(bank(), events, sizes))]
    assert ref and got == ref


def test_a_restored_candidate_continues_its_open_windows_and_alerts() -> None:
    events = traffic(200_000, shift_from=100_000)
    ref = [(a["alert_id"], a["status"]) for a in variant_alerts(run(bank(), events))]
    first = bank()
    head = variant_alerts(run(first, events[:103_333]))
    second = bank()
    for key in first.monitors:
        second.restore(first.snapshot(key))
    tail = variant_alerts(run(second, events[103_333:]))
    assert [(a["alert_id"], a["status"]) for a in head + tail] == ref


def test_late_events_are_counted_not_binned() -> None:
    b = bank({**CFG, "variants": [{**RULE, "lateness_windows": 0}]})
    events = traffic(40_000)
    late = PredictionEvent("shop", "ranker", {"f0": 0.0, "f1": 0.0}, 1_000_000, variant="canary", prediction=0.5)
    run(b, [*events, late])
    cmp = b.monitors[("shop", "ranker", "canary")].comparison
    assert cmp.late == 1


def test_the_statistics_are_psi_and_a_chi_square_p_value() -> None:
    same = np.array([[500, 300, 200], [50, 30, 20]])
    psi, p, bins = statistics(same, 1e-4)
    assert psi == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0) and bins == 3
    differ = np.array([[500, 300, 200, 0], [20, 30, 50, 0]])
    psi, p, bins = statistics(differ, 1e-4)
    expected = 0.0
    for b_, c_ in ((0.5, 0.2), (0.3, 0.3), (0.2, 0.5)):
        expected += (c_ - b_) * np.log(c_ / b_)
    assert psi == pytest.approx(expected) and p < 1e-6 and bins == 3


def test_a_rule_names_the_bad_key() -> None:
    from detectors import ConfigError

    with pytest.raises(ConfigError, match="variants"):
        EngineConfig.from_mapping({"variants": [{"baseline": "primary", "windw_s": 5}]})
