"""A worker that stops cleanly leaves its consumer group: its partitions move on at once."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.streams.base import OutRecord
from streamfit.streams.kafka import KafkaSink, create_topics
from tests.integration.support import committed_offsets, group_members, wait_until

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
    learned = dict(first.head.learned_frontier(first.read))
    group = f"{unique_name}_group"
    assert group_members(kafka_bootstrap, group) == ("STABLE", [[(topic, 0), (topic, 1)]])
    with caplog.at_level(logging.WARNING, logger="streamfit"):
        first.close()
    # the checkpoint taken as the partitions are revoked commits to Kafka too
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name != "streamfit.labels"  # "new class ..."
    ]
    assert not warnings
    assert committed_offsets(kafka_bootstrap, group, topic, 2) == learned
    # it left: the group is empty well before a session timeout of a minute
    wait_until(
        lambda: group_members(kafka_bootstrap, group) == ("EMPTY", []),
        "the group empty",
        timeout=SESSION_TIMEOUT_MS / 2000,
    )

    second = build_worker(spec, worker_id="b")

    def assigned() -> list[tuple[str, int]]:
        second.step(timeout=0.2)
        return second.source.assignment()

    wait_until(assigned, "partitions for the second worker", timeout=SESSION_TIMEOUT_MS / 2000)
    # the second worker resumes where the first one's last checkpoint left each partition
    for _ in range(5):
        second.step(timeout=0.2)
    assert sorted(second.source.assignment()) == [(topic, 0), (topic, 1)]
    assert sum(learned.values()) == 1_000
    assert second.stats.events_in == 0, "read again what was learned"
    second.close()
