"""The built-in anomaly detector: per-field histograms, an event's score its log-improbability.

``HistogramDetector`` keeps one histogram per field and scores an event by how improbable
its values are, field by field, as if the fields were independent (the idea of HBOS,
histogram-based outlier scores): ``score = sum over fields of -log p(bin of the value)``,
with ``p(bin) = (count + alpha) / (events + alpha * (bins + 2))`` (Laplace smoothing over the
occupied bins, a bin for missing values and one for a value never seen). Higher is more
unusual.

- A **numeric** field's bins are of equal width, a power of two fixed from its first
  ``warmup`` values (about ``bins_per_spread`` bins across their interquartile range) and
  aligned on zero; a value falls in bin ``floor(value / width)``. Bins are kept only where
  values came (sorted arrays), so far-off values need no range fixed in advance: they land
  in bins of their own, which makes them improbable. Past ``max_bins`` bins the width
  doubles (two neighbouring bins become one). A field scores 0 during its warm-up.
- A **categorical** or **boolean** field has one bin per value (a hash of it; at most
  ``max_bins`` of them, values folded together past that). Text fields are not scored.
- A **missing** value (null, absent, or of the wrong type for its field) falls in the
  field's missing bin: rare missing values score high, usual ones low.

It reads each event's fields whole (the decoded batch, ``reads = "columns"``), types fields by
evidence as the statistics do (``streamfit.explore.kinds``; a field keeps its first kind),
and takes at most ``max_fields`` fields (the first that come).

**Prequential and vectorized.** ``score_learn_many`` scores each event with the histograms
as they were just before it, then learns it (unsupervised test-then-train), in numpy over
the batch: an event's count in its bin is the stored count plus the events before it in the
batch with the same bin (a stable sort per field), so the scores do not depend on where
batches are cut (but for the rare doubling of a width, done between batches).

Why our own code: no library offers a streaming, mergeable, vectorized histogram detector
(River's detectors learn one event at a time in Python, PyOD's fit whole datasets); the hot
path is a few numpy calls per field and batch.

**Merging.** Widths are powers of two aligned on zero, so two detectors' bins line up: a finer
histogram is coarsened to the other's width exactly, and the counts add. ``merge`` folds
another worker's detector into this one. **State**: the ``SFST`` format of
``streamfit.models.state`` (arrays, no pickle): ``model_from_state`` reads it back.

>>> import numpy as np, orjson
>>> from streamfit.batch import Messages
>>> from streamfit.codecs import decode_json
>>> rng = np.random.default_rng(0)
>>> rows = [{"temp": float(t), "valve": "open"} for t in rng.normal(20, 1, size=500)]
>>> rows += [{"temp": 35.0, "valve": "open"}, {"temp": 20.0, "valve": "stuck"}]
>>> batch = decode_json(Messages.from_values([orjson.dumps(r) for r in rows]), None,
...                     "classification").batch
>>> detector = HistogramDetector()
>>> scores = detector.score_learn_many(batch)
>>> bool(scores[500] > np.quantile(scores[100:500], 0.99) < scores[501])
True
>>> HistogramDetector.from_state(detector.state()).state() == detector.state()
True
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamfit.batch import Batch
from streamfit.errors import ModelError, StateFormatError
from streamfit.explore.kinds import infer_kind, read_column
from streamfit.limits import MAX_STATS_FIELDS
from streamfit.models.state import decode_state, encode_state

__all__ = ["HistogramDetector"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
_STATE_NAME = "builtin.HistogramDetector"
_LIMIT = 2**62  # numeric bin keys are clipped to +-2**62 (a value beyond is far out anyway)
Kind = Literal["numeric", "categorical"]


class _Field:
    """One field's histogram: sorted bin keys and their counts, the missing bin, the events
    counted since the field came, and (numeric) the width or the warm-up values."""

    __slots__ = ("buffer", "counts", "events", "keys", "kind", "missing", "width")

    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind
        self.keys: Ints = np.zeros(0, dtype=np.int64)
        self.counts: Ints = np.zeros(0, dtype=np.int64)
        self.missing = 0
        self.events = 0
        self.width: float | None = None if kind == "numeric" else 1.0
        self.buffer: Floats = np.zeros(0)  # a numeric field's first values, until its width

    def copy(self) -> _Field:
        out = _Field(self.kind)
        out.keys, out.counts, out.buffer = self.keys.copy(), self.counts.copy(), self.buffer.copy()
        out.missing, out.events, out.width = self.missing, self.events, self.width
        return out

    def add(self, keys: Ints, missing: int, events: int) -> None:
        """Add bin keys (any order, repeats) and missing values to the counts."""
        self.missing += missing
        self.events += events
        if not len(keys):
            return
        new, counts = np.unique(keys, return_counts=True)
        self.add_counts(new, counts)

    def add_counts(self, keys: Ints, counts: Ints) -> None:
        """Add ``counts`` to the bins ``keys`` (sorted, distinct), making the new ones."""
        position = np.searchsorted(self.keys, keys)
        known = position < len(self.keys)
        known[known] = self.keys[position[known]] == keys[known]
        if known.all():
            self.counts[position] += counts
            return
        self.counts[position[known]] += counts[known]
        fresh = ~known
        self.keys = np.insert(self.keys, position[fresh], keys[fresh])
        self.counts = np.insert(self.counts, position[fresh], counts[fresh])

    def coarsen(self, factor: int) -> None:
        """``factor`` (a power of two) neighbouring bins become one: the width times it."""
        assert self.width is not None
        self.width *= factor
        keys = np.floor_divide(self.keys, factor)
        merged, inverse = np.unique(keys, return_inverse=True)
        self.keys = merged
        self.counts = np.bincount(inverse, weights=self.counts, minlength=len(merged)).astype(
            np.int64
        )


class HistogramDetector:
    """Streaming per-field histogram anomaly detector (see the module docstring).

    Parameters
    ----------
    bins_per_spread
        About how many bins a numeric field's interquartile range spans.
    warmup
        Values of a numeric field that fix its width (it scores 0 until then).
    alpha
        Laplace smoothing of the bins' probabilities.
    max_bins
        Bins per field at most (numeric: the width doubles; categorical: values fold).
    max_fields
        Fields scored at most (the first that come).
    """

    task: Literal["anomaly"] = "anomaly"
    reads = "columns"

    def __init__(
        self,
        bins_per_spread: float = 8.0,
        warmup: int = 64,
        alpha: float = 1.0,
        max_bins: int = 4096,
        max_fields: int = MAX_STATS_FIELDS,
    ) -> None:
        if not bins_per_spread > 0 or warmup < 2 or not alpha > 0 or max_bins < 16:
            raise ModelError(
                "HistogramDetector needs bins_per_spread > 0, warmup >= 2, alpha > 0 and "
                f"max_bins >= 16; got {bins_per_spread}, {warmup}, {alpha}, {max_bins}"
            )
        if max_fields < 1:
            raise ModelError(f"max_fields must be at least 1, got {max_fields}")
        self.bins_per_spread = float(bins_per_spread)
        self.warmup = int(warmup)
        self.alpha = float(alpha)
        self.max_bins = int(max_bins)
        self.max_fields = int(max_fields)
        self._fields: dict[str, _Field] = {}
        self._ignored: set[str] = set()  # text fields (bounded by the fields a batch has)
        self._n_seen = 0

    @property
    def n_seen(self) -> int:
        """Events learned."""
        return self._n_seen

    @property
    def fields(self) -> dict[str, str]:
        """Each scored field and its kind, in the order they came."""
        return {name: f.kind for name, f in self._fields.items()}

    def params(self) -> dict[str, Any]:
        return {
            "bins_per_spread": self.bins_per_spread,
            "warmup": self.warmup,
            "alpha": self.alpha,
            "max_bins": self.max_bins,
            "max_fields": self.max_fields,
        }

    # -- scoring and learning ------------------------------------------------------------------

    def score_learn_many(self, batch: Batch) -> Floats:
        """Each event's score by the detector as it was just before it; then learn it."""
        return self._run(batch, learn=True)

    def score_many(self, batch: Batch) -> Floats:
        """Each event's score; nothing is learned."""
        return self._run(batch, learn=False)

    def learn_many(self, batch: Batch) -> None:
        """Learn the events of ``batch`` (scores are computed, and dropped)."""
        self._run(batch, learn=True)

    def _run(self, batch: Batch, learn: bool) -> Floats:
        n = len(batch)
        scores = np.zeros(n)
        if n == 0:
            return scores
        self._discover(batch)
        for name, state in self._fields.items():
            column = batch.columns.get(name)
            keys, present = self._keys(state, column, name in batch.booleans, n)
            if state.width is None:
                scored = self._warm(state, keys, present, learn)
                if scored >= n:
                    continue
                keys, present = self._keys(state, column, name in batch.booleans, n)
                part = slice(scored, n)
                scores[part] += self._score_field(state, keys[part], present[part], learn)
                if learn:
                    self._learn_field(state, keys[part], present[part])
                continue
            scores += self._score_field(state, keys, present, learn)
            if learn:
                self._learn_field(state, keys, present)
        if learn:
            self._n_seen += n
        return scores

    def _discover(self, batch: Batch) -> None:
        for name, column in batch.columns.items():
            if name in self._fields or name in self._ignored:
                continue
            if len(self._fields) >= self.max_fields:
                break
            kind = infer_kind(column, name in batch.booleans)
            if kind is None:
                continue
            if kind == "text":
                if len(self._ignored) < 10 * self.max_fields:
                    self._ignored.add(name)
                continue
            self._fields[name] = _Field("numeric" if kind == "numeric" else "categorical")

    def _keys(
        self, state: _Field, column: npt.NDArray[Any] | None, boolean: bool, n: int
    ) -> tuple[Ints, npt.NDArray[np.bool_]]:
        """Each row's bin key, and whether it has a value (keys of other rows are 0). A
        numeric field in its warm-up gives its values' bits (it has no width yet)."""
        if column is None:
            return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        if state.kind == "numeric":
            read = read_column(column, "numeric", boolean)
            assert read.numbers is not None
            values = read.numbers
            present = ~np.isnan(values)
            if state.width is None:
                return values.view(np.int64), present
            with np.errstate(invalid="ignore"):
                scaled = np.floor(np.where(present, values, 0.0) / state.width)
            return np.clip(scaled, -_LIMIT, _LIMIT).astype(np.int64), present
        read = read_column(column, "boolean" if boolean else "categorical", boolean)
        assert read.codes is not None
        present = read.codes >= 0
        hashed = pd.util.hash_array(np.array(read.texts, dtype=object)).view(np.int64)
        buckets = np.append(hashed % self.max_bins, 0)  # code -1 picks the 0 at the end
        return buckets[read.codes], present

    def _warm(self, state: _Field, keys: Ints, present: npt.NDArray[np.bool_], learn: bool) -> int:
        """A numeric field's warm-up: its rows score 0. Returns how many rows of the batch it
        took (up to the value that fixed the width; all of them when not learning)."""
        n = len(keys)
        if not learn:
            return n
        values = keys.view(np.float64)
        positions = np.flatnonzero(present)
        room = self.warmup - len(state.buffer)
        if len(positions) < room:
            state.buffer = np.concatenate([state.buffer, values[positions]])
            state.missing += n - len(positions)
            state.events += n
            return n
        stop = int(positions[room - 1]) + 1
        state.buffer = np.concatenate([state.buffer, values[positions[:room]]])
        state.missing += stop - room
        state.events += stop
        self._fix_width(state)
        return stop

    def _fix_width(self, state: _Field) -> None:
        """The width from the warm-up values; they then go to the bins."""
        values = state.buffer
        q25, q75 = np.quantile(values, [0.25, 0.75])
        spread = float(q75 - q25) or float(values.max() - values.min())
        spread = spread or float(np.abs(values).max()) or 1.0
        state.width = 2.0 ** round(math.log2(spread / self.bins_per_spread))
        keys = np.clip(np.floor(values / state.width), -_LIMIT, _LIMIT).astype(np.int64)
        state.buffer = np.zeros(0)
        state.add(keys, 0, 0)
        self._cap(state)

    def _score_field(
        self, state: _Field, keys: Ints, present: npt.NDArray[np.bool_], learn: bool
    ) -> Floats:
        """-log p of each row's bin, from the counts before it (and, when learning, the rows
        before it in the batch)."""
        n = len(keys)
        stored_keys, stored_counts = state.keys, state.counts
        if len(stored_keys):
            position = np.minimum(np.searchsorted(stored_keys, keys), len(stored_keys) - 1)
            found = present & (stored_keys[position] == keys)
            before = np.where(found, stored_counts[position], 0)
        else:
            found = np.zeros(n, dtype=bool)
            before = np.zeros(n, dtype=np.int64)
        before = np.where(present, before, state.missing)
        occupied = np.full(n, len(stored_keys), dtype=np.int64)
        events = np.full(n, state.events, dtype=np.int64)
        if learn and n > 1:
            grouped = np.where(present, keys, np.iinfo(np.int64).min)  # missing: one group
            earlier = _earlier_equal(grouped)
            before = before + earlier
            first_new = present & ~found & (earlier == 0)
            occupied += np.cumsum(first_new) - first_new
            events += np.arange(n)
        alpha = self.alpha
        probability = (before + alpha) / (events + alpha * (occupied + 2))
        scores: Floats = -np.log(probability)
        return scores

    def _learn_field(self, state: _Field, keys: Ints, present: npt.NDArray[np.bool_]) -> None:
        state.add(keys[present], int(len(keys) - np.count_nonzero(present)), len(keys))
        self._cap(state)

    def _cap(self, state: _Field) -> None:
        if state.kind == "numeric":
            while len(state.keys) > self.max_bins:
                state.coarsen(2)

    # -- merging -------------------------------------------------------------------------------

    def merge(self, other: HistogramDetector) -> None:
        """Fold ``other``'s histograms into these (``other`` is not changed)."""
        if not isinstance(other, HistogramDetector):
            raise ModelError(f"cannot merge a {type(other).__name__} into a HistogramDetector")
        for name, theirs in other._fields.items():
            mine = self._fields.get(name)
            if mine is None:
                if len(self._fields) < self.max_fields:
                    self._fields[name] = theirs.copy()
                continue
            if mine.kind != theirs.kind:
                continue  # the field is of another kind there: ours stays
            self._merge_field(mine, theirs.copy())
        self._n_seen += other._n_seen

    def _merge_field(self, mine: _Field, theirs: _Field) -> None:
        if mine.kind == "numeric":
            if mine.width is None and theirs.width is None:
                mine.buffer = np.concatenate([mine.buffer, theirs.buffer])
                mine.missing += theirs.missing
                mine.events += theirs.events
                if len(mine.buffer) >= self.warmup:
                    self._fix_width(mine)
                return
            if mine.width is None or theirs.width is None:
                waiting, fixed = (mine, theirs) if mine.width is None else (theirs, mine)
                assert fixed.width is not None
                keys = np.floor(waiting.buffer / fixed.width)
                waiting.width = fixed.width
                waiting.buffer = np.zeros(0)
                waiting.add(np.clip(keys, -_LIMIT, _LIMIT).astype(np.int64), 0, 0)
            assert mine.width is not None and theirs.width is not None
            if theirs.width < mine.width:
                theirs.coarsen(round(mine.width / theirs.width))
            elif mine.width < theirs.width:
                mine.coarsen(round(theirs.width / mine.width))
        mine.missing += theirs.missing
        mine.events += theirs.events
        mine.add_counts(theirs.keys, theirs.counts)
        self._cap(mine)

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> bytes:
        """The ``SFST`` blob of this detector (arrays of keys and counts, no pickle)."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        fields = []
        for i, (name, f) in enumerate(self._fields.items()):
            fields.append([name, f.kind, f.width, f.missing, f.events])
            arrays[f"keys{i}"] = f.keys
            arrays[f"counts{i}"] = f.counts
            arrays[f"buffer{i}"] = f.buffer
        return encode_state(
            _STATE_NAME,
            params=self.params(),
            counters={"n_seen": self._n_seen},
            arrays=arrays,
            extra={"fields": fields, "ignored": sorted(self._ignored)},
        )

    @classmethod
    def from_state(cls, blob: bytes) -> HistogramDetector:
        """Rebuild from ``state()``; ``StateFormatError`` on a bad blob."""
        state = decode_state(blob, expect_model=_STATE_NAME)
        try:
            detector = cls(**state.params)
            detector._n_seen = int(state.counters.get("n_seen", 0))
            detector._ignored = set(state.extra.get("ignored", []))
            for i, (name, kind, width, missing, events) in enumerate(state.extra["fields"]):
                if kind not in ("numeric", "categorical"):
                    raise ValueError(f"unknown kind {kind!r}")
                f = _Field(kind)
                f.width = None if width is None else float(width)
                f.missing, f.events = int(missing), int(events)
                f.keys = state.arrays[f"keys{i}"].astype(np.int64)
                f.counts = state.arrays[f"counts{i}"].astype(np.int64)
                f.buffer = state.arrays[f"buffer{i}"].astype(np.float64)
                if len(f.keys) != len(f.counts):
                    raise ValueError(f"field {name!r}: keys and counts differ in length")
                detector._fields[str(name)] = f
        except (KeyError, TypeError, ValueError, ModelError) as exc:
            raise StateFormatError(f"model state: not a HistogramDetector's: {exc}") from exc
        return detector


def _earlier_equal(keys: Ints) -> Ints:
    """For each row, how many rows before it have the same key (a stable sort).

    >>> _earlier_equal(np.array([5, 3, 5, 5, 3])).tolist()
    [0, 0, 1, 2, 1]
    """
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    positions = np.arange(n)
    group_start = np.maximum.accumulate(np.where(starts, positions, 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = positions - group_start
    return out
