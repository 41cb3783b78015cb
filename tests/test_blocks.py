"""The batch decoder (``schemas.blocks``) agrees with the per-message codec on every message it
takes, and leaves every other message to it."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from detectors.keys import request_keys
from schemas import EventBlock, PredictionEvent, decode, decode_blocks, settle
from schemas.blocks import shape_of
from schemas.label_blocks import decode_label_blocks

EXAMPLES = json.loads((Path(__file__).parents[1] / "schemas" / "examples" / "events.json").read_text())


def _same(x: Any, y: float) -> bool:
    v = math.nan if x is None else float(x)
    return (v != v and y != y) or (v == y and math.copysign(1, v) == math.copysign(1, y))


def check(values: list[bytes], fallback: list[int], max_bytes: int = 1_048_576) -> tuple[list[EventBlock], np.ndarray]:
    """Every message a block holds decodes to the same event; every rejected one is left out."""
    blocks, owner = decode_blocks(values, np.array(fallback, np.int64), max_bytes)
    check_blocks(values, fallback, blocks, owner, max_bytes)
    return blocks, owner


def check_blocks(
    values: list[bytes], fallback: list[int], blocks: list[EventBlock], owner: np.ndarray, max_bytes: int = 1_048_576
) -> None:  # fmt: skip
    """:func:`check` of blocks decoded already."""
    assert owner.shape == (len(values),)
    for b, blk in enumerate(blocks):
        assert (owner[blk.rows] == b).all()
        assert (np.diff(blk.rows) > 0).all()
        assert blk.values.shape == (len(blk.names), len(blk))
        if blk.has_request_ids:  # the scan hashed the raw bytes: the same keys as the decoded ids
            keys, checks = blk.request_keys()
            assert (keys.tolist(), checks.tolist()) == tuple(x.tolist() for x in request_keys(blk.request_ids()))
        if isinstance(blk.prediction_column(), np.ndarray):
            assert blk.prediction_column().tolist() == blk.predictions()
        for j, row in enumerate(blk.rows.tolist()):
            ev = decode(values[row], fallback[row] if fallback[row] >= 0 else None, max_bytes)
            assert type(ev) is PredictionEvent, (values[row], ev)
            assert (ev.model, ev.stage, ev.variant, ev.ts) == (blk.model, blk.stage, blk.variant, int(blk.ts[j]))
            assert ev.label is None
            assert ev.request_id == (blk.request_ids()[j] if blk.has_request_ids else None)
            pred = blk.predictions()[j]
            assert type(pred) is type(ev.prediction) and (pred == ev.prediction or blk.exact_predictions() is False)
            assert tuple(ev.features) == blk.names
            for i, name in enumerate(blk.names):
                if name in blk.text:
                    assert ev.features[name] == blk.texts(name)[j]
                else:
                    assert _same(ev.features[name], float(blk.values[i, j])), (values[row], name)
            assert (blk.prediction is None and ev.prediction is None) or (
                blk.prediction is not None and _same(ev.prediction, float(blk.prediction[j]))
            )
            assert (blk.latency is None and ev.latency_ms is None) or (
                blk.latency is not None and _same(ev.latency_ms, float(blk.latency[j]))
            )
        assert ev.version == blk.version  # the last event's version
        assert [(e.model, e.ts) for e in blk.events()] == [(blk.model, int(t)) for t in blk.ts]


def test_a_batchs_blocks_outlive_the_next_batchs_scan() -> None:
    """The scan's token arrays are used again for the next batch (``batch_scan._room``): what a
    block keeps must be its own."""
    rng = random.Random(3)

    def batch(n: int, tag: str) -> list[bytes]:
        return [orjson.dumps({"model": f"m{i % 3}{tag}", "stage": "s", "ts": 1_000 + i, "request_id": f"{tag}{i}",
                              "prediction": rng.random(), "features": {"x": rng.random(), "c": f"{tag}{i % 5}"}})
                for i in range(n)]  # fmt: skip

    first = batch(600, "a")
    blocks, owner = decode_blocks(first, np.full(600, -1, np.int64))
    assert blocks
    later = batch(500, "b")  # fits the same arrays, and overwrites them
    decode_blocks(later, np.full(500, -1, np.int64))
    labels = [orjson.dumps({"request_id": f"r{i}", "label": i % 2, "ts": 5, "model": "m", "stage": "s"})
              for i in range(300)]  # fmt: skip
    decode_label_blocks(labels, np.full(300, -1, np.int64))
    check_blocks(first, [-1] * 600, blocks, owner)


def test_shared_examples() -> None:
    values = [e["raw"].encode() for e in EXAMPLES]
    check(values, [1] * len(values))  # one batch: keys in several shapes are left whole
    taken = set()
    for e in EXAMPLES:  # one by one
        _, owner = check([e["raw"].encode()], [1])
        if owner[0] >= 0:
            assert e["reason"] is None, e["name"]
            taken.add(e["name"])
    assert "minimal" in taken and len(taken) >= 5, taken


def test_ordinary_events_become_columns_per_key() -> None:
    values = [
        orjson.dumps({"model": f"m{i % 3}", "stage": "s", "features": {"a": i * 0.5, "b": -i}, "ts": 1000 + i})
        for i in range(30)
    ]
    blocks, owner = check(values, [-1] * 30)
    assert (owner >= 0).all() and len(blocks) == 3
    m1 = next(b for b in blocks if b.model == "m1")
    assert m1.rows.tolist() == list(range(1, 30, 3))
    assert m1.values[0].tolist() == [i * 0.5 for i in range(1, 30, 3)]
    assert m1.ts.tolist() == [1000 + i for i in range(1, 30, 3)]


def test_what_is_left_to_the_codec() -> None:
    base = {"model": "m", "stage": "s", "features": {"a": 1.5}, "ts": 5}
    left = [
        {**base, "label": 1},  # an inline label waits in the join as a whole event
        {**base, "model": "é"},  # non-ASCII text
        {**base, "model": 'a"b'},  # an escape
        {**base, "extra": [1, 2]},  # an array
        {**base, "ts": "2026-01-01T00:00:00Z"},
        {**base, "model": ""},
        {**base, "ts": -1},
        {**base, "latency_ms": -0.5},
        {**base, "schema_version": 2},
        {**base, "variant": ""},
        {**base, "version": None},
    ]
    values = [orjson.dumps(d) for d in left] + [b'{"model":"m","stage":"s","features":{"a":1e999},"ts":1}']
    values.append(b'{"model":"m","stage":"s","features":{"a":12345678901234567890},"ts":1}')  # > 18 digits
    values.append(b'{"model":"m","stage":"s","features":{"a":0.1000000000000000055511151231257827},"ts":1}')
    _, owner = check(values, [7] * len(values))
    assert (owner < 0).all()
    blocks, owner = check([orjson.dumps(base)] * 3, [7] * 3, max_bytes=10)
    assert not blocks and (owner < 0).all()
    big = orjson.dumps({**base, "note": "x" * 1_100_000})  # over the default limit
    blocks, owner = check([big], [7], max_bytes=4 * len(big))
    assert len(blocks) == 1 and len(blocks[0].events()) == 1  # the block decodes with its own limit


def test_fallback_time_duplicates_literals_and_whitespace() -> None:
    values = [
        b'{"model":"m","stage":"s","features":{"a":1}}',
        b'{ "model" : "x" , "model":"n", "stage":"s",\n "features":{"a":null,"b":true,"c":false}, "ts": 1.9e3 }',
        b'{"model":"o","stage":"s","features":{},"ts":-0.0,"prediction":null,"latency_ms":0,"extra":{"k":{"z":1}}}',
    ]
    blocks, owner = check(values, [42, -1, -1])
    assert (owner >= 0).all()
    blk = blocks[int(owner[0])]
    assert blk.ts.tolist() == [42]
    other = blocks[int(owner[1])]
    assert other.model == "n" and other.ts.tolist() == [1900] and other.values[:, 0].tolist()[1:] == [1.0, 0.0]
    _, owner = check(values[:1], [-1])  # no ts and no message time: a rejection, the codec's to give
    assert (owner < 0).all()


def test_numbers_convert_exactly() -> None:
    rng = random.Random(7)
    texts = []
    for _ in range(20_000):
        x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if math.isfinite(x):
            texts.append(repr(x))
        texts.append(repr(rng.random() * 10 ** rng.randint(-25, 25)))
        d = rng.randint(1, 19)
        texts.append(f"{'-' if rng.random() < 0.5 else ''}{rng.randint(0, 10**d - 1)}e{rng.randint(-360, 360)}")
    texts += ["-0", "-0.0", "0e5", "9007199254740993", "123456789012345678", "1E+2", "2.5e-3"]
    values = [f'{{"model":"m","stage":"s","features":{{"x":{t}}},"ts":1}}'.encode() for t in texts]
    _, owner = check(values, [1] * len(values))
    assert (owner >= 0).mean() > 0.9


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6).map(lambda x: round(x, 6)), _text,
)  # fmt: skip
_json = st.recursive(_scalar, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
                     max_leaves=6)  # fmt: skip


_number = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(-1e3, 1e3).map(lambda x: round(x, 4)),
                    st.integers(-(2**60), 2**60))  # fmt: skip
_VALID = {
    "ts": st.one_of(st.integers(0, 2**41), st.floats(0, 2**41)),
    "variant": st.sampled_from(["primary", "canary"]),
    "version": st.sampled_from(["v1", ""]),
    "prediction": st.one_of(st.none(), _number),
    "latency_ms": st.floats(0, 1e4),
    "schema_version": st.sampled_from([1, 1.0]),
    "event_id": st.sampled_from(["e1", "e2"]),
    "request_id": st.sampled_from(["r1", "r2", ""]),
    "other": _json,
}


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """Mostly valid events of a few shapes; now and then a wrong type, a damaged byte."""

    def pick(valid: st.SearchStrategy[Any]) -> Any:
        return draw(valid if draw(st.integers(0, 7)) else st.one_of(_scalar, _json))

    value = st.one_of(_number, st.none(), st.booleans()) if draw(st.integers(0, 3)) else _scalar
    doc: dict[str, Any] = {
        "model": pick(st.sampled_from(["m", "model", "a/b"])),
        "stage": pick(st.sampled_from(["s", "t"])),
        "features": pick(st.dictionaries(st.sampled_from(["a", "b", "c"]), value, max_size=3)),
    }
    for field, valid in _VALID.items():
        if draw(st.booleans()):
            doc[field] = pick(valid)
    style = draw(st.sampled_from([{"separators": (",", ":")}, {}, {"indent": 1, "ensure_ascii": False}]))
    raw = json.dumps(doc, **style).encode()
    if draw(st.integers(0, 4)) == 0:  # damage it
        b = bytearray(raw)
        at = draw(st.integers(0, len(b) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            b[at] = draw(st.integers(0, 255))
        elif op == 1:
            del b[at]
        else:
            b[at:at] = draw(st.sampled_from([b",", b"}", b"{", b'"', b"\\", b"-", b"e", b"."]))
        raw = bytes(b)
    return raw


@given(st.lists(events(), min_size=1, max_size=12), st.integers(-1, 5))
def test_agrees_with_the_codec(values: list[bytes], fallback: int) -> None:
    check(values, [fallback] * len(values))


def test_string_features_come_as_strings() -> None:
    values = [orjson.dumps({"model": "m", "stage": "s", "features": {"a": 1.5, "lang": lang, "e": ""}, "ts": 1})
              for lang in ("en", "de", "")]  # fmt: skip
    blocks, owner = check(values, [-1] * 3)
    assert (owner == 0).all() and blocks[0].text == {"lang", "e"}
    assert blocks[0].texts("lang") == ["en", "de", ""] and blocks[0].texts("e") == ["", "", ""]


def test_shape_reads_duplicate_keys_as_the_last() -> None:
    shape = shape_of(b'{"model":\x02,"stage":\x02,"model":\x02,"features":{"a":\x01,"a":\x01}}')
    assert shape is not None and shape.model == 2 and shape.features == (4,)
    assert shape_of(b'{"model":\x02,"stage":\x02,"features":{},"label":\x02}') is None
    assert shape_of(b'{"model":\x02,"stage":\x02,"features":{},"request_id":\x01}') is None  # a number


def test_request_ids_and_predictions_come_back_as_the_codec_gives_them() -> None:
    preds = [0.25, 3, None, -0, 2**57]
    values = [orjson.dumps({"model": "m", "stage": "s", "features": {}, "ts": i, "request_id": f"r{i}",
                            "prediction": p}) for i, p in enumerate(preds)]  # fmt: skip
    blocks, owner = check(values, [-1] * len(values))
    assert (owner == 0).all() and blocks[0].has_request_ids
    assert blocks[0].request_ids() == [f"r{i}" for i in range(5)]
    assert blocks[0].predictions()[:4] == [0.25, 3, None, 0] and type(blocks[0].predictions()[1]) is int
    assert not blocks[0].exact_predictions()  # 2**57 as a float is not the integer: whole events for joins


def test_request_keys_are_the_top_level_request_id_the_last_if_repeated() -> None:
    values = [
        b'{"model":"m1","stage":"s","features":{"request_id":"n"},"request_id":"a"}',
        b'{"model":"m2","stage":"s","request_id":"x","features":{},"request_id":"b"}',
        b'{"request_id":"c","model":"m3","stage":"s","features":{"request_id":"z"}}',
    ]
    blocks, owner = check(values, [0] * 3)
    assert (owner >= 0).all()
    for blk in blocks:  # check() compares each block's keys with request_keys of its decoded ids
        assert blk.request_ids() == [{"m1": "a", "m2": "b", "m3": "c"}[blk.model]]


def test_settle_keeps_each_key_in_stream_order() -> None:
    values = [orjson.dumps({"model": "m", "stage": "s", "features": {"a": i}, "ts": i}) for i in range(4)]
    values[2] = orjson.dumps({"model": "m", "stage": "s", "features": {"a": 2}, "ts": 2, "label": 1})
    values.append(orjson.dumps({"model": "n", "stage": "s", "features": {"a": 9}, "ts": 9}))
    blocks, owner = check(values, [-1] * 5)
    assert owner.tolist()[2] == -1
    decoded = [(2, decode(values[2]))]
    evs, rest = settle(blocks, decoded)  # type: ignore[arg-type]
    assert [e.ts for e in evs] == [0, 1, 2, 3]
    assert [(b.model, len(b)) for b in rest] == [("n", 1)]
