"""Any scikit-learn estimator with ``partial_fit`` as a streamfit ``Model``.

The CSR batch goes to ``partial_fit`` / ``predict_proba`` as it is (the estimator must accept
sparse input, as the SGD models and ``MLPClassifier`` do). The naive Bayes models of counts
(``MultinomialNB``, ``ComplementNB``, ``BernoulliNB``) read the events' fields instead
(``reads = "records"``) and get them as counts (``count_matrix``): the words of each text or
category, numbers as they are (they must not be negative).

``partial_fit`` learns a batch at a time, so these models keep block semantics: the runtime
predicts a whole block, then learns it (``streamfit.models.base.predict_learn_many``).

Classes, and the limitation of ``partial_fit``
---------------------------------------------
A scikit-learn classifier must be told every class on its first ``partial_fit`` and cannot add
one later. The adapter therefore:

* takes the class list from ``classes=`` when given (declare it whenever you know it);
* otherwise holds rows back (at most ``buffer_rows``, oldest dropped first) until it has seen
  two distinct labels, then fixes the class list to the labels seen so far, in order of first
  appearance, and learns from the held rows and the current batch together;
* from then on skips rows whose label is not in the list, and counts them in
  ``skipped_rows`` (no warning per row; the runtime reports the counter). Rebuilding the
  estimator with a longer class list would throw away everything learned, so it does not.

The estimator learns integer codes (the position in ``classes``), so any hashable label works
and its Python type is kept. Before any label, ``predict_many`` gives ``None`` and
``predict_proba_many`` an ``(n, 0)`` matrix; while only one class is known, that class with
probability 1 (declared classes, nothing learned yet: uniform). Probabilities come from
``predict_proba`` when the estimator has it, else from ``decision_function`` through a sigmoid
(binary) or a softmax (multiclass). Regressors predict 0.0 before their first
``partial_fit``.

State: the estimator (and any held rows) is pickled inside an ``SFST`` frame (``kind:
"pickle"``) that records the scikit-learn version; it loads only under the same major.minor
(``StateFormatError`` otherwise). Load blobs only from a store you trust.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit, softmax

from streamfit.errors import ModelError, StateFormatError
from streamfit.models.base import Task, as_csr, check_labels, most_probable
from streamfit.models.state import check_library, decode_state, encode_state

__all__ = ["SklearnModel", "count_matrix"]

_STATE_NAME = "sklearn"
#: scikit-learn estimators that model counts: they read records, as token counts
_COUNT_MODELS = frozenset({"MultinomialNB", "ComplementNB", "BernoulliNB"})
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
COUNT_FEATURES = 2**18


def count_matrix(records: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
    """Records as counts, hashed (scikit-learn's ``FeatureHasher``, no alternating signs)
    into ``COUNT_FEATURES`` columns: each string field's words (lowercased, two letters or
    more) counted under ``field:word``, each number under its field name as it is.

    >>> X = count_matrix([{"text": "Win win cash", "n": 2.0}])
    >>> sorted(X.data.tolist())
    [1.0, 2.0, 2.0]
    """
    from sklearn.feature_extraction import FeatureHasher

    rows: list[dict[str, float]] = []
    for record in records:
        row: dict[str, float] = {}
        for key, value in record.items():
            if isinstance(value, str):
                for word in _TOKEN.findall(value.lower()):
                    name = f"{key}:{word}"
                    row[name] = row.get(name, 0.0) + 1.0
            else:
                row[key] = float(value)
        rows.append(row)
    hasher = FeatureHasher(COUNT_FEATURES, input_type="dict", alternate_sign=False)
    return sp.csr_matrix(hasher.transform(rows))


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


class SklearnModel:
    """A scikit-learn ``partial_fit`` estimator behind the streamfit ``Model`` contract.

    Parameters
    ----------
    estimator
        An unfitted classifier or regressor with ``partial_fit``.
    classes
        Every class the stream can carry (classifiers only); ``None`` discovers them from the
        first labels (see the module doc for what happens to later, unseen ones).
    buffer_rows
        At most this many rows are held back while fewer than two classes are known.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sklearn.linear_model import SGDClassifier
    >>> model = SklearnModel(SGDClassifier(loss="log_loss", random_state=0))
    >>> X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]] * 20))
    >>> model.learn_many(X[:1], np.array(["a"], dtype=object))  # held: one class only
    >>> model.predict_many(X[:1]).tolist()
    ['a']
    >>> model.learn_many(X, np.array(["a", "b"] * 20, dtype=object))
    >>> model.classes, model.predict_many(X[:2]).tolist()
    (['a', 'b'], ['a', 'b'])
    >>> model.learn_many(X[:1], np.array(["c"], dtype=object))  # fixed classes: skipped
    >>> model.skipped_rows
    1
    """

    def __init__(
        self,
        estimator: Any,
        classes: Sequence[object] | None = None,
        buffer_rows: int = 10_000,
    ) -> None:
        from sklearn.base import is_classifier, is_regressor

        if not hasattr(estimator, "partial_fit"):
            raise ModelError(
                f"{type(estimator).__name__} has no partial_fit: it cannot learn online"
            )
        if is_classifier(estimator):
            self.task: Task = "classification"
        elif is_regressor(estimator):
            self.task = "regression"
        else:
            raise ModelError(f"{type(estimator).__name__} is not a classifier or a regressor")
        if isinstance(buffer_rows, bool) or not isinstance(buffer_rows, int) or buffer_rows < 0:
            raise ModelError(f"buffer_rows must be an integer >= 0, got {buffer_rows!r}")
        self._estimator = estimator
        #: naive Bayes learns from token counts: the runtime gives it the events' fields
        #: (records), hashed here into counts; other estimators get streamfit's matrix
        self.reads = "records" if type(estimator).__name__ in _COUNT_MODELS else "matrix"
        self._buffer_rows = buffer_rows
        self._classes: list[object] = []
        self._index: dict[object, int] = {}
        self._frozen = False
        self._declared = classes is not None
        if classes is not None:
            if self.task != "classification":
                raise ModelError("classes= is for classifiers only")
            for label in classes:
                self._add(_plain(label))
            if len(self._classes) < 2:
                raise ModelError(f"classes= needs at least two distinct labels, got {classes!r}")
            self._frozen = True
        self._fitted = False
        self._held_X: sp.csr_matrix | None = None
        self._held_y: npt.NDArray[np.intp] | None = None
        self._n_seen = 0
        self._skipped = 0

    @property
    def estimator(self) -> Any:
        """The wrapped scikit-learn estimator."""
        return self._estimator

    @property
    def classes(self) -> list[object]:
        """Known labels, in the column order of ``predict_proba_many``."""
        return list(self._classes)

    @property
    def n_seen(self) -> int:
        """Rows learned from (held rows count once they are learned)."""
        return self._n_seen

    @property
    def skipped_rows(self) -> int:
        """Rows not learned: an unknown class after the list was fixed, or a full buffer."""
        return self._skipped

    def learn_many(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        """``partial_fit`` on the batch (classes handled as in the module doc)."""
        X = self._matrix(X)
        target = check_labels(X, y)
        if X.shape[0] == 0:
            return
        if self.task == "regression":
            values = target.astype(np.float64)
            if not np.isfinite(values).all():
                raise ModelError("regression targets contain NaN or infinity")
            self._partial_fit(X, values)
            return
        codes = self._encode(target)
        known = codes >= 0
        if not known.all():
            self._skipped += int((~known).sum())
            X, codes = X[known], codes[known]
        if not self._frozen:
            self._hold(X, codes)
            if len(self._classes) < 2:
                return
            self._frozen = True
            assert self._held_X is not None and self._held_y is not None
            X, codes = self._held_X, self._held_y
            self._held_X = self._held_y = None
        if X.shape[0]:
            self._partial_fit(X, codes)

    def predict_proba_many(self, X: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """``(n, len(classes))`` probabilities, columns in ``classes`` order."""
        X = self._matrix(X)
        if self.task != "classification":
            raise ModelError(f"{type(self._estimator).__name__} is a regressor: no probabilities")
        k = len(self._classes)
        if not self._fitted or k <= 1 or X.shape[0] == 0:  # nothing learned: uniform
            return np.full((X.shape[0], k), 1.0 / max(k, 1))
        est = self._estimator
        try:
            if hasattr(est, "predict_proba"):
                raw = np.asarray(est.predict_proba(X), dtype=np.float64)
            else:
                scores = np.asarray(est.decision_function(X), dtype=np.float64)
                if scores.ndim == 1:
                    p = expit(scores)
                    raw = np.column_stack([1.0 - p, p])
                else:
                    raw = softmax(scores, axis=1)
        except Exception as exc:
            raise ModelError(f"{type(est).__name__} failed to predict: {exc!r}") from exc
        out = np.zeros((X.shape[0], k))
        out[:, np.asarray(est.classes_, dtype=np.intp)] = raw
        return out

    def predict_many(self, X: sp.csr_matrix) -> npt.NDArray[Any]:
        """The most probable class (``None`` before any label), or a float for regressors."""
        X = self._matrix(X)
        if self.task == "regression":
            if not self._fitted or X.shape[0] == 0:
                return np.zeros(X.shape[0])
            try:
                return np.asarray(self._estimator.predict(X), dtype=np.float64)
            except Exception as exc:
                name = type(self._estimator).__name__
                raise ModelError(f"{name} failed to predict: {exc!r}") from exc
        out = np.empty(X.shape[0], dtype=object)
        if not self._classes:
            return out
        if not self._fitted:  # only one class known (or classes declared, nothing learned)
            out[:] = [self._classes[0]] * X.shape[0]
            return out
        out[:] = most_probable(self._classes, self.predict_proba_many(X))
        return out

    def state(self) -> bytes:
        """An ``SFST`` blob with the pickled estimator (tied to the scikit-learn major.minor)."""
        kind = type(self._estimator)
        payload = pickle.dumps((self._estimator, self._held_X, self._held_y), protocol=5)
        return encode_state(
            _STATE_NAME,
            params={
                "estimator": f"{kind.__module__}.{kind.__qualname__}",
                "buffer_rows": self._buffer_rows,
            },
            classes=self._classes,
            counters={"n_seen": self._n_seen, "skipped_rows": self._skipped},
            payload=payload,
            library={"name": "scikit-learn", "version": _sklearn_version()},
            extra={"frozen": self._frozen, "fitted": self._fitted, "declared": self._declared},
        )

    @classmethod
    def from_state(cls, blob: bytes) -> SklearnModel:
        """Rebuild from ``state()``; ``StateFormatError`` on a bad blob or library version."""
        state = decode_state(blob, expect_model=_STATE_NAME)
        check_library(state, "scikit-learn", _sklearn_version())
        try:
            estimator, held_X, held_y = pickle.loads(state.payload)
        except Exception as exc:
            raise StateFormatError(f"model state: cannot unpickle the estimator: {exc}") from exc
        model = cls(estimator, buffer_rows=int(state.params.get("buffer_rows", 10_000)))
        for label in state.classes:
            model._add(label)
        model._frozen = bool(state.extra.get("frozen"))
        model._fitted = bool(state.extra.get("fitted"))
        model._declared = bool(state.extra.get("declared"))
        model._held_X, model._held_y = held_X, held_y
        model._n_seen = state.counters.get("n_seen", 0)
        model._skipped = state.counters.get("skipped_rows", 0)
        return model

    # -- internals ---------------------------------------------------------------------------

    def _matrix(self, X: Any) -> sp.csr_matrix:
        """``X`` as CSR; records become counts (``count_matrix``)."""
        if sp.issparse(X) or not isinstance(X, Sequence):
            return as_csr(X)
        return count_matrix(X)

    def _add(self, label: object) -> None:
        if label is None or (isinstance(label, float) and not np.isfinite(label)):
            raise ModelError(f"a class label cannot be {label!r} (missing labels are not learned)")
        if label not in self._index:
            self._index[label] = len(self._classes)
            self._classes.append(label)

    def _encode(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        """Class code per row; -1 for a label outside a fixed class list."""
        codes = np.empty(labels.shape[0], dtype=np.intp)
        index = self._index
        for i, value in enumerate(labels.tolist()):
            code = index.get(value)
            if code is None:
                if self._frozen:
                    code = -1
                else:
                    self._add(value)
                    code = index[value]
            codes[i] = code
        return codes

    def _hold(self, X: sp.csr_matrix, codes: npt.NDArray[np.intp]) -> None:
        if self._held_X is not None and self._held_y is not None:
            X = sp.vstack([self._held_X, X], format="csr")
            codes = np.concatenate([self._held_y, codes])
        extra = X.shape[0] - self._buffer_rows
        if extra > 0 and len(self._classes) < 2:
            self._skipped += extra
            X, codes = X[extra:], codes[extra:]
        self._held_X, self._held_y = sp.csr_matrix(X), codes

    def _partial_fit(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        est = self._estimator
        try:
            if self.task == "classification" and not self._fitted:
                est.partial_fit(X, y, classes=np.arange(len(self._classes)))
            else:
                est.partial_fit(X, y)
        except Exception as exc:
            raise ModelError(f"{type(est).__name__} failed to learn: {exc!r}") from exc
        self._fitted = True
        self._n_seen += X.shape[0]
