"""``driftstream run``: configuration, logging, HTTP endpoint and signals around the processor."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
from types import FrameType

from confluent_kafka import KafkaException

from detectors import load_yaml

from .clients import BrokerUnreachable
from .observe import HealthServer, Metrics, setup_logging
from .processor import Processor, ProcessorError
from .settings import ConfigError, RunConfig
from .state import ForeignState
from .topology import TopologyError
from .transactions import TransactionFailed

__all__ = ["run_processor", "load_run_config"]

log = logging.getLogger("driftstream.run")


def load_run_config(path: str | None, bootstrap: str | None = None, max_wait_s: float | None = None) -> RunConfig:
    """The file (if any) + ``DRIFTSTREAM_KAFKA_*`` environment + command-line flags."""
    data = load_yaml(path) if path else {}
    return RunConfig.from_mapping(data).with_overrides(bootstrap=bootstrap, max_wait_s=max_wait_s)


def run_processor(path: str | None, bootstrap: str | None = None, max_wait_s: float | None = None) -> int:
    """Exit codes: 0 after a clean stop; 2 bad configuration or no broker; 1 a processing failure."""
    try:
        cfg = load_run_config(path, bootstrap, max_wait_s)
    except ConfigError as exc:
        print(f"driftstream run: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.logging.format, cfg.logging.level)
    metrics = Metrics()
    health = None
    if cfg.http.enabled:
        try:
            health = HealthServer(cfg.http.host, cfg.http.port, metrics).start()
        except OSError as exc:
            log.error("cannot serve HTTP on %s:%d: %s (set http.port or http.enabled)", cfg.http.host, cfg.http.port,
                      exc.strerror)  # fmt: skip
            return 2
        log.info("metrics on %s/metrics, health on /healthz and /readyz", health.url)
    proc = Processor(cfg, metrics, health)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if proc.stopping:
            raise KeyboardInterrupt  # a second signal: stop now
        log.info("%s: finishing the batch, checkpointing, leaving the group", signal.Signals(signum).name)
        proc.stopping = True

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        proc.start()
        proc.run()
    except BrokerUnreachable as exc:
        log.error("%s", exc)
        return 2
    except (TopologyError, ForeignState) as exc:
        log.error("%s", exc)
        return 2
    except (ProcessorError, TransactionFailed, KafkaException) as exc:
        log.error("stopping without committing further progress: %s", exc)
        return 1
    finally:
        if health is not None:
            health.stop()
    log.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(run_processor(sys.argv[1] if len(sys.argv) > 1 else None))
