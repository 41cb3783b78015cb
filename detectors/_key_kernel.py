"""Compiled kernels of the label join's request keys: hashing request ids, and an
open-addressing table from a key to the row of its kept prediction.

A request id is kept as two hashes of its UTF-8 bytes (``schemas._request_hash``, which the
batch scan uses too): ``key`` (64-bit FNV-1a, finalised with murmur3's mix) addresses the
table, ``check`` (the top 32 bits of a different multiply-xorshift hash) confirms a match. Two
request ids collide only if both agree: about one chance in 2^96 per pair, so a label meets
another request's prediction about once in 10^19 labels with a million predictions kept. No
string and no Python object is made per kept prediction; that was most of a labelled stage's
cost (building 600,000 request-id strings and a dict slot for each took ~0.2 s of the labels
benchmark's ~1.9 s).

The table is linear probing with backward-shift deletion (no tombstones). A slot is a row of
three int64, so one probe touches one cache line: a key, its check and a value (-1: empty).
The caller keeps the load at most three quarters. A join keeps one table for all its variants: a
variant's keys are the request keys xor the variant's salt.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from schemas._request_hash import request_hash


@njit(cache=True, nogil=True)
def span_keys(buf: np.ndarray, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, checks), uint64, of the bytes ``buf[spans[i, 0]:spans[i, 1]]``."""
    n = spans.shape[0]
    keys = np.empty(n, np.uint64)
    checks = np.empty(n, np.uint64)
    for i in range(n):
        keys[i], checks[i] = request_hash(buf, spans[i, 0], spans[i, 1])
    return keys, checks


@njit(cache=True, nogil=True)
def table_put(t: np.ndarray, keys: np.ndarray, checks: np.ndarray, vals: np.ndarray, old: np.ndarray) -> int:
    """Insert ``keys[i] -> vals[i]``; a key already there keeps the larger value (the newer
    row). ``old[i]``: the value that lost (-1 when the key was new). Returns the keys added."""
    mask = t.shape[0] - 1
    added = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        v = vals[i]
        h = k & mask
        while True:
            cur = t[h, 2]
            if cur < 0:
                t[h, 0] = k
                t[h, 1] = checks[i]
                t[h, 2] = v
                old[i] = -1
                added += 1
                break
            if t[h, 0] == k:
                if cur < v:
                    t[h, 1] = checks[i]
                    t[h, 2] = v
                    old[i] = cur
                else:
                    old[i] = v
                break
            h = (h + 1) & mask
    return added


@njit(cache=True, nogil=True)
def table_find(t: np.ndarray, keys: np.ndarray, checks: np.ndarray, out: np.ndarray) -> None:
    """``out[i]``: the value of ``keys[i]`` if its check is ``checks[i]``, else -1."""
    mask = t.shape[0] - 1
    for i in range(keys.shape[0]):
        k = keys[i]
        h = k & mask
        out[i] = -1
        while t[h, 2] >= 0:
            if t[h, 0] == k:
                if t[h, 1] == checks[i]:
                    out[i] = t[h, 2]
                break
            h = (h + 1) & mask


@njit(cache=True, nogil=True)
def _delete(t: np.ndarray, h: int, mask: int) -> None:
    """Empty slot ``h``, pulling each later entry of its run into the hole if its home allows."""
    j = h
    while True:
        j = (j + 1) & mask
        if t[j, 2] < 0:
            break
        if ((j - (t[j, 0] & mask)) & mask) >= ((j - h) & mask):
            t[h, 0] = t[j, 0]
            t[h, 1] = t[j, 1]
            t[h, 2] = t[j, 2]
            h = j
    t[h, 2] = -1


@njit(cache=True, nogil=True)
def table_remove(t: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> int:
    """Remove ``keys[i]`` where it still maps to ``vals[i]``; returns how many went."""
    mask = t.shape[0] - 1
    gone = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        h = k & mask
        while t[h, 2] >= 0 and t[h, 0] != k:
            h = (h + 1) & mask
        if t[h, 2] >= 0 and t[h, 2] == vals[i]:
            _delete(t, h, mask)
            gone += 1
    return gone


@njit(cache=True, nogil=True)
def table_settle(
    t: np.ndarray, keys: np.ndarray, checks: np.ndarray, lts: np.ndarray, plain: np.ndarray, salts: np.ndarray,
    watermark: int, wait: int, codes: np.ndarray,
) -> int:  # fmt: skip
    """Waiting labels in order, as the join's drain takes them one by one: a plain label takes
    (removes) its request's entry under each variant's salt (``codes[i, v]``, -1: none) and
    leaves; one that finds none stays, with the ones behind it, while the newest prediction
    (``watermark``) is not ``wait`` past it. Returns how many leave; removed entries gone."""
    mask = t.shape[0] - 1
    for i in range(keys.shape[0]):
        for v in range(salts.shape[0]):
            codes[i, v] = -1
        if not plain[i]:
            continue
        found = False
        for v in range(salts.shape[0]):
            k = keys[i] ^ salts[v]
            h = k & mask
            while t[h, 2] >= 0:
                if t[h, 0] == k:
                    if t[h, 1] == checks[i]:
                        codes[i, v] = t[h, 2]
                        _delete(t, h, mask)
                        found = True
                    break
                h = (h + 1) & mask
        if not found and watermark <= lts[i] + wait:
            return i
    return int(keys.shape[0])


@njit(cache=True, nogil=True)
def table_fill(t: np.ndarray, old: np.ndarray) -> None:
    """Re-insert a smaller table's live entries (growing or shrinking)."""
    mask = t.shape[0] - 1
    for i in range(old.shape[0]):
        if old[i, 2] < 0:
            continue
        h = old[i, 0] & mask
        while t[h, 2] >= 0:
            h = (h + 1) & mask
        t[h, 0] = old[i, 0]
        t[h, 1] = old[i, 1]
        t[h, 2] = old[i, 2]
