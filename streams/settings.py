"""``driftstream run`` configuration: Kafka, topics, processing, HTTP, logging, plus the engine.

One YAML file holds everything; each section is optional and every key has a default, so
the processor runs with no file at all. Unknown keys are errors that name the key. librdkafka
settings (security included) go under ``kafka.client`` or come from the environment as
``DRIFTSTREAM_KAFKA_<NAME>`` (``DRIFTSTREAM_KAFKA_SASL_PASSWORD`` → ``sasl.password``), so
secrets need not sit in the file. :func:`redacted` is what logs and metrics may show.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detectors.config import ConfigError, EngineConfig, format_validation_error

__all__ = ["RunConfig", "ConfigError", "redacted", "DEFAULT_BOOTSTRAP", "ENV_PREFIX"]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"  # where `driftstream broker` listens
ENV_PREFIX = "DRIFTSTREAM_KAFKA_"
_SECRET_WORDS = ("password", "secret", "sasl.jaas", "ssl.key.pem", "token")

ClientValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Strict):
    bootstrap: str = Field(DEFAULT_BOOTSTRAP, min_length=1)
    client: dict[str, ClientValue] = Field({}, description="librdkafka settings for every client (security here).")
    consumer: dict[str, ClientValue] = Field({}, description="librdkafka settings for the consumer only.")
    producer: dict[str, ClientValue] = Field({}, description="librdkafka settings for the producer only.")

    @field_validator("client", "consumer", "producer")
    @classmethod
    def _no_managed_keys(cls, v: dict[str, ClientValue]) -> dict[str, ClientValue]:
        managed = {"bootstrap.servers", "group.id", "enable.auto.commit", "transactional.id", "isolation.level"}
        bad = sorted(managed & set(v))
        if bad:
            raise ValueError(f"{', '.join(bad)} is set by driftstream (use kafka.bootstrap / processor.*)")
        return v


class TopicSettings(_Strict):
    input: list[str] = Field(["predictions"], min_length=1)
    alerts: str = "drift-alerts"
    metrics: str = "drift-metrics"
    deadletter: str = "drift-deadletter"
    state: str = "driftstream-state"
    repartition: str = "driftstream-repartition"
    labels: str | None = Field("labels", description="Label events (joined to predictions by request_id); null = none.")
    partitions: int = Field(6, ge=1, description="For topics created at start when no input topic exists yet.")
    replication_factor: int = Field(1, ge=1)
    create: bool = Field(True, description="Create missing topics at start.")


class ProcessorSettings(_Strict):
    group: str = Field("driftstream", min_length=1)
    guarantee: Literal["auto", "exactly_once", "at_least_once"] = Field(
        "auto", description="auto: exactly_once, except at_least_once on the embedded broker."
    )
    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    poll_timeout_s: float = Field(0.2, gt=0, le=10)
    checkpoint_interval_s: float = Field(2.0, gt=0, description="Seconds between checkpoints (transactions).")
    checkpoint_messages: int = Field(200_000, ge=1, description="Messages between checkpoints, whichever first.")
    transaction_timeout_s: float = Field(30.0, ge=1, description="exactly_once: broker aborts a dead process's.")
    max_event_bytes: int = Field(1_048_576, ge=256)
    connect_max_wait_s: float | None = Field(None, gt=0, description="Give up if no broker answers; null = forever.")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    malloc_keep_mb: int = Field(
        256, ge=0, le=2047,
        description="Freed memory kept for reuse (glibc): fresh pages are dear; 0 = the allocator's defaults.",
    )  # fmt: skip


class HttpSettings(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535, description="0 = any free port (logged at start).")


class LoggingSettings(_Strict):
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    progress_interval_s: float = Field(10.0, gt=0)


class FaustSettings(_Strict):
    """``driftstream faust-worker`` only; ``http`` is Faust's web server there.

    No transport choice: Faust's ``confluent://`` driver never finished table recovery here,
    neither on the embedded broker nor on Apache Kafka 4.1; the aiokafka driver is used."""

    take_max: int = Field(10_000, ge=1, le=1_000_000, description="Events per batch fed to the monitors.")
    take_within_s: float = Field(0.25, gt=0, le=10, description="A partial batch is fed after this long.")
    data_dir: str | None = Field(None, description="Faust's data directory (default: a temporary directory).")


class RunConfig(_Strict):
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    processor: ProcessorSettings = ProcessorSettings()
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    faust: FaustSettings = FaustSettings()
    # the engine's own sections (see detectors.config.EngineConfig)
    defaults: dict[str, Any] = {}
    monitors: list[dict[str, Any]] = []
    variants: list[dict[str, Any]] = []
    pipelines: list[list[str]] = []
    related_within_s: float = 600.0
    label_targets: list[str] = []
    limits: dict[str, Any] = {}

    @property
    def engine(self) -> EngineConfig:
        return EngineConfig.from_mapping({name: getattr(self, name) for name in EngineConfig.model_fields})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> RunConfig:
        """Validate ``data`` with ``DRIFTSTREAM_KAFKA_*`` from ``environ`` merged into ``kafka.client``."""
        data = dict(data)
        env_client = client_settings_from_env(os.environ if environ is None else environ)
        if env_client:
            kafka = dict(data.get("kafka") or {})
            kafka["client"] = {**dict(kafka.get("client") or {}), **env_client}
            data["kafka"] = kafka
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, model=cls)) from None
        _ = config.engine  # engine sections are checked now, with their own key names
        return config

    def with_overrides(self, *, bootstrap: str | None = None, max_wait_s: float | None = None) -> RunConfig:
        """Command-line flags win over the file."""
        cfg = self
        if bootstrap:
            cfg = cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={"bootstrap": bootstrap})})
        if max_wait_s is not None:
            proc = cfg.processor.model_copy(update={"connect_max_wait_s": max_wait_s})
            cfg = cfg.model_copy(update={"processor": proc})
        return cfg


def client_settings_from_env(environ: Mapping[str, str]) -> dict[str, ClientValue]:
    """``DRIFTSTREAM_KAFKA_SASL_USERNAME=x`` → ``{"sasl.username": "x"}``."""
    return {k[len(ENV_PREFIX) :].lower().replace("_", "."): v for k, v in environ.items() if k.startswith(ENV_PREFIX)}


def is_secret(name: str) -> bool:
    return any(w in name.lower() for w in _SECRET_WORDS)


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log: secret-looking values become ``***``."""
    return {k: ("***" if is_secret(k) else v) for k, v in settings.items()}
