"""Placing labels at their stages' homes (streams/labelroute.place), without a broker."""

from __future__ import annotations

import orjson
import pytest

from detectors import EngineConfig
from schemas import LabelEvent, Rejection, decode_label
from streams.labelroute import is_label, place
from streams.topology import Homes

HOMES = Homes(6)
PLAIN = EngineConfig.from_mapping({})
FANOUT = EngineConfig.from_mapping({"label_targets": ["vad/serve", "asr/serve"]})


def test_a_label_naming_its_stage_goes_to_that_home_and_is_forwarded_as_it_came() -> None:
    raw = orjson.dumps({"request_id": "r1", "label": 1, "ts": 5, "model": "asr", "stage": "serve"})
    [(key, slot, lab, value)] = place(raw, 1_000, 1 << 20, PLAIN, HOMES)  # type: ignore[misc]
    assert (key, slot) == HOMES[("asr", "serve")]
    assert lab == LabelEvent("r1", 1, 5, "asr", "serve") and value is raw


def test_a_record_without_a_kafka_timestamp_is_forwarded_re_encoded() -> None:
    raw = orjson.dumps({"request_id": "r1", "label": "spam", "ts": 9, "model": "asr", "stage": "serve"})
    for ts in (None, 0):  # no time to give the forwarded record: the label's own goes in its value
        [(_, _, lab, value)] = place(raw, ts, 1 << 20, PLAIN, HOMES)  # type: ignore[misc]
        assert value is not raw and decode_label(value) == lab == LabelEvent("r1", "spam", 9, "asr", "serve")
    timeless = orjson.dumps({"request_id": "r1", "label": "spam", "model": "asr", "stage": "serve"})
    [(_, _, lab, value)] = place(timeless, 7_000, 1 << 20, PLAIN, HOMES)  # type: ignore[misc]
    assert lab.ts == 7_000 and value is timeless  # forwarded with the record's time, which it relies on
    assert isinstance(place(timeless, None, 1 << 20, PLAIN, HOMES), Rejection)


def test_a_label_naming_no_stage_goes_to_each_label_target() -> None:
    raw = orjson.dumps({"request_id": "r2", "label": True, "ts": 5})
    placed = place(raw, 1_000, 1 << 20, FANOUT, HOMES)
    assert not isinstance(placed, Rejection)
    assert [(k, s) for k, s, _, _ in placed] == [HOMES[("vad", "serve")], HOMES[("asr", "serve")]]
    for (_, _, lab, value), stage in zip(placed, (("vad", "serve"), ("asr", "serve")), strict=True):
        assert lab == LabelEvent("r2", True, 5, *stage) and decode_label(value) == lab


@pytest.mark.parametrize(
    ("raw", "cfg", "reason"),
    [
        (b"\xff{", PLAIN, "invalid_json"),
        (None, PLAIN, "empty"),
        (orjson.dumps({"label": 1}), PLAIN, "missing_field:request_id"),
        (orjson.dumps({"request_id": "r", "label": 1, "ts": 5}), PLAIN, "unroutable_label"),
        (orjson.dumps({"request_id": "r", "label": 1, "ts": 5, "model": "m"}), FANOUT, "missing_field:stage"),
    ],
)
def test_what_cannot_be_placed_says_why(raw: bytes | None, cfg: EngineConfig, reason: str) -> None:
    got = place(raw, 1_000, 1 << 20, cfg, HOMES)
    assert isinstance(got, Rejection) and got.reason == reason


def test_a_label_on_the_repartition_topic_is_told_by_its_header() -> None:
    assert is_label([("driftstream.kind", b"label")]) and is_label({"driftstream.kind": b"label"})
    assert not is_label(None) and not is_label([("other", b"label")]) and not is_label({})
