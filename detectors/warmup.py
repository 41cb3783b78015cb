"""Load (or compile) the numba kernels before the first real batch.

The kernels are compiled with ``cache=True``, but even a cache hit costs ~0.5 s on first call
(numba imports its CPU target and scipy's BLAS shims). Paid inside the first batch, that
delays the first alerts and readiness lies about it; paid at start-up, nobody waits on it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .bank import MonitorBank
from .config import EngineConfig
from .keys import KeyTable, request_keys, span_keys

__all__ = ["warm_kernels"]


def warm_kernels() -> float:
    """Run a throwaway bank over every signal kind once; returns the seconds it took."""
    import time  # noqa: PLC0415

    t0 = time.perf_counter()
    cfg = EngineConfig.from_mapping({
        "defaults": {"warmup_events": 100, "detectors": {"psi": {"window": 10}}},
    })  # fmt: skip
    bank = MonitorBank(cfg, wall_clock_ms=lambda: 0)
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    x[n // 2 :] += 5.0  # a shift, so the detection paths run too
    events = [
        SimpleNamespace(
            model="warmup",
            stage="warmup",
            variant="primary",
            version=None,
            ts=i,
            features={"x": None if i % 7 == 0 else float(x[i]), "c": "ab"[i % 2] if i < n // 2 else "z"},
            prediction=float(x[i]),
            label=None,
            latency_ms=float(i),
        )
        for i in range(n)
    ]
    for lo in range(0, n, 100):
        bank.process(events[lo : lo + 100])
    fresh = MonitorBank(cfg, wall_clock_ms=lambda: 0)
    for key in bank.monitors:
        fresh.restore(bank.snapshot(key))
    fresh.process(events[:10])
    _warm_join()
    return time.perf_counter() - t0


def _warm_join() -> None:
    """The label join's kernels: request keys, and every operation of the key table."""
    keys, checks = request_keys(["a", "b"])
    span_keys(np.frombuffer(b"ab", np.uint8), np.array([[0, 1], [1, 2]], np.int64))
    table = KeyTable()
    codes = np.arange(2, dtype=np.int64)
    table.put(keys, checks, codes)
    table.find(keys, checks)
    table.settle(keys, checks, codes, np.ones(2, np.bool_), np.zeros(1, np.int64), 0, 0)
    table.put(keys, checks, codes)
    table.remove(keys, codes)
    table._resize(4096)  # the fill kernel
