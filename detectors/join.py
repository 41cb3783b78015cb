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
``max_pending`` predictions. A label looks for its request in the newest segment first. The
prediction it takes is noted in the head record instead of rewriting its segment (labels come
hours late, each in another old segment). Each checkpoint that writes the head pays again for
every note in it, so the segment is written anew once the notes written so far outweigh its
live rows ``RENT`` times (rent or buy: never more than about twice the cheaper of the two), or
once its notes outnumber its live rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from .config import LabelSettings
from .kept import SEGMENT_SIZE, Column

__all__ = ["RENT", "SEGMENT_SIZE", "Column", "JoinStats", "LabelJoin", "Outcome", "Segment"]


class Outcome(NamedTuple):
    """A prediction of one variant and its label (a tuple: one is made per joined pair)."""

    variant: str
    prediction: Any
    label: Any
    predicted_ts: int
    label_ts: int


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


# A waiting label: (request_id, label, label_ts, inline); inline = (variant, predicted_ts, prediction)
# for a label that came in its prediction event, None while its prediction is looked for.
Waiting = tuple[str, Any, int, tuple[str, int, Any] | None]
Pending = dict[tuple[str, str], tuple[int, Any]]  # (request_id, variant) -> (ts, prediction)

RENT = 2  # notes written (summed over checkpoints) per live row before a segment is written anew
_RID = attrgetter("request_id")
_LABEL = attrgetter("label")
_PREDICTION = attrgetter("prediction")
_TS = attrgetter("ts")


