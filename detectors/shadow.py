"""Shadow mode: the baseline and the candidate score the same requests; pair their predictions
by ``request_id`` and count how often they agree, per comparison window.

A pair counts in the window of the event that completes it. An unpaired prediction waits
until the windows it could still pair into have closed (then it counts as ``unpaired``), and
at most ``max_pending`` wait at once (the oldest go first). Stream order decides everything,
so any batching gives the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Pending", "agree", "pair"]


def agree(a: Any, b: Any, tolerance: float) -> bool:
    """Numbers agree within ``tolerance``; classes (strings, booleans) when equal; a missing
    prediction agrees with nothing."""
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b  # True is a class here, not the number 1
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tolerance
    return bool(a == b)


@dataclass(slots=True)
class Pending:
    """Predictions waiting for the other variant's: request_id -> [side, prediction, window]."""

    waiting: dict[str, list[Any]] = field(default_factory=dict)
    unpaired: int = 0

    def expire(self, before_window: int) -> None:
        """Forget what can no longer pair into an open window."""
        kept = {r: v for r, v in self.waiting.items() if v[2] >= before_window}
        self.unpaired += len(self.waiting) - len(kept)
        self.waiting = kept

    def to_json(self) -> dict[str, Any]:
        return {"waiting": self.waiting, "unpaired": self.unpaired}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pending:
        return cls({str(r): list(v) for r, v in data["waiting"].items()}, int(data["unpaired"]))


def pair(pending: Pending, windows: dict[int, Any], events: Sequence[Any], side: np.ndarray, idx: np.ndarray,
         keep: np.ndarray, tolerance: float, max_pending: int) -> None:  # fmt: skip
    """Pair this batch's events (those kept, in stream order); count pairs in ``windows[k].pairs``."""
    waiting = pending.waiting
    for j in np.flatnonzero(keep).tolist():
        e = events[j]
        rid = e.request_id
        win = windows.get(int(idx[j]))
        if rid is None or win is None:
            continue
        s = int(side[j])
        other = waiting.get(rid)
        if other is not None and other[0] != s:
            del waiting[rid]
            win.pairs[0] += 1
            win.pairs[1] += agree(e.prediction, other[1], tolerance)
            continue
        waiting.pop(rid, None)  # a repeat of the same side: the newer one waits
        waiting[rid] = [s, e.prediction, int(idx[j])]
        if len(waiting) > max_pending:
            del waiting[next(iter(waiting))]
            pending.unpaired += 1
