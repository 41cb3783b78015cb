"""What a dead-lettered message looks like: the original bytes, with the reason in headers.

Shared by both runtimes so a consumer of the dead-letter topic cannot tell which one wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas import Rejection

from .topology import LARGE_MESSAGE_BYTES

__all__ = ["dead_letter"]

_MAX_VALUE = LARGE_MESSAGE_BYTES - 65536
Header = tuple[str, Any]  # (name, bytes); clients type the value loosely


def dead_letter(
    value: bytes | None,
    headers: Iterable[Header] | Mapping[str, Any] | None,
    rej: Rejection,
    topic: str,
    partition: int,
    offset: int,
) -> tuple[bytes | None, list[Header]]:
    """(value, headers) of the dead-letter record: the source bytes (truncated past the topic's
    limit, with the original size said) and ``driftstream.*`` headers naming reason and source."""
    out = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    out += [
        ("driftstream.reason", rej.reason.encode()),
        ("driftstream.detail", rej.detail[:500].encode()),
        ("driftstream.source.topic", topic.encode()),
        ("driftstream.source.partition", str(partition).encode()),
        ("driftstream.source.offset", str(offset).encode()),
    ]
    if value is not None and len(value) > _MAX_VALUE:
        out.append(("driftstream.truncated_from", str(len(value)).encode()))
        value = value[:_MAX_VALUE]
    return value, out
