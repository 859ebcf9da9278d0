"""The in-process stream: topics, partitions and offsets without a broker.

It keeps Kafka's contract (per-partition offsets, consumer-group commits, seek) so the worker
runs the same code on a laptop as on a cluster, and users can test their pipelines with it.
Consumers read in the order events were appended across all topics, which makes runs on the
in-process stream exactly repeatable.

>>> broker = MemoryBroker()
>>> broker.append("train", [b'{"x": 1}', b'{"x": 2}'])
>>> source = MemorySource(broker, ["train"], group_id="g")
>>> msgs = source.poll(10, timeout=0)
>>> [bytes(v) for v in msgs.values], msgs.offsets.tolist()
([b'{"x": 1}', b'{"x": 2}'], [0, 1])
>>> source.commit(msgs.next_offsets()); broker.committed("g")
{('train', 0): 2}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamfit.batch import Messages, Offsets
from streamfit.streams.base import Records

__all__ = ["MemoryBroker", "MemorySink", "MemorySource"]


@dataclass(slots=True)
class _Record:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


class MemoryBroker:
    """Topics held in memory, shared by the sources and sinks of one process."""

    def __init__(self, partitions: int = 1) -> None:
        self.default_partitions = partitions
        self._logs: dict[tuple[str, int], list[_Record]] = {}
        self._order: list[tuple[str, int, int]] = []  # (topic, partition, offset) in append order
        self._groups: dict[str, Offsets] = {}
        self._lock = threading.Condition()

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self._lock:
            for p in range(partitions or self.default_partitions):
                self._logs.setdefault((topic, p), [])

    def partitions(self, topic: str) -> list[int]:
        with self._lock:
            return sorted(p for (t, p) in self._logs if t == topic)

    def append(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Append events; without ``partition`` they are spread by key hash (or round robin)."""
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        with self._lock:
            if not any(t == topic for (t, _) in self._logs):
                self.create_topic(topic)
            n_parts = len([1 for (t, _) in self._logs if t == topic])
            for i, value in enumerate(values):
                key = keys[i] if keys is not None else None
                part = partition if partition is not None else _partition_for(key, i, n_parts)
                log = self._logs[(topic, part)]
                self._order.append((topic, part, len(log)))
                log.append(_Record(key, value, ts))
            self._lock.notify_all()

    def end_offsets(self, topic: str) -> Offsets:
        with self._lock:
            return {(t, p): len(log) for (t, p), log in self._logs.items() if t == topic}

    def committed(self, group_id: str) -> Offsets:
        with self._lock:
            return dict(self._groups.get(group_id, {}))

    def commit(self, group_id: str, offsets: Offsets) -> None:
        with self._lock:
            self._groups.setdefault(group_id, {}).update(offsets)

    def read(self, topic: str, partition: int = 0) -> list[tuple[bytes | None, bytes | None]]:
        """Every (key, value) of a partition, for tests and summaries."""
        with self._lock:
            return [(r.key, r.value) for r in self._logs.get((topic, partition), [])]

    def _scan(
        self, topics: set[str], positions: Offsets, start: int, max_records: int
    ) -> tuple[list[tuple[str, int, int, _Record]], int]:
        out: list[tuple[str, int, int, _Record]] = []
        i = start
        order = self._order
        while i < len(order) and len(out) < max_records:
            topic, part, offset = order[i]
            i += 1
            if topic in topics and offset >= positions.get((topic, part), 0):
                out.append((topic, part, offset, self._logs[(topic, part)][offset]))
        return out, i


def _partition_for(key: bytes | None, i: int, n_parts: int) -> int:
    if n_parts == 1:
        return 0
    if key is None:
        return i % n_parts
    import zlib

    return zlib.crc32(key) % n_parts


class MemorySource:
    """A consumer of the in-process stream; starts at its group's committed offsets."""

    def __init__(self, broker: MemoryBroker, topics: Sequence[str], group_id: str) -> None:
        self.broker = broker
        self.topics = set(topics)
        self.group_id = group_id
        self._positions: Offsets = broker.committed(group_id)
        self._cursor = 0  # index into the broker's append order

    def poll(self, max_records: int, timeout: float) -> Messages | None:
        deadline = time.monotonic() + timeout
        with self.broker._lock:
            while True:
                rows, self._cursor = self.broker._scan(
                    self.topics, self._positions, self._cursor, max_records
                )
                if rows:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.broker._lock.wait(remaining)
        for topic, part, offset, _ in rows:
            self._positions[(topic, part)] = offset + 1
        n = len(rows)
        return Messages(
            values=[r.value for *_, r in rows],
            keys=[r.key for *_, r in rows],
            topics=np.array([t for t, *_ in rows], dtype=object),
            partitions=np.fromiter((p for _, p, _, _ in rows), dtype=np.int32, count=n),
            offsets=np.fromiter((o for _, _, o, _ in rows), dtype=np.int64, count=n),
            timestamps=np.fromiter((r.timestamp_ms for *_, r in rows), dtype=np.int64, count=n),
        )

    def commit(self, offsets: Offsets, wait: bool = True) -> None:
        self.broker.commit(self.group_id, offsets)

    def seek(self, offsets: Offsets) -> None:
        self._positions.update(offsets)
        self._cursor = 0  # rescan from the start; entries before the positions are skipped

    def position(self) -> Offsets:
        return dict(self._positions)

    def behind(self, read: Offsets) -> set[tuple[str, int]]:
        """Partitions of its topics with events at or after ``read`` (else its position)."""
        out = set()
        for topic in self.topics:
            for key, end in self.broker.end_offsets(topic).items():
                if read.get(key, self._positions.get(key, 0)) < end:
                    out.add(key)
        return out

    def close(self) -> None:
        pass


class MemorySink:
    """Writes records to a topic of the in-process stream."""

    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self._pending: list[tuple[bytes | None, bytes]] = []

    def write(self, records: Records) -> None:
        self._pending.extend(records)

    def flush(self, timeout: float = 30.0) -> None:
        if self._pending:
            self.broker.append(
                self.topic, [value for _, value in self._pending], [key for key, _ in self._pending]
            )
            self._pending = []

    def close(self) -> None:
        self.flush()
