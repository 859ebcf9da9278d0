"""Labels that come after their events, in the worker: the label join of a head.

A pipeline with ``labels`` topics scores the events of its ``score`` topics as they come and
learns from them when their labels come, later, on the labels topics (``streamfit.delayed``
holds the join itself; this module plugs it into a ``Head``):

1. **screen** (``screen``): a label event without a key, with a key of another type than a
   string or a whole number, without a label, or with a label of the wrong type (or not one
   of ``classes``) is a dead letter with that reason;
2. **route** (``roles``): label events are never scored; they wait in the head's blocks, as
   do the scored events of the score topics (*deposits*);
3. **serve** (``served``): each model's prediction of each scored event is kept, by
   partition and offset, until the event is deposited (``ServedLog``);
4. **learn** (``learn_run``): the blocks come out of ``runtime.blocks`` in its fixed order.
   A block of a score topic deposits its events in the join: each event's kept row
   (``Featurizer.keep``: its values as they came, its hashed entries unweighted) and its
   served predictions wait under its key. A block of a labels topic hands its labels to the
   join. Each pair the join completes is learned there and then: the featurizer learns the
   kept rows (``learn_kept``), each model predicts them (the label-time figures of the
   ``<name>_labels`` table) and learns them, the prediction that was served is evaluated
   (the training table), and the event's results row gets its label.

**Why replays are bit-exact.** Whether a label finds its event depends only on the order in
which their blocks are handed to the join, and that is the blocks' order (block index, then
topic and partition), which depends on offsets alone wherever the topics hold a backlog (as
after a crash: ``runtime.blocks``). What is learned depends only on the events (what is kept
does not depend on the featurizer's scaling or frequencies, which are applied when the label
is learned) and on that order. So the models, the featurizer and the join reach the same
bytes in every run, whatever the polls. Only the served predictions depend on when an event
was scored (by the model of that moment): their figures (the training table's, for delayed
labels) can differ between a run and its replay; the label-time figures cannot.

**What a checkpoint holds.** The join (waiting events, early labels, keys done, counters),
the served predictions of events scored but not yet deposited (their blocks are read again
after a restart, and must find what was served the first time), and the label-time
evaluators; in the same transaction as the offsets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.batch import Batch, DeadLetter, Messages
from streamfit.delayed.arena import Served
from streamfit.delayed.join import LabelJoin, Matches
from streamfit.errors import SpecError
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator, make_evaluator
from streamfit.limits import MAX_KEY_BYTES, MAX_MAGNITUDE
from streamfit.models.base import reads_columns, reads_records
from streamfit.runtime.component import Outcome
from streamfit.runtime.evaluators import evaluator_from_state
from streamfit.runtime.isolation import isolate
from streamfit.runtime.keys import key_text, keys_of
from streamfit.runtime.models import learns
from streamfit.runtime.routing import Roles
from streamfit.spec.model import PipelineSpec
from streamfit.store import ModelPredictions
from streamfit.store._values import outcome_texts

if TYPE_CHECKING:
    from streamfit.runtime.head import Head
    from streamfit.store import Store

__all__ = ["DelayedLabels", "LabelOutputs", "ServedLog"]

log = logging.getLogger("streamfit.labels")

TopicPartition = tuple[str, int]
Floats = npt.NDArray[np.float64]


class LabelOutputs(Protocol):
    """Where the join's results go (``runtime.outputs.Outputs``)."""

    def label_results(
        self,
        table: str,
        where: tuple[Sequence[str], npt.NDArray[Any], npt.NDArray[Any]],
        labels: npt.NDArray[Any],
        task: str,
    ) -> None: ...

    def dead_letter(self, letters: list[DeadLetter]) -> None: ...


# -- served predictions, until the event is deposited ------------------------------------------


