"""Bytes → validated prediction event, or a typed rejection. The hot path of ingestion.

orjson parses; hand-written checks enforce exactly what ``prediction_event.schema.json``
says (tests run a shared example set through both and require agreement). A generic
JSON-Schema validator costs tens of microseconds per event: too slow here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

__all__ = ["MAX_EVENT_BYTES", "PredictionEvent", "Rejection", "decode", "encode_alert"]

MAX_EVENT_BYTES = 1_048_576
MAX_FEATURES = 1000
MAX_STRING = 256
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
FeatureValue = float | int | str | bool | None


@dataclass(slots=True)
class PredictionEvent:
    """A decoded, valid event. ``ts`` is epoch milliseconds (event time)."""

    model: str
    stage: str
    features: dict[str, FeatureValue]
    ts: int
    variant: str = "primary"
    version: str | None = None
    prediction: FeatureValue = None
    label: FeatureValue = None
    latency_ms: float | None = None
    request_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused: a stable ``reason`` code and a human ``detail``."""

    reason: str
    detail: str


def _is_number(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and v is not True and v is not False


def _opt_string(obj: dict[str, Any], name: str, *, min_len: int = 0) -> str | Rejection | None:
    v = obj.get(name)
    if v is None:
        if name in obj:
            return Rejection(f"bad_type:{name}", f"{name} must be a string, got null")
        return None
    if type(v) is not str:
        return Rejection(f"bad_type:{name}", f"{name} must be a string, got {type(v).__name__}")
    if not min_len <= len(v) <= MAX_STRING:
        return Rejection(f"bad_value:{name}", f"{name} must have {min_len}..{MAX_STRING} characters")
    return v


def _scalar(obj: dict[str, Any], name: str) -> FeatureValue | Rejection:
    v = obj.get(name)
    if v is None or type(v) in (float, int, str, bool):
        return v
    return Rejection(f"bad_type:{name}", f"{name} must be a number, string, boolean or null")


def _timestamp(v: Any, fallback_ms: int | None) -> int | Rejection:
    if v is None:
        if fallback_ms is None:
            return Rejection("bad_value:ts", "no ts in the event and no message timestamp")
        return fallback_ms
    if _is_number(v):
        if not (v >= 0 and math.isfinite(v)):
            return Rejection("bad_value:ts", "ts must be a non-negative finite epoch-milliseconds number")
        return int(v)
    if type(v) is str:
        if not _RFC3339.match(v):
            return Rejection("bad_value:ts", "ts string must be RFC 3339 with an offset, e.g. 2026-01-31T12:00:00Z")
        try:
            return int(datetime.fromisoformat(v.replace("z", "Z")).timestamp() * 1000)
        except ValueError as exc:
            return Rejection("bad_value:ts", f"ts is not a real date-time: {exc}")
    return Rejection("bad_type:ts", "ts must be epoch milliseconds or an RFC 3339 string")


_VALUE_TYPES = frozenset((float, int, str, bool, type(None)))
_OPTIONAL_STRINGS = ("variant", "version", "request_id", "event_id")
_GOOD_NAMES: set[tuple[str, ...]] = set()


def _fast(obj: dict[str, Any], fallback_ts_ms: int | None) -> PredictionEvent | None:
    """The common, valid event in few C-level steps; None = let :func:`_validate` decide.

    Accepts only what :func:`_validate` accepts (the example-set tests run both).
    """
    model = obj.get("model")
    stage = obj.get("stage")
    features = obj.get("features")
    if type(model) is not str or type(stage) is not str or type(features) is not dict:
        return None
    if not (0 < len(model) <= MAX_STRING and 0 < len(stage) <= MAX_STRING) or len(features) > MAX_FEATURES:
        return None
    if features:
        names = tuple(features)
        if names not in _GOOD_NAMES:  # feature-name sets repeat: check each set once
            if min(map(len, names)) == 0 or max(map(len, names)) > MAX_STRING:
                return None
            if len(_GOOD_NAMES) >= 4096:
                _GOOD_NAMES.clear()
            _GOOD_NAMES.add(names)
        if not _VALUE_TYPES.issuperset(map(type, features.values())):
            return None
    ts = obj.get("ts")
    if type(ts) is int:
        if ts < 0:
            return None
    elif type(ts) is float:
        if not (ts >= 0 and math.isfinite(ts)):
            return None
        ts = int(ts)
    elif ts is None and fallback_ts_ms is not None and "ts" not in obj:
        ts = fallback_ts_ms
    else:
        return None  # RFC 3339 strings and every error: the full path
    size = 4 if "ts" in obj else 3
    if len(obj) == size:
        return PredictionEvent(model, stage, features, ts)
    variant = obj.get("variant", "primary")
    strings = [obj.get(n) for n in _OPTIONAL_STRINGS]
    for n, v in zip(_OPTIONAL_STRINGS, strings, strict=True):
        if n in obj and (type(v) is not str or len(v) > MAX_STRING):
            return None
    if not variant or variant[0] == "\x00":
        return None
    prediction = obj.get("prediction")
    label = obj.get("label")
    if type(prediction) not in _VALUE_TYPES or type(label) not in _VALUE_TYPES:
        return None
    latency = obj.get("latency_ms")
    if "latency_ms" in obj and not ((type(latency) is float or type(latency) is int) and latency >= 0):
        return None
    if "schema_version" in obj and not (type(obj["schema_version"]) is int and obj["schema_version"] == 1):
        return None
    return PredictionEvent(model, stage, features, ts, variant, strings[1], prediction, label, latency, strings[2],
                           strings[3])  # fmt: skip


def decode(
    raw: bytes, fallback_ts_ms: int | None = None, max_bytes: int = MAX_EVENT_BYTES
) -> PredictionEvent | Rejection:
    """Decode one message value; never raises on bad input."""
    if raw is None:
        return Rejection("empty", "message has no value (tombstone)")
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:200])
    if type(obj) is dict:
        ev = _fast(obj, fallback_ts_ms)
        if ev is not None:
            return ev
    return _validate(obj, fallback_ts_ms)


