"""The head of a ``task: anomaly`` pipeline: every event scored, then learned from.

An ``AnomalyHead`` takes the place of a ``Head`` in the worker (same interface) for a pipeline
without a target. Each batch of events is scored by every detector of the spec, each event
by the detector as it was just before it, and learned at once (unsupervised
test-then-train: no block waits, nothing is queued, so learning never lags the read
position). Per detector, a ``ScoreQuantiles`` turns each score into its ``score_quantile``
(its rank among the recent scores) and its ``is_anomaly`` (``anomaly:`` in the spec), and an
``AnomalyEvaluator`` follows its quality against the spec's ``label:`` field where events
have one (evaluation only: the label is never a feature; 1, true or yes an anomaly, 0,
false or no not, anything else unknown). What goes out, per event and detector:
``anomaly_score``, ``score_quantile`` and ``is_anomaly`` in the results table and on the
predictions topic; per detector, at the metrics interval, a row of its training table with
the recent scores' quantiles (``score_p50``, ``score_p90``, ``score_p99``, ``score_p99_9``)
and, with labels, ``roc_auc``, ``average_precision``, ``precision``, ``recall`` (at the
alarms) and ``alarm_rate``, cumulative and over the last ``evaluation.window`` events.

Detectors read the decoded batch itself (the built-in ``HistogramDetector``) or each event's
fields as records (River's). With other workers in the group, a mergeable detector scores
with its state merged with theirs (refreshed at each checkpoint) and learns alone, as the
mergeable models do. Checkpoint names, besides the head's model and featurizer names:
``evaluator/<m>`` and ``scores/<m>``.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, DeadLetter, Offsets
from streamfit.errors import StateFormatError
from streamfit.evaluation.anomaly import AnomalyEvaluator
from streamfit.explore.scores import SCORE_QUANTILES, ScoreQuantiles
from streamfit.features import Featurizer
from streamfit.features.columns import as_flags
from streamfit.models.base import Detector, Model
from streamfit.models.factory import build_detector, model_from_state
from streamfit.runtime.blocks import BlockBuffer
from streamfit.runtime.component import Component, Outcome
from streamfit.runtime.head import Head
from streamfit.runtime.models import ModelSlot, model_kind
from streamfit.runtime.routing import Roles
from streamfit.spec.model import ModelSpec, PipelineSpec
from streamfit.store import ModelPredictions
from streamfit.store.tables import SCORE_QUANTILE_COLUMNS

if TYPE_CHECKING:
    from streamfit.store import Store

__all__ = ["AnomalyHead", "DetectorSet", "anomaly_labels"]

log = logging.getLogger("streamfit.worker")

TopicPartition = tuple[str, int]


def anomaly_labels(column: npt.NDArray[Any] | None, n: int) -> npt.NDArray[np.object_]:
    """The label field read as anomaly flags: 1 (anomaly), 0 (not), None (unknown).

    >>> anomaly_labels(np.array([1.0, 0.0, np.nan]), 3).tolist()
    [1, 0, None]
    >>> anomaly_labels(np.array(["yes", "no", "maybe"], dtype=object), 3).tolist()
    [1, 0, None]
    """
    out = np.full(n, None, dtype=object)
    if column is None:
        return out
    flags = as_flags(column)
    known = ~np.isnan(flags)
    out[known] = flags[known].astype(np.int64).tolist()
    return out


class DetectorSet:
    """The detectors of an anomaly pipeline, side by side; the first is the champion."""

    def __init__(self, specs: list[ModelSpec]) -> None:
        self.task = "anomaly"
        self.slots = [
            ModelSlot(m.name, model_kind(m), cast(Model, build_detector(m))) for m in specs
        ]
        self.serving: dict[str, Any] = {}  # merged with the other workers' (mergeable ones)

    @property
    def names(self) -> list[str]:
        return [slot.name for slot in self.slots]

    def states(self) -> dict[str, bytes]:
        return {slot.name: slot.model.state() for slot in self.slots}

    def restore(self, states: Mapping[str, bytes]) -> None:
        for slot in self.slots:
            blob = states.get(slot.name)
            if blob is not None:
                slot.model = model_from_state(blob)

    def counters(self) -> dict[str, list[int]]:
        return {slot.name: [slot.version, slot.events_learned] for slot in self.slots}

    def restore_counters(self, counters: Mapping[str, Any]) -> None:
        for slot in self.slots:
            slot.version, slot.events_learned = counters.get(slot.name, [0, 0])

    def refresh_serving(self, others_of: Callable[[str], Mapping[str, bytes]]) -> None:
        """Score with each mergeable detector merged with the other workers' latest."""
        for slot in self.slots:
            if not hasattr(slot.model, "merge"):
                continue
            others = others_of(slot.name)
            if not others:
                self.serving.pop(slot.name, None)
                continue
            merged = model_from_state(slot.model.state())
            for _, blob in sorted(others.items()):
                other = model_from_state(blob)
                if type(other) is type(merged):
                    merged.merge(other)  # type: ignore[attr-defined]
            self.serving[slot.name] = merged

    def copy(self) -> DetectorSet:
        """An independent copy of what scores now (each detector through its state, merged
        ones as they serve, with its counters): what a server scores with while the worker
        learns."""
        clone = DetectorSet.__new__(DetectorSet)
        clone.task = self.task
        clone.serving = {}
        clone.slots = [
            ModelSlot(
                slot.name,
                slot.kind,
                model_from_state(self.serving.get(slot.name, slot.model).state()),
                slot.version,
                slot.events_learned,
            )
            for slot in self.slots
        ]
        return clone


