"""Prequential evaluation as a worker component: one evaluator per model, the training table.

Each time a model is tested on a block and learns it, its evaluator records how it did
(``learned``); at the metrics interval each model's figures become a row of the pipeline's
training table (``write_metrics``), with its ``role`` (``champion`` or ``challenger``); the
evaluators are part of every checkpoint under ``evaluator/<model>``.

With A/B serving, each arm also has an evaluator of the labeled events it served (its rows
of each block, ``Outcome.served``): a row of its own in the training table, ``model``
``<arm>:served``, ``role`` ``arm``, ``arm`` the model's name, ``events_seen`` the events it
served; saved under ``evaluator/served/<model>``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from streamfit.errors import StateFormatError
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator, make_evaluator
from streamfit.runtime.component import Component, Outcome

if TYPE_CHECKING:
    from streamfit.runtime.models import ModelSet
    from streamfit.store import Store

__all__ = ["EvaluationComponent", "evaluator_from_state"]

AnyEvaluator = ClassificationEvaluator | RegressionEvaluator


def evaluator_from_state(blob: bytes) -> AnyEvaluator:
    """Rebuild whichever evaluator wrote ``blob``."""
    try:
        return ClassificationEvaluator.from_state(blob)
    except StateFormatError:  # not a classification evaluator: try the other kind
        return RegressionEvaluator.from_state(blob)


class EvaluationComponent(Component):
    """Prequential metrics of every model of ``models``, written to ``table``."""

    def __init__(
        self, models: ModelSet, table: str, window: int, worker: str = "0", head: str = ""
    ) -> None:
        self.models = models
        self.table = table
        self.worker = worker
        self._key = f"evaluator@{head}/" if head else "evaluator/"
        self.evaluators: dict[str, AnyEvaluator] = {
            name: make_evaluator(models.task, window) for name in models.names
        }
        arms = models.split.arms if models.split is not None else []
        self.arms: dict[str, AnyEvaluator] = {
            name: make_evaluator(models.task, window) for name in arms
        }

    def learned(self, outcome: Outcome) -> None:
        _update(self.evaluators[outcome.model], outcome.labels, outcome.predicted, outcome.classes)
        arm = self.arms.get(outcome.model)
        if arm is not None and outcome.served is not None and outcome.served.any():
            rows = np.flatnonzero(outcome.served)
            _update(arm, outcome.labels[rows], outcome.predicted[rows], outcome.classes)

    def state(self) -> dict[str, bytes]:
        states = {f"{self._key}{name}": ev.state() for name, ev in self.evaluators.items()}
        states.update({f"{self._key}served/{n}": ev.state() for n, ev in self.arms.items()})
        return states

    def restore(self, states: Mapping[str, bytes]) -> None:
        for name in self.evaluators:
            blob = states.get(f"{self._key}{name}")
            if blob is not None:
                self.evaluators[name] = evaluator_from_state(blob)
        for name in self.arms:
            blob = states.get(f"{self._key}served/{name}")
            if blob is not None:
                self.arms[name] = evaluator_from_state(blob)

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each model's current metrics, as rows of the training table."""
        recorded = time.time() if now is None else now
        rows = []
        champion = self.models.policy.champion
        for slot in self.models.slots:
            if slot.standby:  # waiting for a drift: nothing to report
                continue
            snapshot = dict(self.evaluators[slot.name].snapshot())
            snapshot.pop("events_seen", None)
            rows.append(
                {
                    "model": slot.name,
                    "worker": self.worker,
                    "model_version": slot.version,
                    "events_seen": slot.events_learned,
                    "recorded_at": recorded,
                    "role": "champion" if slot.name == champion else "challenger",
                    **snapshot,
                }
            )
        for name, evaluator in self.arms.items():
            snapshot = dict(evaluator.snapshot())
            served = int(snapshot.pop("events_seen", 0) or 0)
            if not served:
                continue
            rows.append(
                {
                    "model": f"{name}:served",
                    "worker": self.worker,
                    "model_version": self.models.slot(name).version,
                    "events_seen": served,
                    "recorded_at": recorded,
                    "role": "arm",
                    "arm": name,
                    **snapshot,
                }
            )
        return rows

    def write_metrics(self, store: Store, now: float) -> None:
        store.write_training(self.table, self.rows(now))


def _update(evaluator: AnyEvaluator, labels: Any, predicted: Any, classes: Any) -> None:
    if isinstance(evaluator, ClassificationEvaluator):
        evaluator.update(labels, predicted, list(classes))
    else:
        evaluator.update(labels.astype(np.float64), predicted)
