"""Produce→prediction latency at a fixed rate: a paced producer and a collector.

``python -m bench.latency_clients produce``
    Sends ``--events`` events of ``--dataset`` to ``--topic`` at ``--rate`` events/s (paced
    on the clock every half millisecond; ``linger.ms=1``, lz4). Each message's key is the
    wall-clock time of its ``produce()`` call in microseconds: the worker copies the input key
    to its prediction record, so a prediction carries the time its event was produced.
    Before the clock starts, the producer delivers one message to ``--warmup-topic``: a new
    producer takes 0.1-0.5 s to connect and get its idempotent producer id, and events
    produced meanwhile would queue behind that, a start-up cost of the load generator, not
    of the pipeline under test. Prints the achieved rate as JSON.
``python -m bench.latency_clients collect``
    Reads the predictions topic from the beginning and, per prediction, takes two latencies:
    *to prediction*: the prediction message's Kafka timestamp (set when the worker produced
    it) minus the event's produce time (ms resolution); *end to end*: the time this consumer
    received the prediction minus the event's produce time (includes the worker's producer
    ``linger.ms`` and the broker round trip). Events produced in the first ``--warmup``
    seconds are left out (group join, first batches). Prints percentiles as JSON once
    ``--expect`` predictions arrived or none came for ``--idle`` seconds.

Both print ``READY`` when set up, so the suite (``bench.latency``) starts the worker, then the
collector, then the producer.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import numpy as np
import orjson


def produce(args: argparse.Namespace) -> dict[str, float]:
    from confluent_kafka import Producer

    from bench.data import events

    values = [v for chunk in events(args.dataset, args.events, **_variant(args)) for v in chunk]
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "linger.ms": 1,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    if args.warmup_topic:
        producer.produce(args.warmup_topic, b"warmup")
        if producer.flush(30):
            raise RuntimeError(f"the warm-up message to {args.warmup_topic} was not delivered")
    put = producer.produce
    clock = time.time_ns
    n = len(values)
    sent = 0
    start = time.perf_counter()
    while sent < n:
        due = min(n, int((time.perf_counter() - start) * args.rate) + 1)
        while sent < due:
            put(args.topic, values[sent], str(clock() // 1000).encode(), partition=0)
            sent += 1
        producer.poll(0)
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    producer.flush(60)
    return {"events": n, "seconds": round(elapsed, 3), "rate": round(n / elapsed, 1)}


def _variant(args: argparse.Namespace) -> dict[str, int]:
    return {"unlabeled_every": args.unlabeled_every} if args.unlabeled_every else {}


def collect(args: argparse.Namespace) -> dict[str, object]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"bench-latency-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.subscribe([args.topic])
    while not consumer.assignment():
        consumer.poll(0.1)
    print("READY", flush=True)
    sent_us: list[int] = []
    predicted_ms: list[int] = []
    received_us: list[int] = []
    last = time.monotonic()
    poll, clock = consumer.poll, time.time_ns
    while len(sent_us) < args.expect and time.monotonic() - last < args.idle:
        # one message at a time: consume(n, timeout) would hold early messages until n came
        msg = poll(0.05)
        if msg is None:
            continue
        now = clock() // 1000
        last = time.monotonic()
        if msg.error() is not None or msg.key() is None:
            continue
        sent_us.append(int(msg.key()))
        predicted_ms.append(msg.timestamp()[1])
        received_us.append(now)
    consumer.close()
    sent = np.array(sent_us, dtype=np.int64)
    if not len(sent):
        return {"predictions": 0}
    keep = sent >= sent.min() + int(args.warmup * 1e6)
    to_prediction = (np.array(predicted_ms, dtype=np.int64) * 1000 - sent)[keep] / 1000
    end_to_end = (np.array(received_us, dtype=np.int64) - sent)[keep] / 1000
    if args.dump:
        np.save(args.dump, np.stack([sent, np.array(predicted_ms) * 1000, np.array(received_us)]))
    return {
        "predictions": len(sent),
        "measured": int(keep.sum()),
        "warmup_s": args.warmup,
        "to_prediction_ms": _percentiles(to_prediction),
        "end_to_end_ms": _percentiles(end_to_end),
    }


#: Percentiles kept for the table and the plot.
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99)


def _percentiles(values: np.ndarray) -> dict[str, object]:
    if not len(values):
        return {}
    points = np.percentile(values, PERCENTILES)
    out: dict[str, object] = {
        f"p{p:g}": round(float(v), 2)
        for p, v in zip(PERCENTILES, points, strict=True)
        if p in (50, 90, 99, 99.9)
    }
    out["max"] = round(float(values.max()), 2)
    out["mean"] = round(float(values.mean()), 2)
    out["curve"] = [[p, round(float(v), 3)] for p, v in zip(PERCENTILES, points, strict=True)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("produce", "collect"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--dataset", default="numeric10")
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument("--warmup-topic", help="produce: deliver one message here first")
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--unlabeled-every", type=int, default=0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument("--dump", help="save (sent, predicted, received) in µs as .npy")
    args = parser.parse_args(argv)
    result = produce(args) if args.command == "produce" else collect(args)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
