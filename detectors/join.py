"""Labels meet their predictions: the join by ``request_id`` of one (model, stage).

A label names a request, not a variant: with a canary only one variant scored the request, in
shadow mode both did, so one join per (model, stage) holds every variant's predictions and a
label yields an outcome for each variant that has one.

Labels arrive late (minutes to days) and from another topic, so both sides wait:

- a prediction with a ``request_id`` waits (is kept) until its label comes, its event
  time is ``ttl`` older than the newest prediction (``expired``, i.e. never labelled), or the
  cap pushes it out (``evicted``, the oldest first);
- a label waits in ``waiting``, in arrival order, until a prediction is found or the newest
  prediction is ``wait`` past the label's event time (``unmatched``).

Outcomes leave in the labels' arrival order and a label that waits holds the ones behind it:
the sequence of outcomes, and so every detection on it, does not depend on how labels and
predictions fall into batches, as long as a prediction is no later than ``wait`` in event time.
Within a batch, labels queue before its predictions are noted, and matching happens after both.
Labels given inline in a prediction event join on the spot, in stream order.

``auto`` mode keeps predictions only once the stage has seen a label, from ``wait`` after that
label's event time (so the start does not depend on batching): a model without labels costs
nothing. Labels older than that cannot meet their predictions and count as unmatched.

Kept predictions live in segments of ``SEGMENT_SIZE`` in arrival order, each a state record of
its own next to the join's small head record: a checkpoint writes the segments that changed
(the newest, and the ones the TTL or the cap touched), not all of a stage's up to
``max_pending`` predictions. Requests are found by key (``detectors.keys``) through one table
per join; a repeated request_id replaces the prediction kept for it. The prediction a label
takes is noted in the head record instead of rewriting its segment (labels come
hours late, each in another old segment). Each checkpoint that writes the head pays again for
every note in it, so the segment is written anew once the notes written so far outweigh its
live rows ``RENT`` times (rent or buy: never more than about twice the cheaper of the two), or
once its notes outnumber its live rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from .config import LabelSettings
from .join_records import head_record, read_head, read_segment, segment_record
from .kept import SEGMENT_SIZE, Column, Segment
from .keys import KeyTable, request_keys, salt
from .outcomes import Outcome, Outcomes
from .waiting import LabelQueue

__all__ = ["RENT", "SEGMENT_SIZE", "Column", "JoinStats", "LabelJoin", "Outcome", "Outcomes", "Segment"]


@dataclass(slots=True)
class JoinStats:
    """Counters of one bank's joins; monotonic. A label counts once, however many variants it met."""

    joined: int = 0
    inline: int = 0
    expired: int = 0
    evicted: int = 0
    unmatched: int = 0
    late: int = 0
    delays_ms: list[int] = field(default_factory=list)  # of joined labels since the last take

    def take_delays(self) -> list[int]:
        out, self.delays_ms = self.delays_ms, []
        return out


Pending = dict[tuple[int, str], tuple[int, Any]]  # (request key, variant) -> (ts, prediction)

RENT = 2  # notes written (summed over checkpoints) per live row before a segment is written anew
_RID = attrgetter("request_id")
_LABEL = attrgetter("label")
_PREDICTION = attrgetter("prediction")
_TS = attrgetter("ts")
_ORDER = itemgetter(0, 1)
_GEN_SHIFT = SEGMENT_SIZE.bit_length() - 1  # a row code's generation (SEGMENT_SIZE is a power of 2)
_SALTS: dict[int, np.ndarray] = {}  # variants in a join -> their salts (shared: never written)


