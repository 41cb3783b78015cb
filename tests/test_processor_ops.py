"""Operating the processor: broker restarts, SASL_SSL, bad configs, unreachable brokers, partitioning."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.broker import free_port
from streams.topology import Homes, home_partition, murmur2

from .conftest import Broker
from .harness import ROOT, alerts_of, committed_total, produce, read_topic, scenario, start, wait_for

pytestmark = pytest.mark.broker


def test_murmur2_matches_kafka_reference_values() -> None:
    # values from Kafka's UtilsTest.testMurmur2 (Java ints as unsigned)
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             b"abc": 479470107}  # fmt: skip
    for data, want in cases.items():
        assert murmur2(data) == want & 0xFFFFFFFF, data


def test_home_partition_matches_librdkafka_murmur2_partitioner(broker: Broker, topic: str) -> None:
    admin = AdminClient(broker.conf())
    admin.create_topics([NewTopic(topic, 7, 1)])[topic].result(30)
    p = Producer(broker.conf(partitioner="murmur2_random"))
    seen: dict[bytes, int] = {}
    keys = [f"model{i}/stage{i % 3}".encode() for i in range(200)]
    for k in keys:
        p.produce(topic, b"x", k, on_delivery=lambda err, m: seen.__setitem__(m.key(), m.partition()))
    assert p.flush(30) == 0
    assert {k: home_partition(k, 7) for k in keys} == seen


def test_broker_restart_mid_stream_loses_nothing(apache_broker: Broker, tmp_path: Path) -> None:
    assert apache_broker.apache is not None
    prefix = f"r{uuid.uuid4().hex[:8]}"
    items = scenario(40_000, {("speech", "asr"): (20_000, "f1", 2.0)})
    run = start(tmp_path, apache_broker, prefix)
    try:
        run.wait_ready()
        produce(apache_broker, f"{prefix}-predictions", items[:20_000])
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= 20_000, 60, "first half processed")
        apache_broker.apache.restart()
        produce(apache_broker, f"{prefix}-predictions", items[20_000:])
        wait_for(lambda: committed_total(apache_broker, f"{prefix}-group", f"{prefix}-predictions") == len(items),
                 120, "every event committed after the restart")  # fmt: skip
        assert run.proc.poll() is None, "the processor must survive a broker restart"
        processed = run.metric("driftstream_events_processed_total")
        firing = lambda got: any(a["status"] == "firing" for a in alerts_of(got))  # noqa: E731
        alerts = alerts_of(read_topic(apache_broker, f"{prefix}-alerts", until=firing, timeout=30))
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert processed >= len(items)  # exactly-once: a transaction aborted by the restart is replayed
    assert ("speech", "asr") in {(a["model"], a["stage"]) for a in alerts if a["status"] == "firing"}


def test_sasl_ssl_scram_with_secrets_from_the_environment(apache_broker: Broker, tmp_path: Path) -> None:
    k = apache_broker.apache
    assert k is not None
    sasl = k.sasl_client_config()
    env = {"DRIFTSTREAM_KAFKA_SASL_PASSWORD": sasl["sasl.password"]}
    client = {n: v for n, v in sasl.items() if n not in ("bootstrap.servers", "sasl.password")}
    prefix = f"s{uuid.uuid4().hex[:8]}"
    items = scenario(4_000, {})
    run = start(tmp_path, apache_broker, prefix, {"kafka": {"bootstrap": k.sasl_bootstrap, "client": client}}, env=env)
    try:
        run.wait_ready()
        produce(apache_broker, f"{prefix}-predictions", items)
        wait_for(lambda: run.metric("driftstream_events_processed_total") >= len(items), 60, "events over SASL_SSL")
        metrics_text = run.get("/metrics")[1]
        rc, _ = run.stop()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert rc == 0, run.log()[-3000:]
    assert sasl["sasl.password"] not in run.log()
    assert sasl["sasl.password"] not in metrics_text


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def test_unreachable_broker_logs_and_fails_after_max_wait() -> None:
    port = free_port()
    t0 = time.monotonic()
    res = _cli("run", "--bootstrap", f"127.0.0.1:{port}", "--max-wait", "7")
    took = time.monotonic() - t0
    assert res.returncode == 2
    assert f"waiting for Kafka at 127.0.0.1:{port}" in res.stderr
    assert "no Kafka broker answered" in res.stderr
    assert took < 40


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("processor:\n  batch_sise: 10\nkafka:\n  client: {group.id: x}\n")
    res = _cli("run", "-c", str(cfg))
    assert res.returncode == 2
    assert "processor.batch_sise" in res.stderr and "allowed:" in res.stderr and "batch_size" in res.stderr
    assert "group.id is set by driftstream" in res.stderr
    cfg.write_text("defaults:\n  detectors:\n    psi: {bins: 1}\n")
    res = _cli("run", "-c", str(cfg))
    assert res.returncode == 2 and "defaults.detectors.psi.bins" in res.stderr


def test_homes_memoize_home_partition_and_stay_bounded() -> None:
    homes = Homes(7)
    keys = [(f"model{i}", f"stage{i % 3}") for i in range(50)]
    assert {hk: homes[hk] for hk in keys} == {
        hk: (f"{hk[0]}/{hk[1]}".encode(), home_partition(f"{hk[0]}/{hk[1]}".encode(), 7)) for hk in keys
    }
    assert len(homes) == 50
    homes._MAX = 60
    for i in range(100):
        homes[(f"m{i}", "s")]
    assert len(homes) <= 61
