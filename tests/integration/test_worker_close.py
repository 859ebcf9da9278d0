"""A worker that stops cleanly leaves its consumer group: its partitions move on at once."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.streams.base import OutRecord
from streamfit.streams.kafka import KafkaSink, create_topics

SESSION_TIMEOUT_MS = 60_000


def _spec(bootstrap: str, topic: str, name: str, database: str) -> PipelineSpec:
    return validate_spec(
        {
            "name": name,
            "source": {
                "kind": "kafka",
                "bootstrap_servers": bootstrap,
                "group_id": f"{name}_group",
                "config": {"session.timeout.ms": SESSION_TIMEOUT_MS},
            },
            "topics": {"train": topic},
            "target": "y",
            "models": [{"name": "logistic", "builtin": "logistic_regression"}],
            "outputs": {"database": database},
            "batch": {"max_records": 500, "timeout": 0.1},
            "learning": {"block_events": 100},
        }
    )


def _kafka_committed(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[tuple[str, int], int]:
    """The offsets Kafka holds for ``group`` (read without joining it)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        found = consumer.committed(wanted, timeout=10)
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def test_a_closed_worker_hands_its_partitions_over_before_the_session_times_out(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{unique_name}_events"
    create_topics(kafka_bootstrap, [topic], partitions=2)
    sink = KafkaSink(kafka_bootstrap, topic)
    sink.write([OutRecord(None, orjson.dumps({"x": i % 7, "y": i % 2})) for i in range(1_000)])
    sink.flush()
    sink.close()
    database = f"sqlite:///{tmp_path / 'w.db'}"
    spec = _spec(kafka_bootstrap, topic, unique_name, database)

    first = build_worker(spec, worker_id="a")
    first.run(until=lambda w: w.stats.events_in >= 1_000)
    learned = dict(first.blocks.learned_frontier(first.read))
    with caplog.at_level(logging.WARNING, logger="streamfit"):
        first.close()
    # the checkpoint taken as the partitions are revoked commits to Kafka too
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert _kafka_committed(kafka_bootstrap, f"{unique_name}_group", topic, 2) == learned

    second = build_worker(spec, worker_id="b")
    started = time.monotonic()
    while not second.source.assignment():
        second.step(timeout=0.2)
        assert time.monotonic() - started < SESSION_TIMEOUT_MS / 2000, "partitions not handed over"
    waited = time.monotonic() - started
    # the second worker resumes where the first one's last checkpoint left each partition
    for _ in range(5):
        second.step(timeout=0.2)
    assert sorted(second.source.assignment()) == [(topic, 0), (topic, 1)]
    assert sum(learned.values()) == 1_000
    assert second.stats.events_in == 0, f"read again what was learned (waited {waited:.1f}s)"
    second.close()
