"""Transient failures are types, raised where streamfit meets the broker and the database.

A broker that stopped (a throwaway one of this test's own, never the shared one) raises
``BrokerUnavailableError``, a ``ServiceUnavailableError`` the worker waits out; a failure that
retrying cannot cure raises the plain ``StreamError``, and a statement the database refused is
no outage. (A database URL that refuses connections: ``tests/unit/test_store_sqlite.py``.)
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from streamfit.errors import BrokerUnavailableError, ServiceUnavailableError, StreamError
from streamfit.store import Store
from streamfit.store.sql import _driver_unavailable, _is_unavailable
from streamfit.streams.kafka import KafkaSink, KafkaSource, create_topics
from tests.integration.support import own_broker, wait_until


def test_a_stopped_broker_is_broker_unavailable(
    kafka_bootstrap: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Commit, delivery, committed offsets and topic creation against a broker that was up
    and then stopped: each fails as ``BrokerUnavailableError`` (from librdkafka's codes:
    waiting for the coordinator, message timed out, timed out)."""
    caplog.set_level(logging.CRITICAL, logger="streamfit.streams.kafka")  # the client's retries
    with own_broker(tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, ["events"])
        sink = KafkaSink(bootstrap, "events", config={"message.timeout.ms": 3000})
        sink.write([(b"k", b"v")] * 10)
        sink.flush()
        source = KafkaSource(
            bootstrap,
            ["events"],
            group_id="g",
            auto_offset_reset="earliest",
            config={
                "socket.timeout.ms": 5000,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "reconnect.backoff.max.ms": 1000,
            },
        )
        received: list[int] = []

        def read_all() -> bool:
            batch = source.poll(10, 0.5)
            received.append(len(batch) if batch is not None else 0)
            return sum(received) >= 10

        wait_until(read_all, "the 10 events read")
        broker.stop()

        with pytest.raises(BrokerUnavailableError, match=r"broker unavailable|not delivered"):
            sink.write([(b"k", b"v")] * 5)
            sink.flush(timeout=30)
        with pytest.raises(BrokerUnavailableError, match="committed offsets"):
            source.committed([("events", 0)], timeout=3)
        with pytest.raises(BrokerUnavailableError, match="committing offsets"):
            source.commit({("events", 0): 10})
        with pytest.raises(BrokerUnavailableError, match="cannot create topic"):
            create_topics(bootstrap, ["more"], timeout=3)

        broker.start()  # back, on the same port: the group is joined again, then it commits

        def committed_again() -> bool:
            source.poll(1, 0.5)
            try:
                source.commit({("events", 0): 10})
            except StreamError:  # not a member again yet
                return False
            return True

        wait_until(committed_again, "a commit once the broker is back", timeout=60)
        assert source.committed([("events", 0)]) == {("events", 0): 10}
        with contextlib.suppress(BrokerUnavailableError):  # those that timed out meanwhile
            sink.flush()
        sink.write([(b"k", b"v")])
        sink.flush()
        source.close()
        sink.close()


def test_what_retrying_cannot_cure_is_a_plain_stream_error(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    sink = KafkaSink(kafka_bootstrap, kafka_topic, config={"message.max.bytes": 1000})
    with pytest.raises(StreamError) as caught:
        sink.write([(b"k", b"x" * 5000)])
        sink.flush()
    assert not isinstance(caught.value, ServiceUnavailableError)
    sink.close()


def test_a_failed_statement_is_not_unavailable(database_url: str) -> None:
    """The database answered, with an error: SQLite's "no such table" is an
    ``OperationalError`` too, and still a statement that failed, not an outage."""
    with Store(database_url, "p") as store, store.engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.exec_driver_sql("SELECT * FROM no_such_table_here")
        assert not _is_unavailable(caught.value)


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_connection_the_server_dropped_is_unavailable(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The server ends this test's own session (as it does when it shuts down): the next
    statement on it fails as an outage, from the driver's code (PostgreSQL's 57P01, MySQL's
    lost connection) or SQLAlchemy's invalidated connection."""
    url = request.getfixturevalue(f"{kind}_url")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    own_id = "SELECT pg_backend_pid()" if kind == "postgres" else "SELECT CONNECTION_ID()"
    end = "SELECT pg_terminate_backend({})" if kind == "postgres" else "KILL CONNECTION {}"
    try:
        with engine.connect() as doomed, engine.connect() as other:
            session = doomed.exec_driver_sql(own_id).scalar_one()
            other.exec_driver_sql(end.format(int(session)))
            with pytest.raises(sa.exc.DBAPIError) as caught:
                doomed.exec_driver_sql("SELECT 1")
            assert _is_unavailable(caught.value), caught.value
            assert _driver_unavailable(caught.value.orig)  # the driver's code alone says so
    finally:
        engine.dispose()
