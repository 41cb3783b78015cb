"""Ground truth for generated predictions: the right answers, and when their labels arrive.

The truth follows the same relation the model learned (its weighted features, through a logistic
link, with noise of its own) except where a ``concept`` drift is in force: there the relation
reverses by the drift's magnitude, while inputs and predictions stay as they were. In a pipeline
the downstream truth depends on what the upstream stage should have said (its truth), not on
what it predicted: an upstream concept drift raises the downstream error too.

Labels draw from a random stream of their own, so adding labels to a scenario leaves its
predictions exactly as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .scenario import KeySpec

__all__ = ["DELAY_CAP", "delays", "outcome_signal", "truth"]

DELAY_CAP = 5.0  # exponential delays are capped at this many means


def outcome_signal(template: dict[str, Any]) -> str:
    """The signal the processor derives from this template's joined pairs."""
    return "error" if template["prediction"] == "class" else "abs_error"


def delays(spec: KeySpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Label delay per request, in milliseconds."""
    mean = spec.label_delay_s * 1000
    if spec.label_delay_dist == "fixed":
        return np.full(n, int(mean), np.int64)
    if spec.label_delay_dist == "uniform":
        return (rng.random(n) * 2 * mean).astype(np.int64)
    return np.minimum(rng.exponential(mean, n), DELAY_CAP * mean).astype(np.int64)


def truth(template: dict[str, Any], base: np.ndarray, concept: np.ndarray, rng: np.random.Generator) -> tuple[
    np.ndarray, np.ndarray
]:  # fmt: skip
    """(labels, true score). ``base`` is the learned relation's logit without the model's noise;
    ``concept`` (0..1 per position) how far it has reversed."""
    logit = base * (1.0 - 2.0 * concept) + rng.normal(0.0, 0.5, base.shape[0])
    score = 1.0 / (1.0 + np.exp(-logit))
    if template["prediction"] == "class":
        classes = np.array(["A", "B", "C"], dtype=object)
        labels: np.ndarray = classes[np.digitize(score, [0.35, 0.65])]
    else:
        labels = (rng.random(base.shape[0]) < score).astype(np.int64)
    return labels, score
