"""The worker loop: poll, decode, score, write, learn in blocks, record, checkpoint.

One ``Worker`` runs one pipeline over one ``Source``. Each poll is handled in a fixed order:

1. decode; malformed events become dead letters (table and topic) with a reason;
2. split rows by role: labeled rows of a ``train`` topic are training rows, every other row
   is scored (every row, training rows too, with ``outputs.score_training_events``);
3. score the scoring rows with every model and write them to the predictions topic and the
   results table;
4. queue the training rows in a ``BlockBuffer``; each block of offsets that is complete is
   learned on its own: featurize (the featurizer learns its statistics), every model predicts
   the block (prequential: test), its evaluator records how it did, then it learns (train);
5. at the evaluation interval, write each model's metrics to the training table;
6. at the checkpoint interval: flush the sinks and the producer, write every model's state,
   the featurizer, the evaluators and the offsets in ONE database transaction, then commit the
   offsets to Kafka (the database leads; Kafka's committed offsets follow).

Two frontiers per partition make restarts exact. ``learned``: the offset learning resumes at
(the start of the first incomplete block); a restart seeks there and learns again what the
crash lost, reproducing the same model bit for bit. ``emitted``: outputs were written below
it; rows replayed below it are learned but not written again, so nothing is duplicated.

With ``processing: exactly_once`` the outputs and the consumer offsets are committed in one
Kafka transaction; the transaction's committed offsets are then the emitted frontier.
"""

from __future__ import annotations

import base64
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson
import scipy.sparse as sp

from streamfit.batch import Batch, DeadLetter, Messages, Offsets
from streamfit.codecs import decode_json
from streamfit.errors import ServiceUnavailableError, StreamError
from streamfit.evaluation import make_evaluator
from streamfit.features import Featurizer
from streamfit.models import build_model
from streamfit.models.base import Model
from streamfit.models.factory import model_from_state
from streamfit.runtime.allocator import keep_freed_memory
from streamfit.runtime.blocks import BlockBuffer
from streamfit.runtime.records import prediction_records
from streamfit.runtime.state import (
    decode_counters,
    encode_counters,
    evaluator_from_state,
    names_of,
)
from streamfit.spec.model import ModelSpec, PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import ModelPredictions, Store
from streamfit.streams.base import OutRecord, RecordSink, Source

__all__ = ["ModelSlot", "RunStats", "Worker"]

log = logging.getLogger("streamfit.worker")

T = TypeVar("T")
TopicPartition = tuple[str, int]


def model_kind(spec: ModelSpec) -> str:
    """``builtin:logistic_regression``, ``river:tree.HoeffdingTreeClassifier``, ..."""
    for kind in ("builtin", "river", "sklearn"):
        if hasattr(spec, kind):
            return f"{kind}:{getattr(spec, kind)}"
    return "unknown"


@dataclass(slots=True)
class ModelSlot:
    """A model with its evaluator and counters."""

    name: str
    kind: str
    model: Model
    evaluator: Any
    version: int = 0  # updates applied
    events_learned: int = 0


@dataclass(slots=True)
class RunStats:
    """What a worker has done in this process."""

    events_in: int = 0
    events_trained: int = 0
    events_scored: int = 0
    dead_letters: int = 0
    batches: int = 0
    checkpoints: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def events_per_second(self) -> float:
        return self.events_in / max(time.monotonic() - self.started, 1e-9)


