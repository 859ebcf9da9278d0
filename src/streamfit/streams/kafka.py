"""Apache Kafka source and sink, on confluent-kafka (librdkafka).

``KafkaSource`` reads as one member of a consumer group and never commits on its own: offsets
are committed only through ``commit`` (``enable.auto.commit`` and ``enable.auto.offset.store``
are always off), after the runtime has checkpointed, so Kafka's committed offsets follow the
database and never lead. ``KafkaSink`` is an idempotent producer (``acks=all``): ``flush``
returns once every written record is durable, or raises ``StreamError``.

A failure librdkafka reports with a code that means the broker is out of reach or did not
answer in time (``_UNAVAILABLE``: transport failure, all brokers down, a request or a message
timed out, no coordinator or leader yet) raises ``BrokerUnavailableError``, a ``StreamError``
that the worker waits out; any other failure raises a plain ``StreamError``.

A broker out of reach raises ``BrokerUnavailableError`` (a ``StreamError`` the worker waits
out) rather than leaving the caller waiting: ``KafkaSource.poll`` once librdkafka has said the
brokers are down and a metadata request confirms it, ``KafkaSink.flush`` likewise instead of
waiting out its whole timeout, and ``KafkaTransactions.commit`` (see there for what happens to
a transaction an outage interrupted). librdkafka's own reports of a broker that went away come
once per kind of error and minute, not once per reconnection attempt.

Offsets are Kafka's "next to read" (last processed + 1), as ``streamfit.batch.Offsets``.

Settings are printed with secrets masked:

>>> masked_config({"bootstrap.servers": "b:9092", "sasl.password": "hunter2"})
{'bootstrap.servers': 'b:9092', 'sasl.password': '***'}
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Literal

import numpy as np
from confluent_kafka import (
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from pydantic import SecretStr

from streamfit.batch import Messages, Offsets
from streamfit.errors import BrokerUnavailableError, GroupMovedOnError, StreamError
from streamfit.streams.base import PartitionsHook, Records

__all__ = [
    "ConfigValue",
    "KafkaSink",
    "KafkaSource",
    "PartitionsHook",
    "create_topics",
    "delete_topics",
    "masked_config",
]

log = logging.getLogger(__name__)

#: A client setting: what librdkafka takes, or a ``SecretStr`` that is only unwrapped for it.
ConfigValue = str | int | float | bool | SecretStr
#: Called with the (topic, partition) pairs a consumer gains or loses.

_SECRET_MARKERS = ("password", "secret", "jaas", "token", "key.pem", "credentials")

#: Errors on a consumed message that say "not yet" rather than "broken": logged, not raised.
_TRANSIENT = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError._MAX_POLL_EXCEEDED,  # the group rejoins; the checkpoint says where to resume
    }
)


#: librdkafka error codes that mean the broker is out of reach or did not answer in time: the
#: operation can succeed once it is back (``BrokerUnavailableError``).
_UNAVAILABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TIMED_OUT_QUEUE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    }
)


def _failure(message: str, error: object) -> StreamError:
    """``message`` as the error to raise for librdkafka's ``error`` (a ``KafkaError``, a
    ``KafkaException`` carrying one, or None): ``BrokerUnavailableError`` when its code says
    the broker is out of reach, else ``StreamError``.

    >>> type(_failure("commit failed", KafkaError(KafkaError._ALL_BROKERS_DOWN))).__name__
    'BrokerUnavailableError'
    >>> type(_failure("commit failed", KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    <class 'streamfit.errors.StreamError'>
    """
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError) and not error.fatal() and error.code() in _UNAVAILABLE:
        return BrokerUnavailableError(message)
    return StreamError(message)


#: Client errors that say a broker went out of reach (``Reachability``).
_UNREACHABLE = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT})
#: How long to wait for a metadata answer that tells whether a broker is back.
_PROBE_SECONDS = 2.0
#: At most one log line per kind of client error per this many seconds.
_ERROR_LOG_SECONDS = 60.0


class Reachability:
    """What a client's error callback said about the brokers: whether they were reported out
    of reach since the last successful probe, and its log lines, one per kind of error per
    minute (librdkafka reports every failed reconnection, many a second).

    >>> seen = Reachability("Kafka producer")
    >>> seen.down is None
    True
    >>> seen.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    >>> seen.down
    '1/1 brokers are down'
    """

    def __init__(self, client: str) -> None:
        self.client = client
        self.down: str | None = None  # what said the brokers are out of reach, if anything
        self.fatal: KafkaError | None = None
        self._logged: dict[int, float] = {}  # error code: when it was last logged
        self._unlogged: dict[int, int] = {}  # error code: reports since

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb``."""
        if err.fatal():
            self.fatal = err
            log.error("%s fatal error: %s", self.client, err.str())
            return
        code = err.code()
        if code in _UNREACHABLE:
            self.down = err.str()
        now = time.monotonic()
        if now - self._logged.get(code, -_ERROR_LOG_SECONDS) < _ERROR_LOG_SECONDS:
            self._unlogged[code] = self._unlogged.get(code, 0) + 1
            return
        self._logged[code] = now
        more = self._unlogged.pop(code, 0)
        since = f" ({more} more like it in the last minute)" if more else ""
        log.warning("%s: %s%s", self.client, err.str(), since)

    def check(self, probe: Callable[[], object]) -> None:
        """If the brokers were reported out of reach, ask for metadata (``probe``): raise
        ``BrokerUnavailableError`` if none comes, else forget the report."""
        if self.down is None:
            return
        try:
            probe()
        except KafkaException as exc:
            raise BrokerUnavailableError(f"broker unavailable: {self.down} ({exc})") from exc
        self.down = None


class _ClientLog:
    """librdkafka's log lines (its ``logger`` setting) to ``log``, at most one per facility
    and level a minute: a broker out of reach makes every client log each failed
    reconnection, many a second.

    >>> client_log = _ClientLog()
    >>> client_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "refused")
    >>> client_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "refused")
    >>> client_log.unlogged
    {('FAIL', 40): 1}
    """

    def __init__(self) -> None:
        self.logged: dict[tuple[str, int], float] = {}
        self.unlogged: dict[tuple[str, int], int] = {}

    def log(self, level: int, message: str, *args: object) -> None:
        key = (str(args[0]) if args else message, level)
        now = time.monotonic()
        if now - self.logged.get(key, -_ERROR_LOG_SECONDS) < _ERROR_LOG_SECONDS:
            self.unlogged[key] = self.unlogged.get(key, 0) + 1
            return
        self.logged[key] = now
        more = self.unlogged.pop(key, 0)
        if more:
            message += f" ({more} more like it in the last minute)"
        log.log(level, message, *args)


def masked_config(config: Mapping[str, ConfigValue]) -> dict[str, Any]:
    """``config`` with secret values (passwords, JAAS configs, tokens, keys) as ``'***'``."""
    return {
        key: "***"
        if isinstance(value, SecretStr) or any(m in key.lower() for m in _SECRET_MARKERS)
        else value
        for key, value in config.items()
    }


def _client_config(
    base: Mapping[str, Any], extra: Mapping[str, ConfigValue] | None
) -> dict[str, Any]:
    merged: dict[str, Any] = dict(base)
    for key, value in (extra or {}).items():
        merged[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return merged


def _tp_list(offsets: Offsets) -> list[TopicPartition]:
    return [TopicPartition(topic, part, off) for (topic, part), off in sorted(offsets.items())]


def _pairs(partitions: Iterable[TopicPartition]) -> list[tuple[str, int]]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _raise_partition_errors(partitions: Iterable[TopicPartition], what: str) -> None:
    failed = [tp for tp in partitions if tp.error]
    if failed:
        listed = ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed)
        raise _failure(f"{what} failed for {listed}", failed[0].error)


class KafkaSource:
    """Read ``topics`` as a member of consumer group ``group_id``.

    ``poll`` returns up to ``max_records`` messages and never waits past ``timeout`` (a
    rebalance hook that is slow is the only exception: it runs inside ``poll``). Message
    timestamps are Kafka's (ms since the epoch), -1 where the broker has none.

    ``on_assign`` and ``on_revoke`` (settable attributes) are called from inside ``poll`` with
    the (topic, partition) pairs gained or lost. ``seek`` called from ``on_assign`` sets where
    the new partitions start (e.g. the checkpointed offsets); partitions it leaves alone start
    at the group's committed offset, else at ``auto_offset_reset``. ``on_revoke`` runs before
    the partitions go, so a final checkpoint and ``commit`` can be made there.

    ``config`` is passed to librdkafka after the defaults (``SecretStr`` values are unwrapped);
    ``enable.auto.commit`` and ``enable.auto.offset.store`` stay off whatever it says.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        config: Mapping[str, ConfigValue] | None = None,
    ) -> None:
        if not topics:
            raise ValueError("KafkaSource needs at least one topic")
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.config: dict[str, ConfigValue] = dict(config or {})
        self.on_assign: PartitionsHook | None = None
        self.on_revoke: PartitionsHook | None = None

        settings = _client_config(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "auto.offset.reset": auto_offset_reset,
                "enable.partition.eof": False,
                # librdkafka stops prefetching for this long (1 s by default) once its queue
                # holds queued.min.messages; a worker that drains the queue faster than that
                # then waits on an empty queue
                "fetch.queue.backoff.ms": 10,
                # a subscribed topic created after the start (a score topic made later) is
                # seen at the next metadata refresh: every 5 min by default, 5 s here
                "topic.metadata.refresh.interval.ms": 5000,
                "logger": _ClientLog(),
            },
            self.config,
        )
        settings["enable.auto.commit"] = False
        settings["enable.auto.offset.store"] = False
        self._reach = Reachability("Kafka consumer")
        settings.setdefault("error_cb", self._reach.on_error)
        settings.setdefault("on_commit", _log_commit_failure)
        strategy = str(settings.get("partition.assignment.strategy", ""))
        self._incremental = (
            "cooperative" in strategy or str(settings.get("group.protocol", "")) == "consumer"
        )
        self._assigning: Offsets | None = None  # seeks made inside on_assign
        self._in_callback = False  # inside on_assign / on_revoke (called from poll)
        self._taken_while_paused: Offsets = {}  # messages keepalive's poll returned
        self._starts: Offsets = {}  # where reading starts, for partitions not read yet
        self._closed = False
        self._closing = False
        self._paused = False
        try:
            self._consumer = Consumer(settings)
            self._consumer.subscribe(
                self.topics,
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._revoked,
            )
        except KafkaException as exc:
            raise StreamError(f"cannot create a Kafka consumer: {exc}") from exc

    def __repr__(self) -> str:
        return (
            f"KafkaSource(bootstrap_servers={self.bootstrap_servers!r}, topics={self.topics!r}, "
            f"group_id={self.group_id!r}, auto_offset_reset={self.auto_offset_reset!r}, "
            f"config={masked_config(self.config)!r})"
        )

    # -------------------------------------------------------------------------- Source protocol

    def poll(self, max_records: int, timeout: float) -> Messages | None:
        """Up to ``max_records`` messages: those the client holds now, else the first to arrive
        within ``timeout`` s and those that came with it; None if none came. A poll never waits
        for a batch to fill (as the Java client's ``poll``): under load batches grow to
        ``max_records`` by themselves, and a quiet stream's events go on at once."""
        self._check_open()
        wanted = max(1, max_records)
        consume = self._consumer.consume
        try:
            batch = consume(num_messages=wanted, timeout=0)  # what the client holds now
            if not batch:
                # wait for the first message only: consume(n, timeout) would hold it until n
                # came or the timeout passed (with the defaults, 1,000 events and 0.2 s, every
                # event of a stream under 5,000 events/s waited up to 0.2 s)
                batch = consume(num_messages=1, timeout=timeout)
                if batch and wanted > 1:
                    batch += consume(num_messages=wanted - 1, timeout=0)
        except KafkaException as exc:
            raise _failure(f"consuming from {self.topics} failed: {exc}", exc) from exc
        self._check_fatal()
        if any(map(Message.error, batch)):
            batch = [m for m in batch if m.error() is None or not self._message_error(m)]
        if not batch:
            # nothing came: if the brokers were reported down, say so rather than seem idle
            self._reach.check(lambda: self._consumer.list_topics(self.topics[0], _PROBE_SECONDS))
            return None
        return _to_messages(batch)

    def commit(self, offsets: Offsets, wait: bool = True) -> None:
        """Commit ``offsets`` (next to read) for the group; with ``wait=False``, return once
        the commit is sent (a failure is then logged when the broker answers)."""
        self._check_open()
        if not offsets:
            return
        try:
            if not wait:
                self._consumer.commit(offsets=_tp_list(offsets), asynchronous=True)
                return
            result = self._consumer.commit(offsets=_tp_list(offsets), asynchronous=False)
        except KafkaException as exc:
            raise _failure(f"committing offsets {offsets} failed: {exc}", exc) from exc
        _raise_partition_errors(result or [], "commit")

    def seek(self, offsets: Offsets) -> None:
        """Continue each named partition at its offset.

        Inside ``on_assign`` this sets the start of the partitions being assigned; elsewhere
        every partition named must be currently assigned.
        """
        self._check_open()
        if self._assigning is not None:
            self._assigning.update(offsets)
            return
        assigned = set(self.assignment())
        missing = sorted(set(offsets) - assigned)
        if missing:
            raise StreamError(f"cannot seek partitions not assigned to this consumer: {missing}")
        for tp in _tp_list(offsets):
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._STATE:
                    raise _failure(f"seek to {tp} failed: {exc}", exc) from exc
                self._reassign(tp)  # the fetcher has not started yet: assign at the offset

    def close(self) -> None:
        """Leave the group (revoking partitions: ``on_revoke`` runs) and release the client."""
        if self._closed or self._closing:
            return
        # open until the consumer has left: on_revoke's checkpoint still commits its offsets
        self._closing = True
        try:
            self._consumer.close()
        except KafkaException as exc:
            raise _failure(f"closing the Kafka consumer failed: {exc}", exc) from exc
        finally:
            self._closed = True

    # ----------------------------------------------------------------------------- positions

    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this consumer holds now."""
        self._check_open()
        return sorted(_pairs(self._consumer.assignment()))

    def position(self) -> Offsets:
        """Next offset to read per assigned partition (those not yet positioned are left out)."""
        self._check_open()
        parts = self._consumer.assignment()
        if not parts:
            return {}
        try:
            positions = self._consumer.position(parts)
        except KafkaException as exc:
            raise _failure(f"reading positions failed: {exc}", exc) from exc
        return {(tp.topic, tp.partition): tp.offset for tp in positions if tp.offset >= 0}

    def end_offsets(self, timeout: float = 10.0) -> Offsets:
        """The high watermark (offset after the last message) of each assigned partition."""
        self._check_open()
        out: Offsets = {}
        for tp in self._consumer.assignment():
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, timeout=timeout)
            except KafkaException as exc:
                raise _failure(f"reading the end offset of {tp} failed: {exc}", exc) from exc
            out[(tp.topic, tp.partition)] = high
        return out

    def behind(self, read: Offsets) -> set[tuple[str, int]]:
        """Assigned partitions with messages at the broker at or after ``read`` (the next
        offset to read; for a partition missing from it, where the group starts reading it),
        and those whose end the client does not know yet.

        The ends are the client's own, from its last fetch of each partition (no request to
        the broker): on a backlog they are exact; on a live stream they trail the broker by a
        fetch.
        """
        self._check_open()
        parts = self._consumer.assignment()
        if not parts:
            return set()
        try:
            positions = {
                (tp.topic, tp.partition): tp.offset for tp in self._consumer.position(parts)
            }
        except KafkaException as exc:
            raise _failure(f"reading positions failed: {exc}", exc) from exc
        out: set[tuple[str, int]] = set()
        for tp in parts:
            key = (tp.topic, tp.partition)
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                high = OFFSET_INVALID
            position = max(read.get(key, OFFSET_INVALID), positions.get(key, OFFSET_INVALID))
            if position < 0:
                position = self._start_of(tp)
            if high < 0 or position < 0 or position < high:
                out.add(key)
        return out

    def _start_of(self, tp: TopicPartition) -> int:
        """Where the group starts reading ``tp`` (its committed offset, else the reset
        policy's end); -1 if the broker cannot tell now."""
        key = (tp.topic, tp.partition)
        if key not in self._starts:
            try:
                (found,) = self._consumer.committed([TopicPartition(tp.topic, tp.partition)], 5)
                if found.offset >= 0:
                    self._starts[key] = found.offset
                else:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=5)
                    self._starts[key] = low if self.auto_offset_reset == "earliest" else high
            except KafkaException:
                return -1
        return self._starts[key]

    def committed(self, partitions: Iterable[tuple[str, int]], timeout: float = 10.0) -> Offsets:
        """The group's committed offsets for ``partitions`` (those with none are left out)."""
        self._check_open()
        wanted = [TopicPartition(t, p) for t, p in partitions]
        if not wanted:
            return {}
        try:
            found = self._consumer.committed(wanted, timeout=timeout)
        except KafkaException as exc:
            raise _failure(f"reading committed offsets failed: {exc}", exc) from exc
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def group_metadata(self) -> Any:
        """This member's group metadata, for ``send_offsets_to_transaction``."""
        self._check_open()
        return self._consumer.consumer_group_metadata()

    def keepalive(self) -> None:
        """Stay in the group while the worker waits for a service: serve callbacks, take no
        messages (the assignment is paused while it waits). Inside a rebalance callback (a
        wait there) it does nothing: the callback already runs inside a poll."""
        self._check_open()
        if self._in_callback:
            return
        parts = self._consumer.assignment()
        if parts:
            self._consumer.pause(parts)
            self._paused = True
        # a message fetched before the pause took effect is read again after resume()
        message = self._consumer.poll(0)
        if message is not None and message.error() is None:
            key = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            self._taken_while_paused[key] = min(offset, self._taken_while_paused.get(key, offset))

    def resume(self) -> None:
        """Take messages again after ``keepalive``."""
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
        taken, self._taken_while_paused = self._taken_while_paused, {}
        assigned = set(self.assignment())
        again = {tp: offset for tp, offset in taken.items() if tp in assigned}
        if again:
            self.seek(again)

    # ------------------------------------------------------------------------------ internals

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        pairs = _pairs(partitions)
        for pair in pairs:
            self._starts.pop(pair, None)
        log.info("group %s: assigned %s", self.group_id, pairs)
        if self.on_assign is None:
            return  # confluent-kafka assigns them, at the committed offsets
        self._assigning = {}
        self._in_callback = True
        try:
            self.on_assign(pairs)
            starts = self._assigning
        finally:
            self._assigning = None
            self._in_callback = False
        chosen = [
            TopicPartition(tp.topic, tp.partition, starts.get((tp.topic, tp.partition), tp.offset))
            for tp in partitions
        ]
        if self._incremental:
            consumer.incremental_assign(chosen)
        else:
            consumer.assign(chosen)
        # a partition keeps librdkafka's pause across a rebalance: one paused by keepalive
        # before it was revoked would come back paused (the next keepalive pauses it again)
        consumer.resume(chosen)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        pairs = _pairs(partitions)
        log.info("group %s: revoked %s", self.group_id, pairs)
        for pair in pairs:
            self._taken_while_paused.pop(pair, None)
        if self.on_revoke is not None:
            self._in_callback = True
            try:
                self.on_revoke(pairs)
            finally:
                self._in_callback = False

    def _reassign(self, tp: TopicPartition) -> None:
        try:
            if self._incremental:
                self._consumer.incremental_unassign([TopicPartition(tp.topic, tp.partition)])
                self._consumer.incremental_assign([tp])
            else:
                current = self._consumer.assignment()
                self._consumer.assign(
                    [
                        tp
                        if (c.topic, c.partition) == (tp.topic, tp.partition)
                        else TopicPartition(c.topic, c.partition, OFFSET_INVALID)
                        for c in current
                    ]
                )
        except KafkaException as exc:
            raise _failure(f"seek to {tp} failed: {exc}", exc) from exc

    def _message_error(self, message: Message) -> bool:
        """True if the message is an error to skip; raises if it is one to stop for."""
        err = message.error()
        assert err is not None
        if err.code() == KafkaError._PARTITION_EOF:
            return True
        if err.fatal() or not (err.retriable() or err.code() in _TRANSIENT):
            raise StreamError(f"consuming from {self.topics} failed: {err.str()}")
        log.warning("group %s: %s (will retry)", self.group_id, err.str())
        return True

    def _check_fatal(self) -> None:
        if self._reach.fatal is not None:
            raise StreamError(f"the Kafka consumer failed: {self._reach.fatal.str()}")

    def _check_open(self) -> None:
        if self._closed:
            raise StreamError("the Kafka source is closed")


def _log_commit_failure(err: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """The answer to a commit sent without waiting (``commit(..., wait=False)``)."""
    failed = [tp for tp in partitions if tp.error is not None]
    if err is not None or failed:
        log.warning("committing offsets to Kafka failed: %s", err or failed[0].error)


def _to_messages(batch: list[Message]) -> Messages:
    """The batch as ``Messages``: one C-level pass per attribute (``map`` over the methods)."""
    n = len(batch)
    topics = list(map(Message.topic, batch))
    first = topics[0]
    stamps = np.fromiter(
        chain.from_iterable(map(Message.timestamp, batch)), dtype=np.int64, count=2 * n
    ).reshape(n, 2)  # (kind, ms since the epoch) per message
    try:
        partitions = np.fromiter(map(Message.partition, batch), dtype=np.int32, count=n)
        offsets = np.fromiter(map(Message.offset, batch), dtype=np.int64, count=n)
    except TypeError:  # a None among them (not for a consumed message): as 0
        partitions = np.fromiter((m.partition() or 0 for m in batch), dtype=np.int32, count=n)
        offsets = np.fromiter((m.offset() or 0 for m in batch), dtype=np.int64, count=n)
    times = stamps[:, 1].copy()
    times[stamps[:, 0] == TIMESTAMP_NOT_AVAILABLE] = -1
    return Messages(
        values=list(map(Message.value, batch)),
        keys=list(map(Message.key, batch)),
        topics=np.full(n, first, dtype=object)
        if topics.count(first) == n
        else np.array(topics, dtype=object),
        partitions=partitions,
        offsets=offsets,
        timestamps=times,
    )


class KafkaSink:
    """Produce records to ``topic`` with an idempotent producer (``acks=all``, no duplicates
    from retries). ``write`` queues; ``flush`` makes everything written durable or raises.

    ``config`` is passed to librdkafka after the defaults (``SecretStr`` values unwrapped).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        config: Mapping[str, ConfigValue] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.config: dict[str, ConfigValue] = dict(config or {})
        self._failed = 0
        self._first_failure: KafkaError | None = None
        self._reach = Reachability("Kafka producer")
        self._closed = False
        settings = _client_config(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                # no local deadline: while the broker is away, records wait for it (and the
                # worker, whose flush says the broker is unavailable, pauses) instead of failing
                "message.timeout.ms": 0,
                # a report (a callback into Python) only for a record that failed: flush()
                # still waits for every record, and a failure is still counted
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,
                "error_cb": self._reach.on_error,
                "logger": _ClientLog(),
            },
            self.config,
        )
        try:
            self._producer = Producer(settings)
        except KafkaException as exc:
            if "compression.type" in self.config or "lz4" not in str(exc):
                raise StreamError(f"cannot create a Kafka producer: {exc}") from exc
            settings["compression.type"] = "none"  # a librdkafka built without lz4
            self._producer = Producer(settings)

    def __repr__(self) -> str:
        return (
            f"KafkaSink(bootstrap_servers={self.bootstrap_servers!r}, topic={self.topic!r}, "
            f"config={masked_config(self.config)!r})"
        )

    def write(self, records: Records) -> None:
        """Queue ``records`` (``(key, value)`` bytes) for delivery."""
        self._check_usable()
        _produce_all(self._producer, self.topic, records, self._check_usable)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record written is acknowledged by the broker, or raise: at once
        ``BrokerUnavailableError`` when the broker is out of reach (the records stay queued for
        it), ``StreamError`` for records that failed."""
        self._check_usable()
        deadline = time.monotonic() + timeout
        while True:
            remaining = self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            if not remaining or time.monotonic() >= deadline:
                break
            self._reach.check(lambda: self._producer.list_topics(self.topic, _PROBE_SECONDS))
        failed, first = self._failed, self._first_failure
        self._failed, self._first_failure = 0, None
        self._check_usable()
        if first is not None:
            raise _failure(
                f"{failed} record(s) to {self.topic} were not delivered: {first.str()}", first
            )
        if remaining:  # the broker acknowledged none of them in time
            raise BrokerUnavailableError(
                f"{remaining} record(s) to {self.topic} still undelivered after {timeout}s"
            )

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` s; call ``flush`` to be sure) and stop."""
        if self._closed:
            return
        self._closed = True
        remaining = self._producer.flush(timeout)
        if remaining:
            log.warning("closing the sink to %s dropped %d record(s)", self.topic, remaining)

    def __len__(self) -> int:
        """Records queued and not yet acknowledged."""
        return len(self._producer)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed += 1
            if self._first_failure is None:
                self._first_failure = err

    def _check_usable(self) -> None:
        if self._closed:
            raise StreamError("the Kafka sink is closed")
        if self._reach.fatal is not None:
            raise StreamError(f"the Kafka producer failed: {self._reach.fatal.str()}")


def _admin(bootstrap_servers: str, config: Mapping[str, ConfigValue] | None) -> AdminClient:
    settings = _client_config(
        {"bootstrap.servers": bootstrap_servers, "logger": _ClientLog()}, config
    )
    return AdminClient(settings)


def create_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, ConfigValue] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create topics; those that exist already are left as they are."""
    if not names:
        return
    admin = _admin(bootstrap_servers, config)
    new = [NewTopic(name, partitions, replication_factor) for name in names]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout + 5)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise _failure(f"cannot create topic {name!r}: {exc}", exc) from exc
        except TimeoutError as exc:
            raise BrokerUnavailableError(f"creating topic {name!r} timed out") from exc


def delete_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    config: Mapping[str, ConfigValue] | None = None,
    timeout: float = 30.0,
) -> None:
    """Delete topics; those that do not exist are ignored."""
    if not names:
        return
    admin = _admin(bootstrap_servers, config)
    futures = admin.delete_topics(list(names), operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout + 5)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise _failure(f"cannot delete topic {name!r}: {exc}", exc) from exc
        except TimeoutError as exc:
            raise BrokerUnavailableError(f"deleting topic {name!r} timed out") from exc


def _produce_all(
    producer: Producer,
    topic: str,
    records: Records,
    check: Callable[[], None] | None = None,
) -> None:
    """Queue every record; while the local queue is full, serve it (and run ``check``, which
    raises if the producer became unusable). Delivery reports are served once, at the end.
    Raises ``StreamError`` if the client rejects a record."""
    produce = producer.produce
    try:
        for key, value in records:
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.05)  # the local queue is full: let it drain
                    if check is not None:
                        check()
    except KafkaException as exc:
        raise _failure(f"producing to {topic} failed: {exc}", exc) from exc
    producer.poll(0)


#: Why a transaction must be aborted, when it is that the consumer group moved on (this
#: member's generation is over): its offsets can no longer be committed.
_GROUP_MOVED_ON = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
    }
)
#: How long past its own timeout a transactional call may take before its producer is taken
#: for stuck (``KafkaTransactions``).
_STUCK_GRACE_SECONDS = 10.0


class KafkaTransactions:
    """Exactly-once output: one transactional producer for every output topic, whose records
    and the consumer's offsets commit together (``processing: exactly_once``).

    ``sink(topic)`` gives a ``RecordSink`` writing inside the open transaction; ``commit(offsets)``
    sends ``offsets`` (next to read) to the transaction for the source's group, commits it and
    opens the next one. A consumer reading with ``isolation.level=read_committed`` sees each
    record once. ``transactional_id`` must be stable per worker: a restarted worker fences its
    predecessor and aborts what that one left open.

    The records of the open transaction are also kept here until it commits, so that an outage
    loses none of them. A commit the broker's absence interrupts raises
    ``BrokerUnavailableError``, and calling ``commit`` again (with the same or later offsets)
    takes it up where it stopped:

    - a step that failed but may be retried (no answer in time) is tried again;
    - a transaction that must be aborted (its records timed out, its coordinator aborted it)
      is aborted, and the next one gets every record it held again before it commits;
    - a call that does not return: librdkafka's ``send_offsets_to_transaction`` can wait for
      ever, whatever its timeout, for a group coordinator that went away during the call
      (librdkafka issues 5456 and 5511, open in the 2.16 this project pins). Past
      its timeout and a grace, the producer is set aside and a new one with the same
      ``transactional_id`` takes over (fencing the old one, whose transaction the coordinator
      aborts), with the records produced again in its first transaction.

    When the consumer group has moved on (this member's generation ended during the outage)
    the offsets cannot be committed: the transaction is aborted, its records are dropped, and
    ``GroupMovedOnError`` is raised: the caller must go back to its last checkpoint and process
    the events again. ``abort`` drops the open transaction the same way.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        transactional_id: str,
        source: KafkaSource,
        config: Mapping[str, ConfigValue] | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.source = source
        self.bootstrap_servers = bootstrap_servers
        self.transactional_id = transactional_id
        self.timeout = timeout
        self._reach = Reachability("Kafka transactional producer")
        self._settings = _client_config(
            {
                "bootstrap.servers": bootstrap_servers,
                "transactional.id": transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "error_cb": self._reach.on_error,
                "logger": _ClientLog(),
            },
            config,
        )
        self._pending: list[tuple[str, Records]] = []  # the open transaction's records
        self._must_abort = False  # the open transaction failed and must be aborted
        self._committing = False  # commit_transaction was called for the open transaction
        self._set_aside: list[tuple[Producer, threading.Thread]] = []  # stuck producers
        self._producer: Producer | None = None
        self._start()

    def sink(self, topic: str) -> _TransactionalSink:
        return _TransactionalSink(self, topic)

    def produce(self, topic: str, records: Records) -> None:
        """Produce ``records`` in the open transaction (they are kept until it commits)."""
        self._pending.append((topic, records))
        if self._producer is None or self._must_abort:
            return  # produced when the next transaction begins
        try:
            _produce_all(self._producer, topic, records)
        except StreamError:
            self._must_abort = True  # the transaction failed: the next one produces them

    def commit(self, offsets: Offsets) -> None:
        """Commit what was produced since the last commit, with ``offsets``, atomically."""
        if self._producer is None:
            self._start()
        if self._must_abort:
            self._abort_and_begin()
        producer = self._producer
        assert producer is not None
        # while the broker is known to be away, a call could wait for ever: do not start one
        self._reach.check(lambda: producer.list_topics(None, _PROBE_SECONDS))
        try:
            if not self._committing:
                if offsets:
                    metadata = self.source.group_metadata()
                    self._call(
                        producer,
                        "sending offsets to the transaction",
                        producer.send_offsets_to_transaction,
                        _tp_list(offsets),
                        metadata,
                        self.timeout,
                    )
                self._committing = True
            self._call(
                producer, "committing the transaction", producer.commit_transaction, self.timeout
            )
        except KafkaException as exc:
            self._fail(exc)
        self._committing = False
        self._pending = []
        producer.begin_transaction()

    def abort(self) -> None:
        """Drop the open transaction and its records (aborted before the next commit)."""
        self._pending = []
        self._must_abort = self._producer is not None
        self._committing = False

    def committed(self, partitions: Iterable[tuple[str, int]]) -> Offsets:
        """What the last committed transaction recorded as consumed, per partition."""
        return self.source.committed(partitions)

    def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(10)

    # ------------------------------------------------------------------------------ internals

    def _start(self) -> None:
        """A new producer (fencing any earlier one of the same id), in a transaction holding
        the pending records."""
        try:
            producer = Producer(self._settings)
        except KafkaException as exc:
            raise StreamError(f"cannot create a Kafka transactional producer: {exc}") from exc
        try:
            self._call(producer, "starting transactions", producer.init_transactions, self.timeout)
            producer.begin_transaction()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.retriable():
                raise BrokerUnavailableError(f"cannot start Kafka transactions: {exc}") from exc
            raise StreamError(f"cannot start Kafka transactions: {exc}") from exc
        self._producer = producer
        self._must_abort = self._committing = False
        self._produce_pending()

    def _abort_and_begin(self) -> None:
        producer = self._producer
        assert producer is not None
        try:
            self._call(
                producer, "aborting the transaction", producer.abort_transaction, self.timeout
            )
        except KafkaException as exc:
            self._fail(exc)
        self._must_abort = self._committing = False
        producer.begin_transaction()
        self._produce_pending()

    def _produce_pending(self) -> None:
        assert self._producer is not None
        try:
            for topic, records in self._pending:
                _produce_all(self._producer, topic, records)
        except StreamError:
            self._must_abort = True

    def _fail(self, exc: KafkaException) -> None:
        """Raise what a failed transactional call means (see the class docstring)."""
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError) or error.fatal():
            raise StreamError(f"the Kafka transaction failed: {exc}") from exc
        if error.txn_requires_abort():
            self._must_abort, self._committing = True, False
            if error.code() in _GROUP_MOVED_ON:
                self._pending = []
                raise GroupMovedOnError(
                    f"the consumer group moved on during the Kafka transaction, which is "
                    f"aborted with its records: {error.str()}"
                ) from exc
            raise BrokerUnavailableError(
                f"the Kafka transaction failed ({error.str()}): it is aborted, and its records "
                f"go again into the next one"
            ) from exc
        if error.retriable():
            raise BrokerUnavailableError(f"the Kafka transaction failed: {error.str()}") from exc
        raise StreamError(f"the Kafka transaction failed: {exc}") from exc

    def _call(
        self, producer: Producer, what: str, call: Callable[..., object], *args: object
    ) -> None:
        """``call(*args)`` in a thread of its own, given its timeout and a grace to return.

        If it does not, the producer is set aside, still referenced (its thread is inside
        librdkafka), and the next ``commit`` starts a new one.
        """
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                call(*args)
                outcome.append(None)
            except BaseException as exc:  # handed to the waiting thread
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"kafka-txn-{what}", daemon=True)
        thread.start()
        thread.join(self.timeout + _STUCK_GRACE_SECONDS)
        if thread.is_alive():
            self._set_aside.append((producer, thread))
            if self._producer is producer:
                self._producer = None
            self._must_abort = self._committing = False
            raise BrokerUnavailableError(
                f"{what} did not return within {self.timeout + _STUCK_GRACE_SECONDS:.0f} s: a "
                f"new producer with transactional id {self.transactional_id!r} takes over"
            )
        if outcome[0] is not None:
            raise outcome[0]


class _TransactionalSink:
    """A ``RecordSink`` writing into a ``KafkaTransactions``' open transaction."""

    def __init__(self, transactions: KafkaTransactions, topic: str) -> None:
        self.transactions = transactions
        self.topic = topic

    def write(self, records: Records) -> None:
        self.transactions.produce(self.topic, records)

    def flush(self, timeout: float = 30.0) -> None:
        """Records become visible when the transaction commits (``KafkaTransactions.commit``)."""

    def close(self) -> None:
        pass
