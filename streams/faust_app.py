"""The Faust runtime: ``driftstream faust-worker`` or ``faust -A streams.faust_app worker``.

For teams whose stream processing already runs on faust-streaming. One agent consumes the
input topics, the labels topic and the repartition topic in ``take`` batches and hands them to
:class:`~streams.faust_runtime.FaustRuntime` (the same bank, routing, alerts, dead letters
and alert ids as ``driftstream run``). Monitor snapshots live in a Faust table whose
changelog is ``topics.state``. Faust's web server serves ``/metrics``, ``/healthz``,
``/readyz``, ``/drift/health`` and ``/drift/monitors``.

With ``faust -A``, the configuration file is named by ``DRIFTSTREAM_CONFIG``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from detectors import warm_kernels

from .broker import free_port
from .clients import BrokerUnreachable, connect
from .faust_config import faust_settings
from .faust_runtime import FaustRuntime
from .observe import Metrics, setup_logging
from .run import load_run_config
from .settings import ConfigError, RunConfig
from .state import ForeignState
from .topology import Topology, TopologyError, ensure_topics

__all__ = ["create_app", "run_faust_worker"]

log = logging.getLogger("driftstream.faust")
_STALL_S = 60.0


def prepare(cfg: RunConfig) -> Topology:
    """Reach the broker and create/check the topics, as ``driftstream run`` does."""
    return ensure_topics(connect(cfg), cfg.topics)


def create_app(cfg: RunConfig, topology: Topology, metrics: Metrics | None = None) -> Any:
    """A Faust app running the engine; ``app.driftstream`` is its :class:`FaustRuntime`."""
    metrics = metrics or Metrics()
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    app: Any = faust.App(cfg.processor.group, **faust_settings(cfg, topology))  # faust's stubs are partial
    # acks=False: Faust does not commit these offsets; each checkpoint commits what its state covers
    labels = [cfg.topics.labels] if cfg.topics.labels else []
    source = app.topic(*cfg.topics.input, *labels, cfg.topics.repartition, acks=False, **raw)
    out = {name: app.topic(getattr(cfg.topics, name), **raw) for name in ("alerts", "metrics", "deadletter")}
    out["repartition"] = app.topic(cfg.topics.repartition, **raw)
    changelog = app.topic(cfg.topics.state, partitions=topology.partitions, compacting=True, deleting=False, **raw)
    table = app.Table("monitors", key_type=bytes, value_type=bytes,
                      partitions=topology.partitions, changelog_topic=changelog)  # fmt: skip
    rt = FaustRuntime(cfg, topology, metrics, app, table, out)
    app.driftstream = rt
    beat = [time.monotonic()]

    @app.agent(source, name="driftstream-monitors", concurrency=1)
    async def monitors(stream: Any) -> None:
        # Batched here, not with stream.take: our own buffer lets housekeeping feed a partial
        # batch under the runtime's lock.
        keep_queued_events(app, stream.channel.queue)
        try:
            async for event in stream.events():
                if rt.add(event):
                    # shielded: a stop cancels the agent, and a half-processed batch (offsets
                    # advanced, some banks not fed) must not reach the final checkpoint
                    await asyncio.shield(rt.flush_batch())
                    if rt.due():
                        await rt.checkpoint()
        except Exception as exc:
            # Faust's supervisor would restart the agent past the batch in hand: a silent loss.
            # Stop instead; a new worker resumes from the last checkpoint.
            log.exception("the monitors agent failed; stopping the worker")
            await app.crash(exc)
            raise

    @app.task
    async def housekeeping() -> None:
        """Checkpoints while the stream is idle, and at once when Faust rebalances or stops."""
        next_lag = 0.0
        progress_every = cfg.logging.progress_interval_s
        next_progress = time.monotonic() + progress_every
        tick = (0, time.monotonic())
        while True:
            await asyncio.sleep(0.1)
            beat[0] = time.monotonic()
            try:
                if rt.unrestored:
                    await rt.restore_assigned()
                if rt.batch_due():
                    await asyncio.shield(rt.flush_batch())  # a partial batch, the stream being quiet
                if rt.unchecked and (rt.due() or app.should_stop or app.rebalancing):
                    await rt.checkpoint()
            except Exception as exc:  # e.g. records not delivered: stop rather than commit past them
                log.exception("batch or checkpoint failed; stopping the worker")
                await app.crash(exc)
                return
            if beat[0] >= next_lag:
                _update_lag(app, rt)
                next_lag = beat[0] + 1.0
            metrics.ready.set(1 if _ready(app) else 0)
            if beat[0] >= next_progress:
                tick = _progress(rt, tick)
                next_progress = beat[0] + progress_every

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: set[Any], **_: Any) -> None:
        metrics.rebalances.labels("revoke").inc()
        await rt.flush_batch()
        await rt.checkpoint()  # what was processed is in the table and committed before the banks go
        rt.revoked(revoked)

    @app.on_before_shutdown.connect
    async def on_shutdown(app_: Any, **_: Any) -> None:
        await rt.flush_batch()
        await rt.checkpoint()  # the consumer has stopped; Faust sends no revocation when it stops

    @app.on_partitions_assigned.connect
    async def on_assigned(app_: Any, assigned: set[Any], **_: Any) -> None:
        metrics.rebalances.labels("assign").inc()
        rt.assigned(assigned)

    def probe(path: str, body: Any) -> None:
        @app.page(path)
        class _View(View):
            async def get(self, request: Request) -> Response:
                response: Response = body(self)
                return response

    def json(view: Any, doc: Any, status: int = 200) -> Any:
        return view.bytes(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), status=status,
                          content_type="application/json")  # fmt: skip

    def alive() -> bool:
        return time.monotonic() - beat[0] < _STALL_S and app.crash_reason is None

    def plain(path: str, check: Any, ok: str, bad: str) -> None:
        def body(view: Any) -> Any:
            good = check()  # once: the text and the status must agree
            return view.text(ok if good else bad, status=200 if good else 503)

        probe(path, body)

    def health() -> dict[str, Any]:
        return {
            "alive": alive(),
            "ready": _ready(app),
            "partitions": sorted(rt.banks),
            "monitors": sum(len(b.monitors) for b in rt.banks.values()),
            "since_checkpoint": rt.unchecked,
            "since_checkpoint_s": round(time.monotonic() - rt.last_checkpoint, 3),
            "counts": rt.counts,
        }

    probe("/metrics", lambda v: v.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}))
    plain("/healthz", alive, "ok\n", "stalled\n")
    plain("/readyz", lambda: _ready(app), "ready\n", "not ready: assigning/recovering\n")
    probe("/drift/health", lambda v: json(v, health()))
    probe("/drift/monitors", lambda v: json(v, rt.monitors_view()))
    return app


def keep_queued_events(app: Any, queue: Any) -> None:
    """Stop Faust from emptying the agent's queue each time it resumes flow.

    Faust (0.15) clears every stream queue in ``flow_control.resume()``, which it calls at the
    end of each recovery, after it has resumed the source partitions and sought them to the
    committed offsets: events its fetcher delivered in between are dropped from the queue, and
    its read offsets have already moved past them, so they never come again (a one-event gap
    in about 1 restart in 20, measured). Kept, they are delivered: events of an older
    rebalance generation are still skipped by the stream, and a repeated offset by the runtime.
    """
    queues = getattr(app.flow_control, "_queues", None)
    if queues is None:
        raise RuntimeError("this faust/mode version has no flow_control._queues; check keep_queued_events")
    queues.discard(queue)


def _ready(app: Any) -> bool:
    """Started, assigned, Faust's table recovery done, and the assigned monitors restored."""
    try:
        ready = bool(app.consumer.assignment()) and not app.rebalancing and app.tables.recovery.completed.is_set()
        return ready and not app.driftstream.unrestored
    except Exception:  # consumer not started yet
        return False


