"""What a generated load looks like: keys, the features of each stage, pipelines, injected drifts.

A scenario is data (YAML or a named preset), so a load test can be reproduced from its file and
seed alone. Positions are counted per key: position ``p`` of key ``k`` is the ``p``-th event of
``k``, which is also the position in that key's monitor stream (what alerts report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.config import ConfigError, format_validation_error

__all__ = [
    "DRIFT_KINDS",
    "VARIANT_KINDS",
    "TEMPLATES",
    "Drift",
    "KeySpec",
    "Scenario",
    "preset",
    "PRESETS",
    "parse_drift",
]

DriftKind = Literal[
    "sudden", "gradual", "incremental", "recurring", "missing-spike", "latency-regression",
    "categorical-shift", "prediction-shift", "canary-regression", "shadow-disagreement", "concept", "none",
]  # fmt: skip
VARIANT_KINDS = ("canary-regression", "shadow-disagreement")  # need a canary share / a shadow on the key
DRIFT_KINDS: tuple[str, ...] = DriftKind.__args__  # type: ignore[attr-defined]

# Stage templates: name -> (numeric features {name: (distribution, a, b)}, categorical {name: {value: p}},
# prediction weights over numeric features, prediction kind, latency gamma (shape, scale)).
TEMPLATES: dict[str, dict[str, Any]] = {
    "vad": {
        "numeric": {"snr_db": ("normal", 20.0, 4.0), "energy_db": ("normal", -30.0, 6.0),
                    "duration_s": ("gamma", 2.0, 1.5)},
        "categorical": {"lang": {"en": 0.6, "de": 0.25, "fr": 0.15}},
        "weights": {"snr_db": 0.35, "energy_db": 0.1},
        "prediction": "score", "latency": (4.0, 2.5),
    },
    "asr": {
        "numeric": {"speaker_rate": ("normal", 3.0, 0.5), "duration_s": ("gamma", 2.0, 1.5)},
        "categorical": {"lang": {"en": 0.6, "de": 0.25, "fr": 0.15}},
        "upstream": "vad_prob",
        "weights": {"speaker_rate": -0.8, "vad_prob": 3.0},
        "prediction": "score", "latency": (4.0, 25.0),
    },
    "profile": {
        "numeric": {"age": ("normal", 38.0, 12.0), "sessions_7d": ("poisson", 5.0, 0.0),
                    "tenure_days": ("gamma", 2.0, 200.0)},
        "categorical": {"country": {"us": 0.4, "de": 0.2, "in": 0.2, "br": 0.1, "jp": 0.1},
                        "device": {"ios": 0.45, "android": 0.45, "web": 0.1}},
        "weights": {"age": 0.08, "sessions_7d": 0.4},
        "prediction": "class", "latency": (3.0, 4.0),
    },
    "recommender": {
        "numeric": {"basket_value": ("lognormal", 3.5, 0.6), "items_viewed": ("poisson", 8.0, 0.0)},
        "categorical": {"device": {"ios": 0.45, "android": 0.45, "web": 0.1}},
        "upstream": "segment",
        "weights": {"basket_value": 0.02, "items_viewed": 0.15},
        "prediction": "score", "latency": (4.0, 10.0),
    },
    "serve": {
        "numeric": {f"f{j}": ("normal", 10.0 * j, 1.0 + j) for j in range(8)},
        "categorical": {"channel": {"web": 0.5, "app": 0.4, "partner": 0.1}},
        "weights": {"f0": 0.5, "f1": -0.3},
        "prediction": "score", "latency": (4.0, 5.0),
    },
}  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Strict):
    model: str = Field(min_length=1)
    stage: str = Field(min_length=1)
    template: str = Field(description="One of TEMPLATES; its features, prediction and latency.")
    variant: str = "primary"
    canary_share: float = Field(0.0, ge=0, lt=1, description="Share of requests the 'canary' variant serves.")
    shadow: bool = Field(False, description="A 'shadow' variant also scores every request (same request_id).")
    label_share: float = Field(0.0, ge=0, le=1, description="Share of requests whose label arrives later.")
    label_delay_s: float = Field(30.0, ge=0, description="Label delay after the prediction: fixed, or the mean.")
    label_delay_dist: Literal["fixed", "uniform", "exponential"] = Field(
        "exponential", description="uniform: 0..2x the delay; exponential: that mean (capped at 5x)."
    )

    @property
    def key(self) -> str:
        return f"{self.model}/{self.stage}"

    @model_validator(mode="after")
    def _known_template(self) -> KeySpec:
        if self.template not in TEMPLATES:
            raise ValueError(f"template {self.template!r} unknown (allowed: {', '.join(TEMPLATES)})")
        return self


class Drift(_Strict):
    kind: DriftKind
    key: str = Field(description="model/stage")
    signal: str = Field("", description="feature:NAME, missing:NAME, prediction, latency_ms (by kind)")
    start: float = Field(description="Position in the key's stream; < 1 = fraction of its events.")
    end: float | None = Field(None, description="Where it is over; null = lasts to the end.")
    magnitude: float | None = Field(None, description="Shift in std units, missing rate, mass moved, slowdown.")
    period: int = Field(3000, ge=100, description="recurring: events per on/off phase.")


class Scenario(_Strict):
    name: str = "custom"
    seed: int = 7
    events: int = Field(200_000, ge=100, description="Events over all keys.")
    rate: float = Field(10_000.0, gt=0, description="Event-time spacing: events per second.")
    start_ts: int = Field(1_767_225_600_000, ge=0, description="Event time of the first event (epoch ms).")
    missing_rate: float = Field(0.005, ge=0, lt=1, description="Base share of null numeric features.")
    keys: list[KeySpec]
    pipelines: list[list[str]] = Field([], description="Stage orders, e.g. [speech/vad, speech/asr].")
    drifts: list[Drift] = []

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [k.key for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("keys must be unique (model/stage)")
        for p in self.pipelines:
            for k in p:
                if k not in names:
                    raise ValueError(f"pipeline stage {k!r} is not among the keys")
        specs = {k.key: k for k in self.keys}
        for d in self.drifts:
            if d.key not in names:
                raise ValueError(f"drift key {d.key!r} is not among the keys")
            if d.kind == "canary-regression" and not specs[d.key].canary_share:
                raise ValueError(f"canary-regression on {d.key!r} needs canary_share > 0 on that key")
            if d.kind == "shadow-disagreement" and not specs[d.key].shadow:
                raise ValueError(f"shadow-disagreement on {d.key!r} needs shadow: true on that key")
            if d.kind == "concept" and not specs[d.key].label_share:
                raise ValueError(f"concept on {d.key!r} needs label_share > 0 on that key (labels reveal it)")
        return self

    def tagged(self, tag: str) -> Scenario:
        """The same scenario with every model renamed ``MODEL-TAG``: fresh monitors in a processor
        that has already seen these keys (alert positions count from a monitor's first event)."""

        def rename(key: str) -> str:
            model, _, stage = key.partition("/")
            return f"{model}-{tag}/{stage}"

        doc = self.model_dump()
        doc["keys"] = [{**k, "model": f"{k['model']}-{tag}"} for k in doc["keys"]]
        doc["pipelines"] = [[rename(k) for k in p] for p in doc["pipelines"]]
        doc["drifts"] = [{**d, "key": rename(d["key"])} for d in doc["drifts"]]
        return Scenario.from_mapping(doc)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Scenario:
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, model=cls)) from None


