"""``driftstream run``: the Kafka processor around the monitor bank.

Loop: ``consume(batch)`` → codec → bad messages to the dead-letter topic, events outside
their home partition to the repartition topic, the rest grouped by state partition → one
:class:`MonitorBank` per owned partition → alerts and window summaries produced. A label goes
straight to its stage's join when this process owns the stage's home, else through the
repartition topic.

Checkpoint (every ``checkpoint_interval_s`` or ``checkpoint_messages``, on revocation and at
shutdown), always in this order: snapshots of changed monitors and the offsets record →
state topic; then either flush + commit offsets (at-least-once) or send the offsets to the
transaction and commit it (exactly-once: alerts, dead letters, re-keyed events, snapshots and
offsets become visible together). On assignment the owned partitions' monitors are restored
from the state topic before any event of theirs is processed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from detectors import MonitorBank, warm_kernels
from schemas import (
    EventBlock,
    LabelBlock,
    LabelEvent,
    PredictionEvent,
    Rejection,
    decode,
    decode_label,
    settle,
    warm_scan,
)

from .clients import admin_config, choose_guarantee, connect, consumer_config, producer_config
from .deadletter import dead_letter
from .intake import EventIntake
from .label_intake import LabelIntake
from .labelroute import JoinCounter, is_label
from .memory import keep_freed_memory
from .observe import HealthServer, Metrics
from .settings import RunConfig
from .state import (
    OFFSETS_KEY,
    AheadMonitors,
    Key,
    Marks,
    StateReader,
    monitor_record_key,
    monitor_value,
    offsets_record,
)
from .topology import Homes, Topology, ensure_topics
from .transactions import Transactions

__all__ = ["Processor", "ProcessorError"]

log = logging.getLogger("driftstream.processor")


class ProcessorError(RuntimeError):
    """A failure the processor cannot continue from without losing data; it exits non-zero."""


class Processor(EventIntake, LabelIntake):
    """One worker of the consumer group; N of them split the partitions."""

    def __init__(self, cfg: RunConfig, metrics: Metrics | None = None, health: HealthServer | None = None) -> None:
        self.cfg = cfg
        self.engine = cfg.engine
        self.metrics = metrics or Metrics()
        self.health = health
        self.topics = cfg.topics
        self.stopping = False
        self.banks: dict[int, MonitorBank] = {}
        self.positions: dict[tuple[str, int], int] = {}  # next offset, per consumed partition
        self._committed: dict[tuple[str, int], int] = {}
        self._homes = Homes(1)  # sized in start(), once the partition count is known
        self._delivery_errors: list[str] = []
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._counts = {"consumed": 0, "processed": 0, "rejected": 0, "repartitioned": 0, "alerts": 0, "covered": 0,
                        "labels": 0, "joined": 0, "labels_settled": 0}  # fmt: skip
        self._joins = JoinCounter(self.metrics, self._counts)
        self._ahead = AheadMonitors()  # monitors restored a checkpoint ahead of their partition

    # ------------------------------------------------------------------ set-up
    def start(self) -> None:
        # Batches allocate ~10 objects per event; the default gen-0 threshold (700) would run
        # the collector dozens of times per batch over long-lived monitor state.
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        if keep_freed_memory(self.cfg.processor.malloc_keep_mb):  # see streams.memory
            log.info("freed memory up to %d MB kept for reuse", self.cfg.processor.malloc_keep_mb)
        t0 = time.perf_counter()
        warm_scan()
        scan_s = time.perf_counter() - t0
        log.info("detector kernels loaded in %.2f s, event scan in %.2f s", warm_kernels(), scan_s)
        admin = connect(self.cfg)
        self.topology: Topology = ensure_topics(admin, self.topics)
        self._homes = Homes(self.topology.partitions, self.engine.pipeline_anchor)
        self.guarantee = choose_guarantee(self.cfg, admin)
        self.exactly_once = self.guarantee == "exactly_once"
        odd = [t for t in self.topics.input if not self.topology.co_partitioned(t)]
        log.info(
            "topics ready: %d partitions; input %s; guarantee %s%s",
            self.topology.partitions,
            ", ".join(self.topics.input),
            self.guarantee,
            f"; every event of {', '.join(odd)} is re-keyed (partition count differs)" if odd else "",
        )
        pconf = producer_config(self.cfg, self.exactly_once)
        pconf["on_delivery"] = self._on_delivery
        pconf["delivery.report.only.error"] = True
        if self.exactly_once:
            # a commit stuck longer than this would cost the group membership anyway
            poll_s = float(consumer_config(self.cfg)["max.poll.interval.ms"]) / 1000
            deadline = min(self.cfg.processor.transaction_timeout_s, 0.8 * poll_s)
            self.txn: Transactions | None = Transactions(lambda: Producer(pconf), deadline)
        else:
            self.txn = None
            self._producer = Producer(pconf)
        cconf = consumer_config(self.cfg)
        self.consumer = Consumer(cconf)
        self.state = StateReader(admin_config(self.cfg), self.topics.state, self.cfg.processor.group)
        labels = [self.topics.labels] if self.topics.labels else []
        self.consumer.subscribe(
            [*self.topics.input, *labels, self.topics.repartition],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    @property
    def producer(self) -> Producer:
        return self.txn.producer if self.txn is not None else self._producer

    def _new_bank(self) -> MonitorBank:
        return MonitorBank(self.engine)

    # --------------------------------------------------------------- the loop
    def run(self) -> None:
        """Process until :attr:`stopping` is set; then checkpoint, commit, leave the group."""
        progress_every = self.cfg.logging.progress_interval_s
        next_progress = time.monotonic() + progress_every
        next_lag = 0.0
        tick = (0, time.monotonic())
        try:
            while not self.stopping:
                msgs = self.consumer.consume(self.cfg.processor.batch_size, self.cfg.processor.poll_timeout_s)
                if self.health is not None:
                    self.health.beat()
                if msgs:
                    t0 = time.perf_counter()
                    self._process(msgs)
                    self.metrics.batch_seconds.observe(time.perf_counter() - t0)
                    self.metrics.batch_size.observe(len(msgs))
                now = time.monotonic()
                if (
                    self._since_checkpoint >= self.cfg.processor.checkpoint_messages
                    or now - self._last_checkpoint >= self.cfg.processor.checkpoint_interval_s
                ):
                    self.checkpoint()
                if now >= next_lag:  # the lag gauge once a second: a scrape sees a live figure
                    self._update_lag()
                    next_lag = now + 1.0
                if now >= next_progress:
                    tick = self._progress(tick)
                    next_progress = now + progress_every
            self.checkpoint()
        finally:
            self.close()

    def _process(self, msgs: list[Message]) -> None:
        ensure_txn = self._begin_txn_if_needed
        ensure_txn()
        positions = self.positions
        repart = self.topics.repartition
        max_bytes = self.cfg.processor.max_event_bytes
        decoded: dict[int, list[tuple[int, PredictionEvent]]] = {}  # slot -> (row, event)
        labels: dict[int, list[LabelEvent]] = {}
        labels_topic = self.topics.labels
        consumed: dict[str, int] = {}
        n_rekey = 0
        ahead = self._ahead if self._ahead else None
        # event messages, for the batch decoder: message, value, Kafka timestamp, (topic, partition) code
        ev_msgs: list[Message] = []
        ev_vals: list[bytes] = []
        ev_ts: list[int] = []
        ev_tp: list[int] = []
        tp_codes: dict[tuple[str, int], int] = {}
        lab_msgs: list[Message] = []  # labels-topic messages, for the label batch decoder
        lab_vals: list[bytes] = []
        lab_ts: list[int] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                self._on_consumer_error(err)
                continue
            tp: tuple[str, int] = (m.topic(), m.partition())  # type: ignore[assignment]  # set on every non-error message
            positions[tp] = m.offset() + 1  # type: ignore[operator]
            topic = tp[0]
            consumed[topic] = consumed.get(topic, 0) + 1
            raw = m.value()
            ts = m.timestamp()[1]
            if topic == labels_topic:
                if raw is None:
                    self._dead_letter(m, decode_label(None))  # type: ignore[arg-type]  # a Rejection
                else:
                    lab_msgs.append(m)
                    lab_vals.append(raw)
                    lab_ts.append(ts)
                continue
            if topic == repart and is_label(m.headers()):
                lab = decode_label(raw, ts if ts >= 0 else None, max_bytes)
                if type(lab) is LabelEvent:
                    labels.setdefault(tp[1], []).append(lab)
                else:
                    self._dead_letter(m, lab)  # type: ignore[arg-type]
                continue
            if raw is None or ahead is not None:
                ev = decode(raw, ts if ts >= 0 else None, max_bytes)  # type: ignore[arg-type]
                n_rekey += self._route_event(m, tp, raw, ts, ev, decoded, -1, ahead)
                continue
            ev_msgs.append(m)
            ev_vals.append(raw)
            ev_ts.append(ts)
            code = tp_codes.get(tp)
            if code is None:
                code = tp_codes[tp] = len(tp_codes)
            ev_tp.append(code)
        blocks: dict[int, list[EventBlock]] = {}
        label_blocks: dict[int, list[LabelBlock]] = {}
        if lab_vals:
            n_rekey += self._decode_labels(lab_msgs, lab_vals, lab_ts, labels, label_blocks)
        if ev_vals:
            n_rekey += self._decode_events(ev_msgs, ev_vals, ev_ts, ev_tp, list(tp_codes), decoded, blocks)
        self.producer.poll(0)
        if ahead is not None:
            ahead.prune(positions)
        for topic, c in consumed.items():
            self.metrics.consumed.labels(topic).inc(c)
            if topic != repart:
                self._counts["consumed"] += c
        if n_rekey:
            self.metrics.repartitioned.inc(n_rekey)
            self._counts["repartitioned"] += n_rekey
        self._since_checkpoint += len(msgs)
        for slot in sorted(decoded.keys() | blocks.keys() | labels.keys() | label_blocks.keys()):
            evs, blks = settle(blocks.get(slot, ()), decoded.get(slot, ()))
            self._feed(self.banks[slot], evs, labels.get(slot, ()), blks, label_blocks.get(slot, ()))
        if self.txn is not None:
            self._write_filled()

    def _feed(
        self, bank: MonitorBank, evs: list[PredictionEvent], labels: Sequence[LabelEvent] = (),
        blocks: Sequence[EventBlock] = (), label_blocks: Sequence[LabelBlock] = (),
    ) -> None:  # fmt: skip
        untracked, columnar = bank.stats.untracked_events, bank.stats.column_events
        before = self._joins.before(bank)
        out = bank.process(evs, labels, blocks, label_blocks)
        n = len(evs) + sum(map(len, blocks))
        self.metrics.processed.inc(n)
        self._counts["processed"] += n
        if bank.stats.untracked_events != untracked:
            self.metrics.untracked.inc(bank.stats.untracked_events - untracked)
        if bank.stats.column_events != columnar:
            self.metrics.columnar.inc(bank.stats.column_events - columnar)
        self._joins.after(bank, before)
        produce = self._produce
        for doc in out.alerts:
            self.metrics.alerts.labels(doc["status"], doc["severity"], doc["detector"]).inc()
            produce(self.topics.alerts, orjson.dumps(doc), f"{doc['model']}/{doc['stage']}".encode())
        self._counts["alerts"] += len(out.alerts)
        for doc in out.summaries:
            produce(self.topics.metrics, orjson.dumps(doc), f"{doc['model']}/{doc['stage']}".encode())
        if out.summaries:
            self.metrics.summaries.inc(len(out.summaries))

    def _produce(self, topic: str, value: bytes | None, key: bytes, **kw: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, **kw)
                return
            except BufferError:  # local queue full: let the broker catch up (bounded memory)
                self.producer.poll(0.05)

    def _dead_letter(self, m: Message, rej: Rejection) -> None:
        value, headers = dead_letter(m.value(), m.headers(), rej, m.topic() or "", m.partition() or 0, m.offset() or 0)
        ts = m.timestamp()[1]
        self._produce(self.topics.deadletter, value, m.key() or b"", headers=headers, timestamp=ts if ts > 0 else 0)
        self.metrics.rejected.labels(rej.reason.split(".", 1)[0]).inc()
        self._counts["rejected"] += 1

    def _on_consumer_error(self, err: KafkaError) -> None:
        self.metrics.errors.labels(err.name()).inc()
        if err.fatal():
            raise ProcessorError(f"fatal consumer error: {err}")
        log.warning("consumer: %s", err)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.metrics.errors.labels(err.name()).inc()
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    # ------------------------------------------------------------- checkpoint
    def _begin_txn_if_needed(self) -> None:
        if self.txn is not None:
            self.txn.begin()

    def checkpoint(self) -> None:
        """Snapshots + offsets records → state topic, then flush+commit or commit the transaction."""
        t0 = time.perf_counter()
        advanced = {tp: o for tp, o in self.positions.items() if self._committed.get(tp) != o}
        self._last_checkpoint = time.monotonic()
        self._since_checkpoint = 0
        if not advanced and not (self.txn and self.txn.open) and not any(b.has_dirty for b in self.banks.values()):
            return
        self._begin_txn_if_needed()
        for slot, bank in self.banks.items():
            mine = self._write_state(slot, bank, sorted(bank.take_dirty()))
            if any(self._committed.get(tp) != o for tp, o in mine.items()):
                self._produce(
                    self.topics.state, offsets_record(mine, self.cfg.processor.group), OFFSETS_KEY, partition=slot
                )
        offsets = [TopicPartition(t, p, o) for (t, p), o in advanced.items()]
        if self.txn is not None:
            if not self.txn.commit(offsets, self.consumer.consumer_group_metadata()):
                self._rewind()
                return
        else:
            self._flush()
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        self._committed.update(advanced)
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - t0)

    def _write_state(self, slot: int, bank: MonitorBank, keys: list[Key]) -> Marks:
        """Snapshots of ``keys`` into the state topic, each with the offsets it covers (returned)."""
        mine = {tp: o for tp, o in self.positions.items() if tp[1] == slot and self._slot_topic(tp[0])}
        written = 0
        for key in keys:
            blob = monitor_value(mine, bank.snapshot(key))
            written += len(blob)
            self._produce(self.topics.state, blob, monitor_record_key(key), partition=slot)
        self.metrics.snapshot_bytes.inc(written)
        return mine

    def _write_filled(self) -> None:
        """Under a transaction, join segments go out as they fill: the librdkafka threads send
        them while this one works on, instead of the commit waiting for all of them (on Apache
        Kafka the labels benchmark's commits waited 0.6 s in all against 0.07 s without labels).
        Without transactions a record newer than its checkpoint would outlive a crash, so they
        wait for the checkpoint."""
        for slot, bank in self.banks.items():
            keys = bank.take_closed_segments()
            if keys:
                self._write_state(slot, bank, keys)

    def _slot_topic(self, topic: str) -> bool:
        return topic == self.topics.repartition or self.topology.co_partitioned(topic)

    def _flush(self) -> None:
        waited = 0.0
        while self.producer.flush(5.0) > 0:
            waited += 5.0
            log.warning("waiting for the broker to acknowledge %d messages (%.0f s)", len(self.producer), waited)
        if self._delivery_errors:
            errs, self._delivery_errors = self._delivery_errors, []
            raise ProcessorError(f"{len(errs)} messages could not be delivered (offsets not committed): {errs[:3]}")

    def _rewind(self) -> None:
        """After an abort: drop in-memory progress, reload state, seek back to the committed offsets."""
        assigned = self.consumer.assignment()
        self._delivery_errors.clear()  # they belonged to the aborted transaction
        self.positions.clear()
        self._committed.clear()
        self._load(assigned)
        for tp in assigned:
            if tp.offset >= 0:
                try:
                    self.consumer.seek(tp)
                except KafkaException as exc:  # e.g. the group was left meanwhile: the next assignment seeks
                    log.warning("seek %s[%d]: %s", tp.topic, tp.partition, exc.args[0])

    # -------------------------------------------------------------- rebalance
    def _load(self, partitions: list[TopicPartition]) -> None:
        """Restore owned state partitions and set each partition's start offset (in place)."""
        t0 = time.perf_counter()
        self.ready(False)
        slots = sorted({tp.partition for tp in partitions if tp.topic == self.topics.repartition})
        restored = self.state.restore(slots, self._new_bank)
        committed = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.committed(partitions, timeout=60)}
        marks: dict[tuple[str, int], int] = {}
        self._ahead = AheadMonitors()
        for slot, res in restored.items():
            for bad in res.bad_records:
                log.error("state partition %d: unreadable snapshot, that monitor starts fresh: %s", slot, bad)
            marks.update(res.offsets)
            for mkey, covered in res.covered.items():
                if self._ahead.note(mkey, covered, res.offsets):
                    log.info("monitor %s is ahead of partition %d's offsets record (a crash mid-checkpoint): "
                             "it skips the events up to %s", "/".join(mkey), slot, covered)  # fmt: skip
        for tp in partitions:
            key = (tp.topic, tp.partition)
            off = committed.get(key, OFFSET_INVALID)
            mark = marks.get(key)
            tp.offset = mark if mark is not None and (off < 0 or mark > off) else off
            if tp.offset >= 0:
                self.positions[key] = self._committed[key] = tp.offset
        self.banks = {slot: res.bank for slot, res in restored.items()}
        monitors = sum(len(b.monitors) for b in self.banks.values())
        self.metrics.restore_seconds.observe(time.perf_counter() - t0)
        self.metrics.partitions.set(len(self.banks))
        log.info(
            "assigned %d partitions (state %s): restored %d monitors from %d records, %.2f s",
            len(partitions),
            slots,
            monitors,
            sum(r.records for r in restored.values()),
            time.perf_counter() - t0,
        )
        self.ready(True)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assign").inc()
        self._load(partitions)
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        self.ready(False)
        self.checkpoint()
        self._drop(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("lost").inc()
        log.warning("partitions lost (session timed out): dropping their uncommitted progress")
        self.ready(False)
        if self.txn is not None and self.txn.open:
            self.txn.abort()
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for key in gone:
            self.positions.pop(key, None)
            self._committed.pop(key, None)
        for tp in partitions:
            if tp.topic == self.topics.repartition:
                bank = self.banks.pop(tp.partition, None)
                self._ahead.forget(bank.monitors if bank else ())
        self.metrics.partitions.set(len(self.banks))

    def ready(self, value: bool) -> None:
        self.metrics.ready.set(1 if value else 0)
        if self.health is not None:
            self.health.ready = value

    # ---------------------------------------------------------------- reports
    def _update_lag(self) -> int:
        """Per-partition lag from the cached high watermarks (no broker round trip); the total."""
        lag = 0
        for tp in self.consumer.assignment():
            _, hi = self.consumer.get_watermark_offsets(tp, cached=True)
            pos = self.positions.get((tp.topic, tp.partition))
            if hi is not None and hi >= 0 and pos is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(hi - pos, 0))
                lag += max(hi - pos, 0)
        return lag

    def _progress(self, tick: tuple[int, float]) -> tuple[int, float]:
        now = time.monotonic()
        n = self._counts["consumed"]
        rate = (n - tick[0]) / max(now - tick[1], 1e-9)
        lag = self._update_lag()
        monitors = sum(len(b.monitors) for b in self.banks.values())
        self.metrics.monitors.set(monitors)
        self.metrics.series.set(sum(b.stats.series for b in self.banks.values()))
        backlog = [b.join_backlog() for b in self.banks.values()]
        self.metrics.join_pending.labels("predictions").set(sum(p for p, _ in backlog))
        self.metrics.join_pending.labels("labels").set(sum(w for _, w in backlog))
        c = self._counts
        log.info(
            "consumed %d (%.0f/s) processed %d rejected %d re-keyed %d covered %d labels %d joined %d alerts %d "
            "monitors %d lag %d",
            n, rate, c["processed"], c["rejected"], c["repartitioned"], c["covered"], c["labels"], c["joined"],
            c["alerts"], monitors, lag,
        )  # fmt: skip
        return n, now

    def close(self) -> None:
        """Leave the group (the revoke callback checkpoints) and release the clients."""
        try:
            self.consumer.close()
        finally:
            self.state.close()
            if self.txn is not None and self.txn.open:
                self.txn.abort()
            self.producer.flush(10)
