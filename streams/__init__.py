"""Kafka runtimes around the engine: the embedded broker, the CLI, the processor."""

from __future__ import annotations

from .broker import FAST_GROUP_SETTINGS, BrokerError, EmbeddedBroker, free_port, wait_for_broker

__all__ = ["FAST_GROUP_SETTINGS", "BrokerError", "EmbeddedBroker", "free_port", "wait_for_broker"]
