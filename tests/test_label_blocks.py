"""The batch decoder of labels (schemas/label_blocks.py) agrees with decode_label, without a broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.keys import request_keys
from schemas import LabelEvent, decode_label
from schemas.label_blocks import LabelBlock, decode_label_blocks, settle_labels

from .test_blocks import _json, _number, _scalar

EXAMPLES = json.loads((Path(__file__).parents[1] / "schemas" / "examples" / "labels.json").read_text())


def check(values: list[bytes], fallback: list[int], max_bytes: int = 1_048_576) -> tuple[list[LabelBlock], np.ndarray]:
    """Every label a block holds decodes to the same label; every rejected one is left out."""
    fb = np.array(fallback, np.int64)
    blocks, owner = decode_label_blocks(values, fb, max_bytes)
    assert owner.shape == (len(values),)
    for b, blk in enumerate(blocks):
        assert (owner[blk.rows] == b).all() and (np.diff(blk.rows) > 0).all()
        assert len(blk.labels) == len(blk) == len(blk.ts)
        rids = blk.request_ids()
        keys, checks = blk.request_keys()
        assert (keys.tolist(), checks.tolist()) == tuple(x.tolist() for x in request_keys(rids))
        for j, row in enumerate(blk.rows.tolist()):
            lab = decode_label(values[row], fallback[row] if fallback[row] >= 0 else None, max_bytes)
            assert type(lab) is LabelEvent, (values[row], lab)
            assert (lab.model, lab.stage, lab.request_id, lab.ts) == (blk.model, blk.stage, rids[j], int(blk.ts[j]))
            assert type(blk.labels[j]) is type(lab.label) and blk.labels[j] == lab.label, (values[row], blk.labels[j])
        assert blk.events() == [decode_label(values[r], int(t), max_bytes) for r, t in
                                zip(blk.rows.tolist(), blk.ts.tolist(), strict=True)]  # fmt: skip
    assert len({(b.model, b.stage) for b in blocks}) == len(blocks)
    return blocks, owner


def test_shared_examples() -> None:
    values = [e["raw"].encode() for e in EXAMPLES]
    _, owner = check(values, [5] * len(values))
    valid = [decode_label(v, 5) for v in values]
    taken = [i for i in range(len(values)) if owner[i] >= 0]
    assert taken and all(type(valid[i]) is LabelEvent and valid[i].model is not None for i in taken)  # type: ignore[union-attr]


def test_common_labels_become_columns_per_stage_in_arrival_order() -> None:
    docs: list[dict[str, Any]] = [
        {"request_id": "a", "label": 1, "ts": 10, "model": "m", "stage": "s"},
        {"model": "m", "stage": "t", "request_id": "b", "label": "fraud", "ts": 11.7},
        {"request_id": "c", "label": True, "model": "m", "stage": "s"},  # the Kafka timestamp
        {"request_id": "d", "label": 0.25, "ts": 13, "model": "m", "stage": "s", "schema_version": 1},
        {"request_id": "e", "label": None, "ts": 14, "model": "m", "stage": "s"},  # null: the codec rejects it
        {"request_id": "f", "label": 1, "ts": 15},  # no stage: label_targets decide, one by one
        {"request_id": "g", "label": 2**60, "ts": 16, "model": "m", "stage": "s"},  # beyond 2**53: one by one
        {"request_id": "h", "label": 1, "ts": 17, "model": "m", "stage": "s", "schema_version": 1.0},
        {"request_id": "i", "label": 1, "ts": 18, "model": "m", "stage": "s", "note": "x"},
    ]
    blocks, owner = check([json.dumps(d).encode() for d in docs], [9] * len(docs))
    assert owner.tolist() == [0, 1, 0, 0, -1, -1, -1, -1, -1]
    assert blocks[0].labels == [1, True, 0.25] and blocks[0].ts.tolist() == [10, 9, 13]
    assert blocks[1].labels == ["fraud"] and blocks[1].ts.tolist() == [11]


def test_labels_of_several_shapes_and_stages_keep_their_values() -> None:
    """Two shapes (key orders) interleaved over two stages: each label keeps its own value."""
    docs: list[dict[str, Any]] = []
    for i in range(24):
        doc = {"request_id": f"r{i}", "label": i, "ts": 100 + i, "model": "m", "stage": "st"[i % 3 == 0]}
        docs.append(doc if i % 2 else dict(reversed(list(doc.items()))))
    blocks, owner = check([json.dumps(d).encode() for d in docs], [9] * len(docs))
    assert (owner >= 0).all() and sorted(lab for b in blocks for lab in b.labels) == list(range(24))


@st.composite
def labels(draw: st.DrawFn) -> bytes:
    """Mostly valid labels of a few shapes; now and then a wrong type, a damaged byte."""

    def pick(valid: st.SearchStrategy[Any]) -> Any:
        return draw(valid if draw(st.integers(0, 7)) else st.one_of(_scalar, _json))

    doc: dict[str, Any] = {
        "request_id": pick(st.sampled_from(["r1", "q", "x" * 300])),
        "label": pick(st.one_of(_number, st.booleans(), st.sampled_from(["a", "fraud"]), st.integers(-(2**70), 2**70))),
    }
    if draw(st.integers(0, 5)):
        doc["model"] = pick(st.sampled_from(["m", "n"]))
        doc["stage"] = pick(st.sampled_from(["s", ""]))
    for field, valid in (("ts", st.one_of(st.integers(0, 2**41), st.floats(0, 2**41), st.integers(-5, 0))),
                         ("schema_version", st.sampled_from([1, 1.0, 2]))):  # fmt: skip
        if draw(st.booleans()):
            doc[field] = pick(valid)
    items = list(doc.items())
    raw = json.dumps(dict(draw(st.permutations(items)))).encode()
    if draw(st.integers(0, 4)) == 0:  # damage it
        b = bytearray(raw)
        at = draw(st.integers(0, len(b) - 1))
        b[at : at + 1] = draw(st.sampled_from([b",", b"}", b'"', b"\\", b"-", b"e", b".", b""]))
        raw = bytes(b)
    return raw


@given(st.lists(labels(), min_size=1, max_size=12), st.integers(-1, 5))
@settings(max_examples=300)
def test_agrees_with_decode_label(values: list[bytes], fallback: int) -> None:
    check(values, [fallback] * len(values))


def test_a_label_over_the_size_limit_is_left_to_decode_label() -> None:
    raw = json.dumps({"request_id": "r", "label": 1, "ts": 1, "model": "m", "stage": "s"}).encode()
    blocks, owner = check([raw, raw + b" " * 100], [0, 0], max_bytes=len(raw) + 10)
    assert owner.tolist() == [0, -1] and blocks[0].events()[0].request_id == "r"


def test_settle_keeps_each_stage_in_arrival_order() -> None:
    raws = [json.dumps({"request_id": f"r{i}", "label": i, "ts": i, "model": "m", "stage": s}).encode()
            for i, s in enumerate("sstst")]  # fmt: skip
    blocks, _ = check(raws, [0] * 5)
    alone = decode_label(b'{"request_id": "x", "label": 1, "ts": 2, "model": "m", "stage": "s", "a": 1}')
    assert type(alone) is LabelEvent
    labs, left = settle_labels(blocks, [(5, alone)])
    assert [lab.request_id for lab in labs] == ["r0", "r1", "r3", "x"] and [b.stage for b in left] == ["t"]
    labs, left = settle_labels(blocks, [])
    assert labs == [] and len(left) == 2
