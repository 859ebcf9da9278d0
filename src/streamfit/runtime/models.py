"""The worker's models: each one's slot, how the set predicts, learns, saves and merges.

Every model of a spec gets a ``ModelSlot`` (the model, its kind, its counters). The first is
the champion: its prediction is the one written as ``prediction``; the others' go beside it.
A ``ModelSet`` predicts a batch with every model (``predict``), tests and trains each model on
a block of labeled events, event by event (``predict_then_learn``), saves and restores the
models with a checkpoint, and keeps, per mergeable model, a serving copy merged with the other
workers' latest states (``refresh_serving``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from streamfit.models import build_model, model_from_state
from streamfit.models.base import (
    Classifier,
    Features,
    Mergeable,
    Model,
    Records,
    Task,
    predict_learn_many,
    reads_records,
)
from streamfit.runtime.component import Outcome
from streamfit.spec.model import ModelSpec
from streamfit.store import ModelPredictions

__all__ = ["ModelSet", "ModelSlot", "model_kind", "predict_then_learn"]

log = logging.getLogger("streamfit.worker")


def model_kind(spec: ModelSpec) -> str:
    """``builtin:logistic_regression``, ``river:tree.HoeffdingTreeClassifier``, ..."""
    for kind in ("builtin", "river", "sklearn"):
        if hasattr(spec, kind):
            return f"{kind}:{getattr(spec, kind)}"
    return "unknown"


@dataclass(slots=True)
class ModelSlot:
    """A model with its counters: updates applied (``version``) and events learned."""

    name: str
    kind: str
    model: Model
    version: int = 0
    events_learned: int = 0


#: the batch's rows as records, made on first demand (``Featurizer.records``)
RecordsOf = Callable[[], Records]


class _Inputs:
    """What each model reads of one batch: the matrix, or its records (made once)."""

    def __init__(self, X: sp.csr_matrix, records: RecordsOf | None) -> None:
        self.X = X
        self._records = records
        self._made: Records | None = None

    def of(self, model: Model) -> Features:
        if self._records is None or not reads_records(model):
            return self.X
        if self._made is None:
            self._made = self._records()
        return self._made


def predict_then_learn(
    model: Model, X: Features, y: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], list[object]]:
    """The prequential step: each row predicted by ``model`` as it was just before that row,
    then learned (``streamfit.models.base.predict_learn_many``; a model without per-event
    learning predicts the whole block, then learns it).

    Returns what was predicted (a classifier's probabilities, a regressor's values) and the
    classes the probabilities' columns stand for (empty for a regressor).
    """
    if isinstance(model, Classifier) and model.task == "classification":
        proba = np.asarray(predict_learn_many(model, X, y), dtype=np.float64)
        return proba, list(model.classes)
    predicted = predict_learn_many(model, X, y.astype(np.float64))
    return np.asarray(predicted, dtype=np.float64), []


class ModelSet:
    """The models of one pipeline, side by side; the first is the champion."""

    def __init__(self, specs: Sequence[ModelSpec], task: Task, n_features: int) -> None:
        self.task = task
        self.slots = [
            ModelSlot(m.name, model_kind(m), build_model(m, task, n_features)) for m in specs
        ]
        # per model: what scores events (the local model merged with the other workers'
        # ones, for a mergeable learner, refreshed at each checkpoint), else the local model
        self.serving: dict[str, Model] = {}

    def __iter__(self) -> Any:
        return iter(self.slots)

    @property
    def names(self) -> list[str]:
        return [slot.name for slot in self.slots]

    # -- scoring and learning

    def predict(
        self,
        X: sp.csr_matrix,
        records: RecordsOf | None = None,
        names: Collection[str] | None = None,
    ) -> list[ModelPredictions]:
        """Every model's predictions for the rows of ``X`` (only those in ``names``, when
        given), champion first; a model that ``reads_records`` gets ``records()``
        instead of ``X``."""
        inputs = _Inputs(X, records)
        return [
            self._predict(slot, inputs)
            for slot in self.slots
            if names is None or slot.name in names
        ]

    def _predict(self, slot: ModelSlot, inputs: _Inputs) -> ModelPredictions:
        model = self.serving.get(slot.name, slot.model)
        X: Any = inputs.of(model)
        n = inputs.X.shape[0]
        if isinstance(model, Classifier) and self.task == "classification":
            proba = model.predict_proba_many(X)
            if proba.shape[1] == 0:  # no class seen yet: no prediction
                return ModelPredictions(
                    slot.name, slot.version, np.full(n, None, dtype=object), np.full(n, np.nan)
                )
            best = proba.argmax(axis=1)
            labels = np.empty(len(model.classes), dtype=object)
            labels[:] = list(model.classes)
            return ModelPredictions(
                slot.name, slot.version, labels[best], proba[np.arange(n), best]
            )
        values = np.asarray(model.predict_many(X), dtype=np.float64)
        return ModelPredictions(slot.name, slot.version, values, None)

    def predict_then_learn(
        self, X: sp.csr_matrix, y: npt.NDArray[Any], records: RecordsOf | None = None
    ) -> list[Outcome]:
        """Test every model on a block of labeled rows, then train it on them (event by
        event where the model can); a model that ``reads_records`` gets ``records()``."""
        inputs = _Inputs(X, records)
        outcomes = []
        for slot in self.slots:
            predicted, classes = predict_then_learn(slot.model, inputs.of(slot.model), y)
            slot.version += 1
            slot.events_learned += X.shape[0]
            outcomes.append(
                Outcome(slot.name, slot.version, slot.events_learned, y, predicted, classes)
            )
        return outcomes

    # -- state

    def copy(self) -> ModelSet:
        """An independent copy of what serves now (each model through its state, with its
        counters): it predicts as this set does at this moment, whatever this set learns
        next. What a server in another thread scores with while the worker learns."""
        clone = ModelSet.__new__(ModelSet)
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

    def states(self) -> dict[str, bytes]:
        """Each model's state, by model name."""
        return {slot.name: slot.model.state() for slot in self.slots}

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Replace each model that has a state in ``states`` (by model name)."""
        for slot in self.slots:
            blob = states.get(slot.name)
            if blob is not None:
                slot.model = model_from_state(blob)

    def counters(self) -> dict[str, list[int]]:
        return {slot.name: [slot.version, slot.events_learned] for slot in self.slots}

    def restore_counters(self, counters: Mapping[str, Sequence[int]]) -> None:
        for slot in self.slots:
            slot.version, slot.events_learned = counters.get(slot.name, [0, 0])

    def refresh_serving(self, others_of: Callable[[str], Mapping[str, bytes]]) -> None:
        """Serve each mergeable model merged with the other workers' latest states.

        ``others_of(name)`` gives the other workers' states of model ``name``. Every worker
        learns from its own partitions; through the store each one scores with a model that
        has learned from all of them. The local model keeps learning alone (merging it in
        place would count shared history twice).
        """
        for slot in self.slots:
            if not isinstance(slot.model, Mergeable):
                continue
            others = others_of(slot.name)
            if not others:
                self.serving.pop(slot.name, None)
                continue
            merged = model_from_state(slot.model.state())
            assert isinstance(merged, Mergeable)
            for _, blob in sorted(others.items()):
                other = model_from_state(blob)
                if type(other) is type(merged):
                    merged.merge(other)
            self.serving[slot.name] = merged
