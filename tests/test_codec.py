"""The codec and the JSON Schema files agree on a shared example set; bad input is typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas import MAX_EVENT_BYTES, PredictionEvent, Rejection, decode, load_schema

EXAMPLES = json.loads((Path(__file__).parents[1] / "schemas" / "examples" / "events.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(load_schema("prediction_event"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> Any:
    """JSON as RFC 8259 has it: no NaN/Infinity literals (Python's json allows them)."""
    return json.loads(raw, parse_constant=_reject_constant)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_schema_and_codec_agree(example: dict[str, Any]) -> None:
    raw = example["raw"].encode()
    got = decode(raw, fallback_ts_ms=1)
    expected = example["reason"]
    if expected is None:
        assert isinstance(got, PredictionEvent), got
        assert VALIDATOR.is_valid(strict_json(raw))
        return
    assert isinstance(got, Rejection)
    assert got.reason == expected
    try:
        doc = strict_json(raw)
    except ValueError:
        assert expected == "invalid_json"
        return
    assert expected != "invalid_json"
    assert not VALIDATOR.is_valid(doc), "the schema accepts what the codec rejects"


def test_every_schema_is_valid_json_schema() -> None:
    for name in ("prediction_event", "alert", "metrics"):
        jsonschema.Draft202012Validator.check_schema(load_schema(name))


def test_defaults_and_conversions() -> None:
    ev = decode(b'{"model":"m","stage":"s","features":{"a":1},"ts":"2026-01-01T00:00:00.5+01:00"}')
    assert isinstance(ev, PredictionEvent)
    assert ev.variant == "primary"
    assert ev.ts == 1767222000500
    no_ts = decode(b'{"model":"m","stage":"s","features":{}}', fallback_ts_ms=42)
    assert isinstance(no_ts, PredictionEvent) and no_ts.ts == 42
    assert decode(b'{"model":"m","stage":"s","features":{}}') == Rejection(
        "bad_value:ts", "no ts in the event and no message timestamp"
    )


def test_too_large_is_rejected_before_parsing() -> None:
    big = b'{"model":"m","stage":"s","features":{"x":"' + b"a" * MAX_EVENT_BYTES + b'"}}'
    got = decode(big)
    assert isinstance(got, Rejection) and got.reason == "too_large"


def test_tombstone_and_binary_never_raise() -> None:
    assert decode(None).reason == "empty"  # type: ignore[arg-type,union-attr]
    for raw in (b"\x00\xff\xfe", b"\xc3\x28", bytes(range(256))):
        got = decode(raw)
        assert isinstance(got, Rejection) and got.reason == "invalid_json"
