"""Drift detection as a worker component: detectors in, alarms to ``<name>_drift`` out.

With ``drift:`` in the spec (``streamfit.spec.drift``), the component keeps one ``Watch``
(``streamfit.drift``) per model of every head, fed with the model's error on each labeled
block it was tested on before learning it (``learned``: the 0/1 error of a classifier, the
absolute error of a regressor), or, for ``task: anomaly``, with each detector's anomaly
scores as events are scored (``scored``); and one per numeric field of ``drift.fields``
fed with its values as batches are decoded (``observe``; events read again after a restart
are not fed twice). Only finite values count.

Each alarm is logged and becomes a row of the drift table at the next metrics interval:
``head``, ``watched`` (``model`` or ``field``), ``name``, ``detector``, where the event that
raised it came from (``source_topic``, ``source_partition``, ``source_offset``,
``event_time``), ``values_seen`` by that detector, ``statistic`` and ``mean_before`` (see
``streamfit.drift.detectors``), ``direction`` (``up``: the error or the value went up), and
``action``. Alarms are numbered per worker (``seq``): a replay after a crash finds them
again with the same numbers and rewrites the same rows.

``on_drift: challenger``: when the champion of the pipeline's own target drifts upward, its
partner (the standby copy ``<model>_drift`` of its spec, or, if that copy is the champion,
the model it copies) starts again untrained as a challenger, from the next block, and
competes under the ``promotion:`` rule (``ModelSet.start_challenger``; a
``drift_challenger`` row in the model events table).

State, in the transaction of the offsets: ``drift/model/<head>:<model>`` and
``drift/field/<field>`` (each detector), ``drift`` (the alarm counter, the alarms not yet
written, the offsets seen by the field detectors).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from streamfit.batch import Batch, Messages
from streamfit.drift import Alarm, Watch, error_stream
from streamfit.errors import StateFormatError
from streamfit.evaluation import make_evaluator
from streamfit.runtime.component import Component, Outcome, SeenOffsets
from streamfit.runtime.models import ModelSet
from streamfit.spec.drift import DriftSpec, standby_name
from streamfit.spec.model import PipelineSpec

if TYPE_CHECKING:
    from streamfit.runtime.head import Head
    from streamfit.store import ModelPredictions, Store

__all__ = ["DriftComponent", "drift_component"]

log = logging.getLogger("streamfit.worker")

_STATE = "drift"
_PREFIX = "drift/"


def drift_component(spec: PipelineSpec, worker: str = "0") -> DriftComponent | None:
    """The drift detection a pipeline's spec asks for (``drift:``), or None."""
    if spec.drift is None:
        return None
    return DriftComponent(spec, spec.drift, worker)


