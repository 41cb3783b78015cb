"""Labels meet their predictions: the join by ``request_id`` of one (model, stage).

A label names a request, not a variant: with a canary only one variant scored the request, in
shadow mode both did, so one join per (model, stage) holds every variant's predictions and a
label yields an outcome for each variant that has one.

Labels arrive late (minutes to days) and from another topic, so both sides wait:

- a prediction with a ``request_id`` waits in ``pending`` until its label comes, its event
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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any

import numpy as np

from .config import LabelSettings

__all__ = ["JoinStats", "LabelJoin", "Outcome"]


@dataclass(slots=True, frozen=True)
class Outcome:
    """A prediction of one variant and its label."""

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


@dataclass(slots=True)
class LabelJoin:
    """Both sides of one (model, stage)'s join (see the module doc)."""

    settings: LabelSettings
    active: bool = False
    since_ts: int = -1  # event time from which predictions are kept (auto mode)
    watermark: int = -1  # newest prediction event time
    variants: list[str] = field(default_factory=list)  # in the order first seen
    pending: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)  # (rid, variant) -> (ts, pred)
    waiting: deque[Waiting] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.settings.join == "always":
            self.active = True

    def predictions(self, events: Sequence[Any], variant: str, newest_ts: int, stats: JoinStats) -> None:
        """Note a batch of one variant's prediction events (stream order; ``newest_ts`` their latest
        event time)."""
        if self.settings.join == "off":
            return
        if variant not in self.variants:
            self.variants.append(variant)
        self.watermark = max(self.watermark, newest_ts)
        waiting = self.waiting
        if not self.active:  # only inline labels matter
            for e in [e for e in events if e.label is not None]:
                waiting.append((e.request_id or "", e.label, e.ts, (variant, e.ts, e.prediction)))
                stats.inline += 1
            return
        pending = self.pending
        since = self.since_ts
        for e in events:
            if e.label is not None:
                waiting.append((e.request_id or "", e.label, e.ts, (variant, e.ts, e.prediction)))
                stats.inline += 1
            elif e.request_id is not None and e.ts >= since:
                k = (e.request_id, variant)
                pending.pop(k, None)  # a repeat: the newer one waits, at the end
                pending[k] = (e.ts, e.prediction)

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
        waiting, pending = self.waiting, self.pending
        ttl = int(self.settings.ttl_s * 1000)
        wait = int(self.settings.wait_s * 1000)
        while waiting:
            rid, label, lts, inline = waiting[0]
            if inline is not None:
                waiting.popleft()
                out.append(Outcome(inline[0], inline[2], label, inline[1], lts))
                continue
            found = [(v, pending.pop((rid, v))) for v in self.variants if (rid, v) in pending]
            if not found:
                if self.watermark <= lts + wait:
                    break  # its prediction may still come: the ones behind wait too
                waiting.popleft()
                stats.unmatched += 1
                continue
            waiting.popleft()
            fresh = [(v, pts, pred) for v, (pts, pred) in found if lts - pts <= ttl]
            if not fresh:
                stats.late += 1
                continue
            stats.joined += 1
            for v, pts, pred in fresh:
                stats.delays_ms.append(max(lts - pts, 0))
                out.append(Outcome(v, pred, label, pts, lts))
        over = len(pending) - self.settings.max_pending
        if over > 0:
            for k in list(islice(pending, over)):
                del pending[k]
            stats.evicted += over
        if pending:  # arrival order is about event-time order: stop at the first one kept
            horizon = self.watermark - ttl
            old = [k for k, _ in takewhile(lambda kv: kv[1][0] < horizon, pending.items())]
            for k in old:
                del pending[k]
            stats.expired += len(old)
        del stats.delays_ms[:-100_000]
        return out

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able meta, arrays) for a snapshot. Columns, not rows: written at every checkpoint
        of a labelled stage, up to ``max_pending`` entries."""
        keys = list(self.pending)
        values = list(self.pending.values())
        n = len(keys)
        arrays = {"pending_ts": np.fromiter((v[0] for v in values), np.int64, n)}
        if len(self.variants) > 1:
            index = {v: i for i, v in enumerate(self.variants)}
            arrays["pending_variant"] = np.fromiter((index[k[1]] for k in keys), np.int64, n)
        meta = {
            "active": self.active,
            "since": self.since_ts,
            "watermark": self.watermark,
            "variants": self.variants,
            "pending_rid": [k[0] for k in keys],
            "pending_prediction": [v[1] for v in values],
            "waiting": [[rid, lab, lts, list(inline) if inline else None] for rid, lab, lts, inline in self.waiting],
        }
        return meta, arrays

    @classmethod
    def from_state(cls, settings: LabelSettings, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> LabelJoin:
        join = cls(settings)
        join.active = bool(meta["active"]) or settings.join == "always"
        join.since_ts = int(meta["since"])
        join.watermark = int(meta["watermark"])
        join.variants = [str(v) for v in meta["variants"]]
        rids = meta["pending_rid"]
        if "pending_variant" in arrays:
            names = [join.variants[i] for i in arrays["pending_variant"].tolist()]
        else:
            names = [join.variants[0]] * len(rids) if join.variants else []
        join.pending = dict(zip(zip(rids, names, strict=True), zip(arrays["pending_ts"].tolist(),
                                                                     meta["pending_prediction"], strict=True),
                                strict=True))  # fmt: skip
        join.waiting = deque(
            (str(rid), lab, int(lts), (str(inl[0]), int(inl[1]), inl[2]) if inl else None)
            for rid, lab, lts, inl in meta["waiting"]
        )
        return join
