"""The column store of kept predictions (detectors/kept.py), without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import LabelSettings
from detectors.join import LabelJoin, Segment
from detectors.kept import SEGMENT_SIZE, Column
from detectors.snapshot import pack, unpack


def ts_of(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_float_predictions_live_in_an_array_and_come_back_as_python_floats() -> None:
    c = Column()
    c.put(["a", "b", "c"], ts_of(1, 2, 3), [0.25, 0.5, 0.75])
    assert type(c.preds) is np.ndarray
    got = c.pop("b")
    assert got == (2, 0.5) and type(got[0]) is int and type(got[1]) is float
    assert c.pop("b") is None and len(c) == 2
    assert list(c.items()) == [("a", (1, 0.25)), ("c", (3, 0.75))]


@pytest.mark.parametrize("other", ["cat", 1, True, None, 2**70])
def test_a_prediction_that_is_not_a_float_turns_the_column_into_a_list(other: object) -> None:
    c = Column()
    c.put(["a", "b"], ts_of(1, 2), [0.5, 1.5])
    c.put(["x", "y"], ts_of(3, 4), [other, 2.5])
    assert type(c.preds) is list
    assert list(c.items()) == [("a", (1, 0.5)), ("b", (2, 1.5)), ("x", (3, other)), ("y", (4, 2.5))]
    assert type(c.pop("x")[1]) is type(other)  # type: ignore[index]  # an int stays an int, a bool a bool


def test_a_repeated_request_points_at_its_newest_row() -> None:
    c = Column()
    c.put(["dup", "a"], ts_of(1, 2), [0.1, 0.2])
    c.put(["dup"], ts_of(3), [0.3])
    assert c.rows == 3 and len(c) == 2
    assert c.pop("dup") == (3, 0.3) and c.pop("dup") is None


def test_a_column_grows_to_a_segment_and_no_further() -> None:
    c = Column()
    n = SEGMENT_SIZE - 1
    c.put([f"r{i}" for i in range(n)], np.arange(n, dtype=np.int64), [i / 2 for i in range(n)])
    c.put(["last"], ts_of(n), ["a class"])
    assert len(c) == SEGMENT_SIZE and c.at(700) == (700, 350.0)
    with pytest.raises(ValueError, match="at most"):
        c.put(["over"], ts_of(0), [0.0])


def test_the_cap_drops_the_oldest_and_the_ttl_stops_at_the_first_kept() -> None:
    c = Column()
    c.put(list("abcdef"), ts_of(10, 20, 5, 30, 40, 50), [0.0] * 6)
    assert c.drop_first(0) == 0 and c.drop_first(2) == 2
    assert list(c.index) == list("cdef")
    assert c.drop_older(35) == 2  # c (5) and d (30); e (40) stops it
    assert list(c.index) == ["e", "f"]
    assert c.drop_older(0) == 0 and c.drop_first(10) == 2 and not c


@pytest.mark.parametrize("preds", [[0.5, 0.25, 0.125], ["x", 2, False]])
def test_columns_and_of_round_trip_the_live_rows(preds: list[object]) -> None:
    c = Column()
    c.put(["a", "b", "c"], ts_of(1, 2, 3), preds)
    c.pop("b")
    rids, ts, values = c.columns()
    assert rids == ["a", "c"] and ts.tolist() == [1, 3] and list(values) == [preds[0], preds[2]]
    assert Column.of(rids, ts, values) == c


def test_a_segment_record_keeps_float_predictions_as_an_array_and_still_reads_the_list_form() -> None:
    c, s = Column(), Column()
    c.put(["a", "b"], ts_of(1, 2), [0.1, 0.2])
    s.put(["a"], ts_of(1), ["spam"])
    j = LabelJoin(LabelSettings(join="always"))
    j.segments = [Segment(0, 7, {"primary": c, "canary": s})]
    meta, arrays = unpack(pack(*j.segment_state(0)))
    assert meta["predictions"] == [None, ["spam"]] and arrays["p0"].tolist() == [0.1, 0.2]
    assert LabelJoin.read_segment(meta, arrays) == (0, 7, {"primary": c, "canary": s})
    # the form written before float columns: every prediction in the JSON list
    meta["predictions"][0] = [0.1, 0.2]
    del arrays["p0"]
    assert LabelJoin.read_segment(meta, arrays) == (0, 7, {"primary": c, "canary": s})
