"""A batch of message values → per-key column blocks, without a Python object per event.

The compiled scan (``_scan_kernel``) tokenises the batch and names each message's shape (its
template). A template is read once (:func:`shape_of`) and cached. When it is an ordinary
event, its messages are checked with array operations against the same rules as
:func:`schemas.codec.decode` and become :class:`EventBlock` columns. An ordinary event has
model, stage, features (numbers, booleans, null, strings), and at most ts, variant, version,
event_id, request_id, a numeric prediction, latency_ms, schema_version and fields nobody
reads. Everything else (inline labels, escapes, non-ASCII text, errors) is left to
:func:`decode`, message by message.
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
from .codec import MAX_EVENT_BYTES, MAX_FEATURES, MAX_STRING, PredictionEvent, decode

__all__ = ["EventBlock", "Shape", "decode_blocks", "settle", "shape_of", "warm_scan"]

_MAX_TS = 2.0**53  # ts at or beyond this leaves the fast path (exact integers only)


@dataclass(frozen=True, slots=True)
class Shape:
    """Where a template's fields sit among its value tokens (-1: absent), or None when its
    messages go through the full decoder."""

    model: int
    stage: int
    ts: int
    variant: int
    version: int
    event_id: int
    request_id: int
    prediction: int
    latency: int
    schema_version: int
    names: tuple[str, ...]
    features: tuple[int, ...]  # token index of each feature's value
    text: frozenset[str]  # the features whose values are strings


_OPTIONAL = (("ts", K.NUMBER), ("variant", K.STRING), ("version", K.STRING), ("event_id", K.STRING),
             ("request_id", K.STRING), ("prediction", K.NUMBER), ("latency_ms", K.NUMBER),
             ("schema_version", K.NUMBER))  # fmt: skip


def shape_of(skeleton: bytes) -> Shape | None:
    """Read a template; None unless every message of it is an ordinary event.

    Duplicate keys resolve as orjson resolves them in the message itself (the last wins)."""
    obj = orjson.loads(rebuild(skeleton))
    if "label" in obj:
        return None
    model, stage = token(obj.get("model"), K.STRING), token(obj.get("stage"), K.STRING)
    feats = obj.get("features")
    if model is None or stage is None or type(feats) is not dict or len(feats) > MAX_FEATURES:
        return None
    toks: list[int] = []
    text: list[str] = []
    for name, v in feats.items():
        t = token(v, K.NUMBER)  # a number, or null/true/false: the scan's kinds tell them apart
        if t is None:
            t = token(v, K.STRING)
            text.append(name)
        if t is None or not 0 < len(name) <= MAX_STRING:
            return None
        toks.append(t)
    found: dict[str, int] = {}
    for field, kind in _OPTIONAL:
        if field not in obj:
            found[field] = -1
            continue
        t = token(obj[field], kind)
        if t is None:
            return None
        found[field] = t
    return Shape(model, stage, names=tuple(feats), features=tuple(toks), text=frozenset(text),
                 latency=found.pop("latency_ms"), schema_version=found.pop("schema_version"), **found)  # fmt: skip


_shape = ShapeCache(shape_of, 4096)
_KEY = attrgetter("model", "stage", "variant")


class EventBlock:
    """One (model, stage, variant)'s events of a batch, in stream order, as columns.

    ``values`` is (features, events) in ``names`` order; ``prediction`` and ``latency`` are
    per event (NaN: null) or None when the template has no such field. ``rows`` are the
    events' indices in the batch. :meth:`events` decodes them one by one, for the paths that
    need whole events (a new feature, variant comparisons)."""

    __slots__ = ("_buf", "_fallback", "_max_bytes", "_pred_kinds", "_raws", "_rid_keys", "_rid_spans", "_text_spans",
                 "latency", "model", "names", "prediction", "rows", "stage", "text", "ts", "values", "variant",
                 "version")  # fmt: skip

    def __init__(
        self, key: tuple[str, str, str], version: str | None, rows: np.ndarray, ts: np.ndarray,
        names: tuple[str, ...], values: np.ndarray, prediction: np.ndarray | None, latency: np.ndarray | None,
        raws: Sequence[bytes], fallback: np.ndarray, buf: bytes = b"", rid_spans: np.ndarray | None = None,
        pred_kinds: np.ndarray | None = None, text_spans: dict[str, np.ndarray] | None = None,
        max_bytes: int = MAX_EVENT_BYTES, rid_keys: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:  # fmt: skip
        self.model, self.stage, self.variant = key
        self.version = version
        self.rows, self.ts, self.names, self.values = rows, ts, names, values
        self.prediction, self.latency = prediction, latency
        self._raws, self._fallback, self._max_bytes = raws, fallback, max_bytes
        self._buf, self._rid_spans, self._pred_kinds, self._rid_keys = buf, rid_spans, pred_kinds, rid_keys
        self._text_spans = text_spans or {}
        self.text = frozenset(self._text_spans)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def has_request_ids(self) -> bool:
        return self._rid_spans is not None

    def request_ids(self) -> list[str]:
        """Each event's request_id (the template has one)."""
        assert self._rid_spans is not None
        return self._strings(self._rid_spans)

    def request_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Each event's request_id as the label join keys it (``detectors.keys``): hashed by the
        scan while the bytes were in cache (the scan takes no escape and no non-ASCII byte, so
        they are the UTF-8)."""
        assert self._rid_keys is not None
        keys, checks = self._rid_keys  # the batch's, per message: indexed only when a join keeps them
        return keys[self.rows], checks[self.rows]

    def texts(self, name: str) -> list[str]:
        """Each event's value of a feature in :attr:`text`."""
        return self._strings(self._text_spans[name])

    def _strings(self, spans: np.ndarray) -> list[str]:
        return strings(np.frombuffer(self._buf, np.uint8), spans)

    def predictions(self) -> list[Any]:
        """Each event's prediction as the codec gives it: a float, an int or None."""
        if self.prediction is None:
            return [None] * len(self)
        values = self.prediction.tolist()
        kinds = self._pred_kinds
        if kinds is None or not kinds.any():  # all floats
            return values  # type: ignore[no-any-return]
        pairs = zip(values, kinds.tolist(), strict=True)
        return [int(v) if k == K.INT else None if k == K.NULL else v for v, k in pairs]

    def prediction_column(self) -> np.ndarray | list[Any]:
        """:meth:`predictions`, as the float column itself when every one is a float."""
        kinds = self._pred_kinds
        if self.prediction is not None and (kinds is None or not kinds.any()):
            return self.prediction
        return self.predictions()

    def exact_predictions(self) -> bool:
        """False when an integer prediction is too large for a float to hold it exactly."""
        kinds = self._pred_kinds
        if kinds is None or self.prediction is None:
            return True
        return not bool(((kinds == K.INT) & (np.abs(self.prediction) >= _MAX_TS)).any())

    def events(self) -> list[PredictionEvent]:
        out = []
        for i in self.rows.tolist():
            fb = int(self._fallback[i])
            ev = decode(self._raws[i], fb if fb >= 0 else None, self._max_bytes)
            assert type(ev) is PredictionEvent  # checked by the same rules already
            out.append(ev)
        return out


