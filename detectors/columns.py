"""From a group of decoded events to detector input: column blocks and per-pool feeds."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .feeds import Chunk, Feed
from .monitor import Monitor, Signal

__all__ = ["BatchFeeds", "Layout", "kind_of", "numeric_column"]

_NUMERIC_TYPES = frozenset((float, int, bool, type(None)))


def _as_float(v: Any) -> float:
    """A value of a numeric signal: numbers and booleans as they are; a string that reads as
    a number (Python ``float`` syntax, as numpy's own conversion) as that number; anything
    else missing."""
    if type(v) is str:
        try:
            return float(v)
        except ValueError:
            return math.nan
    return math.nan if v is None else float(v)


def numeric_column(col: list[Any] | np.ndarray) -> tuple[np.ndarray, int]:
    """Floats with NaN for missing (None, NaN, ±inf, non-numeric strings); also the count of
    strings that are not numbers. Numeric strings ("1.5") are read as numbers, the same as the
    bank's whole-block conversion does, so a value never depends on its batch's other values.
    A float array (kept predictions) is taken as it is, copied."""
    if isinstance(col, np.ndarray):
        arr = col.astype(np.float64)
        mismatches = 0
    elif _NUMERIC_TYPES.issuperset(map(type, col)):
        arr = np.array(col, dtype=np.float64)  # None → NaN
        mismatches = 0
    else:
        arr = np.fromiter(map(_as_float, col), np.float64, len(col))
        mismatches = sum(1 for v, x in zip(col, arr.tolist(), strict=True) if type(v) is str and x != x)
    if not np.isfinite(arr).all():
        arr[np.isinf(arr)] = np.nan
    return arr, mismatches


def kind_of(values: list[Any]) -> str:
    """Categorical when strings are the majority of the non-null values: a numeric feature
    with an occasional "n/a" stays numeric (the strings count as missing)."""
    strings = sum(1 for v in values if type(v) is str)
    others = sum(1 for v in values if v is not None and type(v) is not str)
    return "categorical" if strings > others else "numeric"


class BatchFeeds:
    """What one batch sends to each pool."""

    def __init__(self) -> None:
        self.adwin: dict[int, Feed] = {}
        self.ph = Feed()
        self.psi_num: dict[float, Feed] = {}
        self.psi_cat: dict[float, Feed] = {}

    def changepoints(self, mon: Monitor, sig: Signal, chunk: Chunk, lo: int, hi: int) -> None:
        """ADWIN and Page-Hinkley input (the kernels skip NaN)."""
        if sig.adwin is not None:
            feed = self.adwin.get(sig.adwin_pool)
            if feed is None:  # not setdefault: that would make a Feed on every call
                feed = self.adwin[sig.adwin_pool] = Feed()
            feed.add(sig.adwin, chunk, lo, hi, (mon, sig))
        if sig.ph is not None:
            self.ph.add(sig.ph, chunk, lo, hi, (mon, sig))

    def psi(self, mon: Monitor, sig: Signal, chunk: Chunk, lo: int, hi: int) -> None:
        """Windowed PSI input: values of a numeric signal, bin codes of a categorical one."""
        assert sig.psi is not None
        pools = self.psi_num if sig.kind == "numeric" else self.psi_cat
        feed = pools.get(sig.psi_pool)
        if feed is None:
            feed = pools[sig.psi_pool] = Feed() if sig.kind == "numeric" else Feed(np.int64)
        feed.add(sig.psi, chunk, lo, hi, (mon, sig))


@dataclass(slots=True)
class Layout:
    """How a monitor's signals map onto a group's numeric block; rebuilt when signals change."""

    n_features: int
    numeric_features: tuple[str, ...]
    getter: Callable[[dict[str, Any]], Any] | None
    numeric_extras: tuple[str, ...]
    numeric_rows: list[tuple[Signal, int]]
    latency_row: int | None
    categorical: list[Signal]
    missing_of: dict[str, Signal]
    categorical_features: tuple[str, ...]
    watch_prediction: bool
    watch_latency: bool
    selected: Callable[[str], bool] = bool
    _rows_of: dict[tuple[tuple[str, ...], frozenset[str]], Any] = field(default_factory=dict)

    @classmethod
    def of(cls, mon: Monitor) -> Layout:
        sigs = mon.signals
        num_feats = tuple(s.source for s in sigs.values() if s.role == "feature" and s.kind == "numeric")
        extras: list[str] = []
        rows = [(sigs[f"feature:{f}"], i) for i, f in enumerate(num_feats)]
        latency_row = None
        pred = sigs.get("prediction")
        if pred is not None and pred.kind == "numeric":
            rows.append((pred, len(num_feats) + len(extras)))
            extras.append("prediction")
        if "latency_ms" in sigs:
            latency_row = len(num_feats) + len(extras)
            rows.append((sigs["latency_ms"], latency_row))
            extras.append("latency_ms")
        getter = operator.itemgetter(*num_feats) if num_feats else None
        cat = [s for s in sigs.values() if s.kind == "categorical" and s.role in ("feature", "prediction")]
        missing_of = {f"feature:{s.source}": s for s in sigs.values() if s.role == "missing"}
        n_features = sum(1 for s in sigs.values() if s.role == "feature")
        cat_feats = tuple(s.source for s in cat if s.role == "feature")
        sel = mon.settings.signals
        return cls(
            n_features, num_feats, getter, tuple(extras), rows, latency_row, cat, missing_of, cat_feats,
            watch_prediction=sel.prediction and pred is None, watch_latency=sel.latency and latency_row is None,
            selected=lambda name: name not in sel.exclude and (sel.features is None or name in sel.features),
        )  # fmt: skip

    def rows_of(self, names: tuple[str, ...], text: frozenset[str] = frozenset()) -> np.ndarray | None:
        """Where this layout's numeric features sit among a column block's ``names`` (``text``:
        those whose values are strings); None when the block does not fit: a known feature
        absent or of the other kind, a categorical prediction, or a new feature the monitor would
        watch (those events take the whole-event path, which discovers it)."""
        key = (names, text)
        got = self._rows_of.get(key, False)
        if got is False:
            got = None
            at = {n: i for i, n in enumerate(names)}
            known = set(self.numeric_features) | set(self.categorical_features)
            fits = (
                len(at) == len(names)
                and known.issubset(at)
                and text.isdisjoint(self.numeric_features)
                and text.issuperset(self.categorical_features)
                and all(s.role == "feature" for s in self.categorical)
            )
            if fits and not any(n not in known and self.selected(n) for n in names):
                got = np.array([at[n] for n in self.numeric_features], np.int64)
            if len(self._rows_of) < 64:
                self._rows_of[key] = got
        return got  # type: ignore[no-any-return]

    def needs_discovery(self, evs: list[Any]) -> bool:
        """True when an event may carry something new: a known categorical feature absent
        while an unknown one takes its place (same count), or a first prediction or latency.
        Absent numeric features show up as a KeyError when the block is built."""
        for name in self.categorical_features:
            if any(name not in e.features for e in evs):
                return True
        if self.watch_prediction and any(e.prediction is not None for e in evs):
            return True
        return self.watch_latency and any(e.latency_ms is not None for e in evs)
