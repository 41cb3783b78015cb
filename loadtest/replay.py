"""Send recorded or generated events to a topic at a target rate, at event-time pace, or flat out.

The rate is held by a token bucket checked every few hundred messages, so the producer never runs
ahead of the target by more than that; the summary says how close the achieved rate came. With
``restamp`` every ``ts`` is shifted by one constant so the first event is "now": event-to-alert
latency then means something, and the shift is recorded so ground-truth times can follow.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

__all__ = ["ReplayResult", "read_events", "replay", "scrape"]

_EVENT_FIELDS = ("model", "stage", "ts", "version", "variant", "prediction", "label", "latency_ms", "request_id",
                 "event_id", "schema_version")  # fmt: skip


@dataclass
class ReplayResult:
    sent: int = 0  # prediction events (what ``rate`` paces)
    labels: int = 0  # label events, besides
    errors: int = 0
    seconds: float = 0.0
    target_rate: float | None = None
    ts_shift_ms: int = 0
    started_at_ms: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def rate_error_percent(self) -> float | None:
        return None if not self.target_rate else 100.0 * (self.rate - self.target_rate) / self.target_rate

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "labels": self.labels, "errors": self.errors, "seconds": self.seconds,
                "rate": self.rate,
                "target_rate": self.target_rate, "rate_error_percent": self.rate_error_percent,
                "ts_shift_ms": self.ts_shift_ms, "started_at_ms": self.started_at_ms,
                "metrics_samples": self.samples}  # fmt: skip


def _row_event(row: dict[str, Any]) -> dict[str, Any]:
    """A flat CSV/Parquet row: the event's own fields by name, every other column a feature."""
    ev = {k: row[k] for k in _EVENT_FIELDS if k in row and row[k] not in (None, "")}
    ev["features"] = {k: (None if v == "" else v) for k, v in row.items() if k not in _EVENT_FIELDS}
    return ev


def _csv_value(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """JSONL (one event per line), CSV or Parquet (flat rows), by file extension.

    CSV and Parquet rows come from :func:`streams.reference_build.read_rows` (a missing pyarrow
    is a ``ValueError`` that says what to install)."""
    from streams.reference_build import read_rows  # noqa: PLC0415  (imports the engine: only for flat rows)

    suffix = path.suffix.lower()
    if suffix == ".csv":
        for row in read_rows(path):
            yield _row_event({k: _csv_value(v) if v is not None else "" for k, v in row.items()})
    elif suffix in (".parquet", ".pq"):
        for row in read_rows(path):
            yield _row_event(row)
    else:
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """The processor's counters that matter over a run: consumed events, lag, alerts."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out = {"consumed": 0.0, "lag": 0.0, "alerts": 0.0, "processed": 0.0}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        v = float(value)
        if base == "driftstream_events_consumed_total" and "driftstream-repartition" not in name:
            out["consumed"] += v
        elif base == "driftstream_events_processed_total":
            out["processed"] += v
        elif base == "driftstream_consumer_lag":
            out["lag"] += v
        elif base == "driftstream_alerts_total":
            out["alerts"] += v
    return out


def replay(events: Iterator[dict[str, Any]], bootstrap: str, topic: str, *, rate: float | None = None,
           speedup: float | None = None, restamp: bool = False, key_field: str | None = None,
           total: int | None = None, metrics_url: str | None = None, progress: bool = True,
           client: dict[str, Any] | None = None, labels_topic: str | None = "labels") -> ReplayResult:  # fmt: skip
    """Produce ``events`` to ``topic``; keys are ``model/stage`` unless ``key_field`` names one.
    Label events (``request_id`` and ``label``, no ``features``) go to ``labels_topic``, keyed by
    ``request_id``, in their place in the sequence."""
    res = ReplayResult(target_rate=rate)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
                  "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000,
                  "partitioner": "murmur2_random", **(client or {})})  # fmt: skip

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            res.errors += 1

    stop = threading.Event()
    sampler = None
    if metrics_url:
        sampler = threading.Thread(target=_sample, args=(metrics_url, res, stop), daemon=True)
        sampler.start()
    bar = _Progress(total) if progress else None
    res.started_at_ms = int(time.time() * 1000)
    t0 = time.perf_counter()
    first_ts: int | None = None
    dumps = orjson.dumps
    try:
        for i, ev in enumerate(events):
            ts = ev.get("ts")
            if first_ts is None and isinstance(ts, int | float):
                first_ts = int(ts)
                res.ts_shift_ms = res.started_at_ms - first_ts if restamp else 0
            if restamp and isinstance(ts, int | float):
                ev["ts"] = int(ts) + res.ts_shift_ms
            to = topic
            if labels_topic and "features" not in ev and "label" in ev and "request_id" in ev:
                to, key = labels_topic, str(ev["request_id"])
                res.labels += 1
            else:
                key = str(ev.get(key_field, "")) if key_field else f"{ev.get('model')}/{ev.get('stage')}"
            while True:
                try:
                    p.produce(to, dumps(ev), key.encode(), on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.01)
            res.sent = i + 1 - res.labels
            if i % 256 == 0:
                p.poll(0)
                _pace(res.sent, t0, rate, speedup, ts, first_ts)
                if bar is not None:
                    bar.update(res.sent, res.errors, time.perf_counter() - t0)
        p.flush(60)
        res.seconds = time.perf_counter() - t0
    finally:
        if bar is not None:
            bar.close(res.sent, res.errors, time.perf_counter() - t0)
        if sampler is not None:
            time.sleep(1.5)  # one more sample after the last event
            stop.set()
            sampler.join(5)
    return res


def _pace(sent: int, t0: float, rate: float | None, speedup: float | None, ts: Any, first_ts: int | None) -> None:
    if rate:
        due = sent / rate
    elif speedup and isinstance(ts, int | float) and first_ts is not None:
        due = (ts - first_ts) / 1000 / speedup
    else:
        return
    ahead = due - (time.perf_counter() - t0)
    if ahead > 0:
        time.sleep(ahead)


def _sample(url: str, res: ReplayResult, stop: threading.Event) -> None:
    t0 = time.perf_counter()
    while not stop.is_set():
        with contextlib.suppress(OSError):  # the processor may be restarting; the gap shows in the plot
            res.samples.append({"t": time.perf_counter() - t0, "sent": float(res.sent), **scrape(url)})
        stop.wait(1.0)


class _Progress:
    """rich progress bar: sent, rate, errors, ETA."""

    def __init__(self, total: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

        self.p = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed:,} sent"),
                          TextColumn("{task.fields[rate]:,.0f}/s"), TextColumn("{task.fields[errors]} errors"),
                          TimeRemainingColumn(), transient=False)  # fmt: skip
        self.task = self.p.add_task("replay", total=total, rate=0.0, errors=0)
        self.p.start()

    def update(self, sent: int, errors: int, elapsed: float) -> None:
        self.p.update(self.task, completed=sent, rate=sent / elapsed if elapsed > 0 else 0.0, errors=errors)

    def close(self, sent: int, errors: int, elapsed: float) -> None:
        self.update(sent, errors, elapsed)
        self.p.stop()
