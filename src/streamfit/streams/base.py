"""Source and sink contracts every stream implementation meets.

A ``Source`` never blocks past its timeout; it reports where it is as ``Offsets`` (the next
offset to read per topic-partition) and can be moved with ``seek``. A ``Sink`` buffers
``write`` calls and makes them durable on ``flush`` (or raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from streamfit.batch import Messages, Offsets

__all__ = ["OutRecord", "Record", "RecordSink", "Records", "Source"]


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
