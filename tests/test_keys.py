"""Request keys and the key table of the label join (detectors/keys.py), without a broker."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.keys import KeyTable, request_key, request_keys, salt, span_keys


@given(st.lists(st.text(max_size=40), max_size=30))
@settings(max_examples=200, deadline=None)
def test_a_request_id_has_the_same_key_from_its_bytes_and_from_its_string(rids: list[str]) -> None:
    parts = [r.encode() for r in rids]
    buf = np.frombuffer(b"[" + b"|".join(parts) + b"]", np.uint8)  # spans inside a larger buffer
    starts = np.cumsum([1] + [len(p) + 1 for p in parts])[:-1]
    spans = np.stack([starts, starts + [len(p) for p in parts]], axis=1).astype(np.int64).reshape(-1, 2)
    k, c = span_keys(buf, spans)
    k2, c2 = request_keys(rids)
    assert k.tolist() == k2.tolist() and c.tolist() == c2.tolist()
    assert [request_key(r) for r in rids] == list(zip(k2.tolist(), c2.tolist(), strict=True))


def test_an_id_with_a_lone_surrogate_still_gets_a_key() -> None:
    k, c = request_keys(["a\ud800", "a"])
    assert k[0] != k[1] and request_key("a\ud800") == (int(k[0]), int(c[0]))


def test_keys_and_checks_differ_between_nearby_ids() -> None:
    rids = [f"q{i}" for i in range(200_000)] + ["", "a", "b", "ab", "ba", "é", "e\u0301"]
    k, c = request_keys(rids)
    assert len(set(k.tolist())) == len(rids) and c.min() >= 0 and c.max() < 2**32  # checks: 32 bits
    assert len(set(c.tolist())) > len(rids) - 30  # ~5 pairs share a check among 200,000 (birthday bound)
    assert len(set(zip(k.tolist(), c.tolist(), strict=True))) == len(rids)


def z(n: int) -> np.ndarray:
    return np.zeros(n, np.int64)


def test_the_table_finds_replaces_by_the_larger_value_and_removes_only_a_matching_value() -> None:
    t = KeyTable()
    keys = np.array([5, 1029, 2053, -7], np.int64)  # 5, 1029 and 2053 share a home slot of 1024
    assert t.put(keys, z(4), np.array([10, 11, 12, 13], np.int64)).tolist() == [-1, -1, -1, -1] and len(t) == 4
    assert t.find(np.array([1029, 6, -7], np.int64), z(3)).tolist() == [11, -1, 13]
    assert t.find(np.array([1029], np.int64), np.array([1], np.int64)).tolist() == [-1]  # another check
    assert t.put(np.array([1029, 2053], np.int64), z(2), np.array([20, 3], np.int64)).tolist() == [11, 3]
    assert t.find(keys, z(4)).tolist() == [10, 20, 12, 13]
    t.remove(np.array([1029, 2053], np.int64), np.array([11, 12], np.int64))  # 1029 moved on: stays
    assert t.find(keys, z(4)).tolist() == [10, 20, -1, 13] and len(t) == 3
    t.remove(np.array([5], np.int64), np.array([10], np.int64))  # the run's head: 1029 shifts back
    assert t.find(keys, z(4)).tolist() == [-1, 20, -1, 13] and len(t) == 2


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=400))
@settings(max_examples=100, deadline=None)
def test_the_table_matches_a_dict_through_growth_and_shrinking(ops: list[tuple[bool, int]]) -> None:
    t, ref = KeyTable(), {}
    for i, (insert, k) in enumerate(ops):
        key = np.array([k * 1024 + (k % 3)], np.int64)  # many keys per home slot: long runs
        if insert:
            old = t.put(key, np.array([k], np.int64), np.array([i], np.int64))
            assert old.tolist() == [ref.get(k, -1)]
            ref[k] = i
        elif k in ref:
            t.remove(key, np.array([ref.pop(k)], np.int64))
    every = np.array([k * 1024 + (k % 3) for k in range(301)], np.int64)
    assert t.find(every, np.arange(301, dtype=np.int64)).tolist() == [ref.get(k, -1) for k in range(301)]
    assert len(t) == len(ref)


def test_the_table_grows_past_its_first_capacity_and_shrinks_back() -> None:
    t = KeyTable()
    keys = np.arange(100_000, dtype=np.int64) * 7919
    t.put(keys, z(100_000), np.arange(100_000, dtype=np.int64))
    assert t.capacity >= 200_000 and (t.find(keys, z(100_000)) == np.arange(100_000)).all()
    t.remove(keys[:99_990], np.arange(99_990, dtype=np.int64))
    assert len(t) == 10 and t.capacity == 1024
    assert t.find(keys[-10:], z(10)).tolist() == list(range(99_990, 100_000))


def test_settle_takes_in_order_and_stops_at_a_label_whose_prediction_may_still_come() -> None:
    t = KeyTable()
    s1 = salt(1)
    t.put(np.array([1, 2, 2 ^ s1, 4], np.int64), np.array([7, 7, 7, 7], np.int64), np.array([10, 20, 21, 40], np.int64))
    keys = np.array([2, 1, 1, 9, 4, 5], np.int64)  # 1 twice: taken by the first; 9 gives up, 5 waits
    lts = np.array([0, 0, 0, 0, 0, 100], np.int64)
    plain = np.array([True, True, True, True, True, True])
    stop, codes = t.settle(keys, np.full(6, 7, np.int64), lts, plain, np.array([0, s1], np.int64), 50, 10)
    assert stop == 5 and codes[:stop].tolist() == [[20, 21], [10, -1], [-1, -1], [-1, -1], [40, -1]]
    assert len(t) == 0 and t.find(np.array([1, 4], np.int64), np.array([7, 7], np.int64)).tolist() == [-1, -1]
