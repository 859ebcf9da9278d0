"""Any River classifier or regressor as a streamfit ``Model``.

River learns one event at a time from dicts, and so does the adapter: ``predict_learn_many``
calls ``predict_proba_one`` (or ``predict_one``) then ``learn_one`` for each row in turn, so
its prequential figures are River's own.

What it learns from (``reads``): by default the runtime gives it records
(``Featurizer.records``): each event's fields whole, under their own names, numbers as they
came (unscaled, zeros kept), categories and text as strings, a missing value left out; that is
what River's estimators and pipelines expect (a River ``StandardScaler``, ``OneHotEncoder`` or
``BagOfWords`` in a spec pipeline does its own part). A naive Bayes estimator gets each string
field as token counts (River's ``BagOfWords``). With ``reads="matrix"`` it gets streamfit's
hashed, standardized features instead, each CSR row as ``{column index: value}`` (its stored
entries only).

Labels: ``classes`` are the labels seen, in order of first appearance. River's binary-only
classifiers (``LogisticRegression``, ``Perceptron``, ...) learn ``bool`` targets, so the
adapter maps the first class seen to ``False`` (or to itself, if it is a bool) and the second
to the other bool; rows with a third class are skipped and counted in ``skipped_rows``. Multi-class
estimators (trees, forests, naive Bayes) get the labels as they are.

State: River estimators have no stable serialized form, so the estimator is pickled inside an
``SFST`` frame (``kind: "pickle"``, see ``streamfit.models.state``) that records the River
version. A blob loads only under the same River major.minor version (``StateFormatError``
otherwise). Load blobs only from a store you trust: unpickling runs code.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from streamfit.errors import ModelError, StateFormatError
from streamfit.models.base import Features, Task, as_csr, most_probable
from streamfit.models.state import check_library, decode_state, encode_state

__all__ = ["RiverDetector", "RiverModel", "csr_rows", "final_step"]

_STATE_NAME = "river"
_DETECTOR_STATE_NAME = "river_anomaly"


def csr_rows(X: sp.csr_matrix) -> list[dict[int, float]]:
    """Each row of ``X`` as ``{column: value}`` over its stored entries.

    >>> csr_rows(sp.csr_matrix(np.array([[0.0, 2.0], [1.0, 0.0]])))
    [{1: 2.0}, {0: 1.0}]
    """
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    indptr = X.indptr.tolist()
    indices = X.indices.tolist()
    data = X.data.tolist()
    return [dict(zip(indices[a:b], data[a:b], strict=True)) for a, b in itertools.pairwise(indptr)]


def final_step(estimator: Any) -> Any:
    """The estimator itself, or the last step of a River pipeline (what it predicts with)."""
    from river import compose

    while isinstance(estimator, compose.Pipeline):
        estimator = list(estimator.steps.values())[-1]
    return estimator


def _as_rows(X: Features) -> Sequence[dict[Any, Any]]:
    """Records as they are; a sparse matrix as ``csr_rows``."""
    if sp.issparse(X):
        return csr_rows(as_csr(X))
    if isinstance(X, Sequence):
        return X
    raise ModelError(f"River models learn from records or a CSR matrix, got {type(X).__name__}")


def _check_labels(rows: Sequence[dict[Any, Any]], y: object) -> npt.NDArray[Any]:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != len(rows):
        raise ModelError(f"labels must be 1-d with {len(rows)} values, got {labels.shape}")
    return labels


def _river() -> Any:
    try:
        import river
        import river.base
    except ImportError as exc:  # pragma: no cover - river is a dependency
        raise ModelError("River models need the 'river' package: pip install river") from exc
    return river


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


class RiverModel:
    """A River classifier or regressor behind the streamfit ``Model`` contract.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from river import linear_model
    >>> model = RiverModel(linear_model.LogisticRegression())
    >>> X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]] * 50))
    >>> model.predict_many(X[:1]).tolist(), model.predict_proba_many(X[:1]).shape
    ([None], (1, 0))
    >>> model.learn_many(X, np.array(["a", "b"] * 50, dtype=object))
    >>> model.classes, model.predict_many(X[:2]).tolist()
    (['a', 'b'], ['a', 'b'])
    >>> RiverModel.from_state(model.state()).predict_many(X[:2]).tolist()
    ['a', 'b']
    """

    def __init__(self, estimator: Any, reads: str = "records") -> None:
        if reads not in ("records", "matrix"):
            raise ModelError(f"reads must be 'records' or 'matrix', got {reads!r}")
        #: what the runtime gives it: the events' fields (``Featurizer.records``) or the matrix
        self.reads = reads
        river = _river()
        final = final_step(estimator)
        if isinstance(final, river.base.Classifier):
            self.task: Task = "classification"
        elif isinstance(final, river.base.Regressor):
            self.task = "regression"
        else:
            raise ModelError(f"{type(estimator).__name__} is not a River classifier or regressor")
        self._estimator = estimator
        # naive Bayes counts: its string fields become token counts (River's BagOfWords)
        self._bag: Any = None
        if reads == "records" and type(estimator).__module__.startswith("river.naive_bayes"):
            from river.feature_extraction import BagOfWords

            self._bag = BagOfWords()
        self._binary_only = self.task == "classification" and not getattr(
            estimator, "_multiclass", True
        )
        self._classes: list[object] = []
        self._index: dict[object, int] = {}
        self._river_labels: list[object] = []  # what River sees for each of our classes
        self._n_seen = 0
        self._skipped = 0

    @property
    def estimator(self) -> Any:
        """The wrapped River estimator."""
        return self._estimator

    @property
    def classes(self) -> list[object]:
        """Labels seen so far, in order of first appearance (= probability columns)."""
        return list(self._classes)

    @property
    def n_seen(self) -> int:
        """Rows learned from."""
        return self._n_seen

    @property
    def skipped_rows(self) -> int:
        """Rows not learned: a third class for a binary-only estimator."""
        return self._skipped

    def learn_many(self, X: Features, y: npt.NDArray[Any]) -> None:
        """``learn_one`` for each row, in order."""
        rows = self._rows(X)
        labels = _check_labels(rows, y)
        try:
            if self.task == "regression":
                learn = self._estimator.learn_one
                for row, target in zip(rows, self._targets(labels).tolist(), strict=True):
                    learn(row, target)
                self._n_seen += len(rows)
                return
            for row, label in zip(rows, labels.tolist(), strict=True):
                self._learn_label(row, label)
        except ModelError:
            raise
        except Exception as exc:
            raise self._failed("learn", exc) from exc

    def predict_learn_many(self, X: Features, y: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per row: ``predict_proba_one`` (or ``predict_one``), then ``learn_one``.

        A classifier's rows come back in the final ``classes`` order, 0 for the classes not yet
        seen at that row (as ``streamfit.models.base.Prequential`` says).
        """
        rows = self._rows(X)
        labels = _check_labels(rows, y)
        estimator = self._estimator
        try:
            if self.task == "regression":
                out = np.empty(len(rows))
                for i, (row, target) in enumerate(
                    zip(rows, self._targets(labels).tolist(), strict=True)
                ):
                    out[i] = estimator.predict_one(row)
                    estimator.learn_one(row, target)
                self._n_seen += len(rows)
                return out
            seen: list[list[float]] = []
            for row, label in zip(rows, labels.tolist(), strict=True):
                seen.append(self._proba_row(row))
                self._learn_label(row, label)
        except ModelError:
            raise
        except Exception as exc:
            raise self._failed("learn", exc) from exc
        out = np.zeros((len(rows), len(self._classes)))
        for i, values in enumerate(seen):
            out[i, : len(values)] = values
        return out

    def _rows(self, X: Features) -> Sequence[dict[Any, Any]]:
        rows = _as_rows(X)
        bag = self._bag
        if bag is None or sp.issparse(X):
            return rows
        out = []
        for row in rows:
            counted: dict[Any, Any] = {}
            for key, value in row.items():
                if isinstance(value, str):
                    for token, count in bag.transform_one(value).items():
                        counted[token] = counted.get(token, 0) + count
                else:
                    counted[key] = value
            out.append(counted)
        return out

    def _learn_label(self, row: dict[Any, Any], label: object) -> None:
        code = self._code(_plain(label))
        if code < 0:
            self._skipped += 1
            return
        self._estimator.learn_one(row, self._river_labels[code])
        self._n_seen += 1

    def _proba_row(self, row: dict[Any, Any]) -> list[float]:
        k = len(self._classes)
        if k <= 1:
            return [1.0] * k
        proba = self._estimator.predict_proba_one(row)
        return [proba.get(key, 0.0) for key in self._river_labels]

    def _targets(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        targets = labels.astype(np.float64)
        if not np.isfinite(targets).all():
            raise ModelError("regression targets contain NaN or infinity")
        return targets

    def _failed(self, what: str, exc: Exception) -> ModelError:
        return ModelError(f"River {type(self._estimator).__name__} failed to {what}: {exc!r}")

    def predict_proba_many(self, X: Features) -> npt.NDArray[np.float64]:
        """``(n, len(classes))`` probabilities, columns in ``classes`` order."""
        rows = self._rows(X)
        self._need_classifier()
        out = np.zeros((len(rows), len(self._classes)))
        for i, row in enumerate(rows):
            out[i] = self._proba_row(row)
        return out

    def predict_many(self, X: Features) -> npt.NDArray[Any]:
        """The most probable class (``None`` before any label), or a float for regressors."""
        rows = self._rows(X)
        if self.task == "regression":
            predict = self._estimator.predict_one
            return np.array([predict(row) for row in rows], dtype=np.float64)
        out = np.empty(len(rows), dtype=object)
        if not self._classes:
            return out
        out[:] = most_probable(self._classes, self.predict_proba_many(rows))
        return out

    def state(self) -> bytes:
        """An ``SFST`` blob with the pickled estimator (tied to the River major.minor)."""
        river = _river()
        kind = type(self._estimator)
        return encode_state(
            _STATE_NAME,
            params={"estimator": f"{kind.__module__}.{kind.__qualname__}", "reads": self.reads},
            classes=self._classes,
            counters={"n_seen": self._n_seen, "skipped_rows": self._skipped},
            payload=pickle.dumps(self._estimator, protocol=5),
            library={"name": "river", "version": river.__version__},
            extra={"river_labels": self._river_labels if self._binary_only else None},
        )

    @classmethod
    def from_state(cls, blob: bytes) -> RiverModel:
        """Rebuild from ``state()``; ``StateFormatError`` on a bad blob or River version."""
        state = decode_state(blob, expect_model=_STATE_NAME)
        check_library(state, "river", _river().__version__)
        try:
            estimator = pickle.loads(state.payload)
        except Exception as exc:
            raise StateFormatError(f"model state: cannot unpickle the estimator: {exc}") from exc
        model = cls(estimator, reads=str(state.params.get("reads", "matrix")))
        model._classes = list(state.classes)
        model._index = {c: i for i, c in enumerate(model._classes)}
        labels = state.extra.get("river_labels")
        model._river_labels = list(labels) if labels is not None else list(model._classes)
        if len(model._river_labels) != len(model._classes):
            raise StateFormatError("model state: river_labels do not match the classes")
        model._n_seen = state.counters.get("n_seen", 0)
        model._skipped = state.counters.get("skipped_rows", 0)
        return model

    def _code(self, label: object) -> int:
        code = self._index.get(label)
        if code is not None:
            return code
        if label is None or (isinstance(label, float) and not np.isfinite(label)):
            raise ModelError(f"a class label cannot be {label!r} (missing labels are not learned)")
        if self._binary_only:
            if len(self._classes) >= 2:
                return -1
            if self._classes:
                river_label: object = not self._river_labels[0]
            else:
                river_label = label if isinstance(label, bool) else False
        else:
            river_label = label
        self._index[label] = len(self._classes)
        self._classes.append(label)
        self._river_labels.append(river_label)
        return len(self._classes) - 1

    def _need_classifier(self) -> None:
        if self.task != "classification":
            raise ModelError(f"{type(self._estimator).__name__} is a regressor: no probabilities")


def is_river_detector(estimator: Any) -> bool:
    """Whether ``estimator`` (or a pipeline's last step) is a River anomaly detector."""
    from river.base import AnomalyDetector

    return isinstance(final_step(estimator), AnomalyDetector)


class RiverDetector:
    """A River anomaly detector behind streamfit's ``Detector`` contract.

    Each event is scored (``score_one``) then learned (``learn_one``), one at a time, so its
    prequential scores are River's own. By default it reads each event's fields whole
    (``Featurizer.records``: numbers unscaled, strings as they are, a missing value left
    out), as River expects. Half-Space Trees assume every feature in [0, 1]: put a River
    ``preprocessing.MinMaxScaler`` before it (a ``compose.Pipeline``), and give it numeric
    fields only (``features.include``), as ``streamfit demo shuttle`` does. The state frames
    a pickle of the estimator tied to the River version, as ``RiverModel``'s does.

    >>> from river import anomaly, compose, preprocessing
    >>> detector = RiverDetector(
    ...     compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=1)))
    >>> rows = [{"x": float(i % 10)} for i in range(300)] + [{"x": 50.0}]
    >>> scores = detector.score_learn_many(rows)
    >>> bool(scores[-1] > scores[100:300].mean()), detector.n_seen
    (True, 301)
    >>> type(RiverDetector.from_state(detector.state()).estimator).__name__
    'Pipeline'
    """

    task: Literal["anomaly"] = "anomaly"

    def __init__(self, estimator: Any, reads: str = "records") -> None:
        if reads not in ("records", "matrix"):
            raise ModelError(f"reads must be 'records' or 'matrix', got {reads!r}")
        _river()
        if not is_river_detector(estimator):
            raise ModelError(f"{type(estimator).__name__} is not a River anomaly detector")
        self.reads = reads
        self._estimator = estimator
        self._n_seen = 0

    @property
    def estimator(self) -> Any:
        return self._estimator

    @property
    def n_seen(self) -> int:
        return self._n_seen

    def score_learn_many(self, X: Features) -> npt.NDArray[np.float64]:
        """Per row: ``score_one``, then ``learn_one``."""
        rows = _as_rows(X)
        out = np.empty(len(rows))
        score, learn = self._estimator.score_one, self._estimator.learn_one
        try:
            for i, row in enumerate(rows):
                out[i] = score(row)
                learn(row)
        except Exception as exc:
            raise ModelError(
                f"River {type(self._estimator).__name__} failed to score or learn: {exc!r}"
            ) from exc
        self._n_seen += len(rows)
        return out

    def score_many(self, X: Features) -> npt.NDArray[np.float64]:
        rows = _as_rows(X)
        score = self._estimator.score_one
        try:
            return np.array([score(row) for row in rows], dtype=np.float64)
        except Exception as exc:
            raise ModelError(
                f"River {type(self._estimator).__name__} failed to score: {exc!r}"
            ) from exc

    def learn_many(self, X: Features) -> None:
        rows = _as_rows(X)
        learn = self._estimator.learn_one
        try:
            for row in rows:
                learn(row)
        except Exception as exc:
            raise ModelError(
                f"River {type(self._estimator).__name__} failed to learn: {exc!r}"
            ) from exc
        self._n_seen += len(rows)

    def state(self) -> bytes:
        river = _river()
        kind = type(self._estimator)
        return encode_state(
            _DETECTOR_STATE_NAME,
            params={"estimator": f"{kind.__module__}.{kind.__qualname__}", "reads": self.reads},
            counters={"n_seen": self._n_seen},
            payload=pickle.dumps(self._estimator, protocol=5),
            library={"name": "river", "version": river.__version__},
        )

    @classmethod
    def from_state(cls, blob: bytes) -> RiverDetector:
        state = decode_state(blob, expect_model=_DETECTOR_STATE_NAME)
        check_library(state, "river", _river().__version__)
        try:
            estimator = pickle.loads(state.payload)
        except Exception as exc:
            raise StateFormatError(f"model state: cannot unpickle the estimator: {exc}") from exc
        try:
            detector = cls(estimator, reads=str(state.params.get("reads", "records")))
        except ModelError as exc:
            raise StateFormatError(f"model state: {exc}") from exc
        detector._n_seen = int(state.counters.get("n_seen", 0))
        return detector
