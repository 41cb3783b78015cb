"""A bad config names the bad key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import ConfigError, EngineConfig, load_yaml


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"defaults": {"detectors": {"adwin": {"delt": 0.1}}}}, "'defaults.detectors.adwin.delt': unknown key"),
        ({"defaults": {"detectors": {"adwin": {"delta": 2}}}}, "'defaults.detectors.adwin.delta'"),
        ({"limits": {"max_series": 0}}, "'limits.max_series'"),
        ({"bogus": 1}, "allowed: defaults, label_targets, limits, monitors"),
        ({"monitors": [{"model": "m", "detectors": {"psi": {"window": "x"}}}]}, "'monitors[0].detectors.psi.window'"),
        ({"monitors": [{}, {"stagee": "x"}]}, "'monitors[1].stagee': unknown key"),
    ],
)
def test_errors_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        EngineConfig.from_mapping(data)
    assert needle in str(err.value)


def test_rules_override_defaults_last_match_wins() -> None:
    cfg = EngineConfig.from_mapping(
        {
            "defaults": {"warmup_events": 2000},
            "monitors": [
                {"model": "fraud*", "detectors": {"psi": {"window": 500}}},
                {"model": "fraud-eu", "stage": "scoring", "warmup_events": 300},
            ],
        }
    )
    eu = cfg.settings_for("fraud-eu", "scoring", "primary")
    assert (eu.warmup_events, eu.detectors.psi.window) == (300, 1000)
    us = cfg.settings_for("fraud-us", "scoring", "canary")
    assert (us.warmup_events, us.detectors.psi.window, us.detectors.adwin.delta) == (2000, 500, 1e-5)
    assert cfg.settings_for("other", "x", "primary") == cfg.defaults


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("defaults: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_yaml(tmp_path / "missing.yaml")
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml(bad)


def test_label_settings_and_targets_are_checked() -> None:
    cfg = EngineConfig.from_mapping({"label_targets": ["fraud/score"], "defaults": {"labels": {"ttl_s": 60}}})
    assert cfg.label_homes == (("fraud", "score"),) and cfg.defaults.labels.ttl_s == 60
    with pytest.raises(ConfigError, match="label_targets"):
        EngineConfig.from_mapping({"label_targets": ["no-slash"]})
    with pytest.raises(ConfigError, match=r"'defaults\.labels\.join'"):
        EngineConfig.from_mapping({"defaults": {"labels": {"join": "sometimes"}}})
