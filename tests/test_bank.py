"""The monitor bank end to end in memory: attribution, schemas, determinism, snapshots."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from detectors import EngineConfig, MonitorBank
from schemas import PredictionEvent, load_schema

from .synth import in_batches, stream

ALERT = jsonschema.Draft202012Validator(load_schema("alert"))
METRICS = jsonschema.Draft202012Validator(load_schema("metrics"))
FAST = {"defaults": {"warmup_events": 1000, "alerts": {"cooldown_s": 60, "resolve_after_s": 60}}}


def bank(extra: dict | None = None, **kw) -> MonitorBank:  # type: ignore[no-untyped-def]
    cfg = dict(FAST)
    if extra:
        cfg = {**cfg, **extra}
    return MonitorBank(EngineConfig.from_mapping(cfg), wall_clock_ms=lambda: 0, **kw)


def shift_f1_of_model2(i: int, k: int, f: dict) -> None:
    if k == 2 and i >= 12_000:
        f["f1"] += 2.0


def test_sudden_shift_is_attributed_to_its_key_and_signal_only() -> None:
    alerts, summaries = in_batches(bank(), stream(20_000, mutate=shift_f1_of_model2), 1000)
    fired = {(a["model"], a["signal"], a["detector"]) for a in alerts if a["status"] == "firing"}
    assert fired == {("model2", "feature:f1", d) for d in ("adwin", "page_hinkley", "psi")}
    for a in alerts:
        ALERT.validate(a)
        assert a["window"]["first_position"] <= a["window"]["last_position"]
        # model2 sees every 4th event: the shift starts at its position 3000.
        assert a["window"]["last_position"] >= 3000
    for s in summaries:
        METRICS.validate(s)
    first = min(a["window"]["last_position"] for a in alerts)
    assert first - 3000 < 200, "a 2-sigma shift is caught within 200 events"


def test_alert_ids_do_not_depend_on_batch_sizes() -> None:
    events = stream(16_000, mutate=shift_f1_of_model2)
    runs = []
    for size in (1, 997, 4096, 16_000):
        if size == 1:
            events_small = events[:6000]  # one event per batch is slow: a prefix suffices
            alerts, _ = in_batches(bank(), events_small, 1)
            ref, _ = in_batches(bank(), events_small, 6000)
            assert [a["alert_id"] for a in alerts] == [a["alert_id"] for a in ref]
            continue
        alerts, _ = in_batches(bank(), events, size)
        runs.append([(a["alert_id"], a["status"], a["detected_at"]) for a in alerts])
    assert runs[0] and all(r == runs[0] for r in runs)


@pytest.mark.parametrize("cut", [500, 1001, 7_777, 13_000])
def test_snapshot_restore_continues_like_an_uninterrupted_run(cut: int) -> None:
    events = stream(20_000, mutate=shift_f1_of_model2, latency=True, prediction=True)
    whole, _ = in_batches(bank(), events, 1000)
    first = bank()
    head, _ = in_batches(first, events[:cut], 1000)
    second = bank()
    for key in first.take_dirty():
        second.restore(first.snapshot(key))
    tail, _ = in_batches(second, events[cut:], 1000)
    strip = lambda docs: [{k: v for k, v in d.items() if k != "emitted_at"} for d in docs]  # noqa: E731
    assert strip(head + tail) == strip(whole)
    assert whole


def test_firing_then_resolved_share_the_id() -> None:
    def bump(i: int, k: int, f: dict) -> None:
        if k == 0 and 8000 <= i < 16_000:
            f["f0"] += 3.0

    alerts, _ = in_batches(bank(), stream(40_000, mutate=bump), 2000)
    by_id: dict[str, list[str]] = {}
    for a in alerts:
        by_id.setdefault(a["alert_id"], []).append(a["status"])
    assert by_id
    for statuses in by_id.values():
        assert statuses in (["firing"], ["firing", "resolved"], ["firing", "firing", "resolved"], ["firing", "firing"])
    psi_ids = {a["alert_id"] for a in alerts if a["detector"] == "psi"}
    assert any(by_id[i][-1] == "resolved" for i in psi_ids), "PSI resolves once the windows are back below warning"


def test_no_alert_storm_during_a_long_drift() -> None:
    def noisy(i: int, k: int, f: dict) -> None:
        if k == 1 and i >= 6000:
            f["f2"] = f["f2"] * 3 + (i // 500 % 2) * 4  # keeps changing

    alerts, _ = in_batches(bank(), stream(40_000, mutate=noisy), 1000)
    per = Counter((a["signal"], a["detector"]) for a in alerts if a["status"] == "firing")
    # 40k events at 10 ms = 400 s of event time; the cooldown is 60 s.
    assert per and max(per.values()) <= 400 / 60 + 1


def test_missing_spike_and_categorical_shift_and_latency_regression() -> None:
    cats = ["a", "b", "c"]

    def drift(i: int, k: int, f: dict) -> None:
        f["country"] = cats[i % 3] if not (k == 3 and i >= 10_000) else "zz"
        if k == 1 and i >= 10_000 and i % 3 == 0:
            f["f0"] = None
        if k == 0 and i >= 10_000:
            f["_latency"] = 200.0 + (i % 7)

    alerts, _ = in_batches(bank(), stream(16_000, mutate=drift, latency=True), 1000)
    fired = {(a["model"], a["signal"], a["detector"]) for a in alerts if a["status"] == "firing"}
    assert ("model3", "feature:country", "psi") in fired
    assert ("model1", "missing:f0", "adwin") in fired
    assert ("model0", "latency_ms", "page_hinkley") in fired
    assert {m for m, _, _ in fired} == {"model0", "model1", "model3"}


def test_nan_and_strings_in_numeric_features_are_missing_never_detector_input() -> None:
    def dirty(i: int, k: int, f: dict) -> None:
        if i % 10 == 0:
            f["f0"] = math.nan
        elif i % 10 == 1:
            f["f0"] = math.inf
        elif i % 10 == 2:
            f["f0"] = "n/a"

    b = bank()
    alerts, summaries = in_batches(b, stream(12_000, mutate=dirty), 1000)
    assert not [a for a in alerts if a["status"] == "firing"]
    assert b.stats.type_mismatches > 0
    # model0 sees even events (NaN and "n/a" each 1 in 5); model1 odd ones (inf 1 in 5).
    last = {x["model"]: x for x in summaries}
    assert last["model0"]["signals"]["feature:f0"]["missing_rate"] == pytest.approx(0.4)
    assert last["model1"]["signals"]["feature:f0"]["missing_rate"] == pytest.approx(0.2)


def test_numeric_strings_are_numbers_in_every_batch() -> None:
    """A numeric string ("2.5") is read as its number whether its batch goes through the
    whole-block conversion or, because another value is not a number, the per-value one."""
    from detectors.columns import numeric_column

    arr, mismatches = numeric_column([1.0, "2.5", None, "n/a", True, " 3 ", 7])
    assert arr[[0, 1, 4, 5, 6]].tolist() == [1.0, 2.5, 1.0, 3.0, 7.0]
    assert np.isnan(arr[[2, 3]]).all() and mismatches == 1

    def sums(values: list[object]) -> tuple[float, int]:
        b = bank()
        b.process([PredictionEvent("m", "s", {"f0": v, "f1": 1.0}, i) for i, v in enumerate(values)])
        sig = b.monitors[("m", "s", "primary")].signals["feature:f0"]
        return sig.s_sum, sig.s_missing

    assert sums([1.0] * 99 + ["2.5"]) == (101.5, 0)
    assert sums([1.0] * 98 + ["n/a", "2.5"]) == (100.5, 1)


def test_monitor_cap_counts_untracked_keys() -> None:
    b = bank({"limits": {"max_series": 12}})
    in_batches(b, stream(4000, keys=8), 500)
    assert len(b.monitors) == 2  # 3 features x 2 signals = 6 series per key
    assert b.stats.untracked_keys == 6
    assert b.stats.untracked_events == 3000


def test_reference_profile_file_skips_warmup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import orjson

    from detectors import MonitorProfile, numeric_profile

    ref = stream(4000, keys=1)
    prof = MonitorProfile(
        {f"feature:f{j}": numeric_profile([e.features[f"f{j}"] for e in ref]) for j in range(3)},
        source="train.csv",
        size=4000,
    )
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(prof.to_json()))
    b = bank({"defaults": {"reference": str(path)}})

    def shift(i: int, k: int, f: dict) -> None:
        if i >= 500:
            f["f2"] += 2.0

    alerts, _ = in_batches(b, stream(3000, keys=1, seed=9, mutate=shift), 500)
    fired = {(a["signal"], a["detector"]) for a in alerts}
    assert ("feature:f2", "psi") in fired
    assert all(a["reference"] == {"source": "train.csv", "size": 4000} for a in alerts)


_WARM_CHECK = """
from numba.core.registry import CPUDispatcher
from detectors import _adwin_kernel, _ph_kernel, _psi_kernel, warm_kernels
from tests.test_bank import bank, shift_f1_of_model2
from tests.synth import in_batches, stream
mods = (_adwin_kernel, _ph_kernel, _psi_kernel)
def signatures():
    return {f"{m.__name__}.{k}": len(v.signatures) for m in mods for k, v in vars(m).items()
            if isinstance(v, CPUDispatcher) and not k.startswith("_")}
