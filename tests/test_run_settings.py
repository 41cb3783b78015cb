"""``driftstream run`` settings: defaults without a file, environment secrets, redaction, key errors."""

from __future__ import annotations

import pytest

from streams.settings import ConfigError, RunConfig, redacted


def test_no_file_gives_working_defaults() -> None:
    cfg = RunConfig.from_mapping({}, environ={})
    assert cfg.kafka.bootstrap == "127.0.0.1:9092"
    assert cfg.topics.input == ["predictions"] and cfg.topics.state == "driftstream-state"
    assert cfg.processor.group == "driftstream" and cfg.processor.guarantee == "auto"
    assert cfg.engine.defaults.warmup_events == 10_000


def test_environment_supplies_librdkafka_settings_and_wins_over_the_file() -> None:
    env = {"DRIFTSTREAM_KAFKA_SASL_PASSWORD": "s3cret", "DRIFTSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "OTHER": "x"}  # fmt: skip
    cfg = RunConfig.from_mapping({"kafka": {"client": {"sasl.username": "u", "sasl.password": "old"}}}, environ=env)
    assert cfg.kafka.client == {"sasl.username": "u", "sasl.password": "s3cret", "security.protocol": "SASL_SSL"}
    shown = redacted(cfg.kafka.client)
    assert shown["sasl.password"] == "***" and shown["sasl.username"] == "u"
    assert "s3cret" not in repr(redacted({"ssl.key.password": "s3cret", "sasl.oauthbearer.client.secret": "s3cret"}))


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"procesor": {}}, "'procesor': unknown key"),
        ({"processor": {"guarantee": "twice"}}, "processor.guarantee"),
        ({"topics": {"input": []}}, "topics.input"),
        ({"kafka": {"consumer": {"group.id": "g"}}}, "group.id is set by driftstream"),
        ({"defaults": {"detectors": {"adwin": {"delt": 1}}}}, "defaults.detectors.adwin.delt"),
        ({"http": {"port": 70000}}, "http.port"),
    ],
)
def test_bad_keys_are_named(data: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        RunConfig.from_mapping(data, environ={})
    assert names in str(err.value)


def test_command_line_overrides() -> None:
    cfg = RunConfig.from_mapping({}, environ={}).with_overrides(bootstrap="k:9093", max_wait_s=5)
    assert cfg.kafka.bootstrap == "k:9093" and cfg.processor.connect_max_wait_s == 5
