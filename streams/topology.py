"""Topics and partitions: which partition a monitor lives in, and creating topics at start.

A monitor for ``model/stage`` lives in partition ``murmur2(b"model/stage") % P`` (the Java
client's default partitioner; librdkafka's ``murmur2_random``), where ``P`` is the partition
count of the repartition and state topics. Input topics with ``P`` partitions are
co-partitioned with them (range assignment gives one process partition ``i`` of each), so an
event already sitting in its home partition is processed where it is; any other event is
re-keyed through the repartition topic into its home partition.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from .settings import TopicSettings

__all__ = ["Topology", "TopologyError", "Homes", "murmur2", "home_partition", "ensure_topics"]

# Room for rejected 2 MB payloads in the dead-letter topic, and for wide monitor snapshots.
LARGE_MESSAGE_BYTES = 16 * 1024 * 1024


class TopologyError(RuntimeError):
    """Topics exist with a layout the processor cannot work with; the message says how to fix it."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java ``Utils.murmur2``), as an unsigned 32-bit int."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def home_partition(key: bytes, partitions: int) -> int:
    """Where the Java default partitioner puts ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Homes(dict[tuple[str, str], tuple[bytes, int]]):
    """``homes[(model, stage)]`` → (Kafka key, home partition), computed once per key.

    A plain dict lookup on the hot path; murmur2 (pure Python) runs only for a new key. A stage
    of a declared pipeline lives in the home partition of the pipeline's first stage (``anchors``),
    so one bank holds every stage of a pipeline and can relate their alerts."""

    _MAX = 1_000_000  # hostile key cardinality must not grow memory forever

    def __init__(self, partitions: int, anchors: Mapping[tuple[str, str], tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.partitions = partitions
        self.anchors = dict(anchors or {})

    def __missing__(self, hk: tuple[str, str]) -> tuple[bytes, int]:
        if len(self) > self._MAX:
            self.clear()
        key = f"{hk[0]}/{hk[1]}".encode()
        anchor = self.anchors.get(hk)
        where = f"{anchor[0]}/{anchor[1]}".encode() if anchor else key
        home = self[hk] = (key, home_partition(where, self.partitions))
        return home


@dataclass(frozen=True, slots=True)
class Topology:
    partitions: int  # P: repartition and state topics
    input_partitions: dict[str, int]

    def co_partitioned(self, topic: str) -> bool:
        return self.input_partitions.get(topic) == self.partitions


def _counts(admin: AdminClient, timeout: float) -> dict[str, int]:
    md = admin.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def ensure_topics(admin: AdminClient, topics: TopicSettings, timeout: float = 30.0) -> Topology:
    """Create what is missing (if allowed) and check the layout; return the partition counts."""
    have = _counts(admin, timeout)
    first = topics.input[0]
    p = have.get(topics.repartition) or have.get(first) or topics.partitions
    big = {"max.message.bytes": str(LARGE_MESSAGE_BYTES)}
    wanted: dict[str, tuple[int, dict[str, str]]] = {t: (p, {}) for t in topics.input}
    wanted[topics.alerts] = (p, {})
    wanted[topics.metrics] = (p, {})
    wanted[topics.deadletter] = (p, big)
    wanted[topics.repartition] = (p, {})
    if topics.labels:
        wanted[topics.labels] = (have.get(topics.labels) or p, {})
    wanted[topics.state] = (p, {"cleanup.policy": "compact", **big})
    missing = [t for t in wanted if t not in have]
    if missing and not topics.create:
        raise TopologyError(f"topics missing and topics.create is false: {', '.join(missing)}")
    if missing:
        new = [NewTopic(t, wanted[t][0], topics.replication_factor, config=wanted[t][1]) for t in missing]
        for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                fut.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker was first
                    raise TopologyError(f"cannot create topic {name}: {exc}") from None
        have = _counts(admin, timeout)
        deadline = time.monotonic() + timeout
        while any(t not in have for t in missing) and time.monotonic() < deadline:
            time.sleep(0.2)  # created, not yet in the metadata this client sees
            have = _counts(admin, timeout)
    for t in (topics.repartition, topics.state):
        if have.get(t) != p:
            raise TopologyError(
                f"topic {t} has {have.get(t)} partitions but the processor needs {p} "
                f"(the partition count of {topics.repartition} / {first}); delete it or set the same count"
            )
    return Topology(p, {t: have[t] for t in topics.input if t in have})
