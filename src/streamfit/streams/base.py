"""Source and sink contracts every stream implementation meets.

A ``Source`` never blocks past its timeout; it reports where it is as ``Offsets`` (the next
offset to read per topic-partition) and can be moved with ``seek``. A ``Sink`` buffers
``write`` calls and makes them durable on ``flush`` (or raises).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from streamfit.batch import Messages, Offsets

__all__ = [
    "Backlogged",
    "GroupMember",
    "OutRecord",
    "PartitionsHook",
    "Pausable",
    "Record",
    "RecordSink",
    "Records",
    "Source",
    "Transactions",
]

TopicPartition = tuple[str, int]

#: Called with the (topic, partition) pairs a consumer gains or loses.
PartitionsHook = Callable[[list[TopicPartition]], None]


@runtime_checkable
class Source(Protocol):
    """Where events come from: Kafka, the in-process stream, a file replay."""

    def poll(self, max_records: int, timeout: float) -> Messages | None:
        """Up to ``max_records`` messages, waiting at most ``timeout`` seconds; None if none."""
        ...

    def commit(self, offsets: Offsets, wait: bool = True) -> None:
        """Record ``offsets`` (next to read) as processed, for this consumer group; with
        ``wait=False`` the source may return before the commit is done."""
        ...

    def seek(self, offsets: Offsets) -> None:
        """Continue reading each named partition at the given offset."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class GroupMember(Protocol):
    """A source that is one member of a consumer group: partitions come and go.

    The hooks are called from inside ``poll``; ``seek`` called in ``on_assign`` sets where the
    new partitions start; ``on_revoke`` runs before the partitions go.
    """

    on_assign: PartitionsHook | None
    on_revoke: PartitionsHook | None


@runtime_checkable
class Pausable(Protocol):
    """A source that can stay in its consumer group while taking no events."""

    def keepalive(self) -> None:
        """Serve the group's callbacks, take no events (pausing its partitions)."""
        ...

    def resume(self) -> None:
        """Take events again after ``keepalive``."""
        ...


@runtime_checkable
class Backlogged(Protocol):
    """A source that knows which of its partitions have events waiting beyond a position."""

    def behind(self, read: Offsets) -> set[TopicPartition]:
        """Partitions with events at the source at or after ``read`` (next offset to read per
        partition; a partition missing from ``read`` counts from where reading starts), and
        those whose end is not known yet."""
        ...


class OutRecord(NamedTuple):
    """One message to produce: key and value bytes. A sink takes any ``(key, value)`` pairs;
    this names them where records are made one at a time."""

    key: bytes | None
    value: bytes


#: One message to produce as a plain ``(key, value)`` pair.
Record = tuple[bytes | None, bytes]

#: What a sink writes: ``(key, value)`` pairs, ``OutRecord`` or plain tuples.
Records = Sequence[Record]


@runtime_checkable
class RecordSink(Protocol):
    """Where output messages go (a Kafka topic, an in-process topic)."""

    def write(self, records: Records) -> None: ...

    def flush(self, timeout: float = 30.0) -> None:
        """Durable on return, or raises ``StreamError``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Transactions(Protocol):
    """Outputs and consumer offsets committed together (``processing: exactly_once``)."""

    def commit(self, offsets: Offsets) -> None:
        """Commit the outputs written since the last commit with the consumer ``offsets``."""
        ...

    def committed(self, partitions: Iterable[TopicPartition]) -> Offsets:
        """The consumer offsets last committed by a transaction, for ``partitions``."""
        ...

    def abort(self) -> None:
        """Drop the outputs written since the last commit."""
        ...

    def close(self) -> None: ...
