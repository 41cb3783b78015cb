"""Contracts: JSON Schema files that document the events, and the codec that enforces them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .blocks import EventBlock, decode_blocks, settle, warm_scan
from .codec import MAX_EVENT_BYTES, PredictionEvent, Rejection, decode, encode_alert
from .label_blocks import LabelBlock, decode_label_blocks, settle_labels
from .labels import LabelEvent, decode_label, encode_label

__all__ = [
    "MAX_EVENT_BYTES",
    "PredictionEvent",
    "LabelEvent",
    "Rejection",
    "decode",
    "decode_blocks",
    "EventBlock",
    "settle",
    "warm_scan",
    "decode_label",
    "decode_label_blocks",
    "LabelBlock",
    "settle_labels",
    "encode_alert",
    "encode_label",
    "load_schema",
]


def load_schema(name: str) -> dict[str, Any]:
    """One of ``prediction_event``, ``label_event``, ``alert``, ``metrics`` as a dict."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]
