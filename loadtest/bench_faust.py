"""The Faust worker's rate beside Faust doing nothing, and beside ``driftstream run``.

N events (the processor benchmark's 60 keys × 10 features) are produced once; then, each as
a fresh consumer group on that topic:

1. a Faust app whose agent only does ``stream.take(take_max)`` (Faust's own ceiling);
2. ``driftstream faust-worker`` (engine, dead-letter checks, table checkpoints, alerts);
3. ``driftstream run`` (the confluent-kafka processor).

Rates count from the end of the first batch to the N-th event, the same way for all three.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.broker import free_port
from streams.processor import Processor

from .bench_processor import PARTITIONS, _config, _payloads, _produce

__all__ = ["bench_faust"]

TAKE = 10_000


def _baseline_app(bootstrap: str, topic: str, n: int, out: str) -> None:
    """Run in a subprocess: Faust with a do-nothing ``take`` loop; writes its rate to ``out``."""
    import faust  # noqa: PLC0415

    app = faust.App(f"nothing-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}", store="memory://",
                    web_enabled=False, autodiscover=False, broker_session_timeout=6, broker_heartbeat_interval=1,
                    datadir=tempfile.mkdtemp(), consumer_auto_offset_reset="earliest")  # fmt: skip
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = [0, 0, 0.0]  # events, events at t0, t0

    @app.agent(source)
    async def nothing(stream: Any) -> None:
        async for batch in stream.take(TAKE, within=0.25):
            seen[0] += len(batch)
            if not seen[2]:
                seen[1], seen[2] = seen[0], time.perf_counter()
            if seen[0] >= n:
                Path(out).write_text(str((seen[0] - seen[1]) / (time.perf_counter() - seen[2])))
                os._exit(0)
        await asyncio.sleep(0)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def _faust_rate(cfg: dict[str, Any], n: int, timeout: float) -> float:
    """``driftstream faust-worker`` in a subprocess; its /metrics polled every 50 ms."""
    port = free_port()
    cfg = {**cfg, "http": {"enabled": True, "port": port}}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "faust.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "faust-worker", "-c", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            t0, c0 = 0.0, 0.0
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                c = _processed(port)
                if c and not t0:
                    t0, c0 = time.perf_counter(), c
                if c >= n:
                    return (c - c0) / (time.perf_counter() - t0)
                time.sleep(0.05)
            raise RuntimeError(f"faust-worker processed {_processed(port):.0f} of {n} events in {timeout:.0f} s")
        finally:
            proc.terminate()
            proc.wait(60)


def _processed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("driftstream_events_processed_total "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _processor_rate(cfg: dict[str, Any], n: int, timeout: float) -> float:
    from streams.settings import RunConfig  # noqa: PLC0415

    proc = Processor(RunConfig.from_mapping(cfg))
    proc.start()
    th = threading.Thread(target=proc.run, daemon=True)
    th.start()
    t0, c0 = 0.0, 0
    deadline = time.monotonic() + timeout
    try:
        while proc._counts["processed"] < n and time.monotonic() < deadline:
            c = proc._counts["processed"]
            if c and not t0:
                t0, c0 = time.perf_counter(), c
            time.sleep(0.005)
        return (proc._counts["processed"] - c0) / (time.perf_counter() - t0)
    finally:
        proc.stopping = True
        th.join(30)


def bench_faust(bootstrap: str, n: int, repeats: int = 2) -> dict[str, float]:
    prefix = f"fbench-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(f"{prefix}-in", PARTITIONS, 1)])[f"{prefix}-in"].result(30)
    _produce(bootstrap, f"{prefix}-in", _payloads(n, 1), {})
    timeout = 600.0
    base = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "rate"
            cmd = [sys.executable, "-m", "loadtest.bench_faust", bootstrap, f"{prefix}-in", str(n), str(out)]
            subprocess.run(cmd, timeout=timeout, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            base = max(base, float(out.read_text()))
    engine = proc_rate = 0.0
    for i in range(repeats):
        cfg = _config(bootstrap, prefix, {}, "at_least_once", run=f"-f{i}").model_dump(mode="json")
        cfg["faust"] = {"take_max": TAKE}
        engine = max(engine, _faust_rate(cfg, n, timeout))
        proc_cfg = _config(bootstrap, prefix, {}, "at_least_once", run=f"-p{i}").model_dump(mode="json")
        proc_rate = max(proc_rate, _processor_rate(proc_cfg, n, timeout))
    return {
        "faust_take_nothing_events_per_s": base,
        "faust_worker_events_per_s": engine,
        "faust_engine_cost_percent": 100 * (1 - engine / base),
        "driftstream_run_at_least_once_events_per_s": proc_rate,
        "driftstream_run_vs_faust_worker": proc_rate / engine,
    }


if __name__ == "__main__":
    _baseline_app(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
