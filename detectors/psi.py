"""Windowed Population Stability Index against fixed reference bins.

PSI = Σᵢ (aᵢ − eᵢ) · ln(aᵢ / eᵢ), with aᵢ the window's share in bin i and eᵢ the
reference's. Both shares are clipped below at ``epsilon`` (default 1e-4) so an empty bin
adds a large but finite term instead of infinity; bins empty in both add exactly 0.
Windows are tumbling: every ``window`` values close one and start the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _psi_kernel as K
from ._pool import grow_axis, grow_rows
from .reference import SignalProfile, categorical_profile, numeric_profile
from .segments import Segments
from .snapshot import SnapshotError, pack, unpack

__all__ = ["PSI_EPSILON", "PSIWindows", "PSIPool", "WindowedPSI", "psi"]

PSI_EPSILON = 1e-4


def psi(actual: np.ndarray, expected: np.ndarray, epsilon: float = PSI_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """PSI per row of ``actual``/``expected`` shares and each bin's contribution."""
    a = np.maximum(actual, epsilon)
    e = np.maximum(expected, epsilon)
    contrib = (a - e) * np.log(a / e)
    return contrib.sum(axis=-1), contrib


@dataclass(frozen=True, slots=True)
class PSIWindows:
    """Windows closed by one update: series, index of the window's last value (in the
    update's values), the window's ordinal in its series, PSI, per-bin terms, counts and
    the segment it closed in."""

    series: np.ndarray
    pos: np.ndarray
    index: np.ndarray
    psi: np.ndarray
    contributions: np.ndarray
    counts: np.ndarray
    segment: np.ndarray

    def __len__(self) -> int:
        return int(self.series.shape[0])


