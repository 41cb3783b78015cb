"""A pool's input as :class:`detectors.feeds.Feed` builds it: each segment's values, and the
stream position and event time of every input value, whatever mix of whole and partly used
chunks (rows of a block sharing one column of positions and times, or plain) went in."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from detectors.feeds import Chunk, Feed


def _chunk(rng: np.random.Generator, rows: int, n: int, blocked: bool) -> tuple[Chunk, np.ndarray, np.ndarray]:
    """A chunk of ``rows`` × ``n`` values; (chunk, each value's position, each value's time)."""
    values = rng.normal(size=rows * n)
    pos = rng.integers(0, 10**6, n) if blocked else rng.integers(0, 10**6, rows * n)
    ts = rng.integers(0, 10**12, n) if blocked else rng.integers(0, 10**12, rows * n)
    if blocked:
        return Chunk(values, pos, ts, n), np.tile(pos, rows), np.tile(ts, rows)
    return Chunk(values, pos, ts), pos, ts


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 40))
def test_each_segment_gets_its_values_and_each_value_its_position_and_time(seed: int, n_chunks: int,
                                                                          n_segments: int) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    made = [_chunk(rng, int(rng.integers(1, 12)), int(rng.integers(1, 30)), bool(rng.random() < 0.6))
            for _ in range(n_chunks)]  # fmt: skip
    feed = Feed()
    added: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, Any]] = []
    for k in range(n_segments):
        chunk, pos, ts = made[int(rng.integers(0, n_chunks))]
        row_len = chunk.period or chunk.values.shape[0]
        row = int(rng.integers(0, chunk.values.shape[0] // row_len))
        lo = row * row_len + int(rng.integers(0, row_len))
        hi = int(rng.integers(lo, row * row_len + row_len + 1))
        owner = ("owner", k)
        feed.add(k % 5, chunk, lo, hi, owner)
        if hi > lo:
            added.append((k % 5, chunk.values[lo:hi], pos[lo:hi], ts[lo:hi], owner))
    if not added:
        assert not feed
        return
    res = feed.build()
    seg = res.seg
    assert res.owners == [a[4] for a in added]
    assert seg.series.tolist() == [a[0] for a in added]
    for k, (_, values, pos, ts, _) in enumerate(added):
        a, b = int(seg.start[k]), int(seg.end[k])
        assert np.array_equal(seg.values[a:b], values)
        assert [res.event(i) for i in range(a, b)] == list(zip(pos.tolist(), ts.tolist(), strict=True))
    # at most every chunk whole and every range besides (a chunk copied whole brings unused values)
    assert seg.values.shape[0] <= sum(c.values.shape[0] for c, _, _ in made) + sum(len(a[1]) for a in added)


def test_a_sparsely_used_block_is_copied_only_in_the_used_rows() -> None:
    rng = np.random.default_rng(1)
    chunk, _, _ = _chunk(rng, 11, 500, True)
    feed = Feed()
    feed.add(0, chunk, 10 * 500, 11 * 500, "prediction")  # one row of eleven, as ADWIN takes
    res = feed.build()
    assert res.seg.values.shape[0] == 500
    assert np.array_equal(res.seg.values, chunk.values[5000:5500])
    assert res.event(499) == (int(chunk.pos[499]), int(chunk.ts[499]))
    whole = Feed()
    for r in range(11):  # every row, as PSI takes: the block as it is
        whole.add(r, chunk, r * 500, (r + 1) * 500, r)
    built = whole.build()
    assert np.array_equal(built.seg.values, chunk.values)
    assert built.event(7 * 500 + 3) == (int(chunk.pos[3]), int(chunk.ts[3]))


def test_chunk_events_of_a_row_range() -> None:
    pos, ts = np.arange(10, 15), np.arange(100, 105)
    chunk = Chunk(np.zeros(15), pos, ts, 5)
    got_pos, got_ts = chunk.events(11, 14)
    assert got_pos.tolist() == [11, 12, 13] and got_ts.tolist() == [101, 102, 103]
    assert chunk.event(14) == (14, 104)
    plain = Chunk(np.zeros(5), pos, ts)
    assert plain.events(1, 3)[0].tolist() == [11, 12]
