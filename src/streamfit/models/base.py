"""The ``Model`` contract: River-style ``*_many`` methods over a feature matrix.

Features arrive as a ``scipy.sparse.csr_matrix`` of shape ``(n_rows, n_features)`` built by
``streamfit.features``: scaled numeric columns and hashed categorical / text columns share one
index space. Labels are a 1-d numpy array: any hashable values for classifiers (str, int,
bool), ``float64`` for regressors.

Classifiers expose ``classes`` (the labels seen so far, in order of first appearance: the
column order of ``predict_proba_many``). Before any label is seen, ``predict_many`` returns
``None`` values and ``predict_proba_many`` an empty ``(n, 0)`` array; with one class seen, that
class with probability 1. Regressors predict 0.0 before learning. An empty batch is a no-op.

``Prequential`` models also have ``predict_learn_many(X, y)``: each row predicted by the model
as it was just before that row, then learned, row after row (River's test-then-train). The
function ``predict_learn_many`` calls it, or falls back to block semantics for a model without
it (every row predicted first, then the rows learned): what the runtime calls on each block.

``state()`` returns bytes in the versioned ``SFST`` format of ``streamfit.models.state`` (not
pickle for the built-in learners; adapters frame a pickle tied to their library's version);
the class's ``from_state`` rebuilds an equal model from them (``model_from_state`` picks the
class from the blob). ``Mergeable`` learners fold another worker's model into theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, Self, TypeAlias, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from streamfit.errors import ModelError

__all__ = [
    "Classifier",
    "Columns",
    "Detector",
    "Features",
    "Mergeable",
    "Model",
    "Prequential",
    "Records",
    "Task",
    "align_classes",
    "as_csr",
    "check_labels",
    "most_probable",
    "predict_learn_many",
    "prequential",
    "reads_columns",
    "reads_records",
    "take_rows",
]

Task = Literal["classification", "regression"]

#: The events' typed fields, one dict per row (``Featurizer.records``)
Records: TypeAlias = Sequence[dict[str, Any]]
#: The events' fields as the batch holds them, one array per field (``Batch.columns``)
Columns: TypeAlias = Mapping[str, npt.NDArray[Any]]
#: What a model learns from: the hashed matrix, records for a model that ``reads_records``,
#: the batch's columns for one that ``reads_columns`` (a pretrained model reading its inputs
#: by name)
Features: TypeAlias = sp.csr_matrix | Records | Columns


def reads_records(model: object) -> bool:
    """Whether ``model`` learns from records (its ``reads`` says ``"records"``) rather than the
    hashed matrix: adapters of libraries that take the fields whole, as River does.

    >>> from streamfit.models import LogisticRegression
    >>> reads_records(LogisticRegression())
    False
    """
    return getattr(model, "reads", "matrix") == "records"


def reads_columns(model: object) -> bool:
    """Whether ``model`` reads the events' fields by name, a column each (``reads`` is
    ``"columns"``): pretrained models whose inputs are named fields.

    >>> from streamfit.models import LogisticRegression
    >>> reads_columns(LogisticRegression())
    False
    """
    return getattr(model, "reads", "matrix") == "columns"


def take_rows(X: Features, index: npt.NDArray[np.intp]) -> Features:
    """The rows ``index`` of a matrix, of records or of columns.

    >>> take_rows({"x": np.array([1.0, 2.0, 3.0])}, np.array([2, 0]))["x"].tolist()
    [3.0, 1.0]
    """
    if isinstance(X, sp.csr_matrix | sp.csr_array):
        return sp.csr_matrix(X[index])
    if isinstance(X, Mapping):
        return {name: column[index] for name, column in X.items()}
    records = list(X)
    return [records[i] for i in index.tolist()]


def align_classes(
    proba: npt.NDArray[np.float64], classes: Sequence[object], to: Sequence[object]
) -> npt.NDArray[np.float64]:
    """Probabilities whose columns stand for ``classes``, laid out for the classes ``to`` (0
    where a class of ``to`` is not among ``classes``).

    >>> align_classes(np.array([[0.3, 0.7]]), ["a", "b"], ["b", "c", "a"]).tolist()
    [[0.7, 0.0, 0.3]]
    """
    if list(classes) == list(to):
        return proba
    out = np.zeros((proba.shape[0], len(to)))
    position = {label: i for i, label in enumerate(to)}
    for j, label in enumerate(classes):
        if label in position:
            out[:, position[label]] = proba[:, j]
    return out


def most_probable(
    classes: Sequence[object], proba: npt.NDArray[np.float64]
) -> npt.NDArray[np.object_]:
    """Per row of ``proba`` (a column per class of ``classes``), the most probable class.

    >>> most_probable(["no", "yes"], np.array([[0.2, 0.8], [0.9, 0.1]])).tolist()
    ['yes', 'no']
    """
    if not len(proba):
        return np.empty(0, dtype=object)
    labels = np.empty(len(classes), dtype=object)
    labels[:] = classes
    best: npt.NDArray[np.object_] = labels[proba.argmax(axis=1)]
    return best


@runtime_checkable
class Model(Protocol):
    """Anything streamfit can learn with and predict with."""

    task: Task

    def learn_many(self, X: sp.csr_matrix, y: npt.NDArray[np.generic]) -> None:
        """Update from labeled rows (in row order where the learner is sequential)."""
        ...

    def predict_many(self, X: sp.csr_matrix) -> npt.NDArray[np.generic]:
        """One prediction per row: a label (classifier) or a float (regressor)."""
        ...

    def state(self) -> bytes:
        """The whole learned state, as bytes that ``from_state`` reads back."""
        ...

    @classmethod
    def from_state(cls, blob: bytes) -> Self:
        """The model ``state()`` described; ``StateFormatError`` if the blob is unreadable."""
        ...


@runtime_checkable
class Classifier(Model, Protocol):
    """A model that also gives class probabilities."""

    @property
    def classes(self) -> list[object]: ...

    def predict_proba_many(self, X: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """``(n_rows, len(classes))`` probabilities, columns in ``classes`` order."""
        ...


@runtime_checkable
class Detector(Protocol):
    """An anomaly detector: no labels, a score per event (higher is more unusual).

    ``score_learn_many`` is its prequential step: each event scored by the detector as it
    was just before that event, then learned (or, for a detector without per-event
    learning, the whole batch scored, then learned). What ``X`` is depends on ``reads``:
    ``"columns"`` the decoded batch itself (``streamfit.batch.Batch``), ``"records"`` one
    dict of fields per event (River's input), ``"matrix"`` the hashed feature matrix.
    """

    task: Literal["anomaly"]
    reads: str

    def score_learn_many(self, X: Any) -> npt.NDArray[np.float64]: ...

    def score_many(self, X: Any) -> npt.NDArray[np.float64]: ...

    def learn_many(self, X: Any) -> None: ...

    def state(self) -> bytes: ...

    @classmethod
    def from_state(cls, blob: bytes) -> Self: ...


@runtime_checkable
class Mergeable(Protocol):
    """A model that can absorb another one of its kind (scale-out across workers)."""

    def merge(self, other: Self) -> None:
        """Fold ``other`` into this model in place (weighted by the events each has seen)."""
        ...


@runtime_checkable
class Prequential(Protocol):
    """A model that tests and trains on each row in turn, in one call."""

    def predict_learn_many(self, X: Any, y: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Per row, in order: predict it with the model as it is, then learn it.

        A classifier returns ``(n, len(classes))`` probabilities with the columns in the order
        of ``classes`` after the call, 0 in a row's columns for the classes not yet seen when
        that row was predicted; a regressor returns ``n`` floats.
        """
        ...


def predict_learn_many(model: Model, X: Features, y: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The prequential predictions of ``model`` on ``(X, y)``, which it then has learned.

    ``model.predict_learn_many`` where the model has it (per-event semantics); otherwise every
    row is predicted by the model as it was before the block, then the block is learned, and
    the probabilities are laid out in the final class order as ``Prequential`` says.

    >>> from streamfit.models import LogisticRegression
    >>> X = sp.csr_matrix(np.eye(3))
    >>> predict_learn_many(LogisticRegression(), X, np.array(["a", "a", "b"])).tolist()
    [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    """
    if isinstance(model, Prequential):
        return model.predict_learn_many(X, y)
    rows: Any = X
    if not isinstance(model, Classifier):
        predictions = np.asarray(model.predict_many(rows), dtype=np.float64)
        model.learn_many(rows, y)
        return predictions
    before = list(model.classes)
    proba = np.asarray(model.predict_proba_many(rows), dtype=np.float64)
    model.learn_many(rows, y)
    after = list(model.classes)
    if after == before:
        return proba
    out = np.zeros((proba.shape[0], len(after)))
    position = {label: i for i, label in enumerate(after)}
    for j, label in enumerate(before):
        out[:, position[label]] = proba[:, j]
    return out


def prequential(
    model: Model, X: Features, y: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], list[object]]:
    """The prequential step: each row predicted by ``model`` as it was just before that row,
    then learned (``predict_learn_many``). Returns what was predicted (a classifier's
    probabilities, a regressor's values) and the classes the probabilities' columns stand
    for (empty for a regressor).

    >>> from streamfit.models import LogisticRegression
    >>> proba, classes = prequential(LogisticRegression(), sp.csr_matrix(np.eye(2)),
    ...                              np.array(["a", "b"]))
    >>> proba.shape, classes
    ((2, 2), ['a', 'b'])
    """
    if isinstance(model, Classifier) and model.task == "classification":
        proba = np.asarray(predict_learn_many(model, X, y), dtype=np.float64)
        return proba, list(model.classes)
    predicted = predict_learn_many(model, X, y.astype(np.float64))
    return np.asarray(predicted, dtype=np.float64), []


def as_csr(X: object) -> sp.csr_matrix:
    """``X`` as CSR (another sparse format is converted); anything else is a ``ModelError``.

    >>> as_csr(sp.coo_matrix(np.eye(2))).format
    'csr'
    """
    if isinstance(X, sp.csr_matrix | sp.csr_array):
        return X
    if sp.issparse(X):
        return sp.csr_matrix(X)
    raise ModelError(f"features must be a scipy.sparse CSR matrix, got {type(X).__name__}")


def check_labels(X: sp.csr_matrix, y: object) -> npt.NDArray[Any]:
    """``y`` as a 1-d array with one label per row of ``X``, or a ``ModelError``."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise ModelError(f"labels must be 1-d with {X.shape[0]} values, got {labels.shape}")
    return labels
