"""Labels waiting for their predictions, in arrival order, as columns.

A labelled stage's labels often arrive before their predictions are read (a backlog, a labels
topic that is fetched ahead): tens of thousands wait. The join looks at the front at every
batch; as columns, one compiled call walks the front with no conversion per label (a deque of
tuples cost ~30 µs per look in the labels benchmark, ~4,000 looks). Keys, checks and times
are numpy arrays, labels and inline predictions lists; the front advances by an offset and the
space behind it is reclaimed when it outgrows the queue.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["Inline", "LabelQueue", "Waiting"]

Inline = tuple[str, int, Any]  # (variant, predicted_ts, prediction) of a label given in its prediction event
# One waiting label: (key, check, label, label_ts, inline); inline labels have key and check 0.
Waiting = tuple[int, int, Any, int, Inline | None]


class LabelQueue:
    """The waiting labels of one join: ``front`` is the first one's index in the columns."""

    __slots__ = ("checks", "front", "inline", "keys", "labels", "lts", "plain")

    def __init__(self) -> None:
        self.keys = np.empty(64, np.int64)
        self.checks = np.empty(64, np.int64)
        self.lts = np.empty(64, np.int64)
        self.plain = np.empty(64, np.bool_)  # not inline: its prediction is looked for
        self.labels: list[Any] = []
        self.inline: list[Inline | None] = []
        self.front = 0

    def __len__(self) -> int:
        return len(self.labels) - self.front

    def __iter__(self) -> Iterator[Waiting]:
        a, b = self.front, len(self.labels)
        return zip(self.keys[a:b].tolist(), self.checks[a:b].tolist(), self.labels[a:], self.lts[a:b].tolist(),
                   self.inline[a:], strict=True)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelQueue) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def push(
        self, keys: np.ndarray, checks: np.ndarray, labels: Sequence[Any], lts: np.ndarray,
        inline: Sequence[Inline | None] | None = None,
    ) -> None:  # fmt: skip
        """Append labels (``inline`` None: none of them is inline)."""
        n = len(labels)
        a = len(self.labels)
        if a + n > len(self.keys):
            self._room(a + n)
            a = len(self.labels)
        self.keys[a : a + n] = keys
        self.checks[a : a + n] = checks
        self.lts[a : a + n] = lts
        self.labels.extend(labels)
        if inline is None:
            self.plain[a : a + n] = True
            self.inline.extend([None] * n)
        else:
            self.plain[a : a + n] = [x is None for x in inline]
            self.inline.extend(inline)

    def push_inline(self, label: Any, lts: int, inline: Inline) -> None:
        self.push(np.zeros(1, np.int64), np.zeros(1, np.int64), [label], np.array([lts], np.int64), [inline])

    def drop(self, n: int) -> None:
        """Forget the ``n`` front labels."""
        self.front += n
        if self.front >= 4096 and 2 * self.front >= len(self.labels):
            self._room(len(self.labels))

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Views of (keys, checks, label times, plain) of the waiting labels."""
        a, b = self.front, len(self.labels)
        return self.keys[a:b], self.checks[a:b], self.lts[a:b], self.plain[a:b]

    def _room(self, needed: int) -> None:
        """Move the waiting labels to the start, in arrays that hold ``needed`` rows (of the
        present columns, front included) less the ones behind the front."""
        a, b = self.front, len(self.labels)
        size = 64
        while size < needed - a:
            size *= 2
        for name in ("keys", "checks", "lts", "plain"):
            old = getattr(self, name)
            new = np.empty(size, old.dtype)
            new[: b - a] = old[a:b]
            setattr(self, name, new)
        del self.labels[:a]
        del self.inline[:a]
        self.front = 0
