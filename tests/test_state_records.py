"""State topic records of both runtimes, and the monitors ahead of their partition (pure, no broker)."""

from __future__ import annotations

import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent
from streams.faust_state import offsets_key, offsets_value, read_marks
from streams.state import (
    OFFSETS_KEY,
    AheadMonitors,
    ForeignState,
    monitor_record_key,
    monitor_value,
    offsets_record,
    restore_partition,
    split_monitor,
)


def test_a_monitor_record_carries_the_offsets_its_snapshot_covers() -> None:
    marks = {("in", 3): 1_234, ("repart", 3): 7}
    snapshot = b"\x00binary\nsnapshot\n\xff"  # newlines inside the snapshot are fine
    assert split_monitor(monitor_value(marks, snapshot)) == (marks, snapshot)
    assert split_monitor(monitor_value({}, b"")) == ({}, b"")


@pytest.mark.parametrize("value", [b"", b"DSF1", b'DSF1[["t",0,1]]', b"DSS1 a bare snapshot of an earlier version"])
def test_a_value_without_the_record_header_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        split_monitor(value)


def test_the_offsets_record_names_its_group_and_another_group_is_refused() -> None:
    marks = {("in", 0): 10, ("in-b", 0): 0}
    raw = offsets_value(marks, "g1")
    assert read_marks(raw, "g1", "state") == marks
    assert read_marks(None, "g1", "state") == {}
    with pytest.raises(ForeignState, match="group 'g1', not 'g2'"):
        read_marks(raw, "g2", "state")
    assert offsets_key(12) == b"\x00offsets:12"


def test_only_a_monitor_past_its_partitions_offsets_record_skips_events_and_only_those_it_holds() -> None:
    ahead = AheadMonitors()
    partition = {("in", 1): 100, ("rp", 1): 5}
    a, b, c = ("m", "s", "primary"), ("n", "s", "primary"), ("o", "s", "primary")
    assert ahead.note(a, {("in", 1): 130, ("rp", 1): 5}, partition)
    assert not ahead.note(b, {("in", 1): 100, ("rp", 1): 5}, partition)  # written with the offsets record
    assert not ahead.note(c, {("in", 1): 90}, partition)  # older: replayed events are new to it
    assert ahead
    assert ahead.holds(a, ("in", 1), 100) and ahead.holds(a, ("in", 1), 129)
    assert not ahead.holds(a, ("in", 1), 130)
    assert not ahead.holds(a, ("rp", 1), 5)
    assert not ahead.holds(b, ("in", 1), 100)
    ahead.prune({("in", 1): 120, ("rp", 1): 5})
    assert ahead  # still behind 130
    ahead.prune({("in", 1): 130, ("rp", 1): 5})
    assert not ahead
    ahead.note(a, {("in", 1): 130}, partition)
    ahead.forget([a, b])
    assert not ahead


def test_a_state_partition_restores_new_records_bare_snapshots_of_earlier_versions_and_reports_bad_ones() -> None:
    cfg = EngineConfig.from_mapping({"defaults": {"warmup_events": 100}})
    source = MonitorBank(cfg)
    source.process([PredictionEvent("m", "s", {"x": float(i)}, i) for i in range(150)])
    source.process([PredictionEvent("n", "s", {"x": float(i)}, i) for i in range(150)])
    m, n = ("m", "s", "primary"), ("n", "s", "primary")
    marks = {("in", 2): 100}
    latest: dict[bytes, bytes | None] = {
        monitor_record_key(m): monitor_value(marks, source.snapshot(m)),
        monitor_record_key(n): source.snapshot(n),  # written before monitor records carried offsets
        b'["gone", "s", "primary"]': None,  # deleted
        b'["bad", "s", "primary"]': b"DSF1[]\nnot a snapshot",
        OFFSETS_KEY: offsets_record(marks, "g"),
    }
    res = restore_partition(latest, MonitorBank(cfg), "g", "state")
    assert set(res.bank.monitors) == {m, n}
    assert res.bank.monitors[m].position == res.bank.monitors[n].position == 150
    assert res.covered == {m: marks, n: {}}
    assert res.offsets == marks
    assert len(res.bad_records) == 1 and "bad" in res.bad_records[0]
    with pytest.raises(ForeignState):
        restore_partition(latest, MonitorBank(cfg), "other-group", "state")
