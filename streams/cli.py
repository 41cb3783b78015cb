"""The ``driftstream`` command."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import orjson

__all__ = ["main", "build_parser"]


def _broker(args: argparse.Namespace) -> int:
    from .broker import BrokerError, EmbeddedBroker  # noqa: PLC0415  (keep `--help` fast)

    try:
        broker = EmbeddedBroker(port=args.port, host=args.host).start()
    except BrokerError as exc:
        print(f"driftstream broker: {exc}", file=sys.stderr)
        return 1
    print(f"embedded Kafka broker (Tansu, in-memory) ready in {broker.startup_seconds:.2f} s")
    print(f"bootstrap: {broker.bootstrap}", flush=True)
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # sigwait only receives blocked signals
    try:
        signal.sigwait(stop)
    finally:
        broker.stop()
    print("broker stopped")
    return 0


def _reference_build(args: argparse.Namespace) -> int:
    from .reference_build import build_profile  # noqa: PLC0415

    try:
        profile = build_profile(Path(args.input), model=args.model, stage=args.stage, bins=args.bins,
                                max_categories=args.max_categories)  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"driftstream reference build: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output)
    out.write_bytes(orjson.dumps(profile.to_json(), option=orjson.OPT_INDENT_2))
    print(f"wrote {out}: {profile.size} rows, {len(profile.signals)} signals ({', '.join(sorted(profile.signals))})")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import run_processor  # noqa: PLC0415

    return run_processor(args.config, bootstrap=args.bootstrap, max_wait_s=args.max_wait)


def _faust_worker(args: argparse.Namespace) -> int:
    from .faust_app import run_faust_worker  # noqa: PLC0415  (imports faust: slow)

    return run_faust_worker(args.config, bootstrap=args.bootstrap, max_wait_s=args.max_wait)


def build_parser() -> argparse.ArgumentParser:
    """Every ``driftstream`` subcommand; also used to check the commands docker-compose runs."""
    ap = argparse.ArgumentParser(prog="driftstream", description="Streaming drift detection on Kafka.")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="the processor: consume predictions, detect drift, publish alerts")
    r.add_argument("-c", "--config", help="YAML file (default: built-in defaults, no file needed)")
    r.add_argument("--bootstrap", help="Kafka bootstrap servers (default: kafka.bootstrap, 127.0.0.1:9092)")
    r.add_argument("--max-wait", type=float, help="exit 2 if no broker answers within this many seconds")
    r.set_defaults(func=_run)

    fw = sub.add_parser("faust-worker", help="the same engine as a faust-streaming worker (table-backed state)")
    fw.add_argument("-c", "--config", help="YAML file, as for `run` (its faust: section applies here)")
    fw.add_argument("--bootstrap", help="Kafka bootstrap servers (default: kafka.bootstrap, 127.0.0.1:9092)")
    fw.add_argument("--max-wait", type=float, help="exit 2 if no broker answers within this many seconds")
    fw.set_defaults(func=_faust_worker)

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu) until Ctrl-C")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--host", default="127.0.0.1")
    b.set_defaults(func=_broker)

    ref = sub.add_parser("reference", help="reference profiles")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True)
    rb = ref_sub.add_parser("build", help="training data (CSV, JSONL, Parquet) -> profile JSON")
    rb.add_argument("input")
    rb.add_argument("-o", "--output", required=True)
    rb.add_argument("--model", help="with event-shaped rows: keep only this model")
    rb.add_argument("--stage", help="with event-shaped rows: keep only this stage")
    rb.add_argument("--bins", type=int, default=10)
    rb.add_argument("--max-categories", type=int, default=50)
    rb.set_defaults(func=_reference_build)

    from loadtest.cli import add_commands  # noqa: PLC0415

    add_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
