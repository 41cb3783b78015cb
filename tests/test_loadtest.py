"""Load tester: generator and ground truth (pure), scoring (pure), replay and the demo on real brokers."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from detectors.config import ConfigError
from loadtest.evaluate import read_topic_docs, score
from loadtest.generate import generate, write
from loadtest.replay import ReplayResult, read_events, replay
from loadtest.scenario import DRIFT_KINDS, VARIANT_KINDS, Scenario, parse_drift, preset
from loadtest.session import Outcome, print_outcome
from schemas import PredictionEvent, decode

from . import harness
from .conftest import Broker

ROOT = Path(__file__).resolve().parent.parent
KEYS = [
    {"model": "m", "stage": "up", "template": "vad"},
    {"model": "m", "stage": "down", "template": "asr"},
    {"model": "p", "stage": "s", "template": "profile"},
    {"model": "f", "stage": "s", "template": "serve"},
]


def _scenario(*drifts: str, events: int = 40_000) -> Scenario:
    return Scenario.from_mapping(
        {
            "events": events,
            "keys": KEYS,
            "pipelines": [["m/up", "m/down"]],
            "drifts": [parse_drift(d).model_dump() for d in drifts],
        }
    )


def _column(gen, key: str, signal: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    c = gen.columns[key]
    name = signal.split(":", 1)[-1]
    if signal.startswith("missing:"):
        col = c["numeric"].get(name)
        return np.isnan(col).astype(float) if col is not None else np.array([v is None for v in c["categorical"][name]])
    if signal == "prediction":
        return c["prediction"]
    if signal == "latency_ms":
        return c["latency"]
    return c["numeric"].get(name, c["categorical"].get(name))


def test_same_seed_same_bytes_and_every_event_is_valid() -> None:
    a = list(generate(_scenario("sudden:f/s:feature:f0@0.5", events=4_000)).events())
    b = list(generate(_scenario("sudden:f/s:feature:f0@0.5", events=4_000)).events())
    assert a == b and len(a) == 4_000
    c = list(generate(Scenario.from_mapping({**_scenario(events=4_000).model_dump(), "seed": 8})).events())
    assert c != a
    decoded = [decode(x) for x in a]
    assert all(isinstance(e, PredictionEvent) for e in decoded)
    assert [f"{e.model}/{e.stage}" for e in decoded[:4]] == ["m/up", "m/down", "p/s", "f/s"]  # type: ignore[union-attr]
    assert decoded[0].request_id == decoded[1].request_id  # type: ignore[union-attr]  # a pipeline's request


@pytest.mark.parametrize("kind", [k for k in DRIFT_KINDS if k not in ("none", "concept", *VARIANT_KINDS)])
def test_each_kind_changes_its_signal_inside_its_span_only(kind: str) -> None:
    target = {"sudden": "feature:f2", "gradual": "feature:f2", "incremental": "feature:f2", "recurring": "feature:f2",
              "missing-spike": "missing:f3", "latency-regression": "", "categorical-shift": "feature:channel",
              "prediction-shift": ""}[kind]  # fmt: skip
    gen = generate(_scenario(f"{kind}:f/s:{target}@0.4-0.8x2", events=80_000))
    truth = [e for e in gen.truth if e["role"] == "injected"]
    signal = truth[0]["signal"]
    assert signal == (target or {"latency-regression": "latency_ms", "prediction-shift": "prediction"}[kind])
    n = gen.per_key
    a, b = truth[0]["start_position"], truth[-1]["end_position"]
    assert (a, b)[0] == int(0.4 * n) and b <= int(0.8 * n)
    col = _column(gen, "f/s", signal)
    if kind == "categorical-shift":
        rare = "partner"
        before, during = np.mean(col[:a] == rare), np.mean(col[a + (b - a) // 2 : b] == rare)
        assert during > before + 0.5
    else:
        col = np.asarray(col, dtype=float)
        before = np.nanmean(col[:a])
        during = np.nanmean(col[a:b][-(b - a) // 4 :] if kind in ("gradual", "incremental") else col[a:b])
        sd = np.nanstd(col[:a])
        assert abs(during - before) > (0.2 if kind in ("missing-spike", "prediction-shift") else 1.0) * sd
    others = _column(gen, "f/s", "feature:f5").astype(float)
    assert abs(np.nanmean(others[a:b]) - np.nanmean(others[:a])) < 0.1 * np.nanstd(others)
    if kind == "recurring":
        assert len(truth) > 1 and all(e["end_position"] - e["start_position"] <= 3000 for e in truth)


def test_upstream_drift_reaches_the_downstream_stage_and_the_truth_says_so() -> None:
    gen = generate(_scenario("sudden:m/up:feature:snr_db@0.5x-2"))
    roles = {(e["key"], e["signal"], e["role"]) for e in gen.truth}
    assert ("m/up", "feature:snr_db", "injected") in roles
    assert ("m/up", "prediction", "derived") in roles
    assert ("m/down", "feature:vad_prob", "propagated") in roles
    assert ("m/down", "prediction", "propagated") in roles
    vad = _column(gen, "m/down", "feature:vad_prob").astype(float)
    half = gen.per_key // 2
    assert np.nanmean(vad[half:]) < np.nanmean(vad[:half]) - 0.1
    e = next(e for e in gen.truth if e["role"] == "injected")
    assert e["start_ts"] == gen.ts_of("m/up", e["start_position"])


def test_scenario_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="drift key 'x/y'"):
        _scenario("sudden:x/y:feature:f0@0.5")
    with pytest.raises(ConfigError, match="KIND:MODEL/STAGE"):
        parse_drift("sideways:f/s@0.5")
    with pytest.raises(ConfigError, match="presets"):
        preset("nope")


def _alert(key: str, signal: str, pos: int, status: str = "firing", aid: str = "") -> dict:
    model, stage = key.split("/")
    return {"alert_id": aid or f"{key}{signal}{pos}", "status": status, "model": model, "stage": stage,
            "signal": signal, "detector": "adwin", "window": {"last_position": pos, "last_ts": 0},
            "detected_at": 1_767_225_600_000 + pos, "emitted_at": 1}  # fmt: skip


def test_score_attributes_detects_and_counts_false_alerts() -> None:
    gen = generate(_scenario("sudden:m/up:feature:snr_db@0.5x-2", "recurring:f/s:feature:f2@0.2-0.9x2"))
    truth = gen.truth_document()
    n = gen.per_key
    rec = [e for e in truth["drifts"] if e["kind"] == "recurring"]
    alerts = [
        _alert("m/up", "feature:snr_db", n // 2 + 40),
        _alert("m/down", "prediction", n // 2 + 90),  # propagated: attributed, not false
        _alert("f/s", "feature:f2", rec[0]["start_position"] + 30, aid="rec"),  # fires once, never resolves
        _alert("p/s", "feature:age", 100),  # nothing happened there: false
        _alert("m/up", "feature:snr_db", 100),  # before the drift: false
    ]
    r = score(truth, alerts)
    assert r["false_alerts"] == 2 and r["attributed_alerts"] == 3
    sudden = next(d for d in r["drifts"] if d["kind"] == "sudden")
    assert sudden["detected"] and sudden["delay_events"] == 40
    assert all(d["detected"] for d in r["drifts"])  # later recurring phases: the first alert is still firing
    assert r["false_alerts_per_signal_per_million_events"] > 0
    resolved = [*alerts, _alert("f/s", "feature:f2", rec[0]["end_position"] + 10, status="resolved", aid="rec")]
    r2 = score(truth, resolved)
    assert not next(d for d in r2["drifts"] if d["start_position"] == rec[1]["start_position"])["detected"]


# --------------------------------------------------------------- real brokers
def _topic(broker: Broker, partitions: int = 3) -> str:
    name = f"lt-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(broker.conf())
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


@pytest.mark.broker
def test_replay_holds_the_target_rate_and_keys_by_model_stage(broker: Broker, tmp_path: Path) -> None:
    gen = generate(_scenario(events=30_000))
    events, _ = write(gen, tmp_path)
    topic = _topic(broker)
    t0 = int(time.time() * 1000)
    res = replay(read_events(events), broker.bootstrap, topic, rate=10_000, restamp=True, progress=False)
    assert res.sent == 30_000 and res.errors == 0
    assert abs(res.rate_error_percent or 0) < 5, res.as_dict()
    assert res.ts_shift_ms >= t0 - 1_767_225_600_000
    docs = read_topic_docs(broker.bootstrap, topic, idle_s=3)
    assert len(docs) == 30_000
    assert abs(docs[0]["ts"] - t0) < 5_000 or abs(min(d["ts"] for d in docs) - t0) < 5_000


@pytest.mark.broker
def test_replay_reads_csv_and_parquet_rows(broker: Broker, tmp_path: Path) -> None:
    rows = [{"model": "m", "stage": "s", "ts": 1_000 + i, "amount": float(i), "country": "de"} for i in range(50)]
    with (tmp_path / "e.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "e.parquet")
    for name in ("e.csv", "e.parquet"):
        topic = _topic(broker, 1)
        res = replay(read_events(tmp_path / name), broker.bootstrap, topic, progress=False)
        assert res.sent == 50
        docs = read_topic_docs(broker.bootstrap, topic, idle_s=3)
        got = sorted((d["ts"], d["features"]["amount"], d["features"]["country"]) for d in docs)
        assert got == [(1_000 + i, float(i), "de") for i in range(50)]
        assert all(isinstance(decode(orjson.dumps(d)), PredictionEvent) for d in docs)


def _run_demo(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "demo", "-o", str(tmp_path / "demo"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def _check_demo(res: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    figures = orjson.loads((tmp_path / "demo" / "report" / "figures.json").read_bytes())["score"]
    assert figures["missed"] == 0 and figures["false_alerts"] == 0 and figures["injected"] == 4
    assert set(figures["keys_alerting"]) <= {"speech/vad", "speech/asr", "shop/profile", "fraud/score", "churn/score"}
    concept = [d for d in figures["drifts"] if d["kind"] == "concept"]
    assert concept[0]["detected"] and concept[0]["by"].startswith("abs_error")  # from labels alone
    assert "firing" in res.stdout and f"report: {tmp_path / 'demo' / 'report' / 'report.md'}" in res.stdout
    assert "upstream alerts: " in res.stdout  # speech/asr alerts name the speech/vad ones (pipelines)
    for png in ("signals.png", "psi.png", "throughput.png"):
        assert (tmp_path / "demo" / "report" / png).stat().st_size > 10_000
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True, check=False)
    assert not left.stdout.strip(), f"left behind: {left.stdout}"


def test_demo_command_on_its_own_embedded_broker(tmp_path: Path) -> None:
    _check_demo(_run_demo([], tmp_path), tmp_path)


@pytest.mark.broker
def test_demo_against_a_given_broker(broker: Broker, tmp_path: Path) -> None:
    if broker.kind == "tansu":
        pytest.skip("the embedded broker is covered by the demo's own run above")
    _check_demo(_run_demo(["--bootstrap", broker.bootstrap], tmp_path), tmp_path)


@pytest.mark.broker
def test_loadtest_run_against_a_running_processor_twice(broker: Broker, tmp_path: Path) -> None:
    """`driftstream loadtest run` on a processor that keeps running: the second run's renamed models
    get fresh monitors, and the first run's alerts on the shared topic do not count against it."""
    prefix = f"ltr-{uuid.uuid4().hex[:6]}"
    run = harness.start(tmp_path, broker, prefix)
    try:
        run.wait_ready()
        sc = _scenario("sudden:m/up:feature:snr_db@0.5x-3", "latency-regression:f/s@0.6x1", events=60_000)
        (tmp_path / "sc.yaml").write_text(yaml.safe_dump(sc.model_dump()))
        topics = harness.topic_names(prefix)
        for n in (1, 2):
            out = tmp_path / f"run{n}"
            res = subprocess.run(
                [sys.executable, "-m", "streams.cli", "loadtest", "run", "--scenario", str(tmp_path / "sc.yaml"),
                 "--bootstrap", broker.bootstrap, "--topic", topics["input"][0], "--alerts-topic", topics["alerts"],
                 "--metrics-topic", topics["metrics"], "--metrics-url", f"{run.url}/metrics", "--rate", "20000",
                 "--quiet", "-o", str(out)],
                cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert res.returncode == 0, res.stdout + res.stderr + run.log()[-3000:]
            fig = orjson.loads((out / "report" / "figures.json").read_bytes())
            assert fig["score"]["injected"] == fig["score"]["detected"] == 2
            assert fig["score"]["false_alerts"] == 0
            assert fig["throughput"]["mean_events_per_s"] > 0
            keys = {k["key"] for k in orjson.loads((out / "scenario" / "ground_truth.json").read_bytes())["keys"]}
            assert all(k.split("/")[0].count("-") == 1 for k in keys)  # models renamed MODEL-TAG
            assert f"report: {out / 'report' / 'report.md'}" in res.stdout
    finally:
        run.stop()


def test_outcome_prints_a_missed_drift(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    drift = {"kind": "sudden", "key": "m/s", "signal": "feature:x", "detected": False, "by": None,
             "delay_events": None, "delay_s": None}  # fmt: skip
    result = {"drifts": [drift], "detected": 0, "injected": 1, "missed": 1, "false_alerts": 0, "latency_p50_ms": None}
    print_outcome(Outcome(result, tmp_path, ReplayResult(sent=10, seconds=1.0), caught_up=False))
    out = capsys.readouterr().out
    assert "MISSED" in out and "detected 0 of 1 drifts" in out
