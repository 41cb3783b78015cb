"""The bank's alerts: detections become firing alerts, quiet or recovered ones resolve.

One compiled call per detector pool per batch (``_run``) yields detections; each becomes an
alert with a deterministic id, through the per-(signal, detector) lifecycle of
``detectors.policy`` (cooldown, escalation, resolution). Also window summaries, and the
pipeline relation of a downstream alert to its upstream stages' recent ones.
"""

from __future__ import annotations

import math
from typing import Any

from .adwin import ADWINDetections
from .bank_base import BankOutput, BankPart
from .columns import BatchFeeds
from .documents import alert_doc, resolved_doc, summary_doc
from .feeds import FeedResult
from .monitor import OUTCOME_ROLES, Monitor, Signal
from .page_hinkley import PHDetections
from .policy import AlertState, alert_id
from .psi import PSIWindows

__all__ = ["AlertLifecycle"]

_FIRED_KEPT = 64  # recent firings per monitor that a downstream stage's alert can relate to


class AlertLifecycle(BankPart):
    """Mixed into :class:`detectors.bank.MonitorBank`."""

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
        last_pos, last_ts = res.event(i)
        first_pos = max(last_pos - events + 1, 0)
        return events, mon.ts_at(first_pos, sig.role in OUTCOME_ROLES), last_ts, first_pos, last_pos

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
