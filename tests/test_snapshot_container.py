"""The snapshot container (detectors/snapshot.py) keeps each array's values and its type."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.snapshot import SnapshotError, get_positions, get_times, pack, put_positions, put_times, unpack


def test_each_kind_of_array_round_trips() -> None:
    arrays = {
        "f": np.array([0.1, np.inf, np.nan, -0.0]),
        "i": np.array([-(2**63), 2**63 - 1], np.int64),
        "u1": np.array([0, 255], np.uint8),
        "b": np.array([True, False]),
        "u4": np.array([0, 2**32 - 1], np.uint32),
        "i4": np.array([-5, 7], np.int32),  # other integers as int64
        "m": np.arange(6, dtype=np.int64).reshape(2, 3),
    }
    meta, back = unpack(pack({"x": 1}, arrays))
    assert meta == {"x": 1}
    assert back["f"].tobytes() == arrays["f"].tobytes()
    assert back["u4"].dtype == np.uint32 and back["u4"].tolist() == [0, 2**32 - 1]
    assert back["u1"].dtype == np.uint8 and back["b"].tolist() == [1, 0]
    assert back["i4"].dtype == np.int64 and back["i4"].tolist() == [-5, 7]
    assert back["i"].tolist() == arrays["i"].tolist() and back["m"].shape == (2, 3)


def test_an_array_the_container_cannot_hold_is_refused() -> None:
    with pytest.raises(SnapshotError, match="cannot store"):
        pack({}, {"s": np.array(["a"])})


@given(st.lists(st.integers(0, 2**62), max_size=40), st.booleans())
def test_times_and_positions_come_back_as_they_went(values: list[int], run: bool) -> None:
    ts = np.array(values, np.int64)
    pos = np.arange(7, 7 + len(values), dtype=np.int64) if run else np.cumsum(np.array(values, np.int64) % 3 + 1)
    arrays: dict[str, np.ndarray] = {}
    put_times(arrays, "t", "tb", ts)
    put_positions(arrays, "p", pos)
    _, back = unpack(pack({}, arrays))
    assert get_times(back, "t", "tb").tolist() == ts.tolist()
    got = get_positions(back, "p")
    assert got is not None and got.tolist() == pos.tolist()
    assert get_positions(back, "q") is None
    if len(values) and max(values) - min(values) < 2**32:  # 4 bytes a time
        assert back["t"].dtype == np.uint32
    if run and len(values):  # a run is two numbers
        assert "p" not in back and back["p.run"].tolist() == [7, len(values)]
