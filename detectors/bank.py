"""The monitor bank: decoded events in, alerts and window summaries out.

A batch is grouped by (model, stage, variant); each group becomes column arrays; the columns
of every monitor are concatenated so that each detector pool is updated by exactly one
compiled call per batch. No Python work per event per detector on this path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .adwin import ADWINDetections, ADWINPool
from .columns import BatchFeeds, Layout, kind_of, numeric_column
from .config import EngineConfig, MonitorSettings, VariantRule
from .documents import alert_doc, resolved_doc, summary_doc
from .feeds import Chunk, Feed, FeedResult
from .join import Column, JoinStats, LabelJoin, Outcomes
from .monitor import OUTCOME_ROLES, Key, Monitor, Signal, missing_profile
from .page_hinkley import PageHinkleyPool, PHDetections
from .policy import AlertState, alert_id
from .psi import PSIPool, PSIWindows
from .reference import MonitorProfile, SignalProfile
from .shadow import agree
from .snapshot import SnapshotError, get_positions, get_times, pack, put_positions, put_times, unpack
from .variant_errors import compare_errors
from .variants import Comparison, compare

__all__ = ["BankOutput", "BankStats", "MonitorBank"]

_PH_MODES = {"latency": "up", "abs_error": "up"}
SEGMENT_KEY = "\x00segment:"  # variant of a join segment's state record: no event's variant starts so
_FIRED_KEPT = 64  # recent firings per monitor that a downstream stage's alert can relate to


@dataclass(slots=True)
class BankOutput:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class BankStats:
    """Counters for metrics endpoints; monotonic over the bank's life."""

    events: int = 0
    untracked_events: int = 0
    column_events: int = 0  # events taken as column blocks (no whole-event step)
    untracked_keys: int = 0
    series: int = 0
    type_mismatches: int = 0
    suppressed: int = 0
    alerts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (status, severity, detector)