def _update_lag(app: Any, rt: FaustRuntime) -> None:
    try:
        assignment = app.consumer.assignment()
    except Exception:  # consumer not started yet
        return
    for tp in assignment:
        pos = rt.positions.get((tp.topic, tp.partition))
        hi = app.consumer.highwater(tp)
        if pos is not None and hi is not None and tp.topic != rt.cfg.topics.state:
            rt.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(hi - pos, 0))


def _progress(rt: FaustRuntime, tick: tuple[int, float]) -> tuple[int, float]:
    now = time.monotonic()
    c = rt.counts
    rate = (c["consumed"] - tick[0]) / max(now - tick[1], 1e-9)
    monitors = sum(len(b.monitors) for b in rt.banks.values())
    rt.metrics.monitors.set(monitors)
    rt.metrics.series.set(sum(b.stats.series for b in rt.banks.values()))
    log.info(
        "consumed %d (%.0f/s) processed %d rejected %d re-keyed %d skipped %d gaps %d alerts %d monitors %d "
        "unchecked %d", c["consumed"], rate, c["processed"], c["rejected"], c["repartitioned"], c["skipped"],
        c["gaps"], c["alerts"], monitors, rt.unchecked,
    )  # fmt: skip
    return c["consumed"], now


def run_faust_worker(path: str | None, bootstrap: str | None = None, max_wait_s: float | None = None) -> int:
    """Exit codes as ``driftstream run``: 0 clean stop; 2 bad configuration or no broker; 1 failure."""
    try:
        cfg = load_run_config(path, bootstrap, max_wait_s)
    except ConfigError as exc:
        print(f"driftstream faust-worker: {exc}", file=sys.stderr)
        return 2
    if cfg.http.enabled and cfg.http.port == 0:
        cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"port": free_port(cfg.http.host)})})
    setup_logging(cfg.logging.format, cfg.logging.level)
    try:
        log.info("detector kernels loaded in %.2f s", warm_kernels())
        topology = prepare(cfg)
        app = create_app(cfg, topology)
    except (ConfigError, BrokerUnreachable, TopologyError) as exc:
        log.error("%s", exc)
        return 2
    if cfg.http.enabled:
        log.info("metrics on http://%s:%d/metrics, health on /healthz, /readyz, /drift/health; monitors on "
                 "/drift/monitors", cfg.http.host, cfg.http.port)  # fmt: skip
    worker = faust.Worker(app, loglevel=cfg.logging.level, quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        app.driftstream.close()
        code = exc.code if isinstance(exc.code, int) else 1
        crash = app.crash_reason
        if isinstance(crash, ForeignState):
            return 2
        if crash is not None:
            log.error("stopped after a failure: %r", crash)
            return code or 1
        if code == 0:
            log.info("stopped cleanly")
        return code
    return 0


_APP: faust.App | None = None


def __getattr__(name: str) -> Any:
    """``faust -A streams.faust_app worker``: the app, built on first access from ``DRIFTSTREAM_CONFIG``."""
    global _APP  # noqa: PLW0603
    if name != "app":
        raise AttributeError(name)
    if _APP is None:
        cfg = load_run_config(os.environ.get("DRIFTSTREAM_CONFIG"))
        _APP = create_app(cfg, prepare(cfg))
    return _APP