class DriftComponent(Component):
    """Drift detectors and their alarms (see the module docstring)."""

    def __init__(self, spec: PipelineSpec, drift: DriftSpec, worker: str = "0") -> None:
        self.spec = spec
        self.drift = drift
        self.params = drift.detector_params()
        self.table = drift.table_name(spec.name)
        self.worker = worker
        self.challenge = spec.on_drift == "challenger"
        self.watches: dict[str, Watch] = {}  # by state key: "model/<head>:<m>", "field/<f>"
        self.pending: list[dict[str, Any]] = []  # alarms not written yet
        self.seq = 0  # alarms so far
        self.seen = SeenOffsets()  # by the field detectors
        self.heads: Sequence[Head] = ()
        self._fields: dict[str, bool] = {}  # field -> watched?

    def attach(self, heads: Sequence[Head]) -> None:
        self.heads = heads

    # -- feeding the detectors

    def learned(self, outcome: Outcome) -> None:
        if not self._watched(outcome.model):
            return
        head = self._head(outcome.head)
        task = head.task if head is not None else self.spec.task
        errors = error_stream(task, outcome.labels, outcome.predicted, outcome.classes)
        key = f"model/{outcome.head}:{outcome.model}"
        for alarm in self._watch(key).update_many(errors):
            row = self._alarm("model", outcome.head, outcome.model, alarm, outcome.meta)
            if head is not None and not outcome.head and alarm.direction == "up":
                row["action"] = self._challenge(head, outcome.model, row)
            self._note(row)

    def scored(self, batch: Batch, predictions: Sequence[ModelPredictions]) -> None:
        if self.spec.task != "anomaly":
            return  # models are watched on what they learn (``learned``)
        for prediction in predictions:
            if prediction.alarms is None or not self._watched(prediction.name):
                continue  # not an anomaly detector's scores
            scores = np.asarray(prediction.prediction, dtype=np.float64)
            watch = self._watch(f"model/:{prediction.name}")
            for alarm in watch.update_many(scores):
                self._note(self._alarm("model", "", prediction.name, alarm, batch.meta))

    def observe(self, batch: Batch) -> None:
        if not self.drift.fields:
            return
        batch = self.seen.unseen(batch)
        if not len(batch):
            return
        for field in sorted(batch.columns):  # sorted: the same order in every run
            column = batch.columns[field]
            if column.dtype.kind != "f" or field in batch.booleans or not self._wanted(field):
                continue
            for alarm in self._watch(f"field/{field}").update_many(column):
                self._note(self._alarm("field", "", field, alarm, batch.meta))
        self.seen.note(batch)

    def _watched(self, model: str) -> bool:
        drift = self.drift
        if drift.models is None or model in drift.models:
            return True
        return any(model == standby_name(m) for m in drift.models)

    def _wanted(self, field: str) -> bool:
        wanted = self._fields.get(field)
        if wanted is None:
            wanted = any(field == p or fnmatch.fnmatchcase(field, p) for p in self.drift.fields)
            if len(self._fields) < 10_000:
                self._fields[field] = wanted
        return wanted

    def _watch(self, key: str) -> Watch:
        watch = self.watches.get(key)
        if watch is None:
            watch = self.watches[key] = Watch(self.drift.detector, self.params)
        return watch

    def _head(self, name: str) -> Head | None:
        for head in self.heads:
            if head.name == name:
                return head
        return None

    # -- alarms

    def _alarm(
        self, watched: str, head: str, name: str, alarm: Alarm, meta: Messages | None
    ) -> dict[str, Any]:
        self.seq += 1
        row: dict[str, Any] = {
            "worker": self.worker,
            "seq": self.seq,
            "head": head,
            "watched": watched,
            "name": name,
            "detector": self.drift.detector,
            "source_topic": None,
            "source_partition": None,
            "source_offset": None,
            "event_time": None,
            "values_seen": alarm.seen,
            "statistic": alarm.statistic,
            "mean_before": alarm.mean_before,
            "direction": alarm.direction,
            "action": None,
        }
        if meta is not None and alarm.index < len(meta):
            i = alarm.index
            timestamp = int(meta.timestamps[i])
            row.update(
                source_topic=str(meta.topics[i]),
                source_partition=int(meta.partitions[i]),
                source_offset=int(meta.offsets[i]),
                event_time=timestamp if timestamp > 0 else None,
            )
        return row

    def _note(self, row: dict[str, Any]) -> None:
        log.warning(
            "drift of %s %s%s (%s, %s): %s at %s[%s]@%s, after %d values; statistic %s, "
            "mean before %s%s",
            row["watched"],
            row["name"],
            f" (target {row['head']})" if row["head"] else "",
            row["detector"],
            row["direction"],
            f"alarm {row['seq']}",
            row["source_topic"],
            row["source_partition"],
            row["source_offset"],
            row["values_seen"],
            _figure(row["statistic"]),
            _figure(row["mean_before"]),
            f"; {row['action']}" if row["action"] else "",
        )
        self.pending.append(row)

    def _challenge(self, head: Head, model: str, row: dict[str, Any]) -> str | None:
        """``on_drift: challenger``: start the champion's partner again (module docstring)."""
        models = head.models
        if not self.challenge or not isinstance(models, ModelSet):
            return None
        if model != models.policy.champion:
            return None
        partner = _partner(models, model)
        if partner is None:
            return None
        models.start_challenger(
            partner,
            head.events_learned,
            {
                "drifted": model,
                "alarm": row["seq"],
                "source_topic": row["source_topic"],
                "source_partition": row["source_partition"],
                "source_offset": row["source_offset"],
            },
        )
        evaluators = head.evaluation.evaluators
        if partner in evaluators:  # its figures start again with it
            evaluators[partner] = make_evaluator(models.task, self.spec.evaluation.window)
        self.watches.pop(f"model/{head.name}:{partner}", None)
        return f"challenger {partner} started"

    # -- state and tables

    def state(self) -> dict[str, bytes]:
        states = {_PREFIX + key: watch.state() for key, watch in self.watches.items()}
        states[_STATE] = orjson.dumps(
            {"seq": self.seq, "pending": self.pending, "observed": self.seen.as_rows()}
        )
        return states

    def restore(self, states: Mapping[str, bytes]) -> None:
        blob = states.get(_STATE)
        if blob is None:
            return
        watches: dict[str, Watch] = {}
        try:
            found = orjson.loads(blob)
            for key, value in states.items():
                if key.startswith(_PREFIX):
                    watches[key.removeprefix(_PREFIX)] = Watch.from_state(value)
            seq, pending = int(found["seq"]), list(found["pending"])
            seen = SeenOffsets.from_rows(found["observed"])
        except (StateFormatError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("the checkpoint's drift detectors cannot be read; starting anew: %s", exc)
            return
        if any(
            w.detector != self.drift.detector or w.params != self.params for w in watches.values()
        ):
            log.warning("the spec's drift: detector changed since the checkpoint: starting anew")
            watches = {}
        self.watches, self.seq, self.pending, self.seen = watches, seq, pending, seen

    def rows(self) -> list[dict[str, Any]]:
        """The alarms not written yet."""
        return list(self.pending)

    def write_metrics(self, store: Store, now: float) -> None:
        pending = list(self.pending)
        if pending:
            store.write_drift(self.table, pending)
            del self.pending[: len(pending)]  # written: only now are they forgotten

    def finish(self, store: Store, now: float) -> None:
        self.write_metrics(store, now)


def _partner(models: ModelSet, model: str) -> str | None:
    """The standby copy of ``model``, or the model a standby copy copies."""
    names = models.names
    if standby_name(model) in names and models.specs[standby_name(model)].standby:
        return standby_name(model)
    for name in names:
        if standby_name(name) == model and models.specs[model].standby:
            return name
    return None


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
