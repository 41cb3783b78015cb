"""The label codec and ``label_event.schema.json`` agree on a shared example set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import LabelEvent, Rejection, decode_label, encode_label, load_schema
from schemas import labels as labels_codec
from tests.test_codec import strict_json

EXAMPLES = json.loads((Path(__file__).parents[1] / "schemas" / "examples" / "labels.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(load_schema("label_event"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_schema_and_codec_agree(example: dict[str, Any]) -> None:
    raw = example["raw"].encode()
    got = decode_label(raw, fallback_ts_ms=1)
    if example["reason"] is None:
        assert isinstance(got, LabelEvent), got
        assert VALIDATOR.is_valid(strict_json(raw))
        return
    assert isinstance(got, Rejection) and got.reason == example["reason"], got
    try:
        doc = strict_json(raw)
    except ValueError:
        assert example["reason"] == "invalid_json"
        return
    assert not VALIDATOR.is_valid(doc), "the schema accepts what the codec rejects"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_the_fast_path_accepts_only_what_the_full_checks_accept(example: dict[str, Any]) -> None:
    try:
        obj = json.loads(example["raw"])
    except ValueError:
        return
    fast = labels_codec._fast(obj) if type(obj) is dict else None
    if fast is not None:
        assert fast == labels_codec._validate(obj, 1) == decode_label(example["raw"].encode(), 1)


def test_the_fast_path_takes_the_common_labels() -> None:
    assert labels_codec._fast({"request_id": "r", "label": 0.5, "ts": 7}) == LabelEvent("r", 0.5, 7)
    canonical = orjson.loads(encode_label(LabelEvent("r", True, 7), "m", "s"))
    assert labels_codec._fast(canonical) == LabelEvent("r", True, 7, "m", "s")
    for odd in ({"request_id": "r", "label": 1, "ts": 7, "model": "m"}, {"request_id": "r", "label": [1], "ts": 7},
                {"request_id": "r", "label": 1, "ts": 7.5}, {"request_id": "r", "label": 1, "ts": True},
                {"request_id": "", "label": 1, "ts": 7}, {"request_id": "r", "label": 1, "ts": 7, "x": 1}):  # fmt: skip
        assert labels_codec._fast(odd) is None


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema("label_event"))


def test_defaults_and_the_canonical_form_round_trip() -> None:
    ev = decode_label(b'{"request_id":"r9","label":"spam"}', fallback_ts_ms=42)
    assert ev == LabelEvent("r9", "spam", 42)
    assert decode_label(b'{"request_id":"r9","label":1}') == Rejection(
        "bad_value:ts", "no ts in the event and no message timestamp"
    )
    assert isinstance(ev, LabelEvent)
    raw = encode_label(ev, "mail", "filter")
    assert decode_label(raw) == LabelEvent("r9", "spam", 42, "mail", "filter")
    assert VALIDATOR.is_valid(json.loads(raw))


def test_bad_bytes_never_raise() -> None:
    assert decode_label(None).reason == "empty"  # type: ignore[union-attr]
    assert decode_label(b"x" * 100, max_bytes=10).reason == "too_large"  # type: ignore[union-attr]
    for raw in (b"\x00\xff", bytes(range(256))):
        got = decode_label(raw)
        assert isinstance(got, Rejection) and got.reason == "invalid_json"
