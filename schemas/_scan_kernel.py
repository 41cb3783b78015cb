"""Compiled scan of a batch of JSON event values: one call tokenises every message.

Events of one producer repeat a shape: the same keys in the same order, only the values
differ. The scan splits each message into its *skeleton* (braces, keys, literals, with each
number, literal or string value replaced by a marker byte) and its value tokens. Messages with the
same skeleton share a template, interpreted once in Python (``schemas.blocks``); their
values land in arrays, without a Python object per value.

The scan accepts a strict subset of JSON and declines (template -1) everything else, for the
full decoder to judge: arrays, escapes, non-ASCII or control bytes in strings, nesting
deeper than ``MAX_DEPTH``, and numbers it cannot convert exactly. A number is converted when
its value is certain: digits that fit 2**53 with a decimal exponent within ±22 take one
multiplication or division of two exact doubles (Clinger's fast path); others, up to 18
digits, take the Eisel-Lemire algorithm. Both round correctly: the same double ``orjson``
and Python's ``float`` give.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._request_hash import request_hash

NUMBER, STRING = 1, 2  # skeleton marker bytes; no valid JSON outside a string holds them
FLOAT, INT, NULL, TRUE, FALSE, TEXT = 0, 1, 2, 3, 4, 5  # token kinds (a NUMBER token is one of the first five)
MAX_DEPTH = 8
MAX_TEMPLATES = 256  # per batch; messages of further shapes are declined
_TABLE = 1024  # open-addressing table of skeleton hashes, > 2 x MAX_TEMPLATES
_POW10 = np.array([10.0**i for i in range(23)])  # exact doubles
_MAX_EXACT = 2**53
_MIN_E10, _MAX_E10 = -348, 347
_RID = np.frombuffer(b"request_id", np.uint8)


def _powers() -> tuple[np.ndarray, np.ndarray]:
    """128-bit mantissas of 10**e, e in [_MIN_E10, _MAX_E10], rounded down, as (hi, lo)."""
    hi, lo = [], []
    for e in range(_MIN_E10, _MAX_E10 + 1):
        if e >= 0:
            v = 10**e
            shift = v.bit_length() - 128
            m = v >> shift if shift >= 0 else v << -shift
        else:
            d = 10**-e
            m = (1 << (127 + d.bit_length())) // d
        hi.append(m >> 64)
        lo.append(m & (2**64 - 1))
    return np.array(hi, np.uint64), np.array(lo, np.uint64)


_POW_HI, _POW_LO = _powers()
_M32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def _mul(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The 128-bit product of two uint64, as (hi, lo)."""
    a0, a1 = a & _M32, a >> np.uint64(32)
    b0, b1 = b & _M32, b >> np.uint64(32)
    p0, p1, p2, p3 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p0 >> np.uint64(32)) + (p1 & _M32) + (p2 & _M32)
    lo = (mid << np.uint64(32)) | (p0 & _M32)
    hi = p3 + (p1 >> np.uint64(32)) + (p2 >> np.uint64(32)) + (mid >> np.uint64(32))
    return hi, lo


@njit(cache=True, nogil=True)
def _eisel_lemire(mant: int, exp10: int) -> float:
    """mant * 10**exp10 correctly rounded (mant > 0, at most 19 digits), or -1.0 when the
    128-bit approximation cannot decide (near a halfway point), or the result is subnormal or
    infinite: the Eisel-Lemire algorithm. Called for numbers the exact fast path cannot take,
    e.g. the 17 significant digits of a float's shortest repr."""
    if exp10 < _MIN_E10 or exp10 > _MAX_E10:
        return -1.0
    man = np.uint64(mant)
    clz = 0
    while man < np.uint64(1) << np.uint64(63):
        man = man << np.uint64(1)
        clz += 1
    ret_exp2 = ((217706 * exp10) >> 16) + 64 + 1023 - clz
    x_hi, x_lo = _mul(man, _POW_HI[exp10 - _MIN_E10])
    if (x_hi & np.uint64(0x1FF)) == np.uint64(0x1FF) and x_lo + man < man:
        y_hi, y_lo = _mul(man, _POW_LO[exp10 - _MIN_E10])
        m_hi, m_lo = x_hi, x_lo + y_hi
        if m_lo < x_lo:
            m_hi += np.uint64(1)
        if (m_hi & np.uint64(0x1FF)) == np.uint64(0x1FF) and m_lo + np.uint64(1) == np.uint64(0) and y_lo + man < man:
            return -1.0
        x_hi, x_lo = m_hi, m_lo
    msb = x_hi >> np.uint64(63)
    ret = x_hi >> (msb + np.uint64(9))
    ret_exp2 -= 1 - int(msb)
    if x_lo == np.uint64(0) and (x_hi & np.uint64(0x1FF)) == np.uint64(0) and (ret & np.uint64(3)) == np.uint64(1):
        return -1.0
    ret += ret & np.uint64(1)
    ret = ret >> np.uint64(1)
    if ret >> np.uint64(53) > np.uint64(0):
        ret = ret >> np.uint64(1)
        ret_exp2 += 1
    if ret_exp2 <= 0 or ret_exp2 >= 0x7FF:
        return -1.0
    bits = (np.uint64(ret_exp2) << np.uint64(52)) | (ret & np.uint64(0x000FFFFFFFFFFFFF))
    return np.array([bits], np.uint64).view(np.float64)[0]  # type: ignore[no-any-return]


