"""The heads of a pipeline: its own target (or its anomaly detectors) and its ``targets:``.

A pipeline's own target is its first head (``runtime.head.Head``; for ``task: anomaly`` an
``runtime.anomaly.AnomalyHead``). Each entry of ``targets:`` models one more field of the same
stream from the others, with its own models and tables (``PipelineSpec.target_spec``): a
``TargetHead`` named after it. Events are decoded once, and the statistics see them once,
whatever the number of heads.

A ``TargetHead``'s target is an ordinary field to the decoder, so the head reads it itself:
for regression, numbers (a string that is a number is read as one); for classification, a
string, a boolean or a whole number (``1.0`` is the class ``1``). A value of another type
(a string that is not a number for a regression target, a fraction or an object for a
classification one) is no label: the event is scored by the head, not learned, and counted in
``TargetHead.invalid_labels``. Every event of every topic that has the field is learned from;
the others are scored.

>>> from streamfit.spec import validate_spec
>>> spec = validate_spec({"name": "plant", "topics": {"score": "sensors"},
...                       "targets": [{"target": "temp", "task": "regression"}]})
>>> [type(head).__name__ for head in build_heads(spec)], [h.name for h in build_heads(spec)]
(['Head', 'TargetHead'], ['', 'temp'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from streamfit.batch import Batch, DeadLetter
from streamfit.features.columns import as_numbers
from streamfit.runtime.anomaly import AnomalyHead
from streamfit.runtime.delayed import LabelOutputs
from streamfit.runtime.head import Head
from streamfit.spec.model import PipelineSpec

__all__ = ["TargetHead", "build_heads"]

log = logging.getLogger("streamfit.worker")


def build_heads(
    spec: PipelineSpec,
    worker_id: str = "0",
    is_events_fault: Callable[[Exception], bool] = lambda exc: True,
    outputs: LabelOutputs | None = None,
) -> list[Head]:
    """The heads ``spec`` asks for, its own first; ``outputs``: where its label join, if it
    has labels topics, writes (``runtime.delayed``)."""
    first: Head
    if spec.task == "anomaly":
        first = AnomalyHead(spec, worker_id, is_events_fault=is_events_fault)
    else:
        first = Head(spec, worker_id, is_events_fault=is_events_fault, outputs=outputs)
    heads = [first]
    for extra in spec.targets:
        heads.append(TargetHead(spec.target_spec(extra), worker_id, extra.head, is_events_fault))
    return heads


class TargetHead(Head):
    """A head for a field of ``targets:`` (see the module docstring)."""

    def __init__(
        self,
        spec: PipelineSpec,
        worker_id: str = "0",
        name: str = "",
        is_events_fault: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        super().__init__(spec, worker_id, name, is_events_fault)
        self.invalid_labels = 0
        screen = self.labels.screen
        target = spec.target or ""
        regression = spec.task == "regression"

        def read_then_screen(batch: Batch) -> tuple[Batch, list[DeadLetter]]:
            column = batch.columns.get(target)
            if column is not None:
                if target in batch.booleans and not regression:  # 1.0 / 0.0: true / false
                    column = np.array(
                        [None if v != v else v == 1.0 for v in column.tolist()], dtype=object
                    )
                labels, invalid = _read_labels(column, regression)
                if invalid:
                    self._count_invalid(invalid)
                batch = Batch({**batch.columns, target: labels}, batch.meta, batch.booleans)
            return screen(batch)

        self.labels.screen = read_then_screen  # type: ignore[method-assign]

    def _count_invalid(self, count: int) -> None:
        if not self.invalid_labels:
            log.warning(
                "target %r (head %r): values of the wrong type are no label (counted in "
                "TargetHead.invalid_labels)",
                self.spec.target,
                self.name,
            )
        self.invalid_labels += count


def _read_labels(column: np.ndarray, regression: bool) -> tuple[np.ndarray, int]:
    """The target column as labels (see the module docstring), and how many values it had
    that are no label.

    >>> labels, invalid = _read_labels(np.array([1.0, 2.5, np.nan]), regression=False)
    >>> labels.tolist(), invalid
    ([1, None, None], 1)
    >>> _read_labels(np.array(["3.5", "x", None], dtype=object), regression=True)[0].tolist()
    [3.5, nan, nan]
    """
    present = (
        ~np.isnan(column)
        if column.dtype.kind == "f"
        else np.array([v is not None for v in column.tolist()], dtype=bool)
    )
    if regression:
        numbers = as_numbers(column)
        return numbers, int(np.count_nonzero(present & np.isnan(numbers)))
    out = np.full(len(column), None, dtype=object)
    invalid = 0
    for i, value in enumerate(column.tolist()):
        if value is None or (isinstance(value, float) and value != value):
            continue
        if isinstance(value, bool | str):
            out[i] = value
        elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            out[i] = int(value)
        else:
            invalid += 1
    return out, invalid
