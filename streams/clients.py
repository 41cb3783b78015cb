"""Kafka client settings for the processor, reaching the broker, and choosing the guarantee.

Consumer tuning comes from measurements on this kind of machine (see the architecture
guide): ``fetch.queue.backoff.ms=10`` roughly doubles consume+parse throughput over the
default; the prefetch queue is capped so an overloaded worker lets lag grow instead of memory.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from .broker import FAST_GROUP_SETTINGS
from .settings import RunConfig, redacted
from .topology import LARGE_MESSAGE_BYTES

__all__ = ["BrokerUnreachable", "admin_config", "consumer_config", "producer_config", "connect", "choose_guarantee"]

log = logging.getLogger("driftstream.clients")


class BrokerUnreachable(RuntimeError):
    """No broker answered within ``processor.connect_max_wait_s``."""


def _base(cfg: RunConfig) -> dict[str, Any]:
    return {
        "bootstrap.servers": cfg.kafka.bootstrap,
        "logger": logging.getLogger("librdkafka"),
        **cfg.kafka.client,
    }


def admin_config(cfg: RunConfig) -> dict[str, Any]:
    return _base(cfg)


def consumer_config(cfg: RunConfig) -> dict[str, Any]:
    return {
        **_base(cfg),
        **FAST_GROUP_SETTINGS,  # a dead worker's partitions move within seconds; Tansu joins fast
        "group.id": cfg.processor.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": cfg.processor.auto_offset_reset,
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "range",  # co-partitions input, repartition (see topology)
        "fetch.queue.backoff.ms": 10,
        "queued.max.messages.kbytes": 65536,
        **cfg.kafka.consumer,
    }


def producer_config(cfg: RunConfig, exactly_once: bool) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **_base(cfg),
        "enable.idempotence": True,  # per-partition order: offsets records follow their snapshots
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": LARGE_MESSAGE_BYTES + 65536,
        "queue.buffering.max.kbytes": 262144,
        **cfg.kafka.producer,
    }
    if exactly_once:
        conf["transactional.id"] = f"driftstream-{cfg.processor.group}-{uuid.uuid4().hex[:12]}"
        conf["transaction.timeout.ms"] = int(cfg.processor.transaction_timeout_s * 1000)
    return conf


def connect(cfg: RunConfig) -> AdminClient:
    """Wait for a broker, with backoff and a log line every few seconds; never hang silently."""
    conf = {**admin_config(cfg), "socket.timeout.ms": 5000}
    admin = AdminClient(conf)
    limit = cfg.processor.connect_max_wait_s
    start = time.monotonic()
    delay, last_log = 0.2, 0.0
    while True:
        try:
            md = admin.list_topics(timeout=3.0)
            if md.brokers:
                log.info("connected to %s (%d broker(s), cluster %s)", cfg.kafka.bootstrap, len(md.brokers),
                         md.cluster_id)  # fmt: skip
                return admin
            why = "metadata without brokers"
        except KafkaException as exc:
            why = str(exc.args[0]) if exc.args else str(exc)
        waited = time.monotonic() - start
        if limit is not None and waited >= limit:
            raise BrokerUnreachable(
                f"no Kafka broker answered at {cfg.kafka.bootstrap} within {limit:g} s ({why}); "
                f"client settings: {redacted(cfg.kafka.client)}"
            )
        if waited - last_log >= 5.0 or last_log == 0.0:
            log.warning("waiting for Kafka at %s (%.0f s so far): %s", cfg.kafka.bootstrap, waited, why)
            last_log = max(waited, 1e-9)
        time.sleep(delay)
        delay = min(delay * 2, 3.0)


def is_embedded(admin: AdminClient) -> bool:
    """Tansu names its cluster ``tansu_cluster``; it does not hide aborted transactions."""
    cluster = admin.list_topics(timeout=10.0).cluster_id or ""
    return cluster.startswith("tansu")


def choose_guarantee(cfg: RunConfig, admin: AdminClient) -> str:
    """``auto`` → exactly_once, except at_least_once on the embedded broker."""
    wanted = cfg.processor.guarantee
    embedded = is_embedded(admin)
    if wanted == "auto":
        return "at_least_once" if embedded else "exactly_once"
    if wanted == "exactly_once" and embedded:
        log.warning(
            "processing.guarantee exactly_once on the embedded broker (Tansu): it commits transactions but "
            "shows aborted records to read_committed consumers, so after a crash this is at-least-once"
        )
    return wanted
