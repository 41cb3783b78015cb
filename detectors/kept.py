"""Kept predictions of one variant in one join segment, stored as columns.

A labelled stage keeps every prediction until its label comes: hundreds of thousands of them.
Each row is four numbers, its request's key and check (see ``detectors.keys``), its event
time and its prediction, in numpy arrays: no Python object per kept prediction. (A dict from
request-id string to row, the form before, cost ~0.3 µs per prediction to build and slowed
the decoding around it.) Rows are found through the join's ``KeyTable``; a row that is taken,
dropped or replaced by a newer prediction of the same request is marked dead. Predictions
that are not all floats (classes as strings, ints, booleans) fall back to a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

__all__ = ["SEGMENT_SIZE", "Column", "Notes", "Segment"]

SEGMENT_SIZE = 1024  # predictions kept per segment (so at most this many rows per column); a power of 2
_FIRST = 64  # rows allocated at first; doubled up to SEGMENT_SIZE (a rare variant stays small)
_NO_TS = 2**63 - 1  # the oldest event time of a segment with no row yet
_BUSY = SEGMENT_SIZE // 4  # a put of this many rows or more grows the column to SEGMENT_SIZE at once


def _floats(values: Sequence[Any]) -> bool:
    return set(map(type, values)) == {float}


class Column:
    """Rows in arrival order; ``alive`` marks the ones still waiting for a label."""

    __slots__ = ("alive", "checks", "keys", "live", "preds", "rows", "ts")

    def __init__(self, first_put: int = 0) -> None:
        """``first_put``: the rows about to be put, if known; a busy variant gets the whole
        segment's room at once instead of growing to it (each growth copies the columns)."""
        rows = SEGMENT_SIZE if first_put >= _BUSY else _FIRST
        self.keys = np.empty(rows, np.int64)
        self.checks = np.empty(rows, np.int64)
        self.ts = np.empty(rows, np.int64)
        self.alive = np.zeros(rows, np.bool_)
        self.preds: np.ndarray | list[Any] = np.empty(rows, np.float64)
        self.rows = 0
        self.live = 0

    def __len__(self) -> int:
        return self.live

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Column):
            return False
        a, b = self.columns(), other.columns()
        return all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3], strict=True)) and list(a[3]) == list(b[3])

    __hash__ = None  # type: ignore[assignment]  # mutable

    def put(self, keys: np.ndarray, checks: np.ndarray, ts: np.ndarray, preds: Sequence[Any] | np.ndarray) -> int:
        """Append live rows; returns the first one's row number."""
        a = self.rows
        b = a + len(keys)
        if b > len(self.ts):
            self._grow(b)
        self.keys[a:b] = keys
        self.checks[a:b] = checks
        self.ts[a:b] = ts
        self.alive[a:b] = True
        if isinstance(preds, np.ndarray):
            if isinstance(self.preds, list):
                preds = preds.tolist()
        elif isinstance(self.preds, np.ndarray) and not _floats(preds):
            self.preds = self.preds[:a].tolist() + [None] * (len(self.ts) - a)
        self.preds[a:b] = preds
        self.rows = b
        self.live += b - a
        return a

    def _grow(self, needed: int) -> None:
        if needed > SEGMENT_SIZE:
            raise ValueError(f"a column holds at most {SEGMENT_SIZE} rows, not {needed}")
        size = len(self.ts)
        while size < needed:
            size *= 2
        if needed >= _BUSY:  # a busy variant: grow once to the whole segment
            size = SEGMENT_SIZE
        more = size - len(self.ts)
        self.keys = np.concatenate([self.keys, np.empty(more, np.int64)])
        self.checks = np.concatenate([self.checks, np.empty(more, np.int64)])
        self.ts = np.concatenate([self.ts, np.empty(more, np.int64)])
        self.alive = np.concatenate([self.alive, np.zeros(more, np.bool_)])
        if type(self.preds) is np.ndarray:
            self.preds = np.concatenate([self.preds, np.empty(more, np.float64)])
        else:
            self.preds += [None] * more

    def kill(self, rows: np.ndarray) -> None:
        """Mark live rows dead (taken, dropped or replaced)."""
        self.alive[rows] = False
        self.live -= len(rows)

    def predictions(self, rows: np.ndarray) -> list[Any]:
        """The predictions of rows, as Python values (floats stay floats, ints ints)."""
        got = self.values(rows)
        return got.tolist() if isinstance(got, np.ndarray) else got

    def values(self, rows: np.ndarray) -> np.ndarray | list[Any]:
        """The predictions of rows: a float array when all are floats, else Python values."""
        preds = self.preds
        return preds[rows] if type(preds) is np.ndarray else [preds[r] for r in rows.tolist()]

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive[: self.rows])

    def items(self) -> Iterator[tuple[int, tuple[int, Any]]]:
        """(key, (ts, prediction)) of the live rows, oldest first."""
        rows = self.live_rows()
        return zip(self.keys[rows].tolist(), zip(self.ts[rows].tolist(), self.predictions(rows), strict=True),
                   strict=True)  # fmt: skip

    def drop_first(self, n: int) -> np.ndarray:
        """Kill the ``n`` oldest live rows (the cap); the rows that went."""
        if n <= 0 or not self.live:
            return np.empty(0, np.intp)
        gone = self.live_rows()[:n]
        self.kill(gone)
        return gone

    def drop_older(self, horizon: int) -> np.ndarray:
        """Kill the oldest live rows until one is not older than ``horizon`` (the TTL; arrival
        order is about event-time order); the rows that went."""
        if not self.live:
            return np.empty(0, np.intp)
        rows = self.live_rows()
        kept = self.ts[rows] >= horizon
        gone = rows[: int(kept.argmax()) if kept.any() else len(rows)]
        self.kill(gone)
        return gone

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | list[Any]]:
        """(keys, checks, event times, predictions) of the live rows, oldest first (views of
        the columns when every row is live: a segment written as it fills)."""
        if self.live == self.rows:
            n = self.rows
            return self.keys[:n], self.checks[:n], self.ts[:n], self.preds[:n]
        rows = self.live_rows()
        return self.keys[rows], self.checks[rows], self.ts[rows], self.values(rows)

    @classmethod
    def of(cls, keys: np.ndarray, checks: np.ndarray, ts: np.ndarray, preds: Sequence[Any] | np.ndarray) -> Column:
        """A column holding these rows (a restored segment record)."""
        col = cls()
        if len(keys):
            col.put(keys, checks, ts, preds if isinstance(preds, np.ndarray) else list(preds))
        return col


