"""Labels meet their predictions: one monitor's stream join by ``request_id``.

Labels arrive late (minutes to days) and from another topic, so both sides wait:

- a prediction with a ``request_id`` waits in ``pending`` until its label comes, its event
  time is ``ttl`` older than the newest prediction (``expired``, i.e. never labelled), or the
  cap pushes it out (``evicted``, the oldest first);
- a label waits in ``waiting``, in arrival order, until its prediction is found or the newest
  prediction is ``wait`` past the label's event time (``unmatched``).

Joined pairs leave in the labels' arrival order and a label that waits holds the ones behind
it: the sequence of outcomes, and so every detection on it, does not depend on how labels and
predictions interleave in batches, as long as a prediction is no later than ``wait`` in event
time. Labels given inline in a prediction event join on the spot, in stream order.

Within a batch, labels queue before predictions are noted, and matching happens after both.

``auto`` mode keeps predictions only once the monitor has seen a label, from ``wait`` after that
label's event time (so the start does not depend on batching): a model without labels costs
nothing. Labels older than that cannot meet their predictions and count as unmatched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any

from .config import LabelSettings

__all__ = ["JoinStats", "LabelJoin", "Outcome"]


@dataclass(slots=True, frozen=True)
class Outcome:
    """A prediction and its label."""

    prediction: Any
    label: Any
    predicted_ts: int
    label_ts: int


@dataclass(slots=True)
class JoinStats:
    """Counters of one bank's joins; monotonic."""

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


_NO_PREDICTION = object()


@dataclass(slots=True)
class LabelJoin:
    """Both sides of one monitor's join (see the module doc)."""

    settings: LabelSettings
    active: bool = False
    since_ts: int = -1  # event time from which predictions are kept (auto mode)
    watermark: int = -1  # newest prediction event time
    pending: dict[str, tuple[int, Any]] = field(default_factory=dict)  # request_id -> (ts, prediction)
    # (request_id, label, label_ts, predicted_ts, prediction); predicted_ts -1: not found yet
    waiting: deque[tuple[str, Any, int, int, Any]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.settings.join == "always":
            self.active = True

    def predictions(self, events: Sequence[Any], newest_ts: int, stats: JoinStats) -> None:
        """Note a batch of this monitor's prediction events (stream order; ``newest_ts`` their
        latest event time)."""
        if self.settings.join == "off":
            return
        self.watermark = max(self.watermark, newest_ts)
        waiting = self.waiting
        if not self.active:  # only inline labels matter
            for e in [e for e in events if e.label is not None]:
                waiting.append((e.request_id or "", e.label, e.ts, e.ts, e.prediction))
                stats.inline += 1
            return
        pending = self.pending
        since = self.since_ts
        for e in events:
            if e.label is not None:
                waiting.append((e.request_id or "", e.label, e.ts, e.ts, e.prediction))
                stats.inline += 1
            elif e.request_id is not None and e.ts >= since:
                pending.pop(e.request_id, None)  # a repeat: the newer one waits, at the end
                pending[e.request_id] = (e.ts, e.prediction)

    def labels(self, labels: Iterable[Any], stats: JoinStats) -> None:
        """Queue labels (``request_id``, ``label``, ``ts``) for this monitor, in arrival order;
        before :meth:`predictions` of the same batch."""
        if self.settings.join == "off":
            stats.unmatched += sum(1 for _ in labels)
            return
        labels = list(labels)
        if not self.active and labels:
            self.active = True
            self.since_ts = labels[0].ts + int(self.settings.wait_s * 1000)
        for lab in labels:
            if lab.ts < self.since_ts:  # its prediction is older than any kept
                stats.unmatched += 1
                continue
            self.waiting.append((lab.request_id, lab.label, lab.ts, -1, _NO_PREDICTION))
        over = len(self.waiting) - self.settings.max_waiting
        for _ in range(max(over, 0)):
            self.waiting.popleft()
            stats.unmatched += 1

    def drain(self, stats: JoinStats) -> list[Outcome]:
        """Joined pairs that may leave now, in order; forget what can no longer join."""
        out: list[Outcome] = []
        waiting, pending = self.waiting, self.pending
        ttl = int(self.settings.ttl_s * 1000)
        wait = int(self.settings.wait_s * 1000)
        while waiting:
            rid, label, lts, pts, pred = waiting[0]
            if pts < 0:
                found = pending.pop(rid, None)
                if found is None:
                    if self.watermark <= lts + wait:
                        break  # its prediction may still come: the ones behind wait too
                    waiting.popleft()
                    stats.unmatched += 1
                    continue
                pts, pred = found
                if lts - pts > ttl:
                    waiting.popleft()
                    stats.late += 1
                    continue
                stats.joined += 1
                stats.delays_ms.append(max(lts - pts, 0))
            waiting.popleft()
            out.append(Outcome(pred, label, pts, lts))
        over = len(pending) - self.settings.max_pending
        if over > 0:
            for rid in list(islice(pending, over)):
                del pending[rid]
            stats.evicted += over
        if pending:  # arrival order is about event-time order: stop at the first one kept
            horizon = self.watermark - ttl
            old = [rid for rid, _ in takewhile(lambda kv: kv[1][0] < horizon, pending.items())]
            for rid in old:
                del pending[rid]
            stats.expired += len(old)
        del stats.delays_ms[:-100_000]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "since": self.since_ts,
            "watermark": self.watermark,
            "pending": [[rid, ts, p] for rid, (ts, p) in self.pending.items()],
            "waiting": [
                [rid, lab, lts, pts, None if p is _NO_PREDICTION else p] for rid, lab, lts, pts, p in self.waiting
            ],
        }

    @classmethod
    def from_json(cls, settings: LabelSettings, data: dict[str, Any]) -> LabelJoin:
        join = cls(settings)
        join.active = bool(data["active"]) or settings.join == "always"
        join.since_ts = int(data["since"])
        join.watermark = int(data["watermark"])
        join.pending = {str(rid): (int(ts), p) for rid, ts, p in data["pending"]}
        join.waiting = deque(
            (str(rid), lab, int(lts), int(pts), _NO_PREDICTION if pts < 0 else p)
            for rid, lab, lts, pts, p in data["waiting"]
        )
        return join
