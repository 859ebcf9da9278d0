"""The worker's models: each one's slot, how the set predicts, learns, saves and merges.

Every model of a spec gets a ``ModelSlot`` (the model, its kind, its counters, its update
gate if it has one). A ``ModelSet`` predicts a batch with every model (``predict``): the
champion's prediction first (the one written as ``prediction``), or, with A/B serving, each
event's prediction by the model that serves it; the others' go beside it. It tests and trains
each model on a block of labeled events, event by event (``predict_then_learn``), a gated
model through its gate (``streamfit.lifecycle.gate``), and lets the champion policy see how
every model did (``streamfit.lifecycle.promotion``); the decisions wait in ``events`` until
the worker writes them. It saves and restores the models with a checkpoint, and keeps, per
mergeable model, a serving copy merged with the other workers' latest states
(``refresh_serving``). A ``standby`` model (``on_drift: challenger``) neither predicts nor
learns until a drift starts it, untrained, as a challenger (``start_challenger``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt
import orjson
import scipy.sparse as sp

from streamfit.batch import Batch
from streamfit.lifecycle import (
    ChampionPolicy,
    ModelEvent,
    ServingSplit,
    UpdateGate,
    gated_update,
    holdout_rows,
)
from streamfit.models import build_model, model_from_state
from streamfit.models.base import (
    Classifier,
    Features,
    Mergeable,
    Model,
    Records,
    Task,
    prequential,
    reads_columns,
    reads_records,
)
from streamfit.runtime.component import Outcome
from streamfit.spec.model import ModelSpec, PromotionSpec, ServingSpec
from streamfit.store import ModelPredictions

__all__ = ["ModelSet", "ModelSlot", "model_kind", "predict_then_learn"]

log = logging.getLogger("streamfit.worker")


def model_kind(spec: ModelSpec) -> str:
    """``builtin:logistic_regression``, ``river:tree.HoeffdingTreeClassifier``, ..."""
    for kind in ("builtin", "river", "sklearn_file", "sklearn", "onnx"):
        if hasattr(spec, kind):
            return f"{kind}:{getattr(spec, kind)}"
    return "unknown"


def learns(model: Model) -> bool:
    """Whether ``model`` changes when it learns (a frozen pretrained model does not)."""
    return bool(getattr(model, "learns", True))


@dataclass(slots=True)
class ModelSlot:
    """A model with its counters: updates applied (``version``) and events learned; its
    update gate, if it has one."""

    name: str
    kind: str
    model: Model
    version: int = 0
    events_learned: int = 0
    gate: UpdateGate | None = None
    standby: bool = False  # waits for a drift: neither predicts nor learns


#: the batch's rows as records, made on first demand (``Featurizer.records``)
RecordsOf = Callable[[], Records]


class _Inputs:
    """What each model reads of one batch: the matrix, its records (made once), or its
    columns."""

    def __init__(self, X: sp.csr_matrix, records: RecordsOf | None, batch: Batch | None) -> None:
        self.X = X
        self._records = records
        self._made: Records | None = None
        self.batch = batch

    def of(self, model: Model) -> Features:
        if reads_columns(model):
            if self.batch is None:
                raise ValueError(f"{type(model).__name__} reads columns: give the batch")
            return self.batch.columns
        if self._records is None or not reads_records(model):
            return self.X
        if self._made is None:
            self._made = self._records()
        return self._made


def predict_then_learn(
    model: Model, X: Features, y: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], list[object]]:
    """The prequential step (``streamfit.models.base.prequential``)."""
    return prequential(model, X, y)


class ModelSet:
    """The models of one target, side by side; the champion serves (first in the spec,
    until the promotion rule or an operator says otherwise)."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        task: Task,
        n_features: int,
        promotion: PromotionSpec | None = None,
        serving: ServingSpec | None = None,
    ) -> None:
        self.task = task
        self.specs = {m.name: m for m in specs}
        self.n_features = n_features
        self.slots = [
            ModelSlot(
                m.name,
                model_kind(m),
                build_model(m, task, n_features),
                gate=None if m.gate is None else UpdateGate(m.gate, task),
                standby=m.standby,
            )
            for m in specs
        ]
        # per model: what scores events (the local model merged with the other workers'
        # ones, for a mergeable learner, refreshed at each checkpoint), else the local model
        self.serving: dict[str, Model] = {}
        self.policy = ChampionPolicy(self.names, task, promotion)
        self.split = None if serving is None else ServingSplit(serving.split)
        #: decisions not written yet: (number, events learned by the head then, event)
        self.events: list[tuple[int, int, ModelEvent]] = []
        self.event_seq = 0  # decisions noted so far (each one's number)
        self.command_cursor = 0  # the last operator's command taken
        self.saved_versions: dict[str, int] = {}  # what the models table has, per model

    def __iter__(self) -> Any:
        return iter(self.slots)

    @property
    def names(self) -> list[str]:
        return [slot.name for slot in self.slots]

    @property
    def champion(self) -> ModelSlot:
        """The slot of the model that serves (without A/B serving)."""
        return self.slot(self.policy.champion)

    def slot(self, name: str) -> ModelSlot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)

    # -- scoring and learning

    def predict(
        self,
        X: sp.csr_matrix,
        records: RecordsOf | None = None,
        names: Collection[str] | None = None,
        batch: Batch | None = None,
    ) -> list[ModelPredictions]:
        """Every model's predictions for the rows of ``X``, what is served first: the
        champion's, or with A/B serving each row's by its arm's model (then every model's
        beside it). A model that ``reads_records`` gets ``records()`` instead of ``X``, one
        that ``reads_columns`` the columns of ``batch`` (whose keys choose the arms).
        ``names``: only these models, in the spec's order, nothing served (what a server
        asks for)."""
        inputs = _Inputs(X, records, batch)
        if names is not None:
            return [self._predict(slot, inputs) for slot in self.slots if slot.name in names]
        by_name = {
            slot.name: self._predict(slot, inputs) for slot in self.slots if not slot.standby
        }
        if self.split is None or batch is None:
            champion = self.policy.champion
            return [by_name[champion], *[p for n, p in by_name.items() if n != champion]]
        arms = self.split.assign(batch.meta.keys, batch.meta.partitions, batch.meta.offsets)
        return [_served(by_name, self.split.arms, arms), *by_name.values()]

    def _predict(self, slot: ModelSlot, inputs: _Inputs) -> ModelPredictions:
        model = self.serving.get(slot.name, slot.model)
        X: Any = inputs.of(model)
        n = inputs.X.shape[0]
        if self.task == "classification" and _is_classifier(model):
            proba = model.predict_proba_many(X)
            if proba.shape[1] == 0:  # no class seen yet: no prediction
                return ModelPredictions(
                    slot.name,
                    slot.version,
                    np.full(n, None, dtype=object),
                    np.full(n, np.nan),
                    scores=np.zeros((n, 0)),
                )
            best = proba.argmax(axis=1)
            labels = np.empty(len(model.classes), dtype=object)
            labels[:] = list(model.classes)
            return ModelPredictions(
                slot.name,
                slot.version,
                labels[best],
                proba[np.arange(n), best],
                scores=np.asarray(proba, dtype=np.float64),
                classes=tuple(model.classes),
            )
        values = np.asarray(model.predict_many(X), dtype=np.float64)
        return ModelPredictions(slot.name, slot.version, values, None)

    def predict_then_learn(
        self,
        X: sp.csr_matrix,
        y: npt.NDArray[Any],
        records: RecordsOf | None = None,
        batch: Batch | None = None,
        learned_before: int = 0,
    ) -> list[Outcome]:
        """Test every model on a block of labeled rows, then train it on them (event by
        event where the model can; a gated model through its gate); a model that
        ``reads_records`` gets ``records()``, one that ``reads_columns`` the columns of
        ``batch`` (the block, whose offsets choose a gate's held-out rows and whose keys
        the A/B arms). ``learned_before``: events the target had learned before the block
        (the champion policy's evaluation points fall on its multiples)."""
        inputs = _Inputs(X, records, batch)
        n = X.shape[0]
        arms = None
        if self.split is not None and batch is not None:
            arms = self.split.assign(batch.meta.keys, batch.meta.partitions, batch.meta.offsets)
        outcomes = []
        meta = None if batch is None else batch.meta
        for slot in self.slots:
            if slot.standby:
                continue
            features = inputs.of(slot.model)
            if slot.gate is not None and batch is not None:
                predicted, classes = self._gated(
                    slot, slot.gate, features, y, batch, learned_before
                )
            else:
                predicted, classes = prequential(slot.model, features, y)
                if learns(slot.model):
                    slot.version += 1
                    slot.events_learned += n
            served = None
            if arms is not None and self.split is not None and slot.name in self.split.arms:
                served = arms == self.split.arms.index(slot.name)
            outcomes.append(
                Outcome(
                    slot.name,
                    slot.version,
                    slot.events_learned,
                    y,
                    predicted,
                    classes,
                    served=served,
                    meta=meta,
                )
            )
        for event in self.policy.observe(outcomes, learned_before, learned_before + n):
            self.note(learned_before + n, event)
        return outcomes

    def _gated(
        self,
        slot: ModelSlot,
        gate: UpdateGate,
        features: Features,
        y: npt.NDArray[Any],
        block: Batch,
        learned_before: int,
    ) -> tuple[npt.NDArray[np.float64], list[object]]:
        meta = block.meta
        topic = str(meta.topics[0]) if len(meta) else ""
        holdout = holdout_rows(meta.partitions, meta.offsets, gate.spec.holdout, topic)
        update = gated_update(slot.model, features, y, holdout, gate)
        decision = update.decision
        slot.model = update.model
        if decision.kept:
            slot.version += 1
            slot.events_learned += decision.learned
        where = {}
        if len(meta):
            where = {
                "topic": topic,
                "partition": int(meta.partitions[0]),
                "first_offset": int(meta.offsets[0]),
                "last_offset": int(meta.offsets[-1]),
            }
        self.note(
            learned_before + len(y),
            ModelEvent(
                "gate_kept" if decision.kept else "gate_rejected",
                slot.name,
                slot.version,
                self.policy.champion,
                metric=gate.spec.metric,
                score=decision.score,
                baseline=decision.baseline,
                threshold=decision.threshold,
                detail={
                    "reason": decision.reason,
                    "current_score": decision.current,
                    "held_out": decision.held_out,
                    "learned": decision.learned,
                    **where,
                },
            ),
        )
        return update.predicted, update.classes

    def note(self, events_seen: int, event: ModelEvent) -> None:
        """Keep a decision to write; a promotion or rollback gets its model's version."""
        if event.kind in ("promoted", "rolled_back", "operator_promoted", "operator_rolled_back"):
            event = replace(event, version=self.slot(event.model).version)
        self.event_seq += 1
        self.events.append((self.event_seq, events_seen, event))

    def take_events(self) -> list[tuple[int, int, ModelEvent]]:
        """The decisions not written yet (and forget them)."""
        events, self.events = self.events, []
        return events

    # -- the operator's hand

    def promote(self, name: str, events_seen: int) -> None:
        """Make ``name`` the champion now (a standby model starts, untrained)."""
        if self.slot(name).standby:
            self.start_challenger(name, events_seen, {"reason": "promoted by the operator"})
        self.note(events_seen, self.policy.promote(name))

    def start_challenger(self, name: str, events_seen: int, detail: dict[str, Any]) -> None:
        """Start model ``name`` again from its spec, untrained, as a challenger (a drift of
        the champion, ``streamfit.runtime.drift``): a new version, no events learned, its
        promotion window empty. ``detail`` goes to the ``drift_challenger`` event."""
        slot = self.slot(name)
        slot.model = build_model(self.specs[name], self.task, self.n_features)
        spec_gate = self.specs[name].gate
        slot.gate = None if spec_gate is None else UpdateGate(spec_gate, self.task)
        slot.standby = False
        slot.version += 1
        slot.events_learned = 0
        self.serving.pop(name, None)
        self.policy.start_again(name)
        self.note(
            events_seen,
            ModelEvent("drift_challenger", name, slot.version, self.policy.champion, detail=detail),
        )

    def rollback(self, events_seen: int) -> bool:
        """Reinstate the previous champion; False if there is none."""
        event = self.policy.rollback()
        if event is None:
            return False
        self.note(events_seen, event)
        return True

    def restore_version(self, name: str, version: int, blob: bytes, events_seen: int) -> None:
        """Replace model ``name`` by its saved ``version`` (``blob``): a new version of it."""
        slot = self.slot(name)
        slot.model = model_from_state(blob)
        slot.version += 1
        self.serving.pop(name, None)
        self.note(
            events_seen,
            ModelEvent(
                "operator_rolled_back",
                name,
                slot.version,
                self.policy.champion,
                detail={"restored_from": version},
            ),
        )

    # -- state

    def copy(self) -> ModelSet:
        """An independent copy of what serves now (each model through its state, with its
        counters): it predicts as this set does at this moment, whatever this set learns
        next. What a server in another thread scores with while the worker learns."""
        clone = ModelSet.__new__(ModelSet)
        clone.task = self.task
        clone.specs = self.specs
        clone.n_features = self.n_features
        clone.serving = {}
        clone.policy = ChampionPolicy(self.names, self.task, None)
        clone.policy.champion = self.policy.champion
        clone.split = self.split
        clone.events = []
        clone.event_seq = self.event_seq
        clone.command_cursor = self.command_cursor
        clone.saved_versions = dict(self.saved_versions)
        clone.slots = [
            ModelSlot(
                slot.name,
                slot.kind,
                model_from_state(self.serving.get(slot.name, slot.model).state()),
                slot.version,
                slot.events_learned,
                standby=slot.standby,
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

    def lifecycle_states(self) -> dict[str, bytes]:
        """The gates' and the champion policy's blobs, by key (``gate/<model>``,
        ``policy``, ``window/<model>``; ``standby``: the models still waiting for a drift)."""
        states = {f"gate/{s.name}": s.gate.state() for s in self.slots if s.gate is not None}
        states.update(self.policy.state())
        if any(spec.standby for spec in self.specs.values()):
            waiting = sorted(s.name for s in self.slots if s.standby)
            states["standby"] = orjson.dumps(waiting)
        return states

    def restore_lifecycle(self, states: Mapping[str, bytes]) -> None:
        """Take back ``lifecycle_states()``'s blobs."""
        for slot in self.slots:
            blob = states.get(f"gate/{slot.name}")
            if slot.gate is not None and blob is not None:
                slot.gate.restore(blob)
        self.policy.restore(states)
        waiting = states.get("standby")
        if waiting is not None:  # a drift started some: the others still wait
            names = set(orjson.loads(waiting))
            for slot in self.slots:
                slot.standby = slot.name in names

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


_CLASSIFIER_TYPES: dict[type, bool] = {}


def _is_classifier(model: Model) -> TypeGuard[Classifier]:
    """Whether ``model`` is a ``Classifier``, known once per type of model (a protocol's
    ``isinstance`` inspects every member each time: too slow for a request that scores one
    event; every instance of a model type has the same members)."""
    kind = type(model)
    known = _CLASSIFIER_TYPES.get(kind)
    if known is None:
        known = _CLASSIFIER_TYPES[kind] = isinstance(model, Classifier)
    return known


def _served(
    by_name: Mapping[str, ModelPredictions], names: list[str], arms: npt.NDArray[np.intp]
) -> ModelPredictions:
    """Each row's prediction by the model of its arm, with that model's name and version."""
    n = len(arms)
    first = by_name[names[0]]
    prediction = np.empty(n, dtype=np.asarray(first.prediction).dtype)
    probability = None if first.probability is None else np.full(n, np.nan)
    models = np.empty(n, dtype=object)
    versions = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(names):
        rows = arms == i
        if not rows.any():
            continue
        own = by_name[name]
        prediction[rows] = np.asarray(own.prediction)[rows]
        if probability is not None and own.probability is not None:
            probability[rows] = np.asarray(own.probability)[rows]
        models[rows] = name
        versions[rows] = own.version
    return ModelPredictions(
        first.name, first.version, prediction, probability, models=models, versions=versions
    )