class AnomalyHead(Head):
    """The head of a ``task: anomaly`` pipeline (see the module docstring)."""

    def __init__(
        self,
        spec: PipelineSpec,
        worker_id: str = "0",
        name: str = "",
        is_events_fault: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        # not Head.__init__: no target, no label rules, no blocks to wait for
        self.spec = spec
        self.name = name
        self.task = "anomaly"
        self._at = f"@{name}" if name else ""
        self._is_events_fault = is_events_fault
        self.train_topics: set[str] = set()
        self.excluded = {field for field in (spec.key, spec.label) if field}
        self._wanted: dict[str, bool] = {}
        self.featurizer = Featurizer(spec.features, exclude=self.excluded)
        self.models = DetectorSet(spec.models)  # type: ignore[assignment]
        anomaly = spec.anomaly
        self.scores = {
            n: ScoreQuantiles(anomaly.window, anomaly.alarm_quantile, anomaly.alarm_score)
            for n in self.models.names
        }
        self.assessment = AnomalyEvaluation(
            self, spec.outputs.training_table_name(spec.name), spec.evaluation.window, worker_id
        )
        self.evaluation = self.assessment  # type: ignore[assignment]
        self.labels = _NoLabelRules()  # type: ignore[assignment]
        self.blocks = BlockBuffer(1)  # always empty: events are learned as they are scored
        self.results_table = spec.outputs.results_table_name(spec.name)
        self.events_learned = 0

    def wanted(self, field: str) -> bool:
        """Whether a detector reads ``field``: ``features.include`` (names or glob patterns;
        all fields by default) less ``features.exclude``, the label and the key."""
        known = self._wanted.get(field)
        if known is None:
            if len(self._wanted) >= 10_000:  # a stream of ever new names
                self._wanted.clear()
            features = self.spec.features
            known = (
                field not in self.excluded
                and not _matches(field, features.exclude)
                and (features.include is None or _matches(field, features.include))
            )
            self._wanted[field] = known
        return known

    def roles(self, batch: Batch) -> Roles:
        """Every event is scored (and learned from, as it is scored)."""
        n = len(batch)
        labels = anomaly_labels(batch.columns.get(self.spec.label or ""), n)
        return Roles(np.empty(0, dtype=np.intp), np.arange(n), labels)

    def predict(self, batch: Batch, learned: npt.NDArray[np.intp]) -> list[ModelPredictions]:
        """Score every event of ``batch`` with every detector, then learn it."""
        n = len(batch)
        inputs = _Inputs(self, batch)
        labels = anomaly_labels(batch.columns.get(self.spec.label or ""), n)
        out = []
        for slot in self.models.slots:
            detector = cast(Detector, slot.model)
            X = inputs.of(detector)
            serving = self.models.serving.get(slot.name)
            if serving is None:
                scores = detector.score_learn_many(X)
            else:
                scores = cast(Detector, serving).score_many(X)
                detector.learn_many(X)
            scores = np.asarray(scores, dtype=np.float64)
            ranks, alarms = self.scores[slot.name].rank_then_add(scores)
            slot.version += 1
            slot.events_learned += n
            self.assessment.update(slot.name, labels, scores, alarms)
            out.append(ModelPredictions(slot.name, slot.version, scores, ranks, alarms))
        self.events_learned += n
        return out

    def score(self, batch: Batch, names: Collection[str] | None = None) -> list[ModelPredictions]:
        """Score ``batch`` with every detector (those in ``names``) as it is now, learning
        nothing: each event's anomaly score, its rank among the recent scores and whether it
        raises an alarm (what a server answers)."""
        inputs = _Inputs(self, batch, learn=False)
        out = []
        for slot in self.models.slots:
            if names is not None and slot.name not in names:
                continue
            detector = cast(Detector, self.models.serving.get(slot.name, slot.model))
            scores = np.asarray(detector.score_many(inputs.of(detector)), dtype=np.float64)
            quantiles = self.scores[slot.name]
            ranks = quantiles.ranks(scores)
            out.append(
                ModelPredictions(
                    slot.name, slot.version, scores, ranks, quantiles.alarms(scores, ranks)
                )
            )
        return out

    def serving_copy(self) -> AnomalyHead:
        """A head of its own that scores as this one does now (``score``), whatever this one
        learns next."""
        clone = AnomalyHead(self.spec, name=self.name)
        clone.featurizer = Featurizer.from_state(self.featurizer.state())
        clone.models = self.models.copy()
        clone.scores = {n: ScoreQuantiles.from_state(q.state()) for n, q in self.scores.items()}
        clone.events_learned = self.events_learned
        return clone

    def queue(self, batch: Batch) -> None:
        """Nothing waits: events were learned as they were scored."""

    def learn_runs(
        self,
        runs: list[tuple[Batch, list[int]]],
        tell: Callable[[Outcome], None],
        dead_letter: Callable[[list[DeadLetter]], None],
    ) -> int:
        return 0

    def learned_frontier(self, read: Offsets) -> Offsets:
        return {}  # learning is as far as reading

    def extra_states(self) -> dict[str, bytes]:
        states = {self.featurizer_key: self.featurizer.state()}
        states.update(self.evaluation.state())
        for model, quantiles in self.scores.items():
            states[f"scores{self._at}/{model}"] = quantiles.state()
        return states

    def restore(
        self, models: Mapping[str, bytes], extra: Mapping[str, bytes], counters: Mapping[str, Any]
    ) -> bool:
        restored = super().restore(models, extra, counters)
        for model in self.scores:
            blob = extra.get(f"scores{self._at}/{model}")
            if blob is None:
                continue
            try:
                self.scores[model] = ScoreQuantiles.from_state(blob)
            except StateFormatError as exc:
                log.warning("the checkpoint's score quantiles of %s are unreadable: %s", model, exc)
        return restored


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


class _NoLabelRules:
    """An anomaly pipeline has no target: no event is rejected for its label."""

    def screen(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        return batch, []


class _Inputs:
    """What each detector reads of one batch, made once: the batch without the label and
    the key (``columns``), or its records (the featurizer learns the fields first)."""

    def __init__(self, head: AnomalyHead, batch: Batch, learn: bool = True) -> None:
        self.head = head
        self.batch = batch
        self.learn = learn
        self._columns: Batch | None = None
        self._records: list[dict[str, Any]] | None = None
        self._matrix: Any = None

    def of(self, detector: Detector) -> Any:
        reads = getattr(detector, "reads", "columns")
        if reads == "columns":
            if self._columns is None:
                wanted = self.head.wanted
                batch = self.batch
                self._columns = Batch(
                    {k: v for k, v in batch.columns.items() if wanted(k)},
                    batch.meta,
                    batch.booleans,
                    batch.partial,
                )
            return self._columns
        if self._matrix is None:
            featurizer = self.head.featurizer
            self._matrix = (
                featurizer.learn_transform(self.batch)
                if self.learn
                else featurizer.transform(self.batch)
            )
        if reads == "matrix":
            return self._matrix
        if self._records is None:
            self._records = self.head.featurizer.records(self.batch)
        return self._records


class AnomalyEvaluation(Component):
    """Each detector's score quantiles and (with labels) quality, a training row each."""

    def __init__(self, head: AnomalyHead, table: str, window: int, worker: str = "0") -> None:
        self.head = head
        self.table = table
        self.worker = worker
        self.evaluators = {name: AnomalyEvaluator(window) for name in head.models.names}

    def update(
        self,
        model: str,
        labels: npt.NDArray[Any],
        scores: npt.NDArray[np.float64],
        alarms: npt.NDArray[np.bool_],
    ) -> None:
        flags = np.array([np.nan if v is None else float(v) for v in labels.tolist()])
        self.evaluators[model].update(flags, scores, alarms)

    def state(self) -> dict[str, bytes]:
        at = self.head._at
        return {f"evaluator{at}/{name}": ev.state() for name, ev in self.evaluators.items()}

    def restore(self, states: Mapping[str, bytes]) -> None:
        at = self.head._at
        for name in self.evaluators:
            blob = states.get(f"evaluator{at}/{name}")
            if blob is None:
                continue
            try:
                self.evaluators[name] = AnomalyEvaluator.from_state(blob)
            except StateFormatError as exc:
                log.warning("the checkpoint's evaluator of %s is unreadable: %s", name, exc)

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each detector's figures, as rows of the training table."""
        recorded = time.time() if now is None else now
        rows = []
        for slot in self.head.models.slots:
            snapshot = dict(self.evaluators[slot.name].snapshot())
            snapshot.pop("events_seen", None)
            quantiles = self.head.scores[slot.name].quantiles(SCORE_QUANTILES)
            values: list[float | None] = (
                [None] * len(SCORE_QUANTILES) if quantiles is None else list(quantiles)
            )
            rows.append(
                {
                    "model": slot.name,
                    "worker": self.worker,
                    "model_version": slot.version,
                    "events_seen": slot.events_learned,
                    "recorded_at": recorded,
                    **snapshot,
                    **dict(zip(SCORE_QUANTILE_COLUMNS, values, strict=True)),
                }
            )
        return rows

    def write_metrics(self, store: Store, now: float) -> None:
        store.write_training(self.table, self.rows(now))