@njit(cache=True, nogil=True)
def _same(x: np.ndarray, a: int, y: np.ndarray, b: int, n: int) -> bool:
    for q in range(n):
        if x[a + q] != y[b + q]:
            return False
    return True


@njit(cache=True, nogil=True)
def scan(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, nums: np.ndarray, kinds: np.ndarray, spans: np.ndarray,
    skel: np.ndarray,
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
    np.ndarray,
]:  # fmt: skip
    """Tokenise messages ``buf[starts[i]:ends[i]]``.

    Returns ``template`` (per message; -1 = declined), ``first`` (index of its first token),
    the token arrays ``nums`` (number values; null NaN, true 1, false 0), ``kinds`` and
    ``spans`` (byte span of each value token),
    and the batch's templates: skeleton bytes ``skel`` cut by ``skel_bounds``, and ``counts``
    (tokens per template). ``rid_keys`` and ``rid_checks`` (per message) are the request-id
    hash (``_request_hash``) of its top-level ``request_id`` string, the last if there are
    several (as for ``orjson``), hashed while its bytes are in cache; 0 for none.

    One flat loop per byte on purpose: a call to another compiled function costs ~10 ns here,
    even with ``inline="always"``, and a byte costs well under 1 ns (a call per message is
    fine).

    The caller gives the token arrays and ``skel``, with room for ``len(buf) // 2 + 1`` tokens
    (a value and its separator take two bytes at least) and ``len(buf) + 2`` skeleton bytes,
    and gets them back; their contents on the way in do not matter.
    """
    n = starts.shape[0]
    template = np.full(n, -1, np.int32)
    first = np.zeros(n, np.int64)
    skel_bounds = np.zeros(MAX_TEMPLATES + 1, np.int64)
    counts = np.zeros(MAX_TEMPLATES, np.int64)
    table = np.full(_TABLE, -1, np.int32)
    hashes = np.zeros(MAX_TEMPLATES, np.uint64)
    rid_keys = np.zeros(n, np.uint64)
    rid_checks = np.zeros(n, np.uint64)
    n_tmpl = 0
    t_all = 0
    guess = 0
    for m in range(n):
        end = ends[m]
        s0 = skel_bounds[n_tmpl]
        s = s0
        t = t_all
        i = starts[m]
        ok = False
        is_rid = False
        depth = 0
        state = 5  # 0 key or '}', 1 key, 2 value, 3 ',' or '}', 5 the opening '{'
        while True:
            while i < end and (buf[i] == 32 or buf[i] == 10 or buf[i] == 13 or buf[i] == 9):
                i += 1
            if i >= end:
                if state == 6:
                    ok = True
                break
            c = buf[i]
            if state == 6 or (state == 5 and c != 123):  # bytes after the object; no object
                break
            if state == 5 or (state == 2 and c == 123):
                depth += 1
                if depth > MAX_DEPTH:
                    break
                skel[s] = 123
                s += 1
                i += 1
                state = 0
                continue
            if state <= 1:
                if c == 125 and state == 0:
                    state = 4
                elif c == 34:  # a key, copied into the skeleton
                    skel[s] = 34
                    s += 1
                    i += 1
                    k0 = i
                    while i < end:
                        c = buf[i]
                        if c == 34 or c == 92 or c < 32 or c >= 128:
                            break
                        skel[s] = c
                        s += 1
                        i += 1
                    if i >= end or c != 34:
                        break
                    is_rid = depth == 1 and i - k0 == 10
                    if is_rid:
                        for q in range(10):
                            if buf[k0 + q] != _RID[q]:
                                is_rid = False
                                break
                    skel[s] = 34
                    s += 1
                    i += 1
                    while i < end and (buf[i] == 32 or buf[i] == 10 or buf[i] == 13 or buf[i] == 9):
                        i += 1
                    if i >= end or buf[i] != 58:
                        break
                    skel[s] = 58
                    s += 1
                    i += 1
                    state = 2
                    continue
                else:
                    break
            elif state == 2:
                if c == 34:  # a string value: its span
                    i += 1
                    j = i
                    while j < end:
                        c = buf[j]
                        if c == 34 or c == 92 or c < 32 or c >= 128:
                            break
                        j += 1
                    if j >= end or c != 34:
                        break
                    spans[t, 0] = i
                    spans[t, 1] = j
                    if is_rid:
                        rid_keys[m], rid_checks[m] = request_hash(buf, i, j)
                    nums[t] = 0.0
                    kinds[t] = TEXT
                    t += 1
                    skel[s] = STRING
                    s += 1
                    i = j + 1
                elif c == 45 or 48 <= c <= 57:  # a number: its value, exactly or not at all
                    j = i
                    neg = c == 45
                    if neg:
                        j += 1
                    if j >= end:
                        break
                    mant = 0
                    digits = 0
                    c = buf[j]
                    if c == 48:
                        j += 1
                    elif 49 <= c <= 57:
                        while j < end and 48 <= buf[j] <= 57:
                            if digits < 18:
                                mant = mant * 10 + (buf[j] - 48)
                            digits += 1
                            j += 1
                    else:
                        break
                    exp10 = 0
                    is_int = True
                    bad = False
                    if j < end and buf[j] == 46:
                        is_int = False
                        j += 1
                        f0 = j
                        while j < end and 48 <= buf[j] <= 57:
                            if mant > 0 or buf[j] != 48:  # leading zeros of 0.00123 do not count
                                if digits < 18:
                                    mant = mant * 10 + (buf[j] - 48)
                                digits += 1
                            exp10 -= 1
                            j += 1
                        bad = j == f0
                    if not bad and j < end and (buf[j] == 101 or buf[j] == 69):
                        is_int = False
                        j += 1
                        eneg = False
                        if j < end and (buf[j] == 43 or buf[j] == 45):
                            eneg = buf[j] == 45
                            j += 1
                        f0 = j
                        e = 0
                        while j < end and 48 <= buf[j] <= 57 and j - f0 < 5:
                            e = e * 10 + (buf[j] - 48)
                            j += 1
                        bad = j == f0 or (j < end and 48 <= buf[j] <= 57)
                        exp10 += -e if eneg else e
                    if bad or digits > 18:
                        break
                    if mant == 0:
                        v = 0.0
                    elif mant > _MAX_EXACT or exp10 < -22 or exp10 > 22:
                        v = _eisel_lemire(mant, exp10)
                        if v < 0:
                            break
                    elif exp10 == 0:
                        v = float(mant)
                    elif exp10 > 0:
                        v = float(mant) * _POW10[exp10]
                    else:
                        v = float(mant) / _POW10[-exp10]
                    if neg and not (is_int and mant == 0):  # the integer -0 is Python's 0
                        v = -v
                    nums[t] = v
                    kinds[t] = INT if is_int else FLOAT
                    spans[t, 0] = i
                    spans[t, 1] = j
                    t += 1
                    skel[s] = NUMBER
                    s += 1
                    i = j
                else:  # true, false, null: number tokens of their own kind, so they share a shape
                    if c == 116 and i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101:
                        k, kind, v = 4, TRUE, 1.0
                    elif c == 110 and i + 4 <= end and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
                        k, kind, v = 4, NULL, np.nan
                    elif (
                        c == 102 and i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115
                        and buf[i + 4] == 101
                    ):  # fmt: skip
                        k, kind, v = 5, FALSE, 0.0
                    else:
                        break
                    nums[t] = v
                    kinds[t] = kind
                    spans[t, 0] = i
                    spans[t, 1] = i + k
                    t += 1
                    skel[s] = NUMBER
                    s += 1
                    i += k
                state = 3
                continue
            elif state == 3:
                if c == 44:
                    skel[s] = 44
                    s += 1
                    i += 1
                    state = 1
                    continue
                if c != 125:
                    break
                state = 4
            # state 4: '}' at i closes an object
            skel[s] = 125
            s += 1
            i += 1
            depth -= 1
            state = 6 if depth == 0 else 3
        if not ok:
            continue
        # most messages have the previous message's shape: compare before hashing
        a, b = skel_bounds[guess], skel_bounds[guess + 1]
        if guess < n_tmpl and b - a == s - s0 and _same(skel, a, skel, s0, b - a):
            found = guess
        else:
            h = np.uint64(14695981039346656037)
            for q in range(s0, s):
                h = (h ^ np.uint64(skel[q])) * np.uint64(1099511628211)
            slot = np.int64(h & np.uint64(_TABLE - 1))
            found = -1
            while table[slot] >= 0:
                cand = table[slot]
                a, b = skel_bounds[cand], skel_bounds[cand + 1]
                if hashes[cand] == h and b - a == s - s0 and _same(skel, a, skel, s0, b - a):
                    found = cand
                    break
                slot = (slot + 1) & (_TABLE - 1)
            if found < 0:
                if n_tmpl >= MAX_TEMPLATES:
                    continue
                found = n_tmpl
                table[slot] = found
                hashes[found] = h
                counts[found] = t - t_all
                n_tmpl += 1
                skel_bounds[n_tmpl] = s
        template[m] = found
        first[m] = t_all
        t_all = t
        guess = found
    return (
        template,
        first,
        nums[:t_all],
        kinds[:t_all],
        spans[:t_all],
        skel[: skel_bounds[n_tmpl]],
        skel_bounds[: n_tmpl + 1],
        counts[:n_tmpl],
        rid_keys,
        rid_checks,
    )


