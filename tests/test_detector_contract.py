"""The contract every detector passes: river's defaults, river's detections whatever the batch
sizes, snapshot-then-continue equal to an uninterrupted run, and bounded memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from river import drift

from detectors import ADWIN, PageHinkley, SnapshotError

DETECTORS: list[tuple[type[Any], Callable[..., Any]]] = [(PageHinkley, drift.PageHinkley), (ADWIN, drift.ADWIN)]
PARAMS = {
    PageHinkley: ["min_instances", "delta", "threshold", "alpha", "mode"],
    ADWIN: ["delta", "clock", "max_buckets", "min_window_length", "grace_period"],
}


def river_positions(det: Any, values: np.ndarray) -> list[int]:
    out = []
    for i, x in enumerate(values.tolist()):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out


def bulk_positions(det: Any, values: np.ndarray, cuts: list[int]) -> list[int]:
    out: list[int] = []
    pos = 0
    for cut in [*cuts, len(values)]:
        end = min(max(cut, pos), len(values))
        out += (pos + det.update_many(values[pos:end])).tolist()
        pos = end
    return out


def stream(seed: int, n: int, shifts: int, scale: float) -> np.ndarray:
    """Piecewise-Gaussian stream with ``shifts`` random level changes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, scale, n)
    for at in rng.integers(0, n, shifts):
        x[at:] += rng.normal(0.0, 3 * scale)
    return x


@pytest.mark.parametrize(("ours", "theirs"), DETECTORS, ids=["page_hinkley", "adwin"])
def test_defaults_match_river(ours: type[Any], theirs: Callable[..., Any]) -> None:
    a, b = ours(), theirs()
    for name in PARAMS[ours]:
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize(("ours", "theirs"), DETECTORS, ids=["page_hinkley", "adwin"])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 6000),
    shifts=st.integers(0, 4),
    scale=st.sampled_from([1e-3, 1.0, 250.0]),
    cuts=st.lists(st.integers(0, 6000), max_size=12).map(sorted),
)
def test_parity_with_river_in_any_batches(
    ours: type[Any], theirs: Callable[..., Any], seed: int, n: int, shifts: int, scale: float, cuts: list[int]
) -> None:
    x = stream(seed, n, shifts, scale)
    assert bulk_positions(ours(), x, cuts) == river_positions(theirs(), x)


@given(
    seed=st.integers(0, 2**32 - 1),
    delta=st.sampled_from([0.0, 0.005, 0.5]),
    threshold=st.sampled_from([1.0, 10.0, 50.0]),
    alpha=st.sampled_from([1.0, 0.999, 1 - 1e-4]),
    mode=st.sampled_from(["up", "down", "both"]),
    min_instances=st.integers(1, 60),
)
def test_page_hinkley_parity_across_parameters(
    seed: int, delta: float, threshold: float, alpha: float, mode: str, min_instances: int
) -> None:
    x = stream(seed, 3000, 3, 1.0)
    kw = dict(min_instances=min_instances, delta=delta, threshold=threshold, alpha=alpha, mode=mode)
    assert bulk_positions(PageHinkley(**kw), x, [700, 701, 2000]) == river_positions(drift.PageHinkley(**kw), x)


@given(
    seed=st.integers(0, 2**32 - 1),
    delta=st.sampled_from([1e-5, 0.002, 0.1]),
    clock=st.sampled_from([1, 4, 32]),
    max_buckets=st.integers(2, 7),
    min_window_length=st.integers(1, 20),
    grace_period=st.integers(0, 50),
    binary=st.booleans(),
)
def test_adwin_parity_across_parameters(
    seed: int, delta: float, clock: int, max_buckets: int, min_window_length: int, grace_period: int, binary: bool
) -> None:
    x = stream(seed, 3000, 3, 1.0)
    if binary:  # a missing-indicator-like 0/1 stream, with long runs of zeros
        x = (x > 2.0).astype(float)
    kw = dict(delta=delta, clock=clock, max_buckets=max_buckets)
    kw.update(min_window_length=min_window_length, grace_period=grace_period)
    assert bulk_positions(ADWIN(**kw), x, [999, 1500]) == river_positions(drift.ADWIN(**kw), x)


@pytest.mark.parametrize("ours", [PageHinkley, ADWIN], ids=["page_hinkley", "adwin"])
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 5000))
def test_snapshot_then_continue_equals_uninterrupted(ours: type[Any], seed: int, cut: int) -> None:
    x = stream(seed, 5000, 3, 1.0)
    whole = ours().update_many(x).tolist()
    first = ours()
    head = first.update_many(x[:cut]).tolist()
    resumed = ours.restore(first.snapshot())
    tail = (cut + resumed.update_many(x[cut:])).tolist()
    assert head + tail == whole


@pytest.mark.parametrize("ours", [PageHinkley, ADWIN], ids=["page_hinkley", "adwin"])
def test_update_one_value_matches_update_many(ours: type[Any]) -> None:
    x = stream(7, 3000, 2, 1.0)
    one = ours()
    flags = [one.update(v) for v in x.tolist()]
    assert np.flatnonzero(flags).tolist() == ours().update_many(x).tolist()
    assert one.drift_detected == flags[-1]


@pytest.mark.parametrize("ours", [PageHinkley, ADWIN], ids=["page_hinkley", "adwin"])
def test_memory_is_bounded(ours: type[Any]) -> None:
    """State stays small after a long stationary stream: ADWIN grows with log2 of its window."""
    det = ours()
    det.update_many(np.random.default_rng(1).normal(size=1_000_000))
    limit = 200 if ours is PageHinkley else 4096
    assert det.nbytes() <= limit
    assert len(det.snapshot()) <= limit + 1024


@pytest.mark.parametrize("ours", [PageHinkley, ADWIN], ids=["page_hinkley", "adwin"])
def test_restore_rejects_foreign_snapshots(ours: type[Any]) -> None:
    other = ADWIN if ours is PageHinkley else PageHinkley
    with pytest.raises(SnapshotError):
        ours.restore(other().snapshot())
    with pytest.raises(SnapshotError):
        ours.restore(b"garbage")
