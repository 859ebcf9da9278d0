"""Field statistics as a worker component: every decoded batch in, a table of snapshots out.

The component feeds each decoded batch (good rows of every topic and role) to a
``streamfit.explore.StreamStatistics`` once (``observe``). At the metrics interval it writes
one row per field to the pipeline's field statistics table (``<name>_field_stats``: the
scalar figures and quantiles as columns, histogram, top values and correlations as JSON, each
over all time and over the recent window) and the schema changes seen since to
``<name>_schema_changes`` (``write_metrics``): a snapshot at most every
``stats.interval_seconds``, since one costs more than a metrics row (every sketch is merged
and read), and the last one at the end of a run (``finish``).

Its state is part of every checkpoint, in the transaction of the offsets (``statistics``),
with the next offset it has seen of each partition (``statistics-offsets``): events read
again after a restart, below those offsets, are not counted twice. The workers of one group
each see their own partitions; at each checkpoint a worker loads the others' latest
statistics (``merged_keys``), and the rows it writes are those of the whole group: the
all-time figures of every event the group has seen, the window of the last events of each
worker. (A partition that moves to another worker may have up to a learning block of its
events counted by both.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from streamfit.batch import Batch
from streamfit.errors import StateFormatError
from streamfit.explore import StreamStatistics
from streamfit.runtime.component import Component, SeenOffsets
from streamfit.spec.model import PipelineSpec, StatsSpec

if TYPE_CHECKING:
    from streamfit.store import Store

__all__ = ["StatisticsComponent", "statistics_component"]

log = logging.getLogger("streamfit.worker")

_STATE = "statistics"
_OFFSETS = "statistics-offsets"


def statistics_component(spec: PipelineSpec, worker: str = "0") -> StatisticsComponent | None:
    """The statistics a pipeline's spec asks for (``stats:``), or None when they are off."""
    if not spec.stats.enabled:
        return None
    return StatisticsComponent(spec.stats, spec.name, dict(spec.features.types), worker)


class StatisticsComponent(Component):
    """Live field statistics of a pipeline's stream (see the module docstring)."""

    merged_keys = (_STATE,)

    def __init__(
        self,
        spec: StatsSpec,
        pipeline: str,
        types: Mapping[str, Any] | None = None,
        worker: str = "0",
    ) -> None:
        self.spec = spec
        self.table = spec.table_name(pipeline)
        self.changes_table = spec.schema_changes_table_name(pipeline)
        self.worker = worker
        self.statistics = StreamStatistics(
            window=spec.window,
            max_fields=spec.max_fields,
            include=spec.fields,
            exclude=spec.exclude,
            types=types,
            correlation=spec.correlation,
        )
        self.seen = SeenOffsets()
        self.others: dict[str, StreamStatistics] = {}  # other workers' latest
        self._written = -1  # events seen when rows were last written
        self._written_at = -math.inf  # and when (time.time())

    def observe(self, batch: Batch) -> None:
        batch = self.seen.unseen(batch)
        if not len(batch):
            return
        self.statistics.update(batch)
        self.seen.note(batch)

    def state(self) -> dict[str, bytes]:
        return {_STATE: self.statistics.state(), _OFFSETS: orjson.dumps(self.seen.as_rows())}

    def restore(self, states: Mapping[str, bytes]) -> None:
        blob = states.get(_STATE)
        if blob is None:
            return
        try:
            restored = StreamStatistics.from_state(blob)
            seen = SeenOffsets.from_rows(orjson.loads(states.get(_OFFSETS, b"[]")))
        except (StateFormatError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
            log.warning("the checkpoint's field statistics cannot be read; starting anew: %s", exc)
            return
        if restored.config() != self.statistics.config():
            log.warning("the spec's stats: section changed since the checkpoint: starting anew")
            return
        self.statistics, self.seen = restored, seen

    def merge(self, others: Mapping[str, Mapping[str, bytes]]) -> None:
        theirs: dict[str, StreamStatistics] = {}
        for worker, blobs in others.items():
            blob = blobs.get(_STATE)
            if blob is None:
                continue
            try:
                theirs[worker] = StreamStatistics.from_state(blob)
            except StateFormatError as exc:
                log.warning("worker %s's field statistics cannot be read: %s", worker, exc)
        self.others = theirs

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """The group's statistics, a row per field, as they go to the table."""
        views = self.statistics.merged_views(self.others.values())
        rows = self.statistics.rows(
            views, self.spec.quantiles, self.spec.histogram_bins, self.spec.top_values
        )
        for row in rows:
            row["worker"] = self.worker
            row["events_seen"] = self.statistics.events
            if now is not None:
                row["recorded_at"] = now
        return rows

    def write_metrics(self, store: Store, now: float) -> None:
        """A snapshot, if events came since the last one and ``stats.interval_seconds``
        have passed (a snapshot costs more than a metrics row); the schema changes."""
        if now - self._written_at >= self.spec.interval_seconds:
            self._snapshot(store, now)
        self._write_changes(store)

    def finish(self, store: Store, now: float) -> None:
        """The last snapshot, whenever the one before was."""
        self._snapshot(store, now)
        self._write_changes(store)

    def _snapshot(self, store: Store, now: float) -> None:
        statistics = self.statistics
        if statistics.events != self._written:
            store.write_field_stats(self.table, self.rows(now))
            self._written = statistics.events
            self._written_at = now

    def _write_changes(self, store: Store) -> None:
        statistics = self.statistics
        changes = list(statistics.changes)
        if changes:
            store.write_schema_changes(
                self.changes_table,
                [
                    {
                        "field": change.field,
                        "old_type": change.old_kind,
                        "new_type": change.new_kind,
                        "source_topic": change.topic,
                        "source_partition": change.partition,
                        "first_offset": change.offset,
                        "worker": self.worker,
                    }
                    for change in changes
                ],
            )
            del statistics.changes[: len(changes)]  # written: only now are they forgotten
