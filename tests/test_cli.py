"""The driftstream command: reference build from each format, and the embedded broker command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors import MonitorProfile
from streams.cli import main


def _check_profile(path: Path) -> MonitorProfile:
    prof = MonitorProfile.from_json(json.loads(path.read_text()))
    amount = prof.signals["feature:amount"]
    assert amount.kind == "numeric" and amount.count == 200
    assert amount.missing_rate == pytest.approx(0.1)
    country = prof.signals["feature:country"]
    assert country.kind == "categorical" and set(country.categories) == {"de", "fr"}
    return prof


def _rows() -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"amount": None if i % 10 == 0 else float(rng.normal(50, 5)), "country": "de" if i % 3 else "fr"}
        for i in range(200)
    ]


def test_reference_build_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "train.csv"
    src.write_text("amount,country\n" + "".join(f"{r['amount'] or ''},{r['country']}\n" for r in _rows()))
    assert main(["reference", "build", str(src), "-o", str(tmp_path / "p.json")]) == 0
    assert "200 rows" in capsys.readouterr().out
    assert _check_profile(tmp_path / "p.json").source == str(src)


def test_reference_build_from_event_jsonl_filters_model(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    lines = [json.dumps({"model": "m", "stage": "s", "features": r, "latency_ms": 5.0}) for r in _rows()]
    lines += [json.dumps({"model": "other", "stage": "s", "features": {"amount": 1e9}})] * 50
    src.write_text("\n".join(lines))
    out = tmp_path / "p.json"
    assert main(["reference", "build", str(src), "-o", str(out), "--model", "m", "--stage", "s"]) == 0
    prof = _check_profile(out)
    assert prof.signals["latency_ms"].mean == pytest.approx(5.0)


def test_reference_build_from_parquet(tmp_path: Path) -> None:
    src = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), src)
    assert main(["reference", "build", str(src), "-o", str(tmp_path / "p.json")]) == 0
    _check_profile(tmp_path / "p.json")


def test_reference_build_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reference", "build", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "p.json")]) == 1
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\nnot json\n')
    assert main(["reference", "build", str(bad), "-o", str(tmp_path / "p.json")]) == 1
    assert f"{bad}:2: not JSON" in capsys.readouterr().err
    assert main(["reference", "build", str(tmp_path / "x.xlsx"), "-o", str(tmp_path / "p.json")]) == 1


def test_broker_command_serves_until_sigterm() -> None:
    import signal
    import subprocess
    import sys
    import time

    from streams.broker import free_port, wait_for_broker

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].strip() == f"bootstrap: 127.0.0.1:{port}", lines
        wait_for_broker(f"127.0.0.1:{port}", timeout=10)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - t0 < 10
        assert "broker stopped" in proc.stdout.read()
    finally:
        proc.kill()
