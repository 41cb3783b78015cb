"""Bytes → validated label event, or a typed rejection (``label_event.schema.json``).

The common label (``request_id``, ``label``, integer ``ts``, perhaps ``model`` and ``stage``,
nothing else) takes a fast path; every other value gets every check, with the reason codes the
prediction codec uses. A label that takes the re-key hop is decoded twice (on the labels topic,
and at its stage's home), so this matters. :func:`encode_label` writes the canonical form that the
processor re-keys to a monitor's home partition (model and stage filled in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .codec import MAX_EVENT_BYTES, MAX_STRING, FeatureValue, Rejection, _opt_string, _timestamp

__all__ = ["LabelEvent", "decode_label", "encode_label"]


@dataclass(slots=True)
class LabelEvent:
    """A decoded, valid label. ``ts`` is epoch milliseconds (when the label became known)."""

    request_id: str
    label: FeatureValue
    ts: int
    model: str | None = None
    stage: str | None = None


def decode_label(
    raw: bytes | None, fallback_ts_ms: int | None = None, max_bytes: int = MAX_EVENT_BYTES
) -> LabelEvent | Rejection:
    """Decode one labels-topic message value; never raises on bad input."""
    if raw is None:
        return Rejection("empty", "message has no value (tombstone)")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    if type(obj) is dict:
        lab = _fast(obj)
        if lab is not None:
            return lab
    return _validate(obj, fallback_ts_ms)


_LABEL_TYPES = frozenset((float, int, str, bool))


def _fast(obj: dict[str, Any]) -> LabelEvent | None:
    """The common, valid label; None = let :func:`_validate` decide (accepts only what it accepts)."""
    rid = obj.get("request_id")
    ts = obj.get("ts")
    if type(rid) is not str or not 0 < len(rid) <= MAX_STRING or type(ts) is not int or ts < 0:
        return None
    label = obj.get("label")
    if type(label) not in _LABEL_TYPES:
        return None
    model = obj.get("model")
    stage = obj.get("stage")
    if model is None and stage is None:
        return LabelEvent(rid, label, ts) if len(obj) == 3 else None
    if type(model) is not str or type(stage) is not str or len(obj) != 5:
        return None
    if not (0 < len(model) <= MAX_STRING and 0 < len(stage) <= MAX_STRING):
        return None
    return LabelEvent(rid, label, ts, model, stage)


def _validate(obj: Any, fallback_ts_ms: int | None) -> LabelEvent | Rejection:
    if type(obj) is not dict:
        return Rejection("not_an_object", f"top level is {type(obj).__name__}, not an object")
    for name in ("request_id", "label"):
        if name not in obj:
            return Rejection(f"missing_field:{name}", f"required field {name!r} is absent")
    request_id = _opt_string(obj, "request_id", min_len=1)
    if isinstance(request_id, Rejection):
        return request_id
    label = obj["label"]
    if type(label) not in (float, int, str, bool):
        return Rejection("bad_type:label", "label must be a number, string or boolean")
    ts = _timestamp(obj.get("ts"), fallback_ts_ms)
    if isinstance(ts, Rejection):
        return ts
    model = _opt_string(obj, "model", min_len=1)
    if isinstance(model, Rejection):
        return model
    stage = _opt_string(obj, "stage", min_len=1)
    if isinstance(stage, Rejection):
        return stage
    if (model is None) != (stage is None):
        missing = "stage" if stage is None else "model"
        return Rejection(f"missing_field:{missing}", "give model and stage together, or neither")
    sv = obj.get("schema_version", 1)
    if "schema_version" in obj and not (type(sv) is int and sv == 1):
        return Rejection("bad_value:schema_version", "this driftstream reads schema_version 1")
    assert request_id is not None
    return LabelEvent(request_id, label, ts, model, stage)


def encode_label(ev: LabelEvent, model: str, stage: str) -> bytes:
    """The canonical label for (model, stage): what the processor re-keys to its home."""
    return orjson.dumps({"request_id": ev.request_id, "label": ev.label, "ts": ev.ts, "model": model, "stage": stage})
