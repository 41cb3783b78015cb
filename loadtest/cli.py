"""``driftstream loadtest generate | replay | evaluate | bench`` and ``driftstream demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from detectors.config import ConfigError, load_yaml

__all__ = ["add_commands"]


def _scenario(args: argparse.Namespace) -> Any:
    """The preset or YAML scenario with the command line's overrides."""
    from .scenario import Scenario, parse_drift, preset  # noqa: PLC0415

    if args.scenario.endswith((".yaml", ".yml")):
        sc = Scenario.from_mapping(load_yaml(args.scenario))
    else:
        sc = preset(args.scenario)
    upd: dict[str, Any] = {k: v for k, v in (("events", args.events), ("seed", args.seed), ("rate", args.event_rate))
                           if v is not None}  # fmt: skip
    drifts = [*sc.drifts, *(parse_drift(d) for d in args.drift or [])]
    if upd or args.drift:
        sc = Scenario.from_mapping({**sc.model_dump(), **upd, "drifts": [d.model_dump() for d in drifts]})
    return sc


def _generate(args: argparse.Namespace) -> int:
    from .generate import generate, write  # noqa: PLC0415

    try:
        sc = _scenario(args)
    except ConfigError as exc:
        print(f"driftstream loadtest generate: {exc}", file=sys.stderr)
        return 2
    events, truth = write(generate(sc), Path(args.out))
    doc = orjson.loads(truth.read_bytes())
    print(f"wrote {events} ({doc['events']:,} events, {len(doc['keys'])} keys) and {truth} "
          f"({sum(d['role'] == 'injected' for d in doc['drifts'])} injected drifts)")  # fmt: skip
    return 0


def _run_session(args: argparse.Namespace) -> int:
    import urllib.error  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    from .session import Target, print_outcome, run_loadtest  # noqa: PLC0415

    try:
        sc = _scenario(args)
    except ConfigError as exc:
        print(f"driftstream loadtest run: {exc}", file=sys.stderr)
        return 2
    if args.rate and args.event_rate is None:
        sc = sc.model_copy(update={"rate": args.rate})  # event time then keeps pace with the wall clock
    tag = None if args.no_tag else (args.tag or uuid.uuid4().hex[:6])
    target = Target(args.bootstrap, args.topic, args.alerts_topic, args.metrics_topic, args.labels_topic or None,
                    args.metrics_url or None)  # fmt: skip
    try:
        outcome = run_loadtest(sc, target, Path(args.out), rate=args.rate, tag=tag, progress=not args.quiet)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:  # the metrics endpoint
        print(f"driftstream loadtest run: cannot read the processor's metrics at {args.metrics_url}: {exc}; "
              "is `driftstream run` up? (--metrics-url '' runs without it)", file=sys.stderr)  # fmt: skip
        return 2
    print_outcome(outcome)
    return 0 if outcome.ok else 1


def _replay(args: argparse.Namespace) -> int:
    from .replay import read_events, replay  # noqa: PLC0415

    path = Path(args.file)
    if not path.exists():
        print(f"driftstream loadtest replay: no such file {path}", file=sys.stderr)
        return 2
    total = None
    if path.suffix == ".jsonl":
        with path.open("rb") as fh:
            total = sum(1 for _ in fh)
    try:
        res = replay(read_events(path), args.bootstrap, args.topic, rate=args.rate, speedup=args.speedup,
                     restamp=args.restamp, key_field=args.key_field, total=total, metrics_url=args.metrics_url,
                     progress=not args.quiet, labels_topic=args.labels_topic or None)  # fmt: skip
    except ValueError as exc:  # an unreadable input file (e.g. Parquet without pyarrow)
        print(f"driftstream loadtest replay: {exc}", file=sys.stderr)
        return 2
    labels = f" and {res.labels:,} labels" if res.labels else ""
    line = f"sent {res.sent:,} events{labels} in {res.seconds:.1f} s = {res.rate:,.0f} events/s"
    if res.target_rate:
        line += f" (target {res.target_rate:,.0f}/s, {res.rate_error_percent:+.1f} %)"
    print(line + f"; {res.errors} delivery errors")
    if args.summary:
        Path(args.summary).write_bytes(orjson.dumps(res.as_dict(), option=orjson.OPT_INDENT_2))
    return 0 if res.errors == 0 else 1


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import read_topic_docs, score, throughput  # noqa: PLC0415
    from .report import write_report  # noqa: PLC0415

    truth = orjson.loads(Path(args.truth).read_bytes())
    rep = orjson.loads(Path(args.replay_summary).read_bytes()) if args.replay_summary else None
    alerts = read_topic_docs(args.bootstrap, args.alerts_topic, idle_s=args.idle)
    summaries = read_topic_docs(args.bootstrap, args.metrics_topic, idle_s=2.0) if args.metrics_topic else []
    result = score(truth, alerts, ts_shift_ms=rep["ts_shift_ms"] if rep else 0, tolerance=args.tolerance)
    tput = throughput(rep["metrics_samples"] if rep else [])
    events = Path(args.events) if args.events else None
    report = write_report(Path(args.out), truth, result, alerts, summaries, events, rep, tput)
    print(f"detected {result['detected']} of {result['injected']} drifts; {result['false_alerts']} false alerts; "
          f"latency p50 {result['latency_p50_ms']} ms; report: {report}")  # fmt: skip
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main  # noqa: PLC0415

    return bench_main(args.rest)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    return run_demo(bootstrap=args.bootstrap, out=Path(args.out), rate=args.rate)