def _validate(obj: Any, fallback_ts_ms: int | None) -> PredictionEvent | Rejection:
    """Every check with its reason code; the path of bad and unusual events."""
    if type(obj) is not dict:
        return Rejection("not_an_object", f"top level is {type(obj).__name__}, not an object")
    for name in ("model", "stage", "features"):
        if name not in obj:
            return Rejection(f"missing_field:{name}", f"required field {name!r} is absent")
    model = _opt_string(obj, "model", min_len=1)
    if isinstance(model, Rejection):
        return model
    stage = _opt_string(obj, "stage", min_len=1)
    if isinstance(stage, Rejection):
        return stage
    features = obj["features"]
    if type(features) is not dict:
        return Rejection("bad_type:features", "features must be an object")
    if len(features) > MAX_FEATURES:
        return Rejection("too_many_features", f"{len(features)} features exceeds {MAX_FEATURES}")
    for k, v in features.items():
        if not 0 < len(k) <= MAX_STRING:
            return Rejection("bad_value:features", f"feature names must have 1..{MAX_STRING} characters")
        if v is not None and type(v) not in (float, int, str, bool):
            return Rejection(f"bad_type:features.{k}", f"feature {k!r} must be a number, string, boolean or null")
    ts = _timestamp(obj.get("ts"), fallback_ts_ms)
    if isinstance(ts, Rejection):
        return ts
    variant = _opt_string(obj, "variant", min_len=1)
    if isinstance(variant, Rejection):
        return variant
    if variant is not None and variant[0] == "\x00":  # reserved for the state records of label joins
        return Rejection("bad_value:variant", "variant must not start with a NUL character")
    version = _opt_string(obj, "version")
    if isinstance(version, Rejection):
        return version
    request_id = _opt_string(obj, "request_id")
    if isinstance(request_id, Rejection):
        return request_id
    event_id = _opt_string(obj, "event_id")
    if isinstance(event_id, Rejection):
        return event_id
    prediction = _scalar(obj, "prediction")
    if isinstance(prediction, Rejection):
        return prediction
    label = _scalar(obj, "label")
    if isinstance(label, Rejection):
        return label
    latency = obj.get("latency_ms")
    if latency is not None or "latency_ms" in obj:
        if not _is_number(latency):
            return Rejection("bad_type:latency_ms", "latency_ms must be a number")
        assert latency is not None
        if not latency >= 0:
            return Rejection("bad_value:latency_ms", "latency_ms must be >= 0")
    if "schema_version" in obj and not (_is_number(obj["schema_version"]) and obj["schema_version"] == 1):
        return Rejection("bad_value:schema_version", "this driftstream reads schema_version 1")
    return PredictionEvent(
        model=model,  # type: ignore[arg-type]
        stage=stage,  # type: ignore[arg-type]
        features=features,
        ts=ts,
        variant=variant or "primary",
        version=version,
        prediction=prediction,
        label=label,
        latency_ms=latency,
        request_id=request_id,
        event_id=event_id,
    )


def encode_alert(alert: dict[str, Any]) -> bytes:
    """Alerts and metrics leave as compact JSON."""
    return orjson.dumps(alert)
