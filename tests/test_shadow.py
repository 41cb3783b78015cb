"""Shadow mode: predictions of two variants paired by request_id, agreement per window (pure)."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from detectors import EngineConfig, MonitorBank
from detectors.shadow import agree
from schemas import PredictionEvent, load_schema

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
RULE = {"baseline": "primary", "candidates": ["shadow"], "window_s": 10, "min_events": 300, "pairing": True}
CFG = {"defaults": {"warmup_events": 2000}, "variants": [RULE]}


def shadowed(n: int, flip_from: int | None = None, flip_share: float = 0.3, shadow_share: float = 1.0,
             seed: int = 11) -> list[PredictionEvent]:  # fmt: skip
    """Request i at 2 ms per request: the primary's class, then (for ``shadow_share`` of the
    requests) the shadow's, the same class except for ``flip_share`` of them from ``flip_from``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = {"x": float(rng.normal())}
        cls = "A" if rng.random() < 0.5 else "B"
        rid = f"r{i}"
        out.append(PredictionEvent("shop", "ranker", f, 1_000_000 + 2 * i, prediction=cls, request_id=rid))
        if rng.random() < shadow_share:
            flip = flip_from is not None and i >= flip_from and rng.random() < flip_share
            other = ("B" if cls == "A" else "A") if flip else cls
            out.append(PredictionEvent("shop", "ranker", f, 1_000_000 + 2 * i + 1, variant="shadow",
                                       prediction=other, request_id=rid))  # fmt: skip
    return out


def run(events: list[PredictionEvent], step: int = 4000, cfg: dict | None = None) -> tuple[list[dict], MonitorBank]:  # type: ignore[type-arg]
    b = MonitorBank(EngineConfig.from_mapping(cfg or CFG), wall_clock_ms=lambda: 0)
    return [a for i in range(0, len(events), step) for a in b.process(events[i : i + step]).alerts], b


def test_disagreeing_shadow_predictions_are_caught_though_their_distribution_is_the_same() -> None:
    alerts, b = run(shadowed(100_000, flip_from=50_000))
    mine = [a for a in alerts if a["variant"] == "shadow"]
    firing = [a for a in mine if a["status"] == "firing"]
    assert {(a["signal"], a["detector"]) for a in firing} == {("variant:shadow:prediction", "agreement")}
    first = min(firing, key=lambda a: a["detected_at"])
    assert first["severity"] == "critical" and first["statistic"] == pytest.approx(0.7, abs=0.03)
    assert 1_100_000 <= first["detected_at"] < 1_110_000  # the first window after the change (2 ms/request)
    assert first["details"]["pairs"] >= 4000 and first["details"]["candidate"]["variant"] == "shadow"
    for a in mine:
        ALERT.validate(a)
    cmp = b.monitors[("shop", "ranker", "shadow")].comparison
    assert cmp.pending.unpaired == 0 and len(cmp.pending.waiting) < 10


def test_an_agreeing_shadow_raises_nothing_and_any_batching_pairs_the_same() -> None:
    events = shadowed(60_000)
    assert not [a for a in run(events)[0] if a["variant"] == "shadow"]
    flipped = shadowed(60_000, flip_from=30_000)
    ref = sorted((a["alert_id"], a["status"], a["statistic"]) for a in run(flipped)[0] if a["variant"] == "shadow")
    assert ref
    for step in (777, 120_000):
        got = run(flipped, step)[0]
        assert sorted((a["alert_id"], a["status"], a["statistic"]) for a in got if a["variant"] == "shadow") == ref


def test_unpaired_predictions_expire_and_are_counted_and_waiting_is_bounded() -> None:
    events = shadowed(40_000, shadow_share=0.5)
    _, b = run(events)
    cmp = b.monitors[("shop", "ranker", "shadow")].comparison
    # about half the primary's 40k requests never pair: expired, or still waiting in the open windows
    assert 18_000 < cmp.pending.unpaired + len(cmp.pending.waiting) < 22_000
    assert cmp.pending.unpaired > 10_000
    assert all(v[2] >= cmp.max_ts // 10_000 - 1 for v in cmp.pending.waiting.values())
    _, small = run(events, cfg={**CFG, "variants": [{**RULE, "max_pending": 50}]})
    assert len(small.monitors[("shop", "ranker", "shadow")].comparison.pending.waiting) <= 50


def test_a_restored_shadow_comparison_keeps_its_waiting_predictions() -> None:
    events = shadowed(100_000, flip_from=50_000)
    ref = sorted((a["alert_id"], a["status"]) for a in run(events)[0] if a["variant"] == "shadow")
    first = MonitorBank(EngineConfig.from_mapping(CFG), wall_clock_ms=lambda: 0)
    cut = 101_001  # between a request's two events
    head = [a for i in range(0, cut, 4000) for a in first.process(events[i : min(i + 4000, cut)]).alerts]
    assert first.monitors[("shop", "ranker", "shadow")].comparison.pending.waiting
    second = MonitorBank(EngineConfig.from_mapping(CFG), wall_clock_ms=lambda: 0)
    for key in first.monitors:
        second.restore(first.snapshot(key))
    tail = [a for i in range(cut, len(events), 4000) for a in second.process(events[i : i + 4000]).alerts]
    assert sorted((a["alert_id"], a["status"]) for a in head + tail if a["variant"] == "shadow") == ref


@pytest.mark.parametrize(
    ("a", "b", "tol", "want"),
    [("A", "A", 0, True), ("A", "B", 0, False), (0.5, 0.52, 0.05, True), (0.5, 0.6, 0.05, False),
     (True, True, 0, True), (True, 1, 0, False), (None, None, 0, False), (float("nan"), 0.5, 1, False)],
)  # fmt: skip
def test_agreement_of_two_predictions(a: object, b: object, tol: float, want: bool) -> None:
    assert agree(a, b, tol) is want
