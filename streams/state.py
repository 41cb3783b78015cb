"""Monitor state in the compacted state topic: how it is written and read back.

State partition ``i`` holds the monitors that live in partition ``i`` (see ``topology``):
one record per monitor (key: the JSON array ``[model, stage, variant]``) and one offsets
record (key ``\\x00offsets``) written after them in the same checkpoint. Records of one
partition are delivered in order (idempotent producer), so when an offsets record is there,
every snapshot it vouches for is there too. On restore the offsets record says where the
input of that partition resumes; with at-least-once this repairs a crash between "snapshots
flushed" and "offsets committed" (the state would otherwise be ahead of the committed offsets
and replayed events would count twice).

A monitor record's value also carries the input offsets its snapshot covers:
``MAGIC + JSON [[topic, partition, offset], ...] + b"\\n" + snapshot``. Without transactions a
crash can land between two records of one checkpoint, leaving some monitors a checkpoint
ahead of their partition's offsets record; :class:`AheadMonitors` then makes each of them
skip exactly the events it already holds. (Values without ``MAGIC`` are bare snapshots of
earlier versions: they cover nothing beyond the offsets record.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from detectors import MonitorBank, SnapshotError

__all__ = [
    "AheadMonitors",
    "ForeignState",
    "Marks",
    "OFFSETS_KEY",
    "Restored",
    "StateReader",
    "monitor_record_key",
    "monitor_value",
    "offsets_record",
    "read_marks",
    "restore_partition",
    "split_monitor",
]

OFFSETS_KEY = b"\x00offsets"
MAGIC = b"DSF1"
Marks = dict[tuple[str, int], int]
Offsets = Marks
Key = tuple[str, str, str]


def monitor_record_key(key: tuple[str, str, str]) -> bytes:
    return orjson.dumps(list(key))


def offsets_record(offsets: Offsets, group: str) -> bytes:
    return orjson.dumps({"group": group, "offsets": orjson.Fragment(encode_marks(offsets))})


def encode_marks(marks: Marks) -> bytes:
    return orjson.dumps([[t, p, o] for (t, p), o in sorted(marks.items())])


def decode_marks(raw: Any) -> Marks:
    return {(str(t), int(p)): int(o) for t, p, o in raw}


def read_marks(raw: bytes | None, group: str, topic: str) -> Marks:
    """The offsets record's marks (none: ``{}``); refuses another consumer group's state."""
    if raw is None:
        return {}
    doc: Any = orjson.loads(raw)
    if doc.get("group") != group:
        raise ForeignState(
            f"state topic {topic} holds checkpoints of consumer group {doc.get('group')!r}, not {group!r}: "
            "give each group its own topics.state and topics.repartition"
        )
    return decode_marks(doc["offsets"])


def monitor_value(marks: Marks, snapshot: bytes) -> bytes:
    """A monitor record: the offsets its snapshot covers, then the snapshot."""
    return MAGIC + encode_marks(marks) + b"\n" + snapshot


def split_monitor(value: bytes) -> tuple[Marks, bytes]:
    """(offsets the snapshot covers, snapshot); raises ValueError on a foreign value."""
    if not value.startswith(MAGIC):
        raise ValueError("not a driftstream monitor record")
    head, sep, snapshot = value[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise ValueError("truncated monitor record")
    return decode_marks(orjson.loads(head)), snapshot


class AheadMonitors:
    """Monitors restored past their partition's offsets record, with the offsets they cover.

    Until the partition's position passes those offsets, each of their events below them is
    in the snapshot already and must not be fed again.
    """

    def __init__(self) -> None:
        self.marks: dict[Key, Marks] = {}

    def __bool__(self) -> bool:
        return bool(self.marks)

    def note(self, key: Key, covered: Marks, partition_marks: Marks) -> bool:
        """Remember ``key`` if its snapshot covers more than its partition's offsets record."""
        if any(o > partition_marks.get(tp, 0) for tp, o in covered.items()):
            self.marks[key] = covered
            return True
        return False

    def holds(self, key: Key, tp: tuple[str, int], offset: int) -> bool:
        """True when the monitor ``key`` holds the event at ``offset`` of ``tp`` already."""
        marks = self.marks.get(key)
        return marks is not None and offset < marks.get(tp, 0)

    def prune(self, positions: Marks) -> None:
        """Forget the monitors every partition of which has moved past what they cover."""
        self.marks = {k: m for k, m in self.marks.items() if any(o > positions.get(tp, 0) for tp, o in m.items())}

    def forget(self, keys: Iterable[Key]) -> None:
        """The monitors of a revoked partition."""
        for key in keys:
            self.marks.pop(key, None)


class ForeignState(RuntimeError):
    """The state topic holds another consumer group's checkpoints."""


@dataclass(slots=True)
class Restored:
    """What one state partition gave back."""

    bank: MonitorBank
    offsets: Offsets = field(default_factory=dict)
    records: int = 0
    bytes: int = 0
    bad_records: list[str] = field(default_factory=list)
    covered: dict[Key, Marks] = field(default_factory=dict)  # what each monitor's snapshot covers


class StateReader:
    """Reads state partitions from the beginning to their end (committed records only)."""

    def __init__(self, conf: dict[str, object], topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        self._consumer = Consumer(
            {
                **conf,
                "group.id": "driftstream-state-reader",  # never joins or commits: assign() only
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )

    def read_latest(self, partitions: Iterable[int], timeout: float = 120.0) -> dict[int, dict[bytes, bytes | None]]:
        """The last record per key of each partition (compaction semantics), read to its end."""
        pending: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
        if not pending:
            return pending
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in pending])
        open_parts = set(pending)
        deadline = time.monotonic() + timeout
        try:
            while open_parts:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"restoring {self.topic} partitions {sorted(open_parts)} took over {timeout:.0f} s"
                    )
                for m in self._consumer.consume(1000, 0.5):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(m.partition())
                            continue
                        if err.fatal() or not err.retriable():
                            raise RuntimeError(f"reading {self.topic}: {err}")
                        continue
                    p = m.partition()
                    k = m.key()
                    if p in pending and k is not None:
                        pending[p][k] = m.value()
        finally:
            self._consumer.unassign()
        return pending

    def restore(
        self, partitions: Iterable[int], make_bank: Callable[[], MonitorBank], timeout: float = 120.0
    ) -> dict[int, Restored]:
        """One fresh bank per partition, filled from the state topic; raises on timeout."""
        pending = self.read_latest(partitions, timeout)
        return {p: restore_partition(latest, make_bank(), self.group, self.topic) for p, latest in pending.items()}

    def close(self) -> None:
        self._consumer.close()


def restore_partition(latest: dict[bytes, bytes | None], bank: MonitorBank, group: str, topic: str) -> Restored:
    """Fill ``bank`` from one state partition's latest records (raises ForeignState)."""
    res = Restored(bank, records=len(latest), bytes=sum(len(v or b"") for v in latest.values()))
    for k, v in latest.items():
        if v is None:
            continue
        try:
            if k == OFFSETS_KEY:
                res.offsets = read_marks(v, group, topic)
            else:
                covered, snapshot = split_monitor(v) if v.startswith(MAGIC) else ({}, v)
                res.covered[bank.restore(snapshot)] = covered
        except (SnapshotError, ValueError, KeyError, TypeError) as exc:
            # A record this version cannot read: that monitor starts fresh; the caller logs it.
            res.bad_records.append(f"{k[:80]!r}: {exc}")
    return res
