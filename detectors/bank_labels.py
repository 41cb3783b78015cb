"""The bank's label intake: labels to their stage's join, joined pairs to the label signals.

Labels queue in the join of their (model, stage) (``detectors.join``); each batch drains the
joins it touched, and the pairs that leave feed the monitor of their variant: the label's
distribution, and the error indicator (classes) or the absolute error (numbers). Candidate
variants' error rates are compared with their baseline's on the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .bank_base import BankOutput, BankPart
from .columns import BatchFeeds, kind_of, numeric_column
from .feeds import Chunk
from .join import LabelJoin, Outcomes
from .monitor import Monitor, Signal
from .shadow import agree
from .variant_errors import compare_errors

__all__ = ["LabelIntake"]


def _wrong(preds: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """The error indicator of joined pairs: 1 when a prediction differs from its label, nan when
    there was no prediction."""
    it = (math.nan if p is None else float(not agree(p, v, 0.0)) for p, v in zip(preds, labels, strict=True))
    return np.fromiter(it, np.float64, len(preds))


class LabelIntake(BankPart):
    """Mixed into :class:`detectors.bank.MonitorBank`."""

    def _drain_joins(
        self, joins: set[tuple[str, str]], feeds: BatchFeeds
    ) -> list[tuple[tuple[str, str], Outcomes, np.ndarray]]:
        """Drain these stages' joins into their monitors' label signals; the pairs of stages with
        compared variants, with their error indicator, for :meth:`_compare_errors`."""
        compared: list[tuple[tuple[str, str], Outcomes, np.ndarray]] = []
        for pair in sorted(joins):
            self._dirty.add((*pair, ""))
            outcomes = self._joins[pair].drain_columns(self.joins)
            if not outcomes:
                continue
            wrong = None
            if self._candidates.get(pair):  # the indicator once, for both uses
                wrong = _wrong(outcomes.prediction_values(), outcomes.labels)
                compared.append((pair, outcomes, wrong))
            for variant, idx in outcomes.by_variant().items():
                mon = self.monitors.get((*pair, variant))
                if mon is not None:
                    whole = len(idx) == len(outcomes)
                    outs = outcomes if whole else outcomes.take(idx)
                    self._ingest_outcomes(mon, outs, feeds, None if wrong is None else wrong if whole else wrong[idx])
                    self._dirty.add(mon.key)
        return compared

    def _queue_label_blocks(self, label_blocks: Sequence[Any], joins: set[tuple[str, str]]) -> None:
        """Label blocks (``schemas.LabelBlock``: one stage each) to their stages' joins."""
        for lb in label_blocks:
            join = self._label_join((lb.model, lb.stage))
            if join is None:
                self.joins.unmatched += len(lb)
                continue
            keys, checks = lb.request_keys()
            join.label_columns(keys, checks, lb.labels, lb.ts, self.joins)
            joins.add((lb.model, lb.stage))

    def _queue_labels(self, labels: Sequence[Any], joins: set[tuple[str, str]]) -> None:
        """Each label to the join of its (model, stage), or of each ``label_targets`` stage when it
        names none. A stage not seen yet gets its join now (its labels may come first, e.g. when a
        backlog is read); at most ``limits.max_series`` joins, past that a label is unmatched."""
        per: dict[tuple[str, str], list[Any]] = {}
        targets = self.config.label_homes
        for lab in labels:
            pairs = ((lab.model, lab.stage),) if lab.model is not None else targets
            if not pairs:  # the processor dead-letters these; the bank counts them
                self.joins.unmatched += 1
            for pair in pairs:
                queue = per.get(pair)
                if queue is None:
                    if self._label_join(pair) is None:
                        self.joins.unmatched += 1
                        continue
                    queue = per[pair] = []
                queue.append(lab)
        for pair, labs in per.items():
            self._joins[pair].labels(labs, self.joins)
            joins.add(pair)

    def _label_join(self, pair: tuple[str, str]) -> LabelJoin | None:
        """The join of a stage that labels name; new if not seen yet (its labels may come first,
        e.g. when a backlog is read), None past ``limits.max_series`` joins."""
        join = self._joins.get(pair)
        if join is None and len(self._joins) < self.config.limits.max_series:
            join = self._joins[pair] = LabelJoin(self.config.label_settings(*pair))
        return join

    def _ingest_outcomes(
        self, mon: Monitor, outcomes: Outcomes, feeds: BatchFeeds, wrong: np.ndarray | None = None
    ) -> None:
        """Joined pairs into the monitor's label signals: the label's distribution, and the
        error indicator (classes; ``wrong`` if computed already) or the absolute error (numbers)."""
        n = len(outcomes)
        p0 = mon.joined
        pos = np.arange(p0, p0 + n, dtype=np.int64)
        ts = outcomes.label_ts
        mon.mark(pos, ts, outcomes=True)
        mon.joined += n
        labels, preds = outcomes.labels, outcomes.predictions  # preds: a float array or a list
        sigs = mon.signals
        if "label" not in sigs:
            self._add_signal(mon, "label", "label", "", kind_of(labels), p0)
        if "error" not in sigs and "abs_error" not in sigs:
            task = mon.settings.labels.task
            if task == "auto":
                values = (*labels, *outcomes.prediction_values())
                task = "classification" if any(type(v) in (str, bool) for v in values) else "regression"
            name = "error" if task == "classification" else "abs_error"
            self._add_signal(mon, name, name, "", "numeric", p0)
        lab = sigs["label"]
        if lab.kind == "numeric":
            lab_values, bad = numeric_column(labels)
            self.stats.type_mismatches += bad
            self._outcome_values(mon, lab, Chunk(lab_values, pos, ts), feeds)
        else:
            lab.s_count += n
            self._feed_categorical(mon, lab, labels, pos, ts, feeds)
        if "error" in sigs:
            err = _wrong(outcomes.prediction_values(), labels) if wrong is None else wrong
            self._outcome_values(mon, sigs["error"], Chunk(err, pos, ts), feeds)
        else:
            p_num, bad_p = numeric_column(preds)
            l_num = lab_values if lab.kind == "numeric" else numeric_column(labels)[0]
            self.stats.type_mismatches += bad_p
            self._outcome_values(mon, sigs["abs_error"], Chunk(np.abs(p_num - l_num), pos, ts), feeds)

    def _outcome_values(self, mon: Monitor, sig: Signal, chunk: Chunk, feeds: BatchFeeds) -> None:
        values = chunk.values
        n = values.shape[0]
        total = float(values.sum())
        k = 0
        if total != total:  # NaN: some are missing (the values are finite or NaN)
            k = int(np.count_nonzero(np.isnan(values)))
            total = float(np.nansum(values))
        sig.s_count += n - k
        sig.s_missing += k
        sig.s_sum += total
        self._feed_numeric(mon, sig, chunk, 0, n, feeds)

    def _compare_errors(self, pair: tuple[str, str], outcomes: Outcomes, wrong: np.ndarray, out: BankOutput) -> None:
        """Candidates' error rates against their baseline's, on this batch's joined pairs and their
        error indicator ``wrong`` (see ``variant_errors``); after the monitors ingested them."""
        variants = outcomes.variants
        for cand_key, rule in sorted(self._candidates[pair].items()):
            cand = self.monitors.get(cand_key)
            idx = [i for i, v in enumerate(variants) if v == rule.baseline or v == cand_key[2]]
            if cand is None or not idx:
                continue
            n = len(idx)
            side = np.fromiter((variants[i] != rule.baseline for i in idx), np.int64, n)
            ts = outcomes.label_ts[idx]
            pos = cand.joined - int(side.sum()) + np.cumsum(side) - 1
            docs = compare_errors(rule, cand, side, ts, wrong[idx], pos, "error" in cand.signals, self._wall())
            self._dirty.add(cand_key)  # its comparison counted them
            for doc in docs:
                self._emit(doc, out)

    def join_backlog(self) -> tuple[int, int]:
        """(predictions waiting for a label, labels waiting for a prediction) over all joins."""
        joins = self._joins.values()
        return sum(j.size for j in joins), sum(len(j.waiting) for j in joins)