assert not any(signatures().values())
warm_kernels()
warmed = signatures()
assert warmed and all(warmed.values()), warmed
alerts, _ = in_batches(bank(), stream(20_000, keys=3, mutate=shift_f1_of_model2, latency=True), 2_000)
assert alerts
assert signatures() == warmed, (signatures(), warmed)
"""


def test_warm_kernels_compiles_every_kernel_a_real_run_uses() -> None:
    # a fresh interpreter: in this one, earlier tests have compiled the kernels already
    res = subprocess.run([sys.executable, "-c", _WARM_CHECK], cwd=Path(__file__).parent.parent, capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]


def test_warm_up_buffers_are_written_compactly_and_the_old_form_still_reads() -> None:
    from detectors.snapshot import pack, unpack

    events = stream(3_000)
    b = bank()
    in_batches(b, events[:1_200], 400)  # 300 events a key: every signal still warming up (1,000)
    key = next(iter(b.monitors))
    meta, arrays = unpack(b.snapshot(key))
    assert "0.warm_pos.run" in arrays and "0.warm_pos" not in arrays and arrays["0.warm_ts"].dtype == np.uint32
    old_form = dict(arrays)
    for i in range(len(meta["signals"])):  # as written before: every position and time as int64
        if f"{i}.warm_pos.run" in old_form:
            first, n = old_form.pop(f"{i}.warm_pos.run").tolist()
            old_form[f"{i}.warm_pos"] = np.arange(first, first + n, dtype=np.int64)
            old_form[f"{i}.warm_ts"] = old_form[f"{i}.warm_ts"].astype(np.int64) + old_form.pop(f"{i}.warm_tb")[0]
    runs = []
    for blob in (b.snapshot(key), pack(meta, old_form)):
        again = bank()
        for other in b.monitors:
            again.restore(blob if other == key else b.snapshot(other))
        alerts, _ = in_batches(again, events[1_200:], 400)
        runs.append((again.snapshot(key), [x["alert_id"] for x in alerts]))
    assert runs[0] == runs[1]


def test_a_snapshot_writes_the_used_marks_only_and_reads_a_whole_ring() -> None:
    from detectors.snapshot import pack, unpack

    b = bank()
    in_batches(b, stream(5_000), 1000)
    key = next(iter(b.monitors))
    mon = b.monitors[key]
    meta, arrays = unpack(b.snapshot(key))
    assert 0 < arrays["marks"].shape[0] < mon.marks.shape[0]
    back = bank()
    back.restore(b.snapshot(key))
    assert np.array_equal(back.monitors[key].marks, mon.marks)
    arrays["marks"] = mon.marks  # the whole ring, as snapshots held it before
    old = bank()
    old.restore(pack(meta, arrays))
    assert np.array_equal(old.monitors[key].marks, mon.marks)
    assert [old.monitors[key].ts_at(p) for p in range(0, 900, 37)] == [mon.ts_at(p) for p in range(0, 900, 37)]
