"""The ``streamfit`` command: ``run``, ``produce`` and ``demo``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from streamfit import __version__
from streamfit.errors import SpecError, StreamfitError

__all__ = ["main"]

log = logging.getLogger("streamfit")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamfit`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
        return code
    except SpecError as exc:
        print(f"streamfit: bad spec: {exc}", file=sys.stderr)
        return 2
    except StreamfitError as exc:
        print(f"streamfit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamfit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamfit {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default)")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline until stopped (SIGINT/SIGTERM)")
    run.add_argument("spec", help="pipeline spec (YAML)")
    run.add_argument("--db", help="database URL (overrides the spec and STREAMFIT_DATABASE_URL)")
    run.add_argument("--worker-id", default=None, help="this worker's id in a group (default 0)")
    run.add_argument(
        "--stop-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds without new events",
    )
    run.set_defaults(handler=_run)

    produce = sub.add_parser("produce", help="replay a dataset file into a Kafka topic")
    produce.add_argument("file", help="CSV, TSV, JSONL or Parquet file (optionally .gz)")
    produce.add_argument("--topic", required=True)
    produce.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers")
    produce.add_argument("--rate", type=float, default=0.0, help="events per second (0 = max)")
    produce.add_argument("--key", default=None, help="field whose value is the message key")
    produce.set_defaults(handler=_produce)

    demo = sub.add_parser("demo", help="the speed-dating demo on the bundled data")
    demo.add_argument("--kafka", metavar="BOOTSTRAP", help="use this Kafka broker")
    demo.add_argument(
        "--db", metavar="URL", help="database URL (default sqlite:///streamfit_demo.db)"
    )
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.set_defaults(handler=_demo)
    return parser


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: finishing the current batch, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def _run(args: argparse.Namespace) -> int:
    from streamfit.pipeline import Pipeline
    from streamfit.runtime.worker import Worker

    pipeline = Pipeline.from_yaml(args.spec, database=args.db, worker_id=args.worker_id)
    name = pipeline.spec.name
    report = [time.monotonic()]

    def on_batch(w: Worker, n: int) -> None:
        now = time.monotonic()
        if now - report[0] >= 10:
            report[0] = now
            log.warning(
                "%s: %d events in (%d trained, %d scored, %d dead letters), %.0f events/s",
                name,
                w.stats.events_in,
                w.stats.events_trained,
                w.stats.events_scored,
                w.stats.dead_letters,
                w.stats.events_per_second,
            )

    with pipeline:
        stats = pipeline.run(idle=args.stop_when_idle, stop=_stop_on_signals(), on_batch=on_batch)
    print(
        f"{name}: {stats.events_in} events in, {stats.events_trained} trained, "
        f"{stats.events_scored} scored, {stats.dead_letters} dead letters",
        file=sys.stderr,
    )
    return 0


def _produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from streamfit.spec.settings import Settings
    from streamfit.streams.base import OutRecord
    from streamfit.streams.kafka import KafkaSink
    from streamfit.streams.replay import count_events, iter_event_chunks

    bootstrap = args.bootstrap or Settings().kafka_bootstrap or "127.0.0.1:9092"
    sink = KafkaSink(bootstrap, args.topic)
    total = count_events(args.file)
    started = time.monotonic()
    sent = 0
    key_field = args.key.encode() if args.key else None
    with tqdm(total=total, unit="ev", desc=f"-> {args.topic}") as bar:
        for chunk in iter_event_chunks(args.file, chunk_size=1000):
            records = [OutRecord(_key_of(value, key_field), value) for value in chunk]
            for i in range(0, len(records), 100 if args.rate else len(records)):
                part = records[i : i + 100] if args.rate else records
                if args.rate:
                    ahead = (sent + len(part)) / args.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                sink.write(part)
                sent += len(part)
                bar.update(len(part))
    sink.flush()
    sink.close()
    print(f"produced {sent} events to {args.topic} at {bootstrap}", file=sys.stderr)
    return 0


def _key_of(value: bytes, key_field: bytes | None) -> bytes | None:
    if key_field is None:
        return None
    import orjson

    key = orjson.loads(value).get(key_field.decode())
    return None if key is None else str(key).encode()


def _demo(args: argparse.Namespace) -> int:
    from streamfit.cli.demo import default_demo_db, render_summary, run_demo, summary_json

    summary = run_demo(
        kafka=args.kafka, database=args.db or default_demo_db(), progress=not args.json
    )
    print(summary_json(summary) if args.json else render_summary(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
