"""The ``Model`` contract: River-style ``*_many`` methods over a feature matrix.

Features arrive as a ``scipy.sparse.csr_matrix`` of shape ``(n_rows, n_features)`` built by
``streamfit.features``: scaled numeric columns and hashed categorical / text columns share one
index space. Labels are a 1-d numpy array: any hashable values for classifiers (str, int,
bool), ``float64`` for regressors.

Classifiers expose ``classes`` (the labels seen so far, in the column order of
``predict_proba_many``). Before any label is seen, ``predict_many`` returns ``None`` values and
``predict_proba_many`` an empty ``(n, 0)`` array.

``state()`` returns bytes in a versioned, documented format (not pickle, for the built-in
learners); ``from_state`` rebuilds an equal model from them.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["Classifier", "Model", "Task"]

Task = Literal["classification", "regression"]


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


@runtime_checkable
class Classifier(Model, Protocol):
    """A model that also gives class probabilities."""

    @property
    def classes(self) -> list[object]: ...

    def predict_proba_many(self, X: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """``(n_rows, len(classes))`` probabilities, columns in ``classes`` order."""
        ...
