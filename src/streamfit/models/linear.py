"""Built-in linear learners: logistic regression (binary and softmax) and linear regression.

Both learn online over sparse rows (``scipy.sparse`` CSR, hashed feature space) with AdaGrad
per-coordinate learning rates, one event at a time, as River does: ``predict_learn_many``
predicts each row with the model as it was just before that row and learns the row right after,
in a compiled loop over the CSR rows (``streamfit.models._kernels``, numba). ``learn_many`` is
the same loop without the predictions, so it equals a loop of one-row ``learn_many`` calls bit
for bit, whatever the batch size.

For an event with residual ``r`` (prediction - target: ``sigmoid(z) - y``,
``softmax(z) - onehot(y)`` or ``z - y``), each coordinate ``j`` it touches with value ``x``
takes the AdaGrad step ``g = r x + l2 w_j; G_j += g**2; w_j -= learning_rate * g / sqrt(G_j)``;
the intercept takes the same step with ``intercept_lr``. The intercept gets its own, higher
rate: it sees every event, so with the weights' rate its step would shrink fastest of all while
it has to follow the drifting base rate of each class. How the default rates were chosen (on
the shared streams, not per stream) is in ``bench/README.md``.

Classes
-------
A classifier discovers its classes online, in order of first appearance (``classes``; the
columns of ``predict_proba_many``). Labels that compare equal (``1`` and ``True``) are one
class. Before any label it predicts ``None`` with an empty ``(n, 0)`` probability matrix; with
one class seen, that class with probability 1. Two classes use one weight column and a
sigmoid; when a third class appears the same object turns into a softmax model: the binary
weights ``w`` become the columns ``[-w/2, w/2]`` (the same probabilities) and each new class
gets a zero column. In ``predict_learn_many`` a row is predicted with the classes known before
it: columns of classes that appear later in the batch are 0 in its row.

Determinism: the same rows in the same order give the same model, bit for bit, however they
are cut into batches.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit

from streamfit.errors import ModelError, StateFormatError
from streamfit.models._kernels import linear_prequential, softmax_prequential, target_scaling
from streamfit.models.base import Task, as_csr, check_labels, most_probable
from streamfit.models.state import decode_state, encode_state

__all__ = ["LinearRegression", "LogisticRegression"]

_EPS = 1e-8
#: parameters of earlier releases that a state blob may still name (ignored when read)
_RETIRED_PARAMS = frozenset({"micro_batch"})
FloatArray = npt.NDArray[np.float64]


def _check_float(name: str, value: object, *, low: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < low or (strict and number == low):
        op = ">" if strict else ">="
        raise ModelError(f"{name} must be {op} {low}, got {value!r}")
    return number


def _check_int(name: str, value: object, *, low: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ModelError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class _AdaGradLinear:
    """Weights, AdaGrad accumulators and the vectorized update shared by both learners."""

    task: Task
    _state_name: ClassVar[str]

    def __init__(
        self,
        learning_rate: float,
        intercept_lr: float,
        l2: float,
        n_features: int | None,
    ) -> None:
        self.learning_rate = _check_float("learning_rate", learning_rate, low=0.0, strict=True)
        self.intercept_lr = _check_float("intercept_lr", intercept_lr, low=0.0, strict=False)
        self.l2 = _check_float("l2", l2, low=0.0, strict=False)
        self.n_features = _check_int("n_features", n_features, low=1, allow_none=True)
        self._n_seen = 0
        self._W: FloatArray = np.zeros((0, 1))  # (n_features, n_cols)
        self._G: FloatArray = np.zeros((0, 1))
        self._b: FloatArray = np.zeros(1)
        self._Gb: FloatArray = np.zeros(1)
        if self.n_features is not None:
            self._allocate(self.n_features)

    # -- public ------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """The constructor arguments (the whole configuration)."""
        return {
            "learning_rate": self.learning_rate,
            "intercept_lr": self.intercept_lr,
            "l2": self.l2,
            "n_features": self.n_features,
        }

    @property
    def n_seen(self) -> int:
        """How many labeled events the model has learned from."""
        return self._n_seen

    @property
    def weights(self) -> FloatArray:
        """A copy of the weights, ``(n_features, n_columns)`` (0 rows before any data)."""
        return self._W.copy()

    @property
    def intercept(self) -> FloatArray:
        """A copy of the intercepts, one per weight column."""
        return self._b.copy()

    def state(self) -> bytes:
        """The model as an ``SFST`` blob (see ``streamfit.models.state``).

        Only the rows of the weight matrix that are not all zero are stored (``index``), so a
        hashed space of 2**18 columns of which a few thousand are used stays small.
        """
        nonzero = np.zeros(self._W.shape[0], dtype=bool)
        for array in (self._W, self._G):
            nonzero |= (array.view(np.uint64) != 0).any(axis=1)
        index = np.flatnonzero(nonzero).astype(np.int64)
        return encode_state(
            self._state_name,
            params=self.params,
            classes=self._state_classes(),
            counters={"n_seen": self._n_seen, "n_rows": int(self._W.shape[0])},
            arrays={
                "index": index,
                "W": self._W[index],
                "G": self._G[index],
                "b": self._b,
                "Gb": self._Gb,
                **self._extra_arrays(),
            },
        )

    @classmethod
    def from_state(cls, blob: bytes) -> Self:
        """Rebuild a model from ``state()``; raises ``StateFormatError`` on a bad blob."""
        state = decode_state(blob, expect_model=cls._state_name)
        params = {k: v for k, v in state.params.items() if k not in _RETIRED_PARAMS}
        try:
            model = cls(**params)
        except (TypeError, ModelError) as exc:
            raise StateFormatError(f"model state: bad params {state.params!r}: {exc}") from exc
        try:
            n_rows = state.counters["n_rows"]
            index, W, G = state.arrays["index"], state.arrays["W"], state.arrays["G"]
            b, Gb = state.arrays["b"], state.arrays["Gb"]
            n_cols = b.shape[0]
            model._allocate(n_rows, n_cols)
            model._W[index] = W
            model._G[index] = G
            model._b[:] = b
            model._Gb[:] = Gb
            model._n_seen = state.counters["n_seen"]
        except (KeyError, IndexError, ValueError, ModelError) as exc:
            raise StateFormatError(f"model state: arrays do not fit the model: {exc}") from exc
        model._restore_classes(state.classes)
        model._restore_extra(state.arrays)
        return model

    def merge(self, other: Self) -> None:
        """Fold ``other`` into this model, as if both had learned from disjoint event sets.

        Weights and intercepts become the average of the two, weighted by ``n_seen``; the
        AdaGrad accumulators (sums of squared gradients) and ``n_seen`` are added. Classifier
        columns are matched by class label; a class one side never saw contributes a zero
        column from that side. Both models must share ``n_features``.
        """
        if type(other) is not type(self):
            raise ModelError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if other._n_seen == 0:
            return
        if self._W.shape[0] and other._W.shape[0] and self._W.shape[0] != other._W.shape[0]:
            raise ModelError(
                f"cannot merge models over {self._W.shape[0]} and {other._W.shape[0]} features"
            )
        W2, G2, b2, Gb2 = self._aligned(other)
        if self._W.shape[0] == 0:
            self._allocate(W2.shape[0], W2.shape[1])
        n1, n2 = self._n_seen, other._n_seen
        a1, a2 = n1 / (n1 + n2), n2 / (n1 + n2)
        self._W = a1 * self._W + a2 * W2
        self._b = a1 * self._b + a2 * b2
        self._G = self._G + G2
        self._Gb = self._Gb + Gb2
        self._n_seen = n1 + n2

    # -- hooks for subclasses ----------------------------------------------------------------

    def _state_classes(self) -> list[object]:
        return []

    def _restore_classes(self, classes: list[object]) -> None:
        return None

    def _extra_arrays(self) -> dict[str, FloatArray]:
        return {}

    def _restore_extra(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        return None

    def _aligned(self, other: Self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        return other._W, other._G, other._b, other._Gb

    # -- machinery ---------------------------------------------------------------------------

    def _allocate(self, n_rows: int, n_cols: int = 1) -> None:
        if self.n_features is not None and n_rows != self.n_features:
            raise ModelError(f"state has {n_rows} features, params say {self.n_features}")
        self._W = np.zeros((n_rows, n_cols))
        self._G = np.zeros((n_rows, n_cols))
        self._b = np.zeros(n_cols)
        self._Gb = np.zeros(n_cols)

    def _check_X(self, X: object) -> sp.csr_matrix:
        Xc = as_csr(X)
        n = Xc.shape[1]
        width = self.n_features if self.n_features is not None else self._W.shape[0] or None
        if width is not None and n != width:
            raise ModelError(f"features have {n} columns, the model was built for {width}")
        return Xc

    def _check_finite(self, X: sp.csr_matrix) -> None:
        if not np.isfinite(X.data).all():
            raise ModelError("features contain NaN or infinity (missing values must be 0)")

    def _scores(self, X: sp.csr_matrix) -> FloatArray:
        if self._W.shape[0] == 0:
            return np.zeros((X.shape[0], self._W.shape[1]))
        Z: FloatArray = np.asarray(X @ self._W) + self._b
        return Z

    def _run(
        self, X: sp.csr_matrix, target: npt.NDArray[Any], out: FloatArray, logistic: bool
    ) -> None:
        """The compiled predict-then-learn loop over ``X``'s rows, in place (see the module doc).

        ``target``: floats for one weight column (0/1 for a sigmoid), class positions for a
        softmax; ``out``: one prediction (or one row of probabilities) per row.
        """
        if self._W.shape[0] == 0:
            self._allocate(X.shape[1], self._W.shape[1])
        lr, blr, l2 = self.learning_rate, self.intercept_lr, self.l2
        data = np.asarray(X.data, dtype=np.float64)
        args = (X.indptr, X.indices, data, target, self._W, self._G, self._b, self._Gb)
        if self._W.shape[1] == 1:
            linear_prequential(*args, lr, blr, l2, logistic, out)
        else:
            softmax_prequential(*args, lr, blr, l2, out)


class LogisticRegression(_AdaGradLinear):
    """Online logistic regression: sigmoid for two classes, softmax from the third on.

    Parameters
    ----------
    learning_rate
        AdaGrad base rate for the weights.
    intercept_lr
        AdaGrad base rate for the intercepts (0 = no intercept). Higher than the weights'
        rate by default: the intercept sees every event, so its AdaGrad rate decays fastest,
        yet it has to follow the base rate of each class as the stream drifts.
    l2
        L2 penalty per event on the weights the event touches.
    n_features
        Width of the feature space; ``None`` takes it from the first batch.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]] * 50))
    >>> y = np.array(["spam", "ham"] * 50, dtype=object)
    >>> model = LogisticRegression()
    >>> model.predict_many(X[:1]).tolist(), model.predict_proba_many(X[:1]).shape
    ([None], (1, 0))
    >>> for _ in range(5):
    ...     model.learn_many(X, y)
    >>> model.classes, model.predict_many(X[:2]).tolist()
    (['spam', 'ham'], ['spam', 'ham'])
    >>> model.learn_many(sp.csr_matrix(np.array([[1.0, 1.0]])), np.array(["eggs"], dtype=object))
    >>> model.classes, model.predict_proba_many(X[:1]).shape
    (['spam', 'ham', 'eggs'], (1, 3))
    >>> LogisticRegression.from_state(model.state()).state() == model.state()
    True
    """

    task: Task = "classification"
    _state_name = "builtin.LogisticRegression"

    def __init__(
        self,
        learning_rate: float = 0.5,
        intercept_lr: float = 0.3,
        l2: float = 0.0,
        n_features: int | None = None,
    ) -> None:
        super().__init__(learning_rate, intercept_lr, l2, n_features)
        self._classes: list[object] = []
        self._index: dict[object, int] = {}

    @property
    def classes(self) -> list[object]:
        """Labels seen so far, in order of first appearance (= probability columns)."""
        return list(self._classes)

    @property
    def multiclass(self) -> bool:
        """Whether the model is in softmax form (three classes or more)."""
        return bool(self._W.shape[1] > 1)

    def learn_many(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        """Learn from labeled rows, one after the other; new labels become new classes."""
        self.predict_learn_many(X, y)

    def predict_learn_many(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> FloatArray:
        """Per row, in order: the probabilities before learning it, then learn it.

        Returns ``(n, len(classes))`` with the columns in the order of ``classes`` after the
        call; a row's columns for classes not yet seen at that row are 0 (all of them before
        the first label).
        """
        X = self._check_X(X)
        labels = check_labels(X, y)
        n = X.shape[0]
        if n == 0:
            return np.zeros((0, len(self._classes)))
        self._check_finite(X)
        before = len(self._classes)
        codes = self._encode(labels)
        known = np.empty(n, dtype=np.intp)  # classes known when each row is predicted
        known[0] = before
        if n > 1:
            known[1:] = np.maximum(np.maximum.accumulate(codes[:-1]) + 1, before)
        proba = np.zeros((n, len(self._classes)))
        # a row bringing a third (or later) class is predicted with the classes before it,
        # then the model grows a column and learns it
        growing = np.flatnonzero((codes == known) & (known >= 2)).tolist()
        start = 0
        for stop in [*growing, n]:
            if stop > start:
                self._run_rows(X, codes, known, proba, start, stop)
            if stop < n:
                row = _rows(X, stop, stop + 1)
                proba[stop, : known[stop]] = self._proba(row, known[stop])[0]
                self._to_softmax(known[stop] + 1)
                self._run(row, codes[stop : stop + 1], np.empty((1, known[stop] + 1)), True)
            start = stop + 1
        self._n_seen += n
        return proba

    def _run_rows(
        self,
        X: sp.csr_matrix,
        codes: npt.NDArray[np.intp],
        known: npt.NDArray[np.intp],
        proba: FloatArray,
        start: int,
        stop: int,
    ) -> None:
        """Predict and learn rows ``start:stop`` in the model's present form."""
        rows = _rows(X, start, stop)
        if self._W.shape[1] > 1:
            k = self._W.shape[1]
            out = np.empty((stop - start, k))
            self._run(rows, codes[start:stop], out, True)
            proba[start:stop, :k] = out
            return
        p = np.empty(stop - start)
        self._run(rows, (codes[start:stop] == 1).astype(np.float64), p, True)
        seen = known[start:stop]
        part = proba[start:stop]
        two = seen >= 2
        if two.any():
            part[two, 0] = 1.0 - p[two]
            part[two, 1] = p[two]
        part[seen == 1, 0] = 1.0

    def predict_proba_many(self, X: sp.csr_matrix) -> FloatArray:
        """``(n, len(classes))`` probabilities, columns in ``classes`` order."""
        X = self._check_X(X)
        return self._proba(X, len(self._classes))

    def _proba(self, X: sp.csr_matrix, k: int) -> FloatArray:
        """Probabilities of the first ``k`` classes, from the weights as they stand."""
        n = X.shape[0]
        if k <= 1:
            return np.ones((n, k))
        Z = self._scores(X)
        if k == 2:
            p = expit(Z[:, 0])
            return np.column_stack([1.0 - p, p])
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        P: FloatArray = E / E.sum(axis=1, keepdims=True)
        return P

    def predict_many(self, X: sp.csr_matrix) -> npt.NDArray[np.object_]:
        """The most probable class per row (``None`` before any label)."""
        X = self._check_X(X)
        out = np.empty(X.shape[0], dtype=object)
        if not self._classes:
            return out
        out[:] = most_probable(self._classes, self.predict_proba_many(X))
        return out

    # -- classes -----------------------------------------------------------------------------

    def _encode(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        """Class index per row, adding new classes (and weight columns) in row order."""
        if labels.dtype != object:  # bool, int, float or str arrays: a native-dtype unique
            uniq, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
            values = [_plain(v) for v in uniq.tolist()]
            fresh = [values[i] for i in np.argsort(first, kind="stable").tolist()]
            fresh = [v for v in fresh if v not in self._index]
            for value in fresh:
                _check_label(value)
            for value in fresh:
                self._register(value)
            lookup = np.array([self._index[v] for v in values], dtype=np.intp)
            codes: npt.NDArray[np.intp] = lookup[inverse.reshape(-1)]
            return codes
        index = self._index
        values = labels.tolist()
        try:  # the usual case: every label is a known class
            return np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
        except (KeyError, TypeError):  # TypeError: an unhashable label, reported below
            pass
        new: dict[object, int] = {}  # added only once every label of the batch is valid
        out = np.empty(labels.shape[0], dtype=np.intp)
        for i, value in enumerate(values):
            code = index.get(value)
            if code is None:
                code = new.get(value)
                if code is None:
                    _check_label(value)
                    code = new[value] = len(self._classes) + len(new)
            out[i] = code
        for value in new:
            self._register(_plain(value))
        return out

    def _register(self, label: object) -> None:
        """A new class (the weights grow when it is first learned, see ``_to_softmax``)."""
        _check_label(label)
        self._index[label] = len(self._classes)
        self._classes.append(label)

    def _add_class(self, label: object) -> None:
        self._register(label)
        if len(self._classes) >= 3:
            self._to_softmax(len(self._classes))

    def _to_softmax(self, k: int) -> None:
        """Grow to ``k`` softmax columns (from one sigmoid column, or fewer softmax columns)."""
        n_cols = self._W.shape[1]
        if n_cols == k:
            return
        if n_cols == 1:  # sigmoid w == softmax [-w/2, w/2]; accumulators carry over
            self._W = np.hstack([-self._W / 2, self._W / 2])
            self._G = np.hstack([self._G, self._G])
            self._b = np.concatenate([-self._b / 2, self._b / 2])
            self._Gb = np.concatenate([self._Gb, self._Gb])
            n_cols = 2
        extra = k - n_cols
        rows = self._W.shape[0]
        self._W = np.hstack([self._W, np.zeros((rows, extra))])
        self._G = np.hstack([self._G, np.zeros((rows, extra))])
        self._b = np.concatenate([self._b, np.zeros(extra)])
        self._Gb = np.concatenate([self._Gb, np.zeros(extra)])

    def _state_classes(self) -> list[object]:
        return list(self._classes)

    def _restore_classes(self, classes: list[object]) -> None:
        self._classes = list(classes)
        self._index = {c: i for i, c in enumerate(classes)}
        expected = len(classes) if len(classes) >= 3 else 1
        if self._W.shape[1] != expected:
            raise StateFormatError(
                f"model state: {len(classes)} classes but {self._W.shape[1]} weight columns"
            )

    def _aligned(self, other: Self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``other``'s arrays with columns in this model's class order (adding classes)."""
        for label in other._classes:
            if label not in self._index:
                self._add_class(label)
        k = len(self._classes)
        rows = other._W.shape[0]
        if k <= 2:
            W2, G2, b2, Gb2 = other._W, other._G, other._b, other._Gb
            # other's sigmoid gives the odds of "not its first class": flip if its first
            # class is our second
            flip = self._index[other._classes[0]] == 1
            return (-W2, G2, -b2, Gb2) if flip else (W2, G2, b2, Gb2)
        probe = other._copy_as_softmax()
        W2 = np.zeros((rows, k))
        G2 = np.zeros((rows, k))
        b2 = np.zeros(k)
        Gb2 = np.zeros(k)
        for j, label in enumerate(other._classes):
            col = self._index[label]
            W2[:, col] = probe[0][:, j]
            G2[:, col] = probe[1][:, j]
            b2[col] = probe[2][j]
            Gb2[col] = probe[3][j]
        return W2, G2, b2, Gb2

    def _copy_as_softmax(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        if self._W.shape[1] > 1:
            return self._W, self._G, self._b, self._Gb
        return (
            np.hstack([-self._W / 2, self._W / 2]),
            np.hstack([self._G, self._G]),
            np.concatenate([-self._b / 2, self._b / 2]),
            np.concatenate([self._Gb, self._Gb]),
        )


class LinearRegression(_AdaGradLinear):
    """Online least-squares linear regression with AdaGrad.

    Same parameters and update as ``LogisticRegression`` (see the module doc), with residual
    ``prediction - target``, and higher default rates (on synthetic streams with 3 to 250
    features, batches of 100, 0.3 / 1.0 gave half the mean absolute error of 0.1 / 0.3).

    ``scale_target`` (default): the weights learn the target standardized with its running
    mean and deviation, each event's with the moments that include it (River's
    ``TargetStandardScaler``), and predictions are scaled back. AdaGrad's steps do not depend
    on the scale of the gradient, so without it a target in the thousands (a temperature in
    kelvin, a price) takes many events to reach; with it the first predictions are already
    the target's mean. Predicts 0.0 before learning anything.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> X = sp.csr_matrix(rng.normal(size=(2000, 3)))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 300.0
    >>> model = LinearRegression()
    >>> model.predict_many(X[:2]).tolist()
    [0.0, 0.0]
    >>> first = model.predict_learn_many(X, y)
    >>> bool(np.abs(first[1000:] - y[1000:]).mean() < 0.2)
    True
    """

    task: Task = "regression"
    _state_name = "builtin.LinearRegression"

    def __init__(
        self,
        learning_rate: float = 0.3,
        intercept_lr: float = 1.0,
        l2: float = 0.0,
        n_features: int | None = None,
        scale_target: bool = True,
    ) -> None:
        super().__init__(learning_rate, intercept_lr, l2, n_features)
        if not isinstance(scale_target, bool):
            raise ModelError(f"scale_target must be true or false, got {scale_target!r}")
        self.scale_target = scale_target
        self._y_moments: FloatArray = np.zeros(3)  # count, mean, m2 of the targets learned

    @property
    def params(self) -> dict[str, Any]:
        params = super().params
        if not self.scale_target:  # as states written before the option load and read back
            return params
        return {**params, "scale_target": True}

    def _extra_arrays(self) -> dict[str, FloatArray]:
        return {"y_moments": self._y_moments} if self.scale_target else {}

    def _restore_extra(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        moments = arrays.get("y_moments")
        if moments is None:  # written before the option: the target as it is
            self.scale_target = False
        elif moments.shape != (3,):
            raise StateFormatError("model state: 'y_moments' is not 3 values")
        else:
            self._y_moments = moments.astype(np.float64).copy()

    def merge(self, other: Self) -> None:
        """As the other built-in learners (``_AdaGradLinear.merge``), and the targets' running
        moments combined (Chan et al.'s parallel formula)."""
        if getattr(other, "scale_target", None) != self.scale_target:
            raise ModelError("cannot merge regressions that differ in scale_target")
        n1, mean1, m2_1 = self._y_moments
        n2, mean2, m2_2 = other._y_moments
        super().merge(other)
        if n2 == 0:
            return
        n = n1 + n2
        delta = mean2 - mean1
        self._y_moments = np.array(
            [n, mean1 + delta * n2 / n, m2_1 + m2_2 + delta * delta * n1 * n2 / n]
        )

    def learn_many(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> None:
        """Learn from rows with float targets, one after the other."""
        self.predict_learn_many(X, y)

    def predict_learn_many(self, X: sp.csr_matrix, y: npt.NDArray[Any]) -> FloatArray:
        """Per row, in order: the prediction before learning it, then learn it."""
        X = self._check_X(X)
        try:
            target = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"regression targets must be numbers: {exc}") from exc
        if target.ndim != 1 or target.shape[0] != X.shape[0]:
            raise ModelError(f"targets must be 1-d with {X.shape[0]} values, got {target.shape}")
        out = np.empty(X.shape[0])
        if X.shape[0] == 0:
            return out
        self._check_finite(X)
        if not np.isfinite(target).all():
            raise ModelError("regression targets contain NaN or infinity")
        if self.scale_target:
            shift, scale, standardized = target_scaling(target, self._y_moments)
            self._run(X, standardized, out, False)
            out = shift + scale * out
        else:
            self._run(X, target, out, False)
        self._n_seen += X.shape[0]
        return out

    def predict_many(self, X: sp.csr_matrix) -> FloatArray:
        """One float per row."""
        X = self._check_X(X)
        out: FloatArray = self._scores(X)[:, 0]
        if self.scale_target and self._y_moments[0] > 0:
            count, mean, m2 = self._y_moments
            scale = math.sqrt(m2 / count) if count > 1 and m2 > 0 else 1.0
            out = mean + scale * out
        return out


def _check_label(label: object) -> None:
    if label is None or (isinstance(label, float | np.floating) and not np.isfinite(label)):
        raise ModelError(f"a class label cannot be {label!r} (missing labels are not learned)")
    if not isinstance(label, str | int | float | np.generic):
        raise ModelError(f"a class label must be str, int or bool, got {type(label).__name__}")


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rows(X: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of a CSR matrix, sharing its arrays."""
    if start == 0 and stop == X.shape[0]:
        return X
    lo, hi = int(X.indptr[start]), int(X.indptr[stop])
    return sp.csr_matrix(
        (X.data[lo:hi], X.indices[lo:hi], X.indptr[start : stop + 1] - lo),
        shape=(stop - start, X.shape[1]),
    )
