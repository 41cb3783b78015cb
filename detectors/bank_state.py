"""The bank's state records: what a checkpoint writes, and reading it back.

A monitor's record holds its detectors' numpy state and its warm-up buffers; a stage's label
join writes a small head record plus one record per segment of kept predictions
(``detectors.join_records``). Records of one partition restore in any order: a segment read
before its join waits for it.
"""

from __future__ import annotations

import numpy as np

from .bank_base import BankPart
from .join import LabelJoin
from .monitor import Key, Monitor, Signal
from .policy import AlertState
from .reference import SignalProfile
from .snapshot import SnapshotError, get_positions, get_times, pack, put_positions, put_times, unpack
from .variants import Comparison

__all__ = ["SEGMENT_KEY", "BankState"]

SEGMENT_KEY = "\x00segment:"  # variant of a join segment's state record: no event's variant starts so


def _segment_key(model: str, stage: str, segment: int) -> Key:
    """The state-record key of one join segment."""
    return (model, stage, f"{SEGMENT_KEY}{segment}")


class BankState(BankPart):
    """Mixed into :class:`detectors.bank.MonitorBank`."""

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
