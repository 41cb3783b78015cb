"""Metric helpers (pure: no broker, no HTTP server)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from streams.observe import observe_many

BUCKETS = (1, 10, 60, 300)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    r = CollectorRegistry()
    return r, Histogram("delay_seconds", "d", buckets=BUCKETS, registry=r)


def test_observe_many_exposes_what_observing_one_by_one_does() -> None:
    values = np.random.default_rng(1).exponential(40, 5_000)
    values[:4] = [0, 1, 10, 300]  # on the bounds: le is inclusive
    values[4] = 1e9  # past the last bound
    one, h1 = _histogram()
    for v in values.tolist():
        h1.observe(v)
    many, h2 = _histogram()
    observe_many(h2, values[:3000])
    observe_many(h2, values[3000:])
    observe_many(h2, [])
    samples = {s.name + str(s.labels): s.value for m in many.collect() for s in m.samples if "created" not in s.name}
    expected = {s.name + str(s.labels): s.value for m in one.collect() for s in m.samples if "created" not in s.name}
    assert samples.keys() == expected.keys() and expected["delay_seconds_count{}"] == 5_000
    for k, v in expected.items():
        assert np.isclose(samples[k], v, rtol=1e-12), k
