"""Learning in blocks aligned on offsets, so that a replay learns exactly what a first run did.

A poll returns whatever the broker had; where one batch ends depends on timing. If models
learned each poll's rows as one step, a worker restarted from a checkpoint would cut the
stream differently and end with a different model. So training rows wait in a ``BlockBuffer``
until their block, offsets ``[k * size, (k + 1) * size)`` of their partition, is complete (the
source has read past it); each block is then learned on its own. Blocks depend only on the
offsets, never on timing, so the model is a function of the events alone.

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> buf = BlockBuffer(size=4)
>>> rows = Batch({"x": np.arange(6.0)}, Messages.from_values([b""] * 6, topic="t"))
>>> buf.add(rows)
>>> [len(b) for b in buf.take_complete({("t", 0): 6})]  # offsets 0-3 form a whole block
[4]
>>> buf.learned_frontier({("t", 0): 6})  # learning resumes at the pending block's start
{('t', 0): 4}
>>> [b.meta.offsets.tolist() for b in buf.take_all()]
[[4, 5]]

Several partitions: blocks are learned in one order fixed by the offsets alone, the block index
(``offset // size``) first, then the (topic, partition). A partition that the source says is
*behind* (events wait for it at the broker: read position below the end of the partition) holds
back every block after its next one in that order, until its events come. While the topics
already hold the events (a backlog, a replay after a crash), the order of learning is therefore
the same in every run, however polls interleave the partitions. On a live stream a partition
that is caught up does not hold the others back, so there the order follows arrival.

Partition 0 has read two whole blocks; partition 1 has read nothing yet, but events wait for
it: only block 0 of partition 0 comes before partition 1's block 0 in the order.

>>> buf = BlockBuffer(size=2)
>>> buf.add(Batch({"x": np.arange(4.0)}, Messages.from_values([b""] * 4, topic="t")))
>>> read = {("t", 0): 4, ("t", 1): 0}
>>> [b.meta.offsets.tolist() for b in buf.take_ready(read, behind={("t", 1)})]
[[0, 1]]
>>> [b.meta.offsets.tolist() for b in buf.take_ready(read, behind=())]  # caught up
[[2, 3]]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, Offsets

log = logging.getLogger("streamfit.worker")

__all__ = ["BlockBuffer", "HoldBack", "concat_batches"]

TopicPartition = tuple[str, int]


class BlockBuffer:
    """Training rows waiting for their block to complete, per topic-partition."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pending: dict[TopicPartition, list[Batch]] = {}

    def __len__(self) -> int:
        return sum(len(b) for parts in self._pending.values() for b in parts)

    def add(self, batch: Batch) -> None:
        """Queue training rows (any partitions, offsets increasing within each)."""
        if len(batch) == 0:
            return
        for key, rows in batch.meta.by_partition():
            self._pending.setdefault(key, []).append(batch if rows is None else batch.take(rows))

    def take_complete(self, read: Offsets) -> list[Batch]:
        """Every whole block below the read positions, one batch per block, in offset order."""
        return [
            block for run, bounds in self.take_complete_runs(read) for block in _cut(run, bounds)
        ]

    def take_complete_runs(self, read: Offsets) -> list[tuple[Batch, list[int]]]:
        """The whole blocks below the read positions as runs: per partition, one batch of
        consecutive blocks and the row indices where each block starts (and the last ends)."""
        out: list[tuple[Batch, list[int]]] = []
        for key in list(self._pending):
            boundary = (read.get(key, 0) // self.size) * self.size
            run = self._split(key, boundary)
            if run is not None:
                out.append(run)
        return out

    def take_ready(self, read: Offsets, behind: Collection[TopicPartition] = ()) -> list[Batch]:
        """The blocks ``take_ready_runs`` gives, one batch per block, in learning order."""
        return [
            block
            for run, bounds in self.take_ready_runs(read, behind)
            for block in _cut(run, bounds)
        ]

    def take_ready_runs(
        self, read: Offsets, behind: Collection[TopicPartition] = ()
    ) -> list[tuple[Batch, list[int]]]:
        """The whole blocks that can be learned now, in the learning order (module docstring),
        as runs of consecutive blocks of one partition with the row indices where each block
        starts (and the last ends).

        ``behind``: partitions with events at the source beyond ``read`` (a partition missing
        from ``read`` has read nothing yet and holds back every block).
        """
        barrier: tuple[int, TopicPartition] | None = None
        for key in behind:
            position = read.get(key)
            here = (-1 if position is None else position // self.size, key)
            if barrier is None or here < barrier:
                barrier = here
        pieces: list[tuple[int, TopicPartition, Batch, list[int]]] = []
        for key in list(self._pending):
            complete = read.get(key, 0) // self.size
            if barrier is not None:  # blocks after the barrier's wait for it
                complete = min(complete, barrier[0] + (1 if key < barrier[1] else 0))
            run = self._split(key, complete * self.size)
            if run is None:
                continue
            batch, bounds = run
            index = (batch.meta.offsets[bounds[:-1]] // self.size).tolist()
            pieces.extend((block, key, batch, bounds[i : i + 2]) for i, block in enumerate(index))
        if len({key for _, key, _, _ in pieces}) <= 1:  # one partition: its runs as they are
            return _runs(pieces)
        pieces.sort(key=lambda piece: (piece[0], piece[1]))
        return _runs(pieces)

    def holds_complete(self, read: Offsets) -> bool:
        """Whether a whole block below the read positions is still waiting to be learned."""
        return any(
            parts and parts[0].meta.offsets[0] < (read.get(key, 0) // self.size) * self.size
            for key, parts in self._pending.items()
        )

    def take_all(self) -> list[Batch]:
        """Every pending row, as blocks (the last ones possibly partial)."""
        return [block for run, bounds in self.take_all_runs() for block in _cut(run, bounds)]

    def take_all_runs(self) -> list[tuple[Batch, list[int]]]:
        """Every pending row, as runs of blocks (the last ones possibly partial), in the
        learning order of ``take_ready_runs`` (block index, then topic and partition): the
        same whichever partition the source happened to read first."""
        pieces: list[tuple[int, TopicPartition, Batch, list[int]]] = []
        for key in sorted(self._pending):
            run = self._split(key, None)
            if run is None:
                continue
            batch, bounds = run
            index = (batch.meta.offsets[bounds[:-1]] // self.size).tolist()
            pieces.extend((block, key, batch, bounds[i : i + 2]) for i, block in enumerate(index))
        pieces.sort(key=lambda piece: (piece[0], piece[1]))
        return _runs(pieces)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget the rows of partitions this worker no longer owns."""
        for key in partitions:
            self._pending.pop(key, None)

    def learned_frontier(self, read: Offsets) -> Offsets:
        """Where learning resumes per partition: the first pending row's block, else ``read``."""
        out = dict(read)
        for key, parts in self._pending.items():
            if parts:
                first = int(parts[0].meta.offsets[0])
                out[key] = min(out.get(key, first), (first // self.size) * self.size)
        return out

    def _split(self, key: TopicPartition, boundary: int | None) -> tuple[Batch, list[int]] | None:
        parts = self._pending.get(key, [])
        if not parts or (boundary is not None and parts[0].meta.offsets[0] >= boundary):
            return None  # nothing complete yet: no concatenation (polls may be many and small)
        merged = parts[0] if len(parts) == 1 else concat_batches(parts)
        offsets = merged.meta.offsets
        cut = len(offsets) if boundary is None else int(np.searchsorted(offsets, boundary))
        if cut == 0:
            return None
        if cut < len(offsets):
            done, rest = merged.rows(0, cut), merged.rows(cut, len(offsets))
            self._pending[key] = [rest]
        else:
            done = merged
            del self._pending[key]
        blocks = done.meta.offsets // self.size
        edges = (np.flatnonzero(np.diff(blocks)) + 1).tolist()
        return done, [0, *edges, len(blocks)]


class HoldBack:
    """How long learning waits for partitions that are behind, at most.

    Blocks wait for a partition whose events are at the broker (``take_ready_runs``), but not
    forever: after ``max_seconds`` in which no block could be learned, or past ``max_rows``
    training rows held, learning goes on without waiting (logged: the order then follows
    arrival). A partition that lags behind the others but moves (a labels topic, whose offsets
    trail those of the events they are for) is waited for as long as it takes.

    >>> hold = HoldBack(max_seconds=0.0)
    >>> hold.waiting_for({("t", 1)}, held=10)  # waited long enough already
    set()
    """

    def __init__(self, max_seconds: float = 30.0, max_rows: int = 200_000) -> None:
        self.max_seconds = max_seconds
        self.max_rows = max_rows
        self._since: float | None = None

    def waiting_for(self, behind: set[TopicPartition], held: int) -> set[TopicPartition]:
        """The partitions to keep waiting for: ``behind``, or none once the wait is over.
        ``behind`` empty (nothing is held back): the wait ends."""
        if not behind:
            self._since = None
            return behind
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since < self.max_seconds and held < self.max_rows:
            return behind
        log.warning(
            "learning goes on without waiting for %s: %d training events held for %.0f s; "
            "the order of learning across partitions follows arrival until they catch up",
            sorted(behind),
            held,
            now - self._since,
        )
        self._since = None
        return set()

    def progressed(self) -> None:
        """Blocks were learned: the wait for the partitions behind starts again."""
        self._since = None


def _runs(
    pieces: list[tuple[int, TopicPartition, Batch, list[int]]],
) -> list[tuple[Batch, list[int]]]:
    """Consecutive blocks of the same run joined back into one run."""
    out: list[tuple[Batch, list[int]]] = []
    run_of: Batch | None = None
    start = 0
    bounds: list[int] = []
    for _, _, batch, (a, b) in pieces:
        if batch is run_of and bounds and bounds[-1] == a:
            bounds.append(b)
            continue
        if run_of is not None:
            out.append(_slice(run_of, start, bounds))
        run_of, start, bounds = batch, a, [a, b]
    if run_of is not None:
        out.append(_slice(run_of, start, bounds))
    return out


def _slice(batch: Batch, start: int, bounds: list[int]) -> tuple[Batch, list[int]]:
    stop = bounds[-1]
    if start == 0 and stop == len(batch):
        return batch, bounds
    return batch.rows(start, stop), [b - start for b in bounds]


def _cut(run: Batch, bounds: list[int]) -> list[Batch]:
    if len(bounds) == 2:
        return [run]
    return [run.rows(a, b) for a, b in pairwise(bounds)]


def concat_batches(parts: list[Batch]) -> Batch:
    """Rows of several batches of one partition, in order; fields missing in a part are
    missing values. A field that is numeric in some parts and only missing (an all-``None``
    object column) in others stays numeric, so the result does not depend on where polls cut
    the stream."""
    from streamfit.batch import Messages

    names: dict[str, bool] = {}  # field -> numeric in every part that has a value for it
    for part in parts:
        for name, column in part.columns.items():
            numeric = column.dtype.kind == "f" or _all_missing(column)
            names[name] = names.get(name, True) and numeric
    columns = {}
    for name, numeric in names.items():
        pieces = []
        for part in parts:
            found = part.columns.get(name)
            if numeric:
                if found is None or found.dtype.kind != "f":
                    found = np.full(len(part), np.nan)
            elif found is None:
                found = np.full(len(part), None, dtype=object)
            elif found.dtype != object:
                found = found.astype(object)
            pieces.append(found)
        columns[name] = np.concatenate(pieces)
    booleans = frozenset().union(*(p.booleans for p in parts))
    partial = None
    if any(p.partial is not None for p in parts):
        partial = np.concatenate(
            [np.zeros(len(p), bool) if p.partial is None else p.partial for p in parts]
        )
    return Batch(columns, Messages.concat([p.meta for p in parts]), booleans, partial)


def _all_missing(column: npt.NDArray[Any]) -> bool:
    return column.dtype == object and all(v is None for v in column.tolist())
