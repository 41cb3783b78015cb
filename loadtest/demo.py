"""``driftstream demo``: the whole loop on one machine in about a minute, nothing to install.

Embedded broker → ``driftstream run`` (a real subprocess) → a generated two-pipeline scenario with
known drifts replayed at a steady rate → alerts shown live as they arrive → evaluation against
the ground truth, with a report and plots. Everything it started is stopped on the way out.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer

from streams.broker import FAST_GROUP_SETTINGS, EmbeddedBroker, free_port, wait_for_broker

from .generate import generate, write
from .replay import read_events, replay
from .scenario import preset
from .session import Outcome, Target, evaluate_run, print_outcome, wait_caught_up

__all__ = ["run_demo"]


def _start_processor(out: Path, bootstrap: str, topics: dict[str, Any], port: int,
                     pipelines: list[list[str]]) -> subprocess.Popen[bytes]:  # fmt: skip
    cfg = {"kafka": {"bootstrap": bootstrap}, "topics": topics, "http": {"port": port},
           "processor": {"group": f"{topics['alerts']}-demo"}, "logging": {"progress_interval_s": 10},
           "pipelines": pipelines}  # fmt: skip
    path = out / "driftstream.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    log = (out / "processor.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "run", "-c", str(path)], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def _wait_ready(proc: subprocess.Popen[bytes], url: str, out: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the processor exited with {proc.returncode}; see {out / 'processor.log'}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the processor was not ready within {timeout:.0f} s; see {out / 'processor.log'}")


class _LiveAlerts:
    """Reads the alerts topic in a thread and prints each alert as a table row as it arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from rich.console import Console  # noqa: PLC0415

        self.console = Console(highlight=False, width=max(Console().width, 120))
        self.alerts: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"demo-live-{uuid.uuid4().hex[:6]}",
                                  "auto.offset.reset": "earliest", **FAST_GROUP_SETTINGS})  # fmt: skip
        self.consumer.subscribe([topic])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.console.print(f"[bold]{'status':8} {'severity':8} {'model/stage':18} {'signal':20} {'detector':12} "
                           f"{'statistic':>9} {'position':>9}[/bold]")  # fmt: skip
        while not self.stop.is_set():
            for m in self.consumer.consume(100, 0.3):
                if m.error() is not None:
                    continue
                a = orjson.loads(m.value())  # type: ignore[arg-type]
                self.alerts.append(a)
                color = "red" if a["status"] == "firing" else "green"
                related = f"  upstream alerts: {len(a['related'])}" if a.get("related") else ""
                self.console.print(
                    f"[{color}]{a['status']:8}[/{color}] {a['severity']:8} {a['model'] + '/' + a['stage']:18} "
                    f"{a['signal']:20} {a['detector']:12} {a['statistic']:>9.3g} {a['window']['last_position']:>9,}"
                    f"{related}"
                )
        self.consumer.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def run_demo(bootstrap: str | None = None, out: Path = Path("driftstream-demo"), rate: float = 5_000.0) -> int:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    broker = proc = live = None
    try:
        if bootstrap is None:
            broker = EmbeddedBroker().start()
            bootstrap = broker.bootstrap
            print(f"embedded broker (Tansu) up at {bootstrap} in {broker.startup_seconds:.2f} s")
        else:
            wait_for_broker(bootstrap, timeout=15)
        # the embedded broker is ours alone: the default names; on a shared broker, names of this run only
        p = "" if broker is not None else f"demo-{uuid.uuid4().hex[:6]}-"
        topics: dict[str, Any] = {"input": [f"{p}predictions"], "alerts": f"{p}drift-alerts",
                                  "metrics": f"{p}drift-metrics", "deadletter": f"{p}drift-deadletter",
                                  "state": f"{p}driftstream-state", "labels": f"{p}labels",
                                  "repartition": f"{p}driftstream-repartition"}  # fmt: skip
        gen = generate(preset("demo"))
        events_path, truth_path = write(gen, out / "scenario")
        truth = gen.truth_document()
        print(f"scenario: {truth['events']:,} events over {len(truth['keys'])} keys "
              f"({', '.join(k['key'] for k in truth['keys'])}); injected drifts:")  # fmt: skip
        for d in (d for d in truth["drifts"] if d["role"] == "injected"):
            print(f"  {d['kind']:20} {d['key']:18} {d['signal']:18} from position {d['start_position']:,}")
        port = free_port()
        proc = _start_processor(out, bootstrap, topics, port, gen.scenario.pipelines)
        _wait_ready(proc, f"http://127.0.0.1:{port}/readyz", out)
        print(f"driftstream run is ready (metrics on http://127.0.0.1:{port}/metrics); replaying at {rate:,.0f}/s\n")
        live = _LiveAlerts(bootstrap, topics["alerts"])
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        res = replay(read_events(events_path), bootstrap, topics["input"][0], rate=rate, restamp=True,
                     metrics_url=metrics_url, progress=False, labels_topic=topics["labels"])  # fmt: skip
        caught_up = wait_caught_up(metrics_url, res.sent, timeout_s=60)
        time.sleep(3)  # the last checkpoint's alerts
        live.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        target = Target(bootstrap, topics["input"][0], topics["alerts"], topics["metrics"], topics["labels"])
        result, report = evaluate_run(target, truth, events_path, res, out)
        outcome = Outcome(result, report, res, caught_up)
        print()
        print_outcome(outcome)
        print(f"keys alerting: {', '.join(result['keys_alerting']) or '-'}; ground truth: {truth_path}")
        return 0 if outcome.ok else 1
    finally:
        if live is not None:
            live.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if broker is not None:
            broker.stop()
