"""The exactly-once producer: transactions begun lazily, committed with a deadline.

librdkafka's ``send_offsets_to_transaction`` can block past its timeout when the group
coordinator goes away (confluentinc/librdkafka#5456, #5511; seen here on every Apache Kafka
restart mid-transaction). So each commit runs in a helper thread; if it misses its deadline
the stuck producer is abandoned and a new one with the same ``transactional.id`` is
initialised, which fences the old one and aborts its transaction on the broker. Either way
the caller learns "not committed" and rewinds to the last checkpoint: nothing is lost and
nothing is committed twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition

__all__ = ["Transactions", "TransactionFailed"]

log = logging.getLogger("driftstream.transactions")


class TransactionFailed(RuntimeError):
    """A non-recoverable transactional error (e.g. fenced by a newer instance)."""


class Transactions:
    def __init__(self, make_producer: Callable[[], Producer], deadline_s: float) -> None:
        self._make = make_producer
        self.deadline_s = deadline_s
        self.producer = make_producer()
        self.producer.init_transactions(60)
        self.open = False
        self.replacements = 0

    def begin(self) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open = True

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> bool:
        """True: committed. False: aborted (or the producer replaced); the caller must rewind."""
        p, deadline = self.producer, self.deadline_s
        outcome: list[BaseException | None] = []

        def work() -> None:
            try:
                if offsets:
                    p.send_offsets_to_transaction(offsets, group_metadata, deadline)
                p.commit_transaction(deadline)
                outcome.append(None)
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        worker = threading.Thread(target=work, name="driftstream-txn-commit", daemon=True)
        worker.start()
        worker.join(deadline + 1.0)
        self.open = False
        if worker.is_alive():
            log.error("transaction commit stuck for %.0f s (librdkafka#5456); replacing the producer", deadline)
            self._replace()
            return False
        exc = outcome[0]
        if exc is None:
            return True
        if not isinstance(exc, KafkaException):
            raise exc
        err = exc.args[0]
        if err.txn_requires_abort() or err.retriable():
            log.warning("transaction not committed (%s); aborting and rewinding to the last checkpoint", err)
            self.abort()
            return False
        raise TransactionFailed(f"transaction failed: {err}")

    def abort(self) -> None:
        self.open = False
        try:
            self.producer.abort_transaction(self.deadline_s)
        except KafkaException as exc:
            log.warning("abort_transaction: %s; replacing the producer", exc.args[0])
            self._replace()

    def _replace(self) -> None:
        self.replacements += 1
        self.producer = self._make()  # same transactional.id: fences the old instance, aborts its transaction
        self.producer.init_transactions(60)
        self.open = False
