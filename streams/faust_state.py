"""Records of the Faust worker's table (its changelog is ``topics.state``).

Keys: a monitor's ``[model, stage, variant]`` (as ``driftstream run``), and one
``\\x00offsets:N`` record per partition ``N`` (a Faust table is one keyspace over all
partitions, so the partition is in the key). Monitor values carry the input offsets their
snapshot covers: without transactions a crash can land between two records of one
checkpoint, leaving some monitors a checkpoint ahead of the others; on restore each monitor
then skips exactly the events its own snapshot already holds.

Value of a monitor record: ``MAGIC + JSON [[topic, partition, offset], ...] + b"\\n" + snapshot``.
"""

from __future__ import annotations

from typing import Any

import orjson

from .state import ForeignState

__all__ = ["Marks", "monitor_value", "offsets_key", "offsets_value", "read_marks", "split_monitor"]

MAGIC = b"DSF1"
Marks = dict[tuple[str, int], int]


def offsets_key(partition: int) -> bytes:
    """Table key of a partition's offsets record."""
    return b"\x00offsets:%d" % partition


def _encode(marks: Marks) -> bytes:
    return orjson.dumps([[t, p, o] for (t, p), o in sorted(marks.items())])


def _decode(raw: Any) -> Marks:
    return {(str(t), int(p)): int(o) for t, p, o in raw}


def monitor_value(marks: Marks, snapshot: bytes) -> bytes:
    return MAGIC + _encode(marks) + b"\n" + snapshot


def split_monitor(value: bytes) -> tuple[Marks, bytes]:
    """(offsets the snapshot covers, snapshot); raises ValueError on a foreign value."""
    if not value.startswith(MAGIC):
        raise ValueError("not a driftstream faust-worker monitor record")
    head, sep, snapshot = value[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise ValueError("truncated monitor record")
    return _decode(orjson.loads(head)), snapshot


def offsets_value(marks: Marks, group: str) -> bytes:
    return orjson.dumps({"group": group, "offsets": orjson.Fragment(_encode(marks))})


def read_marks(raw: bytes | None, group: str, topic: str) -> Marks:
    """The offsets record's marks; refuses another consumer group's state."""
    if raw is None:
        return {}
    doc = orjson.loads(raw)
    if doc.get("group") != group:
        raise ForeignState(
            f"state topic {topic} holds checkpoints of group {doc.get('group')!r}, not {group!r}: "
            "give each group its own topics.state and topics.repartition"
        )
    return _decode(doc["offsets"])
