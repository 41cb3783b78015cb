"""What the processor shows operators: Prometheus metrics, ``/healthz``, ``/readyz``, logs.

Metric names are part of the public contract (README "Metrics"). Values that could hold a
secret never become labels: labels are topic names, partitions, reason codes, severities.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "HealthServer", "observe_many", "setup_logging"]


def observe_many(hist: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """``hist.observe(v)`` for each value, in a few numpy steps: prometheus_client has no bulk
    call, and its observe() walks the buckets in Python (the label delay is observed for every
    joined label). Falls back to observe() if the client's internals ever change."""
    if not len(values):
        return
    bounds = getattr(hist, "_upper_bounds", None)
    buckets = getattr(hist, "_buckets", None)
    total = getattr(hist, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for v in values:
            hist.observe(v)
        return
    arr = np.asarray(values, dtype=np.float64)
    total.inc(float(arr.sum()))
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), arr, side="left"), minlength=len(bounds))
    for i, c in enumerate(counts.tolist()):
        if c:
            buckets[i].inc(c)


class Metrics:
    """The processor's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter(
            "driftstream_events_consumed", "Messages read from input topics.", ["topic"], registry=r
        )
        self.processed = Counter("driftstream_events_processed", "Valid events fed to the monitors.", registry=r)
        self.rejected = Counter(
            "driftstream_events_rejected", "Messages sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.repartitioned = Counter(
            "driftstream_events_repartitioned", "Events re-keyed through the repartition topic.", registry=r
        )
        self.columnar = Counter(
            "driftstream_events_columnar",
            "Valid events the monitors took as columns from the batch decoder (the rest of "
            "driftstream_events_processed were decoded one by one).",
            registry=r,
        )
        self.untracked = Counter(
            "driftstream_events_untracked", "Valid events of keys over limits.max_series (not monitored).", registry=r
        )
        self.alerts = Counter(
            "driftstream_alerts", "Alert events produced.", ["status", "severity", "detector"], registry=r
        )
        self.summaries = Counter("driftstream_window_summaries", "Window summaries produced.", registry=r)
        self.lag = Gauge("driftstream_consumer_lag", "Messages behind the high watermark.", ["topic", "partition"],
                         registry=r)  # fmt: skip
        self.batch_seconds = Histogram(
            "driftstream_batch_seconds",
            "Time to process one consumed batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "driftstream_batch_messages",
            "Messages per consumed batch.",
            buckets=(1, 10, 100, 1000, 5000, 10000, 50000),
            registry=r,
        )
        self.monitors = Gauge("driftstream_monitors", "Monitors (model, stage, variant) held.", registry=r)
        self.series = Gauge("driftstream_series", "Monitored (monitor, signal) series held.", registry=r)
        self.partitions = Gauge("driftstream_partitions_assigned", "State partitions owned.", registry=r)
        self.checkpoint_seconds = Histogram(
            "driftstream_checkpoint_seconds",
            "Checkpoint duration: snapshots written, flushed/committed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.snapshot_bytes = Counter("driftstream_snapshot_bytes", "Bytes of monitor snapshots written.", registry=r)
        self.restore_seconds = Histogram(
            "driftstream_restore_seconds",
            "Time to restore assigned partitions from the state topic.",
            buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.rebalances = Counter("driftstream_rebalances", "Partition assignments and revocations.", ["kind"],
                                  registry=r)  # fmt: skip
        self.errors = Counter("driftstream_kafka_errors", "Client errors seen, by code name.", ["code"], registry=r)
        self.labels = Counter(
            "driftstream_labels",
            "Labels by outcome: joined (met its prediction), inline (in the prediction event), unmatched (no "
            "prediction found in time), late (older than labels.ttl_s).",
            ["outcome"],
            registry=r,
        )
        self.unlabelled = Counter(
            "driftstream_predictions_unlabelled",
            "Predictions that left the join without a label: expired (ttl_s passed) or evicted (max_pending).",
            ["reason"],
            registry=r,
        )
        self.label_delay = Histogram(
            "driftstream_label_delay_seconds",
            "Event time from a prediction to its label, for joined labels.",
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400),
            registry=r,
        )
        self.join_pending = Gauge(
            "driftstream_join_pending", "Predictions waiting for a label, and labels waiting for a prediction.",
            ["side"], registry=r,
        )  # fmt: skip
        self.ready = Gauge("driftstream_ready", "1 once partitions are assigned and restored.", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        srv = self.server
        if self.path.startswith("/metrics"):
            self._send(200, srv.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            alive = time.monotonic() - srv.last_beat < srv.stall_after_s
            self._send(200 if alive else 503, b"ok\n" if alive else b"processing loop stalled\n")
        elif self.path == "/readyz":
            self._send(200 if srv.ready else 503, b"ready\n" if srv.ready else b"not ready: assigning/restoring\n")
        else:
            self._send(404, b"try /metrics, /healthz or /readyz\n")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the log


class HealthServer(ThreadingHTTPServer):
    """``/metrics``, ``/healthz`` (the loop beat recently), ``/readyz`` (assigned and restored)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, metrics: Metrics, stall_after_s: float = 60.0) -> None:
        super().__init__((host, port), _Handler)
        self.metrics = metrics
        self.stall_after_s = stall_after_s
        self.last_beat = time.monotonic()
        self.ready = False
        self._thread = threading.Thread(target=self.serve_forever, name="driftstream-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