class PSIPool:
    """Many windowed-PSI monitors, each with its own reference bins and window size.

    Memory per series: ``8 * (3 * bins + edges + 4)`` bytes (counts, reference shares,
    edges and a few counters), about 300 bytes for 10 bins.
    """

    def __init__(self, epsilon: float = PSI_EPSILON) -> None:
        self.epsilon = epsilon
        self._edges = np.zeros((0, 1))
        self._n_edges = np.zeros(0, np.int64)
        self._ref = np.zeros((0, 2))
        self._counts = np.zeros((0, 2), np.int64)
        self._filled = np.zeros(0, np.int64)
        self._window = np.zeros(0, np.int64)
        self._index = np.zeros(0, np.int64)
        self.profiles: list[SignalProfile] = []

    def __len__(self) -> int:
        return len(self.profiles)

    def add(self, profile: SignalProfile, window: int = 1000) -> int:
        if window < 1:
            raise ValueError(f"PSI window must be >= 1 value, got {window}")
        sid = len(self.profiles)
        n_bins, n_edges = profile.n_bins, len(profile.edges)
        self._edges = grow_axis(grow_rows(self._edges, sid + 1), 1, n_edges)
        self._ref = grow_axis(grow_rows(self._ref, sid + 1), 1, n_bins)
        self._counts = grow_axis(grow_rows(self._counts, sid + 1), 1, n_bins)
        self._n_edges = grow_rows(self._n_edges, sid + 1)
        self._filled = grow_rows(self._filled, sid + 1)
        self._window = grow_rows(self._window, sid + 1)
        self._index = grow_rows(self._index, sid + 1)
        self._edges[sid] = 0.0
        self._edges[sid, :n_edges] = profile.edges
        self._n_edges[sid] = n_edges
        self._ref[sid] = 0.0
        self._ref[sid, :n_bins] = profile.proportions
        self._counts[sid] = 0
        self._filled[sid] = 0
        self._window[sid] = window
        self._index[sid] = 0
        self.profiles.append(profile)
        return sid

    def _out(self, seg: Segments) -> tuple[np.ndarray, ...]:
        # A segment of L values closes at most L // window + 1 windows.
        n = len(seg)
        smallest = int(self._window[: len(self)].min()) if len(self) else 1
        cap = min(n // smallest + seg.series.shape[0] + 1, n + 1)
        return (
            np.empty(cap, np.int64),
            np.empty(cap, np.int64),
            np.empty((cap, self._counts.shape[1]), np.int64),
            np.empty(cap, np.int64),
        )

    def update_codes(self, seg: Segments) -> PSIWindows:
        """Count bin codes into open windows; score the windows that close."""
        out = self._out(seg)
        k = K.count_windows(seg.values, seg.series, seg.start, seg.end, self._counts, self._filled, self._window, *out)
        return self._score(k, *out)

    def update_numeric(self, seg: Segments) -> PSIWindows:
        """Bin numeric values (NaN and infinities → missing), count them, score closed windows."""
        out = self._out(seg)
        k = K.count_numeric_windows(
            seg.values, seg.series, seg.start, seg.end, self._edges, self._n_edges,
            self._counts, self._filled, self._window, *out,
        )  # fmt: skip
        return self._score(k, *out)

    def _score(
        self, k: int, out_series: np.ndarray, out_pos: np.ndarray, out_counts: np.ndarray, out_seg: np.ndarray
    ) -> PSIWindows:
        series, pos, counts = out_series[:k], out_pos[:k], out_counts[:k]
        # Ordinal of each closed window in its series: running count per series.
        index = np.empty(k, np.int64)
        for j, s in enumerate(series.tolist()):
            index[j] = self._index[s]
            self._index[s] += 1
        actual = counts / self._window[series][:, None]
        value, contrib = psi(actual, self._ref[series], self.epsilon)
        return PSIWindows(series, pos, index, value, contrib, counts, out_seg[:k])

    def windows_closed(self, sid: int) -> int:
        return int(self._index[sid])

    def state_of(self, sid: int) -> dict[str, np.ndarray]:
        n_bins = self.profiles[sid].n_bins
        return {
            "counts": self._counts[sid, :n_bins].copy(),
            "scalars": np.array([self._filled[sid], self._window[sid], self._index[sid]], np.int64),
        }

    def set_state(self, sid: int, arrays: dict[str, np.ndarray]) -> None:
        counts, scalars = arrays["counts"], arrays["scalars"]
        if counts.shape != (self.profiles[sid].n_bins,) or scalars.shape != (3,):
            raise SnapshotError("PSI state does not match its reference bins")
        self._counts[sid] = 0
        self._counts[sid, : counts.shape[0]] = counts
        self._filled[sid], self._window[sid], self._index[sid] = (int(v) for v in scalars)

    def nbytes_per_series(self) -> int:
        return int(8 * (3 * self._counts.shape[1] + self._edges.shape[1] + 4))


@dataclass(frozen=True, slots=True)
class PSIWindow:
    """One closed window: position of its last value in the ``update_many`` call."""

    end: int
    index: int
    psi: float
    contributions: tuple[float, ...]


class WindowedPSI:
    """PSI of tumbling windows of ``window`` values against a fixed reference profile."""

    def __init__(self, reference: SignalProfile, window: int = 1000, epsilon: float = PSI_EPSILON) -> None:
        self.reference = reference
        self.window = window
        self.epsilon = epsilon
        self._pool = PSIPool(epsilon)
        self._pool.add(reference, window)

    @classmethod
    def from_values(
        cls,
        reference: Sequence[Any] | np.ndarray,
        *,
        categorical: bool = False,
        bins: int = 10,
        window: int = 1000,
    ) -> WindowedPSI:
        """Bins from reference values: quantile edges (numeric) or frequencies (categorical)."""
        profile = categorical_profile(reference) if categorical else numeric_profile(reference, bins)
        return cls(profile, window)

    def update_many(self, values: Sequence[Any] | np.ndarray) -> list[PSIWindow]:
        """Feed values; return each window closed during the call."""
        if self.reference.kind == "categorical":
            codes = self.reference.encode(list(values))
            res = self._pool.update_codes(Segments.single(codes, dtype=np.int64))
        else:
            if isinstance(values, np.ndarray):
                arr = np.ascontiguousarray(values, dtype=np.float64)
            else:
                arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            res = self._pool.update_numeric(Segments.single(arr))
        return [
            PSIWindow(int(p), int(i), float(v), tuple(c.tolist()))
            for p, i, v, c in zip(res.pos, res.index, res.psi, res.contributions, strict=True)
        ]

    def snapshot(self) -> bytes:
        meta = {
            "kind": "psi",
            "window": self.window,
            "epsilon": self.epsilon,
            "reference": self.reference.to_json(),
        }
        return pack(meta, self._pool.state_of(0))

    @classmethod
    def restore(cls, blob: bytes) -> WindowedPSI:
        meta, arrays = unpack(blob)
        if meta.get("kind") != "psi":
            raise SnapshotError(f"not a PSI snapshot: {meta.get('kind')!r}")
        det = cls(SignalProfile.from_json(meta["reference"]), int(meta["window"]), float(meta["epsilon"]))
        det._pool.set_state(0, arrays)
        return det

    def nbytes(self) -> int:
        return self._pool.nbytes_per_series()
