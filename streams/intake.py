"""Event messages of a batch → column blocks and decoded events, per state partition.

The processor's intake: :func:`schemas.decode_blocks` turns the ordinary events into column
blocks in one compiled scan; every other message is decoded on its own. Each goes where the
processor's loop would send it: its state partition's bank, the repartition topic (an event
whose home is another partition) or the dead-letter topic.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np
from confluent_kafka import Message

from schemas import EventBlock, PredictionEvent, Rejection, decode, decode_blocks

from .settings import RunConfig
from .state import AheadMonitors
from .topology import Homes, Topology

__all__ = ["EventIntake", "ProcessorPart"]


class ProcessorPart:
    """What the intake mixins read of :class:`streams.processor.Processor`, which defines it."""

    cfg: RunConfig
    banks: dict[int, Any]
    _homes: Homes
    _counts: dict[str, int]

    def _produce(self, topic: str, value: bytes | None, key: bytes, **kw: Any) -> None:
        raise NotImplementedError

    def _dead_letter(self, m: Message, rej: Rejection) -> None:
        raise NotImplementedError


class EventIntake(ProcessorPart):
    """Mixed into :class:`streams.processor.Processor`, whose state it reads."""

    positions: dict[tuple[str, int], int]
    topology: Topology

    def _decode_events(
        self, msgs: list[Message], vals: list[bytes], ts: list[int], tps: list[int], tp_of: list[tuple[str, int]],
        decoded: dict[int, list[tuple[int, PredictionEvent]]], blocks: dict[int, list[EventBlock]],
    ) -> int:  # fmt: skip
        """Event messages → column blocks (the ordinary events of keys at home here) and decoded
        events (all others), per state partition; bad ones dead-lettered. How many re-keyed."""
        max_bytes = self.cfg.processor.max_event_bytes
        fallback = np.array(ts, np.int64)
        found, owner = decode_blocks(vals, fallback, max_bytes)
        codes = np.array(tps, np.int64)
        single: list[tuple[int, PredictionEvent | Rejection]] = []  # routed one by one, in stream order
        for blk in found:
            slot = self._block_slot(blk, codes, tp_of)
            if slot is None:
                single.extend(zip(blk.rows.tolist(), blk.events(), strict=True))
            else:
                blocks.setdefault(slot, []).append(blk)
        for row in np.flatnonzero(owner < 0).tolist():
            t = ts[row]
            single.append((row, decode(vals[row], t if t >= 0 else None, max_bytes)))
        single.sort(key=itemgetter(0))  # linear when no block was routed one by one
        n_rekey = 0
        for row, ev in single:
            n_rekey += self._route_event(msgs[row], tp_of[tps[row]], vals[row], ts[row], ev, decoded, row, None)
        return n_rekey

    def _block_slot(self, blk: EventBlock, codes: np.ndarray, tp_of: list[tuple[str, int]]) -> int | None:
        """The state partition where a whole block is processed here, or None when some of its
        events must be re-keyed (or sit elsewhere): those go one by one."""
        slot: int | None = None
        for code in np.unique(codes[blk.rows]).tolist():
            topic, part = tp_of[code]
            if topic == self.cfg.topics.repartition:
                here = part
            else:
                here = self._homes[(blk.model, blk.stage)][1]
                if here != part or not self.topology.co_partitioned(topic) or here not in self.banks:
                    return None
            if slot is not None and here != slot:
                return None
            slot = here
        return slot

    def _route_event(
        self, m: Message, tp: tuple[str, int], raw: bytes | None, ts: int, ev: PredictionEvent | Rejection,
        decoded: dict[int, list[tuple[int, PredictionEvent]]], row: int, ahead: AheadMonitors | None,
    ) -> int:  # fmt: skip
        """One decoded message to its state partition's list, the repartition topic (1 returned)
        or the dead-letter topic."""
        if type(ev) is not PredictionEvent:
            self._dead_letter(m, ev)  # type: ignore[arg-type]
            return 0
        topic, part = tp
        if topic == self.cfg.topics.repartition:
            slot = part
        else:
            home = self._homes[(ev.model, ev.stage)]
            slot = home[1]
            if slot != part or not self.topology.co_partitioned(topic) or slot not in self.banks:
                self._produce(self.cfg.topics.repartition, raw, home[0], partition=slot, timestamp=ts if ts > 0 else 0,
                              headers=m.headers())  # fmt: skip
                return 1
        if ahead is not None and ahead.holds((ev.model, ev.stage, ev.variant), tp, self.positions[tp] - 1):
            self._counts["covered"] += 1  # in that monitor's snapshot already
            return 0
        decoded.setdefault(slot, []).append((row, ev))
        return 0
