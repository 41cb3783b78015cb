"""Where a label goes: the home partition of the (model, stage) whose prediction it labels.

Predictions already live in their (model, stage)'s home partition, where the monitors hold the
predictions waiting for their labels. A label read by the process that owns that home goes
straight to the join; any other is re-keyed to the home through the repartition topic. A label
that names no model and stage goes to each stage of ``label_targets``. The alternative, keying
both sides by ``request_id`` into a join topic, would re-produce every prediction; this way
only labels move (a tenth of the traffic when a tenth is labelled).

On the repartition topic a label is told from a prediction by a header.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from detectors import EngineConfig, MonitorBank
from schemas import LabelEvent, Rejection, decode_label, encode_label

from .observe import Metrics, observe_many

__all__ = ["KIND_HEADER", "LABEL_HEADERS", "JoinCounter", "Placement", "is_label", "place", "targets"]

KIND_HEADER = "driftstream.kind"
LABEL_HEADERS = [(KIND_HEADER, b"label")]


def targets(ev: LabelEvent, engine: EngineConfig) -> tuple[tuple[str, str], ...] | Rejection:
    """The (model, stage) pairs a label is for, or why it cannot be placed."""
    if ev.model is not None and ev.stage is not None:
        return ((ev.model, ev.stage),)
    if engine.label_targets:
        return engine.label_homes
    return Rejection(
        "unroutable_label",
        "the label names no model and stage, and the config's label_targets lists no stage to send it to",
    )


# Where one label goes: its home (the record key and partition of the stage's monitors), the
# label for that stage (model and stage filled in), and the record to forward when that home is
# elsewhere: as it came when it names its stage and has its own time, else re-encoded.
Placement = tuple[bytes, int, LabelEvent, bytes]


def place(
    raw: bytes | None,
    ts_ms: int | None,
    max_bytes: int,
    engine: EngineConfig,
    homes: Mapping[tuple[str, str], tuple[bytes, int]],
) -> list[Placement] | Rejection:
    """Decode a labels-topic record (``ts_ms``: its Kafka timestamp) and place it; both runtimes
    then deliver each placement straight to a join they hold or forward it to its home."""
    lab = decode_label(raw, ts_ms if ts_ms is not None and ts_ms >= 0 else None, max_bytes)
    if isinstance(lab, Rejection):
        return lab
    where = targets(lab, engine)
    if isinstance(where, Rejection):
        return where
    out = []
    for pair in where:
        key, slot = homes[pair]
        if pair == (lab.model, lab.stage):
            value = raw if raw is not None and ts_ms is not None and ts_ms > 0 else encode_label(lab, *pair)
            out.append((key, slot, lab, value))
        else:
            mine = LabelEvent(lab.request_id, lab.label, lab.ts, *pair)
            out.append((key, slot, mine, encode_label(lab, *pair)))
    return out


def is_label(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> bool:
    """Whether a repartition record carries a label (see the module doc); headers as
    confluent-kafka gives them (pairs) or as Faust may (a mapping)."""
    if isinstance(headers, Mapping):
        return headers.get(KIND_HEADER) == b"label"
    return any(k == KIND_HEADER and v == b"label" for k, v in headers or ())


class JoinCounter:
    """What a bank's joins did in one ``process`` call, into the metrics and a runtime's counts:
    labels by outcome, predictions that left unlabelled, the label delays."""

    _FIELDS = ("joined", "inline", "unmatched", "late", "expired", "evicted")

    def __init__(self, metrics: Metrics, counts: dict[str, int]) -> None:
        self.metrics = metrics
        self.counts = counts

    def before(self, bank: MonitorBank) -> tuple[int, ...]:
        return tuple(getattr(bank.joins, f) for f in self._FIELDS)

    def after(self, bank: MonitorBank, before: tuple[int, ...]) -> None:
        j = bank.joins
        delta = [getattr(j, f) - b for f, b in zip(self._FIELDS, before, strict=True)]
        if not any(delta):
            return
        for outcome, d in zip(("joined", "inline", "unmatched", "late"), delta, strict=False):
            if d:
                self.metrics.labels.labels(outcome).inc(d)
        for reason, d in zip(("expired", "evicted"), delta[4:], strict=True):
            if d:
                self.metrics.unlabelled.labels(reason).inc(d)
        self.counts["joined"] = self.counts.get("joined", 0) + delta[0] + delta[1]
        settled = delta[0] + delta[2] + delta[3]  # joined, unmatched or late
        self.counts["labels_settled"] = self.counts.get("labels_settled", 0) + settled
        delays = j.take_delays()
        if delays:
            observe_many(self.metrics.label_delay, np.asarray(delays, dtype=np.float64) / 1000)
