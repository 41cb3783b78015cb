"""A batch of labels-topic values → per-stage label columns, as :mod:`schemas.blocks` does for
prediction events.

A labelled stage reads one label per labelled prediction; decoded one by one (``orjson``, the
checks, a :class:`LabelEvent`, the routing) a label cost ~2 µs before it reached its join. The
compiled scan reads the whole batch; a template of the common label (request_id, label, ts,
model, stage, perhaps schema_version) is checked with array operations against the same rules
as :func:`schemas.labels.decode_label`. Everything else (no model and stage, null labels,
escapes, errors) is left to :func:`decode_label`, message by message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from . import _scan_kernel as K
from .blocks import _lengths, _rebuild, _text, _token
from .codec import MAX_EVENT_BYTES, MAX_STRING
from .labels import LabelEvent, decode_label

__all__ = ["LabelBlock", "LabelShape", "decode_label_blocks", "label_shape_of", "settle_labels"]

_MAX_EXACT = 2.0**53  # integers at or beyond this leave the fast path (a float holds them inexactly)
_FIELDS = {"request_id", "label", "ts", "model", "stage", "schema_version"}


@dataclass(frozen=True, slots=True)
class LabelShape:
    """Where a label template's fields sit among its value tokens (-1: absent)."""

    request_id: int
    label: int
    text: bool  # the label is a string
    ts: int
    model: int
    stage: int
    schema_version: int


def label_shape_of(skeleton: bytes) -> LabelShape | None:
    """Read a template; None unless every message of it is a label naming its stage."""
    obj = orjson.loads(_rebuild(skeleton))
    if not set(obj) <= _FIELDS:
        return None
    rid, model, stage = (_token(obj.get(f), K.STRING) for f in ("request_id", "model", "stage"))
    label = _token(obj.get("label"), K.NUMBER)
    text = label is None
    if text:
        label = _token(obj.get("label"), K.STRING)
    ts = _token(obj.get("ts"), K.NUMBER) if "ts" in obj else -1
    sv = _token(obj.get("schema_version"), K.NUMBER) if "schema_version" in obj else -1
    if rid is None or model is None or stage is None or label is None or ts is None or sv is None:
        return None
    return LabelShape(rid, label, text, ts, model, stage, sv)


_SHAPES: dict[bytes, LabelShape | None] = {}


def _cached_shape(skeleton: bytes) -> LabelShape | None:
    shape = _SHAPES.get(skeleton, False)
    if shape is False:
        if len(_SHAPES) >= 1024:
            _SHAPES.clear()
        shape = _SHAPES[skeleton] = label_shape_of(skeleton)
    return shape  # type: ignore[return-value]


class LabelBlock:
    """One stage's labels of a batch, in arrival order: ``rows`` are their indices in the
    batch, ``ts`` their times, ``labels`` their values as the codec gives them."""

    __slots__ = ("_buf", "_max_bytes", "_raws", "_rid_spans", "labels", "model", "rows", "stage", "ts")

    def __init__(
        self, model: str, stage: str, rows: np.ndarray, ts: np.ndarray, labels: list[Any], raws: Sequence[bytes],
        buf: bytes, rid_spans: np.ndarray, max_bytes: int = MAX_EVENT_BYTES,
    ) -> None:  # fmt: skip
        self.model, self.stage = model, stage
        self.rows, self.ts, self.labels = rows, ts, labels
        self._raws, self._buf, self._rid_spans, self._max_bytes = raws, buf, rid_spans, max_bytes

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def request_id_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """(the batch's bytes, each label's request_id span in them): see
        :meth:`schemas.EventBlock.request_id_bytes`."""
        return np.frombuffer(self._buf, np.uint8), self._rid_spans

    def request_ids(self) -> list[str]:
        joined = K.gather(np.frombuffer(self._buf, np.uint8), self._rid_spans)
        return joined.tobytes().decode("ascii").split("\x00")

    def raws(self) -> list[bytes]:
        """The messages themselves (to forward to another process's home)."""
        return [self._raws[i] for i in self.rows.tolist()]

    def events(self) -> list[LabelEvent]:
        """The labels decoded one by one (checked by the same rules already)."""
        out = []
        for raw, ts in zip(self.raws(), self.ts.tolist(), strict=True):
            lab = decode_label(raw, ts, self._max_bytes)
            assert type(lab) is LabelEvent
            out.append(lab)
        return out


def _values(shape: LabelShape, base: np.ndarray, nums: np.ndarray, kinds: np.ndarray, buf: np.ndarray,
            spans: np.ndarray) -> list[Any]:  # fmt: skip
    tok = base + shape.label
    if shape.text:
        return K.gather(buf, spans[tok]).tobytes().decode("ascii").split("\x00")
    k = kinds[tok]
    if (k == K.FLOAT).all():
        return nums[tok].tolist()  # type: ignore[no-any-return]
    if (k == K.INT).all():  # the scan took only integers a float holds exactly
        return nums[tok].astype(np.int64).tolist()  # type: ignore[no-any-return]
    if ((k == K.TRUE) | (k == K.FALSE)).all():
        return (k == K.TRUE).tolist()  # type: ignore[no-any-return]
    out: list[Any] = []
    for v, kind in zip(nums[tok].tolist(), k.tolist(), strict=True):
        out.append(v if kind == K.FLOAT else int(v) if kind == K.INT else kind == K.TRUE)
    return out


