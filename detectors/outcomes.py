"""Joined pairs, one at a time (``Outcome``) or as the columns a drain yields (``Outcomes``).

A join settles tens of thousands of labels per second, and the bank feeds them to the label
signals as columns: building a tuple per pair only to take it apart again was wasted work (in
memory, the labels benchmark's settle step took 69 ms for its 60k pairs with columns, 80 ms
with tuples). Drains therefore give columns; ``rows()`` gives the tuples for inspection and
tests.

Predictions kept as floats leave as a float array (``Column.values``), not a list: the label
signals read them as numbers, so a list would only be made to be converted back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Outcome", "Outcomes"]

_NO_TS = np.empty(0, np.int64)


class Outcome(NamedTuple):
    """A prediction of one variant and its label."""

    variant: str
    prediction: Any
    label: Any
    predicted_ts: int
    label_ts: int


@dataclass(slots=True)
class Outcomes:
    """Joined pairs in the order they leave the join: column ``i`` of each is pair ``i``."""

    variants: list[str] = field(default_factory=list)
    predictions: list[Any] | np.ndarray = field(default_factory=list)  # a float64 array, or Python values
    labels: list[Any] = field(default_factory=list)
    predicted_ts: np.ndarray = field(default_factory=lambda: _NO_TS)
    label_ts: np.ndarray = field(default_factory=lambda: _NO_TS)

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self) -> list[Outcome]:
        return list(map(Outcome, self.variants, self.prediction_values(), self.labels, self.predicted_ts.tolist(),
                        self.label_ts.tolist()))  # fmt: skip

    def prediction_values(self) -> list[Any]:
        """The predictions as Python values (floats stay floats, ints ints)."""
        preds = self.predictions
        return preds.tolist() if isinstance(preds, np.ndarray) else preds

    def take(self, idx: list[int]) -> Outcomes:
        """The pairs at ``idx``, in that order."""
        at = np.array(idx, np.int64)
        preds = self.predictions
        taken = preds[at] if isinstance(preds, np.ndarray) else [preds[i] for i in idx]
        return Outcomes([self.variants[i] for i in idx], taken, [self.labels[i] for i in idx], self.predicted_ts[at],
                        self.label_ts[at])  # fmt: skip

    def by_variant(self) -> dict[str, list[int]]:
        """The pairs' indices per variant, in order (the variants in order of first pair)."""
        if not self.variants:
            return {}
        if self.variants.count(self.variants[0]) == len(self.variants):  # the common case: one variant
            return {self.variants[0]: list(range(len(self.variants)))}
        out: dict[str, list[int]] = {}
        for i, v in enumerate(self.variants):
            out.setdefault(v, []).append(i)
        return out

    @classmethod
    def of(cls, rows: list[Outcome]) -> Outcomes:
        """Columns of pairs given one at a time."""
        if not rows:
            return cls()
        v, p, lab, pts, lts = (list(c) for c in zip(*rows, strict=True))
        return cls(v, p, lab, np.array(pts, np.int64), np.array(lts, np.int64))
