"""The two shapes data takes between layers.

``Messages`` is what a source returns: raw payloads plus, per row, where each came from
(topic, partition, offset), its key and its timestamp. ``Batch`` is what the decoder makes of
them: one column per field (numpy arrays), aligned with the same per-row metadata.

The hot path works on whole batches; nothing downstream iterates events in Python where a
vectorized form exists.

>>> msgs = Messages.from_values([b'{"x": 1}', b'{"x": 2}'], topic="t")
>>> len(msgs), msgs.offsets.tolist()
(2, [0, 1])
>>> msgs.take(np.array([1])).values
[b'{"x": 2}']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Batch", "DeadLetter", "Messages", "Offsets", "pick"]

#: Next offset to read, per (topic, partition): Kafka's convention (last processed + 1).
Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class Messages:
    """Raw events polled from a source, with their coordinates."""

    values: list[bytes | None]
    keys: list[bytes | None]
    topics: npt.NDArray[np.object_]
    partitions: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]  # milliseconds since the epoch
    # ``single_topic``, once worked out (several steps of a poll ask for it)
    _single_topic: list[str | None] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def from_values(
        cls,
        values: Sequence[bytes | None],
        topic: str = "events",
        partition: int = 0,
        first_offset: int = 0,
        keys: Sequence[bytes | None] | None = None,
        timestamp_ms: int = 0,
    ) -> Messages:
        """Messages of one partition with consecutive offsets (handy in tests)."""
        n = len(values)
        return cls(
            values=list(values),
            keys=list(keys) if keys is not None else [None] * n,
            topics=np.full(n, topic, dtype=object),
            partitions=np.full(n, partition, dtype=np.int32),
            offsets=np.arange(first_offset, first_offset + n, dtype=np.int64),
            timestamps=np.full(n, timestamp_ms, dtype=np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[Messages]) -> Messages:
        """Join several message lists, keeping their order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            values=list(chain.from_iterable(p.values for p in parts)),
            keys=list(chain.from_iterable(p.keys for p in parts)),
            topics=np.concatenate([p.topics for p in parts]) if parts else _empty_obj(),
            partitions=np.concatenate([p.partitions for p in parts])
            if parts
            else np.empty(0, np.int32),
            offsets=np.concatenate([p.offsets for p in parts]) if parts else np.empty(0, np.int64),
            timestamps=np.concatenate([p.timestamps for p in parts])
            if parts
            else np.empty(0, np.int64),
        )

    def take(self, index: npt.NDArray[np.intp]) -> Messages:
        """Rows at ``index`` (an integer array), in that order."""
        return Messages(
            values=pick(self.values, index),
            keys=pick(self.keys, index),
            topics=self.topics[index],
            partitions=self.partitions[index],
            offsets=self.offsets[index],
            timestamps=self.timestamps[index],
        )

    def rows(self, start: int, stop: int) -> Messages:
        """Rows ``start`` to ``stop`` (a slice: the arrays are views, not copies)."""
        return Messages(
            values=self.values[start:stop],
            keys=self.keys[start:stop],
            topics=self.topics[start:stop],
            partitions=self.partitions[start:stop],
            offsets=self.offsets[start:stop],
            timestamps=self.timestamps[start:stop],
        )

    def single_topic(self) -> str | None:
        """The topic of every message, if they all have one topic (and there are some).

        >>> one = Messages.from_values([b"", b""], topic="t")
        >>> one.single_topic(), Messages.concat([one, Messages.from_values([b""])]).single_topic()
        ('t', None)
        """
        if not self._single_topic:
            topics = self.topics.tolist()
            one = bool(topics) and topics.count(topics[0]) == len(topics)
            self._single_topic.append(str(topics[0]) if one else None)
        return self._single_topic[0]

    def by_partition(self) -> list[tuple[tuple[str, int], npt.NDArray[np.intp] | None]]:
        """The rows of each (topic, partition), in the order the partitions first appear;
        ``None`` for the rows when the messages are all of one partition (every row).

        >>> a = Messages.from_values([b"", b""], topic="t", partition=1)
        >>> b = Messages.from_values([b""], topic="t", partition=0)
        >>> [(key, rows.tolist()) for key, rows in Messages.concat([a, b, a]).by_partition()]
        [(('t', 1), [0, 1, 3, 4]), (('t', 0), [2])]
        >>> a.by_partition()
        [(('t', 1), None)]
        """
        if len(self) == 0:
            return []
        topic, partitions = self.single_topic(), self.partitions
        if topic is not None and partitions.min() == partitions.max():
            return [((topic, int(partitions[0])), None)]
        codes, topics = pd.factorize(self.topics)
        group = codes.astype(np.int64) * (int(partitions.max()) + 1) + partitions
        distinct, first = np.unique(group, return_index=True)
        out: list[tuple[tuple[str, int], npt.NDArray[np.intp] | None]] = []
        for at in np.argsort(first, kind="stable").tolist():
            row = int(first[at])
            key = (str(topics[codes[row]]), int(partitions[row]))
            out.append((key, np.flatnonzero(group == distinct[at])))
        return out

    def next_offsets(self) -> Offsets:
        """For each (topic, partition) in these messages, the offset after its last one."""
        out: Offsets = {}
        if len(self) == 0:
            return out
        topic = self.single_topic()
        if topic is not None and self.partitions.min() == self.partitions.max():
            return {(topic, int(self.partitions[0])): int(self.offsets.max()) + 1}
        for topic in set(self.topics.tolist()):
            in_topic = self.topics == topic
            parts = self.partitions[in_topic]
            offs = self.offsets[in_topic]
            maxima = np.full(int(parts.max()) + 1, -1, dtype=np.int64)
            np.maximum.at(maxima, parts, offs)
            for part in np.flatnonzero(maxima >= 0).tolist():
                out[(topic, part)] = int(maxima[part]) + 1
        return out


