"""Monitor state in the compacted state topic: how it is written and read back.

State partition ``i`` holds the monitors that live in partition ``i`` (see ``topology``):
one record per monitor (key: the JSON array ``[model, stage, variant]``, value: the bank's
snapshot) and one offsets record (key ``\\x00offsets``) written after them in the same
checkpoint. Records of one partition are delivered in order (idempotent producer), so when
an offsets record is there, every snapshot it vouches for is there too. On restore the
offsets record says where the input of that partition resumes; with at-least-once this
repairs a crash between "snapshots flushed" and "offsets committed" (the state would
otherwise be ahead of the committed offsets and replayed events would count twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from detectors import MonitorBank, SnapshotError

__all__ = ["ForeignState", "OFFSETS_KEY", "Restored", "StateReader", "monitor_record_key", "offsets_record"]

OFFSETS_KEY = b"\x00offsets"
Offsets = dict[tuple[str, int], int]


def monitor_record_key(key: tuple[str, str, str]) -> bytes:
    return orjson.dumps(list(key))


def offsets_record(offsets: Offsets, group: str) -> bytes:
    return orjson.dumps({"group": group, "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())]})


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
        out: dict[int, Restored] = {p: Restored(make_bank()) for p in pending}
        for p, latest in pending.items():
            out[p].records = len(latest)
            out[p].bytes = sum(len(v or b"") for v in latest.values())
            res = out[p]
            for k, v in latest.items():
                if v is None:
                    continue
                try:
                    if k == OFFSETS_KEY:
                        doc = orjson.loads(v)
                        if doc.get("group") != self.group:
                            raise ForeignState(
                                f"state topic {self.topic} holds checkpoints of consumer group {doc.get('group')!r}, "
                                f"not {self.group!r}: give each group its own topics.state and topics.repartition"
                            )
                        res.offsets = {(t, int(q)): int(o) for t, q, o in doc["offsets"]}
                    else:
                        res.bank.restore(v)
                except (SnapshotError, ValueError, KeyError, TypeError) as exc:
                    # A record this version cannot read: that monitor starts fresh; the caller logs it.
                    res.bad_records.append(f"{k[:80]!r}: {exc}")
        return out

    def close(self) -> None:
        self._consumer.close()
