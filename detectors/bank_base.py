"""What the monitor bank's parts share: its outputs, its counters, and the state each part reads.

``MonitorBank`` (``detectors.bank``) is put together from parts, one concern each: label
intake (``bank_labels``), alerts (``bank_alerts``) and state records (``bank_state``). Each part
is a mixin over :class:`BankPart`, which declares the bank's state and the methods one part
calls on another, so each module type-checks alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adwin import ADWINPool
from .columns import BatchFeeds
from .config import EngineConfig, VariantRule
from .feeds import Chunk
from .join import Column, JoinStats, LabelJoin
from .monitor import Key, Monitor, Signal
from .page_hinkley import PageHinkleyPool
from .psi import PSIPool

__all__ = ["BankOutput", "BankPart", "BankStats"]


@dataclass(slots=True)
class BankOutput:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class BankStats:
    """Counters for metrics endpoints; monotonic over the bank's life."""

    events: int = 0
    untracked_events: int = 0
    column_events: int = 0  # events taken as column blocks (no whole-event step)
    untracked_keys: int = 0
    series: int = 0
    type_mismatches: int = 0
    suppressed: int = 0
    alerts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (status, severity, detector)


class BankPart:
    """The state of :class:`detectors.bank.MonitorBank` that its parts read (set there)."""

    config: EngineConfig
    monitors: dict[Key, Monitor]
    stats: BankStats
    joins: JoinStats
    _wall: Callable[[], int]
    _adwin: dict[int, ADWINPool]
    _ph: PageHinkleyPool
    _psi: dict[float, PSIPool]
    _dirty: set[Key]
    _candidates: dict[tuple[str, str], dict[Key, VariantRule]]  # (model, stage) -> compared, rule
    _by_pair: dict[tuple[str, str], list[Key]]  # (model, stage) -> its monitors' keys
    _joins: dict[tuple[str, str], LabelJoin]  # (model, stage) -> its label join
    # restore: segment records read before their join's record, and the joins whose record was read
    _strays: dict[tuple[str, str], list[tuple[int, int, dict[str, Column]]]]
    _joins_read: set[tuple[str, str]]

    def _emit(self, doc: dict[str, Any], out: BankOutput) -> None:
        raise NotImplementedError

    def _add_signal(self, mon: Monitor, name: str, role: str, source: str, kind: str, at: int) -> None:
        raise NotImplementedError

    def _feed_numeric(self, mon: Monitor, sig: Signal, chunk: Chunk, lo: int, n: int, feeds: BatchFeeds) -> None:
        raise NotImplementedError

    def _feed_categorical(
        self, mon: Monitor, sig: Signal, col: list[Any], pos: np.ndarray, ts: np.ndarray, feeds: BatchFeeds
    ) -> None:
        raise NotImplementedError

    def _track(self, key: Key) -> None:
        raise NotImplementedError

    def _adwin_pool(self, max_buckets: int) -> ADWINPool:
        raise NotImplementedError

    def _psi_pool(self, epsilon: float) -> PSIPool:
        raise NotImplementedError
