"""The worker loop: poll, decode, featurize, predict, write, learn, record, commit.

One ``Worker`` runs one pipeline over one ``Source``. Each batch is handled in a fixed order,
so that a run is repeatable given the order of events:

1. decode the batch; malformed events become dead letters (table and topic) with a reason;
2. split rows by role: labeled rows of a ``train`` topic are training rows, every other row
   is scored;
3. featurize all rows (the featurizer learns scaling statistics from every row);
4. score the scoring rows with every model, then write them to the predictions topic and the
   results table;
5. for the training rows, each model first predicts them (prequential: test), the evaluator
   records how it did, then the model learns from them (train);
6. at the evaluation interval, write each model's metrics to the training table;
7. at the commit interval, flush the sinks and only then commit the input offsets.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import scipy.sparse as sp

from streamfit.batch import Batch, DeadLetter, Messages, Offsets
from streamfit.codecs import decode_json
from streamfit.evaluation import make_evaluator
from streamfit.features import Featurizer
from streamfit.models import build_model
from streamfit.models.base import Model
from streamfit.spec.model import ModelSpec, PipelineSpec
from streamfit.store import ModelPredictions, Store
from streamfit.streams.base import OutRecord, RecordSink, Source

__all__ = ["ModelSlot", "RunStats", "Worker"]

log = logging.getLogger("streamfit.worker")


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
    """What a worker has done so far."""

    events_in: int = 0
    events_trained: int = 0
    events_scored: int = 0
    dead_letters: int = 0
    batches: int = 0
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
        commit_interval: float = 5.0,
    ) -> None:
        self.spec = spec
        self.source = source
        self.store = store
        self.predictions = predictions
        self.dead_letter_sink = dead_letter_sink
        self.commit_interval = commit_interval
        self.task = spec.task
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
        self._pending_offsets: Offsets = {}
        self._last_commit = time.monotonic()
        self._events_at_last_metrics = 0
        self._last_metrics = time.monotonic()

    # -- one batch ---------------------------------------------------------------------------

    def step(self, timeout: float | None = None) -> int:
        """Poll one batch and handle it; return how many messages it held."""
        messages = self.source.poll(
            self.spec.batch.max_records, self.spec.batch.timeout if timeout is None else timeout
        )
        if messages is None or len(messages) == 0:
            self._maybe_write_metrics()
            self._maybe_commit()
            return 0
        self.process(messages)
        return len(messages)

    def process(self, messages: Messages) -> None:
        """Handle one batch of raw messages (steps 1 to 7)."""
        decoded = decode_json(messages, self.spec.target, self.task)
        if decoded.dead_letters:
            self._dead_letter(decoded.dead_letters)
        batch = decoded.batch
        if len(batch):
            train_rows, score_rows, labels = self._split_roles(batch)
            X = self.featurizer.learn_transform(batch)
            if len(score_rows):
                self._score(batch.take(score_rows), X[score_rows], labels[score_rows])
            if len(train_rows):
                self._learn(X[train_rows], labels[train_rows])
        self.stats.events_in += len(messages)
        self.stats.batches += 1
        for tp, offset in messages.next_offsets().items():
            self._pending_offsets[tp] = max(offset, self._pending_offsets.get(tp, 0))
        self._maybe_write_metrics()
        self._maybe_commit()

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
                labeled = np.array([v is not None for v in labels], dtype=bool)
        else:
            labels = np.full(n, None, dtype=object)
            labeled = np.zeros(n, dtype=bool)
        in_train_topic = np.isin(batch.meta.topics, list(self.train_topics))
        is_train = labeled & in_train_topic
        return np.flatnonzero(is_train), np.flatnonzero(~is_train), labels

    def _score(self, batch: Batch, X: sp.csr_matrix, labels: npt.NDArray[Any]) -> None:
        predictions = [self._predict(slot, X) for slot in self.slots]
        if self.spec.outputs.write_results:
            known = labels if _any_known(labels, self.task) else None
            self.store.write_results(self.results_table, batch, predictions, known, self.task)
        if self.predictions is not None:
            self.predictions.write(self._prediction_records(batch, predictions))
        self.stats.events_scored += len(batch)

    def _predict(self, slot: ModelSlot, X: sp.csr_matrix) -> ModelPredictions:
        model: Any = slot.model
        if self.task == "classification":
            proba = model.predict_proba_many(X)
            classes = list(model.classes)
            if proba.shape[1] == 0:
                n = X.shape[0]
                return ModelPredictions(
                    slot.name, slot.version, np.full(n, None, dtype=object), np.full(n, np.nan)
                )
            best = proba.argmax(axis=1)
            prediction = np.empty(len(best), dtype=object)
            prediction[:] = [classes[i] for i in best.tolist()]
            return ModelPredictions(
                slot.name, slot.version, prediction, proba[np.arange(len(best)), best]
            )
        return ModelPredictions(
            slot.name, slot.version, np.asarray(model.predict_many(X), dtype=np.float64), None
        )

    def _learn(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        for slot in self.slots:
            model: Any = slot.model
            if self.task == "classification":
                slot.evaluator.update(y, model.predict_proba_many(X), list(model.classes))
            else:
                slot.evaluator.update(
                    y.astype(np.float64), np.asarray(model.predict_many(X), dtype=np.float64)
                )
            model.learn_many(X, y)
            slot.version += 1
            slot.events_learned += X.shape[0]
        self.stats.events_trained += X.shape[0]

    # -- outputs -----------------------------------------------------------------------------

    def _prediction_records(
        self, batch: Batch, predictions: list[ModelPredictions]
    ) -> list[OutRecord]:
        key_field = self.spec.key
        key_values = batch.columns.get(key_field) if key_field else None
        champion, others = predictions[0], predictions[1:]
        meta = batch.meta
        records = []
        for i in range(len(batch)):
            key = meta.keys[i]
            if key_values is not None and key_values[i] is not None:
                key = str(key_values[i]).encode()
            event: dict[str, Any] = {
                "key": key.decode("utf-8", "replace") if key is not None else None,
                "prediction": _plain(champion.prediction[i]),
                "probability": _plain(champion.probability[i])
                if champion.probability is not None
                else None,
                "model": champion.name,
                "model_version": champion.version,
                "topic": meta.topics[i],
                "partition": int(meta.partitions[i]),
                "offset": int(meta.offsets[i]),
            }
            if others:
                event["challengers"] = {
                    p.name: {
                        "prediction": _plain(p.prediction[i]),
                        "probability": _plain(p.probability[i])
                        if p.probability is not None
                        else None,
                        "model_version": p.version,
                    }
                    for p in others
                }
            records.append(OutRecord(key, orjson.dumps(event)))
        return records

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        self.store.write_dead_letters(letters)
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

    def _maybe_write_metrics(self, force: bool = False) -> None:
        new_events = self.stats.events_trained - self._events_at_last_metrics
        if new_events == 0:
            return
        due = (
            new_events >= self.spec.evaluation.interval_events
            or time.monotonic() - self._last_metrics >= self.spec.evaluation.interval_seconds
        )
        if force or due:
            self.store.write_training(self.training_table, self.metrics_rows())
            self._events_at_last_metrics = self.stats.events_trained
            self._last_metrics = time.monotonic()

    def _maybe_commit(self, force: bool = False) -> None:
        if not self._pending_offsets:
            return
        if force or time.monotonic() - self._last_commit >= self.commit_interval:
            self.commit()

    def commit(self) -> None:
        """Flush every sink, then commit the offsets of everything handled so far."""
        for sink in (self.predictions, self.dead_letter_sink):
            if sink is not None:
                sink.flush()
        if self._pending_offsets:
            self.source.commit(dict(self._pending_offsets))
            self._pending_offsets.clear()
        self._last_commit = time.monotonic()

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        until: Callable[[Worker], bool] | None = None,
        on_batch: Callable[[Worker, int], None] | None = None,
    ) -> RunStats:
        """Handle batches until ``stop`` is set or ``until(worker)`` says so; then finish."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                if until is not None and until(self):
                    break
                n = self.step()
                if on_batch is not None:
                    on_batch(self, n)
        finally:
            self.finish()
        return self.stats

    def finish(self) -> None:
        """Write the last metrics, save the models, flush and commit."""
        self._maybe_write_metrics(force=True)
        for slot in self.slots:
            self.store.save_model(slot.name, slot.version, slot.kind, slot.model.state())
        self.commit()


def _any_known(labels: npt.NDArray[Any], task: str) -> bool:
    if task == "regression":
        return bool((~np.isnan(labels.astype(np.float64))).any())
    return any(v is not None for v in labels)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
