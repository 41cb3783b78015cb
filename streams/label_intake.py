"""Labels-topic messages of a batch → label column blocks and decoded labels, per state partition.

The processor's label intake, as :mod:`streams.intake` is its event intake: the common labels
(naming their stage) become :class:`schemas.LabelBlock` columns in one compiled scan
(``schemas.label_blocks``); every other label is decoded and placed on its own
(``labelroute.place``). A label goes to its stage's home: that partition's bank when this
process owns it, else the repartition topic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from confluent_kafka import Message

from schemas import LabelBlock, LabelEvent, Rejection, decode_label_blocks, encode_label, settle_labels

from .intake import ProcessorPart
from .labelroute import LABEL_HEADERS, place

__all__ = ["LabelIntake"]


class LabelIntake(ProcessorPart):
    """Mixed into :class:`streams.processor.Processor`, whose state it reads."""

    engine: Any

    def _decode_labels(
        self, msgs: list[Message], vals: list[bytes], ts: list[int], here: dict[int, list[LabelEvent]],
        blocks: dict[int, list[LabelBlock]],
    ) -> int:  # fmt: skip
        """Labels-topic messages (values, Kafka timestamps) → label blocks and labels per state
        partition held here, in arrival order per stage; the others forwarded, bad ones
        dead-lettered. How many were forwarded."""
        max_bytes = self.cfg.processor.max_event_bytes
        found, owner = decode_label_blocks(vals, np.array(ts, np.int64), max_bytes)
        mine: dict[int, list[LabelBlock]] = {}
        single: dict[int, list[tuple[int, LabelEvent]]] = {}
        produced = 0
        for blk in found:
            key, slot = self._homes[(blk.model, blk.stage)]
            self._counts["labels"] += len(blk)
            if slot in self.banks:
                mine.setdefault(slot, []).append(blk)
                continue
            rows = blk.rows.tolist()
            decoded = blk.events() if min(ts[r] for r in rows) <= 0 else []
            for i, (row, raw) in enumerate(zip(rows, blk.raws(), strict=True)):
                t = ts[row]  # forwarded as it came, with its time; re-encoded when the record has none
                value = raw if t > 0 else encode_label(decoded[i], blk.model, blk.stage)
                self._produce(self.cfg.topics.repartition, value, key, partition=slot, timestamp=max(t, 0),
                              headers=LABEL_HEADERS)  # fmt: skip
            produced += len(rows)
        for row in np.flatnonzero(owner < 0).tolist():
            produced += self._route_label(msgs[row], vals[row], ts[row], max_bytes, single, row)
        for slot in mine.keys() | single.keys():
            labs, blks = settle_labels(mine.get(slot, ()), single.get(slot, ()))
            here.setdefault(slot, []).extend(labs)
            if blks:
                blocks.setdefault(slot, []).extend(blks)
        return produced

    def _route_label(
        self, m: Message, raw: bytes | None, ts: int, max_bytes: int, here: dict[int, list[tuple[int, LabelEvent]]],
        row: int,
    ) -> int:  # fmt: skip
        """A labels-topic record (its value and Kafka timestamp; ``row`` its place in the batch)
        to the home of each stage it is for: into ``here`` when this process owns that home,
        else through the repartition topic. How many were produced."""
        placed = place(raw, ts, max_bytes, self.engine, self._homes)
        if isinstance(placed, Rejection):
            self._dead_letter(m, placed)
            return 0
        produced = 0
        for key, slot, lab, value in placed:
            if slot in self.banks:
                here.setdefault(slot, []).append((row, lab))
                continue
            self._produce(self.cfg.topics.repartition, value, key, partition=slot, timestamp=ts if ts > 0 else 0,
                          headers=LABEL_HEADERS)  # fmt: skip
            produced += 1
        self._counts["labels"] += 1
        return produced
