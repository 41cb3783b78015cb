"""ADWIN change detection, bulk and exact: river's detections without a Python call per value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _adwin_kernel as K
from ._pool import grow_axis, grow_rows
from .segments import Segments
from .snapshot import SnapshotError, pack, unpack

__all__ = ["ADWIN", "ADWINDetections", "ADWINPool"]


@dataclass(frozen=True, slots=True)
class ADWINDetections:
    """Detections of one pool update: value index and the first cut that fired, as
    (older sub-window size, its sum, newer sub-window size, its sum, window width), and
    the segment it came from."""

    pos: np.ndarray
    cut: np.ndarray
    segment: np.ndarray

    @property
    def mean_before(self) -> np.ndarray:
        return np.asarray(self.cut[:, 1] / self.cut[:, 0])

    @property
    def mean_after(self) -> np.ndarray:
        return np.asarray(self.cut[:, 3] / self.cut[:, 2])


class ADWINPool:
    """Many ADWIN detectors with the same ``max_buckets``, updated together.

    Memory per series: 112 bytes of scalars and parameters plus ``8 + 16 * (max_buckets
    + 1)`` bytes per bucket row; rows grow with ``log2`` of the longest window in the
    pool (about 20 rows, 2 KB per series, after a million stationary values).
    """

    def __init__(self, max_buckets: int = 5) -> None:
        self.max_buckets = max_buckets
        self._st = np.zeros((0, K.STATE_WIDTH))
        self._params = np.zeros((0, K.PARAM_WIDTH))
        self._counts = np.zeros((0, 2), np.int64)
        self._totals = np.zeros((0, 2, max_buckets + 1))
        self._variances = np.zeros((0, 2, max_buckets + 1))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def levels(self) -> int:
        return int(self._counts.shape[1])

    def add(self, delta: float = 0.002, clock: int = 32, min_window_length: int = 5, grace_period: int = 10) -> int:
        """Register a fresh detector; returns its series id."""
        if not 0.0 < delta < 1.0:
            raise ValueError(f"ADWIN delta must be in (0, 1), got {delta}")
        if clock < 1:
            raise ValueError(f"ADWIN clock must be >= 1, got {clock}")
        sid = self._n
        self._st = grow_rows(self._st, sid + 1)
        self._params = grow_rows(self._params, sid + 1)
        self._counts = grow_rows(self._counts, sid + 1)
        self._totals = grow_rows(self._totals, sid + 1)
        self._variances = grow_rows(self._variances, sid + 1)
        self._st[sid] = K.fresh_state()
        self._params[sid] = (delta, clock, min_window_length, grace_period)
        self._counts[sid] = 0
        self._totals[sid] = 0.0
        self._variances[sid] = 0.0
        self._n += 1
        return sid

    def _ensure_levels(self, seg: Segments) -> None:
        lengths = (seg.end - seg.start).astype(np.float64)
        added = np.bincount(seg.series, weights=lengths, minlength=self._n)
        touched = added > 0
        if not touched.any():
            return
        widest = float((self._st[: self._n, K.WIDTH][touched] + added[touched]).max())
        need = K.levels_needed(widest)
        if need > self.levels:
            self._counts = grow_axis(self._counts, 1, need)
            self._totals = grow_axis(self._totals, 1, need)
            self._variances = grow_axis(self._variances, 1, need)

    def update(self, seg: Segments) -> ADWINDetections:
        """Feed every segment to its series, in order; return the detections."""
        self._ensure_levels(seg)
        n = len(seg)
        pos = np.empty(n, np.int64)
        cut = np.empty((n, 5))
        segment = np.empty(n, np.int64)
        k = K.adwin_update(
            seg.values, seg.series, seg.start, seg.end, self._st, self._params,
            self._counts, self._totals, self._variances, self.max_buckets, pos, cut, segment,
        )  # fmt: skip
        return ADWINDetections(pos[:k], cut[:k], segment[:k])

    def drift_detected(self, sid: int) -> bool:
        return bool(self._st[sid, K.DRIFT])

    def width(self, sid: int) -> int:
        return int(self._st[sid, K.WIDTH])

    def estimation(self, sid: int) -> float:
        w = self._st[sid, K.WIDTH]
        return float(self._st[sid, K.TOTAL] / w) if w else 0.0

    def state_of(self, sid: int) -> dict[str, np.ndarray]:
        """Arrays for a snapshot: only the bucket rows in use are kept."""
        used = int(self._st[sid, K.N_LEVELS])
        return {
            "st": self._st[sid].copy(),
            "params": self._params[sid].copy(),
            "counts": self._counts[sid, :used].copy(),
            "totals": self._totals[sid, :used].copy(),
            "variances": self._variances[sid, :used].copy(),
        }

    def set_state(self, sid: int, arrays: dict[str, np.ndarray]) -> None:
        try:
            st, params = arrays["st"], arrays["params"]
            counts, totals, variances = arrays["counts"], arrays["totals"], arrays["variances"]
        except KeyError as exc:
            raise SnapshotError(f"ADWIN state lacks {exc}") from exc
        used = counts.shape[0]
        if totals.shape != (used, self.max_buckets + 1) or st.shape != (K.STATE_WIDTH,):
            raise SnapshotError("ADWIN state does not match this pool's max_buckets")
        if used > self.levels:
            self._counts = grow_axis(self._counts, 1, used)
            self._totals = grow_axis(self._totals, 1, used)
            self._variances = grow_axis(self._variances, 1, used)
        self._st[sid] = st
        self._params[sid] = params
        self._counts[sid] = 0
        self._totals[sid] = 0.0
        self._variances[sid] = 0.0
        self._counts[sid, :used] = counts
        self._totals[sid, :used] = totals
        self._variances[sid, :used] = variances

    def nbytes_per_series(self) -> int:
        return int((K.STATE_WIDTH + K.PARAM_WIDTH) * 8 + self.levels * (8 + 2 * 8 * (self.max_buckets + 1)))


class ADWIN:
    """Adaptive windowing; parameters mean what they mean in ``river.drift.ADWIN``.

    ``update_many`` gives exactly the detections of river's detector fed one value at a
    time (including river's fresh window after each detection), whatever the batch sizes.
    """

    def __init__(
        self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5,
        min_window_length: int = 5, grace_period: int = 10,
    ) -> None:  # fmt: skip
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._pool = ADWINPool(max_buckets)
        self._pool.add(delta, clock, min_window_length, grace_period)

    @property
    def drift_detected(self) -> bool:
        return self._pool.drift_detected(0)

    @property
    def width(self) -> int:
        return self._pool.width(0)

    @property
    def estimation(self) -> float:
        return self._pool.estimation(0)

    def update(self, x: float) -> bool:
        return bool(self._pool.update(Segments.single([x])).pos.shape[0])

    def update_many(self, values: np.ndarray | list[float]) -> np.ndarray:
        """Feed values in order; return the 0-based positions (in this call) of detections."""
        return self._pool.update(Segments.single(values)).pos

    def snapshot(self) -> bytes:
        return pack({"kind": "adwin", "max_buckets": self.max_buckets}, self._pool.state_of(0))

    @classmethod
    def restore(cls, blob: bytes) -> ADWIN:
        meta, arrays = unpack(blob)
        if meta.get("kind") != "adwin":
            raise SnapshotError(f"not an ADWIN snapshot: {meta.get('kind')!r}")
        p = arrays["params"]
        det = cls(float(p[K.P_DELTA]), int(p[K.P_CLOCK]), int(meta["max_buckets"]), int(p[K.P_MIN_WINDOW]),
                  int(p[K.P_GRACE]))  # fmt: skip
        det._pool.set_state(0, arrays)
        return det

    def nbytes(self) -> int:
        return self._pool.nbytes_per_series()

    def __repr__(self) -> str:
        return (
            f"ADWIN(delta={self.delta}, clock={self.clock}, max_buckets={self.max_buckets}, "
            f"min_window_length={self.min_window_length}, grace_period={self.grace_period})"
        )
