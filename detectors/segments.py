"""Segmented arrays: many series' values in one flat array, so one kernel call serves all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Segments"]


@dataclass(frozen=True, slots=True)
class Segments:
    """``values[start[k]:end[k]]`` belong to series ``series[k]``, in stream order."""

    values: np.ndarray
    series: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def single(cls, values: Sequence[float] | np.ndarray, series: int = 0, dtype: type = np.float64) -> Segments:
        arr: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
        return cls(
            arr,
            np.array([series], dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.array([arr.shape[0]], dtype=np.int64),
        )

    @classmethod
    def concat(cls, series: Sequence[int], parts: Sequence[np.ndarray], dtype: type = np.float64) -> Segments:
        """Join per-series arrays; ``series[k]`` owns ``parts[k]``."""
        lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        end = np.cumsum(lengths)
        values: np.ndarray = np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)
        return cls(
            np.ascontiguousarray(values),
            np.asarray(series, dtype=np.int64),
            end - lengths,
            end,
        )

    def __len__(self) -> int:
        return int(self.values.shape[0])
