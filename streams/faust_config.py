"""``RunConfig`` → Faust app settings: the broker URL, credentials, group timeouts, sizes.

Faust's drivers are not librdkafka, so ``kafka.client`` is translated, not passed through:
the security settings below map onto Faust credentials; any other key is refused by name
rather than silently ignored. ``kafka.consumer`` / ``kafka.producer`` are librdkafka-only.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

import faust

from .broker import FAST_GROUP_SETTINGS
from .settings import ConfigError, RunConfig
from .topology import LARGE_MESSAGE_BYTES, Topology

__all__ = ["faust_settings", "SUPPORTED_CLIENT_KEYS"]

SUPPORTED_CLIENT_KEYS = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
    "ssl.endpoint.identification.algorithm", "client.id",
})  # fmt: skip


def _credentials(client: dict[str, Any]) -> Any:
    unknown = sorted(set(client) - SUPPORTED_CLIENT_KEYS)
    if unknown:
        raise ConfigError(
            f"kafka.client: {', '.join(unknown)} not supported by the Faust worker "
            f"(supported: {', '.join(sorted(SUPPORTED_CLIENT_KEYS))})"
        )
    proto = str(client.get("security.protocol", "PLAINTEXT")).upper()
    if proto not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"kafka.client.security.protocol: {proto!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
                          "SASL_SSL")  # fmt: skip
    context = None
    if proto.endswith("SSL"):
        context = ssl.create_default_context(cafile=client.get("ssl.ca.location"))
        if str(client.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
            context.check_hostname = False
        if "ssl.certificate.location" in client:
            context.load_cert_chain(client["ssl.certificate.location"], client.get("ssl.key.location"),
                                    client.get("ssl.key.password"))  # fmt: skip
    if proto.startswith("SASL"):
        mech = str(client.get("sasl.mechanism", client.get("sasl.mechanisms", "PLAIN"))).upper()
        return faust.SASLCredentials(username=client.get("sasl.username"), password=client.get("sasl.password"),
                                     mechanism=mech, ssl_context=context)  # fmt: skip
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_settings(cfg: RunConfig, topology: Topology) -> dict[str, Any]:
    """Keyword arguments of ``faust.App`` for this configuration."""
    if cfg.kafka.consumer or cfg.kafka.producer:
        raise ConfigError("kafka.consumer / kafka.producer are librdkafka settings of `driftstream run`; "
                          "the Faust worker does not use them")  # fmt: skip
    client = dict(cfg.kafka.client)
    brokers = ";".join(f"kafka://{h.strip()}" for h in cfg.kafka.bootstrap.split(",") if h.strip())
    data_dir = cfg.faust.data_dir or str(Path(tempfile.gettempdir()) / "driftstream-faust")
    settings: dict[str, Any] = {
        "broker": brokers,
        "broker_credentials": _credentials(client),
        "store": "memory://",
        "datadir": data_dir,
        "autodiscover": False,
        "topic_partitions": topology.partitions,
        "topic_replication_factor": cfg.topics.replication_factor,
        "topic_allow_declare": cfg.topics.create,
        # no standbys: the memory store drops their data when recovery completes, and a partition's
        # monitors are read from the changelog to its end on assignment anyway
        "table_standby_replicas": 0,
        "consumer_auto_offset_reset": cfg.processor.auto_offset_reset,
        # a dead worker's partitions move within seconds; the embedded broker joins fast
        "broker_session_timeout": FAST_GROUP_SETTINGS["session.timeout.ms"] / 1000,
        "broker_heartbeat_interval": FAST_GROUP_SETTINGS["heartbeat.interval.ms"] / 1000,
        "broker_max_poll_interval": max(FAST_GROUP_SETTINGS["max.poll.interval.ms"] / 1000, 30.0),
        "broker_commit_interval": cfg.processor.checkpoint_interval_s,
        "producer_max_request_size": LARGE_MESSAGE_BYTES + 65536,
        "producer_linger": 0.005,
        "web_enabled": cfg.http.enabled,
        "web_bind": cfg.http.host,
        "web_host": cfg.http.host,
        "web_port": cfg.http.port,
    }
    if "client.id" in client:
        settings["broker_client_id"] = client["client.id"]
    return settings