def _valid(shape: Shape, base: np.ndarray, nums: np.ndarray, kinds: np.ndarray, spans: np.ndarray,
           fallback: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Which messages of one template pass the codec's value rules, and their event times."""
    ok = np.ones(base.shape[0], bool)
    for tok, lo in ((shape.model, 1), (shape.stage, 1), (shape.variant, 1), (shape.version, 0), (shape.event_id, 0),
                    (shape.request_id, 0)):  # fmt: skip
        if tok >= 0:
            n = lengths(spans, base + tok)
            ok &= (n >= lo) & (n <= MAX_STRING)
    for tok in (shape.ts, shape.latency, shape.schema_version):  # numbers, not null or booleans
        if tok >= 0:
            ok &= kinds[base + tok] <= K.INT
    if shape.prediction >= 0:  # a number or null
        ok &= kinds[base + shape.prediction] <= K.NULL
    if shape.ts >= 0:
        v = nums[base + shape.ts]
        ok &= (v >= 0) & (v < _MAX_TS)
        ts = np.where(ok, v, 0).astype(np.int64)
    else:
        ts = fallback[rows]
        ok &= ts >= 0
    if shape.latency >= 0:
        ok &= nums[base + shape.latency] >= 0
    if shape.schema_version >= 0:
        ok &= nums[base + shape.schema_version] == 1
    return ok, ts


def decode_blocks(
    values: Sequence[bytes], fallback: np.ndarray, max_bytes: int = MAX_EVENT_BYTES
) -> tuple[list[EventBlock], np.ndarray]:
    """Column blocks for the ordinary events among ``values`` (message values, none None;
    ``fallback`` their Kafka timestamps, -1 for none). Also each message's block, -1 for a
    message the caller must :func:`decode` itself. A key whose events come in more than one
    shape in this batch is left to the caller whole, so its order survives."""
    n = len(values)
    owner = np.full(n, -1, np.int64)
    if not n:
        return [], owner
    sc = scan_batch(values, max_bytes)
    raw, template, first, nums, kinds, spans = sc.raw, sc.template, sc.first, sc.nums, sc.kinds, sc.spans
    shapes, ts_all = check_templates(
        sc, _shape, lambda shape, rows: _valid(shape, first[rows], nums, kinds, spans, fallback, rows)
    )
    good = np.flatnonzero(template >= 0)
    if not good.shape[0]:
        return [], owner
    tg = template[good]
    offs = np.array([[s.model, s.stage, s.variant] if s else [0, 0, 0] for s in shapes], np.int64)[tg]
    parts = np.where(offs >= 0, first[good][:, None] + offs, -1)
    gid, reps, order, cuts = group_rows(sc, good, parts)
    mixed = np.bincount(gid, weights=tg != tg[reps][gid], minlength=reps.shape[0]) > 0
    blocks: list[EventBlock] = []
    batch_keys = (sc.rid_keys, sc.rid_checks)
    for g in range(reps.shape[0]):
        if mixed[g]:
            continue
        rows = good[order[cuts[g] : cuts[g + 1]]]
        shape = shapes[tg[reps[g]]]
        assert shape is not None
        base = first[rows]
        r = rows[-1]
        key = (span_text(raw, spans, first[r] + shape.model), span_text(raw, spans, first[r] + shape.stage),
               span_text(raw, spans, first[r] + shape.variant) if shape.variant >= 0 else "primary")  # fmt: skip
        block = nums[np.array(shape.features, np.int64)[:, None] + base[None, :]]
        text = {}
        for j, name in enumerate(shape.names):
            if name in shape.text:
                text[name] = spans[base + shape.features[j]]
                block[j] = np.nan  # not a number: a numeric signal of it takes whole events
        version = span_text(raw, spans, first[r] + shape.version) if shape.version >= 0 else None
        pred = nums[base + shape.prediction] if shape.prediction >= 0 else None
        pred_kinds = kinds[base + shape.prediction] if shape.prediction >= 0 else None
        lat = nums[base + shape.latency] if shape.latency >= 0 else None
        rids = spans[base + shape.request_id] if shape.request_id >= 0 else None
        owner[rows] = len(blocks)
        blocks.append(EventBlock(key, version, rows, ts_all[rows], shape.names, block, pred, lat, values, fallback,
                                 raw, rids, pred_kinds, text, max_bytes,
                                 batch_keys if rids is not None else None))  # fmt: skip
    return blocks, owner


def settle(
    blocks: Sequence[EventBlock], decoded: Sequence[tuple[int, PredictionEvent]]
) -> tuple[list[PredictionEvent], list[EventBlock]]:
    """Events and blocks with no key in both: ``decoded`` are (row, event) pairs the caller
    decoded itself (messages the scan left to it). A block whose key is among them is decoded
    too and merged by row, so each key's events stay in stream order."""
    return settle_by(blocks, decoded, _KEY)


def warm_scan() -> None:
    """Load (or compile) the scan kernels before the first batch, as ``detectors.warm_kernels``
    does for the detectors."""
    raw = b'{"model":"w","stage":"w","features":{"x":0.30000000000000004,"c":"a"},"ts":1,"request_id":"r"}'
    blocks, _ = decode_blocks([raw], np.zeros(1, np.int64))
    blocks[0].request_ids()
