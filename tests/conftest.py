"""Shared test settings and the broker fixtures.

Which brokers integration tests run on:
- ``KAFKA_BOOTSTRAP=host:port``: that cluster only;
- ``DRIFTSTREAM_TEST_BROKER=tansu`` or ``=apache``: that one only;
- otherwise both the embedded broker (Tansu) and Apache Kafka from Maven jars. Without
  java/mvn the Apache Kafka tests are skipped with a reason in the summary, unless
  ``DRIFTSTREAM_REQUIRE_APACHE=1`` (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings

from streams.broker import FAST_GROUP_SETTINGS, EmbeddedBroker

from .brokers.apache import ApacheKafka, java_available

# CI runs more examples; a developer's run stays quick.
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _broker_kinds() -> list[str]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return ["external"]
    chosen = os.environ.get("DRIFTSTREAM_TEST_BROKER", "").strip().lower()
    if chosen in ("tansu", "embedded"):
        return ["tansu"]
    if chosen == "apache":
        return ["apache"]
    if chosen:
        raise pytest.UsageError(f"DRIFTSTREAM_TEST_BROKER={chosen!r}: use tansu or apache")
    return ["tansu", "apache"]


@dataclass
class Broker:
    """A running broker for a test session: where it is and how clients should talk to it."""

    kind: str
    bootstrap: str
    apache: ApacheKafka | None = None
    startup_seconds: float | None = None
    client: dict[str, object] = field(default_factory=dict)

    def conf(self, **extra: object) -> dict[str, object]:
        """Producer/admin settings."""
        return {"bootstrap.servers": self.bootstrap, **extra}

    def consumer_conf(self, **extra: object) -> dict[str, object]:
        """Consumer settings: bootstrap plus the fast consumer-group timeouts."""
        return {"bootstrap.servers": self.bootstrap, **self.client, **extra}

    @property
    def hides_aborted_transactions(self) -> bool:
        """Tansu 0.6 commits transactions but shows aborted records to read_committed
        readers (tests/test_brokers.py pins this): no exactly-once on the embedded broker."""
        return self.kind != "tansu"


_STARTED: list[Broker] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which brokers the integration tests ran against (and how long they took to start)."""
    for b in _STARTED:
        terminalreporter.write_line(f"broker used: {b.kind} at {b.bootstrap}, started in {b.startup_seconds:.2f} s")
    if not _STARTED:
        terminalreporter.write_line("broker used: none (no integration test selected)")


@pytest.fixture(scope="session")
def _tansu() -> Iterator[Broker]:
    with EmbeddedBroker() as b:
        broker = Broker("tansu", b.bootstrap, startup_seconds=b.startup_seconds, client=dict(FAST_GROUP_SETTINGS))
        _STARTED.append(broker)
        yield broker


@pytest.fixture(scope="session")
def _apache() -> Iterator[Broker]:
    if not java_available():
        if os.environ.get("DRIFTSTREAM_REQUIRE_APACHE") == "1":
            pytest.fail("DRIFTSTREAM_REQUIRE_APACHE=1 but java/mvn are not on PATH: cannot run Apache Kafka")
        pytest.skip("Apache Kafka suite skipped: java and mvn are not on PATH")
    with ApacheKafka() as k:
        broker = Broker("apache", k.bootstrap, apache=k, startup_seconds=k.startup_seconds,
                        client=dict(FAST_GROUP_SETTINGS))  # fmt: skip
        _STARTED.append(broker)
        yield broker


@pytest.fixture(scope="session", params=_broker_kinds())
def broker(request: pytest.FixtureRequest) -> Broker:
    """One broker per kind per session; each test that takes it runs once per kind."""
    if request.param == "external":
        external = Broker("external", os.environ["KAFKA_BOOTSTRAP"], startup_seconds=0.0,
                          client=dict(FAST_GROUP_SETTINGS))  # fmt: skip
        if external not in _STARTED:
            _STARTED.append(external)
        return external
    b: Broker = request.getfixturevalue(f"_{request.param}")
    print(f"\n[{b.kind} broker at {b.bootstrap}, started in {b.startup_seconds:.2f} s]")
    return b


@pytest.fixture
def apache_broker(request: pytest.FixtureRequest) -> Broker:
    """Apache Kafka specifically (SASL_SSL, restarts)."""
    if "apache" not in _broker_kinds():
        pytest.skip("Apache Kafka not selected for this run")
    b: Broker = request.getfixturevalue("_apache")
    return b


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test (and broker parameter)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:120]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"
