"""docker-compose.yml, the Dockerfile and deploy/: no Docker engine runs here, so every reference
they make is checked against the repository, and the compose CLI validates the file when present."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import RunConfig

ROOT = Path(__file__).resolve().parent.parent
OUR_IMAGE = "driftstream:latest"


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]  # type: ignore[no-any-return]


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def _bind_sources(svc: dict[str, Any]) -> list[tuple[Path, str]]:
    out = []
    for v in svc.get("volumes", []):
        src, _, rest = v.partition(":")
        if src.startswith((".", "/")):
            out.append((ROOT / src, rest.split(":")[0]))
    return out


def _dockerfile() -> list[tuple[str, str]]:
    """Instructions of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    rows = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, arg = line.partition(" ")
            rows.append((op.upper(), arg.strip()))
    return rows


def _listeners(kafka: dict[str, Any]) -> dict[str, int]:
    """Listener name -> port, from KAFKA_LISTENERS."""
    return {name: int(port) for name, port in re.findall(r"(\w+)://[^:,]*:(\d+)", _env(kafka)["KAFKA_LISTENERS"])}


def test_services_and_profiles() -> None:
    svcs = _services()
    assert set(svcs) == {"kafka", "driftstream", "loadtest", "prometheus"}
    assert "profiles" not in svcs["kafka"] and "profiles" not in svcs["driftstream"]  # `docker compose up` runs both
    assert svcs["loadtest"]["profiles"] == ["loadtest"]
    assert svcs["prometheus"]["profiles"] == ["monitoring"]
    assert svcs["driftstream"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svcs["loadtest"]["depends_on"]["driftstream"]["condition"] == "service_healthy"


def test_kafka_is_the_official_image_in_kraft_single_node_mode() -> None:
    kafka = _services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == node
    listeners = _listeners(kafka)
    assert int(voter.rsplit(":", 1)[1]) == listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]]
    advertised = dict(re.findall(r"(\w+)://([^,]+)", env["KAFKA_ADVERTISED_LISTENERS"]))
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert set(advertised) <= set(listeners)
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    # one broker: every internal topic must accept replication factor 1, or transactions never start
    for k in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
              "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):  # fmt: skip
        assert env[k] == "1", k
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # a Kafka cluster id is 16 bytes
    published = {int(p.split(":")[-1]) for p in kafka["ports"]}
    assert published == {listeners[n] for n, a in advertised.items() if a.startswith("localhost:")}


def test_every_build_context_file_and_mount_exists() -> None:
    for name, svc in _services().items():
        if "build" in svc:
            ctx = ROOT / svc["build"]["context"]
            assert ctx.is_dir(), name
            assert (ctx / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for src, _dest in _bind_sources(svc):
            if svc.get("profiles") == ["loadtest"] and "loadtest-run" in str(src):
                continue  # the report's output directory, created by the run
            assert src.exists(), f"{name}: {src} is mounted but not in the repository"


def test_dockerfile_copies_what_exists_and_installs_every_package() -> None:
    rows = _dockerfile()
    assert rows[0][0] == "FROM"
    copied: set[str] = set()
    for op, arg in rows:
        if op == "COPY":
            *srcs, _dest = arg.split()
            for s in srcs:
                assert (ROOT / s).exists(), f"Dockerfile copies {s}, which is not in the repository"
                copied.add(s.split("/")[0])
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} <= copied
    # the entry point is the console script pyproject declares
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry = next(arg for op, arg in rows if op == "ENTRYPOINT")
    assert yaml.safe_load(entry) == ["driftstream"] and "driftstream" in scripts
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not copied & set(ignored), "the Dockerfile copies something .dockerignore leaves out"


def _our_commands() -> list[tuple[str, list[str]]]:
    """(service, argv) for every service that runs this repository's image."""
    out = []
    default = next(arg for op, arg in _dockerfile() if op == "CMD")
    for name, svc in _services().items():
        if svc.get("image") == OUR_IMAGE or "build" in svc:
            cmd = svc.get("command", yaml.safe_load(default))
            out.append((name, shlex.split(cmd) if isinstance(cmd, str) else list(cmd)))
    return out


def test_commands_parse_with_the_real_cli() -> None:
    seen = set()
    for name, argv in _our_commands():
        args = build_parser().parse_args(argv)  # exits (SystemExit) on an unknown flag or subcommand
        seen.add(name)
        if args.command == "run" and args.config:
            mounted = {dest: src for src, dest in _bind_sources(_services()[name])}
            assert args.config in mounted, f"{name}: {args.config} is not mounted"
    assert seen == {"driftstream", "loadtest"}


def test_processor_config_matches_the_compose_network() -> None:
    svcs = _services()
    cfg = RunConfig.from_mapping(yaml.safe_load((ROOT / "deploy" / "driftstream.yaml").read_text()), environ={})
    host, _, port = cfg.kafka.bootstrap.partition(":")
    assert host in svcs and int(port) in _listeners(svcs["kafka"]).values()
    assert cfg.http.host == "0.0.0.0"  # scraped from other containers
    assert f"{cfg.http.port}:{cfg.http.port}" in svcs["driftstream"]["ports"]
    # the loadtest talks to the same broker and metrics endpoint
    lt = build_parser().parse_args(svcs["loadtest"]["command"])
    assert lt.bootstrap == cfg.kafka.bootstrap
    url = urlsplit(lt.metrics_url)
    assert (url.hostname, url.port) == ("driftstream", cfg.http.port)


def test_prometheus_scrapes_the_processor() -> None:
    prom = _services()["prometheus"]
    conf_path = next(src for src, dest in _bind_sources(prom) if dest.endswith("prometheus.yml"))
    conf = yaml.safe_load(conf_path.read_text())
    cfg = RunConfig.from_mapping(yaml.safe_load((ROOT / "deploy" / "driftstream.yaml").read_text()), environ={})
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    targets = [t for sc in jobs["driftstream"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"driftstream:{cfg.http.port}"]
    assert jobs["driftstream"].get("metrics_path", "/metrics") == "/metrics"


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    return [v1] if v1 else None


def test_compose_cli_validates_the_file() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose client on this machine (the file is checked by parsing above)")
    res = subprocess.run([*cli, "--profile", "loadtest", "--profile", "monitoring", "config", "--services"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"kafka", "driftstream", "loadtest", "prometheus"}
