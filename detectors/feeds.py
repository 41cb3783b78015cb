"""Per-batch collection of detector input across all monitors, for one kernel call per pool.

Values arrive as chunks (a group's whole block of columns, a label signal's joined pairs, or a
warm-up buffer being replayed); segments point into them. A pool's input is one array: a chunk
that the pool's segments use at least half of is copied whole, the others only in the ranges
used (the change-point pools take one row, the prediction, of a block of a dozen signals).

Stream positions and event times are not copied at all: the alert lifecycle needs them only
where a detector fired, so :meth:`FeedResult.event` looks them up in the chunk. A block's rows
share one column of each (``Chunk.period``) instead of a copy per row. Before, every batch
copied each value's position and time into every pool's input: most of the memory a batch
wrote, and what slowed first when the machine's memory was busy.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .segments import Segments

__all__ = ["Chunk", "Feed", "FeedResult"]


@dataclass(slots=True, eq=False)
class Chunk:
    """Values with each value's stream position and event time. With ``period`` > 0 the values
    are rows of ``period`` (a group's block: one row per signal) and ``pos`` and ``ts`` hold one
    row's worth, shared by every row."""

    values: np.ndarray
    pos: np.ndarray
    ts: np.ndarray
    period: int = 0

    def events(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, event times) of ``values[lo:hi]``, which lie within one row."""
        if self.period:
            first = lo - lo % self.period
            lo, hi = lo - first, hi - first
        return self.pos[lo:hi], self.ts[lo:hi]

    def event(self, i: int) -> tuple[int, int]:
        """(position, event time) of ``values[i]``."""
        if self.period:
            i %= self.period
        return int(self.pos[i]), int(self.ts[i])


@dataclass(slots=True)
class FeedResult:
    """The concatenated input of one pool call, and who owns each segment."""

    seg: Segments
    owners: list[Any]
    # where the input's values came from: region k starts at input index starts[k] and is
    # chunks[k]'s values from index firsts[k] on
    _starts: list[int]
    _chunks: list[Chunk]
    _firsts: list[int]

    def event(self, i: int) -> tuple[int, int]:
        """(stream position, event time) of the input's value ``i``."""
        k = bisect_right(self._starts, i) - 1
        return self._chunks[k].event(self._firsts[k] + i - self._starts[k])


@dataclass(slots=True)
class Feed:
    """Segments for one pool, processed in the order they were added."""

    dtype: type = np.float64
    _chunks: list[Chunk] = field(default_factory=list)
    _index: dict[int, int] = field(default_factory=dict)  # id(chunk) -> its place in _chunks
    chunk_of: list[int] = field(default_factory=list)  # per segment: its chunk's place
    series: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)  # per segment, in its chunk's values
    end: list[int] = field(default_factory=list)
    owners: list[Any] = field(default_factory=list)

    def add(self, series: int, chunk: Chunk, lo: int, hi: int, owner: Any) -> None:
        """Feed ``chunk.values[lo:hi]`` to ``series`` after everything added before."""
        if hi <= lo:
            return
        at = self._index.get(id(chunk))
        if at is None:
            at = self._index[id(chunk)] = len(self._chunks)
            self._chunks.append(chunk)
        self.chunk_of.append(at)
        self.series.append(series)
        self.start.append(lo)
        self.end.append(hi)
        self.owners.append(owner)

    def __bool__(self) -> bool:
        return bool(self.series)

    def build(self) -> FeedResult:
        chunks = self._chunks
        of = np.asarray(self.chunk_of, dtype=np.int64)
        lo = np.asarray(self.start, dtype=np.int64)
        hi = np.asarray(self.end, dtype=np.int64)
        sizes = np.fromiter((c.values.shape[0] for c in chunks), np.int64, len(chunks))
        used = np.bincount(of, weights=hi - lo, minlength=len(chunks))
        whole = 2 * used >= sizes
        # the whole chunks first, in order, then the used ranges of the others, in segment order
        offset = np.zeros(len(chunks), np.int64)
        np.cumsum(np.where(whole, sizes, 0)[:-1], out=offset[1:])
        in_whole = whole[of]
        if in_whole.all():
            start = offset[of] + lo
            parts = [c.values for c in chunks]
            starts, sources, firsts = offset.tolist(), chunks, [0] * len(chunks)
        else:
            lens = np.where(in_whole, 0, hi - lo)
            cut = np.cumsum(lens) - lens + int(sizes[whole].sum())
            start = np.where(in_whole, offset[of] + lo, cut)
            kept = np.flatnonzero(whole).tolist()
            ranges = np.flatnonzero(~in_whole).tolist()
            pieces = zip(of[ranges].tolist(), lo[ranges].tolist(), hi[ranges].tolist(), strict=True)
            parts = [chunks[i].values for i in kept] + [chunks[c].values[a:b] for c, a, b in pieces]
            starts = offset[kept].tolist() + cut[ranges].tolist()
            sources = [chunks[i] for i in kept] + [chunks[c] for c in of[ranges].tolist()]
            firsts = [0] * len(kept) + lo[ranges].tolist()
        values: np.ndarray = np.concatenate(parts).astype(self.dtype, copy=False)
        seg = Segments(np.ascontiguousarray(values), np.asarray(self.series, dtype=np.int64), start, start + hi - lo)
        return FeedResult(seg, self.owners, starts, sources, firsts)
