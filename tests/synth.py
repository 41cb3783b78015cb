"""Small synthetic event streams for engine tests (the full generator lives in loadtest/)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from schemas import PredictionEvent

Mutator = Callable[[int, int, dict], None]  # (event index, key index, features) -> None


def stream(
    n: int,
    *,
    keys: int = 4,
    features: int = 3,
    seed: int = 0,
    mutate: Mutator | None = None,
    latency: bool = False,
    prediction: bool = False,
    ms_per_event: int = 10,
) -> list[PredictionEvent]:
    """Stationary unit Gaussians, round-robin over ``keys`` models; ``mutate`` injects drift."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    lat = rng.gamma(4.0, 5.0, size=n)
    out = []
    for i in range(n):
        k = i % keys
        f: dict = {f"f{j}": float(x[i, j]) for j in range(features)}
        ev = PredictionEvent(model=f"model{k}", stage="stage", features=f, ts=1_700_000_000_000 + i * ms_per_event)
        if latency:
            ev.latency_ms = float(lat[i])
        if prediction:
            ev.prediction = float(x[i, 0] > 0)
        if mutate is not None:
            mutate(i, k, f)
            if latency and "_latency" in f:
                ev.latency_ms = f.pop("_latency")
        out.append(ev)
    return out


def in_batches(bank, events, size: int):  # type: ignore[no-untyped-def]
    alerts, summaries = [], []
    for b in range(0, len(events), size):
        out = bank.process(events[b : b + size])
        alerts += out.alerts
        summaries += out.summaries
    return alerts, summaries
