"""Where waiting events live: their kept feature rows and served predictions, in flat arrays.

Every event that waits for its label takes one *slot*: its kept row (``features.KeptRows``:
numeric and boolean values, unweighted hashed entries), each model's served prediction, and
where it came from. Slots are given out in increasing order and freed in any order; the free
ones are reclaimed by compacting (live slots keep their order), so the oldest waiting event is
always the first live slot. Nothing is a Python object per event: a million waiting events
are a few arrays, and a checkpoint writes them as they are.

Served predictions: per model, one row of probabilities over the classes that model had when
it served (a regressor: one value). Classes are kept per model in order of first appearance;
a row served before a class appeared has 0 for it, as ``models.base.Prequential`` says.

>>> import numpy as np
>>> from streamfit.features.featurizer import KeptRows
>>> arena = KeptArena(["lr"], regression=False)
>>> kept = KeptRows(np.array([[1.0], [2.0]]), np.zeros((2, 0)),
...                 (np.array([0, 1, 1]), np.array([5, 6, 7]), np.ones(3), np.full(3, -1)))
>>> slots = arena.add(kept, {"lr": (np.array([[0.9, 0.1], [0.2, 0.8]]), ["no", "yes"])},
...                   topic="t", partitions=np.zeros(2, np.int32), offsets=np.array([10, 11]),
...                   timestamps=np.zeros(2, np.int64), clocks=np.array([1, 2]))
>>> slots.tolist(), len(arena)
([0, 1], 2)
>>> rows = arena.rows(np.array([1]))
>>> rows.numbers.tolist(), rows.hashed[1].tolist()
([[2.0]], [6, 7])
>>> proba, classes = arena.served("lr", np.array([1]))
>>> proba.tolist(), classes
([[0.2, 0.8]], ['no', 'yes'])
>>> arena.free(np.array([0])); len(arena), arena.oldest()
(1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.features.featurizer import KeptRows

__all__ = ["KeptArena", "Served"]

#: where each waiting event came from, one array each
_ORIGINS = ("topic", "partition", "offset", "timestamp", "clock")

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
#: One model's served predictions for some rows: ``(rows, classes)`` probabilities (or
#: ``(rows, 1)`` values for a regressor) and the classes their columns stand for.
Served = tuple[Floats, list[object]]


class _Grown:
    """A 2-d array that grows in rows (capacity doubles) and in columns (new ones filled)."""

    def __init__(self, dtype: Any, fill: float = 0.0) -> None:
        self.fill = fill
        self.data = np.zeros((0, 0), dtype=dtype)

    def ensure(self, rows: int, columns: int) -> None:
        have_rows, have_columns = self.data.shape
        if rows <= have_rows and columns <= have_columns:
            return
        new_rows = max(rows, have_rows if rows <= have_rows else max(16, 2 * have_rows))
        grown = np.full((new_rows, max(columns, have_columns)), self.fill, dtype=self.data.dtype)
        grown[:have_rows, :have_columns] = self.data
        self.data = grown


class KeptArena:
    """The kept rows, served predictions and origins of waiting events, one slot each."""

    def __init__(self, models: Sequence[str], regression: bool = False) -> None:
        self.models = list(models)
        self.regression = regression
        self._used = 0  # slots given out so far (live or freed)
        self._live = np.zeros(0, dtype=bool)
        self._count = 0
        self._oldest = 0  # no live slot below it
        self._numbers = _Grown(np.float64, np.nan)
        self._flags = _Grown(np.float64, np.nan)
        # hashed entries, flat, slot by slot; each slot's first entry and count
        self._entry_start = np.zeros(0, dtype=np.int64)
        self._entry_count = np.zeros(0, dtype=np.int64)
        self._cols = np.zeros(0, dtype=np.int32)
        self._data = np.zeros(0, dtype=np.float64)
        self._groups = np.zeros(0, dtype=np.int32)
        self._entries = 0
        self._served = {m: _Grown(np.float64) for m in self.models}
        self._classes: dict[str, list[object]] = {m: [] for m in self.models}
        self._topics: list[str] = []  # topic names; slots hold their index
        self.topic = np.zeros(0, dtype=np.int32)
        self.partition = np.zeros(0, dtype=np.int32)
        self.offset = np.zeros(0, dtype=np.int64)
        self.timestamp = np.zeros(0, dtype=np.int64)
        self.clock = np.zeros(0, dtype=np.int64)  # the join's event clock when it came

    def __len__(self) -> int:
        """Live slots."""
        return self._count

    @property
    def used(self) -> int:
        """Slots given out since the last compaction (live or freed)."""
        return self._used

    def oldest(self) -> int | None:
        """The first live slot (the event that has waited longest), or None."""
        if not self._count:
            return None
        while not self._live[self._oldest]:
            self._oldest += 1
        return self._oldest

    def topic_of(self, slots: npt.NDArray[np.intp]) -> list[str]:
        return [self._topics[i] for i in self.topic[slots].tolist()]

    # -- adding, reading, freeing

    def add(
        self,
        kept: KeptRows,
        served: Mapping[str, Served],
        *,
        topic: str,
        partitions: npt.NDArray[np.int32],
        offsets: Ints,
        timestamps: Ints,
        clocks: Ints,
    ) -> npt.NDArray[np.intp]:
        """Give each row of ``kept`` a slot (in order); return the slots."""
        n = len(kept)
        start = self._used
        end = start + n
        self._reserve(end)
        slots = np.arange(start, end, dtype=np.intp)
        self._numbers.ensure(end, kept.numbers.shape[1])
        self._numbers.data[start:end, : kept.numbers.shape[1]] = kept.numbers
        self._flags.ensure(end, kept.flags.shape[1])
        self._flags.data[start:end, : kept.flags.shape[1]] = kept.flags
        rows, cols, data, groups = kept.hashed
        counts = np.bincount(rows, minlength=n).astype(np.int64)
        total = int(counts.sum())
        self._reserve_entries(self._entries + total)
        order = np.argsort(rows, kind="stable")  # by row, each row's entries in their order
        place = slice(self._entries, self._entries + total)
        self._cols[place] = cols[order]
        self._data[place] = data[order]
        self._groups[place] = groups[order]
        self._entry_start[start:end] = self._entries + np.cumsum(counts) - counts
        self._entry_count[start:end] = counts
        self._entries += total
        for model in self.models:
            proba, classes = served[model]
            self._put_served(model, slots, proba, classes)
        if topic not in self._topics:
            self._topics.append(topic)
        self.topic[start:end] = self._topics.index(topic)
        self.partition[start:end] = partitions
        self.offset[start:end] = offsets
        self.timestamp[start:end] = timestamps
        self.clock[start:end] = clocks
        self._live[start:end] = True
        self._count += n
        self._used = end
        return slots

    def rows(self, slots: npt.NDArray[np.intp]) -> KeptRows:
        """The kept rows of ``slots``, in that order (rows numbered 0, 1, ...)."""
        counts = self._entry_count[slots]
        at = self._entries_of(slots)
        hashed = (
            np.repeat(np.arange(len(slots)), counts).astype(np.intp),
            self._cols[at].astype(np.int64),
            self._data[at],
            self._groups[at].astype(np.intp),
        )
        return KeptRows(self._numbers.data[slots], self._flags.data[slots], hashed)

    def served(self, model: str, slots: npt.NDArray[np.intp]) -> Served:
        """What ``model`` served for ``slots``: its probabilities and classes (a regressor:
        its values, as one column, and no classes)."""
        classes = list(self._classes[model])
        data = self._served[model].data
        out = np.zeros((len(slots), 1 if self.regression else len(classes)))
        width = min(data.shape[1], out.shape[1])
        if width:
            out[:, :width] = data[slots, :width]
        return out, classes

    def free(self, slots: npt.NDArray[np.intp]) -> None:
        """Free ``slots`` (live ones); their space is reclaimed by ``compact``."""
        self._live[slots] = False
        self._count -= len(slots)

    def compact(self, force: bool = False) -> npt.NDArray[np.intp] | None:
        """Reclaim the freed slots when they outnumber the live ones (or whenever some are,
        with ``force``): the live ones move down, in order. Returns each old slot's new one
        (-1: freed), or None if nothing moved."""
        freed = self._used - self._count
        if freed == 0 or (not force and freed <= max(self._count, 1024)):
            return None
        live = np.flatnonzero(self._live[: self._used])
        moved = np.full(self._used, -1, dtype=np.intp)
        moved[live] = np.arange(len(live))
        at = self._entries_of(live)
        total = len(at)
        counts = self._entry_count[live]
        self._cols[:total] = self._cols[at]
        self._data[:total] = self._data[at]
        self._groups[:total] = self._groups[at]
        self._entries = total
        n = len(live)
        self._entry_start[:n] = np.cumsum(counts) - counts
        self._entry_count[:n] = counts
        for grown in (self._numbers, self._flags, *self._served.values()):
            if grown.data.shape[0]:
                grown.data[:n] = grown.data[live]
        for name in _ORIGINS:
            array = getattr(self, name)
            array[:n] = array[live]
        self._live[:n] = True
        self._live[n:] = False
        self._used = n
        self._oldest = 0
        return moved

    # -- state

    def live(self) -> npt.NDArray[np.intp]:
        """The live slots, oldest first."""
        return np.flatnonzero(self._live[: self._used])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The live slots, oldest first, as arrays (for a checkpoint); ``restore`` numbers
        them 0, 1, ... in that order."""
        live = self.live()
        at = self._entries_of(live)
        out: dict[str, npt.NDArray[Any]] = {
            "numbers": self._numbers.data[live],
            "flags": self._flags.data[live],
            "entry_count": self._entry_count[live],
            "cols": self._cols[at],
            "data": self._data[at],
            "groups": self._groups[at],
        }
        for name in _ORIGINS:
            out[name] = getattr(self, name)[live]
        for i, model in enumerate(self.models):
            out[f"served_{i}"] = self._served[model].data[live]
        return out

    def header(self) -> dict[str, Any]:
        return {
            "topics": list(self._topics),
            "classes": [self._classes[m] for m in self.models],
            "widths": [
                self._numbers.data.shape[1],
                self._flags.data.shape[1],
                *(self._served[m].data.shape[1] for m in self.models),
            ],
        }

    @classmethod
    def restore(
        cls,
        models: Sequence[str],
        regression: bool,
        header: Mapping[str, Any],
        arrays: Mapping[str, npt.NDArray[Any]],
    ) -> KeptArena:
        """The arena whose ``header()`` and ``arrays()`` these are, its slots numbered from
        0 in their order."""
        arena = cls(models, regression)
        n = len(arrays["offset"])
        arena._topics = [str(t) for t in header["topics"]]
        arena._classes = {m: list(c) for m, c in zip(arena.models, header["classes"], strict=True)}
        arena._reserve(n)
        counts = np.asarray(arrays["entry_count"], dtype=np.int64)
        total = int(counts.sum())
        arena._reserve_entries(total)
        arena._cols[:total] = arrays["cols"]
        arena._data[:total] = arrays["data"]
        arena._groups[:total] = arrays["groups"]
        arena._entries = total
        arena._entry_start[:n] = np.cumsum(counts) - counts
        arena._entry_count[:n] = counts
        grids = [arena._numbers, arena._flags, *(arena._served[m] for m in arena.models)]
        names = ["numbers", "flags", *(f"served_{i}" for i in range(len(arena.models)))]
        for grown, name in zip(grids, names, strict=True):
            values = arrays[name]
            grown.ensure(n, values.shape[1])
            grown.data[:n, : values.shape[1]] = values
        for name in _ORIGINS:
            getattr(arena, name)[:n] = arrays[name]
        arena._live[:n] = True
        arena._count = arena._used = n
        return arena

    # -- internals

    def _reserve(self, slots: int) -> None:
        have = len(self._live)
        if slots <= have:
            return
        size = max(slots, 2 * have, 16)
        self._live = _grown(self._live, size)
        self._entry_start = _grown(self._entry_start, size)
        self._entry_count = _grown(self._entry_count, size)
        for name in _ORIGINS:
            setattr(self, name, _grown(getattr(self, name), size))

    def _reserve_entries(self, entries: int) -> None:
        have = len(self._cols)
        if entries <= have:
            return
        size = max(entries, 2 * have, 64)
        self._cols = _grown(self._cols, size)
        self._data = _grown(self._data, size)
        self._groups = _grown(self._groups, size)

    def _entries_of(self, slots: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        """Where the hashed entries of ``slots`` are, slot after slot."""
        counts = self._entry_count[slots]
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        out: npt.NDArray[np.int64] = np.repeat(self._entry_start[slots], counts) + within
        return out

    def _put_served(
        self, model: str, slots: npt.NDArray[np.intp], proba: Floats, classes: Sequence[object]
    ) -> None:
        known = self._classes[model]
        if list(classes) == known[: len(classes)]:
            columns = np.arange(len(classes))
        else:
            for label in classes:
                if label not in known:
                    known.append(label)
            columns = np.array([known.index(label) for label in classes], dtype=np.intp)
        if self.regression:  # a regressor's values, one column
            columns = np.array([0])
        grown = self._served[model]
        grown.ensure(self._used + len(slots), max(len(known), len(columns), 1))
        grown.data[slots] = 0.0
        if len(columns):
            grown.data[np.ix_(slots, columns)] = proba


def _grown(array: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    out = np.zeros(size, dtype=array.dtype)
    out[: len(array)] = array
    return out
