"""Prediction streams with delayed labels, for the join and concept-drift tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas import LabelEvent, PredictionEvent

T0 = 1_700_000_000_000


@dataclass
class Labelled:
    """Arrival order of predictions and labels, and where the concept changed."""

    items: list[PredictionEvent | LabelEvent]
    drift_at: int  # prediction index from which labels follow the new concept

    def batches(self, size: int) -> list[tuple[list[PredictionEvent], list[LabelEvent]]]:
        out = []
        for b in range(0, len(self.items), size):
            chunk = self.items[b : b + size]
            out.append(
                ([e for e in chunk if isinstance(e, PredictionEvent)], [e for e in chunk if isinstance(e, LabelEvent)])
            )
        return out


def concept_stream(
    n: int,
    *,
    drift_at: int,
    share: float = 0.3,
    delay: int = 200,
    early: float = 0.02,
    regression: bool = False,
    named: bool = True,
    seed: int = 0,
    ms: int = 10,
    model: str = "fraud",
    stage: str = "score",
    variant: str = "primary",
) -> Labelled:
    """One (model, stage): inputs and predictions keep their distribution throughout; from
    ``drift_at`` the labels follow another relation (classes: another decision rule with the
    same prior; numbers: an offset). A ``share`` of predictions get a label ``delay`` events
    later (up to twice that, at random); an ``early`` share of those arrive before their
    prediction (the labels topic ahead of a lagging predictions topic)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    noise = rng.random(n) < 0.05
    gets = rng.random(n) < share
    lag = rng.integers(delay, 2 * delay + 1, size=n)
    ahead = rng.random(n) < early
    items: list[tuple[float, int, PredictionEvent | LabelEvent]] = []
    for i in range(n):
        ts = T0 + i * ms
        rid = f"{model}-{i}"
        feats = {"x0": float(x[i, 0]), "x1": float(x[i, 1]), "x2": float(x[i, 2])}
        if regression:
            pred: float | str = float(2 * x[i, 0] + x[i, 1])
            label: float | str = pred + float(x[i, 2]) * 0.5 + (1.5 if i >= drift_at else 0.0)
        else:
            pred = "fraud" if x[i, 0] + x[i, 1] > 1.5 else "ok"
            rule = x[i, 0] - x[i, 1] if i >= drift_at else x[i, 0] + x[i, 1]
            label = "fraud" if (rule > 1.5) != bool(noise[i]) else "ok"
        ev = PredictionEvent(model, stage, feats, ts, variant=variant, prediction=pred, request_id=rid)
        items.append((i, 0, ev))
        if gets[i]:
            at = i - 3 if ahead[i] else i + int(lag[i])
            lab = LabelEvent(rid, label, T0 + max(at, i) * ms, model if named else None, stage if named else None)
            items.append((at + 0.5, 1, lab))
    items.sort(key=lambda t: (t[0], t[1]))
    return Labelled([e for _, _, e in items], drift_at)
