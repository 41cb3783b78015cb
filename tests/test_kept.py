"""The column store of kept predictions (detectors/kept.py), without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import LabelSettings
from detectors.join import LabelJoin, Segment
from detectors.kept import SEGMENT_SIZE, Column
from detectors.keys import request_keys
from detectors.snapshot import pack, unpack


def ts_of(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def put(c: Column, rids: list[str], ts: np.ndarray, preds: list[object]) -> int:
    return c.put(*request_keys(rids), ts, preds)


def keys(*rids: str) -> list[int]:
    return request_keys(list(rids))[0].tolist()  # type: ignore[no-any-return]


def test_float_predictions_live_in_an_array_and_come_back_as_python_floats() -> None:
    c = Column()
    assert put(c, ["a", "b", "c"], ts_of(1, 2, 3), [0.25, 0.5, 0.75]) == 0
    assert type(c.preds) is np.ndarray
    got = c.predictions(np.array([1]))
    assert got == [0.5] and type(got[0]) is float
    c.kill(np.array([1]))
    assert len(c) == 2 and c.rows == 3
    assert list(c.items()) == list(zip(keys("a", "c"), [(1, 0.25), (3, 0.75)], strict=True))


@pytest.mark.parametrize("other", ["cat", 1, True, None, 2**70])
def test_a_prediction_that_is_not_a_float_turns_the_column_into_a_list(other: object) -> None:
    c = Column()
    put(c, ["a", "b"], ts_of(1, 2), [0.5, 1.5])
    assert put(c, ["x", "y"], ts_of(3, 4), [other, 2.5]) == 2
    assert type(c.preds) is list
    assert [v for _, v in c.items()] == [(1, 0.5), (2, 1.5), (3, other), (4, 2.5)]
    assert type(c.predictions(np.array([2]))[0]) is type(other)  # an int stays an int, a bool a bool


def test_a_column_grows_to_a_segment_and_no_further() -> None:
    c = Column()
    n = SEGMENT_SIZE - 1
    put(c, [f"r{i}" for i in range(n)], np.arange(n, dtype=np.int64), [i / 2 for i in range(n)])
    put(c, ["last"], ts_of(n), ["a class"])
    assert len(c) == SEGMENT_SIZE and c.predictions(np.array([700])) == [350.0] and c.ts[700] == 700
    with pytest.raises(ValueError, match="at most"):
        put(c, ["over"], ts_of(0), [0.0])


def test_a_busy_variant_gets_the_segments_room_at_once_a_rare_one_grows() -> None:
    busy, rare = Column(SEGMENT_SIZE // 4), Column(SEGMENT_SIZE // 4 - 1)
    assert len(busy.ts) == SEGMENT_SIZE and len(rare.ts) < SEGMENT_SIZE // 4
    for c in (busy, rare):
        n = SEGMENT_SIZE // 2
        put(c, [f"r{i}" for i in range(n)], np.arange(n, dtype=np.int64), [i / 4 for i in range(n)])
        assert len(c.ts) == SEGMENT_SIZE and len(c) == n and c.predictions(np.array([n - 1])) == [(n - 1) / 4]


def test_the_cap_drops_the_oldest_and_the_ttl_stops_at_the_first_kept() -> None:
    c = Column()
    put(c, list("abcdef"), ts_of(10, 20, 5, 30, 40, 50), [0.0] * 6)
    c.kill(np.array([1]))  # b taken
    assert c.drop_first(0).tolist() == [] and c.drop_first(2).tolist() == [0, 2]  # a and c
    assert [k for k, _ in c.items()] == keys("d", "e", "f")
    assert c.drop_older(45).tolist() == [3, 4]  # d (30) and e (40); f (50) stops it
    assert c.drop_older(0).tolist() == [] and c.drop_first(10).tolist() == [5] and not c


@pytest.mark.parametrize("preds", [[0.5, 0.25, 0.125], ["x", 2, False]])
def test_columns_and_of_round_trip_the_live_rows(preds: list[object]) -> None:
    c = Column()
    put(c, ["a", "b", "c"], ts_of(1, 2, 3), preds)
    c.kill(np.array([1]))
    k, chk, ts, values = c.columns()
    assert k.tolist() == keys("a", "c") and ts.tolist() == [1, 3] and list(values) == [preds[0], preds[2]]
    assert Column.of(k, chk, ts, values) == c


def test_a_segment_record_keeps_request_keys_and_float_predictions_as_arrays_and_reads_older_forms() -> None:
    far = Column()  # event times more than 2**32 ms apart stay int64
    put(far, ["x", "y"], ts_of(0, 2**33), [0.5, 0.5])
    j = LabelJoin(LabelSettings(join="always"))
    j.segments = [Segment(0, 1, {"primary": far})]
    meta, arrays = unpack(pack(*j.segment_state(0)))
    assert "tb0" not in arrays and arrays["ts0"].tolist() == [0, 2**33]
    assert LabelJoin.read_segment(meta, arrays) == (0, 1, {"primary": far})
    c, s = Column(), Column()
    put(c, ["a", "b"], ts_of(1, 2), [0.1, 0.2])
    put(s, ["a"], ts_of(1), ["spam"])
    j = LabelJoin(LabelSettings(join="always"))
    j.segments = [Segment(0, 7, {"primary": c, "canary": s})]
    meta, arrays = unpack(pack(*j.segment_state(0)))
    assert meta["predictions"] == [None, ["spam"]] and arrays["p0"].tolist() == [0.1, 0.2]
    assert arrays["k0"].tolist() == keys("a", "b") and arrays["c0"].dtype == np.uint32
    assert arrays["tb0"].tolist() == [1] and arrays["ts0"].tolist() == [0, 1] and arrays["ts0"].dtype == np.uint32
    assert LabelJoin.read_segment(meta, arrays) == (0, 7, {"primary": c, "canary": s})
    # the form written before request keys: the request ids, and floats in the JSON list
    old = {**meta, "rids": [["a", "b"], ["a"]], "predictions": [[0.1, 0.2], ["spam"]]}
    old_arrays = {"ts0": np.array([1, 2], np.int64), "ts1": np.array([1], np.int64)}
    assert LabelJoin.read_segment(old, old_arrays) == (0, 7, {"primary": c, "canary": s})
