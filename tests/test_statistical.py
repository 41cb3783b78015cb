"""Statistical behaviour of the default monitor, with fixed seeds.

Budget: at most one false alert per signal per million stationary events (firing alerts,
all detectors of the signal together). Delay: a 1-sigma mean shift is alerted within 300
events of the key's stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent

Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]
DISTRIBUTIONS: dict[str, Draw] = {
    "gaussian": lambda r, s: r.normal(5.0, 2.0, s),
    "lognormal": lambda r, s: r.lognormal(0.0, 0.75, s),
    "poisson": lambda r, s: r.poisson(4.0, s).astype(float),
    "cents_and_millions": lambda r, s: r.normal(0.0, 1.0, s) * np.array([0.01, 1e6, 1.0, 1e-4])[: s[1]] + 3,
}


def events(values: np.ndarray, keys: int, start: int = 0) -> list[PredictionEvent]:
    n, k = values.shape
    rows = values.tolist()
    return [
        PredictionEvent(
            model=f"m{i % keys}", stage="s", features={f"f{j}": rows[i][j] for j in range(k)}, ts=(start + i) * 10
        )
        for i in range(n)
    ]


def run(bank: MonitorBank, evs: list[PredictionEvent], batch: int = 10_000) -> list[dict]:
    alerts = []
    for b in range(0, len(evs), batch):
        alerts += bank.process(evs[b : b + batch]).alerts
    return alerts


@pytest.mark.slow
@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("seed", [11, 12])
def test_false_alert_budget_on_stationary_streams(dist: str, seed: int) -> None:
    keys, features, per_key = 4, 4, 150_000
    rng = np.random.default_rng(seed)
    values = DISTRIBUTIONS[dist](rng, (keys * per_key, features))
    bank = MonitorBank(EngineConfig())
    alerts = [a for a in run(bank, events(values, keys)) if a["status"] == "firing"]
    signals = bank.stats.series  # value and missing-indicator signals
    budget = signals * per_key / 1_000_000  # one per signal per million events
    assert len(alerts) <= budget, [(a["model"], a["signal"], a["detector"], a["statistic"]) for a in alerts]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_one_sigma_shift_is_caught_within_300_events(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys, before, after = 3, 12_000, 2_000
    values = rng.normal(10.0, 3.0, ((before + after) * keys, 3))
    shifted = np.arange(len(values))
    values[(shifted >= before * keys) & (shifted % keys == 1), 2] += 3.0  # model m1, f2, +1 sigma
    bank = MonitorBank(EngineConfig())
    alerts = [a for a in run(bank, events(values, keys)) if a["status"] == "firing"]
    assert {(a["model"], a["signal"]) for a in alerts} == {("m1", "feature:f2")}
    delay = min(a["window"]["last_position"] for a in alerts) - before
    assert 0 <= delay <= 300
