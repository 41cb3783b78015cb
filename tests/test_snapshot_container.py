"""The snapshot container (detectors/snapshot.py) keeps each array's values and its type."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.snapshot import SnapshotError, pack, unpack


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