def pick(items: list[bytes | None], index: npt.NDArray[np.intp]) -> list[bytes | None]:
    """``[items[i] for i in index]``, in C (``itemgetter``) for more than one row."""
    if len(index) < 2:
        return [items[i] for i in index.tolist()]
    return list(itemgetter(*index.tolist())(items))


def _empty_obj() -> npt.NDArray[np.object_]:
    return np.empty(0, dtype=object)


@dataclass(slots=True)
class Batch:
    """Decoded events as columns, aligned row for row with ``meta``.

    ``columns`` maps a field name to a 1-d array: ``float64`` for numbers (NaN = missing),
    ``bool`` never (booleans are ``float64`` 0/1 with NaN missing, listed in ``booleans``),
    ``object`` for strings and anything else (``None`` = missing). ``partial``, when not
    ``None``, is True for the rows whose event had fields that are not among the columns (see
    ``streamfit.limits``): their original bytes, ``meta.values``, are the whole event.

    >>> b = Batch({"x": np.array([1.0, np.nan])}, Messages.from_values([b"", b""]))
    >>> len(b), b.field_names, b.partial
    (2, ['x'], None)
    """

    columns: dict[str, np.ndarray]
    meta: Messages
    booleans: frozenset[str] = field(default_factory=frozenset)
    partial: npt.NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def field_names(self) -> list[str]:
        return list(self.columns)

    def take(self, index: npt.NDArray[np.intp]) -> Batch:
        """Rows at ``index``, every column and the metadata alike."""
        return Batch(
            {name: col[index] for name, col in self.columns.items()},
            self.meta.take(index),
            self.booleans,
            None if self.partial is None else self.partial[index],
        )

    def rows(self, start: int, stop: int) -> Batch:
        """Rows ``start`` to ``stop`` (a slice: the columns are views, not copies).

        >>> b = Batch({"x": np.arange(4.0)}, Messages.from_values([b""] * 4))
        >>> part = b.rows(1, 3)
        >>> part.columns["x"].tolist(), part.meta.offsets.tolist()
        ([1.0, 2.0], [1, 2])
        """
        return Batch(
            {name: col[start:stop] for name, col in self.columns.items()},
            self.meta.rows(start, stop),
            self.booleans,
            None if self.partial is None else self.partial[start:stop],
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not be used, with why, and its original bytes (nothing is lost)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    reason: str

    @classmethod
    def from_row(cls, messages: Messages, row: int, reason: str) -> DeadLetter:
        """The dead letter for row ``row`` of ``messages``."""
        return cls(
            topic=str(messages.topics[row]),
            partition=int(messages.partitions[row]),
            offset=int(messages.offsets[row]),
            key=messages.keys[row],
            value=messages.values[row],
            timestamp_ms=int(messages.timestamps[row]),
            reason=reason,
        )
