"""The worker loop: poll, decode, score, write, learn in blocks, record, checkpoint.

One ``Worker`` runs one pipeline over one ``Source``. Each poll is handled in a fixed order:

1. **decode**: malformed events become dead letters (table and topic) with a reason; the
   components see the good rows (``Component.observe``);
2. **route**: labeled rows of a ``train`` topic are training rows, every other row is scored
   (every row, training rows too, with ``outputs.score_training_events``);
3. **score**: featurize the scoring rows, predict them with every model (``ModelSet``), write
   them to the predictions topic and the results table (``Component.scored``);
4. **learn**: queue the training rows in a ``BlockBuffer``; each block of offsets that is
   complete is learned in a fixed order (``runtime.blocks``): featurize (the featurizer
   learns its statistics), then each model predicts the block and learns it (prequential:
   test, then train), and the components see how it did (``Component.learned``);
5. **record**: at the metrics interval, every component writes its rows (the evaluators:
   the training table);
6. **checkpoint**: flush the sinks and the producer, write the models, the featurizer, every
   component's state and the offsets in ONE database transaction, then commit the offsets to
   Kafka (the database leads; Kafka's committed offsets follow).

An event that a step fails on is isolated (``runtime.isolation``) and becomes a dead letter
with the step's error as reason; the worker goes on. A service that is down (database,
broker) pauses the loop until it is back (``runtime.retry``).

Two frontiers per partition make restarts exact. ``learned``: the offset learning resumes at
(the start of the first block not learned); a restart seeks there and learns again what the
crash lost, reproducing the same model bit for bit. ``emitted``: outputs were written below
it; rows replayed below it are learned but not written again, so nothing is duplicated.

With ``processing: exactly_once`` the outputs and the consumer offsets are committed in one
Kafka transaction; the transaction's committed offsets are then the emitted frontier.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, DeadLetter, Messages, Offsets
from streamfit.codecs import decode_json
from streamfit.errors import GroupMovedOnError, StreamError
from streamfit.features import Featurizer
from streamfit.runtime.allocator import keep_freed_memory
from streamfit.runtime.blocks import HoldBack, concat_batches
from streamfit.runtime.component import Component, Hooks, Outcome
from streamfit.runtime.evaluators import EvaluationComponent
from streamfit.runtime.head import Head
from streamfit.runtime.isolation import (
    dead_letters_for,
    index_halves,
    is_events_fault,
    isolate,
    message_halves,
    reason_for,
)
from streamfit.runtime.lifecycle import (
    CommandWatch,
    at_checkpoint,
    commands_waiting,
    take_commands,
)
from streamfit.runtime.models import ModelSet, ModelSlot
from streamfit.runtime.outputs import Outputs
from streamfit.runtime.retry import Outages
from streamfit.runtime.routing import among, any_known, not_emitted, rows_of
from streamfit.runtime.snapshot import Snapshot
from streamfit.runtime.targets import build_heads
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.base import Backlogged, GroupMember, RecordSink, Source, Transactions

__all__ = ["RunStats", "Worker"]

log = logging.getLogger("streamfit.worker")

TopicPartition = tuple[str, int]
T = TypeVar("T")


@dataclass(slots=True)
class RunStats:
    """What a worker has done in this process."""

    events_in: int = 0
    events_trained: int = 0
    events_scored: int = 0
    dead_letters: int = 0
    batches: int = 0
    checkpoints: int = 0
    last_checkpoint_seconds: float = 0.0  # how long the last checkpoint took
    texts_truncated: int = 0  # texts read only up to limits.MAX_TEXT_CHARS (at the end of run)
    started: float = field(default_factory=time.monotonic)

    @property
    def events_per_second(self) -> float:
        return self.events_in / max(time.monotonic() - self.started, 1e-9)


class Worker:
    """Runs one pipeline: see the module docstring for the order of steps.

    A worker is a context manager: leaving the ``with`` block closes it (it leaves its
    consumer group, closes its outputs and the store), whatever happened inside.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        source: Source,
        store: Store,
        predictions: RecordSink | None = None,
        dead_letter_sink: RecordSink | None = None,
        worker_id: str = "0",
        transactions: Transactions | None = None,
        components: Sequence[Component] = (),
    ) -> None:
        self.spec = spec
        self.source = source
        self.store = store
        self.worker_id = worker_id
        self.transactions = transactions  # for exactly_once, else None
        self.task = spec.task
        self.snapshot = Snapshot(worker_id)
        self._stop = threading.Event()
        self.outages = Outages(source, self._stop)
        self.outputs = Outputs(spec, store, self.outages, predictions, dead_letter_sink)
        self.heads = self._new_heads()
        self.components: list[Component] = list(components)
        for component in self.components:
            component.attach(self.heads)
        self.hooks = Hooks()  # a component's failing hook is logged, not fatal
        # the topics whose events wait in blocks (``runtime.blocks``)
        self.train_topics = set().union(*(head.learning_topics for head in self.heads))
        self.stats = RunStats()
        self.read: Offsets = {}  # next offset to read, per partition
        self.emitted: Offsets = {}  # outputs written below these
        self._replay_emitted: Offsets = {}  # from the checkpoint: do not write again below
        self._metrics_mark = 0  # events the first head learned when metrics were last written
        self._events_at_metrics = 0  # events read when metrics were last written
        self.rewinds = 0  # times the worker went back to its last checkpoint (``rewind``)
        self._last_metrics = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self.commands = CommandWatch(spec.checkpoint.interval_seconds)
        self._events_at_checkpoint = 0
        self._last_event = time.monotonic()
        self.hold = HoldBack()  # blocks held back for partitions that are behind
        self.assigned_at = time.monotonic()  # when partitions were last assigned
        self.assigned: set[TopicPartition] = set()
        if isinstance(source, GroupMember):
            source.on_assign = self._on_assign
            source.on_revoke = self._on_revoke
        self.restore()
        for head in self.heads:  # the operator's commands queued while it was stopped
            self.outages.call(
                "taking the operator's commands",
                lambda head=head: take_commands(head, self.store),  # type: ignore[misc]
            )

    def _new_heads(self) -> list[Head]:
        """The heads as they are before any event (``runtime.targets``)."""
        return build_heads(
            self.spec, self.worker_id, is_events_fault=is_events_fault, outputs=self.outputs
        )

    @property
    def head(self) -> Head:
        """The head of the pipeline's own target."""
        return self.heads[0]

    @property
    def featurizer(self) -> Featurizer:
        return self.head.featurizer

    @property
    def models(self) -> ModelSet:
        return self.head.models

    @property
    def evaluation(self) -> EvaluationComponent:
        return self.head.evaluation

    @property
    def slots(self) -> list[ModelSlot]:
        """The models of the pipeline's own target, champion first."""
        return self.head.models.slots

    @property
    def pending(self) -> int:
        """Training events waiting for their block, over every head."""
        return sum(len(head.blocks) for head in self.heads)

    @property
    def last_event_at(self) -> float:
        """When the last batch of events came (``time.monotonic``)."""
        return self._last_event

    @property
    def resumed_at(self) -> float:
        """When a service last came back after an outage (``time.monotonic``)."""
        return self.outages.resumed_at

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- restore -------------------------------------------------------------------------------

    def restore(self) -> bool:
        """Load this worker's last checkpoint (state and offsets); False if there is none."""
        checkpoint = self.outages.call("loading the checkpoint", self.store.load_checkpoint)
        if checkpoint is None:
            return False
        restored, metrics_mark = self.snapshot.restore(checkpoint, self.heads, self.components)
        if metrics_mark is not None:
            self._metrics_mark = metrics_mark
        if not isinstance(self.source, GroupMember):  # no group: seek at once to everything
            topics = set(self.spec.topics.all)
            ours = {tp: o for tp, o in checkpoint.offsets.items() if tp[0] in topics}
            if ours:
                self.source.seek(ours)
                self.read.update(ours)
                self._replay_emitted.update(
                    {tp: checkpoint.emitted.get(tp, o) for tp, o in ours.items()}
                )
        if restored:
            log.info(
                "worker %s restored its checkpoint of %s", self.worker_id, checkpoint.written_at
            )
        return restored

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        """Seek newly assigned partitions to where the database says learning resumes."""
        checkpoint = self.outages.call("loading the checkpoint", self.store.load_checkpoint)
        offsets = checkpoint.offsets if checkpoint else {}
        emitted = checkpoint.emitted if checkpoint else {}
        if self.transactions is not None:  # the transaction's offsets mark what was emitted
            emitted = {**emitted, **self.transactions.committed(partitions)}
        self.assigned_at = time.monotonic()
        seek = {tp: offsets[tp] for tp in partitions if tp in offsets}
        if seek:
            self.source.seek(seek)
        self.assigned.update(partitions)
        for tp in partitions:
            if tp in seek:
                self.read[tp] = seek[tp]
                self._replay_emitted[tp] = max(emitted.get(tp, seek[tp]), seek[tp])
        log.info("worker %s assigned %s (resuming at %s)", self.worker_id, partitions, seek)

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Checkpoint before partitions go, so their next owner resumes where we stop; if that
        fails, go back to the last checkpoint (``rewind``)."""
        rewinds = self.rewinds
        try:
            self.checkpoint()
        except Exception:
            log.exception("checkpoint before revocation failed")
            if self.rewinds == rewinds:
                self.rewind(keep=set(self.assigned) - set(partitions))
        for head in self.heads:
            head.drop(partitions)
        self.assigned.difference_update(partitions)
        for tp in partitions:
            self.read.pop(tp, None)
            self.emitted.pop(tp, None)
            self._replay_emitted.pop(tp, None)

    def rewind(self, keep: set[TopicPartition]) -> None:
        """Go back to the last checkpoint: forget what was learned and written since (the open
        Kafka transaction is dropped), and read again from its offsets the partitions in
        ``keep`` (those still assigned). Used when a checkpoint cannot be committed because
        the consumer group went on without this worker meanwhile."""
        log.warning(
            "worker %s goes back to its last checkpoint: what it did since is done again",
            self.worker_id,
        )
        self.rewinds += 1
        if self.transactions is not None:
            self.transactions.abort()
        self.heads = self._new_heads()
        for component in self.components:
            component.attach(self.heads)
        self._metrics_mark = 0
        self.read.clear()
        self.emitted.clear()
        self._replay_emitted.clear()
        self.restore()
        if keep:
            self._on_assign(sorted(keep))

    # -- one batch ------------------------------------------------------------------------------

    def step(self, timeout: float | None = None) -> int:
        """Poll one batch and handle it; return how many messages it held."""
        messages = self.outages.call(
            "polling",
            lambda: self.source.poll(
                self.spec.batch.max_records,
                self.spec.batch.timeout if timeout is None else timeout,
            ),
        )
        if messages is None or len(messages) == 0:
            self._learn_ready_blocks()
            self._learn_stale_blocks()
            self._maybe_write_metrics()
            self._maybe_checkpoint()
            self._maybe_take_commands()
            return 0
        self.process(messages)
        return len(messages)

    def process(self, messages: Messages) -> None:
        """Handle one batch of raw messages (steps 1 to 6)."""
        batch = self._decode(messages)
        if len(batch):
            for component in self.components:
                self.hooks.tell(component, "observe", component.observe, batch)
            for head in self.heads:
                self._route(head, batch)
        self.stats.events_in += len(messages)
        self.stats.batches += 1
        self._last_event = time.monotonic()
        for tp, offset in messages.next_offsets().items():
            self.read[tp] = max(offset, self.read.get(tp, 0))
            self.emitted[tp] = max(offset, self.emitted.get(tp, 0))
        self._learn_ready_blocks()
        self._maybe_write_metrics()
        self._maybe_checkpoint()

    def _decode(self, messages: Messages) -> Batch:
        """The batch's good rows; its bad ones go to the dead letters."""
        parts: list[Batch] = []

        task = "classification" if self.task == "anomaly" else self.task  # no target to read

        def decode(some: Messages) -> None:
            decoded = decode_json(some, self.spec.target, task)
            if decoded.dead_letters:
                self._dead_letter(decoded.dead_letters)
            parts.append(decoded.batch)

        def reject(some: Messages, exc: Exception) -> None:
            self._dead_letter(
                [DeadLetter.from_row(some, 0, reason_for("decoding", exc))],
            )

        isolate(messages, decode, reject, message_halves)
        if len(parts) == 1:
            return parts[0]
        good = [part for part in parts if len(part)]
        return concat_batches(good) if good else parts[0]

    def _route(self, head: Head, batch: Batch) -> None:
        """Hand ``batch`` to ``head``: its label rules, then scoring and queueing for learning."""
        batch, rejected = head.screen(batch)
        if rejected:
            self._dead_letter(rejected)
        if not len(batch):
            return
        roles = head.roles(batch)
        if len(roles.score):
            keep = roles.score[not_emitted(batch.meta, self._replay_emitted)[roles.score]]
            if len(keep):
                self._score(
                    head, rows_of(batch, keep), roles.labels[keep], among(roles.train, keep)
                )
        if len(roles.train):
            head.queue(rows_of(batch, roles.train))

    def _score(
        self, head: Head, batch: Batch, labels: npt.NDArray[Any], learned: npt.NDArray[np.intp]
    ) -> None:
        """Score ``batch`` and write its outputs; ``learned``: its rows that will also be
        learned from (their hashed features are kept for then). Events the scoring fails on
        become dead letters."""
        try:
            self._score_rows(head, batch, labels, learned)
            return
        except Exception as exc:
            if not is_events_fault(exc):
                raise
        # kept features would be those of a failed attempt: learning hashes them again
        head.forget_scored([tp for tp, _ in batch.meta.by_partition()])
        nothing = np.empty(0, dtype=np.intp)

        def score(index: npt.NDArray[np.intp]) -> None:
            self._score_rows(head, batch.take(index), labels[index], nothing)

        def reject(index: npt.NDArray[np.intp], exc: Exception) -> None:
            self._dead_letter(dead_letters_for(batch.take(index), "scoring", exc))

        isolate(np.arange(len(batch)), score, reject, index_halves)

    def _score_rows(
        self, head: Head, batch: Batch, labels: npt.NDArray[Any], learned: npt.NDArray[np.intp]
    ) -> None:
        predictions = head.predict(batch, learned)
        for component in self.components:
            component.scored(batch, predictions)
        known = labels if any_known(labels, head.task) else None
        self.outputs.scored(batch, predictions, known, head.results_table, head.task)
        self.stats.events_scored += len(batch)

    # -- learning -------------------------------------------------------------------------------

    def _learn_ready_blocks(self) -> None:
        """Learn the complete blocks, in the order of ``runtime.blocks`` (holding back those
        that come after the next block of a partition that is behind)."""
        if not self.pending:
            self.hold.waiting_for(set(), 0)
            return
        behind: set[TopicPartition] = set()
        if isinstance(self.source, Backlogged):
            behind = {tp for tp in self.source.behind(self.read) if tp[0] in self.train_topics}
        holding = any(head.blocks.holds_complete(self.read) for head in self.heads)
        behind = self.hold.waiting_for(behind if holding else set(), self.pending)
        for head in self.heads:
            runs = head.blocks.take_ready_runs(self.read, behind)
            if runs:
                self.hold.progressed()
            self._learn(head, runs)

    def _learn(self, head: Head, runs: list[tuple[Batch, list[int]]]) -> None:
        for run, bounds in runs:  # run by run, so that the metrics points fall where they did
            learned = head.learn_runs([(run, bounds)], self._tell_learned, self._dead_letter)
            self.stats.events_trained += learned
            if head is self.head:
                self._maybe_write_metrics(interval_only=True)

    def _tell_learned(self, outcome: Outcome) -> None:
        for component in self.components:
            self.hooks.tell(component, "learned", component.learned, outcome)

    def _learn_stale_blocks(self) -> None:
        wait = self.spec.learning.max_wait_seconds
        if wait is not None and self.pending and time.monotonic() - self._last_event >= wait:
            self.learn_pending()

    def learn_pending(self) -> None:
        """Learn every queued training row now, complete block or not (end of a replay)."""
        for head in self.heads:
            self._learn(head, head.blocks.take_ready_runs(self.read))
            self._learn(head, head.blocks.take_all_runs())

    # -- outputs --------------------------------------------------------------------------------

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        """Set ``letters`` aside, but for those a run before a restart already set aside."""
        if self._replay_emitted:
            letters = [
                letter
                for letter in letters
                if letter.offset >= self._replay_emitted.get((letter.topic, letter.partition), -1)
            ]
        if letters:
            self.outputs.dead_letter(letters)
            self.stats.dead_letters += len(letters)

    def metrics_rows(self) -> list[dict[str, Any]]:
        """Each model's current metrics, as rows of the training table."""
        return self.evaluation.rows()

    def _maybe_write_metrics(self, force: bool = False, interval_only: bool = False) -> None:
        """Write metrics each time ``interval_events`` more events were learned (by the
        pipeline's own target: the same points in every run, so a replay rewrites identical
        rows), or after ``interval_seconds``, or when forced."""
        learned = self.head.events_learned
        every = self.spec.evaluation.interval_events
        crossed = learned // every > self._metrics_mark // every
        stale = (
            not interval_only
            and time.monotonic() - self._last_metrics >= self.spec.evaluation.interval_seconds
        )
        if learned - self._metrics_mark <= 0 and not force:
            # nothing learned since: the components still write what they saw (the field
            # statistics of a stream that is only scored)
            if self.components and stale and self.stats.events_in > self._events_at_metrics:
                self._write_metrics(self.components)
            return
        if force or crossed or stale:
            self._write_metrics(
                [w for head in self.heads for w in head.writers()] + self.components
            )
            self._metrics_mark = learned

    def _write_metrics(self, writers: Sequence[Any]) -> None:
        now = time.time()
        for writer in writers:
            self.outages.call(
                "writing metrics",
                lambda writer=writer: writer.write_metrics(self.store, now),  # type: ignore[misc]
            )
        self._last_metrics = time.monotonic()
        self._events_at_metrics = self.stats.events_in

    # -- checkpoints ----------------------------------------------------------------------------

    def _maybe_take_commands(self) -> None:
        """On a quiet stream, checkpoint when the operator queued a command."""
        if self.commands.due(self._last_checkpoint, time.monotonic()) and self.outages.call(
            "reading the operator's commands",
            lambda: any(commands_waiting(head, self.store) for head in self.heads),
        ):
            self.checkpoint(wait=False)

    def _maybe_checkpoint(self) -> None:
        spec = self.spec.checkpoint
        events = self.stats.events_in - self._events_at_checkpoint
        if events and (
            events >= spec.interval_events
            or time.monotonic() - self._last_checkpoint >= spec.interval_seconds
        ):
            try:
                self.checkpoint(wait=False)
            except GroupMovedOnError as exc:
                log.warning("checkpoint failed: %s", exc)
                self.rewind(keep=set(self.assigned))

    def checkpoint(self, wait: bool = True) -> None:
        """Flush sinks and producer, write state and offsets in one transaction, then commit
        the offsets to Kafka (without waiting for the broker's answer if not ``wait``: the
        database's offsets are the ones a restart resumes at).

        If the consumer group went on without this worker meanwhile (an outage longer than its
        session), the Kafka transaction cannot commit (``GroupMovedOnError``): the caller goes
        back to the last checkpoint (``rewind``). A checkpoint during whose wait for a service
        the worker went back that way has nothing left to save, and stops there.
        """
        rewinds = self.rewinds

        def unless_rewound(action: Callable[[], T]) -> Callable[[], T]:
            def call() -> T:
                if self.rewinds != rewinds:
                    raise _Rewound
                return action()

            return call

        started = time.monotonic()
        learned = dict(self.read)
        for head in self.heads:
            for tp, offset in head.learned_frontier(self.read).items():
                learned[tp] = min(offset, learned.get(tp, offset))
        emitted = {tp: max(o, learned.get(tp, o)) for tp, o in self.emitted.items()}
        try:
            if self.transactions is None:
                self.outputs.flush()
            else:
                # outputs and the emitted frontier commit together; the database follows
                transactions = self.transactions
                self.outages.call(
                    "committing the Kafka transaction",
                    unless_rewound(lambda: transactions.commit(emitted)),
                )
        except _Rewound:
            return
        try:
            for head in self.heads:  # operator's commands, model events, model versions
                self.outages.call(
                    "recording the model lifecycle",
                    unless_rewound(
                        lambda head=head: at_checkpoint(head, self.store, self.worker_id)  # type: ignore[misc]
                    ),
                )
        except _Rewound:
            return
        model_states, extra = self.snapshot.gather(self.heads, self.components, self._metrics_mark)
        try:
            self.outages.call(
                "saving a checkpoint",
                unless_rewound(
                    lambda: self.store.save_checkpoint(
                        learned, model_states, extra, emitted=emitted
                    )
                ),
            )
        except _Rewound:
            return
        self.snapshot.merge_others(
            self.store,
            self.outages,
            self.heads,
            self.components,
            lambda component, others: self.hooks.tell(component, "merge", component.merge, others),
        )
        if self.transactions is None and learned:
            try:  # Kafka's offsets only follow the database's: a failed commit is harmless
                self.source.commit(dict(learned), wait=wait)
            except StreamError as exc:
                log.warning("committing offsets to Kafka failed (the checkpoint holds): %s", exc)
        self._last_checkpoint = time.monotonic()
        self.stats.last_checkpoint_seconds = self._last_checkpoint - started
        self.stats.checkpoints += 1
        self._events_at_checkpoint = self.stats.events_in

    # -- the loop -------------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        until: Callable[[Worker], bool] | None = None,
        on_batch: Callable[[Worker, int], None] | None = None,
        drain: bool = True,
    ) -> RunStats:
        """Handle batches until ``stop`` is set or ``until(worker)`` says so; then finish.

        ``drain`` learns the last, incomplete block before the final checkpoint (the end of a
        replay). A stop by ``stop`` (a signal) never drains: the block is left for the next run,
        which learns it exactly as an uninterrupted run would.
        """
        if stop is not None:
            self._stop = stop
            self.outages.stop = stop
        # the hot path allocates many short-lived arrays and no reference cycles: the cyclic
        # collector's frequent passes over long-lived objects only cost time
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 50)
        if Settings().keep_freed_memory:  # each poll's arrays reuse the last one's pages
            keep_freed_memory()
        try:
            while not self._stop.is_set():
                if until is not None and until(self):
                    break
                n = self.step()
                if on_batch is not None:
                    on_batch(self, n)
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            self.finish(drain=drain and not self._stop.is_set())
            self.stats.texts_truncated = sum(h.featurizer.truncated_texts for h in self.heads)
        return self.stats

    def finish(self, drain: bool = True) -> None:
        """Learn what is pending (if ``drain``), write the last metrics, checkpoint (the
        models' last versions go to the ``models`` table with it)."""
        if drain:
            self.learn_pending()
        self._maybe_write_metrics(force=True)
        now = time.time()
        for component in self.components:
            self.outages.call(
                "writing metrics",
                lambda component=component: component.finish(self.store, now),  # type: ignore[misc]
            )
        self.checkpoint()  # saves each model's last version too

    def close(self) -> None:
        """Leave the consumer group, then close the outputs and the store.

        Leaving hands this worker's partitions to the others of its group at once (one more
        checkpoint runs as they are revoked); a worker that exits without it keeps them until
        the group's session times out.
        """
        try:
            self.source.close()
        finally:
            self.outputs.close()
            if self.transactions is not None:
                self.transactions.close()
            self.store.close()


class _Rewound(Exception):
    """The worker went back to its last checkpoint while a checkpoint waited for a service."""
