"""Which labels a pipeline learns: the spec's ``classes``, and events without a label.

Two rules, applied to each decoded batch before anything is scored or learned:

- with ``classes`` in the spec, an event of a ``train`` topic whose label is not one of them
  is a dead letter (``label 'SPAM' is not one of the classes ham, spam``): one stray label
  would otherwise become a class of every model for good. Without ``classes``, every label is
  learned, and the first event of each new class is logged (``new class 'spam' ...``);
- an event of a train-only topic (a ``train`` topic that is not also a ``score`` topic)
  without its label is a dead letter, unless ``missing_label: score`` says to score it.

Labels compare as the results table writes them: ``1``, ``1.0`` and ``"1"`` are one class,
``true`` is ``1``.

>>> import numpy as np
>>> from streamfit.batch import Batch, Messages
>>> from streamfit.spec import validate_spec
>>> spec = validate_spec({"name": "sms", "topics": {"train": "sms"}, "target": "label",
...                       "classes": ["ham", "spam"],
...                       "models": [{"name": "m", "builtin": "logistic_regression"}]})
>>> labels = np.array(["ham", "SPAM", None, "spam"], dtype=object)
>>> batch = Batch({"label": labels}, Messages.from_values([b"{}"] * 4, topic="sms"))
>>> kept, rejected = LabelPolicy(spec).screen(batch)
>>> kept.columns["label"].tolist()
['ham', 'spam']
>>> for letter in rejected:
...     print(letter.offset, letter.reason)
1 label 'SPAM' is not one of the classes ham, spam (spec: classes)
2 no label: 'label' is missing on train topic 'sms' (spec: missing_label: dead_letter)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.batch import Batch, DeadLetter
from streamfit.spec.model import PipelineSpec
from streamfit.store._values import outcome_texts

__all__ = ["LabelPolicy"]

log = logging.getLogger("streamfit.labels")


class LabelPolicy:
    """The spec's label rules for one pipeline (see the module docstring).

    ``known`` returns the classes the models know already (after a restart), so that only
    classes new to the pipeline are logged as new.
    """

    def __init__(
        self, spec: PipelineSpec, known: Callable[[], Iterable[Any]] | None = None
    ) -> None:
        self.target = spec.target
        self.task = spec.task
        self.train_topics = set(spec.topics.train)
        self.train_only = self.train_topics - set(spec.topics.score)
        self.reject_missing = spec.missing_label == "dead_letter"
        self.classes: set[str] | None = None
        self._classes_text = ""
        if spec.classes is not None:
            texts = _texts(spec.classes)
            self.classes = set(texts)
            self._classes_text = ", ".join(texts)
        self._known = known
        self._seen: set[str] | None = None

    def screen(self, batch: Batch) -> tuple[Batch, list[DeadLetter]]:
        """The batch without the events the rules reject, and those events as dead letters."""
        target = self.target
        if target is None or not self.train_topics or len(batch) == 0:
            return batch, []
        labels = batch.columns.get(target)
        if labels is None:
            return batch, []
        in_train = self._rows_in(batch, self.train_topics)
        if not in_train.any():
            return batch, []
        present = _present(labels, self.task)
        reasons: dict[int, str] = {}
        if self.reject_missing and self.train_only:
            missing = ~present & self._rows_in(batch, self.train_only)
            for row in np.flatnonzero(missing).tolist():
                topic = batch.meta.topics[row]
                reasons[row] = (
                    f"no label: {target!r} is missing on train topic {topic!r} "
                    "(spec: missing_label: dead_letter)"
                )
        if self.task == "classification":
            labeled = np.flatnonzero(present & in_train)
            if len(labeled):
                texts = outcome_texts(np.asarray(labels[labeled], dtype=object))
                if self.classes is not None:
                    for row, text in zip(labeled.tolist(), texts, strict=True):
                        if text not in self.classes:
                            reasons[row] = (
                                f"label {labels[row]!r} is not one of the classes "
                                f"{self._classes_text} (spec: classes)"
                            )
                else:
                    self._log_new(texts, labeled, batch)
        if not reasons:
            return batch, []
        rows = sorted(reasons)
        letters = [DeadLetter.from_row(batch.meta, row, reasons[row]) for row in rows]
        keep = np.setdiff1d(np.arange(len(batch)), np.asarray(rows, dtype=np.intp))
        return batch.take(keep), letters

    def _rows_in(self, batch: Batch, topics: set[str]) -> npt.NDArray[np.bool_]:
        topic = batch.meta.single_topic()
        if topic is not None:
            return np.full(len(batch), topic in topics)
        return np.isin(batch.meta.topics, list(topics))

    def _log_new(self, texts: list[str | None], rows: npt.NDArray[np.intp], batch: Batch) -> None:
        if self._seen is None:
            self._seen = set(_texts(self._known() if self._known else []))
        new = set(texts) - self._seen
        if not new:
            return
        for text, row in zip(texts, rows.tolist(), strict=True):
            if text in new:
                new.discard(text)
                self._seen.add(text or "")
                log.warning(
                    "new class %r, first seen at %s[%d]@%d; every label is learned as a class "
                    "(list the classes in the spec, 'classes:', to turn stray labels into dead "
                    "letters)",
                    text,
                    batch.meta.topics[row],
                    int(batch.meta.partitions[row]),
                    int(batch.meta.offsets[row]),
                )


def _texts(values: Iterable[Any]) -> list[str]:
    items = list(values)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return [t for t in outcome_texts(array) if t is not None]


def _present(labels: npt.NDArray[Any], task: str) -> npt.NDArray[np.bool_]:
    if task == "regression" or labels.dtype.kind == "f":
        return ~np.isnan(labels.astype(np.float64))
    return np.asarray(labels != None, dtype=bool)  # noqa: E711 (elementwise)
