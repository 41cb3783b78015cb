"""One load-test run against a processor that is already running: generate → replay → wait for
the processor to catch up → evaluate → report. ``driftstream loadtest run`` and the demo use it.

The processor is observed only from outside, as an operator would: its ``/metrics`` endpoint
(consumed, processed, lag) and its alerts and metrics topics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .evaluate import read_topic_docs, score, throughput
from .generate import generate, write
from .replay import ReplayResult, read_events, replay, scrape
from .report import write_report
from .scenario import Scenario

__all__ = ["Target", "Outcome", "wait_caught_up", "evaluate_run", "run_loadtest", "print_outcome"]


@dataclass(frozen=True)
class Target:
    """Where the processor under test reads and writes."""

    bootstrap: str
    topic: str = "predictions"
    alerts_topic: str = "drift-alerts"
    metrics_topic: str = "drift-metrics"
    labels_topic: str | None = "labels"
    metrics_url: str | None = None  # the processor's /metrics; without it, wait for the alerts topic to go quiet


@dataclass
class Outcome:
    result: dict[str, Any]
    report: Path
    replay: ReplayResult
    caught_up: bool

    @property
    def ok(self) -> bool:
        return self.caught_up and self.result["missed"] == 0 and self.result["false_alerts"] == 0


def wait_caught_up(metrics_url: str, target: float, timeout_s: float) -> bool:
    """Until the processor has processed ``target`` events in all (its counter is cumulative)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if scrape(metrics_url)["processed"] >= target:
                return True
        except OSError:
            pass  # restarting: keep waiting
        time.sleep(0.5)
    return False


def evaluate_run(target: Target, truth: dict[str, Any], events_path: Path, res: ReplayResult, out: Path,
                 *, tolerance: int = 5_000) -> tuple[dict[str, Any], Path]:  # fmt: skip
    """Read the alerts and window summaries, score them, write report.md, plots and replay.json."""
    alerts = read_topic_docs(target.bootstrap, target.alerts_topic, idle_s=2.0)
    summaries = read_topic_docs(target.bootstrap, target.metrics_topic, idle_s=2.0) if target.metrics_topic else []
    keys = {k["key"] for k in truth["keys"]}
    summaries = [s for s in summaries if f"{s.get('model')}/{s.get('stage')}" in keys]
    result = score(truth, alerts, ts_shift_ms=res.ts_shift_ms, tolerance=tolerance)
    rep = res.as_dict()
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_bytes(orjson.dumps(rep))
    report = write_report(out / "report", truth, result, alerts, summaries, events_path, rep,
                          throughput(rep["metrics_samples"]))  # fmt: skip
    return result, report


def run_loadtest(sc: Scenario, target: Target, out: Path, *, rate: float | None = None,
                 speedup: float | None = None, tag: str | None = None, progress: bool = True,
                 settle_s: float = 3.0) -> Outcome:  # fmt: skip
    """Generate ``sc`` (models renamed with ``tag`` if given), replay it, wait, evaluate."""
    before = scrape(target.metrics_url)["processed"] if target.metrics_url else 0.0  # fails fast if unreachable
    if tag:
        sc = sc.tagged(tag)
    gen = generate(sc)
    events_path, _ = write(gen, out / "scenario")
    truth = gen.truth_document()
    res = replay(read_events(events_path), target.bootstrap, target.topic, rate=rate, speedup=speedup,
                 restamp=True, total=truth["events"], metrics_url=target.metrics_url,
                 progress=progress, labels_topic=target.labels_topic)  # fmt: skip
    caught_up = True
    if target.metrics_url:
        # generous: the processor may be far behind a replay that outran it
        caught_up = wait_caught_up(target.metrics_url, before + res.sent, timeout_s=max(60.0, res.seconds * 3))
    time.sleep(settle_s)  # the last checkpoint's alerts
    result, report = evaluate_run(target, truth, events_path, res, out)
    return Outcome(result, report, res, caught_up)


def print_outcome(o: Outcome) -> None:
    r, res = o.result, o.replay
    labels = f" and {res.labels:,} labels" if res.labels else ""
    line = f"replayed {res.sent:,} events{labels} in {res.seconds:.1f} s ({res.rate:,.0f} events/s"
    if res.target_rate:
        line += f", target {res.target_rate:,.0f}/s, {res.rate_error_percent:+.1f} %"
    print(line + f"); {res.errors} delivery errors")
    if not o.caught_up:
        print("WARNING: the processor had not processed every replayed event when the wait ended")
    for d in r["drifts"]:
        how = "MISSED"
        if d["detected"]:  # a missed drift has no delay to print
            after = f"{d['delay_events']:,} events" if d["delay_events"] is not None else f"{d['delay_s']:.1f} s"
            how = f"detected by {d['by']} after {after}"
        print(f"  {d['kind']:20} {d['key']:24} {d['signal']:20} {how}")
    lat = f"p50 {r['latency_p50_ms']:.0f} ms, p99 {r['latency_p99_ms']:.0f} ms" if r["latency_p50_ms"] else "-"
    print(f"detected {r['detected']} of {r['injected']} drifts; false alerts: {r['false_alerts']}; "
          f"event-to-alert latency {lat}")  # fmt: skip
    print(f"report: {o.report} (plots and figures.json beside it)")