def _positive(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _scenario_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="all-kinds", help="a preset (demo, all-kinds, none) or a YAML file")
    p.add_argument("--events", type=int, help="events over all keys (overrides the scenario)")
    p.add_argument("--seed", type=int)
    p.add_argument("--event-rate", type=float, help="event-time spacing in events per second")
    p.add_argument("--drift", action="append", help="add KIND:MODEL/STAGE[:SIGNAL]@START[-END][xMAG]")


def add_commands(sub: Any) -> None:
    """Register ``loadtest`` and ``demo`` on the ``driftstream`` parser."""
    lt = sub.add_parser("loadtest", help="generate traffic with known drift, replay it, evaluate the alerts")
    lts = lt.add_subparsers(dest="loadtest_command", required=True)
    g = lts.add_parser("generate", help="synthetic events (JSONL) plus a ground-truth file")
    _scenario_args(g)
    g.add_argument("-o", "--out", default="loadtest-out")
    g.set_defaults(func=_generate)
    s = lts.add_parser("run", help="generate, replay, wait for the running processor, evaluate: one command")
    _scenario_args(s)
    s.add_argument("--bootstrap", default="127.0.0.1:9092")
    s.add_argument("--topic", default="predictions")
    s.add_argument("--alerts-topic", default="drift-alerts")
    s.add_argument("--metrics-topic", default="drift-metrics")
    s.add_argument(
        "--labels-topic", default="labels", help="where the scenario's labels go ('' = with the predictions)"
    )
    s.add_argument(
        "--metrics-url",
        default="http://127.0.0.1:9464/metrics",
        help="the processor's /metrics: throughput, lag and when it has caught up ('' = none)",
    )
    s.add_argument("--rate", type=_positive, help="replay rate, events/s (default: as fast as possible)")
    s.add_argument("--tag", help="suffix for model names, so monitors start fresh (default: random)")
    s.add_argument("--no-tag", action="store_true", help="keep the scenario's model names")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("-o", "--out", default="loadtest-run")
    s.set_defaults(func=_run_session)
    r = lts.add_parser("replay", help="send JSONL/CSV/Parquet events to a topic")
    r.add_argument("file")
    r.add_argument("--bootstrap", default="127.0.0.1:9092")
    r.add_argument("--topic", default="predictions")
    r.add_argument("--labels-topic", default="labels", help="label events (no features) go here ('' = --topic)")
    pace = r.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive, help="target events/s (default: as fast as possible)")
    pace.add_argument("--speedup", type=_positive, help="follow recorded event time, N times faster")
    r.add_argument("--restamp", action="store_true", help="shift ts so the first event is now")
    r.add_argument("--key-field", help="use this field of the event as the Kafka key (default model/stage)")
    r.add_argument("--metrics-url", help="sample the processor's /metrics during the replay")
    r.add_argument("--summary", help="write the replay summary (and metric samples) as JSON here")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_replay)
    e = lts.add_parser("evaluate", help="score the alerts topic against the ground truth; report.md + plots")
    e.add_argument("--truth", required=True)
    e.add_argument("--events", help="the replayed JSONL (for the signal plots)")
    e.add_argument("--replay-summary", help="the replay's --summary file (time shift, throughput samples)")
    e.add_argument("--bootstrap", default="127.0.0.1:9092")
    e.add_argument("--alerts-topic", default="drift-alerts")
    e.add_argument("--metrics-topic", default="drift-metrics", help="window summaries, for the PSI plot ('' = skip)")
    e.add_argument("--tolerance", type=int, default=5_000, help="events after a drift's end still attributed to it")
    e.add_argument("--idle", type=float, default=5.0, help="stop reading after this many quiet seconds")
    e.add_argument("-o", "--out", default="loadtest-report")
    e.set_defaults(func=_evaluate)
    b = lts.add_parser("bench", help="benchmarks: engine | processor [--broker ...] (see python -m loadtest.bench)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="embedded broker + processor + a drift scenario, alerts live, then a report")
    d.add_argument("--bootstrap", help="use this broker instead of starting the embedded one")
    d.add_argument("--rate", type=_positive, default=5_000.0, help="replay rate, events/s")
    d.add_argument("-o", "--out", default="driftstream-demo")
    d.set_defaults(func=_demo)