class Worker:
    """Runs one pipeline: see the module docstring for the order of steps."""

    def __init__(
        self,
        spec: PipelineSpec,
        source: Source,
        store: Store,
        predictions: RecordSink | None = None,
        dead_letter_sink: RecordSink | None = None,
        worker_id: str = "0",
        transactions: Any | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.store = store
        self.predictions = predictions
        self.dead_letter_sink = dead_letter_sink
        self.worker_id = worker_id
        self.transactions = transactions  # a KafkaTransactions for exactly_once, else None
        self.task = spec.task
        self.names = names_of(worker_id)
        excluded = {name for name in (spec.target, spec.key) if name}
        self.featurizer = Featurizer(spec.features, exclude=excluded)
        self.slots = [
            ModelSlot(
                name=m.name,
                kind=model_kind(m),
                model=build_model(m, spec.task, self.featurizer.n_features),
                evaluator=make_evaluator(spec.task, spec.evaluation.window),
            )
            for m in spec.models
        ]
        self.train_topics = set(spec.topics.train)
        self.results_table = spec.outputs.results_table_name(spec.name)
        self.training_table = spec.outputs.training_table_name(spec.name)
        self.stats = RunStats()
        # per model: what scores events; the local model merged with the other workers' ones
        # where the learner is mergeable (refreshed at each checkpoint), else the local model
        self.serving: dict[str, Model] = {}
        self.blocks = BlockBuffer(spec.learning.block_events)
        self.read: Offsets = {}  # next offset to read, per partition
        self.emitted: Offsets = {}  # outputs written below these
        self._replay_emitted: Offsets = {}  # from the checkpoint: do not write again below
        self._events_learned_total = 0
        self._metrics_mark = 0
        self._last_metrics = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self._events_at_checkpoint = 0
        self._last_event = time.monotonic()
        self.assigned_at = time.monotonic()  # when partitions were last assigned
        self.assigned: set[TopicPartition] = set()
        self.resumed_at = time.monotonic()  # when a service last came back after an outage
        self._stop = threading.Event()
        self._install_hooks()
        self.restore()

    # -- restore -------------------------------------------------------------------------------

    def _install_hooks(self) -> None:
        if hasattr(self.source, "on_assign"):
            source: Any = self.source
            source.on_assign = self._on_assign
            source.on_revoke = self._on_revoke

    def restore(self) -> bool:
        """Load this worker's last checkpoint (state and offsets); False if there is none."""
        checkpoint = self._retry("loading the checkpoint", self.store.load_checkpoint)
        if checkpoint is None:
            return False
        states, extra = checkpoint.model_states, checkpoint.extra
        restored = False
        if self.names.featurizer in extra:
            self.featurizer = Featurizer.from_state(extra[self.names.featurizer])
            restored = True
        for slot in self.slots:
            blob = states.get(self.names.model(slot.name))
            if blob is not None:
                slot.model = model_from_state(blob)
            evaluator = extra.get(self.names.evaluator(slot.name))
            if evaluator is not None:
                slot.evaluator = evaluator_from_state(evaluator)
        counters = extra.get(self.names.counters)
        if counters is not None:
            values = decode_counters(counters)
            for slot in self.slots:
                slot.version, slot.events_learned = values.get("models", {}).get(slot.name, [0, 0])
            self._events_learned_total = int(values.get("events_learned", 0))
            self._metrics_mark = self._events_learned_total
        if not hasattr(self.source, "on_assign"):  # no group: seek at once to everything
            mine = {tp: o for tp, o in checkpoint.offsets.items() if tp[0] in self._topics()}
            if mine:
                self.source.seek(mine)
                self.read.update(mine)
                self._replay_emitted.update(
                    {tp: checkpoint.emitted.get(tp, o) for tp, o in mine.items()}
                )
        if restored:
            log.info(
                "worker %s restored its checkpoint of %s", self.worker_id, checkpoint.written_at
            )
        return restored

    def _topics(self) -> set[str]:
        return set(self.spec.topics.all)

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        """Seek newly assigned partitions to where the database says learning resumes."""
        checkpoint = self._retry("loading the checkpoint", self.store.load_checkpoint)
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
        """Checkpoint before partitions go, so their next owner resumes where we stop."""
        try:
            self.checkpoint()
        except Exception:
            log.exception("checkpoint before revocation failed")
        self.blocks.drop(partitions)
        self.featurizer.forget_scored(partitions)
        self.assigned.difference_update(partitions)
        for tp in partitions:
            self.read.pop(tp, None)
            self.emitted.pop(tp, None)
            self._replay_emitted.pop(tp, None)

    # -- one batch ------------------------------------------------------------------------------

    def step(self, timeout: float | None = None) -> int:
        """Poll one batch and handle it; return how many messages it held."""
        messages = self._retry(
            "polling",
            lambda: self.source.poll(
                self.spec.batch.max_records,
                self.spec.batch.timeout if timeout is None else timeout,
            ),
        )
        if messages is None or len(messages) == 0:
            self._learn_stale_blocks()
            self._maybe_write_metrics()
            self._maybe_checkpoint()
            return 0
        self.process(messages)
        return len(messages)

    def process(self, messages: Messages) -> None:
        """Handle one batch of raw messages (steps 1 to 6)."""
        decoded = decode_json(messages, self.spec.target, self.task)
        if decoded.dead_letters:
            letters = [
                letter
                for letter in decoded.dead_letters
                if letter.offset >= self._replay_emitted.get((letter.topic, letter.partition), -1)
            ]
            if letters:
                self._dead_letter(letters)
        batch = decoded.batch
        if len(batch):
            train_rows, score_rows, labels = self._split_roles(batch)
            if len(score_rows):
                keep = score_rows[self._emit_mask(batch.meta)[score_rows]]
                if len(keep):
                    self._score(_rows(batch, keep), labels[keep], _among(train_rows, keep))
            if len(train_rows):
                self.blocks.add(_rows(batch, train_rows))
        self.stats.events_in += len(messages)
        self.stats.batches += 1
        self._last_event = time.monotonic()
        for tp, offset in messages.next_offsets().items():
            self.read[tp] = max(offset, self.read.get(tp, 0))
            self.emitted[tp] = max(offset, self.emitted.get(tp, 0))
        for run, bounds in self.blocks.take_complete_runs(self.read):
            self._learn_run(run, bounds)
        self._maybe_write_metrics()
        self._maybe_checkpoint()

    def _emit_mask(self, meta: Messages) -> npt.NDArray[np.bool_]:
        """Rows whose outputs were not written before a restart."""
        if not self._replay_emitted:
            return np.ones(len(meta), dtype=bool)
        limit = np.array(
            [
                self._replay_emitted.get((t, int(p)), -1)
                for t, p in zip(meta.topics.tolist(), meta.partitions.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        return meta.offsets >= limit

    def _split_roles(
        self, batch: Batch
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[Any]]:
        n = len(batch)
        target = self.spec.target
        if target and target in batch.columns:
            labels = batch.columns[target]
            if self.task == "regression":
                labeled = ~np.isnan(labels.astype(np.float64))
            else:
                labeled = np.asarray(labels != None, dtype=bool)  # noqa: E711 (elementwise)
        else:
            labels = np.full(n, None, dtype=object)
            labeled = np.zeros(n, dtype=bool)
        topic = batch.meta.single_topic()
        if topic is not None:
            in_train_topic = np.full(n, topic in self.train_topics)
        else:
            in_train_topic = np.isin(batch.meta.topics, list(self.train_topics))
        is_train = labeled & in_train_topic
        if self.spec.outputs.score_training_events:
            return np.flatnonzero(is_train), np.arange(n), labels
        return np.flatnonzero(is_train), np.flatnonzero(~is_train), labels

    def _score(self, batch: Batch, labels: npt.NDArray[Any], learned: npt.NDArray[np.intp]) -> None:
        """Score ``batch`` and write its outputs; ``learned``: its rows that will also be
        learned from (their hashed features are kept for then)."""
        if self.train_topics:
            X = self.featurizer.transform(batch, remember=learned)
        else:  # nothing to learn from: the scored stream is all the featurizer will see
            X = self.featurizer.learn_transform(batch)
        predictions = [self._predict(slot, X) for slot in self.slots]
        if self.spec.outputs.write_results:
            known = labels if _any_known(labels, self.task) else None
            self._retry(
                "writing results",
                lambda: self.store.write_results(
                    self.results_table, batch, predictions, known, self.task
                ),
            )
        if self.predictions is not None:
            self.predictions.write(prediction_records(batch, predictions, self.spec.key))
        self.stats.events_scored += len(batch)

    def _predict(self, slot: ModelSlot, X: sp.csr_matrix) -> ModelPredictions:
        model: Any = self.serving.get(slot.name, slot.model)
        if self.task == "classification":
            proba = model.predict_proba_many(X)
            classes = list(model.classes)
            if proba.shape[1] == 0:
                n = X.shape[0]
                return ModelPredictions(
                    slot.name, slot.version, np.full(n, None, dtype=object), np.full(n, np.nan)
                )
            best = proba.argmax(axis=1)
            labels = np.empty(len(classes), dtype=object)
            labels[:] = classes
            return ModelPredictions(
                slot.name, slot.version, labels[best], proba[np.arange(len(best)), best]
            )
        return ModelPredictions(
            slot.name, slot.version, np.asarray(model.predict_many(X), dtype=np.float64), None
        )

    def _learn_run(self, run: Batch, bounds: list[int]) -> None:
        """Learn consecutive blocks of one partition: featurized in one pass (the moments
        still move block by block), then tested and trained block by block."""
        matrices = self.featurizer.learn_transform_blocks(run, bounds)
        labels = run.columns[self.spec.target or ""]
        for X, (a, b) in zip(matrices, pairwise(bounds), strict=True):
            self._learn_block(X, labels[a:b])

    def _learn_block(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        for slot in self.slots:
            model: Any = slot.model
            if self.task == "classification":
                slot.evaluator.update(y, model.predict_proba_many(X), list(model.classes))
            else:
                y = y.astype(np.float64)
                slot.evaluator.update(y, np.asarray(model.predict_many(X), dtype=np.float64))
            model.learn_many(X, y)
            slot.version += 1
            slot.events_learned += X.shape[0]
        self.stats.events_trained += X.shape[0]
        self._events_learned_total += X.shape[0]
        self._maybe_write_metrics(interval_only=True)

    def _learn_stale_blocks(self) -> None:
        wait = self.spec.learning.max_wait_seconds
        if wait is not None and len(self.blocks) and time.monotonic() - self._last_event >= wait:
            self.learn_pending()

    def learn_pending(self) -> None:
        """Learn every queued training row now, complete block or not (end of a replay)."""
        for run, bounds in self.blocks.take_all_runs():
            self._learn_run(run, bounds)

    # -- outputs --------------------------------------------------------------------------------

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        self._retry("writing dead letters", lambda: self.store.write_dead_letters(letters))
        if self.dead_letter_sink is not None:
            self.dead_letter_sink.write(
                [
                    OutRecord(
                        letter.key,
                        orjson.dumps(
                            {
                                "pipeline": self.spec.name,
                                "reason": letter.reason,
                                "topic": letter.topic,
                                "partition": letter.partition,
                                "offset": letter.offset,
                                "payload_base64": base64.b64encode(letter.value or b"").decode(),
                            }
                        ),
                    )
                    for letter in letters
                ]
            )
        self.stats.dead_letters += len(letters)
        for letter in letters[:3]:
            log.warning(
                "dead letter %s[%d]@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
            )

    def metrics_rows(self) -> list[dict[str, Any]]:
        """Each model's current metrics, as rows of the training table."""
        now = time.time()
        rows = []
        for slot in self.slots:
            snapshot = dict(slot.evaluator.snapshot())
            snapshot.pop("events_seen", None)
            rows.append(
                {
                    "model": slot.name,
                    "model_version": slot.version,
                    "events_seen": slot.events_learned,
                    "recorded_at": now,
                    **snapshot,
                }
            )
        return rows

    def _maybe_write_metrics(self, force: bool = False, interval_only: bool = False) -> None:
        """Write metrics each time ``interval_events`` more events were learned (the same
        points in every run, so a replay rewrites identical rows), or after
        ``interval_seconds``, or when forced."""
        new_events = self._events_learned_total - self._metrics_mark
        if new_events <= 0:
            return
        every = self.spec.evaluation.interval_events
        crossed = self._events_learned_total // every > self._metrics_mark // every
        stale = (
            not interval_only
            and time.monotonic() - self._last_metrics >= self.spec.evaluation.interval_seconds
        )
        if force or crossed or stale:
            rows = self.metrics_rows()
            self._retry(
                "writing metrics", lambda: self.store.write_training(self.training_table, rows)
            )
            self._metrics_mark = self._events_learned_total
            self._last_metrics = time.monotonic()

    # -- checkpoints ----------------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        spec = self.spec.checkpoint
        events = self.stats.events_in - self._events_at_checkpoint
        if events and (
            events >= spec.interval_events
            or time.monotonic() - self._last_checkpoint >= spec.interval_seconds
        ):
            self.checkpoint(wait=False)

    def checkpoint(self, wait: bool = True) -> None:
        """Flush sinks and producer, write state and offsets in one transaction, then commit
        the offsets to Kafka (without waiting for the broker's answer if not ``wait``: the
        database's offsets are the ones a restart resumes at)."""
        learned = self.blocks.learned_frontier(self.read)
        emitted = {tp: max(o, learned.get(tp, o)) for tp, o in self.emitted.items()}
        if self.transactions is None:
            for sink in (self.predictions, self.dead_letter_sink):
                if sink is not None:
                    self._retry("flushing outputs", sink.flush)
        else:
            # outputs and the emitted frontier commit together; the database follows
            transactions = self.transactions
            self._retry("committing the Kafka transaction", lambda: transactions.commit(emitted))
        model_states = {self.names.model(s.name): s.model.state() for s in self.slots}
        extra = {self.names.evaluator(s.name): s.evaluator.state() for s in self.slots}
        extra[self.names.featurizer] = self.featurizer.state()
        extra[self.names.counters] = encode_counters(
            {
                "events_learned": self._events_learned_total,
                "models": {s.name: [s.version, s.events_learned] for s in self.slots},
            }
        )
        self._retry(
            "saving a checkpoint",
            lambda: self.store.save_checkpoint(learned, model_states, extra, emitted=emitted),
        )
        self._merge_other_workers()
        if self.transactions is None and learned:
            try:  # Kafka's offsets only follow the database's: a failed commit is harmless
                self.source.commit(dict(learned), wait=wait)
            except StreamError as exc:
                log.warning("committing offsets to Kafka failed (the checkpoint holds): %s", exc)
        self.stats.checkpoints += 1
        self._last_checkpoint = time.monotonic()
        self._events_at_checkpoint = self.stats.events_in

    def _merge_other_workers(self) -> None:
        """Serve with each mergeable model merged with the other workers' latest states.

        Every worker of a pipeline learns from its own partitions; through the checkpoint
        tables each one scores with a model that has learned from all of them. The local model
        keeps learning alone (merging it in place would count shared history twice).
        """
        mine = f"{self.worker_id}/"
        for slot in self.slots:
            if not hasattr(slot.model, "merge"):
                continue
            others = self._retry(
                "loading other workers' models",
                lambda slot=slot: self.store.load_states(  # type: ignore[misc]
                    suffix=f"/model/{slot.name}", exclude_prefix=mine
                ),
            )
            if not others:
                self.serving.pop(slot.name, None)
                continue
            merged: Any = model_from_state(slot.model.state())
            for _, blob in sorted(others.items()):
                other: Any = model_from_state(blob)
                if type(other) is type(merged):
                    merged.merge(other)
            self.serving[slot.name] = merged

    # -- outages --------------------------------------------------------------------------------

    def _retry(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; while a service is unavailable, pause and retry with backoff."""
        delay = 0.5
        since: float | None = None
        while True:
            try:
                result = action()
            except (ServiceUnavailableError, StreamError) as exc:
                if isinstance(exc, StreamError) and not _transient(exc):
                    raise
                if since is None:
                    since = time.monotonic()
                    log.warning("%s: %s; pausing and retrying until it is back", what, exc)
                if self._stop.is_set() and time.monotonic() - since > 30:
                    raise
                self._pause(min(delay, 5.0))
                delay = min(delay * 2, 5.0)
                continue
            if since is not None:
                log.warning("%s: back after %.1f s; resuming", what, time.monotonic() - since)
                self.resumed_at = time.monotonic()
                resume = getattr(self.source, "resume", None)
                if resume is not None:
                    resume()
            return result

    def _pause(self, seconds: float) -> None:
        keepalive = getattr(self.source, "keepalive", None)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if keepalive is not None:
                keepalive()
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))

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
        return self.stats

    def finish(self, drain: bool = True) -> None:
        """Learn what is pending (if ``drain``), write the last metrics, save the models,
        checkpoint."""
        if drain:
            self.learn_pending()
        self._maybe_write_metrics(force=True)
        for slot in self.slots:
            self._retry(
                "saving a model",
                lambda slot=slot: self.store.save_model(  # type: ignore[misc]
                    slot.name, slot.version, slot.kind, slot.model.state()
                ),
            )
        self.checkpoint()

    def close(self) -> None:
        """Leave the consumer group, then close the outputs and the store.

        Leaving hands this worker's partitions to the others of its group at once (one more
        checkpoint runs as they are revoked); a worker that exits without it keeps them until
        the group's session times out.
        """
        self.source.close()
        for sink in (self.predictions, self.dead_letter_sink):
            if sink is not None:
                sink.close()
        if self.transactions is not None:
            self.transactions.close()
        self.store.close()


def _transient(exc: StreamError) -> bool:
    text = str(exc).lower()
    return any(
        word in text
        for word in ("undelivered", "timed out", "transport", "all brokers down", "not delivered")
    )


def _rows(batch: Batch, index: npt.NDArray[np.intp]) -> Batch:
    """The rows of ``batch`` at ``index`` (increasing row numbers): the batch itself, not a
    copy, when that is every row (the usual case of a topic with one role)."""
    return batch if len(index) == len(batch) else batch.take(index)


def _among(rows: npt.NDArray[np.intp], index: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Where the ``rows`` (increasing) are found in ``index`` (increasing).

    >>> _among(np.array([1, 3]), np.array([0, 1, 2, 3])).tolist()
    [1, 3]
    """
    if np.array_equal(rows, index):
        return np.arange(len(index))
    return np.flatnonzero(np.isin(index, rows, assume_unique=True))


def _any_known(labels: npt.NDArray[Any], task: str) -> bool:
    if task == "regression":
        return bool((~np.isnan(labels.astype(np.float64))).any())
    return any(v is not None for v in labels)
