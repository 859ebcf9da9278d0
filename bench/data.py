"""Synthetic event streams for the benchmarks, produced to Kafka once per run.

``numeric10``: ten standard-normal features ``x0..x9`` and a binary label ``y`` drawn from a
logistic model of them, so a learner has something real to learn.
"""

from __future__ import annotations

import numpy as np
import orjson
from confluent_kafka import Producer

__all__ = ["numeric_events", "produce_events"]

WEIGHTS = np.array([1.5, -2.0, 0.7, 0.0, 1.1, -0.4, 0.0, 0.9, -1.3, 0.2])


def numeric_events(n: int, seed: int = 42) -> list[bytes]:
    """``n`` JSON events with ten numeric features and a label ``y``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(WEIGHTS))).round(5)
    p = 1.0 / (1.0 + np.exp(-(X @ WEIGHTS)))
    y = (rng.random(n) < p).astype(int)
    names = [f"x{i}" for i in range(len(WEIGHTS))]
    rows = X.tolist()
    return [
        orjson.dumps({**dict(zip(names, row, strict=True)), "y": int(label)})
        for row, label in zip(rows, y.tolist(), strict=True)
    ]


def produce_events(bootstrap: str, topic: str, events: list[bytes]) -> None:
    """Write ``events`` to ``topic`` (one partition, in order) and wait until all are acked."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    for value in events:
        while True:
            try:
                producer.produce(topic, value, partition=0)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} benchmark events were not delivered to {topic}")
