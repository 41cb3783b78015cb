"""The bank gives the same alerts, summaries and state from column blocks as from whole events.

The processor feeds ordinary events as :class:`schemas.EventBlock` columns and the rest as
decoded events (``schemas.settle`` keeps each key on one side), and common labels as
:class:`schemas.LabelBlock` columns. Whatever the mix, the result must not depend on the path
an event or a label took.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import (
    LabelEvent,
    PredictionEvent,
    decode,
    decode_blocks,
    decode_label_blocks,
    encode_label,
    settle,
    settle_labels,
)

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
            ev["prediction"] = rng.random() if i % 13 else (i % 2 if i % 17 else None)  # ints and nulls too
            ev["latency_ms"] = rng.expovariate(0.1)
            ev["version"] = f"v{i // 1000}"
            ev["request_id"] = f"r{i}"
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


def labels_of(values: list[bytes], batch: int) -> dict[int, list[LabelEvent]]:
    """A label for every third prediction with a request_id, two batches later; after the middle
    the labels stop following the predictions (concept drift)."""
    out: dict[int, list[LabelEvent]] = {}
    for i, v in enumerate(values):
        ev = decode(v)
        assert type(ev) is PredictionEvent
        if ev.request_id is not None and (i // 6) % 3 == 0:
            truth = (ev.prediction or 0.0) + (0.6 if i > len(values) // 2 else 0.0)
            out.setdefault(i // batch + 2, []).append(LabelEvent(ev.request_id, truth, ev.ts + 500, ev.model, ev.stage))
    return out


def run(
    values: list[bytes], cfg: dict[str, Any], batch: int, blocks: bool, restore_at: int = -1,
    columns: list[int] | None = None,
) -> tuple[list[Any], MonitorBank]:  # fmt: skip
    """``restore_at``: before that batch, the bank's state moves to a new bank (a rebalance).
    ``columns`` gets each batch's count of events that took the column path."""
    bank = MonitorBank(EngineConfig.from_mapping(cfg), wall_clock_ms=lambda: 0)
    docs: list[Any] = []
    labels = labels_of(values, batch)
    for lo in range(0, len(values), batch):
        if lo == restore_at * batch:
            fresh = MonitorBank(EngineConfig.from_mapping(cfg), wall_clock_ms=lambda: 0)
            for key in sorted(bank.take_dirty() | set(bank.monitors)):
                fresh.restore(bank.snapshot(key))
            bank = fresh
        chunk = values[lo : lo + batch]
        labs = labels.get(lo // batch, [])
        before = bank.stats.column_events
        if blocks:
            found, owner = decode_blocks(chunk, np.full(len(chunk), -1, np.int64))
            decoded = [(i, decode(chunk[i])) for i in np.flatnonzero(owner < 0).tolist()]
            assert all(type(e) is PredictionEvent for _, e in decoded)
            evs, blks = settle(found, decoded)  # type: ignore[arg-type]
            raws = [encode_label(lab, lab.model, lab.stage) for lab in labs]  # type: ignore[arg-type]
            lfound, lowner = decode_label_blocks(raws, np.full(len(raws), -1, np.int64))
            assert (lowner >= 0).all()  # every label of this traffic takes the column path
            out = bank.process(evs, [], blks, settle_labels(lfound, [])[1])
        else:
            out = bank.process([decode(v) for v in chunk], labs)
        if columns is not None:
            columns.append(bank.stats.column_events - before)
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
        {"defaults": {**BASE, "labels": {"join": "always", "warmup_pairs": 100}}},
        {"defaults": {**BASE, "labels": {"warmup_pairs": 100}}},
        {
            "defaults": BASE,
            "variants": [{"model": "m5", "stage": "s", "baseline": "primary", "candidates": ["canary"]}],
        },
    ],
    ids=["defaults", "exclude", "selected", "labels-always", "labels-auto", "variants"],
)
def test_blocks_and_events_give_the_same_result(cfg: dict[str, Any]) -> None:
    if "defaults" not in cfg:
        cfg = {"defaults": cfg}
    values = traffic(12_000, 3)
    want, a = run(values, cfg, 500, blocks=False)
    got, b = run(values, cfg, 500, blocks=True)
    assert any(d.get("status") == "firing" and d["model"] == "m0" for d in want)
    if "labels" in cfg["defaults"]:
        assert any(d.get("status") == "firing" and d["signal"] == "abs_error" for d in want)
        assert a.joins == b.joins and a.joins.joined > 500
    assert per_key(got) == per_key(want)  # the order across keys follows the path; within a key it may not
    assert a.monitors.keys() == b.monitors.keys()
    for key in a.monitors:
        assert a.snapshot(key) == b.snapshot(key), key
    b.stats.column_events, taken = 0, b.stats.column_events
    assert a.stats == b.stats
    assert (taken > 0) == ("variants" not in cfg)  # variant comparisons need whole events


@pytest.mark.parametrize("labels", [False, True], ids=["plain", "labels-always"])
def test_blocks_after_a_restore_give_the_same_result(labels: bool) -> None:
    """A restored monitor has no layout yet: its first block builds it from its signals."""
    cfg: dict[str, Any] = {"defaults": {**BASE, "labels": {"join": "always"}} if labels else BASE}
    values = traffic(6_000, 5)
    want, a = run(values, cfg, 500, blocks=False)
    restored: list[int] = []
    got, b = run(values, cfg, 500, blocks=True, restore_at=5, columns=restored)
    assert per_key(got) == per_key(want)
    for key in a.monitors:
        assert a.snapshot(key) == b.snapshot(key), key
    plain: list[int] = []
    run(values, cfg, 500, blocks=True, columns=plain)
    assert restored == plain and sum(plain[5:]) > len(values) // 4  # none decoded for the restore


def test_a_new_key_past_the_monitor_cap_is_counted_from_its_block() -> None:
    """A new key's block makes its monitor without being decoded; past ``max_series`` its
    events count as untracked, as whole events would."""
    cfg = {"defaults": BASE, "limits": {"max_series": 20}}
    # not m5: its events with a string take the whole-event path, so they come first in their
    # batch, and which keys fit under the cap would follow the path
    values = [v for i, v in enumerate(traffic(3_000, 6)) if i % 6 != 5]
    want, a = run(values, cfg, 500, blocks=False)
    got, b = run(values, cfg, 500, blocks=True)
    assert per_key(got) == per_key(want)
    assert 0 < len(a.monitors) < 6 and a.monitors.keys() == b.monitors.keys()
    assert a.stats.untracked_events == b.stats.untracked_events > 0
    assert a.stats.untracked_keys == b.stats.untracked_keys


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
