"""The engine inside a Faust agent: batches of events in, alerts out, state in a Faust table.

Same routing as ``driftstream run`` (see ``topology``): an event in its home partition feeds
that partition's :class:`MonitorBank`, any other is forwarded to the repartition topic; bad
messages go to the dead-letter topic with the same headers. Alert ids therefore match.

State and offsets (at-least-once, like ``driftstream run`` without transactions): Faust does
not commit the source topics (``acks=False``); each checkpoint (every
``checkpoint_interval_s`` / ``checkpoint_messages``, and whenever Faust revokes partitions or
stops) does, in this order:

1. wait until every record sent since the last checkpoint (forwarded events, dead letters,
   alerts, summaries) is acknowledged by the broker;
2. write the snapshot of every changed monitor and one offsets record per partition to the
   table: one changelog record each, never per event;
3. wait for those too, then commit the offsets those records cover.

So the committed offsets never run ahead of the table. After a crash the table may be ahead
of them: the offsets record says up to where, and those replayed events are skipped. A crash
between two records of one checkpoint leaves some monitors a checkpoint ahead of their
partition's offsets record; each monitor record carries the offsets its snapshot covers (see
``state``), so such a monitor skips exactly the events it already holds.

After an assignment (outside Faust's rebalance callback), each partition's bank is restored
from the table's changelog partition, read to its end by our own reader (as ``driftstream
run`` does), before its events are processed; not from the in-memory table:
Faust's recovery stops at the high watermark it asked for first (stale on the embedded broker)
and re-applies the changelog to the memory store on every rebalance, rolling back values we
wrote meanwhile. Between a revocation and the next assignment nothing is processed: Faust
seeks every assigned partition back to the committed offset when it resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP
from faust.types import TP as TopicPartition

from detectors import EngineConfig, MonitorBank, SnapshotError
from schemas import LabelEvent, PredictionEvent, Rejection, decode, decode_label

from .clients import admin_config
from .deadletter import dead_letter
from .faust_state import offsets_key, offsets_value, read_marks
from .labelroute import LABEL_HEADERS, JoinCounter, is_label, place
from .observe import Metrics
from .settings import RunConfig
from .state import (
    OFFSETS_KEY,
    AheadMonitors,
    ForeignState,
    Marks,
    StateReader,
    monitor_record_key,
    monitor_value,
    split_monitor,
)
from .topology import Homes, Topology

__all__ = ["FaustRuntime"]

log = logging.getLogger("driftstream.faust")
TP = tuple[str, int]


class FaustRuntime:
    """Banks per owned partition, routing, checkpoints; Faust objects are passed in."""

    def __init__(self, cfg: RunConfig, topology: Topology, metrics: Metrics, app: Any, table: Any,
                 topics: dict[str, Any]) -> None:  # fmt: skip
        self.cfg = cfg
        self.engine: EngineConfig = cfg.engine
        self.topology = topology
        self.metrics = metrics
        self.app = app
        self.table = table
        self.topics = topics  # alerts, metrics, deadletter, repartition: Faust topics (raw bytes)
        self.banks: dict[int, MonitorBank] = {}
        self.positions: dict[TP, int] = {}
        self.live: set[TP] = set()  # assigned, not revoked: only their events are processed
        self.unrestored: set[int] = set()  # assigned partitions whose monitors are not loaded yet
        self.unchecked = 0  # events taken since the last checkpoint
        self.last_summary: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.counts = {
            "consumed": 0,
            "processed": 0,
            "rejected": 0,
            "repartitioned": 0,
            "alerts": 0,
            "skipped": 0,  # below a partition's checkpointed offsets: in the state already
            "covered": 0,  # below a monitor's own checkpointed offsets (a crash mid-checkpoint)
            "stale": 0,
            "gaps": 0,  # jumps in an input partition's offsets (0 unless transactions or compaction)
            "labels": 0,
            "joined": 0,
            "labels_settled": 0,
        }
        self._joins = JoinCounter(metrics, self.counts)
        self._labels_topic = cfg.topics.labels
        self.last_checkpoint = time.monotonic()
        self._written: dict[int, Marks] = {}
        self._ahead = AheadMonitors()
        self._inflight: list[asyncio.Future[Any]] = []  # sent since the last checkpoint
        self._batch: list[Any] = []  # events taken from the stream, not yet processed
        self._batch_since = 0.0
        self.failed: BaseException | None = None
        self._committed: dict[TP, int] = {}
        self._group_client: Consumer | None = None
        self._state_reader: StateReader | None = None
        self._homes = Homes(topology.partitions, cfg.engine.pipeline_anchor)
        self._lock = asyncio.Lock()
        repart = cfg.topics.repartition
        self._repart = repart
        self._copart = {t for t in cfg.topics.input if topology.co_partitioned(t)}
        self._slot_topics = self._copart | {repart}

    # ------------------------------------------------------------------ events
    def add(self, event: Any) -> bool:
        """Buffer one event of the stream; True when the batch is full."""
        if not self._batch:
            self._batch_since = time.monotonic()
        self._batch.append(event)
        return len(self._batch) >= self.cfg.faust.take_max

    def batch_due(self) -> bool:
        return bool(self._batch) and time.monotonic() - self._batch_since >= self.cfg.faust.take_within_s

    async def flush_batch(self) -> None:
        """Process the buffered events (from the stream when full, from housekeeping when due)."""
        async with self._lock:
            events, self._batch = self._batch, []
            if events and self.failed is None:
                try:
                    await self._process(events)
                except BaseException as exc:
                    self.failed = exc  # offsets may have advanced past events not fed: never commit them
                    raise

    async def _process(self, events: Sequence[Any]) -> None:
        """One batch of events, in stream order (the lock is held)."""
        t0 = time.perf_counter()
        self.unchecked += len(events)
        by_slot: dict[int, list[PredictionEvent]] = {}
        labels: dict[int, list[LabelEvent]] = {}
        consumed: dict[str, int] = {}
        max_bytes = self.cfg.processor.max_event_bytes
        rekey = 0
        live = self.live
        for event in events:
            msg = event.message
            topic, part, off = msg.topic, msg.partition, msg.offset
            tp = (topic, part)
            if tp not in live:
                # taken between a revocation and the next assignment, or of a partition no longer
                # ours: Faust seeks to the committed offsets when it resumes and delivers it again.
                # (Not Faust's generation ids: skipping on them lost events, before keep_queued_events.)
                self.counts["stale"] += 1
                continue
            if part not in self.banks and topic in self._slot_topics:
                self.unrestored.add(part)
                await self._restore_unrestored()  # before housekeeping got to it
            consumed[topic] = consumed.get(topic, 0) + 1
            if off < self.positions.get(tp, 0):
                # in the state already: its table records were written before a crash
                self.counts["skipped"] += 1
                log.log(logging.INFO if self.counts["skipped"] <= 10 else logging.DEBUG,
                        "%s[%d]: offset %d is in the state already (up to %d)", topic, part, off,
                        self.positions[tp])  # fmt: skip
                continue
            if off > self.positions.get(tp, off):
                # offsets skipped: transaction markers, compaction, or events not delivered
                self.counts["gaps"] += 1
                log.log(logging.WARNING if self.counts["gaps"] <= 10 else logging.DEBUG,
                        "%s[%d]: offsets %d..%d were not delivered (transaction markers or compaction?)",
                        topic, part, self.positions[tp], off - 1)  # fmt: skip
            self.positions[tp] = off + 1
            ts_ms = round(msg.timestamp * 1000) if msg.timestamp else None
            if topic == self._labels_topic:
                rekey += await self._route_label(msg, ts_ms, max_bytes, labels)
                continue
            if topic == self._repart and is_label(msg.headers):
                lab = decode_label(msg.value, ts_ms if ts_ms and ts_ms > 0 else None, max_bytes)
                if type(lab) is LabelEvent:
                    labels.setdefault(part, []).append(lab)
                else:
                    await self._dead_letter(msg, lab)  # type: ignore[arg-type]
                continue
            ev = decode(msg.value, ts_ms if ts_ms and ts_ms > 0 else None, max_bytes)
            if type(ev) is not PredictionEvent:
                await self._dead_letter(msg, ev)  # type: ignore[arg-type]
                continue
            if topic == self._repart:
                slot = part
            else:
                home = self._homes[(ev.model, ev.stage)]
                slot = home[1]
                if slot != part or topic not in self._copart:
                    await self._publish(
                        self.topics["repartition"],
                        key=home[0], value=msg.value, partition=slot, timestamp=_seconds(ts_ms),
                        headers=list(msg.headers or ()),
                    )  # fmt: skip
                    rekey += 1
                    continue
            if self._ahead and self._ahead.holds((ev.model, ev.stage, ev.variant), tp, off):
                self.counts["covered"] += 1
                continue
            by_slot.setdefault(slot, []).append(ev)
        if self._ahead:
            self._ahead.prune(self.positions)
        for topic, c in consumed.items():
            self.metrics.consumed.labels(topic).inc(c)
            if topic != self._repart:
                self.counts["consumed"] += c
        if rekey:
            self.metrics.repartitioned.inc(rekey)
            self.counts["repartitioned"] += rekey
        for slot, evs in by_slot.items():
            await self._feed(self.banks[slot], evs, labels.pop(slot, ()))
        for slot, labs in labels.items():
            await self._feed(self.banks[slot], [], labs)
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        self.metrics.batch_size.observe(len(events))

    async def _route_label(self, msg: Any, ts_ms: int | None, max_bytes: int,
                           here: dict[int, list[LabelEvent]]) -> int:  # fmt: skip
        """A labels-topic record to the home of each stage it is for: straight into ``here`` when
        that home is assigned here, else through the repartition topic. How many were forwarded."""
        placed = place(msg.value, ts_ms, max_bytes, self.engine, self._homes)
        if isinstance(placed, Rejection):
            await self._dead_letter(msg, placed)
            return 0
        forwarded = 0
        for key, slot, lab, value in placed:
            if (self._repart, slot) in self.live:
                if slot not in self.banks:  # assigned, not restored yet: now, as for its own events
                    self.unrestored.add(slot)
                    await self._restore_unrestored()
                here.setdefault(slot, []).append(lab)
                continue
            await self._publish(self.topics["repartition"], key=key, value=value, partition=slot,
                                timestamp=_seconds(ts_ms), headers=list(LABEL_HEADERS))  # fmt: skip
            forwarded += 1
        self.counts["labels"] += 1
        return forwarded

    async def _feed(self, bank: MonitorBank, evs: list[PredictionEvent], labels: Sequence[LabelEvent] = ()) -> None:
        untracked = bank.stats.untracked_events
        before = self._joins.before(bank)
        out = bank.process(evs, labels)
        self.metrics.processed.inc(len(evs))
        self.counts["processed"] += len(evs)
        if bank.stats.untracked_events != untracked:
            self.metrics.untracked.inc(bank.stats.untracked_events - untracked)
        self._joins.after(bank, before)
        for doc in out.alerts:
            self.metrics.alerts.labels(doc["status"], doc["severity"], doc["detector"]).inc()
            await self._send("alerts", doc)
        self.counts["alerts"] += len(out.alerts)
        for doc in out.summaries:
            self.last_summary[(doc["model"], doc["stage"], doc["variant"])] = doc
            await self._send("metrics", doc)
        if out.summaries:
            self.metrics.summaries.inc(len(out.summaries))

    async def _send(self, topic: str, doc: dict[str, Any]) -> None:
        key = f"{doc['model']}/{doc['stage']}".encode()
        # force: publish now, not when the source offset commits (Faust's "attachments")
        await self._publish(self.topics[topic], key=key, value=orjson.dumps(doc))

    async def _dead_letter(self, msg: Any, rej: Rejection) -> None:
        value, headers = dead_letter(msg.value, msg.headers, rej, msg.topic, msg.partition, msg.offset)
        ts = round(msg.timestamp * 1000) if msg.timestamp else None
        await self._publish(self.topics["deadletter"], key=msg.key or b"", value=value, headers=headers,
                            timestamp=_seconds(ts))  # fmt: skip
        self.metrics.rejected.labels(rej.reason.split(".", 1)[0]).inc()
        self.counts["rejected"] += 1

    # ------------------------------------------------------------------- state
    def assigned(self, tps: set[Any]) -> None:
        """Faust assigned partitions: process their events; their monitors are restored first."""
        self.live = {(tp.topic, tp.partition) for tp in tps}
        self.unrestored = {tp.partition for tp in tps if tp.topic == self._repart} - set(self.banks)
        # the restore runs outside Faust's rebalance callback (housekeeping, or the first event):
        # a callback that took seconds lost the first event Faust delivered after it resumed
        log.info("assigned %d partitions; restoring the monitors of partitions %s", len(tps), sorted(self.unrestored))

    async def restore_assigned(self) -> None:
        """Restore what the last assignment brought (housekeeping calls this at once)."""
        async with self._lock:
            await self._restore_unrestored()

    async def _restore_unrestored(self) -> None:
        slots, self.unrestored = sorted(self.unrestored - set(self.banks)), set()
        if slots:
            await self._restore(slots)

    async def _restore(self, slots: list[int]) -> None:
        if not slots:
            return
        t0 = time.perf_counter()
        # blocking clients, in a thread: the event loop keeps heartbeating meanwhile
        latest, committed = await asyncio.to_thread(self._read_slots, slots)
        records = sum(self._restore_slot(slot, latest[slot], committed) for slot in slots)
        took = time.perf_counter() - t0
        self.metrics.restore_seconds.observe(took)
        self.metrics.partitions.set(len(self.banks))
        log.info("restored %d monitors of partitions %s from the table's changelog in %.2f s", records, slots, took)
        if log.isEnabledFor(logging.DEBUG):
            for slot in slots:
                log.debug("partition %d: state covers %s; committed %s; monitors ahead %s", slot,
                          self._written[slot], {tp: o for tp, o in committed.items() if tp[1] == slot},
                          {k: m for k, m in self._ahead.marks.items() if any(tp[1] == slot for tp in m)})  # fmt: skip

    def _restore_slot(self, slot: int, latest: dict[bytes, bytes | None], committed: Marks) -> int:
        if OFFSETS_KEY in latest:
            raise ForeignState(f"the state topic {self.cfg.topics.state} holds checkpoints of `driftstream run`; "
                               "give the Faust worker its own")  # fmt: skip
        marks = read_marks(latest.get(offsets_key(slot)), self.cfg.processor.group, self.cfg.topics.state)
        behind = {tp: o for tp, o in committed.items() if tp[1] == slot and o > marks.get(tp, 0)}
        if behind:
            # every commit follows its table records, so the changelog lost records (retention?)
            log.error("partition %d: offsets %s are committed but the table %s vouches only for %s; "
                      "events in between are missing from these monitors",
                      slot, behind, self.cfg.topics.state, marks)  # fmt: skip
        bank = self.banks[slot] = MonitorBank(self.engine)
        records = 0
        for k, v in latest.items():
            if v is None or k.startswith(b"\x00"):
                continue
            try:
                covered, snapshot = split_monitor(v)
                key = bank.restore(snapshot)
                records += 1
            except (SnapshotError, ValueError, KeyError, TypeError) as exc:
                log.error(
                    "state partition %d: unreadable snapshot, that monitor starts fresh: %r: %s", slot, k[:80], exc
                )
                continue
            self._ahead.note(key, covered, marks)  # written after the partition's last offsets record?
            self.table.data[k] = v
        self._written[slot] = marks
        self.positions.update(marks)
        return records

    def _read_slots(self, slots: list[int]) -> tuple[dict[int, dict[bytes, bytes | None]], dict[TP, int]]:
        return self._reader().read_latest(slots), self._committed_offsets(slots)

    def _committed_offsets(self, slots: list[int]) -> dict[TP, int]:
        if self._group_client is None:
            self._group_client = Consumer({**admin_config(self.cfg), "group.id": self.cfg.processor.group,
                                           "enable.auto.commit": False})  # fmt: skip  # never subscribes
        tps = [KafkaTP(t, slot) for t in sorted(self._slot_topics) for slot in slots]
        return {(tp.topic, tp.partition): tp.offset for tp in self._group_client.committed(tps, timeout=30)
                if tp.offset >= 0}  # fmt: skip

    def _reader(self) -> StateReader:
        if self._state_reader is None:
            self._state_reader = StateReader(admin_config(self.cfg), self.cfg.topics.state, self.cfg.processor.group)
        return self._state_reader

    def close(self) -> None:
        for client in (self._group_client, self._state_reader):
            if client is not None:
                client.close()

    def due(self) -> bool:
        return self.unchecked > 0 and (
            self.unchecked >= self.cfg.processor.checkpoint_messages
            or time.monotonic() - self.last_checkpoint >= self.cfg.processor.checkpoint_interval_s
        )

    async def checkpoint(self) -> None:
        """Producer flushed → snapshots and offsets records → table → flushed → offsets committed."""
        async with self._lock:
            self.last_checkpoint = time.monotonic()
            if self.failed is not None:
                log.warning("no checkpoint after a failed batch (%r): a new worker resumes from the last one",
                            self.failed)  # fmt: skip
                return
            if not self.unchecked and not any(b.has_dirty for b in self.banks.values()):
                return
            t0 = time.perf_counter()
            await self._settle()  # forwards and dead letters are on the broker before the state vouches for them
            written = 0
            for slot, bank in self.banks.items():
                mine = {tp: o for tp, o in self.positions.items() if tp[1] == slot and tp[0] in self._slot_topics}
                for key in sorted(bank.take_dirty()):
                    value = monitor_value(mine, bank.snapshot(key))
                    written += len(value)
                    await self._put(slot, monitor_record_key(key), value)
                if mine and mine != self._written.get(slot):
                    await self._put(slot, offsets_key(slot), offsets_value(mine, self.cfg.processor.group))
                    self._written[slot] = mine
            self.metrics.snapshot_bytes.inc(written)
            await self._settle()  # the state is on the broker before the offsets it covers commit
            advanced = {tp: o for tp, o in self.positions.items() if self._committed.get(tp) != o}
            if advanced and await self.app.consumer._commit(
                {TopicPartition(t, p): o for (t, p), o in advanced.items()}
            ):
                self._committed.update(advanced)
            self.unchecked = 0
            self.metrics.checkpoint_seconds.observe(time.perf_counter() - t0)

    async def _put(self, slot: int, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        # not table.send_changelog: it goes through Faust's send buffer, whose flush gives up after
        # 0.1 s without a delivery and returns with records still queued
        await self._publish(self.table.changelog_topic, key=key, value=value, partition=slot)

    async def _publish(self, topic: Any, **message: Any) -> None:
        """Hand a record to the producer now (force: not when a source offset commits, Faust's
        "attachments"); its delivery is awaited at the next checkpoint."""
        self._inflight.append(await topic.send(**message, force=True))

    async def _settle(self) -> None:
        """Every record sent so far is acknowledged by the broker, or this raises (no commit)."""
        await self.app.producer.flush()
        inflight, self._inflight = self._inflight, []
        results = await asyncio.gather(*inflight, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(results)} records were not delivered, offsets not committed: "
                               f"{errors[:3]!r}")  # fmt: skip

    def revoked(self, tps: set[Any]) -> None:
        """Faust revoked partitions (after a checkpoint): forget their banks, take nothing more."""
        gone = {(tp.topic, tp.partition) for tp in tps}
        self.live -= gone
        self.unrestored -= {p for t, p in gone if t == self._repart}
        for tp in gone:
            self.positions.pop(tp, None)
            self._committed.pop(tp, None)
        for slot in {p for t, p in gone if t in self._slot_topics}:
            bank = self.banks.pop(slot, None)
            self._written.pop(slot, None)
            self._ahead.forget(bank.monitors if bank else ())
        self.metrics.partitions.set(len(self.banks))

    # ----------------------------------------------------------------- views
    def monitors_view(self) -> dict[str, Any]:
        """``/drift/monitors``: every monitor held, its signals, last statistics, firing alerts."""
        out = []
        for slot, bank in sorted(self.banks.items()):
            for key, mon in bank.monitors.items():
                signals = {}
                firing = []
                for s in mon.signals.values():
                    signals[s.name] = {"role": s.role, "kind": s.kind, "warming_up": not s.active,
                                       "reference": s.reference_source, "seen": s.seen}  # fmt: skip
                    for det, st in s.alerts.items():
                        if st.firing_id is not None:
                            firing.append({"alert_id": st.firing_id, "signal": s.name, "detector": det,
                                           "severity": st.severity, "since_ts": st.fired_ts})  # fmt: skip
                out.append({
                    "model": key[0], "stage": key[1], "variant": key[2], "partition": slot, "events": mon.position,
                    "signals": signals, "last_summary": self.last_summary.get(key), "firing": firing,
                })  # fmt: skip
        return {"monitors": out, "count": len(out)}


def _seconds(ts_ms: int | None) -> float | None:
    """Faust takes timestamps in float seconds and truncates ×1000: +0.5 ms keeps the exact ms."""
    return (ts_ms + 0.5) / 1000 if ts_ms else None
