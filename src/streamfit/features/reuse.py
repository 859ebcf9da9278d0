"""Keeping a scored batch's hashed entries until its rows are learned.

When training events are also scored (``outputs.score_training_events``), each one is
featurized twice: as it arrives, to be scored, and when its learning block completes, to be
learned. Between the two only the numeric features change (they are scaled by running moments
that have moved); the categorical and text entries, which cost most of the featurizing (hashing,
tokenizing), are the same. ``ScoredEntries`` keeps them from the first pass, per partition and
by offset, and gives them back for the second.

It never changes a result. Entries are given back only when every row asked for is found, as
the same event (the same payload object at the same offset), read under the same schema and
with each hashed field's column of the same dtype and boolean flag; otherwise the caller
featurizes the rows again. Each row's entries keep their order, so the matrix built from them
is the one a fresh pass builds, bit for bit. What is kept is bounded (``max_entries``); past
that, it is all dropped.

>>> import numpy as np
>>> from streamfit.batch import Messages
>>> meta = Messages.from_values([b"a", b"b", b"c"], topic="t", first_offset=10)
>>> rows, cols = np.array([0, 1, 2, 2]), np.array([5, 6, 7, 8])
>>> kept = ScoredEntries()
>>> kept.keep(meta, np.array([0, 2]), (rows, cols, np.ones(4)), kinds=(), version=1)
>>> found = kept.recall(meta.take(np.array([2])), kinds=(), version=1)
>>> found[0].tolist(), found[1].tolist()  # row 2 of the scored batch is row 0 of this one
([0, 0], [7, 8])
>>> kept.recall(meta.take(np.array([1])), kinds=(), version=1) is None  # not kept
True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from operator import is_
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from streamfit.batch import Messages, pick

__all__ = ["Entries", "ScoredEntries"]

#: Coordinates of sparse entries: row, column and value of each.
Entries = tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.float64]]
#: What is kept per entry: its row first, then any arrays of one value per entry (the column,
#: the value, ...), all kept and given back together.
AnyEntries = TypeVar("AnyEntries", bound=tuple[npt.NDArray[Any], ...])
#: Per hashed field: ``None`` where the batch lacks it, else (object dtype, boolean flag).
Kinds = tuple[tuple[bool, bool] | None, ...]
TopicPartition = tuple[str, int]


@dataclass(slots=True)
class _Kept:
    """One partition's rows of a scored batch, with their entries (rows numbered from 0)."""

    offsets: npt.NDArray[np.int64]
    values: list[bytes | None]
    entries: tuple[npt.NDArray[Any], ...]
    kinds: Kinds
    version: int


class ScoredEntries:
    """Hashed entries of scored rows, kept per partition until those rows are learned."""

    def __init__(self, max_entries: int = 1 << 20) -> None:
        self.max_entries = max_entries
        self._kept: dict[TopicPartition, deque[_Kept]] = {}
        self._size = 0

    def __len__(self) -> int:
        """How many entries are kept."""
        return self._size

    def keep(
        self,
        meta: Messages,
        index: npt.NDArray[np.intp],
        entries: tuple[npt.NDArray[Any], ...],
        *,
        kinds: Kinds,
        version: int,
    ) -> None:
        """Keep the entries of rows ``index`` (increasing) of a batch whose rows are ``meta``."""
        if len(index) == 0:
            return
        if len(index) < len(meta):
            entries = _select(entries, index, len(meta))
            meta = meta.take(index)
        size = len(entries[0])
        if self._size + size > self.max_entries:
            self.clear()
            if size > self.max_entries:
                return
        for key, rows in meta.by_partition():
            if rows is None:
                part, part_entries = meta, entries
            else:
                part, part_entries = meta.take(rows), _select(entries, rows, len(meta))
            queue = self._kept.setdefault(key, deque())
            if queue and queue[-1].offsets[-1] >= part.offsets[0]:
                self.forget([key])  # the partition was read again from further back
                queue = self._kept.setdefault(key, deque())
            queue.append(_Kept(part.offsets, part.values, part_entries, kinds, version))
        self._size += size

    def recall(self, meta: Messages, *, kinds: Kinds, version: int) -> Any:
        """The kept entries of the rows ``meta`` (one partition, offsets increasing), rows
        numbered as in ``meta``; ``None`` unless every row is found as it was kept.

        Kept rows up to the last of ``meta`` are then forgotten: learning goes on past them.
        """
        n = len(meta)
        topic = meta.single_topic()
        if n == 0 or topic is None or meta.partitions.min() != meta.partitions.max():
            return None
        queue = self._kept.get((topic, int(meta.partitions[0])))
        if not queue:
            return None
        offsets = meta.offsets
        pieces: list[tuple[npt.NDArray[Any], ...]] = []
        start = 0
        for kept in queue:
            if start == n:
                break
            if kept.offsets[-1] < offsets[start]:
                continue
            stop = int(np.searchsorted(offsets, kept.offsets[-1], side="right"))
            at = np.searchsorted(kept.offsets, offsets[start:stop])
            if (
                not _same_kinds(kept.kinds, kinds)
                or kept.version != version
                or not np.array_equal(kept.offsets[at], offsets[start:stop])
                or not all(map(is_, _kept_values(kept, at), meta.values[start:stop]))
            ):
                break
            rows, *rest = _select(kept.entries, at, len(kept.offsets))
            pieces.append((rows + start, *rest))
            start = stop
        self._forget_through(queue, int(offsets[-1]))
        if start < n:
            return None
        if len(pieces) == 1:
            return pieces[0]
        return tuple(np.concatenate(arrays) for arrays in zip(*pieces, strict=True))

    def forget(self, partitions: list[TopicPartition] | None = None) -> None:
        """Drop what is kept of ``partitions`` (all of them by default)."""
        for key in list(self._kept) if partitions is None else partitions:
            queue = self._kept.pop(key, None)
            if queue:
                self._size -= sum(len(kept.entries[0]) for kept in queue)

    def clear(self) -> None:
        self._kept.clear()
        self._size = 0

    def _forget_through(self, queue: deque[_Kept], offset: int) -> None:
        while queue and queue[0].offsets[-1] <= offset:
            self._size -= len(queue.popleft().entries[0])


def _select(entries: AnyEntries, index: npt.NDArray[np.intp], n_rows: int) -> AnyEntries:
    """The entries of rows ``index`` (increasing), renumbered 0, 1, ...; each row's entries
    keep their order."""
    if len(index) == n_rows:
        return entries
    rows, *rest = entries
    position = np.full(n_rows, -1, dtype=np.intp)
    position[index] = np.arange(len(index))
    new = position[rows]
    keep = new >= 0
    return (new[keep], *(array[keep] for array in rest))  # type: ignore[return-value]


def _kept_values(kept: _Kept, at: npt.NDArray[np.intp]) -> list[bytes | None]:
    """The payloads of kept rows ``at`` (increasing positions)."""
    return kept.values if len(at) == len(kept.values) else pick(kept.values, at)


def _same_kinds(kept: Kinds, now: Kinds) -> bool:
    """Every hashed field read the same way: where both batches have it, the same dtype
    (object or not) and boolean flag, so its values give the same strings."""
    if len(kept) != len(now):
        return False
    return all(a is None or b is None or a == b for a, b in zip(kept, now, strict=True))
