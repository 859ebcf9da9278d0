"""KafkaSource and KafkaSink against a real broker (see ``kafka_bootstrap`` in conftest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import TopicPartition
from pydantic import SecretStr

from streamfit.batch import Messages
from streamfit.errors import StreamError
from streamfit.streams.base import OutRecord, RecordSink, Source
from streamfit.streams.kafka import KafkaSink, KafkaSource, create_topics, delete_topics


def produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    sink = KafkaSink(bootstrap, topic)
    sink.write([OutRecord(f"k{i}".encode(), f"v{i}".encode()) for i in range(start, start + n)])
    sink.flush()
    sink.close()


def poll_until(source: KafkaSource, n: int, within: float = 30.0) -> Messages:
    """Poll until ``n`` messages came (or fail after ``within`` seconds)."""
    parts: list[Messages] = []
    got = 0
    deadline = time.monotonic() + within
    while got < n:
        assert time.monotonic() < deadline, f"only {got} of {n} messages within {within}s"
        batch = source.poll(max_records=n - got, timeout=0.5)
        if batch is not None:
            parts.append(batch)
            got += len(batch)
    return Messages.concat(parts)


def wait_assigned(source: KafkaSource, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not source.assignment():
        assert time.monotonic() < deadline, "no partition assigned"
        source.poll(1, 0.2)


@pytest.fixture
def source(kafka_bootstrap: str, kafka_topic: str, unique_name: str) -> Iterator[KafkaSource]:
    src = KafkaSource(kafka_bootstrap, [kafka_topic], group_id=f"{unique_name}_g")
    yield src
    src.close()


def test_round_trip_keeps_keys_offsets_and_order(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource
) -> None:
    assert isinstance(source, Source)
    before_ms = int(time.time() * 1000) - 60_000
    produce(kafka_bootstrap, kafka_topic, 10)

    got = poll_until(source, 10)

    assert got.values == [f"v{i}".encode() for i in range(10)]
    assert got.keys == [f"k{i}".encode() for i in range(10)]
    assert got.offsets.tolist() == list(range(10))
    assert got.partitions.tolist() == [0] * 10
    assert set(got.topics.tolist()) == {kafka_topic}
    assert (got.timestamps > before_ms).all()
    assert got.next_offsets() == {(kafka_topic, 0): 10}
    assert source.position() == {(kafka_topic, 0): 10}
    assert source.end_offsets() == {(kafka_topic, 0): 10}


def test_a_new_member_resumes_after_the_committed_offsets(
    kafka_bootstrap: str, kafka_topic: str, unique_name: str
) -> None:
    produce(kafka_bootstrap, kafka_topic, 10)
    group = f"{unique_name}_g"
    first = KafkaSource(kafka_bootstrap, [kafka_topic], group_id=group)
    try:
        poll_until(first, 10)
        first.commit({(kafka_topic, 0): 6})  # rows 0..5 processed
    finally:
        first.close()

    second = KafkaSource(kafka_bootstrap, [kafka_topic], group_id=group)
    try:
        rest = poll_until(second, 4)
        assert rest.offsets.tolist() == [6, 7, 8, 9]
        assert second.poll(10, 0.5) is None
    finally:
        second.close()


def test_a_commit_sent_without_waiting_lands(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource, caplog: pytest.LogCaptureFixture
) -> None:
    produce(kafka_bootstrap, kafka_topic, 10)
    poll_until(source, 10)
    source.commit({(kafka_topic, 0): 7}, wait=False)
    deadline = time.monotonic() + 30
    while source.committed([(kafka_topic, 0)]) != {(kafka_topic, 0): 7}:
        assert time.monotonic() < deadline, "the commit never landed"
        source.poll(1, 0.1)  # serves the commit's answer
    assert "committing offsets to Kafka failed" not in caplog.text


def test_a_failed_commit_sent_without_waiting_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from confluent_kafka import KafkaError

    from streamfit.streams.kafka import _log_commit_failure

    _log_commit_failure(None, [TopicPartition("t", 0, 7)])
    assert "failed" not in caplog.text
    _log_commit_failure(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [])
    assert "committing offsets to Kafka failed" in caplog.text


def test_seek_rewinds_an_assigned_partition(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource
) -> None:
    produce(kafka_bootstrap, kafka_topic, 5)
    poll_until(source, 5)

    source.seek({(kafka_topic, 0): 2})

    assert poll_until(source, 3).offsets.tolist() == [2, 3, 4]
    with pytest.raises(StreamError, match="not assigned"):
        source.seek({(kafka_topic, 7): 0})
    # The fallback for a partition whose fetcher is not started yet: assign it at the offset.
    source._reassign(TopicPartition(kafka_topic, 0, 1))
    assert poll_until(source, 4).offsets.tolist() == [1, 2, 3, 4]


def test_seek_inside_on_assign_sets_where_new_partitions_start(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource
) -> None:
    produce(kafka_bootstrap, kafka_topic, 5)
    assigned: list[list[tuple[str, int]]] = []
    revoked: list[list[tuple[str, int]]] = []

    def on_assign(partitions: list[tuple[str, int]]) -> None:
        assigned.append(partitions)
        source.seek({p: 3 for p in partitions})  # as if restored from a checkpoint

    source.on_assign = on_assign
    source.on_revoke = revoked.append

    assert poll_until(source, 2).offsets.tolist() == [3, 4]
    assert assigned == [[(kafka_topic, 0)]]
    source.close()
    assert revoked == [[(kafka_topic, 0)]]


def test_sink_flush_makes_records_durable(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource
) -> None:
    sink = KafkaSink(kafka_bootstrap, kafka_topic)
    assert isinstance(sink, RecordSink)
    for start in range(0, 5000, 500):
        sink.write([OutRecord(None, b"x" * 100) for _ in range(start, start + 500)])
    sink.flush(timeout=30)
    assert len(sink) == 0
    sink.close()

    wait_assigned(source)
    assert source.end_offsets() == {(kafka_topic, 0): 5000}


def test_poll_on_an_empty_topic_returns_none_within_its_timeout(source: KafkaSource) -> None:
    for _ in range(3):
        started = time.monotonic()
        assert source.poll(max_records=100, timeout=0.5) is None
        assert time.monotonic() - started < 0.5 + 2.0


def test_a_poll_returns_what_came_without_waiting_for_a_full_batch(
    kafka_bootstrap: str, kafka_topic: str, source: KafkaSource
) -> None:
    wait_assigned(source)
    later = threading.Timer(0.5, produce, (kafka_bootstrap, kafka_topic, 10))
    later.start()
    for start in (0, 10):
        if start:
            produce(kafka_bootstrap, kafka_topic, 10, start=start)
        started = time.monotonic()
        batch = source.poll(max_records=1_000, timeout=20.0)
        waited = time.monotonic() - started
        # not 20 s: the poll takes the first events that come, and those that came with them
        assert batch is not None, f"nothing within {waited:.1f}s"
        assert waited < 10.0, f"waited {waited:.1f}s for {len(batch)} events"
        rest = poll_until(source, start + 10 - int(batch.offsets[0]) - len(batch))
        assert Messages.concat([batch, rest]).offsets.tolist() == list(range(start, start + 10))
    later.join()


def test_create_and_delete_topics_are_idempotent(kafka_bootstrap: str, unique_name: str) -> None:
    names = [f"{unique_name}_a", f"{unique_name}_b"]
    create_topics(kafka_bootstrap, names, partitions=3)
    create_topics(kafka_bootstrap, names, partitions=3)
    produce(kafka_bootstrap, names[0], 3)
    delete_topics(kafka_bootstrap, names)
    delete_topics(kafka_bootstrap, names)


def test_commit_of_nothing_and_use_after_close(source: KafkaSource) -> None:
    source.commit({})
    source.close()
    source.close()
    with pytest.raises(StreamError, match="closed"):
        source.poll(1, 0.1)


# ------------------------------------------------------------- no broker needed for these


def test_flush_raises_when_records_cannot_be_delivered(unique_name: str) -> None:
    sink = KafkaSink("127.0.0.1:1", unique_name, config={"message.timeout.ms": 500})
    sink.write([OutRecord(b"k", b"v")])
    with pytest.raises(StreamError, match="not delivered"):
        sink.flush(timeout=10)
    sink.close()


def test_reprs_mask_secrets() -> None:
    sink = KafkaSink(
        "127.0.0.1:1",
        "t",
        config={
            "sasl.username": "me",
            "sasl.password": "hunter2",
            "ssl.key.password": SecretStr("also-secret"),
        },
    )
    try:
        text = repr(sink)
    finally:
        sink.close(timeout=0)
    assert "hunter2" not in text and "also-secret" not in text
    assert "'sasl.username': 'me'" in text and "'sasl.password': '***'" in text
