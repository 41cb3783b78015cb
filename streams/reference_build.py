"""``driftstream reference build``: training data (CSV, JSONL or Parquet) → reference profile JSON.

Rows are either flat (one column per feature) or prediction events (``features`` object plus
optional ``prediction`` and ``latency_ms``). A CSV column is numeric when every non-empty
cell parses as a number; empty cells are missing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from detectors import MonitorProfile, SignalProfile, categorical_profile, numeric_profile

__all__ = ["build_profile", "read_rows"]


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            yield {k: (v if v != "" else None) for k, v in row.items()}


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a file, by extension: .csv (strings; empty = None), .jsonl/.ndjson, .parquet/.pq."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
                    if not isinstance(row, dict):
                        raise ValueError(f"{path}:{n}: expected an object per line")
                    yield row
    elif suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415  (optional dependency: the parquet extra)
        except ImportError:
            raise ValueError("reading Parquet needs pyarrow: pip install 'driftstream[parquet]'") from None

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    else:
        raise ValueError(f"unsupported reference file {path.name!r}: use .csv, .jsonl or .parquet")


def _as_number(v: Any) -> float | str | None:
    """Number, None (missing) or the original string when it is not numeric."""
    if v is None or isinstance(v, bool | int | float):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return v
        return x if math.isfinite(x) else None
    return str(v)


def build_profile(
    path: Path, *, model: str | None = None, stage: str | None = None, bins: int = 10, max_categories: int = 50
) -> MonitorProfile:
    """Profile of every column (or feature, prediction and latency of event rows)."""
    columns: dict[str, list[Any]] = {}
    n = 0
    for row in read_rows(path):
        if isinstance(row.get("features"), dict):
            if (model and row.get("model") not in (None, model)) or (stage and row.get("stage") not in (None, stage)):
                continue
            flat = {f"feature:{k}": v for k, v in row["features"].items()}
            for extra in ("prediction", "latency_ms"):
                if extra in row:
                    flat[extra] = row[extra]
        else:
            flat = {f"feature:{k}": v for k, v in row.items()}
        for name, col in columns.items():
            if name not in flat:
                col.append(None)
        for name, v in flat.items():
            if name not in columns:
                columns[name] = [None] * n
            columns[name].append(v)
        n += 1
    if not n:
        raise ValueError(f"{path}: no rows" + (f" for model={model!r} stage={stage!r}" if model or stage else ""))
    signals: dict[str, SignalProfile] = {}
    for name, col in columns.items():
        parsed = [_as_number(v) for v in col]
        if any(isinstance(v, str) for v in parsed):
            signals[name] = categorical_profile(col, max_categories)
        else:
            signals[name] = numeric_profile(parsed, bins)  # type: ignore[arg-type]
    return MonitorProfile(signals, source=str(path), size=n, model=model, stage=stage)
