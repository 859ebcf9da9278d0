"""The update gate: a learned block is kept only when it does not hurt the model.

For a model with ``gate: {metric: f1, ratio: 0.95, holdout: 0.2}`` each block of labeled
events is handled by ``gated_update``:

1. the block is split by offset (``holdout_rows``): about ``holdout`` of its rows are
   held out, the others are the update;
2. a copy of the model learns the update, event by event (prequential, as every model does);
3. the copy is scored on the held-out rows, which no version of this model ever learns;
4. ``UpdateGate.decide`` keeps the copy if its score is above ``ratio`` x the mean score of
   the updates kept so far (below the mean / ``ratio`` for log loss, MAE, RMSE), else the
   model stays as it was: the very object, so its state is bit for bit what it was.

Why a share of the block and not the next block: the decision is taken when the block is
learned, from that block alone, so it never waits for events that have not come (the end of
a replay, a quiet stream), and nothing but the model has to be carried from one block to the
next: a checkpoint between two blocks holds the whole gate. The price is that the gated model
does not learn its held-out rows. A block of wrong labels is caught because its held-out
labels are wrong too: no sane model scores well on them.

The rows held out depend on their partition and offset only (a hash), so a replay holds out
the same rows and takes the same decisions. After ``reset_after`` rejections in a row, the
next update is kept and the mean restarts from its score: a stream that has shifted would
otherwise freeze the model forever on a mean it can no longer reach.

>>> import numpy as np, scipy.sparse as sp
>>> from streamfit.models import LogisticRegression
>>> from streamfit.spec.model import GateSpec
>>> gate = UpdateGate(GateSpec(metric="accuracy", ratio=0.95, holdout=0.25), "classification")
>>> rng = np.random.default_rng(0)
>>> X = sp.csr_matrix(rng.normal(size=(400, 4)))
>>> y = (X[:, [0]].toarray().ravel() > 0).astype(int)
>>> model = LogisticRegression(n_features=4)
>>> holdout = holdout_rows(np.zeros(400, np.int64), np.arange(400), 0.25)
>>> first = gated_update(model, X, y, holdout, gate)
>>> first.decision.kept, first.decision.reason
(True, 'first update')
>>> flipped = gated_update(first.model, X, 1 - y, holdout, gate)
>>> flipped.decision.kept, flipped.model is first.model
(False, True)
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import StateFormatError
from streamfit.lifecycle._state import read_state, write_state
from streamfit.lifecycle.scores import higher_is_better, score
from streamfit.models.base import (
    Classifier,
    Features,
    Model,
    align_classes,
    prequential,
    take_rows,
)
from streamfit.spec.model import GateSpec

__all__ = ["GateDecision", "GatedUpdate", "UpdateGate", "gated_update", "holdout_rows"]

_MAGIC = b"SFGT"
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finalizer: every bit of the input moves every bit of the output."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit_interval(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Each value hashed to a number in [0, 1), the same on every machine."""
    return (_mix(values) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def holdout_rows(
    partitions: npt.NDArray[Any], offsets: npt.NDArray[Any], share: float, topic: str = ""
) -> npt.NDArray[np.bool_]:
    """Which rows are held out: those whose (topic, partition, offset) hashes below ``share``.

    >>> rows = holdout_rows(np.zeros(10_000, np.int64), np.arange(10_000), 0.2)
    >>> round(float(rows.mean()), 2)
    0.2
    """
    seed = np.uint64(zlib.crc32(topic.encode()))
    with np.errstate(over="ignore"):
        mixed = (
            np.asarray(offsets, dtype=np.int64).astype(np.uint64) * np.uint64(0x100000001B3)
            + np.asarray(partitions, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E37)
            + seed * np.uint64(0x1F)
        )
    return unit_interval(mixed) < share


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate decided about one update, and from which figures.

    ``score``: the updated copy's score on the held-out rows; ``current``: the model's as it
    was, on the same rows; ``baseline``: the mean score of the updates kept before;
    ``threshold``: what ``score`` had to beat (``None`` with no baseline).
    """

    kept: bool
    reason: str
    score: float | None
    current: float | None
    baseline: float | None
    threshold: float | None
    held_out: int
    learned: int


class UpdateGate:
    """The rule of one model's gate (see the module docstring) and the running mean of the
    updates it kept, with counts of what it kept and rejected."""

    def __init__(self, spec: GateSpec, task: str) -> None:
        self.spec = spec
        self.task = task
        self.kept_sum = 0.0
        self.kept_scores = 0  # kept updates that had a score (the mean's count)
        self.kept = 0
        self.rejected = 0
        self.rejected_in_a_row = 0

    @property
    def mean(self) -> float | None:
        """The mean score of the updates kept so far (``None`` before the first)."""
        return self.kept_sum / self.kept_scores if self.kept_scores else None

    def threshold(self) -> float | None:
        """What the next update's score must beat."""
        mean = self.mean
        if mean is None:
            return None
        if higher_is_better(self.spec.metric):
            return self.spec.ratio * mean
        return mean / self.spec.ratio

    def decide(
        self, new: float | None, current: float | None, held_out: int, learned: int
    ) -> GateDecision:
        """Keep or reject an update whose held-out score is ``new``; count it."""
        baseline, threshold = self.mean, self.threshold()
        if new is None:
            kept, reason = True, "no score on the held-out rows: kept as it is"
        elif threshold is None:
            kept, reason = True, "first update"
        elif (new > threshold) if higher_is_better(self.spec.metric) else (new < threshold):
            kept, reason = True, "passed"
        elif self.spec.reset_after is not None and self.rejected_in_a_row >= self.spec.reset_after:
            kept = True
            reason = f"kept after {self.rejected_in_a_row} rejections in a row: the mean restarts"
            self.kept_sum, self.kept_scores = 0.0, 0
        else:
            kept, reason = False, "below the threshold"
        if kept:
            self.kept += 1
            self.rejected_in_a_row = 0
            if new is not None:
                self.kept_sum += new
                self.kept_scores += 1
        else:
            self.rejected += 1
            self.rejected_in_a_row += 1
        return GateDecision(kept, reason, new, current, baseline, threshold, held_out, learned)

    def state(self) -> bytes:
        return write_state(
            _MAGIC,
            {
                "kept_sum": self.kept_sum,
                "kept_scores": self.kept_scores,
                "kept": self.kept,
                "rejected": self.rejected,
                "rejected_in_a_row": self.rejected_in_a_row,
            },
        )

    def restore(self, blob: bytes) -> None:
        """Take back what ``state()`` wrote (the rule stays the spec's)."""
        found = read_state(blob, _MAGIC, "gate state")
        try:
            self.kept_sum = float(found["kept_sum"])
            self.kept_scores = int(found["kept_scores"])
            self.kept = int(found["kept"])
            self.rejected = int(found["rejected"])
            self.rejected_in_a_row = int(found["rejected_in_a_row"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"gate state: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class GatedUpdate:
    """A block through the gate: the model to go on with (the updated copy if kept, else
    the model itself), each row's prediction before it was learned (held-out rows: by the
    model as it was), the classes of the probability columns, and the decision."""

    model: Model
    predicted: npt.NDArray[np.float64]
    classes: list[object]
    decision: GateDecision


def _predict(model: Model, X: Features, n: int) -> tuple[npt.NDArray[np.float64], list[object]]:
    if isinstance(model, Classifier) and model.task == "classification":
        if n == 0:
            return np.zeros((0, len(model.classes))), list(model.classes)
        return np.asarray(model.predict_proba_many(X), dtype=np.float64), list(model.classes)
    if n == 0:
        return np.zeros(0), []
    return np.asarray(model.predict_many(X), dtype=np.float64), []


def gated_update(
    model: Model,
    X: Features,
    y: npt.NDArray[Any],
    holdout: npt.NDArray[np.bool_],
    gate: UpdateGate,
) -> GatedUpdate:
    """One block through ``gate`` (see the module docstring); ``holdout`` marks the rows
    held out (``holdout_rows``). ``model`` itself is never changed."""
    held = np.flatnonzero(holdout)
    learn = np.flatnonzero(~holdout)
    X_held = take_rows(X, held)
    before, before_classes = _predict(model, X_held, len(held))
    candidate = copy.deepcopy(model)
    learned, classes = prequential(candidate, take_rows(X, learn), y[learn])
    after, after_classes = _predict(candidate, X_held, len(held))
    task = gate.task
    predicted: npt.NDArray[np.float64]
    if task == "classification":
        before = align_classes(before, before_classes, classes)
        after = align_classes(after, after_classes, classes)
        predicted = np.zeros((len(y), len(classes)))
    else:
        predicted = np.zeros(len(y))
    predicted[learn] = learned
    predicted[held] = before
    y_held = y[held]
    new = score(task, gate.spec.metric, y_held, after, classes)
    current = score(task, gate.spec.metric, y_held, before, classes)
    decision = gate.decide(new, current, len(held), len(learn))
    return GatedUpdate(candidate if decision.kept else model, predicted, classes, decision)
