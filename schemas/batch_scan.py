"""The compiled scan of a batch, shared by the event and label batch decoders.

:func:`scan_batch` tokenises a batch of message values (``_scan_kernel.scan``); each decoder
then reads its templates (:class:`ShapeCache`, with :func:`rebuild` and :func:`token`),
checks their values with array operations (:func:`check_templates`, :func:`lengths`), groups the good messages by key
(:func:`group_rows`) and reads strings out of the batch (:func:`span_text`, :func:`strings`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from operator import itemgetter
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from . import _scan_kernel as K

__all__ = [
    "Scan",
    "ShapeCache",
    "check_templates",
    "group_rows",
    "lengths",
    "rebuild",
    "scan_batch",
    "span_text",
    "strings",
    "token",
]

S = TypeVar("S")
B = TypeVar("B")
D = TypeVar("D")


class Scan(NamedTuple):
    """A scanned batch: its bytes and the kernel's arrays (``template`` -1: not scanned)."""

    raw: bytes
    buf: np.ndarray
    template: np.ndarray
    first: np.ndarray
    nums: np.ndarray
    kinds: np.ndarray
    spans: np.ndarray
    skel: np.ndarray
    bounds: np.ndarray
    counts: np.ndarray
    rid_keys: np.ndarray  # per message: its request_id's key and check (``_request_hash``), int64
    rid_checks: np.ndarray

    def skeleton(self, t: int) -> bytes:
        return self.skel[self.bounds[t] : self.bounds[t + 1]].tobytes()


def scan_batch(values: Sequence[bytes], max_bytes: int) -> Scan:
    """Scan message values (none None); a message over ``max_bytes`` is never scanned."""
    n = len(values)
    lens = np.fromiter(map(len, values), np.int64, n)
    big = lens > max_bytes
    scanned = [b"" if len(v) > max_bytes else v for v in values] if big.any() else values
    lens[big] = 0
    ends = np.cumsum(lens)
    raw = b"".join(scanned)
    buf = np.frombuffer(raw, np.uint8)
    room = _room(buf.shape[0])
    template, first, nums, kinds, spans, skel, bounds, counts, rk, rc = K.scan(buf, ends - lens, ends, *room)
    template[big] = -1
    return Scan(raw, buf, template, first, nums, kinds, spans, skel, bounds, counts, rk.view(np.int64),
                rc.view(np.int64))  # fmt: skip


# The token arrays of the last batch scanned on each thread, used again for the next one: a
# batch's are tens of MB (sized for the worst case) and few of their pages are touched. Fresh
# each time, they landed where the heap had room, which in a process that also grows its label
# joins' tables and segments was often new pages: in the labels benchmark's run B, 8,000-18,000
# page faults per run in the event decoding, against ~250 in run A. Every decoder copies what
# it keeps out of them (fancy indexing, strings), so the next batch may overwrite them.
_ROOM = threading.local()
_ROOM_MAX = 8 << 20  # batches of more bytes get arrays of their own, not kept


def _room(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(nums, kinds, spans, skel) with room for a batch of ``size`` bytes."""
    tokens = size // 2 + 1
    kept: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = getattr(_ROOM, "arrays", None)
    if kept is not None and kept[0].shape[0] >= tokens and kept[3].shape[0] >= size + 2:
        return kept
    if size > _ROOM_MAX:
        return _token_arrays(tokens, size + 2)
    # some headroom, so a slightly larger batch does not allocate again
    made = _ROOM.arrays = _token_arrays(tokens + tokens // 4, size + 2 + size // 4)
    return made


def _token_arrays(tokens: int, skel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.empty(tokens, np.float64), np.empty(tokens, np.uint8), np.empty((tokens, 2), np.int64),
            np.empty(skel, np.uint8))  # fmt: skip


def rebuild(skeleton: bytes) -> bytes:
    """The skeleton as JSON, each marker replaced by ``[kind, token index]``."""
    out = bytearray()
    k = 0
    for c in skeleton:
        if c in (K.NUMBER, K.STRING):
            out += b"[%d,%d]" % (c, k)
            k += 1
        else:
            out.append(c)
    return bytes(out)


def token(v: object, kind: int) -> int | None:
    """The token index of a rebuilt value of this marker kind, else None."""
    return v[1] if type(v) is list and v[0] == kind else None


class ShapeCache(Generic[S]):
    """Templates read once (``read``: a skeleton → its shape, or None); at most ``limit``."""

    def __init__(self, read: Callable[[bytes], S | None], limit: int) -> None:
        self._read, self._limit = read, limit
        self._shapes: dict[bytes, S | None] = {}

    def __call__(self, skeleton: bytes) -> S | None:
        try:
            return self._shapes[skeleton]
        except KeyError:
            if len(self._shapes) >= self._limit:
                self._shapes.clear()
            shape = self._shapes[skeleton] = self._read(skeleton)
            return shape


def check_templates(
    sc: Scan, shape_of: Callable[[bytes], S | None], valid: Callable[[S, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> tuple[list[S | None], np.ndarray]:
    """Read each template's shape (None: its messages are left to the codec) and check its
    messages' values (``valid(shape, rows)``: which pass, and their event times). A message
    left out gets template -1. Returns the shapes by template and each message's event time."""
    ts_all = np.zeros(sc.template.shape[0], np.int64)
    shapes: list[S | None] = []
    for t in range(sc.counts.shape[0]):
        shape = shape_of(sc.skeleton(t))
        shapes.append(shape)
        rows = np.flatnonzero(sc.template == t)
        if shape is None:
            sc.template[rows] = -1
            continue
        ok, ts = valid(shape, rows)
        ts_all[rows] = ts
        sc.template[rows[~ok]] = -1
    return shapes, ts_all


def group_rows(sc: Scan, good: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group the ``good`` messages by the strings at ``parts`` (token indices, -1: absent):
    (group of each, a representative of each group, the order that sorts by group, the cuts
    between groups in that order). Each group keeps stream order."""
    gid, reps = K.intern_keys(sc.buf, sc.spans, parts)
    order = np.argsort(gid, kind="stable")
    cuts = np.searchsorted(gid[order], np.arange(reps.shape[0] + 1))
    return gid, reps, order, cuts


def span_text(raw: bytes, spans: np.ndarray, tok: int) -> str:
    return raw[spans[tok, 0] : spans[tok, 1]].decode("ascii")


def strings(buf: np.ndarray, spans: np.ndarray) -> list[str]:
    """The strings at ``spans``, in one compiled gather, one decode and one split."""
    return K.gather(buf, spans).tobytes().decode("ascii").split("\x00")


def lengths(spans: np.ndarray, toks: np.ndarray) -> np.ndarray:
    return spans[toks, 1] - spans[toks, 0]  # type: ignore[no-any-return]


def settle_by(
    blocks: Sequence[B], decoded: Sequence[tuple[int, D]], key: Callable[[Any], Hashable]
) -> tuple[list[D], list[B]]:
    """Decoded items and blocks with no ``key`` in both (``decoded``: (row, item) pairs the
    caller decoded itself; a block has ``rows`` and ``events()``): a block whose key is among
    them is decoded too and merged by row, so each key's items stay in stream order."""
    keys = {key(d) for _, d in decoded}
    clash = [b for b in blocks if key(b) in keys]
    if not clash:
        return [d for _, d in decoded], list(blocks)
    merged: list[tuple[int, Any]] = list(decoded)
    for b in clash:
        merged.extend(zip(b.rows.tolist(), b.events(), strict=True))  # type: ignore[attr-defined]
    merged.sort(key=itemgetter(0))
    return [d for _, d in merged], [b for b in blocks if key(b) not in keys]
