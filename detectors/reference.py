"""Reference profiles: what "no drift" looks like for one signal, fixed once.

A numeric signal keeps the quantile edges of its reference (outer bins open, so values
outside the reference range still count), the share of reference values per bin, and its
mean and standard deviation (which scale Page-Hinkley). A categorical signal keeps its most
frequent categories and their shares, plus an ``other`` bucket for unseen categories.
Missing values (null, NaN, infinities) are a bin of their own in both.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["SignalProfile", "numeric_profile", "categorical_profile", "MonitorProfile"]

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True, slots=True)
class SignalProfile:
    """Bins and shares of one signal's reference.

    Numeric bins: ``len(edges) + 1`` value bins, then the missing bin.
    Categorical bins: one per category, then ``other``, then missing.
    """

    kind: Kind
    proportions: tuple[float, ...]
    count: int
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    mean: float = math.nan
    std: float = math.nan
    _codes: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        expected = len(self.edges) + 2 if self.kind == "numeric" else len(self.categories) + 2
        if len(self.proportions) != expected:
            raise ValueError(f"{self.kind} profile needs {expected} proportions, got {len(self.proportions)}")
        if self.kind == "categorical":
            self._codes.update({c: i for i, c in enumerate(self.categories)})

    @property
    def n_bins(self) -> int:
        return len(self.proportions)

    @property
    def missing_rate(self) -> float:
        return self.proportions[-1]

    def bin_labels(self) -> list[str]:
        """Readable bin names, for alert details."""
        if self.kind == "categorical":
            return [*self.categories, "other", "missing"]
        e = self.edges
        if not e:
            return ["all", "missing"]
        labels = [f"< {e[0]:.6g}"] + [f"[{lo:.6g}, {hi:.6g})" for lo, hi in itertools.pairwise(e)]
        return [*labels, f">= {e[-1]:.6g}", "missing"]

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Bin codes of categorical values (unseen → other, None → missing)."""
        other = len(self.categories)
        codes = self._codes
        return np.fromiter(
            (other + 1 if v is None else codes.get(v if isinstance(v, str) else str(v), other) for v in values),
            dtype=np.int64,
            count=len(values),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "proportions": list(self.proportions)}
        if self.kind == "numeric":
            out.update(edges=list(self.edges), mean=_json_float(self.mean), std=_json_float(self.std))
        else:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignalProfile:
        kind = data["kind"]
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"unknown profile kind {kind!r} (allowed: numeric, categorical)")
        return cls(
            kind=kind,
            proportions=tuple(float(p) for p in data["proportions"]),
            count=int(data["count"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
            mean=_from_json_float(data.get("mean")),
            std=_from_json_float(data.get("std")),
        )


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


def _from_json_float(x: Any) -> float:
    return math.nan if x is None else float(x)


def numeric_profile(values: np.ndarray | Sequence[float | None], bins: int = 10) -> SignalProfile:
    """Quantile bins of a numeric reference; NaN, infinities and None count as missing."""
    arr = (
        np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        if not isinstance(values, np.ndarray)
        else values.astype(np.float64, copy=False)
    )
    finite = arr[np.isfinite(arr)]
    n_missing = int(arr.shape[0] - finite.shape[0])
    if finite.shape[0]:
        qs = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]) if bins > 1 else np.empty(0)
        edges = np.unique(qs)
        if edges.shape[0] == 0:
            edges = np.array([finite[0]])
        counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.shape[0] + 1)
        mean, std = float(finite.mean()), float(finite.std())
    else:
        edges = np.empty(0)
        counts = np.zeros(1, np.int64)
        mean = std = math.nan
    total = max(int(arr.shape[0]), 1)
    props = [*(counts / total).tolist(), n_missing / total]
    return SignalProfile("numeric", tuple(props), int(arr.shape[0]), edges=tuple(edges.tolist()), mean=mean, std=std)


def categorical_profile(values: Iterable[Any], max_categories: int = 50) -> SignalProfile:
    """Most frequent categories of a reference (ties broken by name, so builds repeat)."""
    seen: Counter[str] = Counter()
    n = n_missing = 0
    for v in values:
        n += 1
        if v is None:
            n_missing += 1
        else:
            seen[v if isinstance(v, str) else str(v)] += 1
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = ranked[:max_categories]
    other = sum(c for _, c in ranked[max_categories:])
    total = max(n, 1)
    props = [c / total for _, c in kept] + [other / total, n_missing / total]
    return SignalProfile("categorical", tuple(props), n, categories=tuple(k for k, _ in kept))


@dataclass(slots=True)
class MonitorProfile:
    """The reference of one (model, stage): a profile per signal and where it came from."""

    signals: dict[str, SignalProfile]
    source: str
    size: int
    model: str | None = None
    stage: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "driftstream-profile/1",
            "model": self.model,
            "stage": self.stage,
            "source": self.source,
            "size": self.size,
            "signals": {k: v.to_json() for k, v in sorted(self.signals.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorProfile:
        if data.get("format") != "driftstream-profile/1":
            raise ValueError(f"not a driftstream profile (format={data.get('format')!r})")
        return cls(
            signals={k: SignalProfile.from_json(v) for k, v in data["signals"].items()},
            source=str(data["source"]),
            size=int(data["size"]),
            model=data.get("model"),
            stage=data.get("stage"),
        )
