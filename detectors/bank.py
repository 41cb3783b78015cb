"""The monitor bank: decoded events in, alerts and window summaries out.

A batch is grouped by (model, stage, variant); each group becomes column arrays; the columns
of every monitor are concatenated so that each detector pool is updated by exactly one
compiled call per batch. No Python work per event per detector on this path.

This module takes events in and runs a batch; its parts take labels (``bank_labels``), raise
and resolve alerts (``bank_alerts``) and write and read state records (``bank_state``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .adwin import ADWINPool
from .bank_alerts import AlertLifecycle
from .bank_base import BankOutput, BankStats
from .bank_labels import LabelIntake
from .bank_state import BankState
from .columns import BatchFeeds, Layout, kind_of, numeric_column
from .config import EngineConfig, MonitorSettings, VariantRule
from .feeds import Chunk
from .join import Column, JoinStats, LabelJoin
from .monitor import OUTCOME_ROLES, Key, Monitor, Signal, missing_profile
from .page_hinkley import PageHinkleyPool
from .psi import PSIPool
from .reference import MonitorProfile
from .variants import compare

__all__ = ["BankOutput", "BankStats", "MonitorBank"]

_PH_MODES = {"latency": "up", "abs_error": "up"}


def _now_ms() -> int:
    return int(time.time() * 1000)


class MonitorBank(LabelIntake, AlertLifecycle, BankState):
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
        needs whole events (a new feature, variant comparisons) is decoded.
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
        tracked = []
        for blk in blocks:
            key = (blk.model, blk.stage, blk.variant)
            mon = self.monitors.get(key)
            if mon is None:  # a new key (see _fit)
                mon = self._create(key)
                if mon is None:
                    self.stats.untracked_events += len(blk)
                    continue
                self._discover_block(mon, blk)
            self._ingest_block(mon, blk, feeds)
            self._dirty.add(key)
            self.stats.column_events += len(blk)
            tracked.append(blk)
        blocks = tracked
        joins: set[tuple[str, str]] = set()  # the stages whose joins this batch drains
        self._queue_label_blocks(label_blocks, joins)
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
        compared = self._drain_joins(joins, feeds)
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

        def prediction_kind() -> str | None:
            preds = [e.prediction for e in evs if e.prediction is not None]
            return kind_of(preds) if preds else None

        self._new_signals(mon, set().union(*feats), lambda name: kind_of([f.get(name) for f in feats]),
                          prediction_kind, lambda: any(e.latency_ms is not None for e in evs), at)  # fmt: skip

    def _discover_block(self, mon: Monitor, blk: Any) -> None:
        """A new monitor's signals from its first column block, as :meth:`_discover` would find
        them in the block's events: a block's text features hold only strings (categorical),
        its other features numbers or nulls, its predictions numbers or nulls, and its
        latencies numbers. Decoding the block instead cost ~10 µs per event, a first block of
        each of the labels benchmark's 60 keys 0.15-0.3 s of a run."""
        text = blk.text

        def prediction_kind() -> str | None:
            return None if blk.prediction is None or np.isnan(blk.prediction).all() else "numeric"

        self._new_signals(mon, blk.names, lambda name: "categorical" if name in text else "numeric",
                          prediction_kind, lambda: blk.latency is not None, mon.position)  # fmt: skip
        mon.layout = Layout.of(mon)

    def _new_signals(
        self, mon: Monitor, names: Iterable[str], kind: Callable[[str], str], prediction_kind: Callable[[], str | None],
        latency: Callable[[], bool], at: int,
    ) -> None:  # fmt: skip
        """Signals for the features among ``names`` (``kind``: of a feature's values), the
        prediction and the latency that the monitor selects and does not have yet."""
        sel = mon.settings.signals
        for name in sorted(names):
            if f"feature:{name}" in mon.signals or name in sel.exclude:
                continue
            if sel.features is not None and name not in sel.features:
                continue
            self._add_signal(mon, f"feature:{name}", "feature", name, kind(name), at)
            if sel.missing:
                self._add_signal(mon, f"missing:{name}", "missing", name, "numeric", at)
        if sel.prediction and "prediction" not in mon.signals:
            pred_kind = prediction_kind()
            if pred_kind is not None:
                self._add_signal(mon, "prediction", "prediction", "", pred_kind, at)
        if sel.latency and "latency_ms" not in mon.signals and latency():
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
        """Blocks whose monitor can take columns as they are, or whose key is new (its monitor
        is made from the block: :meth:`_discover_block`); the others' events join ``events``."""
        fit: list[Any] = []
        decoded: list[Any] = []
        for blk in blocks:
            if blk.has_request_ids and not blk.exact_predictions():
                decoded.extend(blk.events())
                continue
            mon = self.monitors.get((blk.model, blk.stage, blk.variant))
            if self.config.variants:  # variant comparisons take whole events
                lay = None
            elif mon is None:
                if len(set(blk.names)) == len(blk.names):
                    fit.append(blk)
                else:
                    decoded.extend(blk.events())
                continue
            else:
                lay = mon.layout
                if lay is None:  # restored: its signals are known
                    lay = mon.layout = Layout.of(mon)
            if (
                lay is None
                or lay.rows_of(blk.names, blk.text) is None
                or (lay.watch_prediction and blk.prediction is not None and not np.isnan(blk.prediction).all())
                or (lay.watch_latency and blk.latency is not None)
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
            at = lay.rows_of(blk.names, blk.text)
            assert at is not None  # _fit checked it, or the monitor was made from this block
            rows = [blk.values[at]]
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
        num = Chunk(block.ravel(), pos, ts, n)  # one row per signal, sharing the events' pos and ts
        missing = np.isnan(block)
        # The 0/1 copy only when some signal here has a missing indicator.
        miss = Chunk(missing.ravel().astype(np.float64), pos, ts, n) if lay.missing_of else None
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
            start = self._warm(mon, sig, chunk.values[lo : lo + n], *chunk.events(lo, lo + n))
            if not sig.active:
                return
            replay = Chunk(np.concatenate(sig.warm_values), np.concatenate(sig.warm_pos), np.concatenate(sig.warm_ts))
            feeds.changepoints(mon, sig, replay, 0, replay.values.shape[0])
            sig.warm_values, sig.warm_pos, sig.warm_ts = [], [], []
        if start < n:
            sig.seen += n - start
            feeds.changepoints(mon, sig, chunk, lo + start, lo + n)
            if sig.psi is not None:
                feeds.psi(mon, sig, chunk, lo + start, lo + n)

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
            feeds.psi(mon, sig, chunk, 0, len(col) - start)

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

    # --------------------------------------------------------------- snapshots

    def nbytes(self) -> int:
        """Bytes held by the detector pools (numpy state), excluding Python objects."""
        total = 0
        for pool in self._adwin.values():
            total += len(pool) * pool.nbytes_per_series()
        total += len(self._ph) * self._ph.nbytes_per_series()
        for psi_pool in self._psi.values():
            total += len(psi_pool) * psi_pool.nbytes_per_series()
        return total