def _wrong(preds: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """The error indicator of joined pairs: 1 when a prediction differs from its label, nan when
    there was no prediction."""
    it = (math.nan if p is None else float(not agree(p, v, 0.0)) for p, v in zip(preds, labels, strict=True))
    return np.fromiter(it, np.float64, len(preds))


def _segment_key(model: str, stage: str, segment: int) -> Key:
    """The state-record key of one join segment."""
    return (model, stage, f"{SEGMENT_KEY}{segment}")


def _now_ms() -> int:
    return int(time.time() * 1000)


class MonitorBank:
    """All monitors of one process, keyed by (model, stage, variant)."""

    def __init__(self, config: EngineConfig | None = None, *, wall_clock_ms: Callable[[], int] = _now_ms) -> None:
        self.config = config or EngineConfig()
        self.monitors: dict[Key, Monitor] = {}
        self.stats = BankStats()
        self._wall = wall_clock_ms
        self._adwin: dict[int, ADWINPool] = {}
        self._ph = PageHinkleyPool()
        self._psi: dict[float, PSIPool] = {}
        self._profiles: dict[str, MonitorProfile] = {}
        self._dirty: set[Key] = set()
        self._untracked: set[Key] = set()
        self._candidates: dict[tuple[str, str], dict[Key, VariantRule]] = {}  # (model, stage) -> compared, rule
        self._by_pair: dict[tuple[str, str], list[Key]] = {}  # (model, stage) -> its monitors' keys
        self.joins = JoinStats()
        self._joins: dict[tuple[str, str], LabelJoin] = {}  # (model, stage) -> its label join
        # restore: segment records read before their join's record, and the joins whose record was read
        self._strays: dict[tuple[str, str], list[tuple[int, int, dict[str, Column]]]] = {}
        self._joins_read: set[tuple[str, str]] = set()

    # ----------------------------------------------------------------- batches
    def process(
        self, events: Sequence[Any], labels: Sequence[Any] = (), blocks: Sequence[Any] = (),
        label_blocks: Sequence[Any] = (),
    ) -> BankOutput:  # fmt: skip
        """Update every monitor with a batch of decoded events (in stream order) and labels
        (in arrival order; see ``detectors.join``). ``blocks`` (``schemas.EventBlock``) carry
        further events as columns, one key each, none of them a key of ``events``; a block that
        needs whole events (a new monitor, a new feature, variant comparisons) is decoded.
        ``label_blocks`` (``schemas.LabelBlock``) carry further labels as columns, one stage
        each, queued before ``labels``."""
        if blocks:
            events, blocks = self._fit(events, blocks)
        n = len(events)
        out = BankOutput()
        if not n and not labels and not blocks and not label_blocks:
            return out
        self.stats.events += n + sum(map(len, blocks))
        index: dict[Key, int] = {}
        gids = np.fromiter((index.setdefault((e.model, e.stage, e.variant), len(index)) for e in events), np.int64, n)
        if len(index) > 1:
            order = np.argsort(gids, kind="stable")
            evs = [events[i] for i in order.tolist()]
        else:
            evs = list(events)
        bounds = np.zeros(len(index) + 1, np.int64)
        np.cumsum(np.bincount(gids, minlength=len(index)), out=bounds[1:])
        ts = np.fromiter((e.ts for e in evs), np.int64, n)
        feeds = BatchFeeds()
        touched: list[tuple[Monitor, int]] = []
        for g, key in enumerate(index):
            a, b = int(bounds[g]), int(bounds[g + 1])
            mon = self.monitors.get(key) or self._create(key)
            if mon is None:
                self.stats.untracked_events += b - a
                continue
            self._ingest(mon, evs[a:b], ts[a:b], feeds)
            touched.append((mon, int(ts[b - 1])))
            self._dirty.add(key)
        for blk in blocks:
            mon = self.monitors[(blk.model, blk.stage, blk.variant)]
            self._ingest_block(mon, blk, feeds)
            self._dirty.add(mon.key)
            self.stats.column_events += len(blk)
        joins: set[tuple[str, str]] = set()
        for lb in label_blocks:
            join = self._label_join((lb.model, lb.stage))
            if join is None:
                self.joins.unmatched += len(lb)
                continue
            keys, checks = lb.request_keys()
            join.label_columns(keys, checks, lb.labels, lb.ts, self.joins)
            joins.add((lb.model, lb.stage))
        if labels:
            self._queue_labels(labels, joins)
        for mon, _ in touched:
            g = index[mon.key]
            a, b = int(bounds[g]), int(bounds[g + 1])
            join = self._joins[mon.key[:2]]
            join.predictions(evs[a:b], mon.key[2], ts[a:b], self.joins)
            if join.waiting or join.active:
                joins.add(mon.key[:2])
        for blk in blocks:  # no label; predictions kept when they have a request_id
            join = self._joins[(blk.model, blk.stage)]
            if blk.has_request_ids:
                join.requested(blk.variant, blk.ts, blk.request_keys, blk.prediction_column)
            else:
                join.unlabelled(blk.variant, blk.ts)
            if join.waiting or join.active:
                joins.add((blk.model, blk.stage))
            touched.append((self.monitors[(blk.model, blk.stage, blk.variant)], int(blk.ts[-1])))
        compared: list[tuple[tuple[str, str], Outcomes, np.ndarray]] = []
        for pair in sorted(joins):
            self._dirty.add((*pair, ""))
            outcomes = self._joins[pair].drain_columns(self.joins)
            if not outcomes:
                continue
            wrong = None
            if self._candidates.get(pair):  # the indicator once, for both uses
                wrong = _wrong(outcomes.predictions, outcomes.labels)
                compared.append((pair, outcomes, wrong))
            for variant, idx in outcomes.by_variant().items():
                mon = self.monitors.get((*pair, variant))
                if mon is not None:
                    whole = len(idx) == len(outcomes)
                    outs = outcomes if whole else outcomes.take(idx)
                    self._ingest_outcomes(mon, outs, feeds, None if wrong is None else wrong if whole else wrong[idx])
                    self._dirty.add(mon.key)
        self._run(feeds, out)
        if self.config.variants and n:
            self._compare_variants(index, events, gids, out)
        for pair, outcomes, wrong in compared:
            self._compare_errors(pair, outcomes, wrong, out)
        if self.config.pipelines and out.alerts:
            self._relate(out)
        for mon, last_ts in touched:
            self._resolve_quiet(mon, last_ts, out)
            self._maybe_summary(mon, last_ts, out)
        return out

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
        labels, preds = outcomes.labels, outcomes.predictions
        sigs = mon.signals
        if "label" not in sigs:
            self._add_signal(mon, "label", "label", "", kind_of(labels), p0)
        if "error" not in sigs and "abs_error" not in sigs:
            task = mon.settings.labels.task
            if task == "auto":
                task = "classification" if any(type(v) in (str, bool) for v in (*labels, *preds)) else "regression"
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
            err = _wrong(preds, labels) if wrong is None else wrong
            self._outcome_values(mon, sigs["error"], Chunk(err, pos, ts), feeds)
        else:
            p_num, bad_p = numeric_column(preds)
            l_num = lab_values if lab.kind == "numeric" else numeric_column(labels)[0]
            self.stats.type_mismatches += bad_p
            self._outcome_values(mon, sigs["abs_error"], Chunk(np.abs(p_num - l_num), pos, ts), feeds)

    def _outcome_values(self, mon: Monitor, sig: Signal, chunk: Chunk, feeds: BatchFeeds) -> None:
        n = chunk.values.shape[0]
        missing = np.isnan(chunk.values)
        k = int(missing.sum())
        sig.s_count += n - k
        sig.s_missing += k
        sig.s_sum += float(np.where(missing, 0.0, chunk.values).sum())
        self._feed_numeric(mon, sig, chunk, 0, n, feeds)

    def _relate(self, out: BankOutput) -> None:
        """Pipelines: a downstream stage's firing alert lists the alerts its upstream stages fired
        within ``related_within_s`` of event time before it (this batch's included, whatever the
        order they came out in)."""
        firing = [a for a in out.alerts if a["status"] == "firing"]
        for a in firing:
            mon = self.monitors.get((a["model"], a["stage"], a["variant"]))
            if mon is not None and (not mon.fired or mon.fired[-1][1] != a["alert_id"]):
                mon.fired.append((int(a["detected_at"]), a["alert_id"]))
                del mon.fired[:-_FIRED_KEPT]
        span = self.config.related_within_s * 1000
        for a in firing:
            ups = self.config.upstream.get((a["model"], a["stage"]))
            if not ups:
                continue
            at = int(a["detected_at"])
            related = {aid for pair in ups for key in self._by_pair.get(pair, ())
                       for ts, aid in self.monitors[key].fired if at - span <= ts <= at}  # fmt: skip
            if related:
                a["related"] = sorted(related)

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

    def _compare_variants(
        self, index: dict[Key, int], events: Sequence[Any], gids: np.ndarray, out: BankOutput
    ) -> None:
        """Candidate variants against their baseline (see ``variants``), after the monitors.

        A candidate without events in this batch still gets the baseline's: its windows close."""
        cands = (c for pair in {x[:2] for x in index} for c in self._candidates.get(pair, {}).items())
        for cand_key, rule in sorted(cands, key=lambda c: c[0]):
            cand = self.monitors[cand_key]
            base_key = (cand_key[0], cand_key[1], rule.baseline)
            groups = [g for g in (index.get(base_key), index.get(cand_key)) if g is not None]
            if not groups:
                continue
            rows = np.flatnonzero(np.isin(gids, groups))  # both variants' events, in stream order
            both = [events[i] for i in rows.tolist()]
            for doc in compare(rule, cand, self.monitors.get(base_key), both, self._wall()):
                self._emit(doc, out)

    def _create(self, key: Key) -> Monitor | None:
        if key in self._untracked:
            return None
        if self.stats.series >= self.config.limits.max_series:
            self._untracked.add(key)
            self.stats.untracked_keys += 1
            return None
        mon = Monitor(key, self.config.settings_for(*key))
        self.monitors[key] = mon
        self._track(key)
        return mon

    def _track(self, key: Key) -> None:
        self._by_pair.setdefault(key[:2], []).append(key)
        if key[:2] not in self._joins:
            self._joins[key[:2]] = LabelJoin(self.config.label_settings(*key[:2]))
        rule = self.config.variant_rule(*key) if self.config.variants else None
        if rule is not None:
            self._candidates.setdefault(key[:2], {})[key] = rule

    def _reference(self, settings: MonitorSettings) -> MonitorProfile | None:
        if settings.reference is None:
            return None
        prof = self._profiles.get(settings.reference)
        if prof is None:
            prof = MonitorProfile.from_json(orjson.loads(Path(settings.reference).read_bytes()))
            self._profiles[settings.reference] = prof
        return prof

    def _discover(self, mon: Monitor, evs: list[Any], feats: list[dict[str, Any]], at: int) -> None:
        """Create signals for features, prediction and latency seen for the first time."""
        sel = mon.settings.signals
        for name in sorted(set().union(*feats)):
            if f"feature:{name}" in mon.signals or name in sel.exclude:
                continue
            if sel.features is not None and name not in sel.features:
                continue
            kind = kind_of([f.get(name) for f in feats])
            self._add_signal(mon, f"feature:{name}", "feature", name, kind, at)
            if sel.missing:
                self._add_signal(mon, f"missing:{name}", "missing", name, "numeric", at)
        if sel.prediction and "prediction" not in mon.signals:
            preds = [e.prediction for e in evs if e.prediction is not None]
            if preds:
                kind = kind_of(preds)
                self._add_signal(mon, "prediction", "prediction", "", kind, at)
        if sel.latency and "latency_ms" not in mon.signals and any(e.latency_ms is not None for e in evs):
            self._add_signal(mon, "latency_ms", "latency", "", "numeric", at)
        mon.layout = None

    def _block(self, mon: Monitor, evs: list[Any], feats: list[dict[str, Any]], strict: bool) -> np.ndarray | None:
        """Numeric sources of a group as one (sources, events) float block, NaN = missing.

        Fast path: one ``itemgetter`` call per event and one conversion for the group;
        non-numeric values fall back to a per-value scan (counted as type mismatches).
        ``strict``: return None when a known feature is absent from an event (the caller
        then looks for new features before building the block again).
        """
        lay = mon.layout
        assert lay is not None
        n = len(evs)
        rows: list[np.ndarray] = []
        if lay.numeric_features:
            block = None
            try:
                got = [lay.getter(f) for f in feats] if lay.getter is not None else []
                block = np.array(got, dtype=np.float64).reshape(n, -1).T
            except KeyError:
                if strict:
                    return None
            except (TypeError, ValueError):
                block = None
            if block is None:
                cols = []
                for name in lay.numeric_features:
                    arr, mismatches = numeric_column([f.get(name) for f in feats])
                    self.stats.type_mismatches += mismatches
                    cols.append(arr)
                block = np.vstack(cols)
            rows.append(block)
        for attr in lay.numeric_extras:
            arr, mismatches = numeric_column([getattr(e, attr) for e in evs])
            self.stats.type_mismatches += mismatches
            rows.append(arr[None, :])
        out = np.ascontiguousarray(np.vstack(rows)) if len(rows) > 1 else np.ascontiguousarray(rows[0])
        if not np.isfinite(out).all():
            out[np.isinf(out)] = np.nan
        return out

    def _fit(self, events: Sequence[Any], blocks: Sequence[Any]) -> tuple[Sequence[Any], list[Any]]:
        """Blocks whose monitor can take columns as they are; the others' events join ``events``."""
        fit: list[Any] = []
        decoded: list[Any] = []
        for blk in blocks:
            mon = self.monitors.get((blk.model, blk.stage, blk.variant))
            lay = None if mon is None or self.config.variants else mon.layout
            if (
                lay is None
                or lay.rows_of(blk.names, blk.text) is None
                or (lay.watch_prediction and blk.prediction is not None and not np.isnan(blk.prediction).all())
                or (lay.watch_latency and blk.latency is not None)
                or (blk.has_request_ids and not blk.exact_predictions())
            ):
                decoded.extend(blk.events())
            else:
                fit.append(blk)
        return ([*events, *decoded] if decoded else events), fit

    def _start(self, mon: Monitor, ts: np.ndarray, version: str | None) -> np.ndarray:
        """Positions of a group's events; the monitor's bookkeeping for them."""
        n = ts.shape[0]
        p0 = mon.position
        pos = np.arange(p0, p0 + n, dtype=np.int64)
        mon.mark(pos, ts)
        if mon.summary_start_ts is None:
            mon.summary_start_ts = int(ts[0])
        mon.position += n
        mon.version = version
        return pos

    def _ingest(self, mon: Monitor, evs: list[Any], ts: np.ndarray, feeds: BatchFeeds) -> None:
        n = len(evs)
        p0 = mon.position
        pos = self._start(mon, ts, evs[-1].version)
        feats = [e.features for e in evs]
        lay = mon.layout
        # Nothing new when every event has exactly the known features (checked by count
        # here, by presence when the block is built); otherwise look for new signals.
        if lay is None or sum(map(len, feats)) != lay.n_features * n or lay.needs_discovery(evs):
            self._discover(mon, evs, feats, p0)
            lay = mon.layout = Layout.of(mon)
        if lay.numeric_rows:
            block = self._block(mon, evs, feats, strict=True)
            if block is None:
                self._discover(mon, evs, feats, p0)
                lay = mon.layout = Layout.of(mon)
                block = self._block(mon, evs, feats, strict=False)
            assert block is not None
            self._feed_block(mon, lay, block, pos, ts, feeds)
        for sig in lay.categorical:
            col = [f.get(sig.source) for f in feats] if sig.role == "feature" else [e.prediction for e in evs]
            absent = [v is None for v in col]
            n_missing = sum(absent)
            sig.s_count += n - n_missing
            sig.s_missing += n_missing
            self._feed_categorical(mon, sig, col, pos, ts, feeds)
            msig = lay.missing_of.get(sig.name)
            if msig is not None:
                mchunk = Chunk(np.asarray(absent, dtype=np.float64), pos, ts)
                self._feed_numeric(mon, msig, mchunk, 0, n, feeds)

    def _ingest_block(self, mon: Monitor, blk: Any, feeds: BatchFeeds) -> None:
        """A column block that :meth:`_fit` accepted: the numeric block without a Python step
        per event, and each categorical feature's strings."""
        lay = mon.layout
        assert lay is not None
        pos = self._start(mon, blk.ts, blk.version)
        n = len(blk)
        if lay.numeric_rows:
            rows = [blk.values[lay.rows_of(blk.names, blk.text)]]
            for attr in lay.numeric_extras:
                col = blk.prediction if attr == "prediction" else blk.latency
                rows.append((np.full(n, np.nan) if col is None else col)[None, :])
            block = np.ascontiguousarray(np.vstack(rows)) if len(rows) > 1 else rows[0]
            self._feed_block(mon, lay, block, pos, blk.ts, feeds)
        for sig in lay.categorical:  # features whose values are all strings here: none missing
            sig.s_count += n
            self._feed_categorical(mon, sig, blk.texts(sig.source), pos, blk.ts, feeds)
            msig = lay.missing_of.get(sig.name)
            if msig is not None:
                self._feed_numeric(mon, msig, Chunk(np.zeros(n), pos, blk.ts), 0, n, feeds)

    def _feed_block(
        self, mon: Monitor, lay: Layout, block: np.ndarray, pos: np.ndarray, ts: np.ndarray, feeds: BatchFeeds
    ) -> None:
        """A group's (numeric sources, events) block to its signals' detectors."""
        n = ts.shape[0]
        k = block.shape[0]
        num = Chunk(block.ravel(), np.tile(pos, k), np.tile(ts, k))
        missing = np.isnan(block)
        # The 0/1 copy only when some signal here has a missing indicator.
        miss = Chunk(missing.ravel().astype(np.float64), num.pos, num.ts) if lay.missing_of else None
        counts = n - missing.sum(axis=1)
        sums = np.where(missing, 0.0, block).sum(axis=1)
        for sig, r in lay.numeric_rows:
            sig.s_count += int(counts[r])
            sig.s_missing += n - int(counts[r])
            sig.s_sum += float(sums[r])
            self._feed_numeric(mon, sig, num, r * n, n, feeds)
            msig = lay.missing_of.get(sig.name)
            if msig is not None and miss is not None:
                self._feed_numeric(mon, msig, miss, r * n, n, feeds)
        if lay.latency_row is not None:
            lat = block[lay.latency_row]
            mon.latencies.extend(lat[~np.isnan(lat)].tolist())
            del mon.latencies[:-4096]

    def _warm(self, mon: Monitor, sig: Signal, values: Any, pos: np.ndarray, ts: np.ndarray) -> int:
        """Buffer warm-up values; on the last one build the reference. Returns values used."""
        target = mon.settings.labels.warmup_pairs if sig.role in OUTCOME_ROLES else mon.settings.warmup_events
        take = min(target - sig.seen, len(values))
        sig.warm_values.append(values[:take])
        sig.warm_pos.append(pos[:take])
        sig.warm_ts.append(ts[:take])
        sig.seen += take
        if sig.seen >= target:
            ps = mon.settings.detectors.psi
            sig.profile = sig.build_profile(ps.bins, ps.max_categories)
            self._register(mon, sig)
        return take

    def _feed_numeric(self, mon: Monitor, sig: Signal, chunk: Chunk, lo: int, n: int, feeds: BatchFeeds) -> None:
        start = 0
        if not sig.active:
            start = self._warm(mon, sig, chunk.values[lo : lo + n], chunk.pos[lo : lo + n], chunk.ts[lo : lo + n])
            if not sig.active:
                return
            replay = Chunk(np.concatenate(sig.warm_values), np.concatenate(sig.warm_pos), np.concatenate(sig.warm_ts))
            feeds.changepoints(mon, sig, replay, 0, replay.values.shape[0])
            sig.warm_values, sig.warm_pos, sig.warm_ts = [], [], []
        if start < n:
            sig.seen += n - start
            feeds.changepoints(mon, sig, chunk, lo + start, lo + n)
            if sig.psi is not None:
                feeds.psi_num.setdefault(sig.psi_pool, Feed()).add(sig.psi, chunk, lo + start, lo + n, (mon, sig))

    def _feed_categorical(
        self, mon: Monitor, sig: Signal, col: list[Any], pos: np.ndarray, ts: np.ndarray, feeds: BatchFeeds
    ) -> None:
        start = 0
        if not sig.active:
            start = self._warm(mon, sig, col, pos, ts)
            if sig.active:
                sig.warm_values, sig.warm_pos, sig.warm_ts = [], [], []
        if sig.active and start < len(col) and sig.psi is not None:
            assert sig.profile is not None
            sig.seen += len(col) - start
            chunk = Chunk(sig.profile.encode(col[start:]), pos[start:], ts[start:])
            feeds.psi_cat.setdefault(sig.psi_pool, Feed(np.int64)).add(sig.psi, chunk, 0, len(col) - start, (mon, sig))

    def _add_signal(self, mon: Monitor, name: str, role: str, source: str, kind: str, at: int) -> None:
        sig = Signal(name, role, source, kind, at)  # type: ignore[arg-type]
        mon.signals[name] = sig
        self.stats.series += 1
        ref = self._reference(mon.settings)
        if ref is not None:
            prof = ref.signals.get(f"feature:{source}" if role == "missing" else name)
            if prof is not None and role == "missing":
                prof = missing_profile(prof)
            if prof is not None and prof.kind == kind:
                sig.profile = prof
                sig.reference_source = ref.source
                self._register(mon, sig)

    def _register(self, mon: Monitor, sig: Signal) -> None:
        """Give an active signal its detectors, as the settings ask for its role and kind."""
        st = mon.settings
        det = st.detectors
        prof = sig.profile
        assert prof is not None
        std = prof.std if math.isfinite(prof.std) and prof.std > 0 else 1.0
        if sig.kind == "numeric":
            ad = st.missing_adwin if sig.role == "missing" else det.adwin
            if ad.enabled and sig.role not in ("latency", "label"):
                pool = self._adwin_pool(ad.max_buckets)
                sig.adwin = pool.add(ad.delta, ad.clock, ad.min_window_length, ad.grace_period)
                sig.adwin_pool = ad.max_buckets
            ph = st.latency_page_hinkley if sig.role == "latency" else det.page_hinkley
            if ph.enabled and sig.role in ("feature", "prediction", "latency", "abs_error"):
                sig.ph = self._ph.add(ph.min_instances, ph.delta_sd * std, ph.threshold_sd * std, ph.alpha,
                                      _PH_MODES.get(sig.role, "both"))  # fmt: skip
        if det.psi.enabled and sig.role in ("feature", "prediction", "label"):
            psi_pool = self._psi_pool(det.psi.epsilon)
            sig.psi = psi_pool.add(prof, det.psi.window)
            sig.psi_pool = det.psi.epsilon

    def _adwin_pool(self, max_buckets: int) -> ADWINPool:
        if max_buckets not in self._adwin:
            self._adwin[max_buckets] = ADWINPool(max_buckets)
        return self._adwin[max_buckets]

    def _psi_pool(self, epsilon: float) -> PSIPool:
        if epsilon not in self._psi:
            self._psi[epsilon] = PSIPool(epsilon)
        return self._psi[epsilon]

    # --------------------------------------------------------------- detection
    def _run(self, feeds: BatchFeeds, out: BankOutput) -> None:
        for mb, feed in feeds.adwin.items():
            if feed:
                res = feed.build()
                self._on_adwin(res, self._adwin[mb].update(res.seg), out)
        if feeds.ph:
            res = feeds.ph.build()
            self._on_ph(res, self._ph.update(res.seg), out)
        for eps, feed in feeds.psi_num.items():
            if feed:
                res = feed.build()
                self._on_psi(res, self._psi[eps].update_numeric(res.seg), out)
        for eps, feed in feeds.psi_cat.items():
            if feed:
                res = feed.build()
                self._on_psi(res, self._psi[eps].update_codes(res.seg), out)

    def _window(
        self, res: FeedResult, i: int, events: int, owner: tuple[Monitor, Signal]
    ) -> tuple[int, int, int, int, int]:
        """(events, first_ts, last_ts, first_pos, last_pos) of the window ending at value ``i``.

        The start is derived the same way whatever the batching (replays give equal alerts):
        ``last_pos - events + 1`` and the event time marked at or before it.
        """
        mon, sig = owner
        last_pos = int(res.pos[i])
        first_pos = max(last_pos - events + 1, 0)
        return events, mon.ts_at(first_pos, sig.role in OUTCOME_ROLES), int(res.ts[i]), first_pos, last_pos

    def _change_point(
        self, mon: Monitor, sig: Signal, detector: str, window: tuple[int, int, int, int, int], severity: str,
        statistic: float, threshold: float, details: dict[str, Any], out: BankOutput,
    ) -> None:  # fmt: skip
        """Lifecycle of a change point: resolve a stale alert first, then fire or suppress."""
        al = mon.settings.alerts
        ts = window[2]
        state = sig.alert_state(detector)
        if state.change_point_resolves(ts, al.resolve_after_s * 1000):
            self._emit_resolved(state, state.last_detection_ts + int(al.resolve_after_s * 1000), "quiet", out)
        if not state.on_change_point(ts, al.cooldown_s * 1000):
            self.stats.suppressed += 1
            return
        model, stage, variant = mon.key
        aid = alert_id(model, stage, variant, sig.name, detector, window[4])
        doc = alert_doc(mon, sig, aid=aid, detector=detector, severity=severity, statistic=statistic,
                        threshold=threshold, window=window, details=details, emitted_at=self._wall())  # fmt: skip
        state.start(aid, severity, ts, doc)
        self._emit(doc, out)

    def _on_adwin(self, res: FeedResult, det: ADWINDetections, out: BankOutput) -> None:
        if not det.pos.shape[0]:
            return
        owners = det.segment
        before, after = det.mean_before, det.mean_after
        for j, i in enumerate(det.pos.tolist()):
            k = int(owners[j])
            mon, sig = res.owners[k]
            shift = abs(float(after[j] - before[j]))
            std = sig.profile.std if sig.profile else math.nan
            crit = shift >= mon.settings.alerts.critical_shift_sd * std if std > 0 else shift > 0
            ad = mon.settings.missing_adwin if sig.role == "missing" else mon.settings.detectors.adwin
            window = self._window(res, i, max(int(det.cut[j, 2]), 1), (mon, sig))
            details = {
                "mean_before": float(before[j]),
                "mean_after": float(after[j]),
                "window_width": int(det.cut[j, 4]),
                "older_values": int(det.cut[j, 0]),
                "newer_values": int(det.cut[j, 2]),
                "reference_std": std if math.isfinite(std) else None,
            }
            severity = "critical" if crit else "warning"
            self._change_point(mon, sig, "adwin", window, severity, shift, ad.delta, details, out)

    def _on_ph(self, res: FeedResult, det: PHDetections, out: BankOutput) -> None:
        if not det.pos.shape[0]:
            return
        owners = det.segment
        for j, i in enumerate(det.pos.tolist()):
            k = int(owners[j])
            mon, sig = res.owners[k]
            assert sig.ph is not None and sig.profile is not None
            window = self._window(res, i, int(det.run[j]), (mon, sig))
            details = {
                "direction": {1: "up", 2: "down", 3: "both"}[int(det.direction[j])],
                "running_mean": float(det.mean[j]),
                "reference_mean": sig.profile.mean if math.isfinite(sig.profile.mean) else None,
                "reference_std": sig.profile.std if math.isfinite(sig.profile.std) else None,
            }
            threshold = self._ph.threshold(sig.ph)
            stat = float(det.statistic[j])
            self._change_point(mon, sig, "page_hinkley", window, "warning", stat, threshold, details, out)

    def _on_psi(self, res: FeedResult, win: PSIWindows, out: BankOutput) -> None:
        owners = win.segment
        for j, i in enumerate(win.pos.tolist()):
            k = int(owners[j])
            mon, sig = res.owners[k]
            ps = mon.settings.detectors.psi
            value = float(win.psi[j])
            sig.s_psi = value
            severity = "critical" if value >= ps.critical else "warning" if value >= ps.warning else None
            window = self._window(res, i, ps.window, (mon, sig))
            state = sig.alert_state("psi")
            action = state.on_psi_window(severity, mon.settings.alerts.cooldown_s * 1000, window[2], ps.resolve_windows)
            if action == "resolve":
                self._emit_resolved(state, window[2], f"{ps.resolve_windows} windows below {ps.warning}", out)
            elif action in ("fire", "escalate"):
                prof = sig.profile
                assert prof is not None and severity is not None
                n_bins = prof.n_bins
                details = {
                    "window_index": int(win.index[j]),
                    "bins": prof.bin_labels(),
                    "contributions": [float(c) for c in win.contributions[j, :n_bins]],
                    "actual": (win.counts[j, :n_bins] / ps.window).tolist(),
                    "expected": list(prof.proportions),
                }
                model, stage, variant = mon.key
                where = int(win.index[j])
                aid = (
                    state.firing_id if action == "escalate" else alert_id(model, stage, variant, sig.name, "psi", where)
                )
                assert aid is not None
                threshold = ps.critical if severity == "critical" else ps.warning
                doc = alert_doc(
                    mon, sig, aid=aid, detector="psi", severity=severity, statistic=value,
                    threshold=threshold, window=window, details=details, emitted_at=self._wall(),
                )  # fmt: skip
                if action == "escalate":
                    state.severity = severity
                    state.firing_doc = doc
                else:
                    state.start(aid, severity, window[2], doc)
                self._emit(doc, out)
            elif severity is not None:
                self.stats.suppressed += 1

    def _resolve_quiet(self, mon: Monitor, last_ts: int, out: BankOutput) -> None:
        ms = mon.settings.alerts.resolve_after_s * 1000
        for sig in mon.signals.values():
            for det, state in sig.alerts.items():
                if det != "psi" and state.change_point_resolves(last_ts, ms):
                    self._emit_resolved(state, state.last_detection_ts + int(ms), "quiet", out)

    def _emit_resolved(self, state: AlertState, at_ts: int, reason: str, out: BankOutput) -> None:
        firing = state.end()
        if firing is not None:
            self._emit(resolved_doc(firing, at_ts, reason, self._wall()), out)

    def _emit(self, doc: dict[str, Any], out: BankOutput) -> None:
        key = (doc["status"], doc["severity"], doc["detector"])
        self.stats.alerts[key] = self.stats.alerts.get(key, 0) + 1
        out.alerts.append(doc)

    def _maybe_summary(self, mon: Monitor, last_ts: int, out: BankOutput) -> None:
        if (
            mon.summary_start_ts is None
            or last_ts - mon.summary_start_ts < self.config.limits.metrics_interval_s * 1000
        ):
            return
        out.summaries.append(summary_doc(mon, last_ts))
        mon.summary_start_pos = mon.position
        mon.summary_start_ts = last_ts
        mon.latencies.clear()
        for s in mon.signals.values():
            s.reset_summary()

    # --------------------------------------------------------------- snapshots
    @property
    def has_dirty(self) -> bool:
        """Whether a checkpoint has anything to write."""
        return bool(self._dirty)

    def take_dirty(self) -> set[Key]:
        """Keys changed since the last call (what a checkpoint must write): monitors, label joins
        (variant ``""``) and the join segments that changed (variant ``SEGMENT_KEY`` + id)."""
        dirty, self._dirty = self._dirty, set()
        for model, stage, _ in [k for k in dirty if k[2] == ""]:
            dirty.update(_segment_key(model, stage, i) for i in self._joins[(model, stage)].take_changed())
        return dirty

    def take_closed_segments(self) -> list[Key]:
        """Keys of the join segments that filled and changed since the last take or checkpoint
        (see :meth:`LabelJoin.take_closed`): a runtime under transactions writes them early."""
        return [
            _segment_key(model, stage, i) for (model, stage), join in self._joins.items() for i in join.take_closed()
        ]

    def snapshot(self, key: Key) -> bytes:
        """Everything needed to continue this monitor elsewhere with identical detections; for a
        key with variant ``""``, the label join of its (model, stage), and with ``SEGMENT_KEY``,
        one of that join's segments."""
        if key[2] == "":
            meta, columns = self._joins[key[:2]].to_state()
            return pack({"join": list(key[:2]), **meta}, columns)
        if key[2].startswith(SEGMENT_KEY):
            meta, columns = self._joins[key[:2]].segment_state(int(key[2][len(SEGMENT_KEY) :]))
            return pack({"join_segment": list(key[:2]), **meta}, columns)
        mon = self.monitors[key]
        arrays: dict[str, np.ndarray] = {}
        for i, s in enumerate(mon.signals.values()):
            if s.adwin is not None:
                for name, arr in self._adwin[s.adwin_pool].state_of(s.adwin).items():
                    arrays[f"{i}.adwin.{name}"] = arr
            if s.ph is not None:
                arrays[f"{i}.ph"] = self._ph.state_of(s.ph)
            if s.psi is not None:
                arrays[f"{i}.psi.eps"] = np.array([s.psi_pool])
                for name, arr in self._psi[s.psi_pool].state_of(s.psi).items():
                    arrays[f"{i}.psi.{name}"] = arr
            if s.warm_pos:  # warm-up buffers: positions as a run, times as 4-byte offsets (mostly)
                put_positions(arrays, f"{i}.warm_pos", np.concatenate(s.warm_pos))
                put_times(arrays, f"{i}.warm_ts", f"{i}.warm_tb", np.concatenate(s.warm_ts))
                if s.kind == "numeric":
                    arrays[f"{i}.warm_values"] = np.concatenate(s.warm_values)
        arrays["latencies"] = np.asarray(mon.latencies, dtype=np.float64)
        arrays["marks"] = mon.marks_state()
        if mon.joined:
            arrays["joined_marks"] = mon.marks_state(outcomes=True)
        return pack(mon.to_meta(), arrays)

    def restore(self, blob: bytes) -> Key:
        """Load a monitor from :meth:`snapshot`, replacing any monitor with that key."""
        meta, arrays = unpack(blob)
        if "join" in meta:
            model, stage = (str(k) for k in meta["join"])
            join = LabelJoin.from_state(self.config.label_settings(model, stage), meta, arrays)
            self._joins[(model, stage)] = join
            self._joins_read.add((model, stage))
            for seg in self._strays.pop((model, stage), ()):
                join.restore_segment(*seg)
            return (model, stage, "")
        if "join_segment" in meta:
            model, stage = (str(k) for k in meta["join_segment"])
            seg = LabelJoin.read_segment(meta, arrays)
            if (model, stage) in self._joins_read:
                self._joins[(model, stage)].restore_segment(*seg)  # False: stale, left out
            else:
                self._strays.setdefault((model, stage), []).append(seg)  # its join's record may come later
            return _segment_key(model, stage, seg[0])
        model, stage, variant = (str(k) for k in meta["key"])
        key: Key = (model, stage, variant)
        if key in self.monitors:
            raise SnapshotError(f"monitor {key} already exists in this bank")
        mon = Monitor(key, self.config.settings_for(*key), position=int(meta["position"]), version=meta["version"])
        mon.restore_marks(arrays["marks"])
        mon.summary_start_pos, mon.summary_start_ts = meta["summary"]
        mon.latencies = arrays["latencies"].tolist()
        for i, sm in enumerate(meta["signals"]):
            sig = Signal(sm["name"], sm["role"], sm["source"], sm["kind"], sm["started_at"], sm["seen"])
            sig.reference_source = sm["reference_source"]
            sig.alerts = {k: AlertState.from_json(v) for k, v in sm["alerts"].items()}
            sig.s_count, sig.s_missing, sig.s_sum, sig.s_psi = sm["summary"]
            if sm["profile"] is not None:
                sig.profile = SignalProfile.from_json(sm["profile"])
            warm_pos = get_positions(arrays, f"{i}.warm_pos")
            if warm_pos is not None:
                sig.warm_pos = [warm_pos]
                sig.warm_ts = [get_times(arrays, f"{i}.warm_ts", f"{i}.warm_tb")]
                sig.warm_values = [arrays[f"{i}.warm_values"]] if sig.kind == "numeric" else [sm["warm_values"]]
            if f"{i}.adwin.st" in arrays:
                mb = arrays[f"{i}.adwin.totals"].shape[1] - 1
                pool = self._adwin_pool(mb)
                sig.adwin, sig.adwin_pool = pool.add(), mb
                pool.set_state(
                    sig.adwin,
                    {n: arrays[f"{i}.adwin.{n}"] for n in ("st", "params", "counts", "totals", "variances")},
                )
            if f"{i}.ph" in arrays:
                sig.ph = self._ph.add()
                self._ph.set_state(sig.ph, arrays[f"{i}.ph"])
            if f"{i}.psi.counts" in arrays and sig.profile is not None:
                eps = float(arrays[f"{i}.psi.eps"][0])
                psi_pool = self._psi_pool(eps)
                sig.psi = psi_pool.add(sig.profile, int(arrays[f"{i}.psi.scalars"][1]))
                sig.psi_pool = eps
                psi_pool.set_state(
                    sig.psi, {"counts": arrays[f"{i}.psi.counts"], "scalars": arrays[f"{i}.psi.scalars"]}
                )
            mon.signals[sig.name] = sig
            self.stats.series += 1
        if meta.get("comparison") is not None:
            mon.comparison = Comparison.from_json(meta["comparison"])
        mon.fired = [(int(ts), str(aid)) for ts, aid in meta.get("fired", ())]
        mon.joined = int(meta.get("joined", 0))
        if "joined_marks" in arrays:
            mon.restore_marks(arrays["joined_marks"], outcomes=True)
        self.monitors[key] = mon
        self._track(key)
        return key

    def join_backlog(self) -> tuple[int, int]:
        """(predictions waiting for a label, labels waiting for a prediction) over all joins."""
        joins = self._joins.values()
        return sum(j.size for j in joins), sum(len(j.waiting) for j in joins)

    def nbytes(self) -> int:
        """Bytes held by the detector pools (numpy state), excluding Python objects."""
        total = 0
        for pool in self._adwin.values():
            total += len(pool) * pool.nbytes_per_series()
        total += len(self._ph) * self._ph.nbytes_per_series()
        for psi_pool in self._psi.values():
            total += len(psi_pool) * psi_pool.nbytes_per_series()
        return total