@dataclass(slots=True)
class Segment:
    """A run of kept predictions in arrival order, per variant; a state record of its own.

    ``id`` is reused once the segment is gone (so a stage's records stay few), ``gen`` never is:
    a record whose generation the join does not list is stale and ignored on restore.
    """

    id: int
    gen: int
    entries: dict[str, Column] = field(default_factory=dict)  # variant -> its predictions
    removed: list[tuple[str, str]] = field(default_factory=list)  # taken since its record was written
    rent: int = 0  # notes written with the join's record since this segment's own was

    def __len__(self) -> int:
        return sum(map(len, self.entries.values()))

    def written(self) -> None:
        """Its record is being written anew: the notes and their rent start over."""
        self.removed = []
        self.rent = 0


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
    waiting: deque[Waiting] = field(default_factory=deque)
    changed: set[int] = field(default_factory=set)  # ids of segments changed since the last take

    def __post_init__(self) -> None:
        if self.settings.join == "always":
            self.active = True

    @property
    def size(self) -> int:
        """Predictions waiting for a label."""
        return sum(map(len, self.segments))

    @property
    def pending(self) -> Pending:
        """Every kept prediction, oldest first (a copy, for inspection)."""
        return {(rid, v): kept for s in self.segments for v, c in s.entries.items() for rid, kept in c.items()}

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
                    self._keep(variant, rids, ts, list(map(_PREDICTION, events)))
                    return
            else:
                return
        keep: list[tuple[str, int, Any]] = []
        for e in events:
            if e.label is not None:
                self.waiting.append((e.request_id or "", e.label, e.ts, (variant, e.ts, e.prediction)))
                stats.inline += 1
            elif e.request_id is not None and e.ts >= self.since_ts:
                keep.append((e.request_id, e.ts, e.prediction))
        if self.active and keep:
            rids, tss, preds = (list(c) for c in zip(*keep, strict=True))
            self._keep(variant, rids, np.array(tss, dtype=np.int64), preds)

    def unlabelled(self, variant: str, ts: np.ndarray) -> None:
        """Note predictions with neither a request_id nor a label: nothing to keep, but their
        variant and event times count (label waits and expiry follow the watermark)."""
        if self.settings.join == "off":
            return
        if variant not in self.variants:
            self.variants.append(variant)
        self.watermark = max(self.watermark, int(ts.max()))

    def requested(
        self, variant: str, ts: np.ndarray, rids: Callable[[], list[str]], preds: Callable[[], list[Any]]
    ) -> None:
        """Note a column block of predictions that all carry a request_id and no label, as
        :meth:`predictions` would: kept once the join is active. ``rids`` and ``preds`` are
        read only then (a block builds a string per event for them)."""
        if self.settings.join == "off":
            return
        self.unlabelled(variant, ts)
        if not self.active:
            return
        ids, values = rids(), preds()
        if int(ts.min()) < self.since_ts:
            fresh = (ts >= self.since_ts).tolist()
            ids = [r for r, f in zip(ids, fresh, strict=True) if f]
            values = [v for v, f in zip(values, fresh, strict=True) if f]
            ts = ts[ts >= self.since_ts]
            if not ids:
                return
        self._keep(variant, ids, ts, values)

    def _keep(self, variant: str, rids: list[str], tss: np.ndarray, preds: list[Any]) -> None:
        """Append to the open segment, opening new ones every SEGMENT_SIZE predictions (a repeated
        request_id within a segment takes the newer prediction; across segments the newest is
        looked up first)."""
        done, n = 0, len(rids)
        while done < n:
            if not self.segments or self.open_inserts >= SEGMENT_SIZE:
                used = {s.id for s in self.segments}
                self.segments.append(Segment(next(i for i in count() if i not in used), self.next_gen))
                self.next_gen += 1
                self.open_inserts = 0
            seg = self.segments[-1]
            take = min(SEGMENT_SIZE - self.open_inserts, n - done)
            col = seg.entries.get(variant)
            if col is None:
                col = seg.entries[variant] = Column()
            end = done + take
            col.put(rids[done:end], tss[done:end], preds[done:end])
            self.open_inserts += take
            self.changed.add(seg.id)
            done += take

    def _take(self, rid: str, variant: str) -> tuple[int, Any] | None:
        """Pop a kept prediction. Its segment is not rewritten for it: the removal goes in the
        join's own record (see :meth:`take_changed`)."""
        for seg in reversed(self.segments):
            col = seg.entries.get(variant)
            if col is not None:
                row = col.index.pop(rid, None)  # Column.pop without a call per segment looked in
                if row is not None:
                    if seg.id not in self.changed:
                        seg.removed.append((rid, variant))
                    return col.at(row)
        return None

    def labels(self, labels: Iterable[Any], stats: JoinStats) -> None:
        """Queue labels (``request_id``, ``label``, ``ts``) in arrival order; before
        :meth:`predictions` of the same batch."""
        labels = list(labels)
        if self.settings.join == "off":
            stats.unmatched += len(labels)
            return
        if not self.active and labels:
            self.active = True
            self.since_ts = labels[0].ts + int(self.settings.wait_s * 1000)
        ts = list(map(_TS, labels))
        if ts and min(ts) >= self.since_ts:  # the common batch, in C-level steps
            self.waiting.extend(zip(map(_RID, labels), map(_LABEL, labels), ts, repeat(None)))
        else:
            for lab in labels:
                if lab.ts < self.since_ts:  # its prediction is older than any kept
                    stats.unmatched += 1
                    continue
                self.waiting.append((lab.request_id, lab.label, lab.ts, None))
        over = len(self.waiting) - self.settings.max_waiting
        for _ in range(max(over, 0)):
            self.waiting.popleft()
            stats.unmatched += 1

    def drain(self, stats: JoinStats) -> list[Outcome]:
        """Outcomes that may leave now, in order; forget what can no longer join."""
        out: list[Outcome] = []
        waiting = self.waiting
        ttl = int(self.settings.ttl_s * 1000)
        wait = int(self.settings.wait_s * 1000)
        take = self._take
        delays = stats.delays_ms
        joined = 0
        while waiting:  # loops, not comprehensions: this runs per label
            rid, label, lts, inline = waiting[0]
            if inline is not None:
                waiting.popleft()
                out.append(Outcome(inline[0], inline[2], label, inline[1], lts))
                continue
            found = []
            for v in self.variants:
                got = take(rid, v)
                if got is not None:
                    found.append((v, got))
            if not found:
                if self.watermark <= lts + wait:
                    break  # its prediction may still come: the ones behind wait too
                waiting.popleft()
                stats.unmatched += 1
                continue
            waiting.popleft()
            fresh = False
            for v, (pts, pred) in found:
                if lts - pts <= ttl:
                    fresh = True
                    delays.append(lts - pts if lts > pts else 0)
                    out.append(Outcome(v, pred, label, pts, lts))
            if fresh:
                joined += 1
            else:
                stats.late += 1
        stats.joined += joined
        if self.segments:
            max_pending = self.settings.max_pending
            over = self.size - max_pending if len(self.segments) * SEGMENT_SIZE > max_pending else 0
            evicted, expired = self._forget(over, self.watermark - ttl)
            stats.evicted += evicted
            stats.expired += expired
        del stats.delays_ms[:-100_000]
        return out

    def _forget(self, over: int, horizon: int) -> tuple[int, int]:
        """Drop the oldest predictions: ``over`` of them (the cap), then those older than
        ``horizon`` (arrival order is about event-time order: stop at the first one kept); drop
        emptied segments but the open one. (evicted, expired)."""
        evicted = expired = 0
        for seg in self.segments:
            for col in seg.entries.values():
                capped = col.drop_first(over - evicted)
                old = col.drop_older(horizon)
                if capped or old:
                    self.changed.add(seg.id)
                evicted += capped
                expired += old
            if len(seg):
                break
        if not all(self.segments[:-1]):
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
        meta = {
            "active": self.active,
            "since": self.since_ts,
            "watermark": self.watermark,
            "variants": self.variants,
            "segments": [
                [s.id, s.gen, [rid for rid, _ in s.removed], [self.variants.index(v) for _, v in s.removed]]
                for s in self.segments
            ],
            "open_inserts": self.open_inserts,
            "next_gen": self.next_gen,
            "waiting": list(self.waiting),  # tuples: orjson writes them as arrays, with no copy per label
        }
        return meta, {}

    def segment_state(self, seg_id: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able meta, arrays) of one segment: columns per variant (up to SEGMENT_SIZE rows)."""
        seg = next(s for s in self.segments if s.id == seg_id)
        meta: dict[str, Any] = {"segment": seg.id, "gen": seg.gen, "variants": [], "rids": [], "predictions": []}
        arrays: dict[str, np.ndarray] = {}
        for variant, col in seg.entries.items():
            if col:
                i = len(meta["variants"])
                rids, arrays[f"ts{i}"], preds = col.columns()
                meta["variants"].append(variant)
                meta["rids"].append(rids)
                if type(preds) is np.ndarray:  # floats go as an array: exact and compact
                    arrays[f"p{i}"] = preds
                    meta["predictions"].append(None)
                else:
                    meta["predictions"].append(preds)
        return meta, arrays

    @classmethod
    def from_state(cls, settings: LabelSettings, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LabelJoin:
        """The join of :meth:`to_state`, its segments empty until :meth:`restore_segment` fills them."""
        join = cls(settings)
        join.active = bool(meta["active"]) or settings.join == "always"
        join.since_ts = int(meta["since"])
        join.watermark = int(meta["watermark"])
        join.variants = [str(v) for v in meta["variants"]]
        join.segments = [
            Segment(int(i), int(g), {}, [(str(rid), join.variants[v]) for rid, v in zip(rids, vs, strict=True)])
            for i, g, rids, vs in meta["segments"]
        ]
        join.open_inserts = int(meta["open_inserts"])
        join.next_gen = int(meta["next_gen"])
        join.waiting = deque(
            (str(rid), lab, int(lts), (str(inl[0]), int(inl[1]), inl[2]) if inl else None)
            for rid, lab, lts, inl in meta["waiting"]
        )
        return join

    @staticmethod
    def read_segment(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[int, int, dict[str, Column]]:
        """(id, generation, entries) of a :meth:`segment_state` record."""
        entries = {
            str(variant): Column.of(rids, arrays[f"ts{i}"], arrays[f"p{i}"] if preds is None else preds)
            for i, (variant, rids, preds) in enumerate(zip(meta["variants"], meta["rids"], meta["predictions"],
                                                           strict=True))
        }  # fmt: skip
        return int(meta["segment"]), int(meta["gen"]), entries

    def restore_segment(self, seg_id: int, gen: int, entries: dict[str, Column]) -> bool:
        """Fill a listed segment; False for a record of a segment this join does not hold (stale)."""
        for seg in self.segments:
            if seg.id == seg_id and seg.gen == gen:
                for rid, variant in seg.removed:  # taken after the record was written
                    if variant in entries:
                        entries[variant].pop(rid)
                seg.entries = entries
                if seg is self.segments[-1]:  # a record newer than the head (not committed with it)
                    self.open_inserts = max(self.open_inserts, sum(c.rows for c in entries.values()))
                return True
        return False
