"""One target of a pipeline: what is learned from it, how it is scored, what it keeps.

A worker decodes each batch once and hands it to its heads. A ``Head`` owns everything that
depends on one target field: the label rules (``LabelPolicy``), the featurizer (which leaves
its target out of the features), the models (``ModelSet``), their evaluation (a
``Component`` writing the head's training table), the training rows waiting for their block
(``BlockBuffer``) and its counters. A pipeline's own ``target`` is its first head, named
``""``; a head for another field of the same stream gets a name of its own, and its spec is
the pipeline's with the target-specific keys replaced (``target``, ``task``, ``models``, the
tables).

Checkpoint names, relative to the worker's prefix: the first head keeps the names a single
target always had (``model/<m>``, ``featurizer``, ``evaluator/<m>``, ``lifecycle/...``);
head ``h`` uses ``model@h/<m>``, ``featurizer@h``, ``evaluator@h/<m>`` and
``lifecycle@h/...``, so that no key of one head is a suffix of another's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from itertools import pairwise
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from streamfit.batch import Batch, DeadLetter, Offsets
from streamfit.features import Featurizer
from streamfit.models.base import Task
from streamfit.runtime.blocks import BlockBuffer
from streamfit.runtime.component import Outcome
from streamfit.runtime.delayed import DelayedLabels, LabelOutputs
from streamfit.runtime.evaluators import EvaluationComponent
from streamfit.runtime.isolation import batch_halves, dead_letters_for, isolate
from streamfit.runtime.keys import keyed
from streamfit.runtime.labels import LabelPolicy
from streamfit.runtime.models import ModelSet
from streamfit.runtime.routing import Roles, split_roles
from streamfit.spec.model import PipelineSpec
from streamfit.store import ModelPredictions

__all__ = ["Head"]

log = logging.getLogger("streamfit.worker")

TopicPartition = tuple[str, int]


class Head:
    """The part of a worker that learns and scores one target (see the module docstring).

    ``is_events_fault(exc)`` tells an error that events may cause (isolated, dead-lettered)
    from an outage (raised for the worker to pause).
    """

    #: the label join, for a pipeline with ``labels`` topics (its own target's head only)
    delayed: DelayedLabels | None = None

    def __init__(
        self,
        spec: PipelineSpec,
        worker_id: str = "0",
        name: str = "",
        is_events_fault: Callable[[Exception], bool] = lambda exc: True,
        outputs: LabelOutputs | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.task = spec.task
        self._at = f"@{name}" if name else ""
        self._is_events_fault = is_events_fault
        self.train_topics = set(spec.topics.train)
        excluded = {field for field in (spec.target, spec.key) if field}
        self.featurizer = Featurizer(spec.features, exclude=excluded)
        task = cast(Task, spec.task)  # task: anomaly has a head of its own (runtime.anomaly)
        self.models = ModelSet(
            spec.models, task, self.featurizer.n_features, spec.promotion, spec.serving
        )
        self.evaluation = EvaluationComponent(
            self.models,
            spec.outputs.training_table_name(spec.name),
            spec.evaluation.window,
            worker_id,
            head=name,
        )
        self.labels = LabelPolicy(
            spec, known=lambda: getattr(self.models.slots[0].model, "classes", ())
        )
        self.blocks = BlockBuffer(spec.learning.block_events)
        self.results_table = spec.outputs.results_table_name(spec.name)
        self.events_learned = 0
        if spec.topics.labels and not name:
            self.delayed = DelayedLabels(spec, self, outputs)

    @property
    def learning_topics(self) -> set[str]:
        """The topics whose events wait in this head's blocks (the train topics; with labels
        topics, those and the score topics too)."""
        if self.delayed is None:
            return self.train_topics
        return self.train_topics | self.delayed.learning_topics

    def writers(self) -> list[Any]:
        """What writes this head's rows at the metrics interval (``write_metrics``)."""
        return [self.evaluation] if self.delayed is None else [self.evaluation, self.delayed]

    # -- state names -------------------------------------------------------------------------

    def model_key(self, model: str) -> str:
        return f"model{self._at}/{model}"

    @property
    def featurizer_key(self) -> str:
        return f"featurizer{self._at}"

    @property
    def lifecycle_prefix(self) -> str:
        return f"lifecycle{self._at}/"

    # -- scoring -------------------------------------------------------------------------------

    def screen(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        """``batch`` without the events the label rules reject, and those as dead letters."""
        batch, letters = self.labels.screen(batch)
        if self.delayed is not None:
            batch, more = self.delayed.screen(batch)
            letters += more
        return batch, letters

    def roles(self, batch: Batch) -> Roles:
        """Which rows of ``batch`` this head learns from and which it scores (events of
        ``labels`` topics are labels, never scored: see ``runtime.delayed``)."""
        roles = split_roles(
            batch,
            self.spec.target,
            self.task,
            self.train_topics,
            self.spec.outputs.score_training_events,
        )
        if self.delayed is not None:
            return self.delayed.roles(batch, roles)
        if self.spec.topics.labels:
            labels = np.flatnonzero(np.isin(batch.meta.topics, self.spec.topics.labels))
            if len(labels):
                score = np.setdiff1d(roles.score, labels, assume_unique=True).astype(np.intp)
                return Roles(roles.train, score, roles.labels)
        return roles

    def predict(self, batch: Batch, learned: npt.NDArray[np.intp]) -> list[ModelPredictions]:
        """Every model's predictions for ``batch``; ``learned``: its rows that will also be
        learned from (their hashed features are kept for then)."""
        if self.learning_topics:
            X = self.featurizer.transform(batch, remember=learned)
        else:  # nothing to learn from: the scored stream is all the featurizer will see
            X = self.featurizer.learn_transform(batch)
        predictions = self.models.predict(
            X, partial(self.featurizer.records, batch), batch=keyed(batch, self.spec.key)
        )
        if self.delayed is not None:
            self.delayed.served(batch, predictions)
        return predictions

    def forget_scored(self, partitions: list[TopicPartition]) -> None:
        """Drop the features kept from scoring for ``partitions`` (learning hashes again)."""
        self.featurizer.forget_scored(partitions)

    # -- learning ------------------------------------------------------------------------------

    def queue(self, batch: Batch) -> None:
        """Training rows wait in their block until it is complete."""
        self.blocks.add(batch)

    def learn_runs(
        self,
        runs: list[tuple[Batch, list[int]]],
        tell: Callable[[Outcome], None],
        dead_letter: Callable[[list[DeadLetter]], None],
    ) -> int:
        """Learn runs of blocks (``BlockBuffer.take_ready_runs``); ``tell`` each outcome.

        A run the featurizer fails on is learned piece by piece, without the events it fails
        on (they go to ``dead_letter``). Returns the events learned.
        """
        learned = 0
        for run, bounds in runs:
            if self.delayed is not None and run.meta.topics[0] in self.delayed.learning_topics:
                learned += self.delayed.learn_run(run, bounds, tell)
                continue
            try:
                matrices = self.featurizer.learn_transform_blocks(run, bounds)
            except Exception as exc:
                if not self._is_events_fault(exc):
                    raise
                learned += self._learn_piece_by_piece(run, bounds, tell, dead_letter)
                continue
            for X, (a, b) in zip(matrices, pairwise(bounds), strict=True):
                learned += self._learn_block(X, run.rows(a, b), tell)
        return learned

    def _learn_piece_by_piece(
        self,
        run: Batch,
        bounds: list[int],
        tell: Callable[[Outcome], None],
        dead_letter: Callable[[list[DeadLetter]], None],
    ) -> int:
        done = 0

        def learn(rows: Batch) -> None:
            nonlocal done
            done += self._learn_block(self.featurizer.learn_transform(rows), rows, tell)

        def reject(rows: Batch, error: Exception) -> None:
            dead_letter(dead_letters_for(rows, "learning", error))

        for a, b in pairwise(bounds):
            isolate(run.rows(a, b), learn, reject, batch_halves)
        return done

    def _learn_block(self, X: sp.csr_matrix, block: Batch, tell: Callable[[Outcome], None]) -> int:
        labels = block.columns[self.spec.target or ""]
        records = partial(self.featurizer.records, block)  # made if a model reads records
        outcomes = self.models.predict_then_learn(
            X, labels, records, keyed(block, self.spec.key), self.events_learned
        )
        for outcome in outcomes:
            outcome = outcome.of_head(self.name)
            self.evaluation.learned(outcome)
            tell(outcome)
        self.events_learned += X.shape[0]
        return int(X.shape[0])

    def learned_frontier(self, read: Offsets) -> Offsets:
        """Where this head's learning resumes, per partition."""
        return self.blocks.learned_frontier(read)

    def drop(self, partitions: list[TopicPartition]) -> None:
        """Forget the rows of partitions this worker no longer owns."""
        self.blocks.drop(partitions)
        self.featurizer.forget_scored(partitions)
        if self.delayed is not None:
            self.delayed.drop(partitions)

    # -- state ---------------------------------------------------------------------------------

    def model_states(self) -> dict[str, bytes]:
        """Each model's state, under its checkpoint key."""
        return {self.model_key(n): blob for n, blob in self.models.states().items()}

    def extra_states(self) -> dict[str, bytes]:
        """The featurizer and the evaluators, under their checkpoint keys."""
        states = {self.featurizer_key: self.featurizer.state()}
        states.update(self.evaluation.state())
        prefix = self.lifecycle_prefix
        states.update({prefix + k: v for k, v in self.models.lifecycle_states().items()})
        if self.delayed is not None:
            states.update(self.delayed.state())
        return states

    def counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = {
            "events_learned": self.events_learned,
            "models": self.models.counters(),
        }
        if isinstance(self.models, ModelSet):  # the lifecycle's (an anomaly head has none)
            counters["model_events"] = self.models.event_seq
            counters["commands"] = self.models.command_cursor
        return counters

    def restore(
        self, models: Mapping[str, bytes], extra: Mapping[str, bytes], counters: Mapping[str, Any]
    ) -> bool:
        """Take back a checkpoint's states (keys relative to the worker); True if it held
        this head's featurizer."""
        restored = self.featurizer_key in extra
        if restored:
            self.featurizer = Featurizer.from_state(extra[self.featurizer_key])
        self.models.restore(
            {
                slot.name: models[key]
                for slot in self.models.slots
                if (key := self.model_key(slot.name)) in models
            }
        )
        self.evaluation.restore(extra)
        models_set = self.models
        if isinstance(models_set, ModelSet):  # an anomaly head's detectors have no lifecycle
            prefix = self.lifecycle_prefix
            models_set.restore_lifecycle(
                {k.removeprefix(prefix): v for k, v in extra.items() if k.startswith(prefix)}
            )
            models_set.event_seq = int(counters.get("model_events", 0))
            models_set.command_cursor = int(counters.get("commands", 0))
        if self.delayed is not None:
            self.delayed.restore(extra)
        if counters:
            self.models.restore_counters(counters.get("models", {}))
            self.events_learned = int(counters.get("events_learned", 0))
        return restored
