"""What joining labels costs the processor: the same predictions with and without labels.

60 (model, stage) keys × 10 numeric features (the processor benchmark's load), each prediction
with a ``request_id`` and a score. Run A reads the predictions with an empty labels topic and the
default settings: what a stage without labels pays (``auto`` keeps nothing until a label comes).
Run B reads the same predictions plus labels for ``share`` of them (keyed by request_id, as a
label service would, so every one takes the re-key hop to its stage's home), two seconds of event
time after the prediction, with ``join: always``: every prediction waits in the join and is
written with the checkpoints, as in a labelled stage's steady state. Both runs start on a full
backlog; B ends when every label has reached its join. Both poll with a 20 ms timeout (see
``_config``).

Both start warm (``WARM_S``): the first batch waits a second after the assignment while
librdkafka prefetches, and the clock starts at the first message. A cold start measured the
fetcher's start-up instead, and not alike: B's first message came 0.13 s after the assignment,
from an early fetch of one labels partition, and in about half the runs its clock then waited
~100 ms for the first full fetch (librdkafka's ``fetch`` debug log); A's first message came
0.7-0.8 s after the assignment, all of it before its clock started. Five interleaved pairs:
the fastest of five runs is nearer each run's speed on a quiet machine than the fastest of
three.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Any

import numpy as np
import orjson
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.processor import Processor
from streams.settings import RunConfig

from .bench_processor import FEATURES, KEYS, PARTITIONS, _produce

__all__ = ["bench_labels"]

DELAY_MS = 2_000
WARM_S = 1.0  # the prefetch before the clock starts (a first ~6 MB fetch took ~100 ms from Tansu)


def _traffic(n: int, share: float) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(n, FEATURES)).round(6).tolist()
    labelled = rng.random(n) < share
    outcome = rng.random(n)
    preds, labels = [], []
    for i in range(n):
        model = f"model{i % KEYS}"
        rid = f"q{i}"
        score = round(1 / (1 + math.exp(-rows[i][0])), 6)
        ts = 1_767_225_600_000 + i
        ev = {"model": model, "stage": "serve", "features": {f"f{j}": rows[i][j] for j in range(FEATURES)},
              "ts": ts, "prediction": score, "request_id": rid}  # fmt: skip
        preds.append((f"{model}/serve".encode(), orjson.dumps(ev)))
        if labelled[i]:
            lab = {"request_id": rid, "label": int(outcome[i] < score), "ts": ts + DELAY_MS, "model": model,
                   "stage": "serve"}  # fmt: skip
            labels.append((rid.encode(), orjson.dumps(lab)))
    return preds, labels


def _config(bootstrap: str, prefix: str, run: str, client: dict[str, Any], guarantee: str,
            join: str = "auto") -> RunConfig:  # fmt: skip
    own = f"{prefix}{run}"
    return RunConfig.from_mapping({
        "kafka": {"bootstrap": bootstrap, "client": client},
        "topics": {"input": [f"{prefix}-in"], "labels": f"{prefix}-labels{run}", "alerts": f"{own}-alerts",
                   "metrics": f"{own}-metrics", "deadletter": f"{own}-dlq", "state": f"{own}-state",
                   "repartition": f"{own}-rep", "partitions": PARTITIONS},
        # a short poll timeout: with a backlog every batch is full, but the last, partial one
        # would wait the whole timeout for messages that never come (B's 660,165 messages end
        # in one of 165; A's 600,000 in a full one)
        "processor": {"group": f"{own}-g", "guarantee": guarantee, "poll_timeout_s": 0.02},
        "http": {"enabled": False},
        "logging": {"progress_interval_s": 3600},
        "defaults": {"warmup_events": 1000, "signals": {"missing": False}, "labels": {"join": join}},
    })  # fmt: skip


def _timed(proc: Processor, n: int, labels: int, timeout: float) -> float:
    """Seconds from the first consumed message until ``n`` predictions are processed and
    ``labels`` labels have reached their joins (the last ones wait there for later predictions).
    The first batch waits ``WARM_S`` after the assignment (see the module doc)."""
    assign = proc._on_assign

    def assigned(consumer: Any, partitions: Any) -> None:
        assign(consumer, partitions)
        time.sleep(WARM_S)  # librdkafka's threads fetch meanwhile

    proc._on_assign = assigned  # type: ignore[method-assign]  # before start(): subscribe takes it
    proc.start()
    th = threading.Thread(target=proc.run, daemon=True)
    th.start()
    t0 = 0.0
    deadline = time.monotonic() + timeout

    def settled() -> int:
        try:
            waiting = sum(b.join_backlog()[1] for b in list(proc.banks.values()))
            return proc._counts["labels_settled"] + waiting
        except RuntimeError:  # a join was added while counting
            return 0

    while time.monotonic() < deadline:
        if not t0 and proc._counts["consumed"] > 0:
            t0 = time.perf_counter()
        if proc._counts["processed"] >= n and (not labels or settled() >= labels):
            break
        time.sleep(0.005)
    took = time.perf_counter() - t0
    joined = proc._counts["joined"]
    proc.stopping = True
    th.join(30)
    if proc._counts["processed"] < n or (labels and settled() < labels):
        raise RuntimeError(f"not done in {timeout:.0f} s: {proc._counts}")
    if labels and joined < 0.9 * labels:
        raise RuntimeError(f"only {joined} of {labels} labels met their predictions")
    return took


def bench_labels(bootstrap: str, n: int, client: dict[str, Any] | None = None, guarantee: str = "auto",
                 share: float = 0.1, repeats: int = 5) -> dict[str, float]:  # fmt: skip
    client = client or {}
    prefix = f"lab-{uuid.uuid4().hex[:6]}"
    preds, labels = _traffic(n, share)
    admin = AdminClient({"bootstrap.servers": bootstrap, **client})
    new = [NewTopic(f"{prefix}-in", PARTITIONS, 1)]
    new += [NewTopic(f"{prefix}-labels-{x}{i}", PARTITIONS, 1) for x in "ab" for i in range(repeats)]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    _produce(bootstrap, f"{prefix}-in", preds, client)
    for i in range(repeats):
        _produce(bootstrap, f"{prefix}-labels-b{i}", labels, client)
    pairs: list[tuple[float, float]] = []
    for i in range(repeats):  # interleaved, so drift in the machine's speed hits both alike
        without = n / _timed(Processor(_config(bootstrap, prefix, f"-a{i}", client, guarantee)), n, 0, 600)
        proc = Processor(_config(bootstrap, prefix, f"-b{i}", client, guarantee, join="always"))
        pairs.append((without, n / _timed(proc, n, len(labels), 600)))
    best_a, best_b = max(a for a, _ in pairs), max(b for _, b in pairs)
    return {
        "labels_share_percent": 100 * len(labels) / n,
        "processor_without_labels_events_per_s": best_a,
        "processor_with_labels_events_per_s": best_b,
        "labels_slowdown_percent": 100 * (1 - best_b / best_a),
        # each pair's own ratio: the spread says how much of the figure is the machine
        "labels_slowdown_percent_pair_min": min(100 * (1 - b / a) for a, b in pairs),
        "labels_slowdown_percent_pair_median": float(np.median([100 * (1 - b / a) for a, b in pairs])),
        "labels_slowdown_percent_pair_max": max(100 * (1 - b / a) for a, b in pairs),
    }