class ServedLog:
    """What each model served for the events scored but not deposited yet, per partition.

    >>> import numpy as np
    >>> from streamfit.batch import Messages
    >>> from streamfit.store import ModelPredictions
    >>> log = ServedLog()
    >>> meta = Messages.from_values([b"a", b"b"], topic="t", first_offset=7)
    >>> lr = ModelPredictions("lr", 1, np.array(["x", "y"], dtype=object), np.array([.6, .7]),
    ...                       scores=np.array([[.6, .4], [.3, .7]]), classes=("x", "y"))
    >>> log.record(meta, [lr])
    >>> served, found = log.take(("t", 0), np.array([8, 9]), regression=False)
    >>> served["lr"][0].tolist(), served["lr"][1], found.tolist()
    ([[0.3, 0.7], [0.0, 0.0]], ['x', 'y'], [True, False])
    """

    def __init__(self) -> None:
        # per partition: chunks of (offsets, {model: (scores, classes)}), offsets increasing
        self._chunks: dict[TopicPartition, list[tuple[npt.NDArray[np.int64], dict[str, Any]]]]
        self._chunks = {}

    def __len__(self) -> int:
        return sum(len(o) for chunks in self._chunks.values() for o, _ in chunks)

    def record(self, meta: Messages, predictions: Sequence[ModelPredictions]) -> None:
        """Keep each model's predictions of the rows of ``meta`` (what A/B serving put
        together from several models, ``ModelPredictions.models``, is their own)."""
        for key, rows in meta.by_partition():
            index = np.arange(len(meta)) if rows is None else rows
            served: dict[str, Any] = {}
            for p in predictions:
                if p.models is not None:
                    continue
                if p.scores is not None:
                    served[p.name] = (p.scores[index], tuple(p.classes))
                else:  # a regressor's values
                    values = np.asarray(p.prediction, dtype=np.float64)[index]
                    served[p.name] = (values.reshape(-1, 1), ())
            chunks = self._chunks.setdefault(key, [])
            offsets = meta.offsets[index]
            if chunks and chunks[-1][0][-1] >= offsets[0]:  # read again from further back
                chunks[:] = [c for c in chunks if c[0][0] < offsets[0]]
            chunks.append((offsets, served))

    def take(
        self, tp: TopicPartition, offsets: npt.NDArray[np.int64], regression: bool
    ) -> tuple[dict[str, Served], npt.NDArray[np.bool_]]:
        """What was served for ``offsets`` (increasing) of ``tp``, per model, the classes of
        every chunk in one list; and which were found. Entries up to the last offset are
        then forgotten."""
        n = len(offsets)
        found = np.zeros(n, dtype=bool)
        parts: dict[str, list[tuple[npt.NDArray[np.intp], Floats, tuple[object, ...]]]] = {}
        chunks = self._chunks.get(tp, [])
        for chunk_offsets, served in chunks:
            at = np.searchsorted(chunk_offsets, offsets)
            inside = at < len(chunk_offsets)
            hit = np.zeros(n, dtype=bool)
            hit[inside] = chunk_offsets[at[inside]] == offsets[inside]
            if not hit.any():
                continue
            found |= hit
            rows = np.flatnonzero(hit)
            for model, (scores, classes) in served.items():
                parts.setdefault(model, []).append((rows, scores[at[rows]], classes))
        out: dict[str, Served] = {}
        for model, pieces in parts.items():
            union: list[object] = []
            for _, _, chunk_classes in pieces:
                union += [c for c in chunk_classes if c not in union]
            table = np.zeros((n, 1 if regression else len(union)))
            for rows, scores, chunk_classes in pieces:
                if regression:
                    table[rows] = scores
                elif chunk_classes:
                    columns = np.array([union.index(c) for c in chunk_classes], dtype=np.intp)
                    table[np.ix_(rows, columns)] = scores
            out[model] = (table, union)
        if n:
            self.forget_through(tp, int(offsets[-1]))
        return out, found

    def forget_through(self, tp: TopicPartition, offset: int) -> None:
        chunks = self._chunks.get(tp)
        if not chunks:
            return
        kept = [c for c in chunks if c[0][-1] > offset]
        if kept:
            self._chunks[tp] = kept
        else:
            del self._chunks[tp]

    def drop(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._chunks.pop(tp, None)

    def state(self) -> bytes:
        """The log in a versioned envelope (``SFSV``, version 1)."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        chunks_header = []
        for i, ((topic, partition), chunks) in enumerate(sorted(self._chunks.items())):
            for j, (offsets, served) in enumerate(chunks):
                name = f"{i}_{j}"
                arrays[f"o{name}"] = offsets
                models = sorted(served)
                for m, model in enumerate(models):
                    arrays[f"s{name}_{m}"] = served[model][0]
                chunks_header.append(
                    [topic, partition, name, models, [list(served[m][1]) for m in models]]
                )
        entries, payload = pack_arrays(arrays, "served predictions")
        header = orjson.dumps({"chunks": chunks_header, "arrays": entries})
        return seal(b"SFSV", 1, header, *payload)

    @classmethod
    def from_state(cls, blob: bytes) -> ServedLog:
        opened = unseal(blob, b"SFSV", 1, "served predictions")
        arrays = unpack_arrays(opened.payload, opened.header.get("arrays"), "served predictions")
        log_ = cls()
        for topic, partition, name, models, classes in opened.header["chunks"]:
            served = {
                model: (arrays[f"s{name}_{m}"], tuple(classes[m])) for m, model in enumerate(models)
            }
            log_._chunks.setdefault((topic, int(partition)), []).append(
                (arrays[f"o{name}"], served)
            )
        return log_


# -- the head's label join ----------------------------------------------------------------------


class DelayedLabels:
    """The label join of ``head`` (the module docstring says how it plugs in)."""

    def __init__(self, spec: PipelineSpec, head: Head, outputs: LabelOutputs | None) -> None:
        self.spec = spec
        self.head = head
        self.outputs = outputs
        self.task = spec.task
        self.regression = spec.task == "regression"
        self.labels_topics = set(spec.topics.labels)
        self.score_topics = set(spec.topics.score)
        self.train_topics = set(spec.topics.train)
        for slot in head.models.slots:
            if reads_records(slot.model) and learns(slot.model):
                raise SpecError(
                    f"model {slot.name!r} reads events as records: with a 'labels' topic "
                    "events wait for their labels as hashed features only (a River model: "
                    "'reads: matrix')"
                )
        self.join = self._new_join()
        self.served_log = ServedLog()
        task: Any = spec.task  # classification or regression (spec: no labels for anomaly)
        self.at_label: dict[str, ClassificationEvaluator | RegressionEvaluator] = {
            name: make_evaluator(task, spec.evaluation.window) for name in head.models.names
        }
        self.table = spec.labels.table_name(spec.name)
        self._reported: dict[str, int] = {}
        self.events_not_kept = 0  # events whose features ``Featurizer.keep`` failed on
        self._classes = None if spec.classes is None else set(_texts(spec.classes))
        self._classes_text = "" if spec.classes is None else ", ".join(_texts(spec.classes))
        labels = spec.labels
        self._key_fields = [labels.key] if labels.key else [f for f in (spec.key, "key") if f]
        self._own_key = labels.key is None  # no key field: the label event's Kafka key
        self._label_fields = (
            [labels.label] if labels.label else [f for f in (spec.target, "label") if f]
        )

    def _new_join(self) -> LabelJoin:
        spec = self.spec.labels
        ttl_ms = None if spec.ttl.seconds is None else math.ceil(spec.ttl.seconds * 1000)
        return LabelJoin(
            self.head.models.names,
            self.regression,
            ttl_events=spec.ttl.events,
            ttl_ms=ttl_ms,
            max_waiting=spec.max_waiting,
        )

    @property
    def learning_topics(self) -> set[str]:
        """The topics whose events wait in the head's blocks for the join."""
        return self.labels_topics | self.score_topics

    # -- screening and routing

    def screen(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        """``batch`` without the label events that cannot be used, and those as dead letters."""
        rows = self._label_rows(batch)
        if not len(rows):
            return batch, []
        letters: list[DeadLetter] = []
        bad: list[int] = []
        for row in rows.tolist():
            reason = self._parse(batch.meta, row)[2]
            if reason is not None:
                bad.append(row)
                letters.append(DeadLetter.from_row(batch.meta, row, reason))
        if not bad:
            return batch, []
        keep = np.setdiff1d(np.arange(len(batch)), np.asarray(bad, dtype=np.intp))
        return batch.take(keep), letters

    def roles(self, batch: Batch, roles: Roles) -> Roles:
        """Label events are learned from (by the join), never scored; the scored events of
        the score topics are also queued, to be deposited."""
        labels_rows = self._label_rows(batch)
        score = np.setdiff1d(roles.score, labels_rows, assume_unique=True)
        deposits = score[_in_topics(batch.meta, self.score_topics)[score]]
        train = np.union1d(np.union1d(roles.train, labels_rows), deposits).astype(np.intp)
        return Roles(train, score.astype(np.intp), roles.labels)

    def served(self, batch: Batch, predictions: Sequence[ModelPredictions]) -> None:
        """Keep what was served for the scored events of the score topics."""
        rows = np.flatnonzero(_in_topics(batch.meta, self.score_topics))
        if not len(rows):
            return
        if len(rows) == len(batch):
            self.served_log.record(batch.meta, predictions)
        else:
            self.served_log.record(batch.meta.take(rows), [p.take(rows) for p in predictions])

    # -- learning

    def learn_run(self, run: Batch, bounds: list[int], tell: Any) -> int:
        """Hand a run of blocks (one partition) to the join, block by block; learn each pair
        it completes. A train topic that is also a score topic: each block's labeled events
        are learned after its unlabeled ones are deposited."""
        topic = run.meta.single_topic() or str(run.meta.topics[0])
        learned = 0
        for a, b in pairwise(bounds):
            block = run.rows(a, b)
            if topic in self.labels_topics:
                learned += self._learn(self._labels(block), tell)
                continue
            labeled = np.zeros(len(block), dtype=bool)
            if topic in self.train_topics and self.spec.target in block.columns:
                labeled = _known(block.columns[self.spec.target], self.regression)
            deposits = np.flatnonzero(~labeled)
            if len(deposits):
                learned += self._learn(self._deposit(block.take(deposits)), tell)
            if labeled.any():
                train = block.take(np.flatnonzero(labeled))
                X = self.head.featurizer.learn_transform(train)
                learned += self.head._learn_block(X, train, tell)
        return learned

    def _deposit(self, block: Batch) -> Matches:
        tp = (block.meta.single_topic() or str(block.meta.topics[0]), int(block.meta.partitions[0]))
        key_field = self.spec.key or ""
        if key_field in block.columns:
            keys = keys_of(block.columns[key_field], block.meta.keys)
        else:
            keys = list(block.meta.keys)
        served, found = self.served_log.take(tp, block.meta.offsets, self.regression)
        kept_parts: list[tuple[npt.NDArray[np.intp], Any]] = []

        def keep(rows: npt.NDArray[np.intp]) -> None:
            kept_parts.append((rows, self.head.featurizer.keep(block.take(rows))))

        def skip(rows: npt.NDArray[np.intp], exc: Exception) -> None:
            if not self.events_not_kept:
                log.warning(
                    "an event cannot wait for its label (its features cannot be kept): %s; "
                    "counted in DelayedLabels.events_not_kept",
                    exc,
                )
            self.events_not_kept += len(rows)

        isolate(np.arange(len(block)), keep, skip, _halves)
        if len(kept_parts) != 1 or len(kept_parts[0][0]) != len(block):
            rows = (
                np.concatenate([r for r, _ in kept_parts]) if kept_parts else np.zeros(0, np.intp)
            )
            block = block.take(rows)
            keys = [keys[i] for i in rows.tolist()]
            found = found[rows]
            served = {m: (p[rows], c) for m, (p, c) in served.items()}
            kept = _concat_kept([k for _, k in kept_parts])
        else:
            kept = kept_parts[0][1]
        served = self._complete(block, served, found)
        return self.join.deposit(keys, kept, served, block.meta)

    def _complete(
        self, block: Batch, served: dict[str, Served], found: npt.NDArray[np.bool_]
    ) -> dict[str, Served]:
        """Every model's served predictions for every event of ``block``: those not found
        (scored before a crash that lost them; an event set aside when it was scored) are
        predicted now, by the models as they are."""
        missing = np.flatnonzero(~found)
        if not len(missing):
            return served
        X = self.head.featurizer.transform(block.take(missing))
        now = {p.name: p for p in self.head.models.predict(X)}
        out: dict[str, Served] = {}
        for name in self.head.models.names:
            scores, classes = served.get(name, (np.zeros((len(block), 0)), []))
            p = now[name]
            if self.regression:
                table = np.zeros((len(block), 1))
                table[found] = scores[found] if scores.shape[1] else 0.0
                table[missing, 0] = np.asarray(p.prediction, dtype=np.float64)
                out[name] = (table, [])
                continue
            merged = list(classes) + [c for c in p.classes if c not in classes]
            table = np.zeros((len(block), len(merged)))
            table[:, : scores.shape[1]] = scores
            table[missing] = 0.0
            if p.scores is not None and p.classes:
                columns = np.array([merged.index(c) for c in p.classes], dtype=np.intp)
                table[np.ix_(missing, columns)] = p.scores
            out[name] = (table, merged)
        return out

    def _labels(self, block: Batch) -> Matches:
        keys: list[bytes] = []
        labels: list[object] = []
        for row in range(len(block)):
            key, label, _ = self._parse(block.meta, row)
            assert key is not None  # screened
            keys.append(key)
            labels.append(label)
        return self.join.labels(keys, labels, block.meta)

    def _learn(self, matches: Matches, tell: Any) -> int:
        if matches.unmatched and self.outputs is not None:
            self.outputs.dead_letter(matches.unmatched)
        n = len(matches)
        if not n:
            return 0
        head = self.head
        y = (
            np.array(matches.labels, dtype=np.float64)
            if self.regression
            else _object_array(matches.labels)
        )
        X = head.featurizer.learn_kept(matches.kept)
        # the events, as a block without fields: what a gate's held-out rows and the A/B
        # arms are chosen by (their partitions, offsets and keys)
        events = Batch(
            {},
            Messages(
                values=[None] * n,
                keys=list(matches.keys),
                topics=_object_array(list(matches.topics)),
                partitions=matches.partitions,
                offsets=matches.offsets,
                timestamps=matches.timestamps,
            ),
        )
        outcomes = head.models.predict_then_learn(X, y, None, events, head.events_learned)
        for outcome in outcomes:
            if not reads_columns(head.models.slot(outcome.model).model):
                self._update(self.at_label[outcome.model], y, outcome.predicted, outcome)
            scores, classes = matches.served[outcome.model]
            served = replace(
                outcome, predicted=scores[:, 0] if self.regression else scores, classes=classes
            ).of_head(head.name)
            head.evaluation.learned(served)
            tell(served)
        head.events_learned += n
        if self.outputs is not None:
            where = (matches.topics, matches.partitions, matches.offsets)
            self.outputs.label_results(head.results_table, where, y, self.task)
        return n

    def _update(
        self, evaluator: Any, labels: npt.NDArray[Any], predicted: Floats, outcome: Outcome
    ) -> None:
        if isinstance(evaluator, ClassificationEvaluator):
            evaluator.update(labels, predicted, list(outcome.classes))
        elif isinstance(evaluator, RegressionEvaluator):
            evaluator.update(labels.astype(np.float64), predicted)

    # -- parsing label events

    def _label_rows(self, batch: Batch) -> npt.NDArray[np.intp]:
        return np.flatnonzero(_in_topics(batch.meta, self.labels_topics))

    def _parse(self, meta: Messages, row: int) -> tuple[bytes | None, object, str | None]:
        """A label event's key and label, or the reason it cannot be used."""
        payload = meta.values[row]
        try:
            event = orjson.loads(payload or b"")
        except orjson.JSONDecodeError:
            return None, None, "label event is not JSON"
        if not isinstance(event, dict):
            return None, None, "label event is not a JSON object"
        key: object = None
        for name in self._key_fields:
            if event.get(name) is not None:
                key = event[name]
                break
        if key is None:
            own = meta.keys[row]
            if self._own_key and own:
                key = own
            else:
                fields = " or ".join(repr(f) for f in self._key_fields)
                return None, None, f"label event without a key: no {fields} field"
        reason = _key_problem(key)
        if reason is not None:
            return None, None, reason
        key_bytes = key if isinstance(key, bytes) else key_text(key).encode()
        if len(key_bytes) > MAX_KEY_BYTES:
            return None, None, f"label event's key of {len(key_bytes)} bytes; at most 1024"
        label: object = None
        for name in self._label_fields:
            if event.get(name) is not None:
                label = event[name]
                break
        if label is None:
            fields = " or ".join(repr(f) for f in self._label_fields)
            return None, None, f"label event without a label: no {fields} field"
        label, reason = self._checked_label(label)
        if reason is not None:
            return None, None, reason
        return key_bytes, label, None

    def _checked_label(self, label: object) -> tuple[object, str | None]:
        kind = type(label).__name__
        if self.regression:
            if isinstance(label, bool) or not isinstance(label, int | float):
                return None, f"label {_shown(label)} is a {kind}; a regression label is a number"
            if not abs(label) <= MAX_MAGNITUDE:
                return None, f"label {label!r} is past {MAX_MAGNITUDE:g} in magnitude"
            return float(label), None
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, str | int | bool):
            return None, (
                f"label {_shown(label)} is a {kind}; a classification label is a string, "
                "an integer or a boolean"
            )
        if self._classes is not None:
            text = _texts([label])[0]
            if text not in self._classes:
                return None, (
                    f"label {label!r} is not one of the classes {self._classes_text} "
                    "(spec: classes)"
                )
        return label, None

    # -- figures, state

    def rows(self, now: float) -> list[dict[str, Any]]:
        """The rows of the label join table: per model, the join's counts and delays, and
        the model's figures at the moment each label was learned."""
        counters = self.join.counters
        matched = counters["labels_matched"]
        out = []
        for slot in self.head.models.slots:
            snapshot = {} if reads_columns(slot.model) else self.at_label[slot.name].snapshot()
            row: dict[str, Any] = {
                "model": slot.name,
                "worker": self.head.evaluation.worker,
                "events_seen": slot.events_learned,
                "recorded_at": now,
                **counters,
                "mean_delay_events": self.join.delay_events_sum / matched if matched else None,
                "mean_delay_seconds": self.join.delay_ms_sum / 1000 / matched if matched else None,
            }
            for metric in ("accuracy", "f1", "log_loss", "roc_auc", "mae", "rmse"):
                if metric in snapshot:
                    row[f"learned_{metric}"] = snapshot[metric]
            out.append(row)
        return out

    def write_metrics(self, store: Store, now: float) -> None:
        store.write_label_join(self.table, self.rows(now))
        counters = self.join.counters
        changed = {k: v for k, v in counters.items() if v != self._reported.get(k, 0)}
        if any(k in changed for k in ("labels_unmatched", "events_expired", "events_evicted")):
            log.info(
                "labels: %s",
                ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counters.items()),
            )
        self._reported.update(counters)

    def state(self) -> dict[str, bytes]:
        states = {"labels": self.join.state(), "labels_served": self.served_log.state()}
        for name, evaluator in self.at_label.items():
            states[f"labels_evaluator/{name}"] = evaluator.state()
        return states

    def restore(self, states: Mapping[str, bytes]) -> None:
        if "labels" in states:
            self.join = LabelJoin.from_state(states["labels"])
        if "labels_served" in states:
            self.served_log = ServedLog.from_state(states["labels_served"])
        for name in self.at_label:
            blob = states.get(f"labels_evaluator/{name}")
            if blob is not None:
                self.at_label[name] = evaluator_from_state(blob)

    def drop(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions gone to another worker: what was served there is theirs to deposit."""
        self.served_log.drop(partitions)


def _in_topics(meta: Messages, topics: set[str]) -> npt.NDArray[np.bool_]:
    topic = meta.single_topic()
    if topic is not None:
        return np.full(len(meta), topic in topics)
    return np.isin(meta.topics, list(topics))


def _known(labels: npt.NDArray[Any], regression: bool) -> npt.NDArray[np.bool_]:
    if regression or labels.dtype.kind == "f":
        return ~np.isnan(labels.astype(np.float64))
    return np.asarray(labels != None, dtype=bool)  # noqa: E711 (elementwise)


def _key_problem(key: object) -> str | None:
    """Why ``key`` cannot be an event's key (a string or a whole number can), or None."""
    if isinstance(key, bytes | str):
        return None
    if isinstance(key, int) and not isinstance(key, bool):
        return None
    if isinstance(key, float) and key.is_integer():
        return None
    kind = {dict: "an object", list: "an array", bool: "a boolean", float: "a fraction"}.get(
        type(key), type(key).__name__
    )
    return f"label event's key {_shown(key)} is {kind}; a key is a string or a whole number"


def _shown(value: object) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _texts(values: Sequence[object]) -> list[str]:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return [t for t in outcome_texts(array) if t is not None]


def _object_array(values: list[object]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _halves(rows: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    middle = len(rows) // 2
    return rows[:middle], rows[middle:]


def _concat_kept(parts: list[Any]) -> Any:
    from streamfit.features.featurizer import KeptRows

    if not parts:
        n0 = np.zeros((0, 0))
        return KeptRows(
            n0, n0, (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.intp))
        )
    offset = 0
    rows, cols, data, groups = [], [], [], []
    width = max(p.numbers.shape[1] for p in parts), max(p.flags.shape[1] for p in parts)
    numbers, flags = [], []
    for part in parts:
        r, c, d, g = part.hashed
        rows.append(r + offset)
        cols.append(c)
        data.append(d)
        groups.append(g)
        n = len(part)
        padded = np.full((n, width[0]), np.nan)
        padded[:, : part.numbers.shape[1]] = part.numbers
        numbers.append(padded)
        padded = np.full((n, width[1]), np.nan)
        padded[:, : part.flags.shape[1]] = part.flags
        flags.append(padded)
        offset += n
    return KeptRows(
        np.concatenate(numbers),
        np.concatenate(flags),
        (np.concatenate(rows), np.concatenate(cols), np.concatenate(data), np.concatenate(groups)),
    )
