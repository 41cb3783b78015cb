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
from operator import attrgetter
from typing import Any

import numpy as np
import orjson

from . import _scan_kernel as K
from .batch_scan import (
    Scan,
    ShapeCache,
    check_templates,
    group_rows,
    lengths,
    rebuild,
    scan_batch,
    settle_by,
    span_text,
    strings,
    token,
)
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
    obj = orjson.loads(rebuild(skeleton))
    if not set(obj) <= _FIELDS:
        return None
    rid, model, stage = (token(obj.get(f), K.STRING) for f in ("request_id", "model", "stage"))
    label = token(obj.get("label"), K.NUMBER)
    text = label is None
    if text:
        label = token(obj.get("label"), K.STRING)
    ts = token(obj.get("ts"), K.NUMBER) if "ts" in obj else -1
    sv = token(obj.get("schema_version"), K.NUMBER) if "schema_version" in obj else -1
    if rid is None or model is None or stage is None or label is None or ts is None or sv is None:
        return None
    return LabelShape(rid, label, text, ts, model, stage, sv)


_shape = ShapeCache(label_shape_of, 1024)
_STAGE = attrgetter("model", "stage")


class LabelBlock:
    """One stage's labels of a batch, in arrival order: ``rows`` are their indices in the
    batch, ``ts`` their times, ``labels`` their values as the codec gives them."""

    __slots__ = ("_buf", "_max_bytes", "_raws", "_rid_keys", "_rid_spans", "labels", "model", "rows", "stage", "ts")

    def __init__(
        self, model: str, stage: str, rows: np.ndarray, ts: np.ndarray, labels: list[Any], raws: Sequence[bytes],
        buf: bytes, rid_spans: np.ndarray, rid_keys: tuple[np.ndarray, np.ndarray], max_bytes: int = MAX_EVENT_BYTES,
    ) -> None:  # fmt: skip
        self.model, self.stage = model, stage
        self.rows, self.ts, self.labels = rows, ts, labels
        self._raws, self._buf, self._rid_spans, self._max_bytes = raws, buf, rid_spans, max_bytes
        self._rid_keys = rid_keys

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def request_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Each label's request_id as the label join keys it: see
        :meth:`schemas.EventBlock.request_keys`."""
        keys, checks = self._rid_keys  # the batch's, per message
        return keys[self.rows], checks[self.rows]

    def request_ids(self) -> list[str]:
        return strings(np.frombuffer(self._buf, np.uint8), self._rid_spans)

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
        return strings(buf, spans[tok])
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


def _valid(shape: LabelShape, sc: Scan, fallback: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which labels of one template pass ``decode_label``'s value rules, and their times."""
    base, nums, kinds = sc.first[rows], sc.nums, sc.kinds
    ok = np.ones(rows.shape[0], bool)
    for tok in (shape.request_id, shape.model, shape.stage):
        m = lengths(sc.spans, base + tok)
        ok &= (m >= 1) & (m <= MAX_STRING)
    if not shape.text:  # a number or a boolean, not null; an integer a float holds exactly
        k = kinds[base + shape.label]
        ok &= (k != K.NULL) & ((k != K.INT) | (np.abs(nums[base + shape.label]) < _MAX_EXACT))
    if shape.ts >= 0:
        v = nums[base + shape.ts]
        ok &= (kinds[base + shape.ts] <= K.INT) & (v >= 0) & (v < _MAX_EXACT)
        ts = np.where(ok, v, 0).astype(np.int64)
    else:
        ts = fallback[rows]
        ok &= ts >= 0
    if shape.schema_version >= 0:
        ok &= (kinds[base + shape.schema_version] == K.INT) & (nums[base + shape.schema_version] == 1)
    return ok, ts


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
    sc = scan_batch(values, max_bytes)
    raw, buf, template, first, nums, kinds, spans = sc.raw, sc.buf, sc.template, sc.first, sc.nums, sc.kinds, sc.spans
    shapes, ts_all = check_templates(sc, _shape, lambda shape, rows: _valid(shape, sc, fallback, rows))
    good = np.flatnonzero(template >= 0)
    if not good.shape[0]:
        return [], owner
    tg = template[good]
    offs = np.array([[s.model, s.stage, -1] if s else [0, 0, -1] for s in shapes], np.int64)[tg]
    parts = np.where(offs >= 0, first[good][:, None] + offs, -1)
    _, reps, order, cuts = group_rows(sc, good, parts)
    # every good label's value and request_id span in stage order, one template at a time,
    # then cut by stage (values made in that order: no reordering of a list per label)
    rows_all, offsets = good[order], cuts.tolist()
    tgo = template[rows_all]
    ordered: list[Any] = [None] * good.shape[0]
    rid_spans = np.empty((good.shape[0], 2), np.int64)
    for t in np.unique(tgo).tolist():
        mine = np.flatnonzero(tgo == t) if len(shapes) > 1 else np.arange(good.shape[0])
        shape = shapes[t]
        assert shape is not None
        base = first[rows_all[mine]]
        got = _values(shape, base, nums, kinds, buf, spans)
        if mine.shape[0] == good.shape[0]:
            ordered = got
        else:
            for i, v in zip(mine.tolist(), got, strict=True):
                ordered[i] = v
        rid_spans[mine] = spans[base + shape.request_id]
    blocks: list[LabelBlock] = []
    batch_keys = (sc.rid_keys, sc.rid_checks)
    for g in range(reps.shape[0]):
        a, b = offsets[g], offsets[g + 1]
        rows = rows_all[a:b]
        r = int(rows[-1])
        shape0 = shapes[int(template[r])]
        assert shape0 is not None
        owner[rows] = len(blocks)
        model, stage = span_text(raw, spans, first[r] + shape0.model), span_text(raw, spans, first[r] + shape0.stage)
        blocks.append(LabelBlock(model, stage, rows, ts_all[rows], ordered[a:b], values, raw, rid_spans[a:b],
                                 batch_keys, max_bytes))  # fmt: skip
    return blocks, owner


def settle_labels(
    blocks: Sequence[LabelBlock], decoded: Sequence[tuple[int, LabelEvent]]
) -> tuple[list[LabelEvent], list[LabelBlock]]:
    """Labels and blocks with no stage in both (``decoded``: (row, label) pairs the caller
    decoded itself): a block whose stage is among them is decoded too and merged by row, so
    each stage's labels stay in arrival order."""
    return settle_by(blocks, decoded, _STAGE)
