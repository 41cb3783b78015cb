"""The Faust worker's table records (pure, no broker)."""

from __future__ import annotations

import pytest

from streams.faust_state import monitor_value, offsets_key, offsets_value, read_marks, split_monitor
from streams.state import ForeignState


def test_a_monitor_record_carries_the_offsets_its_snapshot_covers() -> None:
    marks = {("in", 3): 1_234, ("repart", 3): 7}
    snapshot = b"\x00binary\nsnapshot\n\xff"  # newlines inside the snapshot are fine
    assert split_monitor(monitor_value(marks, snapshot)) == (marks, snapshot)
    assert split_monitor(monitor_value({}, b"")) == ({}, b"")


@pytest.mark.parametrize("value", [b"", b"DSF1", b'DSF1[["t",0,1]]', b"raw snapshot of driftstream run"])
def test_a_value_not_written_by_the_faust_worker_is_refused(value: bytes) -> None:
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
