"""One benchmark scenario per process: ``python -m bench.scenarios NAME --bootstrap B ...``.

Each consumes ``--events`` events of ``--topic`` from the beginning with a fresh consumer
group, and prints one JSON line: events, seconds (from the first event received to the last
one handled), events per second and the process's peak RSS. Running each in its own process
keeps peak memory honest and the scenarios independent.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

SCENARIOS: dict[str, Callable[[argparse.Namespace], tuple[int, float]]] = {}


def scenario(name: str) -> Callable[[Callable[[argparse.Namespace], tuple[int, float]]], Any]:
    def register(fn: Callable[[argparse.Namespace], tuple[int, float]]) -> Any:
        SCENARIOS[name] = fn
        return fn

    return register


def _consumer(args: argparse.Namespace) -> Any:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "queued.min.messages": 200_000,
        }
    )
    consumer.subscribe([args.topic])
    return consumer


@scenario("bare_consume")
def bare_consume(args: argparse.Namespace) -> tuple[int, float]:
    """The ceiling: a confluent-kafka consumer that only receives the messages."""
    consumer = _consumer(args)
    seen = 0
    first = 0.0
    while seen < args.events:
        msgs = consumer.consume(10_000, 1.0)
        if msgs and not first:
            first = time.perf_counter()
        seen += sum(1 for m in msgs if m.error() is None)
    elapsed = time.perf_counter() - first
    consumer.close()
    return seen, elapsed


@scenario("river_logistic")
def river_logistic(args: argparse.Namespace) -> tuple[int, float]:
    """Baseline: River LogisticRegression, test-then-train one event at a time."""
    from river import linear_model, metrics

    consumer = _consumer(args)
    model = linear_model.LogisticRegression()
    metric = metrics.ROCAUC()
    loads = orjson.loads
    seen = 0
    first = 0.0
    while seen < args.events:
        msgs = consumer.consume(500, 1.0)
        if msgs and not first:
            first = time.perf_counter()
        for msg in msgs:
            if msg.error() is not None:
                continue
            x = loads(msg.value())
            y = x.pop("y")
            metric.update(y, model.predict_proba_one(x))
            model.learn_one(x, y)
            seen += 1
    elapsed = time.perf_counter() - first
    consumer.close()
    print(f"river ROC AUC {metric.get():.4f}", file=sys.stderr)
    return seen, elapsed


@scenario("streamfit")
def streamfit_pipeline(args: argparse.Namespace) -> tuple[int, float]:
    """streamfit test-then-train, built-in logistic regression, metrics to SQLite."""
    from streamfit.runtime.build import build_worker
    from streamfit.spec import validate_spec

    db = Path(tempfile.mkdtemp()) / "bench.db"
    spec = validate_spec(
        {
            "name": "bench",
            "source": {
                "kind": "kafka",
                "bootstrap_servers": args.bootstrap,
                "group_id": f"bench-{uuid.uuid4().hex[:8]}",
            },
            "topics": {"train": args.topic},
            "target": "y",
            "models": [{"name": "logistic", "builtin": "logistic_regression"}],
            "outputs": {"database": f"sqlite:///{db}"},
            "batch": {"max_records": args.batch, "timeout": 0.5},
        }
    )
    worker = build_worker(spec)
    first = [0.0]

    def on_batch(w: Any, n: int) -> None:
        if n and not first[0]:
            first[0] = time.perf_counter() - 0.0
    worker.run(until=lambda w: w.stats.events_in >= args.events, on_batch=on_batch)
    elapsed = time.perf_counter() - first[0]
    auc = worker.slots[0].evaluator.snapshot().get("roc_auc")
    print(f"streamfit ROC AUC {auc}", file=sys.stderr)
    return worker.stats.events_in, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(SCENARIOS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args(argv)
    events, seconds = SCENARIOS[args.name](args)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        orjson.dumps(
            {
                "scenario": args.name,
                "events": events,
                "seconds": round(seconds, 4),
                "events_per_second": round(events / seconds, 1) if seconds > 0 else None,
                "peak_rss_mb": round(peak_rss_mb, 1),
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
