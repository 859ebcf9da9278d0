"""Prequential quality of an anomaly detector, against a label used for evaluation only.

An ``AnomalyEvaluator`` is given, per batch, each event's anomaly score (computed before the
detector learned the event), its alarm (``is_anomaly``) and its label (1 an anomaly, 0 not,
NaN unknown: such an event counts in ``alarm_rate`` only). Figures, cumulative and over the
last ``window`` events (``window_``-prefixed):

- ``roc_auc`` and ``average_precision`` of the scores (average precision as scikit-learn
  defines it: the precision at each distinct score, weighted by the recall it adds);
- ``precision`` and ``recall`` of the alarms;
- ``alarm_rate``: the share of events (labeled or not) that raised an alarm.

Cumulative ROC AUC and average precision come from counts of scores per label in bins of
width ``resolution`` over ``asinh(score)`` (a bin per distinct score, near enough: 0.1% apart
for large scores, 0.001 apart near zero), kept sparse, so their cost does not grow with the
stream and two evaluators' counts add up (``merge``); scores in one bin count as ties. The
window's figures are exact. Undefined figures are None (ROC AUC and average precision before
both labels were seen, precision before the first alarm).

>>> import numpy as np
>>> ev = AnomalyEvaluator(window=100)
>>> ev.update(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.1, 0.4, 0.35, 0.8]),
...           np.array([False, False, False, True]))
>>> snapshot = ev.snapshot()
>>> snapshot["roc_auc"], snapshot["average_precision"], snapshot["recall"]
(0.75, 0.8333333333333333, 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import StateFormatError
from streamfit.evaluation import _state

__all__ = ["ANOMALY_METRICS", "AnomalyEvaluator"]

ANOMALY_METRICS = ("roc_auc", "average_precision", "precision", "recall", "alarm_rate")
"""Metric names of an anomaly detector; each comes cumulative and as ``window_<name>``."""

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
_KIND = "anomaly"


def _ranking(positives: Floats, negatives: Floats) -> tuple[float | None, float | None]:
    """ROC AUC and average precision of scores given, for each distinct score in ascending
    order, how many positives and negatives have it."""
    p, n = positives.sum(), negatives.sum()
    if p == 0 or n == 0:
        return None, None
    positives_above = positives[::-1].cumsum()[::-1] - positives
    auc = float((negatives * (positives_above + 0.5 * positives)).sum() / (p * n))
    tp = positives[::-1].cumsum()
    fp = negatives[::-1].cumsum()
    precision = tp / (tp + fp)
    ap = float((positives[::-1] * precision).sum() / p)
    return auc, ap


class AnomalyEvaluator:
    """Prequential figures of an anomaly detector (see the module docstring)."""

    def __init__(self, window: int = 1000, resolution: float = 1e-3) -> None:
        if window < 1 or not resolution > 0:
            raise ValueError("window must be positive and resolution above 0")
        self._window = window
        self.resolution = resolution
        self._events = 0
        self._alarms = 0
        self._confusion = np.zeros(3, dtype=np.int64)  # true alarms, false alarms, missed
        self._keys: Ints = np.zeros(0, dtype=np.int64)  # score bins, sorted
        self._counts: Ints = np.zeros((0, 2), dtype=np.int64)  # per bin: negatives, positives
        self._ring_scores = np.zeros(window)
        self._ring_labels = np.full(window, np.nan)
        self._ring_alarms = np.zeros(window, dtype=np.int64)
        self._ring_pos = 0
        self._ring_filled = 0

    @property
    def window(self) -> int:
        return self._window

    @property
    def events_seen(self) -> int:
        return self._events

    def update(self, labels: npt.ArrayLike, scores: npt.ArrayLike, alarms: npt.ArrayLike) -> None:
        """Add a batch: labels (1, 0, NaN unknown), scores, alarms (booleans)."""
        y = np.asarray(labels, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        a = np.asarray(alarms, dtype=bool)
        if not (len(y) == len(s) == len(a)):
            raise ValueError("labels, scores and alarms must have one value per event")
        n = len(y)
        if n == 0:
            return
        self._events += n
        self._alarms += int(a.sum())
        known = ~np.isnan(y) & np.isfinite(s)
        positive = known & (y != 0)
        negative = known & (y == 0)
        self._confusion += [
            int((a & positive).sum()),
            int((a & negative).sum()),
            int((~a & positive).sum()),
        ]
        if known.any():
            keys = np.floor(np.arcsinh(s[known]) / self.resolution).astype(np.int64)
            pairs = keys * 2 + positive[known]
            distinct, counts = np.unique(pairs, return_counts=True)
            self._add_bins(distinct // 2, distinct % 2, counts)
        self._push(y, s, a)

    def _add_bins(self, keys: Ints, labels: Ints, counts: Ints) -> None:
        merged = np.union1d(self._keys, keys)
        table = np.zeros((len(merged), 2), dtype=np.int64)
        table[np.searchsorted(merged, self._keys)] += self._counts
        np.add.at(table, (np.searchsorted(merged, keys), labels), counts)
        self._keys, self._counts = merged, table

    def _push(self, y: Floats, s: Floats, a: npt.NDArray[np.bool_]) -> None:
        w = self._window
        if len(y) >= w:
            y, s, a = y[-w:], s[-w:], a[-w:]
        n = len(y)
        index = (self._ring_pos + np.arange(n)) % w
        self._ring_labels[index] = y
        self._ring_scores[index] = s
        self._ring_alarms[index] = a
        self._ring_pos = (self._ring_pos + n) % w
        self._ring_filled = min(w, self._ring_filled + n)

    def snapshot(self) -> dict[str, float | None]:
        """Every figure, cumulative and ``window_``-prefixed, and ``events_seen``."""
        out: dict[str, float | None] = {"events_seen": float(self._events)}
        auc, ap = _ranking(
            self._counts[:, 1].astype(np.float64),
            self._counts[:, 0].astype(np.float64),
        )
        tp, fp, fn = (int(v) for v in self._confusion)
        out.update(_figures(auc, ap, tp, fp, fn, self._alarms, self._events))
        filled = self._ring_filled
        y = self._ring_labels[:filled]
        s = self._ring_scores[:filled]
        a = self._ring_alarms[:filled].astype(bool)
        known = ~np.isnan(y) & np.isfinite(s)
        values, inverse = np.unique(s[known], return_inverse=True)
        positive = y[known] != 0
        positives = np.bincount(inverse, weights=positive, minlength=len(values)).astype(float)
        negatives = np.bincount(inverse, weights=~positive, minlength=len(values)).astype(float)
        auc, ap = _ranking(positives, negatives)
        pos, neg = known & (y != 0), known & (y == 0)
        window = _figures(
            auc,
            ap,
            int((a & pos).sum()),
            int((a & neg).sum()),
            int((~a & pos).sum()),
            int(a.sum()),
            filled,
        )
        out.update({f"window_{k}": v for k, v in window.items()})
        return out

    def merge(self, other: AnomalyEvaluator) -> None:
        """Add ``other``'s cumulative counts (the window stays this evaluator's)."""
        if other.resolution != self.resolution:
            raise ValueError("cannot merge anomaly evaluators of different resolutions")
        self._events += other._events
        self._alarms += other._alarms
        self._confusion += other._confusion
        for label in (0, 1):
            counts = other._counts[:, label]
            keep = counts > 0
            self._add_bins(
                other._keys[keep], np.full(int(keep.sum()), label, dtype=np.int64), counts[keep]
            )

    def state(self) -> bytes:
        """The evaluator, in the ``SFEV`` format of ``streamfit.evaluation._state``."""
        meta: dict[str, Any] = {
            "window": self._window,
            "resolution": self.resolution,
            "events": self._events,
            "alarms": self._alarms,
            "ring_pos": self._ring_pos,
            "ring_filled": self._ring_filled,
        }
        return _state.encode(
            _KIND,
            meta,
            {
                "confusion": self._confusion,
                "keys": self._keys,
                "counts": self._counts,
                "ring_scores": self._ring_scores,
                "ring_labels": self._ring_labels,
                "ring_alarms": self._ring_alarms,
            },
        )

    @classmethod
    def from_state(cls, blob: bytes) -> AnomalyEvaluator:
        meta, arrays = _state.decode(blob, _KIND)
        try:
            ev = cls(int(meta["window"]), float(meta["resolution"]))
            ev._events, ev._alarms = int(meta["events"]), int(meta["alarms"])
            ev._ring_pos, ev._ring_filled = int(meta["ring_pos"]), int(meta["ring_filled"])
            ev._confusion = arrays["confusion"].astype(np.int64)
            ev._keys = arrays["keys"].astype(np.int64)
            ev._counts = arrays["counts"].astype(np.int64).reshape(-1, 2)
            ev._ring_scores = arrays["ring_scores"].astype(np.float64)
            ev._ring_labels = arrays["ring_labels"].astype(np.float64)
            ev._ring_alarms = arrays["ring_alarms"].astype(np.int64)
            if ev._confusion.shape != (3,) or len(ev._keys) != len(ev._counts):
                raise ValueError("arrays of the wrong shape")
            if not (len(ev._ring_scores) == len(ev._ring_labels) == ev._window):
                raise ValueError("the window's arrays do not match its size")
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"anomaly evaluator state: invalid: {exc}") from exc
        return ev


def _figures(
    auc: float | None, ap: float | None, tp: int, fp: int, fn: int, alarms: int, events: int
) -> dict[str, float | None]:
    return {
        "roc_auc": auc,
        "average_precision": ap,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "alarm_rate": alarms / events if events else None,
    }