@njit(cache=True, nogil=True)
def intern_keys(buf: np.ndarray, spans: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group messages by the bytes of their key strings: ``parts[m]`` holds, per message, the
    token indices of its (model, stage, variant) strings (-1: absent). Returns each message's
    group id and each group's first message."""
    n, k = parts.shape
    ids = np.zeros(n, np.int32)
    reps = np.zeros(n, np.int64)
    size = 1
    while size < 2 * n + 2:
        size *= 2
    table = np.full(size, -1, np.int32)
    hashes = np.zeros(n, np.uint64)
    groups = 0
    for m in range(n):
        h = np.uint64(14695981039346656037)
        for j in range(k):
            tok = parts[m, j]
            if tok >= 0:
                for i in range(spans[tok, 0], spans[tok, 1]):
                    h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
            h = (h ^ np.uint64(256 + j)) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(size - 1))
        found = -1
        while table[slot] >= 0:
            g = table[slot]
            if hashes[g] == h:
                r = reps[g]
                same = True
                for j in range(k):
                    x, y = parts[m, j], parts[r, j]
                    if (x < 0) != (y < 0):
                        same = False
                        break
                    if x >= 0:
                        a, b = spans[x, 0], spans[x, 1]
                        c, d = spans[y, 0], spans[y, 1]
                        if b - a != d - c or not _same(buf, a, buf, c, b - a):
                            same = False
                            break
                if same:
                    found = g
                    break
            slot = (slot + 1) & (size - 1)
        if found < 0:
            found = groups
            table[slot] = found
            hashes[found] = h
            reps[found] = m
            groups += 1
        ids[m] = found
    return ids, reps[:groups]


@njit(cache=True, nogil=True)
def gather(buf: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """The bytes of each span, NUL-separated: one decode and one split give every string
    (the scan takes no string with a control byte, so NUL never occurs inside one)."""
    n = spans.shape[0]
    total = n
    for k in range(n):
        total += spans[k, 1] - spans[k, 0]
    out = np.empty(max(total - 1, 0), np.uint8)
    j = 0
    for k in range(n):
        if k:
            out[j] = 0
            j += 1
        for i in range(spans[k, 0], spans[k, 1]):
            out[j] = buf[i]
            j += 1
    return out
