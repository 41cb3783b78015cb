"""The request-id hash, shared by the batch scan (which hashes each ``request_id`` string
while its bytes are in cache) and the label join's key kernel (``detectors._key_kernel``).

``key`` is 64-bit FNV-1a finalised with murmur3's mix; ``check`` the top 32 bits of a
different multiply-xorshift hash. See ``detectors._key_kernel`` for why two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_SEED = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0xD6E8FEB86659FD93)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S29 = np.uint64(29)
_S32 = np.uint64(32)
_S33 = np.uint64(33)


@njit(cache=True, nogil=True, inline="always")
def request_hash(buf: np.ndarray, a: int, b: int) -> tuple[np.uint64, np.uint64]:
    """(key, check) of the bytes ``buf[a:b]``."""
    h = _FNV_OFFSET
    g = _SEED
    for j in range(a, b):
        c = np.uint64(buf[j])
        h = (h ^ c) * _FNV_PRIME
        g = (g + c) * _MUL
        g ^= g >> _S29
    n = np.uint64(b - a)
    h ^= n
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    g ^= n * _FNV_PRIME
    g ^= g >> _S33
    g *= _M2
    g ^= g >> _S33
    g *= _M1
    g ^= g >> _S33
    return h, g >> _S32