def decode_label_blocks(
    values: Sequence[bytes], fallback: np.ndarray, max_bytes: int = MAX_EVENT_BYTES
) -> tuple[list[LabelBlock], np.ndarray]:
    """Column blocks, one per stage, for the common labels among ``values`` (none None;
    ``fallback`` their Kafka timestamps, -1 for none), and each message's block (-1: the
    caller decodes it with :func:`decode_label`)."""
    n = len(values)
    owner = np.full(n, -1, np.int64)
    if not n:
        return [], owner
    lens = np.fromiter(map(len, values), np.int64, n)
    big = lens > max_bytes
    lens[big] = 0
    ends = np.cumsum(lens)
    raw = b"".join([b"" if len(v) > max_bytes else v for v in values] if big.any() else values)
    buf = np.frombuffer(raw, np.uint8)
    template, first, nums, kinds, spans, skel, bounds, counts = K.scan(buf, ends - lens, ends)
    template[big] = -1
    ts_all = np.zeros(n, np.int64)
    shapes: list[LabelShape | None] = []
    for t in range(counts.shape[0]):
        shape = _cached_shape(skel[bounds[t] : bounds[t + 1]].tobytes())
        shapes.append(shape)
        rows = np.flatnonzero(template == t)
        if shape is None:
            template[rows] = -1
            continue
        base = first[rows]
        ok = np.ones(rows.shape[0], bool)
        for tok in (shape.request_id, shape.model, shape.stage):
            m = _lengths(spans, base + tok)
            ok &= (m >= 1) & (m <= MAX_STRING)
        if not shape.text:  # a number or a boolean, not null; an integer a float holds exactly
            k = kinds[base + shape.label]
            ok &= (k != K.NULL) & ((k != K.INT) | (np.abs(nums[base + shape.label]) < _MAX_EXACT))
        if shape.ts >= 0:
            v = nums[base + shape.ts]
            ok &= (kinds[base + shape.ts] <= K.INT) & (v >= 0) & (v < _MAX_EXACT)
            ts_all[rows] = np.where(ok, v, 0).astype(np.int64)
        else:
            ts_all[rows] = fallback[rows]
            ok &= fallback[rows] >= 0
        if shape.schema_version >= 0:
            ok &= (kinds[base + shape.schema_version] == K.INT) & (nums[base + shape.schema_version] == 1)
        template[rows[~ok]] = -1
    good = np.flatnonzero(template >= 0)
    if not good.shape[0]:
        return [], owner
    tg = template[good]
    offs = np.array([[s.model, s.stage, -1] if s else [0, 0, -1] for s in shapes], np.int64)[tg]
    parts = np.where(offs >= 0, first[good][:, None] + offs, -1)
    gid, reps = K.intern_keys(buf, spans, parts)
    order = np.argsort(gid, kind="stable")
    cuts = np.searchsorted(gid[order], np.arange(reps.shape[0] + 1))
    blocks: list[LabelBlock] = []
    for g in range(reps.shape[0]):
        at = order[cuts[g] : cuts[g + 1]]
        rows = good[at]
        r = rows[-1]
        shape0 = shapes[tg[at[-1]]]
        assert shape0 is not None
        labels: list[Any] = [None] * rows.shape[0]
        rid_spans = np.empty((rows.shape[0], 2), np.int64)
        for t in np.unique(tg[at]).tolist():  # a stage's labels may come in more than one template
            mine = np.flatnonzero(tg[at] == t)
            shape = shapes[t]
            assert shape is not None
            base = first[rows[mine]]
            for i, v in zip(mine.tolist(), _values(shape, base, nums, kinds, buf, spans), strict=True):
                labels[i] = v
            rid_spans[mine] = spans[base + shape.request_id]
        owner[rows] = len(blocks)
        model, stage = _text(raw, spans, first[r] + shape0.model), _text(raw, spans, first[r] + shape0.stage)
        blocks.append(LabelBlock(model, stage, rows, ts_all[rows], labels, values, raw, rid_spans, max_bytes))
    return blocks, owner


def settle_labels(
    blocks: Sequence[LabelBlock], decoded: Sequence[tuple[int, LabelEvent]]
) -> tuple[list[LabelEvent], list[LabelBlock]]:
    """Labels and blocks with no stage in both (``decoded``: (row, label) pairs the caller
    decoded itself): a block whose stage is among them is decoded too and merged by row, so
    each stage's labels stay in arrival order."""
    stages = {(lab.model, lab.stage) for _, lab in decoded}
    clash = [b for b in blocks if (b.model, b.stage) in stages]
    if not clash:
        return [lab for _, lab in decoded], list(blocks)
    merged = list(decoded)
    for b in clash:
        merged.extend(zip(b.rows.tolist(), b.events(), strict=True))
    merged.sort(key=itemgetter(0))
    return [lab for _, lab in merged], [b for b in blocks if (b.model, b.stage) not in stages]
