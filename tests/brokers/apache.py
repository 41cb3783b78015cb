"""A single-node Apache Kafka (KRaft) broker from Maven Central jars, for tests and CI.

    python -m tests.brokers.apache          # start one, print its addresses, Ctrl-C stops it

Jars come once per pom into ``~/.cache/driftstream/kafka-<hash>`` via ``mvn
dependency:copy-dependencies`` (tests/kafka/pom.xml). Each broker gets a fresh log dir,
free ports, and three listeners: PLAINTEXT, SASL_SSL with SCRAM-SHA-256 (a self-signed
certificate made with the JDK's keytool at start), and the controller's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from streams.broker import BrokerError, free_port, stop_process, wait_for_process

__all__ = ["ApacheKafka", "fetch_jars", "java_available"]

POM = Path(__file__).resolve().parents[1] / "kafka" / "pom.xml"
SCRAM_USER = "driftstream"
SCRAM_PASSWORD = "driftstream-test-secret"
_STORE_PASSWORD = "driftstream-keystore"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def java_available() -> bool:
    return shutil.which("java") is not None and shutil.which("mvn") is not None


def _cache_dir() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    root = Path(os.environ.get("DRIFTSTREAM_CACHE", Path.home() / ".cache" / "driftstream"))
    return root / f"kafka-{digest}"


def fetch_jars() -> Path:
    """The folder of broker jars, fetched with Maven on first use."""
    target = _cache_dir()
    stamp = target / ".complete"
    if stamp.exists():
        return target
    if not java_available():
        raise BrokerError("Apache Kafka needs java and mvn on PATH (OpenJDK 17+, Maven 3)")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BrokerError(f"mvn could not fetch the Kafka jars:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    stamp.touch()
    return target


def _cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding (it can start
    with "-": pass it as ``--cluster-id=...``, never as a separate argument)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class ApacheKafka:
    """``with ApacheKafka() as k: k.bootstrap, k.sasl_bootstrap, k.sasl_client_config()``."""

    def __init__(self, startup_timeout: float = 90.0, heap: str = "512m") -> None:
        self.startup_timeout = startup_timeout
        self.heap = heap
        self.port = free_port()
        self.sasl_port = free_port()
        self.controller_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="driftstream-kafka-"))
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def sasl_client_config(self) -> dict[str, str]:
        """librdkafka settings for the SASL_SSL + SCRAM-SHA-256 listener."""
        return {
            "bootstrap.servers": self.sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": SCRAM_USER,
            "sasl.password": SCRAM_PASSWORD,
            "ssl.ca.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
        }

    def _java(self, jars: Path, *args: str, heap: str = "256m") -> list[str]:
        return ["java", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "-cp", f"{jars}/*", *args]  # fmt: skip

    def _make_certificate(self) -> Path:
        store = self.workdir / "broker.p12"
        keytool = ["keytool", "-noprompt", "-storepass", _STORE_PASSWORD]
        subprocess.run([*keytool, "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
                        "-validity", "2", "-dname", "CN=localhost", "-ext", "SAN=dns:localhost,ip:127.0.0.1",
                        "-storetype", "PKCS12", "-keystore", str(store)],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*keytool, "-exportcert", "-rfc", "-alias", "broker", "-keystore", str(store),
                        "-file", str(self.ca_file)], check=True, capture_output=True)  # fmt: skip
        return store

    def _properties(self, store: Path) -> Path:
        p = self.workdir / "server.properties"
        p.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                    "sasl.enabled.mechanisms=SCRAM-SHA-256",
                    "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    f"ssl.keystore.location={store}",
                    f"ssl.keystore.password={_STORE_PASSWORD}",
                    f"ssl.key.password={_STORE_PASSWORD}",
                    "ssl.keystore.type=PKCS12",
                    f"log.dirs={self.workdir / 'data'}",
                    "num.partitions=1",
                    "default.replication.factor=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    # a kill -9ed exactly-once worker's open transaction is aborted within ~1 s of its timeout
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                ]
            )
            + "\n"
        )
        return p

    def start(self) -> ApacheKafka:
        jars = fetch_jars()
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        t0 = time.monotonic()
        props = self._properties(self._make_certificate())
        fmt = subprocess.run(
            self._java(jars, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c", str(props),
                       "--ignore-formatted", "--add-scram",
                       f"SCRAM-SHA-256=[name={SCRAM_USER},password={SCRAM_PASSWORD}]"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerError(f"Kafka storage format failed: {fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
        log = (self.workdir / "broker.log").open("wb")
        self._proc = subprocess.Popen(
            self._java(jars, "kafka.Kafka", str(props), heap=self.heap),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_process(self._proc, self.bootstrap, self.startup_timeout, "Kafka", self.log_tail)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.workdir / "broker.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the broker process, keeping its data (``restart`` brings it back)."""
        proc, self._proc = self._proc, None
        stop_process(proc, timeout)

    def restart(self) -> None:
        """Stop and start again on the same ports and data, as after a broker crash."""
        self.stop()
        jars = fetch_jars()
        log = (self.workdir / "broker.log").open("ab")
        self._proc = subprocess.Popen(
            self._java(jars, "kafka.Kafka", str(self.workdir / "server.properties"), heap=self.heap),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for_process(self._proc, self.bootstrap, self.startup_timeout, "Kafka", self.log_tail)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


if __name__ == "__main__":
    with ApacheKafka() as kafka:
        print(f"Apache Kafka up in {kafka.startup_seconds:.1f} s")
        print(f"PLAINTEXT  {kafka.bootstrap}")
        print(f"SASL_SSL   {kafka.sasl_bootstrap}  user={SCRAM_USER} ca={kafka.ca_file}")
        sys.stdout.flush()
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # sigwait only receives blocked signals
        signal.sigwait(stop)
