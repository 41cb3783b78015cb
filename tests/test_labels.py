"""Labels joined to predictions by request_id, and concept drift on the joined pairs (in memory)."""

from __future__ import annotations

from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors import EngineConfig, MonitorBank
from detectors.bank_state import SEGMENT_KEY
from detectors.config import LabelSettings
from detectors.join import RENT, SEGMENT_SIZE, JoinStats, LabelJoin, Outcome, Outcomes
from detectors.keys import request_key
from detectors.snapshot import pack, unpack
from schemas import LabelEvent, PredictionEvent, load_schema

from .labels_synth import T0, Labelled, concept_stream

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
METRICS = jsonschema.Draft202012Validator(load_schema("metrics"))
CFG: dict[str, Any] = {"defaults": {"warmup_events": 1000, "alerts": {"cooldown_s": 60, "resolve_after_s": 60}}}


def bank(**extra: Any) -> MonitorBank:
    return MonitorBank(EngineConfig.from_mapping({**CFG, **extra}), wall_clock_ms=lambda: 0)


def run(b: MonitorBank, data: Labelled, size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts, summaries = [], []
    for evs, labs in data.batches(size):
        out = b.process(evs, labs)
        alerts += out.alerts
        summaries += out.summaries
    return alerts, summaries


def pred(rid: str | None, ts: int, p: Any = "a", label: Any = None) -> PredictionEvent:
    return PredictionEvent("m", "s", {}, ts, prediction=p, request_id=rid, label=label)


def note(j: LabelJoin, events: list[PredictionEvent], variant: str, st: JoinStats) -> None:
    j.predictions(events, variant, np.array([e.ts for e in events], np.int64), st)


def rk(rid: str) -> int:
    """The key a join holds a request under."""
    return request_key(rid)[0]


def join(**kw: Any) -> LabelJoin:
    return LabelJoin(LabelSettings(join="always", **kw))


def round_trip(j: LabelJoin, segments: list[int] | None = None) -> LabelJoin:
    """The join through its head record and the records of ``segments`` (default: all)."""
    back = LabelJoin.from_state(j.settings, *unpack(pack(*j.to_state())))
    for i in [s.id for s in j.segments] if segments is None else segments:
        assert back.restore_segment(*LabelJoin.read_segment(*unpack(pack(*j.segment_state(i)))))
    return back


# ------------------------------------------------------------------ the join itself
def test_a_label_waits_for_a_late_prediction_and_holds_the_ones_behind_it() -> None:
    j, st = join(), JoinStats()
    j.labels([LabelEvent("r1", "x", T0 + 50), LabelEvent("r0", "y", T0 + 60)], st)
    note(j, [pred("r0", T0)], "primary", st)
    assert j.drain(st) == []  # r0's label is ready, but r1's is ahead of it
    note(j, [pred("r1", T0 + 10, "b")], "primary", st)
    got = j.drain(st)
    assert [(o.variant, o.prediction, o.label, o.predicted_ts, o.label_ts) for o in got] == [
        ("primary", "b", "x", T0 + 10, T0 + 50),
        ("primary", "a", "y", T0, T0 + 60),
    ]
    assert (st.joined, st.unmatched, st.delays_ms) == (2, 0, [40, 60])


def test_unmatched_expired_evicted_and_late_are_counted() -> None:
    j, st = join(ttl_s=10, wait_s=1, max_pending=6), JoinStats()
    note(j, [pred(f"r{i}", T0 + i) for i in range(5)], "primary", st)
    j.labels([LabelEvent("nobody", 1, T0 + 5)], st)
    assert j.drain(st) == [] and st.unmatched == 0  # may still come
    note(j, [pred("r9", T0 + 1_006)], "primary", st)  # 1 s past the label: it gives up
    j.drain(st)
    assert st.unmatched == 1
    note(j, [pred("r10", T0 + 10_003)], "primary", st)
    j.drain(st)
    assert st.evicted == 1 and st.expired == 2  # r0 by the cap, then r1 and r2 beyond the TTL
    assert [key for key, _ in j.pending] == [rk(r) for r in ("r3", "r4", "r9", "r10")]
    j.labels([LabelEvent("r4", 1, T0 + 20_000)], st)  # 20 s after its prediction: ttl is 10 s
    assert j.drain(st) == [] and st.late == 1
    j.labels([LabelEvent("r3", 0, T0 + 20_000), LabelEvent("r9", 1, T0 + 10_500)], st)  # one late, one not
    assert j.drain(st) == [Outcome("primary", "a", 1, T0 + 1_006, T0 + 10_500)]
    assert (st.late, st.joined) == (2, 1) and st.delays_ms[-1] == 9_494


def test_a_restored_join_expires_its_old_predictions_as_the_original_does() -> None:
    """A restored segment knows how old its rows are (the quick test before looking for
    expired rows reads it)."""
    st, back_st = JoinStats(), JoinStats()
    j = join(ttl_s=10)
    note(j, [pred(f"r{i}", T0 + 1_000 * i, float(i)) for i in range(8)], "primary", st)
    j.drain(st)
    back = round_trip(j)
    for k in (j, back):
        note(k, [pred("late", T0 + 14_500, 0.5)], "primary", st if k is j else back_st)
    j.drain(st)
    back.drain(back_st)
    assert st.expired == back_st.expired == 5  # r0..r4: more than 10 s before the newest
    assert back.pending == j.pending


def test_notes_of_two_variants_apply_to_an_older_segment_record() -> None:
    """Takes noted in the head record (not in the segment's own, written before them) come
    back under their own variants."""
    j, st = join(), JoinStats()
    note(j, [pred(f"r{i}", T0 + i, float(i)) for i in range(20)], "primary", st)
    note(j, [pred(f"r{i}", T0 + 20 + i, -float(i)) for i in range(10)], "shadow", st)
    assert j.take_changed() == [0]
    old = j.segment_state(0)  # the record a checkpoint wrote
    j.labels([LabelEvent(f"r{i}", 1, T0 + 40) for i in (3, 12, 15)], st)  # r3 has a shadow prediction too
    j.drain(st)
    assert j.take_changed() == [] and len(j.segments[0].removed) == 4
    back = LabelJoin.from_state(j.settings, *unpack(pack(*j.to_state())))
    assert back.restore_segment(*LabelJoin.read_segment(*unpack(pack(*old))))
    assert back.pending == j.pending and len(back.pending) == 26


def test_auto_mode_keeps_predictions_only_after_a_first_label() -> None:
    j, st = LabelJoin(LabelSettings(wait_s=30)), JoinStats()
    note(j, [pred("r0", T0)], "primary", st)
    assert not j.active and not j.pending
    j.labels([LabelEvent("r0", 1, T0 + 3)], st)  # kept from wait_s after this label: not its own
    assert j.active and st.unmatched == 1 and j.since_ts == T0 + 30_003
    note(j, [pred("r1", T0 + 30_002), pred("r2", T0 + 30_003)], "primary", st)
    assert list(j.pending) == [(rk("r2"), "primary")]
    j.labels([LabelEvent("r2", 1, T0 + 30_009)], st)
    assert len(j.drain(st)) == 1 and st.joined == 1


def test_inline_labels_join_on_the_spot_and_off_ignores_labels() -> None:
    j, st = LabelJoin(LabelSettings()), JoinStats()
    note(j, [pred(None, T0, "a", label="a"), pred("r", T0 + 1, "a", label="b")], "primary", st)
    assert [(o.prediction, o.label) for o in j.drain(st)] == [("a", "a"), ("a", "b")] and st.inline == 2
    off, st2 = LabelJoin(LabelSettings(join="off")), JoinStats()
    note(off, [pred("r", T0, label="b")], "primary", st2)
    off.labels([LabelEvent("r", 1, T0)], st2)
    assert off.drain(st2) == [] and st2.unmatched == 1


def test_join_state_round_trips_through_a_snapshot() -> None:
    j, st = join(), JoinStats()
    note(j, [pred("r0", T0, 1.5), pred("r1", T0 + 1, "c")], "primary", st)
    note(j, [pred("r1", T0 + 1, None)], "shadow", st)
    j.labels([LabelEvent("r5", True, T0 + 2), LabelEvent("r0", 2.0, T0 + 3)], st)
    note(j, [pred("r7", T0 + 3, "x", label="y")], "primary", st)  # inline, behind the labels
    back = round_trip(j)
    assert (back.pending, back.waiting, back.watermark, back.active) == (j.pending, j.waiting, j.watermark, True)
    note(j, [pred("r5", T0 + 4)], "primary", st)
    note(back, [pred("r5", T0 + 4)], "primary", st)
    out = j.drain(st)
    assert out == back.drain(st) and len(back.waiting) == 0
    assert [(o.variant, o.prediction, o.label) for o in out] == [
        ("primary", "a", True), ("primary", 1.5, 2.0), ("primary", "x", "y")]  # fmt: skip


def test_records_written_before_request_keys_restore() -> None:
    """The head and segment records of the join that kept request ids as strings."""
    settings = LabelSettings(join="always")
    head = {"active": True, "since": -1, "watermark": T0 + 9, "variants": ["primary", "shadow"],
            "segments": [[0, 3, ["r1"], [0]]], "open_inserts": 3, "next_gen": 4,
            "waiting": [["r9", 1, T0 + 9, None], ["", "y", T0 + 9, ["primary", T0 + 8, "x"]]]}  # fmt: skip
    segment = {"segment": 0, "gen": 3, "variants": ["primary", "shadow"], "rids": [["r0", "r1"], ["r0"]],
               "predictions": [None, ["c"]]}  # fmt: skip
    arrays = {"ts0": np.array([T0, T0 + 1], np.int64), "p0": np.array([0.5, 0.25]), "ts1": np.array([T0], np.int64)}
    j = LabelJoin.from_state(settings, *unpack(pack(head, {})))
    assert j.restore_segment(*LabelJoin.read_segment(*unpack(pack(segment, arrays))))
    assert j.pending == {(rk("r0"), "primary"): (T0, 0.5), (rk("r0"), "shadow"): (T0, "c")}  # r1 was taken
    st = JoinStats()
    j.labels([LabelEvent("r0", 0, T0 + 9)], st)
    note(j, [pred("r9", T0 + 9, 0.75)], "primary", st)
    got = [(o.variant, o.prediction, o.label) for o in j.drain(st)]
    assert got == [("primary", 0.75, 1), ("primary", "x", "y"), ("primary", 0.5, 0), ("shadow", "c", 0)]


def test_a_checkpoint_writes_only_the_segments_that_changed() -> None:
    j, st = join(ttl_s=3600, max_pending=5 * SEGMENT_SIZE), JoinStats()
    n = 3 * SEGMENT_SIZE + 10
    note(j, [pred(f"r{i}", T0 + i) for i in range(n)], "primary", st)
    assert [len(s) for s in j.segments] == [SEGMENT_SIZE] * 3 + [10]
    assert j.take_changed() == [0, 1, 2, 3] and j.take_changed() == []
    note(j, [pred("new", T0 + n)], "primary", st)
    assert j.take_changed() == [3]  # only the open segment
    written0 = LabelJoin.read_segment(*unpack(pack(*j.segment_state(0))))  # segment 0's record
    j.labels([LabelEvent("r5", 1, T0 + n)], st)  # a label for the oldest segment
    assert len(j.drain(st)) == 1 and j.take_changed() == []  # noted in the join's record instead
    back = LabelJoin.from_state(j.settings, *unpack(pack(*j.to_state())))
    assert back.restore_segment(*written0) and back.segments[0].entries == j.segments[0].entries
    assert len(back.segments[0]) == SEGMENT_SIZE - 1  # the note applied to the older record
    notes = 64
    j.labels([LabelEvent(f"r{i}", 1, T0 + n) for i in range(6, 5 + notes)], st)
    j.drain(st)
    live = SEGMENT_SIZE - notes
    # each checkpoint writes the notes again; once they have cost RENT times the live rows, a rewrite
    # (r5's note was written once already)
    k = next(k for k in range(1, 100) if 1 + notes * k > RENT * live)
    assert len(j.segments[0].removed) == notes and k > 10
    assert [j.take_changed() for _ in range(k)] == [[]] * (k - 1) + [[0]]
    assert len(j.segments[0].removed) == 0 and j.segments[0].rent == 0  # written anew
    before = round_trip(j)
    first = [f"r{i}" for i in range(SEGMENT_SIZE) if not 5 <= i < 5 + notes]
    j.labels([LabelEvent(rid, 1, T0 + n) for rid in first], st)  # the oldest segment empties: it goes
    j.drain(st)
    assert [s.id for s in j.segments] == [1, 2, 3] and j.take_changed() == []
    note(j, [pred(f"s{i}", T0 + n + i) for i in range(SEGMENT_SIZE)], "primary", st)
    reused = j.segments[-1]
    assert (reused.id, reused.gen) == (0, 4)  # id 0 again, a new generation
    assert j.take_changed() == [0, 3]
    # the old record of segment 0 (generation 0) is stale for this join, current for the old one
    old0 = LabelJoin.read_segment(*unpack(pack(*before.segment_state(0))))
    assert not round_trip(j, segments=[]).restore_segment(*old0)
    assert round_trip(before, segments=[]).restore_segment(*old0)
    back = round_trip(j)  # the 11 predictions past segment 3's end opened segment 0 again
    assert back.pending == j.pending and back.open_inserts == j.open_inserts == 11


def test_a_segment_is_written_anew_at_once_when_its_notes_outnumber_its_live_rows() -> None:
    j, st = join(), JoinStats()
    note(j, [pred(f"r{i}", T0 + i) for i in range(100)], "primary", st)
    assert j.take_changed() == [0]
    j.labels([LabelEvent(f"r{i}", 1, T0 + 100) for i in range(30)], st)
    j.drain(st)
    assert j.take_changed() == [] and j.segments[0].rent == 30  # 30 notes, 70 live rows
    j.labels([LabelEvent(f"r{i}", 1, T0 + 100) for i in range(30, 60)], st)
    j.drain(st)
    assert j.take_changed() == [0] and len(j.segments[0].removed) == 0  # 60 notes, 40 live rows
    back = round_trip(j)
    assert back.pending == j.pending and len(back.pending) == 40


def test_a_repeated_request_keeps_its_newest_prediction_across_segments_and_restarts() -> None:
    j, st = join(wait_s=1), JoinStats()
    note(j, [pred("dup", T0, "old")] + [pred(f"r{i}", T0 + 1) for i in range(SEGMENT_SIZE)], "primary", st)  # fmt: skip
    old_record = j.segment_state(0)  # written while "old" was the one kept
    j.take_changed()
    note(j, [pred("dup", T0 + 2, "new"), pred("dup", T0 + 3, "newer")], "primary", st)
    assert j.size == SEGMENT_SIZE + 1 and j.pending[(rk("dup"), "primary")] == (T0 + 3, "newer")
    assert list(j.segments[0].removed) == [(rk("dup"), "primary")]  # the replaced row, noted for segment 0's record
    back = LabelJoin.from_state(j.settings, *unpack(pack(*j.to_state())))
    for rec in (j.segment_state(1), old_record):  # in either order, the newer one wins
        assert back.restore_segment(*LabelJoin.read_segment(*unpack(pack(*rec))))
    assert back.pending == j.pending
    j.labels([LabelEvent("dup", 1, T0 + 4), LabelEvent("dup", 1, T0 + 5)], st)
    assert [o.prediction for o in j.drain(st)] == ["newer"]  # the second label finds nothing left...
    assert len(j.waiting) == 1 and st.unmatched == 0  # ...and waits for a prediction that may come
    note(j, [pred("x", T0 + 2_000)], "primary", st)
    assert j.drain(st) == [] and st.unmatched == 1


# ------------------------------------------------------------- concept drift on the bank
def _only(alerts: list[dict[str, Any]], status: str = "firing") -> list[dict[str, Any]]:
    return [a for a in alerts if a["status"] == status]


def test_concept_drift_is_caught_from_delayed_labels_while_inputs_stay_put() -> None:
    data = concept_stream(40_000, drift_at=20_000)
    b = bank()
    alerts, summaries = run(b, data, 1000)
    firing = _only(alerts)
    assert firing, "the changed relation went unnoticed"
    for a in alerts:
        assert ALERT.is_valid(a), list(ALERT.iter_errors(a))
    assert {a["signal"] for a in firing} == {"error"}, [(a["signal"], a["detector"]) for a in firing]
    first = min(a["detected_at"] for a in firing)
    assert T0 + 20_000 * 10 < first < T0 + 26_000 * 10  # after the change, within 6k predictions
    a = firing[0]
    assert a["details"]["mean_after"] > a["details"]["mean_before"] + 0.05  # the error rate rose
    st = b.joins
    labelled = sum(isinstance(e, LabelEvent) for e in data.items)
    assert st.joined + st.unmatched + st.late == labelled
    assert st.unmatched < 0.1 * labelled  # those within wait_s (30 s: 3,000 predictions) of the first label
    assert st.delays_ms and min(st.delays_ms) >= 0
    sig = [s for s in summaries if "error" in s["signals"]]
    assert sig and all(METRICS.is_valid(s) for s in sig)


def test_regression_labels_watch_the_absolute_error() -> None:
    data = concept_stream(30_000, drift_at=15_000, regression=True)
    firing = _only(run(bank(), data, 1000)[0])
    signals = {(a["signal"], a["detector"]) for a in firing}
    assert ("abs_error", "adwin") in signals and ("abs_error", "page_hinkley") in signals, signals
    assert {s for s, _ in signals} <= {"abs_error", "label"}  # the labels moved too: that is prior shift
    assert min(a["detected_at"] for a in firing) > T0 + 15_000 * 10


def test_no_label_alert_without_a_change() -> None:
    data = concept_stream(60_000, drift_at=10**9, seed=3)
    alerts, _ = run(bank(), data, 1000)
    assert alerts == []


@pytest.mark.parametrize("size", [97, 1000, 7_000])
def test_label_alerts_do_not_depend_on_batching(size: int) -> None:
    data = concept_stream(30_000, drift_at=15_000, early=0.05)
    ref = [(a["alert_id"], a["status"], a["detected_at"]) for a in run(bank(), data, 2500)[0]]
    got = [(a["alert_id"], a["status"], a["detected_at"]) for a in run(bank(), data, size)[0]]
    assert ref and got == ref


def _checkpointed(b: MonitorBank, batches: list[tuple[list[PredictionEvent], list[LabelEvent]]],
                  state: dict[Any, bytes]) -> list[dict[str, Any]]:  # fmt: skip
    """Process, writing what changed after each batch, as a runtime's checkpoints do."""
    alerts = []
    for evs, labs in batches:
        alerts += b.process(evs, labs).alerts
        for key in b.take_dirty():
            state[key] = b.snapshot(key)
    return alerts


def _restored(state: dict[Any, bytes], order: str = "written", **extra: Any) -> MonitorBank:
    """A bank from ``state``'s records: as written, reversed, or monitors, then join segments,
    then the joins' own records (a compacted topic keeps each key where it first came: a
    monitor checkpointed before its stage's first label comes before its join)."""
    b = bank(**extra)
    keys = list(state)
    if order == "reversed":
        keys.reverse()
    elif order == "monitors-first":
        keys.sort(key=lambda k: 2 if k[2] == "" else 1 if k[2].startswith(SEGMENT_KEY) else 0)
    for key in keys:
        b.restore(state[key])
    return b


@pytest.mark.parametrize(("cut", "order"), [(6, "written"), (20, "reversed"), (31, "monitors-first")])
def test_snapshot_mid_join_continues_like_an_uninterrupted_run(cut: int, order: str) -> None:
    data = concept_stream(36_000, drift_at=18_000)
    batches = data.batches(1000)
    whole, _ = run(bank(), data, 1000)
    state: dict[Any, bytes] = {}
    head = _checkpointed(bank(), batches[:cut], state)
    second = _restored(state, order)
    assert sum(j.size for j in second._joins.values()) > 0
    assert sum(len(j.segments) for j in second._joins.values()) > 1
    tail = _checkpointed(second, batches[cut:], state)
    assert [a["alert_id"] for a in head + tail] == [a["alert_id"] for a in whole] and whole


def test_labels_alone_after_a_restart_meet_the_restored_predictions() -> None:
    """Every prediction and half the labels, a restart, then the other half (labels only). The
    join keeps predictions from the start: in auto mode none would be kept before the first label."""
    always = {"defaults": {**CFG["defaults"], "labels": {"join": "always", "max_pending": 100_000}}}
    data = concept_stream(36_000, drift_at=18_000)
    preds = [e for e in data.items if isinstance(e, PredictionEvent)]
    labels = [e for e in data.items if isinstance(e, LabelEvent)]
    half = len(labels) // 2
    whole = run(bank(**always), data, 1000)[0]
    split = [(preds[i : i + 1000], []) for i in range(0, len(preds), 1000)]
    split += [([], labels[i : min(i + 500, half)]) for i in range(0, half, 500)]
    state: dict[Any, bytes] = {}
    head = _checkpointed(bank(**always), split, state)  # type: ignore[arg-type]
    second = _restored(state, **always)
    tail = _checkpointed(second, [([], labels[i : i + 500]) for i in range(half, len(labels), 500)], state)
    assert second.joins.joined == len(labels) - half
    firing = lambda docs: {a["alert_id"] for a in docs if a["status"] == "firing"}  # noqa: E731
    assert firing(head + tail) == firing(whole) and firing(whole)


def test_labels_read_before_any_prediction_of_their_stage_wait_for_them() -> None:
    """A backlog read labels-first: the join exists before the stage's first prediction."""
    always = {"defaults": {**CFG["defaults"], "labels": {"join": "always"}}}
    data = concept_stream(12_000, drift_at=10**9, seed=2, early=0.0)
    preds = [e for e in data.items if isinstance(e, PredictionEvent)]
    labels = [e for e in data.items if isinstance(e, LabelEvent)]
    b = bank(**always)
    b.process([], labels)
    assert b.joins.unmatched == 0 and b.join_backlog() == (0, len(labels))
    for i in range(0, len(preds), 1000):
        b.process(preds[i : i + 1000])
    assert b.joins.joined == len(labels) and b.join_backlog() == (len(preds) - len(labels), 0)


def test_labels_without_model_go_to_the_label_targets_and_every_variant() -> None:
    cfg = {"label_targets": ["fraud/score"]}
    a = concept_stream(12_000, drift_at=10**9, named=False, seed=1)
    b = concept_stream(12_000, drift_at=10**9, named=False, seed=1, variant="shadow")
    nowhere = bank()
    run(nowhere, a, 1000)
    assert nowhere.joins.joined == 0 and nowhere.joins.unmatched > 0  # no target: cannot be placed
    both = bank(**cfg)
    preds_b = [e for e in b.items if isinstance(e, PredictionEvent)]
    for evs, labs in a.batches(1000):
        both.process(evs + [e for e in preds_b if evs[0].ts <= e.ts <= evs[-1].ts], labs)
    shadow = both.monitors[("fraud", "score", "shadow")]
    primary = both.monitors[("fraud", "score", "primary")]
    assert primary.joined > 1000 and shadow.joined == primary.joined


def test_a_canary_and_its_baseline_each_join_the_labels_of_their_own_requests() -> None:
    data = concept_stream(20_000, drift_at=10**9, seed=4)
    canary = {
        e.request_id
        for e in data.items
        if isinstance(e, PredictionEvent) and int(str(e.request_id).rsplit("-", 1)[1]) % 10 == 0
    }
    for e in data.items:
        if isinstance(e, PredictionEvent) and e.request_id in canary:
            e.variant = "canary"
    b = bank()
    run(b, data, 1000)
    primary, cand = b.monitors[("fraud", "score", "primary")], b.monitors[("fraud", "score", "canary")]
    labelled = sum(isinstance(e, LabelEvent) for e in data.items)
    assert cand.joined > 300 and primary.joined > 5 * cand.joined
    assert primary.joined + cand.joined == b.joins.joined  # a label meets the one variant that served it
    assert b.joins.unmatched < 0.2 * labelled  # only before the join started (wait_s after the first label)


def test_full_segments_can_be_taken_as_they_fill_and_the_checkpoint_skips_them() -> None:
    j, st = join(ttl_s=3600, max_pending=5 * SEGMENT_SIZE), JoinStats()
    note(j, [pred(f"r{i}", T0 + i) for i in range(2 * SEGMENT_SIZE + 5)], "primary", st)
    assert j.take_closed() == [0, 1] and j.take_closed() == []  # not the open one
    early = {i: LabelJoin.read_segment(*unpack(pack(*j.segment_state(i)))) for i in (0, 1)}
    j.labels([LabelEvent("r3", 1, T0 + 3 * SEGMENT_SIZE)], st)
    assert len(j.drain(st)) == 1
    assert j.take_changed() == [2]  # the checkpoint: the open segment; r3's removal is a note
    back = LabelJoin.from_state(j.settings, *unpack(pack(*j.to_state())))
    assert all(back.restore_segment(*early[i]) for i in (0, 1))
    assert back.restore_segment(*LabelJoin.read_segment(*unpack(pack(*j.segment_state(2)))))
    assert back.pending == j.pending and (rk("r3"), "primary") not in back.pending
    note(j, [pred(f"s{i}", T0 + 3 * SEGMENT_SIZE + i) for i in range(SEGMENT_SIZE - 5)], "primary", st)
    assert j.take_closed() == [2]  # filled: the last segment too
    late = T0 + 3_600_000 + 2 * SEGMENT_SIZE  # the TTL empties segments 0 and 1: changed, then gone
    note(j, [pred("t", late)], "primary", st)
    j.drain(st)
    assert [s.id for s in j.segments] == [2, 3] and {0, 1} <= j.changed
    assert j.take_closed() == []  # the gone ones are not listed (nothing could write them)


def test_one_drain_takes_predictions_from_several_segments_in_label_order() -> None:
    j, st = join(ttl_s=3600, max_pending=5 * SEGMENT_SIZE), JoinStats()
    n = 3 * SEGMENT_SIZE + 7
    note(j, [pred(f"r{i}", T0 + i, float(i)) for i in range(n)], "primary", st)
    picks = [2 * SEGMENT_SIZE + 9, 5, n - 1, SEGMENT_SIZE + 7, 6]  # segments 2, 0, 3, 1, 0
    assert j.take_changed() == [0, 1, 2, 3]  # a checkpoint wrote them: takes are noted from now on
    j.labels([LabelEvent(f"r{i}", i % 2, T0 + n + k) for k, i in enumerate(picks)], st)
    got = j.drain(st)
    assert [(o.prediction, o.label, o.predicted_ts) for o in got] == [(float(i), i % 2, T0 + i) for i in picks]
    assert j.size == n - len(picks) and st.joined == len(picks)
    assert [len(s.removed) for s in j.segments] == [2, 1, 1, 1]


def test_a_record_of_the_open_segment_newer_than_the_head_restores_within_its_capacity() -> None:
    j, st = join(), JoinStats()
    note(j, [pred(f"r{i}", T0 + i) for i in range(10)], "primary", st)
    head = j.to_state()  # a checkpoint at 10 predictions...
    note(j, [pred(f"r{i}", T0 + i) for i in range(10, SEGMENT_SIZE)], "primary", st)
    newer = j.segment_state(0)  # ...and the segment's record after it filled (not committed with it)
    back = LabelJoin.from_state(j.settings, *unpack(pack(*head)))
    assert back.restore_segment(*LabelJoin.read_segment(*unpack(pack(*newer))))
    assert back.open_inserts == SEGMENT_SIZE
    note(back, [pred(f"r{i}", T0 + i) for i in range(10, 20)], "primary", st)  # replayed: a new segment
    # ...whose predictions replace the same requests' rows of the restored one
    assert [len(s) for s in back.segments] == [SEGMENT_SIZE - 10, 10] and back.size == SEGMENT_SIZE


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["primary", "canary", "shadow"]),
            st.one_of(st.floats(allow_nan=False), st.text()),
            st.integers(0, 1),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
        ),
        max_size=30,
    ),
    st.data(),
)
def test_outcome_columns_give_the_pairs_back_and_group_them_by_variant(
    rows: list[tuple[str, Any, int, int, int]], data: st.DataObject
) -> None:
    pairs = [Outcome(*r) for r in rows]
    cols = Outcomes.of(pairs)
    assert len(cols) == len(pairs) and cols.rows() == pairs
    groups = cols.by_variant()
    assert list(groups) == list(dict.fromkeys(o.variant for o in pairs))  # in order of first pair
    for variant, idx in groups.items():
        assert idx == [i for i, o in enumerate(pairs) if o.variant == variant]
    idx = data.draw(st.lists(st.integers(0, len(pairs) - 1), max_size=10) if pairs else st.just([]))
    assert cols.take(idx).rows() == [pairs[i] for i in idx]
