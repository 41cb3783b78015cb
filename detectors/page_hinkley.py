"""Page-Hinkley change detection, bulk and exact: river's detections at compiled speed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _ph_kernel as K
from ._pool import grow_rows
from .segments import Segments
from .snapshot import SnapshotError, pack, unpack

__all__ = ["PageHinkley", "PageHinkleyPool", "PHDetections"]

_MODES = {"up": K.MODE_UP, "down": K.MODE_DOWN, "both": K.MODE_BOTH}


@dataclass(frozen=True, slots=True)
class PHDetections:
    """Detections of one pool update: value index, direction (1 up, 2 down, 3 both), the
    test statistic that crossed the threshold, the running mean, the run length and the
    segment it came from."""

    pos: np.ndarray
    direction: np.ndarray
    statistic: np.ndarray
    mean: np.ndarray
    run: np.ndarray
    segment: np.ndarray


class PageHinkleyPool:
    """Many Page-Hinkley detectors (one per series) updated together in one kernel call.

    Each series has its own parameters, so thresholds can be scaled per signal.
    Memory: 96 bytes per series (7 state + 5 parameter float64s).
    """

    def __init__(self) -> None:
        self._state = np.zeros((0, K.STATE_WIDTH))
        self._params = np.zeros((0, K.PARAM_WIDTH))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> int:
        """Register a fresh detector; returns its series id."""
        if mode not in _MODES:
            raise ValueError(f"Invalid 'mode' {mode!r}. Valid values are: {sorted(_MODES)}")
        sid = self._n
        self._state = grow_rows(self._state, sid + 1)
        self._params = grow_rows(self._params, sid + 1)
        self._state[sid] = K.fresh_state()
        self._params[sid] = (min_instances, delta, threshold, alpha, _MODES[mode])
        self._n += 1
        return sid

    def update(self, seg: Segments) -> PHDetections:
        """Feed every segment to its series, in order; return the detections."""
        n = len(seg)
        pos = np.empty(n, np.int64)
        direction = np.empty(n, np.int64)
        stat = np.empty(n)
        mean = np.empty(n)
        run = np.empty(n)
        segment = np.empty(n, np.int64)
        k = K.ph_update(
            seg.values, seg.series, seg.start, seg.end, self._state, self._params,
            pos, direction, stat, mean, run, segment,
        )  # fmt: skip
        return PHDetections(pos[:k], direction[:k], stat[:k], mean[:k], run[:k], segment[:k])

    def drift_detected(self, sid: int) -> bool:
        return bool(self._state[sid, K.DRIFT])

    def threshold(self, sid: int) -> float:
        return float(self._params[sid, K.P_THRESHOLD])

    def mean(self, sid: int) -> float:
        return float(self._state[sid, K.MEAN])

    def state_of(self, sid: int) -> np.ndarray:
        """Row of state and parameters, for snapshots."""
        return np.concatenate([self._state[sid], self._params[sid]])

    def set_state(self, sid: int, row: np.ndarray) -> None:
        if row.shape != (K.STATE_WIDTH + K.PARAM_WIDTH,):
            raise SnapshotError(f"Page-Hinkley state has shape {row.shape}")
        self._state[sid] = row[: K.STATE_WIDTH]
        self._params[sid] = row[K.STATE_WIDTH :]

    def nbytes_per_series(self) -> int:
        return (K.STATE_WIDTH + K.PARAM_WIDTH) * 8


class PageHinkley:
    """Page-Hinkley test; parameters mean what they mean in ``river.drift.PageHinkley``.

    ``update_many`` gives exactly the detections of river's detector fed one value at a
    time, whatever the batch sizes.
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._pool = PageHinkleyPool()
        self._pool.add(min_instances, delta, threshold, alpha, mode)

    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed raised a detection."""
        return self._pool.drift_detected(0)

    def update(self, x: float) -> bool:
        """Feed one value; return whether it raised a detection."""
        return bool(self._pool.update(Segments.single([x])).pos.shape[0])

    def update_many(self, values: np.ndarray | list[float]) -> np.ndarray:
        """Feed values in order; return the 0-based positions (in this call) of detections."""
        return self._pool.update(Segments.single(values)).pos

    def snapshot(self) -> bytes:
        return pack({"kind": "page_hinkley"}, {"row": self._pool.state_of(0)})

    @classmethod
    def restore(cls, blob: bytes) -> PageHinkley:
        """A detector that continues exactly where the snapshotted one stopped."""
        meta, arrays = unpack(blob)
        if meta.get("kind") != "page_hinkley":
            raise SnapshotError(f"not a Page-Hinkley snapshot: {meta.get('kind')!r}")
        row = arrays["row"]
        p = row[K.STATE_WIDTH :]
        mode = {v: k for k, v in _MODES.items()}[int(p[K.P_MODE])]
        det = cls(int(p[K.P_MIN_INSTANCES]), float(p[K.P_DELTA]), float(p[K.P_THRESHOLD]), float(p[K.P_ALPHA]), mode)
        det._pool.set_state(0, row)
        return det

    def nbytes(self) -> int:
        """Bytes of detector state (the Python object itself adds a few hundred)."""
        return self._pool.nbytes_per_series()

    def __repr__(self) -> str:
        return (
            f"PageHinkley(min_instances={self.min_instances}, delta={self.delta}, "
            f"threshold={self.threshold}, alpha={self.alpha}, mode={self.mode!r})"
        )
