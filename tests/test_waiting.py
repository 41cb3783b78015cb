"""The queue of labels waiting for their predictions (detectors/waiting.py), without a broker."""

from __future__ import annotations

import numpy as np

from detectors.waiting import LabelQueue


def ints(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def test_labels_leave_from_the_front_in_order_and_the_space_behind_is_reclaimed() -> None:
    q, ref = LabelQueue(), []
    for i in range(3000):
        q.push(ints(i, -i), ints(7, 8), [f"l{i}", i], ints(100 + i, 200 + i))
        ref += [(i, 7, f"l{i}", 100 + i, None), (-i, 8, i, 200 + i, None)]
        if i % 3 == 2:
            q.drop(4)
            del ref[:4]
        assert len(q) == len(ref)
    assert list(q) == ref and q.front < 4096 and len(q.keys) <= 4 * len(ref)
    keys, checks, lts, plain = q.columns()
    assert keys.tolist() == [w[0] for w in ref] and checks.tolist() == [w[1] for w in ref]
    assert lts.tolist() == [w[3] for w in ref] and plain.all()


def test_an_inline_label_is_not_plain_and_round_trips_with_its_prediction() -> None:
    q = LabelQueue()
    q.push(ints(1), ints(2), ["a"], ints(10))
    q.push_inline("b", 11, ("canary", 9, 0.5))
    q.push(ints(0, 3), ints(0, 4), ["c", "d"], ints(12, 13), [("primary", 5, "x"), None])
    assert q.columns()[3].tolist() == [True, False, False, True]
    assert list(q)[1:3] == [(0, 0, "b", 11, ("canary", 9, 0.5)), (0, 0, "c", 12, ("primary", 5, "x"))]
    q.drop(2)
    other = LabelQueue()
    other.push(ints(0, 3), ints(0, 4), ["c", "d"], ints(12, 13), [("primary", 5, "x"), None])
    assert q == other and len(q) == 2 and bool(LabelQueue()) is False
