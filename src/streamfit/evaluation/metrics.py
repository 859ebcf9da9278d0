"""Prequential (test-then-train) metrics, cumulative and over a sliding window.

The runtime predicts every labeled batch, hands the predictions and the labels to an evaluator
with ``update``, then learns from the batch; ``snapshot()`` gives the figures written to the
training table. Everything is vectorized over the batch.

Cumulative figures come from running counts and sums, so their cost does not grow with the
stream: confusion counts per label, the sum of log losses, and, for ROC AUC, one histogram of
scores per label (``auc_bins`` equal bins over [0, 1]). The AUC is the Mann-Whitney statistic
over the bins, pairs in one bin counting as ties: within about 1e-3 of the exact value with the
default 2000 bins. Window figures are exact over a ring buffer of the last ``window`` events.

A row whose probabilities are all 0 (a model that has seen no class yet) is no prediction: it
counts as wrong, and as a prediction of no class. A figure that is undefined is ``None``:
anything before the first event, ROC AUC while only one class has been seen (per class for the
macro average), R² while every target is equal. Precision and recall of a class never predicted
(or never true) are 0, as scikit-learn's default ``zero_division`` gives.

State is a versioned byte format (see :mod:`streamfit.evaluation._state`), not pickle; a
restored evaluator continues bit for bit where the saved one stopped. A classifier's state
holds ``2 * auc_bins`` int64 counts per label (32 KB with the default bins) and
``window * (24 + 8 * labels)`` bytes of window; a regressor's, ``16 * window`` bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, overload, runtime_checkable

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from streamfit.errors import StateFormatError
from streamfit.evaluation import _state

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "ClassificationEvaluator",
    "Evaluator",
    "RegressionEvaluator",
    "make_evaluator",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc")
"""Metric names of a classifier; each comes cumulative and as ``window_<name>``."""

REGRESSION_METRICS = ("mae", "rmse", "r2")
"""Metric names of a regressor; each comes cumulative and as ``window_<name>``."""

_EPS = float(np.finfo(np.float64).eps)  # log loss clips p to [eps, 1 - eps], like scikit-learn
_JSON_LABEL = (bool, int, float, str, type(None))

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_NO_IDS: IntArray = np.zeros(0, dtype=np.int64)
_SMALL_INT_RANGE = 1 << 16  # integer labels spanning at most this map through a lookup table
Snapshot = dict[str, float | None]


@runtime_checkable
class Evaluator(Protocol):
    """What the runtime needs from any evaluator besides its task-specific ``update``."""

    @property
    def window(self) -> int: ...

    @property
    def events_seen(self) -> int: ...

    def snapshot(self) -> Snapshot: ...

    def state(self) -> bytes: ...


# --------------------------------------------------------------------------- helpers


def _native(value: object) -> object:
    """A numpy scalar as the Python value it holds (``np.int64(1)`` -> ``1``)."""
    return value.item() if isinstance(value, np.generic) else value


def _neumaier(total: float, carry: float, x: float) -> tuple[float, float]:
    """Compensated running sum: add ``x`` to ``total`` keeping the lost low bits in ``carry``."""
    t = total + x
    if abs(total) >= abs(x):
        carry += (total - t) + x
    else:
        carry += (x - t) + total
    return t, carry


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


class _Ring:
    """The last ``capacity`` rows of a few columns (first axis = rows)."""

    def __init__(self, capacity: int, columns: dict[str, npt.NDArray[Any]]) -> None:
        self.capacity = capacity
        self.cols = columns
        self.pos = 0  # next row written
        self.filled = 0  # valid rows

    def push(self, rows: dict[str, npt.NDArray[Any]]) -> None:
        n = len(next(iter(rows.values())))
        cap = self.capacity
        if n >= cap:
            for name, col in rows.items():
                self.cols[name][:] = col[n - cap :]
            self.pos, self.filled = 0, cap
            return
        first = min(n, cap - self.pos)
        for name, col in rows.items():
            target = self.cols[name]
            target[self.pos : self.pos + first] = col[:first]
            target[: n - first] = col[first:]
        self.pos = (self.pos + n) % cap
        self.filled = min(cap, self.filled + n)

    def ordered(self, name: str) -> npt.NDArray[Any]:
        """The valid rows of ``name``, oldest first."""
        col = self.cols[name]
        if self.filled < self.capacity:
            return col[: self.filled]
        return np.concatenate([col[self.pos :], col[: self.pos]])

    def widen(self, name: str, width: int) -> None:
        """Give a 2-d column ``width`` columns, the new ones zero."""
        col = self.cols[name]
        if col.shape[1] < width:
            extra = np.zeros((col.shape[0], width - col.shape[1]), dtype=col.dtype)
            self.cols[name] = np.hstack([col, extra])


def _auc_from_histograms(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """Mann-Whitney AUC per row of ``(labels, bins)`` histograms; ties within a bin count 1/2."""
    neg_below = np.cumsum(neg, axis=1) - neg
    wins = np.einsum("ij,ij->i", pos, neg_below) + 0.5 * np.einsum("ij,ij->i", pos, neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = wins / (pos.sum(axis=1) * neg.sum(axis=1))
    return result


def _auc_exact(scores: FloatArray, positive: npt.NDArray[np.bool_]) -> float | None:
    """Exact ROC AUC by ranks (ties averaged), ``None`` unless both classes are present."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _average_ranks(values: FloatArray) -> FloatArray:
    """``scipy.stats.rankdata(values)`` (ties get their average rank), the same numbers,
    without its per-call overhead (this runs at every snapshot)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    n = ordered.size
    edges = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [n]])
    ranks = np.empty(n)
    ranks[order] = np.repeat(0.5 * (starts + ends + 1), ends - starts)
    return ranks


# --------------------------------------------------------------------------- classification


class ClassificationEvaluator:
    """Prequential accuracy, precision, recall, F1, log loss and ROC AUC of a classifier.

    Parameters
    ----------
    window
        Number of most recent events the ``window_*`` figures cover.
    positive_label
        The positive class of a binary problem. By default: ``True`` when the labels are
        booleans, ``1`` when they are 0 and 1, otherwise the second of the two labels in sorted
        order (``"yes"`` of ``"no"``/``"yes"``; labels of mixed types sort by type name, then
        text). Until the rule can name a label (one string label seen so far) precision, recall
        and F1 are ``None``.
    auc_bins
        Bins per class of the score histograms behind the cumulative ROC AUC.

    Notes
    -----
    ``update(y_true, proba, classes)`` takes the labels, the ``(n, len(classes))``
    probabilities and the model's class list for that batch. The class list may grow from
    batch to batch, and a label may be true before the model has it as a class: such a row
    counts as wrong, with probability 0 for its label (clipped to machine epsilon in the log
    loss). ROC AUC, a ranking of scores, leaves out of a label's ranking the rows scored by a
    model that did not have that label as a class yet: the model gave them no score to rank
    (River's binary learners score 0.5 there instead; ranking them last would charge a model
    for its first batch of labels, before it could know the class existed).

    With at most two labels seen (in ``y_true`` or ``classes``), precision, recall and F1 are
    those of the positive class and ROC AUC ranks its probability. With more, they are macro
    averages: precision, recall and F1 over the labels that were true or predicted at least
    once (as scikit-learn does), ROC AUC one-vs-rest over the labels with both positive and
    negative rows. The argmax of the probabilities is the prediction (ties: the first class);
    a NaN probability counts as 0, an infinite one as 1.

    Examples
    --------
    >>> import numpy as np
    >>> ev = ClassificationEvaluator(window=2)
    >>> ev.update(np.array(["no", "yes", "yes"], dtype=object),
    ...           np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), ["no", "yes"])
    >>> snap = ev.snapshot()
    >>> snap["events_seen"], round(snap["accuracy"], 4), snap["recall"], snap["roc_auc"]
    (3, 0.6667, 0.5, 1.0)
    >>> snap["window_accuracy"], snap["window_roc_auc"]
    (0.5, None)

    A new class, and a label the model has never seen:

    >>> ev.update(np.array(["maybe", "never"], dtype=object),
    ...           np.array([[0.1, 0.1, 0.8], [0.5, 0.2, 0.3]]), ["no", "yes", "maybe"])
    >>> ev.labels, ev.snapshot()["window_accuracy"]
    (['no', 'yes', 'maybe', 'never'], 0.5)
    >>> ClassificationEvaluator.from_state(ev.state()).snapshot() == ev.snapshot()
    True
    """

    _KIND = "classification"

    def __init__(
        self, window: int = 1000, positive_label: object | None = None, auc_bins: int = 2000
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if auc_bins < 1:
            raise ValueError(f"auc_bins must be at least 1, got {auc_bins}")
        self._window = int(window)
        self._positive_label = _native(positive_label)
        self._bins = int(auc_bins)
        self._labels: list[object] = []
        self._index: dict[object, int] = {}
        self._last_classes: tuple[tuple[object, ...], IntArray, bool] = ((), _NO_IDS, True)
        self._classes_are_labels = True
        self._events = 0
        self._correct = 0
        self._log_loss = (0.0, 0.0)  # compensated sum (total, carry)
        self._tp: IntArray = np.zeros(0, dtype=np.int64)
        self._n_true: IntArray = np.zeros(0, dtype=np.int64)
        self._n_pred: IntArray = np.zeros(0, dtype=np.int64)
        self._hist_all: IntArray = np.zeros((0, self._bins), dtype=np.int64)
        self._hist_pos: IntArray = np.zeros((0, self._bins), dtype=np.int64)
        self._ring = _Ring(
            self._window,
            {
                "y": np.zeros(self._window, dtype=np.int64),
                "pred": np.zeros(self._window, dtype=np.int64),
                "p_true": np.zeros(self._window, dtype=np.float64),
                "scores": np.zeros((self._window, 0), dtype=np.float64),
            },
        )

    # -- properties

    @property
    def window(self) -> int:
        """Events covered by the ``window_*`` figures."""
        return self._window

    @property
    def events_seen(self) -> int:
        """Events evaluated so far."""
        return self._events

    @property
    def labels(self) -> list[object]:
        """Every label seen so far (as a class or as a true label), in order of appearance.

        Within one batch, labels of a numpy (non-object) array are taken in sorted order.
        """
        return list(self._labels)

    @property
    def positive_label(self) -> object | None:
        """The positive class for binary figures, ``None`` while the rule cannot tell."""
        pos = self._positive_id()
        if pos is None:
            return None
        return self._labels[pos] if pos >= 0 else self._positive_key()

    # -- labels

    def _register(self, value: object) -> int:
        value = _native(value)
        found = self._index.get(value)
        if found is not None:
            return found
        new = len(self._labels)
        self._labels.append(value)
        self._index[value] = new
        return new

    def _encode(self, y: npt.NDArray[Any]) -> IntArray:
        """Label ids of ``y``, registering labels not seen before."""
        if y.dtype == object:
            values = y.tolist()
            lookup = self._index.__getitem__
            try:
                return np.fromiter(map(lookup, values), dtype=np.int64, count=len(values))
            except KeyError:
                register = self._register
                return np.fromiter(map(register, values), dtype=np.int64, count=len(values))
        if y.dtype.kind == "b":
            n_true = int(np.count_nonzero(y))
            lut = np.zeros(2, dtype=np.int64)
            if n_true < len(y):
                lut[0] = self._register(False)
            if n_true:
                lut[1] = self._register(True)
            out: IntArray = lut[y.view(np.uint8)]
            return out
        if y.dtype.kind in "iu" and len(y):
            low, high = int(y.min()), int(y.max())
            if high - low <= _SMALL_INT_RANGE:
                shifted = (y - low).astype(np.intp)
                present = np.flatnonzero(np.bincount(shifted))
                lut = np.zeros(high - low + 1, dtype=np.int64)
                lut[present] = [self._register(int(v) + low) for v in present.tolist()]
                out = lut[shifted]
                return out
        uniques, codes = np.unique(y, return_inverse=True)
        lut = np.array([self._register(u) for u in uniques.tolist()], dtype=np.int64)
        out = lut[codes.reshape(-1)]
        return out

    def _grow(self) -> None:
        """Size the per-label arrays to the labels registered; new labels scored 0 so far."""
        n_labels = len(self._labels)
        old = len(self._tp)
        if n_labels == old:
            return
        more = n_labels - old
        zeros = np.zeros(more, dtype=np.int64)
        self._tp = np.concatenate([self._tp, zeros])
        self._n_true = np.concatenate([self._n_true, zeros])
        self._n_pred = np.concatenate([self._n_pred, zeros])
        fresh = np.zeros((more, self._bins), dtype=np.int64)
        self._hist_pos = np.vstack([self._hist_pos, fresh])
        fresh = fresh.copy()  # earlier events gave the new label no score: not ranked for it
        self._hist_all = np.vstack([self._hist_all, fresh])
        self._ring.widen("scores", n_labels)

    def _positive_key(self) -> object | None:
        if self._positive_label is not None:
            return self._positive_label
        labels = self._labels
        if labels and all(isinstance(v, bool) for v in labels):
            return True
        if labels and all(isinstance(v, int | float) and v in (0, 1) for v in labels):
            return 1
        if len(labels) == 2:
            try:
                return sorted(labels)[1]  # type: ignore[type-var]
            except TypeError:
                return sorted(labels, key=lambda v: (type(v).__name__, str(v)))[1]
        return None

    def _positive_id(self) -> int | None:
        """Id of the positive label; -1 if it is known but not seen yet, None if unknown."""
        key = self._positive_key()
        if key is None:
            return None
        return self._index.get(key, -1)

    # -- update

    def update(
        self, y_true: npt.ArrayLike, proba: npt.ArrayLike, classes: Sequence[object]
    ) -> None:
        """Score one batch: true labels, ``(n, len(classes))`` probabilities, class list."""
        y = np.asarray(y_true)
        p = np.ascontiguousarray(proba, dtype=np.float64)
        n = len(y)
        k = len(classes)
        if y.ndim != 1:
            raise ValueError(f"y_true must be 1-d, got shape {y.shape}")
        if p.shape != (n, k):
            if n == 0 and p.size == 0:
                return
            raise ValueError(f"proba has shape {p.shape}, expected {(n, k)}")
        if n == 0:
            return
        if not np.isfinite(p).all():  # a broken model's NaN counts as probability 0
            p = np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0)
        class_ids = self._class_ids(classes)
        y_ids = self._encode(y)
        self._grow()
        n_labels = len(self._labels)
        bins = self._bins
        # the usual case: the model's classes are every label seen, in order of appearance
        identity = k == n_labels and self._classes_are_labels
        known: npt.NDArray[np.bool_] | None = None  # rows whose label is one of the classes
        col_of: IntArray | None = None
        if identity:
            y_col = y_ids
        else:
            col_of = np.full(n_labels, -1, dtype=np.int64)
            col_of[class_ids] = np.arange(k)
            y_col = col_of[y_ids]
            known = y_col >= 0
            if known.all():
                known = None
        # position of each row's true label in the flattened (n, k) probabilities
        flat_true = np.arange(n, dtype=np.int64) * k + y_col
        if known is not None:
            flat_true = flat_true[known]
        if k:
            pred_col = p.argmax(axis=1)
            pred_ids = pred_col if identity else class_ids[pred_col]
            abstained = p[np.arange(n), pred_col] <= 0.0  # no class had a probability yet
            if abstained.any():
                pred_ids = np.where(abstained, -1, pred_ids)
            if known is None:
                p_true = p.reshape(-1)[flat_true]
            else:
                p_true = np.zeros(n)
                p_true[known] = p.reshape(-1)[flat_true]
        else:
            pred_ids = np.full(n, -1, dtype=np.int64)
            p_true = np.zeros(n)

        # counts
        correct = pred_ids == y_ids
        self._correct += int(np.count_nonzero(correct))
        self._tp += np.bincount(y_ids[correct], minlength=n_labels)
        self._n_true += np.bincount(y_ids, minlength=n_labels)
        if k:
            self._n_pred += np.bincount(pred_ids[pred_ids >= 0], minlength=n_labels)
        clipped = np.clip(p_true, _EPS, 1.0 - _EPS)
        self._log_loss = _neumaier(*self._log_loss, -float(np.log(clipped, out=clipped).sum()))

        # score histograms: one row per label over all events, and over its positive events.
        # A label the batch's model does not have got no score from it, so these rows are not
        # ranked for that label (as if the model had abstained), rather than ranked last.
        if k:
            scaled = p * bins
            np.clip(scaled, 0.0, bins - 1.0, out=scaled)
            flat = scaled.astype(np.int64)
            flat += np.arange(0, k * bins, bins, dtype=np.int64)  # (row, col) -> col * bins + bin
            flat = flat.reshape(-1)
            counts_all = np.bincount(flat, minlength=k * bins).reshape(k, bins)
            counts_pos = np.bincount(flat[flat_true], minlength=k * bins).reshape(k, bins)
            if identity:
                self._hist_all += counts_all
                self._hist_pos += counts_pos
            else:
                self._hist_all[class_ids] += counts_all
                self._hist_pos[class_ids] += counts_pos
        self._events += n

        # window
        tail = slice(max(0, n - self._window), n)
        if identity:
            scores = p[tail]
        else:
            scores = np.zeros((tail.stop - tail.start, n_labels))
            if k:
                scores[:, class_ids] = p[tail]
        self._ring.push(
            {"y": y_ids[tail], "pred": pred_ids[tail], "p_true": p_true[tail], "scores": scores}
        )

    def _class_ids(self, classes: Sequence[object]) -> IntArray:
        """Label ids of the model's classes (cached while the class list stays the same)."""
        key = tuple(classes)
        if key != self._last_classes[0]:
            if len(set(key)) != len(key):
                raise ValueError(f"classes holds a label twice: {list(classes)}")
            ids = [self._register(c) for c in key]
            same_order = ids == list(range(len(ids)))
            self._last_classes = (key, np.array(ids, dtype=np.int64), same_order)
        self._classes_are_labels = self._last_classes[2]
        return self._last_classes[1]

    # -- figures

    def _prf(
        self, tp: IntArray, n_pred: IntArray, n_true: IntArray
    ) -> tuple[float | None, float | None, float | None]:
        """Precision, recall, F1: of the positive class (binary) or macro (multiclass)."""
        if len(self._labels) <= 2:
            pos = self._positive_id()
            if pos is None:
                return None, None, None
            if pos < 0:
                return 0.0, 0.0, 0.0
            t, pp, tt = int(tp[pos]), int(n_pred[pos]), int(n_true[pos])
            return _ratio(t, pp), _ratio(t, tt), _ratio(2 * t, pp + tt)
        present = (n_pred + n_true) > 0
        hit, said, was = (a[present].astype(np.float64) for a in (tp, n_pred, n_true))
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(said > 0, hit / said, 0.0)
            recall = np.where(was > 0, hit / was, 0.0)
            f1 = np.where(said + was > 0, 2 * hit / (said + was), 0.0)
        return float(precision.mean()), float(recall.mean()), float(f1.mean())

    def _cumulative_auc(self) -> float | None:
        pos_h = self._hist_pos.astype(np.float64)
        neg_h = self._hist_all.astype(np.float64) - pos_h
        if len(self._labels) <= 2:
            pos = self._positive_id()
            if pos is None or pos < 0:
                return None
            auc = _auc_from_histograms(pos_h[pos : pos + 1], neg_h[pos : pos + 1])
        else:
            auc = _auc_from_histograms(pos_h, neg_h)
        defined = auc[np.isfinite(auc)]
        return float(defined.mean()) if len(defined) else None

    def _window_auc(self, y: IntArray, scores: FloatArray) -> float | None:
        if len(self._labels) <= 2:
            pos = self._positive_id()
            if pos is None or pos < 0:
                return None
            return _auc_exact(scores[:, pos], y == pos)
        # one-vs-rest for every label at once: rank each score column, sum positives' ranks
        n_labels = len(self._labels)
        ranks = rankdata(scores, axis=0)
        n_pos = np.bincount(y, minlength=n_labels).astype(np.float64)
        n_neg = len(y) - n_pos
        rank_sums = np.bincount(y, weights=ranks[np.arange(len(y)), y], minlength=n_labels)
        defined = (n_pos > 0) & (n_neg > 0)
        if not defined.any():
            return None
        u = rank_sums[defined] - n_pos[defined] * (n_pos[defined] + 1) / 2.0
        return float(np.mean(u / (n_pos[defined] * n_neg[defined])))

    def snapshot(self) -> Snapshot:
        """Every figure, cumulative and over the window; ``None`` where undefined."""
        out: Snapshot = {"events_seen": self._events}
        if self._events == 0:
            for name in CLASSIFICATION_METRICS:
                out[name] = None
            for name in CLASSIFICATION_METRICS:
                out[f"window_{name}"] = None
            return out
        precision, recall, f1 = self._prf(self._tp, self._n_pred, self._n_true)
        out["accuracy"] = self._correct / self._events
        out["precision"], out["recall"], out["f1"] = precision, recall, f1
        out["log_loss"] = (self._log_loss[0] + self._log_loss[1]) / self._events
        out["roc_auc"] = self._cumulative_auc()

        ring = self._ring
        y = ring.ordered("y")
        pred = ring.ordered("pred")
        n_labels = len(self._labels)
        correct = y == pred
        w_tp = np.bincount(y[correct], minlength=n_labels)
        w_true = np.bincount(y, minlength=n_labels)
        w_pred = np.bincount(pred[pred >= 0], minlength=n_labels)
        precision, recall, f1 = self._prf(w_tp, w_pred, w_true)
        p_true = ring.ordered("p_true")
        out["window_accuracy"] = float(np.count_nonzero(correct)) / len(y)
        out["window_precision"], out["window_recall"], out["window_f1"] = precision, recall, f1
        out["window_log_loss"] = float(-np.log(np.clip(p_true, _EPS, 1.0 - _EPS)).mean())
        out["window_roc_auc"] = self._window_auc(y, ring.ordered("scores"))
        return out

    # -- state and merge

    def state(self) -> bytes:
        """The whole evaluator as bytes (see :mod:`streamfit.evaluation._state`)."""
        for value in [*self._labels, self._positive_label]:
            if not isinstance(value, _JSON_LABEL):
                raise StateFormatError(
                    f"evaluator state: a label of type {type(value).__name__} cannot be saved"
                )
        meta = {
            "window": self._window,
            "auc_bins": self._bins,
            "positive_label": self._positive_label,
            "labels": self._labels,
            "events": self._events,
            "correct": self._correct,
            "ring_pos": self._ring.pos,
            "ring_filled": self._ring.filled,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "log_loss": np.array(self._log_loss, dtype=np.float64),
            "tp": self._tp,
            "n_true": self._n_true,
            "n_pred": self._n_pred,
            "hist_all": self._hist_all,
            "hist_pos": self._hist_pos,
        }
        arrays.update({f"ring_{name}": col for name, col in self._ring.cols.items()})
        return _state.encode(self._KIND, meta, arrays)

    @classmethod
    def from_state(cls, blob: bytes) -> ClassificationEvaluator:
        """An evaluator equal to the one whose ``state()`` gave ``blob``."""
        meta, arrays = _state.decode(blob, cls._KIND)
        try:
            ev = cls(meta["window"], meta["positive_label"], meta["auc_bins"])
            for label in meta["labels"]:
                ev._register(label)
            if len(ev._labels) != len(meta["labels"]):
                raise StateFormatError("evaluator state repeats a label")
            ev._events = int(meta["events"])
            ev._correct = int(meta["correct"])
            total, carry = arrays["log_loss"].tolist()
            ev._log_loss = (float(total), float(carry))
            ev._tp, ev._n_true, ev._n_pred = arrays["tp"], arrays["n_true"], arrays["n_pred"]
            ev._hist_all, ev._hist_pos = arrays["hist_all"], arrays["hist_pos"]
            for name in ev._ring.cols:
                ev._ring.cols[name] = arrays[f"ring_{name}"]
            ev._ring.pos, ev._ring.filled = int(meta["ring_pos"]), int(meta["ring_filled"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"classification evaluator state is invalid: {exc}") from exc
        n_labels = len(ev._labels)
        shapes = {
            "tp": (ev._tp.shape, (n_labels,)),
            "hist_all": (ev._hist_all.shape, (n_labels, ev._bins)),
            "hist_pos": (ev._hist_pos.shape, (n_labels, ev._bins)),
            "ring_scores": (ev._ring.cols["scores"].shape, (ev._window, n_labels)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise StateFormatError(f"state array {name} has shape {got}, expected {want}")
        return ev

    def merge(self, other: ClassificationEvaluator) -> None:
        """Add ``other``'s events to this evaluator (e.g. another worker's partitions).

        Cumulative figures become exactly those of both streams together. The window becomes
        an approximation: this evaluator's window rows, then ``other``'s, the last ``window``
        of them kept (the two streams' rows are not interleaved by time).
        """
        if other._bins != self._bins:
            raise ValueError(f"cannot merge {other._bins} AUC bins into {self._bins}")
        mine, theirs = self._positive_label, other._positive_label
        if mine is not None and theirs is not None and mine != theirs:
            raise ValueError(f"positive labels differ: {mine!r} and {theirs!r}")
        if mine is None:
            self._positive_label = theirs
        remap = np.array([self._register(v) for v in other._labels], dtype=np.int64)
        self._grow()
        n_labels = len(self._labels)
        not_in_other = np.ones(n_labels, dtype=bool)
        not_in_other[remap] = False

        self._tp[remap] += other._tp
        self._n_true[remap] += other._n_true
        self._n_pred[remap] += other._n_pred
        self._hist_all[remap] += other._hist_all
        self._hist_all[not_in_other, 0] += other._events  # other scored these labels 0
        self._hist_pos[remap] += other._hist_pos
        self._events += other._events
        self._correct += other._correct
        total, carry = self._log_loss
        total, carry = _neumaier(total, carry, other._log_loss[0])
        self._log_loss = _neumaier(total, carry, other._log_loss[1])

        ring = other._ring
        pred = ring.ordered("pred")
        their_scores = ring.ordered("scores")
        scores = np.zeros((len(pred), n_labels))
        scores[:, remap] = their_scores
        own = self._ring
        rows = {
            "y": np.concatenate([own.ordered("y"), remap[ring.ordered("y")]]),
            "pred": np.concatenate([own.ordered("pred"), np.where(pred >= 0, remap[pred], -1)]),
            "p_true": np.concatenate([own.ordered("p_true"), ring.ordered("p_true")]),
            "scores": np.vstack([own.ordered("scores"), scores]),
        }
        own.pos = own.filled = 0
        if len(rows["y"]):
            own.push(rows)


# --------------------------------------------------------------------------- regression


class RegressionEvaluator:
    """Prequential MAE, RMSE and R² of a regressor, cumulative and over a sliding window.

    The cumulative R² keeps the target's mean and sum of squared deviations with Welford's
    update, merged batch by batch (Chan et al.), so it stays accurate on long streams with a
    large mean; error sums are compensated (Neumaier). R² is ``None`` while every target seen
    is equal (scikit-learn would return 0 or 1 there).

    Examples
    --------
    >>> import numpy as np
    >>> ev = RegressionEvaluator(window=2)
    >>> ev.update(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0]))
    >>> snap = ev.snapshot()
    >>> snap["mae"], snap["r2"], snap["window_mae"]
    (0.5, 0.375, 0.5)
    >>> RegressionEvaluator.from_state(ev.state()).snapshot() == snap
    True
    """

    _KIND = "regression"

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._window = int(window)
        self._events = 0
        self._abs = (0.0, 0.0)  # compensated sums (total, carry)
        self._sq = (0.0, 0.0)
        self._mean = 0.0  # of y_true
        self._m2 = 0.0  # sum of squared deviations of y_true from its mean
        self._ring = _Ring(
            self._window,
            {"y": np.zeros(self._window), "pred": np.zeros(self._window)},
        )

    @property
    def window(self) -> int:
        """Events covered by the ``window_*`` figures."""
        return self._window

    @property
    def events_seen(self) -> int:
        """Events evaluated so far."""
        return self._events

    def _add_moments(self, n: int, mean: float, m2: float) -> None:
        total = self._events + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._events * n / total

    def update(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> None:
        """Score one batch of targets and predictions."""
        y = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        if y.ndim != 1 or p.shape != y.shape:
            raise ValueError(f"y_true {y.shape} and y_pred {p.shape} must be equal 1-d shapes")
        n = len(y)
        if n == 0:
            return
        err = y - p
        self._abs = _neumaier(*self._abs, float(np.abs(err).sum()))
        self._sq = _neumaier(*self._sq, float(np.dot(err, err)))
        mean = float(y.mean())
        dev = y - mean
        self._add_moments(n, mean, float(np.dot(dev, dev)))
        self._events += n
        self._ring.push({"y": y, "pred": p})

    def snapshot(self) -> Snapshot:
        """Every figure, cumulative and over the window; ``None`` where undefined."""
        out: Snapshot = {"events_seen": self._events}
        if self._events == 0:
            out.update(dict.fromkeys(REGRESSION_METRICS))
            out.update({f"window_{name}": None for name in REGRESSION_METRICS})
            return out
        sse = self._sq[0] + self._sq[1]
        out["mae"] = (self._abs[0] + self._abs[1]) / self._events
        out["rmse"] = math.sqrt(max(sse, 0.0) / self._events)
        out["r2"] = 1.0 - sse / self._m2 if self._m2 > 0 else None
        y = self._ring.ordered("y")
        err = y - self._ring.ordered("pred")
        dev = y - y.mean()
        ss_tot = float(np.dot(dev, dev))
        w_sse = float(np.dot(err, err))
        out["window_mae"] = float(np.abs(err).mean())
        out["window_rmse"] = math.sqrt(w_sse / len(y))
        out["window_r2"] = 1.0 - w_sse / ss_tot if ss_tot > 0 else None
        return out

    def state(self) -> bytes:
        """The whole evaluator as bytes (see :mod:`streamfit.evaluation._state`)."""
        meta = {
            "window": self._window,
            "events": self._events,
            "ring_pos": self._ring.pos,
            "ring_filled": self._ring.filled,
        }
        sums = np.array([*self._abs, *self._sq, self._mean, self._m2], dtype=np.float64)
        arrays = {
            "sums": sums,
            "ring_y": self._ring.cols["y"],
            "ring_pred": self._ring.cols["pred"],
        }
        return _state.encode(self._KIND, meta, arrays)

    @classmethod
    def from_state(cls, blob: bytes) -> RegressionEvaluator:
        """An evaluator equal to the one whose ``state()`` gave ``blob``."""
        meta, arrays = _state.decode(blob, cls._KIND)
        try:
            ev = cls(meta["window"])
            ev._events = int(meta["events"])
            a, ac, s, sc, mean, m2 = (float(v) for v in arrays["sums"].tolist())
            ev._abs, ev._sq, ev._mean, ev._m2 = (a, ac), (s, sc), mean, m2
            for name in ("y", "pred"):
                col = arrays[f"ring_{name}"]
                if col.shape != (ev._window,):
                    raise StateFormatError(f"state array ring_{name} has shape {col.shape}")
                ev._ring.cols[name] = col
            ev._ring.pos, ev._ring.filled = int(meta["ring_pos"]), int(meta["ring_filled"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"regression evaluator state is invalid: {exc}") from exc
        return ev

    def merge(self, other: RegressionEvaluator) -> None:
        """Add ``other``'s events to this evaluator (e.g. another worker's partitions).

        Cumulative figures become those of both streams together (up to rounding). The window
        becomes an approximation: this evaluator's window rows, then ``other``'s, the last
        ``window`` of them kept.
        """
        if other._events == 0:
            return
        if self._events == 0:
            self._mean, self._m2 = other._mean, other._m2
        else:
            self._add_moments(other._events, other._mean, other._m2)
        for name in ("_abs", "_sq"):
            total, carry = getattr(self, name)
            theirs = getattr(other, name)
            total, carry = _neumaier(total, carry, theirs[0])
            setattr(self, name, _neumaier(total, carry, theirs[1]))
        self._events += other._events
        own = self._ring
        rows = {
            name: np.concatenate([own.ordered(name), other._ring.ordered(name)])
            for name in ("y", "pred")
        }
        own.pos = own.filled = 0
        own.push(rows)


# --------------------------------------------------------------------------- factory


@overload
def make_evaluator(
    task: Literal["classification"], window: int = ..., positive_label: object | None = ...
) -> ClassificationEvaluator: ...


@overload
def make_evaluator(
    task: Literal["regression"], window: int = ..., positive_label: object | None = ...
) -> RegressionEvaluator: ...


def make_evaluator(
    task: str, window: int = 1000, positive_label: object | None = None
) -> ClassificationEvaluator | RegressionEvaluator:
    """The evaluator for a task: ``"classification"`` or ``"regression"``.

    >>> type(make_evaluator("regression", window=50)).__name__
    'RegressionEvaluator'
    """
    if task == "classification":
        return ClassificationEvaluator(window, positive_label)
    if task == "regression":
        if positive_label is not None:
            raise ValueError("positive_label applies to classification only")
        return RegressionEvaluator(window)
    raise ValueError(f"unknown task {task!r}: expected 'classification' or 'regression'")
