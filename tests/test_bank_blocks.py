"""The bank gives the same alerts, summaries and state from column blocks as from whole events.

The processor feeds ordinary events as :class:`schemas.EventBlock` columns and the rest as
decoded events (``schemas.settle`` keeps each key on one side). Whatever the mix, the result
must not depend on the path an event took.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent, decode, decode_blocks, settle

BASE = {"warmup_events": 300, "alerts": {"cooldown_s": 1, "resolve_after_s": 5},
        "detectors": {"psi": {"window": 200}}}  # fmt: skip


def traffic(n: int, seed: int) -> list[bytes]:
    """Six keys: plain numeric; with nulls and booleans; a numeric prediction and latency; a
    feature that appears halfway; a categorical feature; a canary variant. Key m0 drifts."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = i % 6
        a = rng.gauss(0, 1) + (3.0 if k == 0 and i > n // 2 else 0.0)
        f: dict[str, Any] = {"a": a, "b": round(rng.gauss(5, 2), 3)}
        ev: dict[str, Any] = {"model": f"m{k}", "stage": "s", "features": f, "ts": 1_000_000 + 20 * i}
        if k == 1:
            f["b"] = None if i % 7 == 0 else f["b"]
            f["flag"] = i % 3 == 0
        elif k == 2:
            ev["prediction"] = rng.random()
            ev["latency_ms"] = rng.expovariate(0.1)
            ev["version"] = f"v{i // 1000}"
        elif k == 3 and i > n // 2:
            f["c"] = rng.random()
        elif k == 4:
            f["k"] = rng.choice("xyz")
        elif k == 5:
            ev["variant"] = "canary"
            if i % 11 == 0:
                f["a"] = "n/a"  # a string now and then: that event takes the whole-event path
        out.append(orjson.dumps(ev))
    return out


def run(values: list[bytes], cfg: dict[str, Any], batch: int, blocks: bool) -> tuple[list[Any], MonitorBank]:
    bank = MonitorBank(EngineConfig.from_mapping(cfg), wall_clock_ms=lambda: 0)
    docs: list[Any] = []
    for lo in range(0, len(values), batch):
        chunk = values[lo : lo + batch]
        if blocks:
            found, owner = decode_blocks(chunk, np.full(len(chunk), -1, np.int64))
            decoded = [(i, decode(chunk[i])) for i in np.flatnonzero(owner < 0).tolist()]
            assert all(type(e) is PredictionEvent for _, e in decoded)
            evs, blks = settle(found, decoded)  # type: ignore[arg-type]
            out = bank.process(evs, (), blks)
        else:
            out = bank.process([decode(v) for v in chunk])
        docs += out.alerts + out.summaries
    return docs, bank


def per_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault((d["model"], d["stage"], d["variant"]), []).append(d)
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        BASE,
        {"defaults": {**BASE, "signals": {"exclude": ["b"]}}},
        {"defaults": {**BASE, "signals": {"features": ["a", "c"], "missing": False}}},
        {
            "defaults": BASE,
            "variants": [{"model": "m5", "stage": "s", "baseline": "primary", "candidates": ["canary"]}],
        },
    ],
    ids=["defaults", "exclude", "selected", "variants"],
)
def test_blocks_and_events_give_the_same_result(cfg: dict[str, Any]) -> None:
    if "defaults" not in cfg:
        cfg = {"defaults": cfg}
    values = traffic(12_000, 3)
    want, a = run(values, cfg, 500, blocks=False)
    got, b = run(values, cfg, 500, blocks=True)
    assert any(d.get("status") == "firing" and d["model"] == "m0" for d in want)
    assert per_key(got) == per_key(want)  # the order across keys follows the path; within a key it may not
    assert a.monitors.keys() == b.monitors.keys()
    for key in a.monitors:
        assert a.snapshot(key) == b.snapshot(key), key
    b.stats.column_events, taken = 0, b.stats.column_events
    assert a.stats == b.stats
    assert (taken > 0) == ("variants" not in cfg)  # variant comparisons need whole events


def test_most_ordinary_events_take_the_column_path() -> None:
    values = traffic(3_000, 4)
    bank = MonitorBank(EngineConfig.from_mapping({"defaults": BASE}), wall_clock_ms=lambda: 0)
    taken = 0
    for lo in range(0, len(values), 500):
        chunk = values[lo : lo + 500]
        found, owner = decode_blocks(chunk, np.full(len(chunk), -1, np.int64))
        evs, blks = settle(found, [(i, decode(chunk[i])) for i in np.flatnonzero(owner < 0).tolist()])  # type: ignore[misc]
        fit = bank._fit(evs, blks)[1]
        taken += sum(map(len, fit))
        bank.process(evs, (), blks)
    assert taken > 0.4 * len(values)  # m0..m3 after their first batch and the new feature