class Notes:
    """(request key, variant) of the rows labels took since a segment's record was written, kept
    as the key arrays the takes gave: a head record writes them as arrays, with no Python step
    per note (as a list of tuples, building the labels benchmark's head records took ~50 µs
    each, most of it on the notes)."""

    __slots__ = ("_keys", "_variants", "count")

    def __init__(self) -> None:
        self._keys: list[np.ndarray] = []
        self._variants: list[str] = []
        self.count = 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, str]]) -> Notes:
        """Notes of (key, variant) pairs given one at a time."""
        notes = cls()
        for key, variant in pairs:
            notes.add(np.array([key], np.int64), variant)
        return notes

    @classmethod
    def from_arrays(cls, keys: np.ndarray, variants: np.ndarray, names: list[str]) -> Notes:
        """Notes of :meth:`arrays`' form (variants as indices into ``names``)."""
        notes = cls()
        if len(keys):
            cuts = np.flatnonzero(np.diff(variants)) + 1
            for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(keys)], strict=True):
                notes.add(keys[a:b].astype(np.int64), names[int(variants[a])])
        return notes

    def add(self, keys: np.ndarray, variant: str) -> None:
        self._keys.append(keys)
        self._variants.append(variant)
        self.count += len(keys)

    def arrays(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(keys, variant indices into ``names``), in the order noted."""
        if not self._keys:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        which = np.array([names.index(v) for v in self._variants], np.int64)
        return np.concatenate(self._keys), np.repeat(which, [len(k) for k in self._keys])

    def by_variant(self) -> dict[str, np.ndarray]:
        """The noted keys of each variant (to apply to an older record of the segment)."""
        out: dict[str, list[np.ndarray]] = {}
        for keys, variant in zip(self._keys, self._variants, strict=True):
            out.setdefault(variant, []).append(keys)
        return {v: np.concatenate(ks) for v, ks in out.items()}

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for keys, variant in zip(self._keys, self._variants, strict=True):
            yield from zip(keys.tolist(), repeat(variant))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Notes) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable


@dataclass(slots=True)
class Segment:
    """A run of kept predictions in arrival order, per variant; a state record of its own.

    ``id`` is reused once the segment is gone (so a stage's records stay few), ``gen`` never is:
    a record whose generation the join does not list is stale and ignored on restore.
    """

    id: int
    gen: int
    entries: dict[str, Column] = field(default_factory=dict)  # variant -> its predictions
    removed: Notes = field(default_factory=Notes)  # taken since its record was written
    rent: int = 0  # notes written with the join's record since this segment's own was
    # no row of it is older (event time): a cheap test before looking for expired rows
    low: int = field(default=_NO_TS, compare=False)

    def __len__(self) -> int:
        return sum(map(len, self.entries.values()))

    def written(self) -> None:
        """Its record is being written anew: the notes and their rent start over."""
        self.removed = Notes()
        self.rent = 0
