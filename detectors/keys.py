"""Request keys: how the label join names a request without keeping its request id.

See ``_key_kernel`` for the hashes. A request id gives the same (key, check) whether it is read
from a batch's raw bytes (by the batch scan, for column blocks, or ``span_keys``: the bytes of
an escape-free JSON string are its UTF-8) or from a decoded string (``request_keys``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _key_kernel as K

__all__ = ["KeyTable", "request_key", "request_keys", "salt", "span_keys"]

_EMPTY = np.empty(0, np.int64)


def span_keys(buf: np.ndarray, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, checks) of the byte ranges ``spans`` (n × 2: start, end) of ``buf`` (uint8)."""
    keys, checks = K.span_keys(buf, spans)
    return keys.view(np.int64), checks.view(np.int64)


def request_keys(rids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(keys, checks) of request ids."""
    if not rids:
        return _EMPTY, _EMPTY
    lens = np.fromiter(map(len, rids), np.int64, len(rids))
    raw = "".join(rids).encode("utf-8", "surrogatepass")  # no id from JSON has a lone surrogate; never raise
    if len(raw) != int(lens.sum()):  # not all ASCII: lengths in bytes, one string at a time
        parts = [r.encode("utf-8", "surrogatepass") for r in rids]
        lens = np.fromiter(map(len, parts), np.int64, len(parts))
        raw = b"".join(parts)
    spans = np.empty((len(rids), 2), np.int64)
    np.cumsum(lens, out=spans[:, 1])
    spans[:, 0] = spans[:, 1] - lens
    return span_keys(np.frombuffer(raw, np.uint8), spans)


def request_key(rid: str) -> tuple[int, int]:
    """(key, check) of one request id (inspection and tests)."""
    keys, checks = request_keys([rid])
    return int(keys[0]), int(checks[0])


def salt(variant: int) -> int:
    """What a variant's keys are xor-ed with in a join's table (0 for the first variant)."""
    x = variant * 0x9E3779B97F4A7C15 % 2**64
    return x - 2**64 if x >= 2**63 else x


class KeyTable:
    """key -> (check, value), a value being a kept prediction's row code (≥ 0), for many keys
    per call. ``slots`` is (capacity × 3): key, check, value (-1: empty)."""

    __slots__ = ("count", "slots")

    def __init__(self, capacity: int = 1024) -> None:
        self.slots = _empty(capacity)
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @property
    def capacity(self) -> int:
        return int(self.slots.shape[0])

    def put(self, keys: np.ndarray, checks: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Insert; a key already there keeps the larger value. The values that lost (-1 where
        the key was new): rows the caller no longer reaches."""
        need = self.count + len(keys)
        if 4 * need > 3 * self.capacity:
            self._resize(need)
        old = np.empty(len(keys), np.int64)
        self.count += K.table_put(self.slots, keys, checks, vals, old)
        return old

    def find(self, keys: np.ndarray, checks: np.ndarray) -> np.ndarray:
        """The value of each key whose check matches, or -1."""
        out = np.empty(len(keys), np.int64)
        K.table_find(self.slots, keys, checks, out)
        return out

    def remove(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Remove each key that still maps to its value."""
        if len(keys):
            self.count -= K.table_remove(self.slots, keys, vals)
            self._shrink()

    def settle(
        self, keys: np.ndarray, checks: np.ndarray, lts: np.ndarray, plain: np.ndarray, salts: np.ndarray,
        watermark: int, wait: int,
    ) -> tuple[int, np.ndarray]:  # fmt: skip
        """(how many labels leave, their codes per variant): see ``_key_kernel.table_settle``."""
        codes = np.empty((len(keys), len(salts)), np.int64)
        stop = K.table_settle(self.slots, keys, checks, lts, plain, salts, watermark, wait, codes)
        if stop:
            self.count -= int((codes[:stop] >= 0).sum())
            self._shrink()
        return stop, codes

    def _shrink(self) -> None:
        if 16 * self.count < self.capacity and self.capacity > 1024:
            self._resize(self.count)

    def _resize(self, need: int) -> None:
        # at most 3/4 full: at 1/2, run B of the labels benchmark spent 17-52 ms regrowing its
        # tables against 7 ms, and its lookups took the same time (13-15 ms)
        cap = 1024
        while 3 * cap < 4 * need:
            cap *= 2
        old, self.slots = self.slots, _empty(cap)
        K.table_fill(self.slots, old)


def _empty(capacity: int) -> np.ndarray:
    slots = np.zeros((capacity, 3), np.int64)
    slots[:, 2] = -1
    return slots
