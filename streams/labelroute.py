"""Where a label goes: the home partition of the (model, stage) whose prediction it labels.

Predictions already live in their (model, stage)'s home partition, so a label is re-keyed to that
home through the repartition topic, where the monitors hold the predictions waiting for it. A
label that names no model and stage goes to each stage of ``label_targets``. The alternative,
keying both sides by ``request_id`` into a join topic, would re-produce every prediction; this
way only labels move (a tenth of the traffic when a tenth is labelled).

On the repartition topic a label is told from a prediction by a header, read only for records
the prediction codec refused (labels have no ``features``), so predictions pay nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from detectors import EngineConfig
from schemas import LabelEvent, Rejection

__all__ = ["KIND_HEADER", "LABEL_HEADERS", "is_label", "targets"]

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


def is_label(headers: Iterable[tuple[str, Any]] | None) -> bool:
    """Whether a repartition record carries a label (see the module doc)."""
    return any(k == KIND_HEADER and v == b"label" for k, v in headers or ())
