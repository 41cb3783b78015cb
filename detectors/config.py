"""Engine configuration: which signals and detectors each (model, stage) gets, validated up front.

Defaults are chosen for a false-alarm budget, not copied from river: on stationary data the
default monitor raises at most one false alert per signal per million events (see
``tests/test_statistical.py``). Page-Hinkley's ``delta`` and ``threshold`` are given in units
of the signal's reference standard deviation, so one default fits cents and millions alike.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ConfigError",
    "ADWINSettings",
    "PageHinkleySettings",
    "PSISettings",
    "MonitorSettings",
    "LabelSettings",
    "VariantRule",
    "EngineConfig",
    "load_yaml",
    "format_validation_error",
]


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ADWINSettings(_Strict):
    enabled: bool = True
    delta: float = Field(1e-5, gt=0, lt=1, description="Significance; smaller = fewer false alarms.")
    clock: int = Field(32, ge=1)
    max_buckets: int = Field(5, ge=2)
    min_window_length: int = Field(5, ge=1)
    grace_period: int = Field(10, ge=0)


class PageHinkleySettings(_Strict):
    enabled: bool = True
    min_instances: int = Field(30, ge=1)
    delta_sd: float = Field(0.25, ge=0, description="Tolerated drift per value, in reference std units.")
    threshold_sd: float = Field(50.0, gt=0, description="Detection threshold, in reference std units.")
    # river's 1 - 1e-4 turns the sum into a stationary AR(1) process with std ~71 sigma whose
    # distance to its all-time minimum crosses any threshold near 50 sigma: false alarms
    # every ~20k values. Without fading the test is the classic CUSUM.
    alpha: float = Field(1.0, gt=0, le=1, description="Fading factor of the sums; 1 = none.")


class PSISettings(_Strict):
    enabled: bool = True
    bins: int = Field(10, ge=2, le=100)
    window: int = Field(1000, ge=10, description="Tumbling window, in values.")
    warning: float = Field(0.1, gt=0)
    critical: float = Field(0.25, gt=0)
    epsilon: float = Field(1e-4, gt=0, lt=0.01)
    resolve_windows: int = Field(3, ge=1, description="Consecutive windows below warning that resolve an alert.")
    max_categories: int = Field(50, ge=1)


class DetectorSettings(_Strict):
    adwin: ADWINSettings = ADWINSettings()
    page_hinkley: PageHinkleySettings = PageHinkleySettings()
    psi: PSISettings = PSISettings()


class SignalSettings(_Strict):
    features: list[str] | None = Field(None, description="Feature names to monitor; null = all discovered.")
    exclude: list[str] = []
    missing: bool = True
    prediction: bool = True
    latency: bool = True


class AlertSettings(_Strict):
    cooldown_s: float = Field(300.0, ge=0, description="Min event time between two firings of one signal+detector.")
    resolve_after_s: float = Field(300.0, ge=0, description="ADWIN/Page-Hinkley: quiet event time that resolves.")
    critical_shift_sd: float = Field(1.0, gt=0, description="ADWIN mean shift (reference std units) that is critical.")


class LabelSettings(_Strict):
    """Joining labels to predictions by request_id (see ``detectors.join``)."""

    join: Literal["auto", "always", "off"] = Field(
        "auto", description="auto: keep predictions once the monitor has seen a label; always: from the start."
    )
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classes (strings, booleans) give the error rate, numbers the absolute error."
    )
    ttl_s: float = Field(86_400.0, gt=0, description="Event time a prediction waits for its label.")
    wait_s: float = Field(
        5.0, ge=0, description="A label waits until the predictions' event time passes its own by this much."
    )
    max_pending: int = Field(
        50_000, ge=1, le=200_000,
        description="Predictions waiting for a label, per stage; the oldest go.",
    )  # fmt: skip
    max_waiting: int = Field(10_000, ge=1, description="Labels waiting for their prediction, per monitor.")
    warmup_pairs: int = Field(1000, ge=100, description="Joined pairs per signal that form the reference.")


class MonitorSettings(_Strict):
    warmup_events: int = Field(10_000, ge=100, description="Events per signal that form the reference.")
    reference: str | None = Field(None, description="Profile JSON from `driftstream reference build`.")
    signals: SignalSettings = SignalSettings()
    detectors: DetectorSettings = DetectorSettings()
    missing_adwin: ADWINSettings = ADWINSettings()
    latency_page_hinkley: PageHinkleySettings = PageHinkleySettings()
    alerts: AlertSettings = AlertSettings()
    labels: LabelSettings = LabelSettings()


class MonitorRule(MonitorSettings):
    """Overrides for the (model, stage, variant) that match its glob patterns."""

    model: str = "*"
    stage: str = "*"
    variant: str = "*"


class VariantRule(_Strict):
    """Compare candidate variants of the matching (model, stage) with its baseline variant."""

    model: str = "*"
    stage: str = "*"
    baseline: str = Field("primary", min_length=1)
    candidates: list[str] = Field(["*"], description="Variant globs compared with the baseline; * = every other.")
    signals: list[str] | None = Field(None, description="Signal names; null = prediction, latency_ms, every feature.")
    window_s: float = Field(60.0, gt=0, description="Tumbling event-time window both variants are compared over.")
    lateness_windows: int = Field(1, ge=0, description="Windows an event may lag the newest one and still count.")
    min_events: int = Field(500, ge=10, description="Per variant and window; fewer: that window is not compared.")
    warning: float = Field(0.1, gt=0, description="PSI between the two variants' distributions in one window.")
    critical: float = Field(0.25, gt=0)
    alpha: float = Field(1e-6, gt=0, lt=1, description="Also required: chi-square test of equal distributions.")
    resolve_windows: int = Field(3, ge=1)
    cooldown_s: float = Field(300.0, ge=0)
    epsilon: float = Field(1e-4, gt=0, lt=0.01)
    pairing: bool = Field(False, description="Shadow mode: both variants score the same request_id; pair them.")
    agreement_tolerance: float = Field(0.0, ge=0, description="Numeric predictions within this agree.")
    agreement_warning: float = Field(0.95, gt=0, le=1, description="Window agreement rate below this: warning.")
    agreement_critical: float = Field(0.8, gt=0, le=1, description="Below this: critical.")
    min_pairs: int = Field(200, ge=1, description="Pairs per window; fewer: its agreement is not judged.")
    max_pending: int = Field(100_000, ge=1, description="Predictions waiting for their pair, at most.")
    error_warning: float = Field(
        0.05, gt=0, le=1, description="Candidate's error rate above the baseline's by this much in a window: warning."
    )
    error_critical: float = Field(0.15, gt=0, le=1, description="By this much: critical.")
    error_alpha: float = Field(1e-3, gt=0, lt=1, description="Also required: chi-square test of equal error rates.")
    min_outcomes: int = Field(200, ge=10, description="Joined pairs per variant and window; fewer: not judged.")

    def compares(self, model: str, stage: str, variant: str) -> bool:
        return (
            variant != self.baseline
            and fnmatch.fnmatchcase(model, self.model)
            and fnmatch.fnmatchcase(stage, self.stage)
            and any(fnmatch.fnmatchcase(variant, c) for c in self.candidates)
        )


class LimitSettings(_Strict):
    max_series: int = Field(100_000, ge=1, description="Cap on tracked (key, signal) pairs.")
    metrics_interval_s: float = Field(10.0, gt=0, description="Event time between window summaries.")


class EngineConfig(_Strict):
    defaults: MonitorSettings = MonitorSettings()
    monitors: list[dict[str, Any]] = []
    variants: list[VariantRule] = []
    pipelines: list[list[str]] = Field([], description="Stage orders, each stage 'model/stage', upstream first.")
    related_within_s: float = Field(600.0, ge=0, description="Event time an upstream alert stays related.")
    label_targets: list[str] = Field([], description="'model/stage' stages a label without model and stage is for.")
    limits: LimitSettings = LimitSettings()

    @field_validator("pipelines")
    @classmethod
    def _stages(cls, value: list[list[str]]) -> list[list[str]]:
        for p in value:
            if len(p) < 2:
                raise ValueError(f"a pipeline needs two stages or more, got {p}")
            for s in p:
                _split_stage(s)
        return value

    @field_validator("label_targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for s in value:
            _split_stage(s)
        return value

    @cached_property
    def label_homes(self) -> tuple[tuple[str, str], ...]:
        """(model, stage) of each ``label_targets`` entry."""
        return tuple(_split_stage(s) for s in self.label_targets)

    @cached_property
    def upstream(self) -> dict[tuple[str, str], frozenset[tuple[str, str]]]:
        """(model, stage) -> every stage before it in any pipeline."""
        out: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for p in self.pipelines:
            stages = [tuple(s.split("/", 1)) for s in p]
            for i, s in enumerate(stages[1:], 1):
                out.setdefault(s, set()).update(stages[:i])  # type: ignore[arg-type]
        return {k: frozenset(v) for k, v in out.items()}

    @cached_property
    def pipeline_anchor(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(model, stage) -> the first stage of its pipeline: all stages of one pipeline share its
        home partition, so a downstream alert can see its upstream stages' alerts."""
        out: dict[tuple[str, str], tuple[str, str]] = {}
        for p in self.pipelines:
            first = tuple(p[0].split("/", 1))
            for s in p:
                out.setdefault(tuple(s.split("/", 1)), out.get(first, first))  # type: ignore[arg-type]
        return out

    def variant_rule(self, model: str, stage: str, variant: str) -> VariantRule | None:
        """The last ``variants`` rule that compares this variant with a baseline, if any."""
        for rule in reversed(self.variants):
            if rule.compares(model, stage, variant):
                return rule
        return None

    @cached_property
    def rules(self) -> list[MonitorRule]:
        """Each ``monitors`` entry merged over the defaults and validated."""
        rules = []
        for i, raw in enumerate(self.monitors):
            merged = _deep_merge(self.defaults.model_dump(), raw)
            try:
                rules.append(MonitorRule.model_validate(merged))
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, prefix=f"monitors[{i}]")) from None
        return rules

    def settings_for(self, model: str, stage: str, variant: str) -> MonitorSettings:
        """The last matching rule wins; no rule: the defaults."""
        for rule in reversed(self.rules):
            if (
                fnmatch.fnmatchcase(model, rule.model)
                and fnmatch.fnmatchcase(stage, rule.stage)
                and fnmatch.fnmatchcase(variant, rule.variant)
            ):
                return rule
        return self.defaults

    def label_settings(self, model: str, stage: str) -> LabelSettings:
        """Labels join per (model, stage), whatever the variant: the rules are matched as for the
        ``primary`` variant."""
        return self.settings_for(model, stage, "primary").labels

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> EngineConfig:
        try:
            config = cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None
        _ = config.rules  # validate the per-monitor rules now, not on the first event
        return config


def _split_stage(s: str) -> tuple[str, str]:
    model, sep, stage = s.partition("/")
    if not (sep and model and stage):
        raise ValueError(f"stage {s!r} is not 'model/stage'")
    return model, stage


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def format_validation_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted key, what is wrong, and what is allowed.

    ``model`` is the class that was validated; without it the allowed keys are looked up among
    the engine's own models by the error's title.
    """
    root = model if model is not None else _ENGINE_MODELS.get(exc.title)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            allowed = _allowed_keys(root, err["loc"])
            if allowed:
                msg += f" (allowed: {', '.join(allowed)})"
        lines.append(f"config key {key!r}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _allowed_keys(root: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        ann = field.annotation if field else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


_ENGINE_MODELS: dict[str, type[BaseModel]] = {
    "EngineConfig": EngineConfig,
    "MonitorRule": MonitorRule,
    "VariantRule": VariantRule,
}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors say which file and why."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level, not {type(data).__name__}")
    return data