@dataclass(slots=True)
class LabelJoin:
    """Both sides of one (model, stage)'s join (see the module doc)."""

    settings: LabelSettings
    active: bool = False
    since_ts: int = -1  # event time from which predictions are kept (auto mode)
    watermark: int = -1  # newest prediction event time
    variants: list[str] = field(default_factory=list)  # in the order first seen
    segments: list[Segment] = field(default_factory=list)  # oldest first; the last one takes new predictions
    open_inserts: int = 0  # predictions put into the last segment (it closes at SEGMENT_SIZE)
    next_gen: int = 0
    waiting: LabelQueue = field(default_factory=LabelQueue)
    changed: set[int] = field(default_factory=set)  # ids of segments changed since the last take
    table: KeyTable = field(default_factory=KeyTable)  # key ^ variant salt -> row code (gen, row)
    by_gen: dict[int, Segment] = field(default_factory=dict)  # the live segments by generation
    emptied: bool = False  # a label took a segment's last prediction: drop it at the next drain

    def __post_init__(self) -> None:
        if self.settings.join == "always":
            self.active = True

    @property
    def size(self) -> int:
        """Predictions waiting for a label."""
        return sum(map(len, self.segments))

    @property
    def pending(self) -> Pending:
        """Every kept prediction by its request's key (``request_key(rid)[0]``), oldest first
        (a copy, for inspection)."""
        return {(k, v): kept for s in self.segments for v, c in s.entries.items() for k, kept in c.items()}

    def predictions(self, events: Sequence[Any], variant: str, ts: np.ndarray, stats: JoinStats) -> None:
        """Note a batch of one variant's prediction events (stream order; ``ts`` their event times)."""
        if self.settings.join == "off":
            return
        self.unlabelled(variant, ts)
        labels = list(map(_LABEL, events))
        if labels.count(None) == len(labels):  # the common batch, in C-level steps
            if self.active:
                rids = list(map(_RID, events))
                if None not in rids and int(ts.min()) >= self.since_ts:
                    self._keep(variant, *request_keys(rids), ts, list(map(_PREDICTION, events)))
                    return
            else:
                return
        keep: list[tuple[str, int, Any]] = []
        for e in events:
            if e.label is not None:
                self.waiting.push_inline(e.label, e.ts, (variant, e.ts, e.prediction))
                stats.inline += 1
            elif e.request_id is not None and e.ts >= self.since_ts:
                keep.append((e.request_id, e.ts, e.prediction))
        if self.active and keep:
            rids, tss, preds = (list(c) for c in zip(*keep, strict=True))
            self._keep(variant, *request_keys(rids), np.array(tss, dtype=np.int64), preds)

    def unlabelled(self, variant: str, ts: np.ndarray) -> None:
        """Note predictions with neither a request_id nor a label: nothing to keep, but their
        variant and event times count (label waits and expiry follow the watermark)."""
        if self.settings.join == "off":
            return
        if variant not in self.variants:
            self.variants.append(variant)
        self.watermark = max(self.watermark, int(ts.max()))

    def requested(
        self, variant: str, ts: np.ndarray, keys: Callable[[], tuple[np.ndarray, np.ndarray]],
        preds: Callable[[], list[Any] | np.ndarray],
    ) -> None:  # fmt: skip
        """Note a column block of predictions that all carry a request_id and no label, as
        :meth:`predictions` would: kept once the join is active. ``keys`` (the request ids'
        keys and checks) and ``preds`` are read only then."""
        if self.settings.join == "off":
            return
        self.unlabelled(variant, ts)
        if not self.active:
            return
        (ks, cs), values = keys(), preds()
        if int(ts.min()) < self.since_ts:
            fresh = ts >= self.since_ts
            if not fresh.any():
                return
            ks, cs, ts = ks[fresh], cs[fresh], ts[fresh]
            values = values[fresh] if isinstance(values, np.ndarray) else [
                v for v, f in zip(values, fresh.tolist(), strict=True) if f]  # fmt: skip
        self._keep(variant, ks, cs, ts, values)

    def _keep(
        self, variant: str, keys: np.ndarray, checks: np.ndarray, tss: np.ndarray, preds: Sequence[Any] | np.ndarray
    ) -> None:  # fmt: skip
        """Append to the open segment, opening new ones every SEGMENT_SIZE predictions; a
        repeated request_id replaces the prediction kept for it."""
        done, n = 0, len(keys)
        salted = keys ^ self._salt(variant)
        while done < n:
            if not self.segments or self.open_inserts >= SEGMENT_SIZE:
                used = {s.id for s in self.segments}
                seg = Segment(next(i for i in count() if i not in used), self.next_gen)
                self.segments.append(seg)
                self.by_gen[seg.gen] = seg
                self.next_gen += 1
                self.open_inserts = 0
            seg = self.segments[-1]
            take = min(SEGMENT_SIZE - self.open_inserts, n - done)
            col = seg.entries.get(variant)
            if col is None:
                col = seg.entries[variant] = Column(take)
            end = done + take
            self.changed.add(seg.id)  # before a replaced row of its own is noted: its record is rewritten
            row = col.put(keys[done:end], checks[done:end], tss[done:end], preds[done:end])
            seg.low = min(seg.low, int(tss[done:end].min()))
            first = seg.gen * SEGMENT_SIZE + row
            codes = np.arange(first, first + take, dtype=np.int64)
            old = self.table.put(salted[done:end], checks[done:end], codes)
            if old.max() >= 0:
                self._kill(variant, old[old >= 0], note=True)
            self.open_inserts += take
            done += take

    def _salt(self, variant: str) -> int:
        return salt(self.variants.index(variant))

    def _by_segment(self, codes: np.ndarray) -> list[tuple[Segment, np.ndarray, np.ndarray | slice]]:
        """(segment, rows, positions in ``codes``) of row codes, one segment at a time."""
        lo, hi = int(codes.min()) >> _GEN_SHIFT, int(codes.max()) >> _GEN_SHIFT
        if lo == hi:  # the common case
            return [(self.by_gen[lo], codes - lo * SEGMENT_SIZE, slice(None))]
        gens = codes >> _GEN_SHIFT
        rows = codes & (SEGMENT_SIZE - 1)
        return [(self.by_gen[g], rows[at], at) for g in range(lo, hi + 1) if len(at := np.flatnonzero(gens == g))]

    def _kill(self, variant: str, codes: np.ndarray, note: bool) -> None:
        """Mark the rows of these codes dead; with ``note``, note them in the segments whose
        records have them (see :meth:`take_changed`)."""
        for seg, rows, _ in self._by_segment(codes):
            self._kill_rows(seg, variant, rows, note)

    def _kill_rows(self, seg: Segment, variant: str, rows: np.ndarray, note: bool) -> None:
        col = seg.entries[variant]
        col.kill(rows)
        self.emptied |= not col.live
        if note and seg.id not in self.changed:
            seg.removed.add(col.keys[rows], variant)

    def _take_rows(self, variant: str, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray | list[Any]]:
        """(event times, predictions as ``Column.values`` gives them) of the rows of these codes,
        which labels took: now dead, and noted in the segments whose records have them."""
        parts = self._by_segment(codes)
        if len(parts) == 1:
            seg, rows, _ = parts[0]
            col = seg.entries[variant]
            out = col.ts[rows], col.values(rows)
        else:
            ts = np.empty(len(codes), np.int64)
            cols = [(at, seg.entries[variant], rows) for seg, rows, at in parts]
            preds: np.ndarray | list[Any]
            if all(type(col.preds) is np.ndarray for _, col, _ in cols):
                preds = np.empty(len(codes), np.float64)
                for at, col, rows in cols:
                    ts[at], preds[at] = col.ts[rows], col.preds[rows]
            else:
                preds = [None] * len(codes)
                for at, col, rows in cols:
                    ts[at] = col.ts[rows]
                    for i, p in zip(at.tolist(), col.predictions(rows), strict=True):  # type: ignore[union-attr]
                        preds[i] = p
            out = ts, preds
        for seg, rows, _ in parts:
            self._kill_rows(seg, variant, rows, note=True)
        return out

    def labels(self, labels: Iterable[Any], stats: JoinStats) -> None:
        """Queue labels (``request_id``, ``label``, ``ts``) in arrival order; before
        :meth:`predictions` of the same batch."""
        labels = list(labels)
        keys, checks = request_keys(list(map(_RID, labels)))
        self.label_columns(keys, checks, list(map(_LABEL, labels)), np.array(list(map(_TS, labels)), np.int64), stats)

    def label_columns(
        self, keys: np.ndarray, checks: np.ndarray, labels: list[Any], ts: np.ndarray, stats: JoinStats
    ) -> None:  # fmt: skip
        """:meth:`labels`, given as columns: their requests' keys and checks, values, times."""
        n = len(labels)
        if self.settings.join == "off":
            stats.unmatched += n
            return
        if not n:
            return
        if not self.active:
            self.active = True
            self.since_ts = int(ts[0]) + int(self.settings.wait_s * 1000)
        if int(ts.min()) < self.since_ts:  # their predictions are older than any kept
            keep = ts >= self.since_ts
            stats.unmatched += n - int(keep.sum())
            labels = [lab for lab, k in zip(labels, keep.tolist(), strict=True) if k]
            keys, checks, ts = keys[keep], checks[keep], ts[keep]
        self.waiting.push(keys, checks, labels, ts)
        over = len(self.waiting) - self.settings.max_waiting
        if over > 0:
            self.waiting.drop(over)
            stats.unmatched += over

    def drain(self, stats: JoinStats) -> list[Outcome]:
        """:meth:`drain_columns`, one pair at a time (inspection and tests)."""
        return self.drain_columns(stats).rows()

    def drain_columns(self, stats: JoinStats) -> Outcomes:
        """The pairs that may leave now, in order; forget what can no longer join."""
        out = Outcomes()
        queue = self.waiting
        if queue:
            keys, checks, lts, plain = queue.columns()
            wait = int(self.settings.wait_s * 1000)
            stop, codes = self.table.settle(keys, checks, lts, plain, self._salts(), self.watermark, wait)
            if stop:
                out = self._settle(stop, codes, lts[:stop], plain[:stop], stats)
                queue.drop(stop)
        if self.segments:
            max_pending = self.settings.max_pending
            horizon = self.watermark - int(self.settings.ttl_s * 1000)
            over = self.size - max_pending if len(self.segments) * SEGMENT_SIZE > max_pending else 0
            first = self.segments[0]  # the oldest live row of each column is the first to go
            if (
                self.emptied
                or over > 0
                or (first.low < horizon and any(c.live and c.ts[int(c.alive.argmax())] < horizon
                                                for c in first.entries.values()))
            ):  # fmt: skip
                evicted, expired = self._forget(over, horizon)
                stats.evicted += evicted
                stats.expired += expired
        del stats.delays_ms[:-100_000]
        return out

    def _salts(self) -> np.ndarray:
        n = len(self.variants)
        out = _SALTS.get(n)
        if out is None:
            out = _SALTS[n] = np.array(list(map(salt, range(n))), np.int64)
        return out

    def _settle(
        self, stop: int, codes: np.ndarray, lts: np.ndarray, plain: np.ndarray, stats: JoinStats
    ) -> Outcomes:  # fmt: skip
        """The outcomes of the ``stop`` front labels, which leave now: ``codes`` (labels ×
        variants, -1: none) are the predictions each took (see ``KeyTable.settle``). ``lts`` may
        be a view of the queue's columns."""
        front = self.waiting.front
        labels = self.waiting.labels[front : front + stop]
        codes = codes[:stop]
        ttl = int(self.settings.ttl_s * 1000)
        if len(self.variants) == 1 and codes.min() >= 0:  # the common case: each met its one prediction
            pts, preds = self._take_rows(self.variants[0], codes[:, 0])
            age = lts - pts
            if age.max() > ttl:  # the late ones count, without an outcome
                ok = age <= ttl
                sel = ok.tolist()
                preds = preds[ok] if type(preds) is np.ndarray else [p for p, k in zip(preds, sel, strict=True) if k]
                labels = [lab for lab, k in zip(labels, sel, strict=True) if k]
                age, pts, lts = age[ok], pts[ok], lts[ok]
                stats.late += stop - len(labels)
            stats.delays_ms.extend(np.maximum(age, 0).tolist())
            stats.joined += len(labels)
            return Outcomes([self.variants[0]] * len(labels), preds, labels, pts, lts.copy())
        found = (codes >= 0).any(axis=1)
        stats.unmatched += int((plain & ~found).sum())
        fresh = np.zeros(stop, np.bool_)
        made: list[tuple[int, int, str, Any, Any, int, int]] = []  # (label, variant order, *pair)
        lts_list = lts.tolist()
        for order, v in enumerate(self.variants):
            at = np.flatnonzero(codes[:, order] >= 0)
            if not len(at):
                continue
            pts, taken = self._take_rows(v, codes[at, order])
            preds = taken.tolist() if type(taken) is np.ndarray else taken
            age = lts[at] - pts
            ok = age <= ttl
            if ok.all():  # the common case: every one within the TTL
                fresh[at] = True
                stats.delays_ms.extend(np.maximum(age, 0).tolist())
                idx, pts_ok = at.tolist(), pts.tolist()
            else:
                fresh[at[ok]] = True
                stats.delays_ms.extend(np.maximum(age[ok], 0).tolist())
                idx, pts_ok = at[ok].tolist(), pts[ok].tolist()
                preds = [p for p, k in zip(preds, ok.tolist(), strict=True) if k]
            made += zip(idx, repeat(order), repeat(v), preds, map(labels.__getitem__, idx), pts_ok,
                        map(lts_list.__getitem__, idx))  # fmt: skip
        inline = not plain.all()
        if inline:
            inlines = self.waiting.inline[front : front + stop]
            for i in np.flatnonzero(~plain).tolist():
                variant, pts_i, pred = inlines[i]  # type: ignore[misc]
                made.append((i, -1, variant, pred, labels[i], pts_i, lts_list[i]))
        if inline or len(self.variants) > 1:
            made.sort(key=_ORDER)
        joined = int((found & fresh).sum())
        stats.joined += joined
        stats.late += int(found.sum()) - joined
        if not made:
            return Outcomes()
        _, _, vs, ps, ls, pt, lt = zip(*made, strict=True)
        return Outcomes(list(vs), list(ps), list(ls), np.array(pt, np.int64), np.array(lt, np.int64))

    def _forget(self, over: int, horizon: int) -> tuple[int, int]:
        """Drop the oldest predictions: ``over`` of them (the cap), then those older than
        ``horizon`` (arrival order is about event-time order: stop at the first one kept); drop
        emptied segments but the open one. (evicted, expired)."""
        evicted = expired = 0
        for seg in self.segments:
            for variant, col in seg.entries.items():
                capped = col.drop_first(over - evicted)
                old = col.drop_older(horizon)
                if len(capped) or len(old):
                    self.changed.add(seg.id)
                    gone = np.concatenate([capped, old])
                    self.table.remove(col.keys[gone] ^ self._salt(variant), gone + seg.gen * SEGMENT_SIZE)
                evicted += len(capped)
                expired += len(old)
            if len(seg):
                break
        self.emptied = False
        if not all(self.segments[:-1]):
            for s in self.segments[:-1]:
                if not s:
                    del self.by_gen[s.gen]
            self.segments = [s for s in self.segments[:-1] if s] + self.segments[-1:]
        return evicted, expired

    def take_changed(self) -> list[int]:
        """Ids of the live segments to write at this checkpoint, which writes the join's record too:
        those changed since the last call, and those whose notes now cost more than a rewrite."""
        changed, self.changed = self.changed, set()
        out = []
        for s in self.segments:
            if s.removed and s.id not in changed:
                s.rent += len(s.removed)  # the notes go in the record written now
                live = len(s)
                if s.rent > RENT * live or len(s.removed) > live:
                    changed.add(s.id)
            if s.id in changed:
                s.written()
                out.append(s.id)
        return sorted(out)

    def take_closed(self) -> list[int]:
        """Ids of the full segments changed since they were last taken, now taken (a checkpoint
        will not write them unless they change again). Under transactions their records can go
        out as soon as they fill, so the commit does not wait for them; the head record written
        at the checkpoint lists them, and its notes apply to these records."""
        open_id = self.segments[-1].id if self.segments and self.open_inserts < SEGMENT_SIZE else None
        taken = self.changed - {open_id}
        if not taken:  # the common call, after every batch: only the open segment changed
            return []
        self.changed -= taken
        out = []
        for s in self.segments:  # live ones only: an emptied segment may have gone meanwhile
            if s.id in taken:
                s.written()
                out.append(s.id)
        return sorted(out)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able meta, arrays) of the join without its segments' entries: written at every
        checkpoint of a labelled stage, so it stays small."""
        return head_record(self)

    def segment_state(self, seg_id: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able meta, arrays) of one segment: columns per variant (up to SEGMENT_SIZE rows)."""
        return segment_record(self, seg_id)

    @classmethod
    def from_state(cls, settings: LabelSettings, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LabelJoin:
        """The join of :meth:`to_state`, its segments empty until :meth:`restore_segment` fills
        them. Also reads the form written before request keys (request ids as strings)."""
        join = cls(settings)
        read_head(join, meta, arrays)
        return join

    read_segment = staticmethod(read_segment)

    def restore_segment(self, seg_id: int, gen: int, entries: dict[str, Column]) -> bool:
        """Fill a listed segment; False for a record of a segment this join does not hold (stale)."""
        seg = self.by_gen.get(gen)
        if seg is None or seg.id != seg_id:
            return False
        notes = seg.removed.by_variant()  # taken after the record was written
        for variant, col in entries.items():
            if variant in notes:
                rows = col.live_rows()
                col.kill(rows[np.isin(col.keys[rows], notes[variant])])
            rows = col.live_rows()
            lost = self.table.put(col.keys[rows] ^ self._salt(variant), col.checks[rows], rows + gen * SEGMENT_SIZE)
            seg.entries[variant] = col
            if col.rows:
                seg.low = min(seg.low, int(col.ts[: col.rows].min()))
            if lost.max(initial=-1) >= 0:  # the same request kept in two segments: the newer wins
                self._kill(variant, lost[lost >= 0], note=False)
        if seg is self.segments[-1]:  # a record newer than the head (not committed with it)
            self.open_inserts = max(self.open_inserts, sum(c.rows for c in entries.values()))
        return True
