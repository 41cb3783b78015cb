"""Benchmarks: figures beside a baseline measured in the same run (never a timed test).

    python -m loadtest.bench engine [--quick] [--json FILE]
    python -m loadtest.bench processor [--broker tansu|apache|HOST:PORT] [--events N] [--quick]
    python -m loadtest.bench labels [--broker tansu|apache|HOST:PORT] [--events N] [--quick]
    python -m loadtest.bench faust [--broker tansu|apache|HOST:PORT] [--events N] [--quick]

Each figure is the best of a few repeats on one core; the machine is noisy, so the ratios
matter more than the absolute rates.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from river import drift

from detectors import ADWIN, EngineConfig, MonitorBank, PageHinkley, WindowedPSI
from schemas import PredictionEvent

__all__ = ["main"]


def _best(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _events(n: int, keys: int, features: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, features)).tolist()
    names = [f"f{j}" for j in range(features)]
    return [
        PredictionEvent(model=f"model{i % keys}", stage="stage", features=dict(zip(names, rows[i], strict=True)), ts=i)
        for i in range(n)
    ]


def bench_detectors(n: int, repeats: int) -> dict[str, float]:
    x = np.random.default_rng(1).normal(size=n)
    xs = x.tolist()
    out: dict[str, float] = {}

    def river_loop(make: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            det = make()
            for v in xs:
                det.update(v)
                _ = det.drift_detected

        return run

    for warm in (PageHinkley(), ADWIN()):  # load the compiled kernels before timing
        warm.update_many(x[:1000])
    pairs: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("page_hinkley", PageHinkley, drift.PageHinkley),
        ("adwin", ADWIN, drift.ADWIN),
    ]
    for name, ours, theirs in pairs:
        base = n / _best(river_loop(theirs), repeats)
        fast = n / _best(lambda ours=ours: ours().update_many(x), repeats)  # type: ignore[misc]
        out[f"{name}_river_values_per_s"] = base
        out[f"{name}_bulk_values_per_s"] = fast
        out[f"{name}_speedup"] = fast / base
    psi = WindowedPSI.from_values(np.random.default_rng(2).normal(size=10_000), window=10_000)
    big = np.tile(x, max(1, 10_000_000 // n))
    psi.update_many(big[:20_000])
    out["psi_values_per_s"] = big.shape[0] / _best(lambda: psi.update_many(big), repeats)
    return out


def _river_event_loop(events: list[Any], features: int) -> Callable[[], None]:
    """Baseline: per event, per feature, river ADWIN and Page-Hinkley plus PSI by bisect."""

    def run() -> None:
        edges = list(np.quantile(np.random.default_rng(3).normal(size=10_000), np.linspace(0, 1, 11)[1:-1]))
        dets: dict[tuple[str, str], list[Any]] = {}
        for e in events:
            for name, v in e.features.items():
                d = dets.get((e.model, name))
                if d is None:
                    # river's ADWIN constructor is untyped
                    adwin = drift.ADWIN(delta=1e-5)  # type: ignore[no-untyped-call]
                    d = dets[(e.model, name)] = [adwin, drift.PageHinkley(), [0] * 11, 0]
                d[0].update(v)
                d[1].update(v)
                d[2][bisect.bisect_right(edges, v)] += 1
                d[3] += 1
                if d[3] == 1000:
                    d[2] = [0] * 11
                    d[3] = 0

    return run


def bench_bank(n: int, keys: int, features: int, repeats: int, baseline_n: int) -> dict[str, float]:
    events = _events(n, keys, features)
    warm = _events(keys * 1000 + 10_000, keys, features, seed=5)
    out: dict[str, float] = {}
    configs: dict[str, dict[str, Any]] = {
        "spec": {"signals": {"missing": False, "prediction": False, "latency": False}, "warmup_events": 1000},
        "default_signals": {"warmup_events": 1000},
    }
    for label, defaults in configs.items():

        def run(defaults: dict[str, Any] = defaults) -> None:
            bank = MonitorBank(EngineConfig.from_mapping({"defaults": defaults}))
            for b in range(0, len(warm), 10_000):
                bank.process(warm[b : b + 10_000])
            t = time.perf_counter()
            for b in range(0, n, 10_000):
                bank.process(events[b : b + 10_000])
            run.elapsed = time.perf_counter() - t  # type: ignore[attr-defined]

        best = float("inf")
        for _ in range(repeats):
            run()
            best = min(best, run.elapsed)  # type: ignore[attr-defined]
        out[f"bank_{label}_events_per_s"] = n / best
    base = baseline_n / _best(_river_event_loop(events[:baseline_n], features), 1)
    out["river_per_event_loop_events_per_s"] = base
    out["bank_spec_vs_river_loop"] = out["bank_spec_events_per_s"] / base
    return out


def bench_memory(monitors: int, per_monitor: int, features: int) -> dict[str, float]:
    """Bytes per monitor after ``per_monitor`` events each, all default detectors."""
    events = _events(monitors * per_monitor, monitors, features, seed=7)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    bank = MonitorBank(EngineConfig())
    for b in range(0, len(events), 10_000):
        bank.process(events[b : b + 10_000])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    snap = sum(len(bank.snapshot(k)) for k in bank.monitors) / monitors
    return {
        "bytes_per_monitor": (after - before) / monitors,
        "detector_state_bytes_per_monitor": bank.nbytes() / monitors,
        "snapshot_bytes_per_monitor": snap,
    }


def engine(quick: bool) -> dict[str, float]:
    r = 1 if quick else 3
    figures: dict[str, float] = {}
    figures |= bench_detectors(200_000 if quick else 1_000_000, r)
    figures |= bench_bank(100_000 if quick else 400_000, 60, 10, r, 5_000 if quick else 20_000)
    figures |= bench_memory(5 if quick else 10, 100_000, 10)
    return figures


def _on_broker(broker: str, run: Callable[[str], dict[str, float]]) -> dict[str, float]:
    if broker == "tansu":
        from streams.broker import EmbeddedBroker  # noqa: PLC0415

        with EmbeddedBroker() as b:
            return run(b.bootstrap)
    if broker == "apache":
        from tests.brokers.apache import ApacheKafka  # noqa: PLC0415  (launcher lives with the tests)

        with ApacheKafka(heap="1g") as k:
            return run(k.bootstrap)
    return run(broker)


def processor(broker: str, events: int, quick: bool) -> dict[str, float]:
    from .bench_processor import bench_processor  # noqa: PLC0415

    n = 200_000 if quick else events
    latency_s = 8.0 if quick else 20.0
    return _on_broker(broker, lambda bootstrap: bench_processor(bootstrap, n, latency_s=latency_s))


def labels(broker: str, events: int, quick: bool) -> dict[str, float]:
    from .bench_labels import bench_labels  # noqa: PLC0415

    n = 200_000 if quick else min(events, 600_000)
    if quick:
        return _on_broker(broker, lambda bootstrap: bench_labels(bootstrap, n, repeats=1))
    return _on_broker(broker, lambda bootstrap: bench_labels(bootstrap, n))  # its default: 5 pairs


def faust(broker: str, events: int, quick: bool) -> dict[str, float]:
    from .bench_faust import bench_faust  # noqa: PLC0415

    n = 50_000 if quick else min(events, 300_000)
    return _on_broker(broker, lambda bootstrap: bench_faust(bootstrap, n, repeats=1 if quick else 2))


def _print(figures: dict[str, float]) -> None:
    for k, v in figures.items():
        if k.endswith(("speedup", "_vs_river_loop")):
            print(f"{k:45s} {v:>16,.1f}x")
        elif k.endswith(("_ms", "_percent")):
            print(f"{k:45s} {v:>16,.1f}")
        else:
            print(f"{k:45s} {v:>16,.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    ap.add_argument("what", choices=["engine", "processor", "labels", "faust"])
    ap.add_argument("--broker", default="tansu", help="processor: tansu (embedded), apache (Maven jars) or HOST:PORT")
    ap.add_argument("--events", type=int, default=1_000_000,
                    help="events in the throughput run (labels: 600,000 at most; faust: 300,000)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="smaller runs, one repeat (a smoke check)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.what == "engine":
        figures = engine(args.quick)
    elif args.what == "processor":
        figures = processor(args.broker, args.events, args.quick)
    elif args.what == "labels":
        figures = labels(args.broker, args.events, args.quick)
    else:
        figures = faust(args.broker, args.events, args.quick)
    _print(figures)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
