"""Extension points of the worker: components that own state and tables.

The worker loop runs fixed steps (decode, route, score, learn, record, checkpoint; see
``streamfit.runtime.worker``). The models and the featurizer are its core. Everything else it
keeps across events (the evaluators today; statistics, update gates, label joins, serving
next) is a ``Component`` that the loop calls at each step through one small interface:

========================  =========================================================
hook                      when the loop calls it
========================  =========================================================
``attach(heads)``         when the worker builds its heads (at start, and again when it
                          goes back to its last checkpoint), before their state is restored
``observe(batch)``        every decoded batch (good rows, all roles), once
``scored(batch, preds)``  after a batch of events was scored, with every model's output
``learned(outcome)``      after a model was tested on a block and learned it, per model
``state()``               at a checkpoint: the blobs it adds (same transaction as offsets)
``restore(states)``       at start, with the blobs its ``state()`` wrote last time
``merge(others)``         at a checkpoint, with the other workers' blobs of the keys
                          named in ``merged_keys`` (scale-out); not called without them
``write_metrics(...)``    at the metrics interval: it writes its own tables
``finish(...)``           at the end of a run, after the last metrics: what is left
========================  =========================================================

A component overrides only the hooks it needs; the others do nothing. Its state blobs are
stored under ``<worker id>/<key>`` for each key of ``state()``, so a key names what it is
(``evaluator/lr``) and two components never share one.

>>> class Counter(Component):
...     def __init__(self) -> None:
...         self.rows = 0
...     def observe(self, batch: Batch) -> None:
...         self.rows += len(batch)
...     def state(self) -> dict[str, bytes]:
...         return {"counter": str(self.rows).encode()}
...     def restore(self, states: Mapping[str, bytes]) -> None:
...         self.rows = int(states.get("counter", b"0"))
>>> c = Counter()
>>> c.restore({"counter": b"41"}); c.rows
41
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, Messages, Offsets
from streamfit.errors import ServiceUnavailableError, StreamError

if TYPE_CHECKING:
    from streamfit.runtime.head import Head
    from streamfit.store import ModelPredictions, Store

__all__ = ["Component", "Hooks", "Outcome", "SeenOffsets"]

log = logging.getLogger("streamfit.worker")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one model did on one block of labeled events it was then trained on.

    ``predicted`` is, per row, what the model predicted before it learned that row: for a
    classifier a ``(rows, len(classes))`` probability matrix, for a regressor the values.
    ``head`` names the target the model learns (``runtime.head``).
    ``version`` and ``events_learned`` are the model's counters after the block.
    ``served``: with A/B serving, the rows of the block this model served (its arm's).
    ``meta``: the block's events (topic, partition, offset, timestamp of each row).
    """

    model: str
    version: int
    events_learned: int
    labels: npt.NDArray[Any]
    predicted: npt.NDArray[np.float64]
    classes: Sequence[object] = ()
    head: str = ""  # the target's head ("": the pipeline's own target)
    served: npt.NDArray[np.bool_] | None = None
    meta: Messages | None = None

    def of_head(self, head: str) -> Outcome:
        """The same outcome, from the head named ``head``."""
        return replace(self, head=head)


class Component:
    """Base class of the worker's components: every hook is a no-op until overridden."""

    #: The keys of ``state()`` whose blobs this component wants from the other workers of its
    #: group at each checkpoint (``merge``); none are loaded while it is empty. A key must not
    #: end with another component's key (blobs are found by the end of their names).
    merged_keys: tuple[str, ...] = ()

    def attach(self, heads: Sequence[Head]) -> None:
        """See the worker's heads as they are built, before their state is restored."""

    def observe(self, batch: Batch) -> None:
        """See every decoded batch once (good rows of every role)."""

    def scored(self, batch: Batch, predictions: Sequence[ModelPredictions]) -> None:
        """See a scored batch and each model's predictions for it."""

    def learned(self, outcome: Outcome) -> None:
        """See how a model did on a block before it learned it."""

    def state(self) -> dict[str, bytes]:
        """Blobs to add to the checkpoint, by key (stored as ``<worker>/<key>``)."""
        return {}

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Take back the blobs of the last checkpoint (keys as ``state()`` gave them)."""

    def merge(self, others: Mapping[str, Mapping[str, bytes]]) -> None:
        """Fold in the other workers' latest blobs of ``merged_keys`` (worker id -> key ->
        blob; a worker that has not written a key yet has no entry for it)."""

    def write_metrics(self, store: Store, now: float) -> None:
        """Write this component's rows for the metrics interval to its tables."""

    def finish(self, store: Store, now: float) -> None:
        """At the end of a run (``Worker.finish``), after the last ``write_metrics``: write
        what a component that writes less often than the metrics interval holds back."""


class SeenOffsets:
    """The next offset a component has seen, per partition: the events read again after a
    restart, below those offsets, were fed to it before the checkpoint and are not fed twice.

    >>> batch = Batch({}, Messages.from_values([b""] * 5, topic="t"))
    >>> seen = SeenOffsets()
    >>> seen.note(batch.rows(0, 3))
    >>> seen.unseen(batch).meta.offsets.tolist()
    [3, 4]
    >>> seen.as_rows()
    [['t', 0, 3]]
    >>> SeenOffsets.from_rows([["t", 0, 3]]).offsets
    {('t', 0): 3}
    """

    def __init__(self, offsets: Offsets | None = None) -> None:
        self.offsets: Offsets = offsets or {}

    def unseen(self, batch: Batch) -> Batch:
        """The rows of ``batch`` at or past the offsets seen already."""
        if not self.offsets:
            return batch
        keep = np.ones(len(batch), dtype=bool)
        offsets = batch.meta.offsets
        for tp, rows in batch.meta.by_partition():
            seen = self.offsets.get(tp)
            if seen is None:
                continue
            if rows is None:
                keep = offsets >= seen
            else:
                keep[rows] = offsets[rows] >= seen
        return batch if keep.all() else batch.take(np.flatnonzero(keep))

    def note(self, batch: Batch) -> None:
        """Count the rows of ``batch`` as seen."""
        for tp, offset in batch.meta.next_offsets().items():
            self.offsets[tp] = max(offset, self.offsets.get(tp, 0))

    def as_rows(self) -> list[list[Any]]:
        """``[topic, partition, offset]`` rows for a checkpoint, sorted: the same state
        whatever order the partitions came in."""
        return [[topic, partition, o] for (topic, partition), o in sorted(self.offsets.items())]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> SeenOffsets:
        """Back from ``as_rows()``."""
        return cls({(str(t), int(p)): int(o) for t, p, o in rows})


class Hooks:
    """Calls components' hooks for the worker: a hook that fails is logged (the first ten
    failures, then one in a thousand) and counted, and the loop goes on; the events are not
    the component's to reject, the other steps still use them. An outage is not a failure
    of the component: it goes up to the worker, which waits it out.

    >>> hooks = Hooks()
    >>> hooks.tell(Component(), "observe", lambda batch: 1 / 0, None)
    >>> hooks.failures
    1
    """

    def __init__(self) -> None:
        self.failures = 0

    def tell(self, component: Component, hook: str, call: Callable[[T], Any], what: T) -> None:
        try:
            call(what)
        except (ServiceUnavailableError, StreamError):
            raise
        except Exception:
            self.failures += 1
            if self.failures <= 10 or self.failures % 1000 == 0:
                log.exception(
                    "%s.%s failed (%d component failures so far)",
                    type(component).__name__,
                    hook,
                    self.failures,
                )
