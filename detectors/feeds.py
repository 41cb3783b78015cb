"""Per-batch collection of detector input across all monitors, for one kernel call per pool.

Values arrive as chunks (a group's whole block of columns, or a warm-up buffer being
replayed); segments point into them by offset. A chunk is copied into the pool's input
only if some segment uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .segments import Segments

__all__ = ["Chunk", "Feed", "FeedResult"]


@dataclass(slots=True, eq=False)
class Chunk:
    """Values with each value's stream position and event time."""

    values: np.ndarray
    pos: np.ndarray
    ts: np.ndarray


@dataclass(slots=True)
class FeedResult:
    """The concatenated input of one pool call, and who owns each segment."""

    seg: Segments
    pos: np.ndarray
    ts: np.ndarray
    owners: list[Any]


@dataclass(slots=True)
class Feed:
    """Segments for one pool, processed in the order they were added."""

    dtype: type = np.float64
    _chunks: list[Chunk] = field(default_factory=list)
    _base: dict[int, int] = field(default_factory=dict)
    _size: int = 0
    series: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    owners: list[Any] = field(default_factory=list)

    def add(self, series: int, chunk: Chunk, lo: int, hi: int, owner: Any) -> None:
        """Feed ``chunk.values[lo:hi]`` to ``series`` after everything added before."""
        if hi <= lo:
            return
        base = self._base.get(id(chunk))
        if base is None:
            base = self._base[id(chunk)] = self._size
            self._chunks.append(chunk)
            self._size += chunk.values.shape[0]
        self.series.append(series)
        self.start.append(base + lo)
        self.end.append(base + hi)
        self.owners.append(owner)

    def __bool__(self) -> bool:
        return bool(self.series)

    def build(self) -> FeedResult:
        values: np.ndarray = np.concatenate([c.values for c in self._chunks]).astype(self.dtype, copy=False)
        seg = Segments(
            np.ascontiguousarray(values),
            np.asarray(self.series, dtype=np.int64),
            np.asarray(self.start, dtype=np.int64),
            np.asarray(self.end, dtype=np.int64),
        )
        pos = np.concatenate([c.pos for c in self._chunks])
        ts = np.concatenate([c.ts for c in self._chunks])
        return FeedResult(seg, pos, ts, self.owners)