def _pipelines_keys() -> list[dict[str, str]]:
    return [
        {"model": "speech", "stage": "vad", "template": "vad"},
        {"model": "speech", "stage": "asr", "template": "asr"},
        {"model": "shop", "stage": "profile", "template": "profile"},
        {"model": "shop", "stage": "recommender", "template": "recommender"},
        {"model": "fraud", "stage": "score", "template": "serve"},
        {"model": "churn", "stage": "score", "template": "serve"},
    ]


PRESETS: dict[str, dict[str, Any]] = {
    # the demo: two pipelines and two single-stage models, drifts of different kinds; churn/score gets
    # its labels a few seconds late, and the relation behind them changes (seen from the labels alone)
    "demo": {
        "name": "demo", "events": 150_000, "rate": 5_000.0,
        "keys": [*_pipelines_keys()[:5], {"model": "churn", "stage": "score", "template": "serve", "label_share": 0.5,
                                          "label_delay_s": 2.0, "label_delay_dist": "uniform"}],
        "pipelines": [["speech/vad", "speech/asr"], ["shop/profile", "shop/recommender"]],
        "drifts": [
            {"kind": "sudden", "key": "speech/vad", "signal": "feature:snr_db", "start": 0.5, "magnitude": -2.0},
            {"kind": "categorical-shift", "key": "shop/profile", "signal": "feature:country", "start": 0.55,
             "magnitude": 0.5},
            {"kind": "latency-regression", "key": "fraud/score", "start": 0.6, "magnitude": 1.0},
            {"kind": "concept", "key": "churn/score", "start": 0.6, "magnitude": 1.0},
        ],
    },
    # every drift kind once, on the same six keys
    "all-kinds": {
        "name": "all-kinds", "events": 600_000, "rate": 50_000.0, "keys": _pipelines_keys(),
        "pipelines": [["speech/vad", "speech/asr"], ["shop/profile", "shop/recommender"]],
        "drifts": [
            {"kind": "sudden", "key": "speech/vad", "signal": "feature:snr_db", "start": 0.3, "magnitude": -2.0},
            {"kind": "gradual", "key": "speech/asr", "signal": "feature:speaker_rate", "start": 0.3, "end": 0.5,
             "magnitude": 2.0},
            {"kind": "incremental", "key": "shop/recommender", "signal": "feature:basket_value", "start": 0.3,
             "end": 0.6, "magnitude": 2.0},
            {"kind": "recurring", "key": "fraud/score", "signal": "feature:f2", "start": 0.3, "end": 0.9,
             "magnitude": 2.0, "period": 15_000},
            {"kind": "missing-spike", "key": "churn/score", "signal": "missing:f3", "start": 0.4, "end": 0.6,
             "magnitude": 0.3},
            {"kind": "latency-regression", "key": "churn/score", "start": 0.7, "magnitude": 1.0},
            {"kind": "categorical-shift", "key": "shop/profile", "signal": "feature:device", "start": 0.5,
             "magnitude": 0.5},
            {"kind": "prediction-shift", "key": "fraud/score", "start": 0.2, "end": 0.28, "magnitude": 2.0},
        ],
    },
    # deployment patterns: a canary whose predictions regress, a shadow that disagrees request by request
    # (run the processor with a `variants` rule: canary compared, shadow with pairing)
    "variants": {
        "name": "variants", "events": 400_000, "rate": 20_000.0,
        "keys": [{"model": "fraud", "stage": "score", "template": "serve", "canary_share": 0.1},
                 {"model": "shop", "stage": "profile", "template": "profile", "shadow": True},
                 {"model": "churn", "stage": "score", "template": "serve", "canary_share": 0.1}],
        "drifts": [
            {"kind": "canary-regression", "key": "fraud/score", "start": 0.5, "magnitude": 2.0},
            {"kind": "shadow-disagreement", "key": "shop/profile", "start": 0.6, "magnitude": 0.3},
        ],
    },
    # concept drift, seen only through delayed labels (run the processor with the labels topic): the
    # relation from inputs to the right answer reverses on fraud/score (scores: absolute error) and
    # shop/profile (classes: error rate); on speech/vad it changes too, which speech/asr (fed by vad's
    # prediction, labelled as well) inherits: the downstream error rises with inputs unchanged
    "concept": {
        "name": "concept", "events": 400_000, "rate": 2_000.0,
        "keys": [{"model": "fraud", "stage": "score", "template": "serve", "label_share": 0.3, "label_delay_s": 10},
                 {"model": "shop", "stage": "profile", "template": "profile", "label_share": 0.3,
                  "label_delay_s": 10, "label_delay_dist": "uniform"},
                 {"model": "speech", "stage": "vad", "template": "vad", "label_share": 0.1, "label_delay_s": 5},
                 {"model": "speech", "stage": "asr", "template": "asr", "label_share": 0.3, "label_delay_s": 10}],
        "pipelines": [["speech/vad", "speech/asr"]],
        "drifts": [
            {"kind": "concept", "key": "fraud/score", "start": 0.5, "magnitude": 1.0},
            {"kind": "concept", "key": "shop/profile", "start": 0.6, "magnitude": 1.0},
            {"kind": "concept", "key": "speech/vad", "start": 0.4, "magnitude": 1.0},
        ],
    },
    # no drift at all: every alert is a false alarm
    "none": {"name": "none", "events": 600_000, "rate": 50_000.0, "keys": _pipelines_keys(),
             "pipelines": [["speech/vad", "speech/asr"], ["shop/profile", "shop/recommender"]]},
}  # fmt: skip


def preset(name: str) -> Scenario:
    if name not in PRESETS:
        raise ConfigError(f"unknown scenario {name!r} (presets: {', '.join(PRESETS)}; or a YAML file)")
    return Scenario.from_mapping(PRESETS[name])


def parse_drift(text: str) -> Drift:
    """``KIND:MODEL/STAGE[:SIGNAL]@START[-END][xMAGNITUDE]``, e.g. ``sudden:fraud/score:feature:f0@0.5x2``."""
    try:
        head, _, where = text.partition("@")
        kind, _, rest = head.partition(":")
        key, _, signal = rest.partition(":")
        mag = None
        if "x" in where:
            where, _, m = where.partition("x")
            mag = float(m)
        start, _, end = where.partition("-")
        return Drift(kind=kind, key=key, signal=signal, start=float(start),
                     end=float(end) if end else None, magnitude=mag)  # fmt: skip
    except (ValueError, ValidationError) as exc:
        raise ConfigError(
            f"bad --drift {text!r}: {exc}; expected KIND:MODEL/STAGE[:SIGNAL]@START[-END][xMAG]"
        ) from None
