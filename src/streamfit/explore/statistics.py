"""Live statistics of every field of a stream, over all time and over a recent window.

``StreamStatistics`` is fed each decoded batch once (``update``), vectorized: per field, one
pass of numpy over its column and a few calls into Apache DataSketches (see
``streamfit.explore.sketches``); for the numeric fields together, their co-moments
(``streamfit.explore.comoments``). It reports, per field, over all time and over the last
``window`` events: the count of valid values, missing and invalid ones, distinct values,
minimum, maximum, mean, variance, quantiles, a histogram, the most frequent values, and the
correlations of numeric fields (``rows``).

**The window** is tumbling: the events are cut into slices of ``window / 4`` events; the
slice being filled and the three before it are the recent window (between 3/4 of ``window``
and ``window`` events). A slice that is full is merged into the all-time sketches, so each
value is added to one set of sketches only.

**Kinds and schema changes.** A field's kind is decided by evidence (``streamfit.explore.
kinds``). The statistics record each change of a stream's schema as a ``SchemaChange``
(``changes``): a field that appears (old kind ``None``), one that disappears (new kind
``None``: missing from ``window`` events in a row) and one whose type changes. The rule for a
type change: a field whose values keep coming as another type, ``retype_after`` values in a
row (numbers that arrive as strings that are not numbers, categories that arrive as
numbers), takes the kind those values have: its statistics start again under that kind from
the value that completed the run (the values before it were counted as invalid), and the
change is recorded with the coordinates of the first value of the run. A few stray values
of another type change nothing: each is invalid for a numeric or boolean field (counted), a
category for a categorical one. A field whose type the spec gives (``features.types``) never
changes kind. Models follow the featurizer's rule instead (a field keeps its first kind
there: see ``streamfit.features.featurizer``), so a model never restarts.

**Limits.** At most ``max_fields`` fields are tracked (``limits.MAX_STATS_FIELDS`` at most),
the first that come; later new fields are counted in ``untracked_fields`` and logged once,
and nothing else is kept of them, so a stream of ever new field names holds no memory.
Correlations cover the first ``limits.MAX_CORRELATED_FIELDS`` numeric fields.

**State and merging.** ``state()`` is a versioned blob in the envelope of
``streamfit._envelope``; ``from_state`` reads it back. Every sketch merges, so the views of
several workers add up (``merged_views``): the all-time view of a group is that of the whole
stream, its recent view the last ``window`` events of each worker. KLL sketches compact at
random, so two runs over the same events give quantiles that agree within the rank error,
not bit for bit; every other figure is exact or deterministic.

State format, version 1 (``SFSTATS\\0``): a JSON header ``{"config", "events", "fields":
[[name, kind, typed], ...], "watch", "untracked", "changes", "spans": [span, ...]}``, the
spans being the all-time one, then the recent ones oldest first, each ``{"events", "fields":
[[name, scalars], ...], "correlated": [names]}``; the payload is the arrays listed in the
header's ``"arrays"`` (each field sketch's three DataSketches blobs as bytes, each span's
co-moment matrices), as ``pack_arrays`` writes them.

>>> import numpy as np, orjson
>>> from streamfit.batch import Messages
>>> from streamfit.codecs import decode_json
>>> events = [orjson.dumps({"t": float(i % 7), "site": "ab"[i % 2]}) for i in range(100)]
>>> batch = decode_json(Messages.from_values(events), None, "classification").batch
>>> stats = StreamStatistics(window=1000)
>>> stats.update(batch)
>>> row = stats.rows()[0]
>>> row["field"], row["count"], row["min"], row["max"], row["p50"], row["distinct_count"]
('t', 100, 0.0, 6.0, 3.0, 7)
>>> [(c.field, c.old_kind, c.new_kind, c.offset) for c in stats.changes]
[('t', None, 'numeric', 0), ('site', None, 'categorical', 0)]
>>> StreamStatistics.from_state(stats.state()).rows()[0]["count"]
100
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.batch import Batch
from streamfit.errors import StateFormatError
from streamfit.explore.comoments import CoMoments
from streamfit.explore.kinds import KINDS, Kind, ReadColumn, infer_kind, read_column
from streamfit.explore.sketches import FieldSketch, SketchSizes
from streamfit.limits import MAX_CORRELATED_FIELDS, MAX_STATS_FIELDS

__all__ = [
    "DEFAULT_QUANTILES",
    "SchemaChange",
    "StreamStatistics",
    "View",
    "quantile_column",
]

log = logging.getLogger("streamfit.explore")

STATE_VERSION = 1
_MAGIC = b"SFSTATS\x00"
_WHAT = "field statistics"
_SLICES = 4  # the recent window is the slice being filled and the 3 before it
_WANTED_KEPT = 10_000
_CONTINUOUS = 0.9  # a numeric field whose batches' values are 90% distinct is continuous
_RECHECK = 32

#: The quantiles reported by default: ``p01, p05, p25, p50, p75, p95, p99``.
DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

Coordinates = tuple[str, int, int]  # topic, partition, offset


def quantile_column(q: float) -> str:
    """The column of the quantile ``q``: ``p`` and its percentage, two digits at least.

    >>> [quantile_column(q) for q in (0.01, 0.5, 0.99, 0.999)]
    ['p01', 'p50', 'p99', 'p99_9']
    """
    percent = round(q * 100, 6)
    whole = int(percent)
    text = f"p{whole:02d}"
    fraction = f"{percent - whole:.6f}"[2:].rstrip("0")
    return f"{text}_{fraction}" if fraction else text


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A field that appeared (``old_kind`` None), disappeared (``new_kind`` None) or changed
    kind, and the coordinates of the first event that showed it."""

    field: str
    old_kind: str | None
    new_kind: str | None
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class _Watch:
    """What a field's schema changes are watched with: its run of values of another kind,
    its run of events without a value, and whether it is gone."""

    other_run: int = 0
    other_start: Coordinates | None = None
    missing_run: int = 0
    missing_start: Coordinates | None = None
    gone: bool = False
    # a continuous measurement: its values are not told apart (looked at again every
    # ``_RECHECK`` batches)
    continuous: bool = False
    batches: int = 0


@dataclass(slots=True)
class View:
    """The statistics of a span of events: one ``FieldSketch`` per field, the co-moments of
    the numeric fields, and how many events the span has."""

    events: int = 0
    fields: dict[str, FieldSketch] = field(default_factory=dict)
    comoments: CoMoments | None = None

    def merge(self, other: View) -> None:
        """Add ``other`` (its sketches are copied, never shared)."""
        self.events += other.events
        for name, theirs in other.fields.items():
            mine = self.fields.get(name)
            if mine is None:
                self.fields[name] = theirs.copy()
            elif mine.kind == theirs.kind:
                mine.merge(theirs)
            elif _weight(theirs) > _weight(mine):  # kinds differ: the better-evidenced wins
                self.fields[name] = theirs.copy()
        if other.comoments is not None:
            if self.comoments is None:
                self.comoments = other.comoments.copy()
            else:
                self.comoments.merge(other.comoments)

    def copy(self) -> View:
        out = View(self.events)
        out.merge(self)
        out.events = self.events
        return out


def _weight(sketch: FieldSketch) -> int:
    return sketch.count + sketch.missing + sketch.invalid


class StreamStatistics:
    """Per-field statistics of a stream (see the module docstring).

    Parameters
    ----------
    window
        Events in the recent window (cut into 4 slices).
    max_fields
        Fields tracked at most (at most ``limits.MAX_STATS_FIELDS``).
    include, exclude
        Field names or glob patterns: only ``include`` (all when None), never ``exclude``.
    types
        Kinds given by the spec (``features.types``): never inferred, never changed.
    correlation
        Whether to keep the co-moments of the numeric fields.
    """

    def __init__(
        self,
        *,
        window: int = 100_000,
        max_fields: int = MAX_STATS_FIELDS,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        types: Mapping[str, Kind] | None = None,
        correlation: bool = True,
        text_min_tokens: int = 4,
        retype_after: int = 20,
        sizes: SketchSizes | None = None,
    ) -> None:
        if window < _SLICES:
            raise ValueError(f"window must be at least {_SLICES} events, got {window}")
        self.window = window
        self.max_fields = min(max_fields, MAX_STATS_FIELDS)
        self.include = None if include is None else tuple(include)
        self.exclude = tuple(exclude)
        self.types: dict[str, Kind] = dict(types or {})
        self.correlation = correlation
        self.text_min_tokens = text_min_tokens
        self.retype_after = retype_after
        self.sizes = sizes or SketchSizes()
        self.slice_events = math.ceil(window / _SLICES)
        self.events = 0
        self.untracked_fields = 0
        self._kinds: dict[str, Kind] = {}
        self._watch: dict[str, _Watch] = {}
        self._wanted_cache: dict[str, bool] = {}
        self._all_time = self._new_view()
        self._recent: list[View] = []  # closed slices of the window, oldest first
        self._current = self._new_view()
        self.changes: list[SchemaChange] = []  # recorded, not yet taken (``take_changes``)

    def _new_view(self) -> View:
        return View(comoments=CoMoments(self._correlated()) if self.correlation else None)

    # -- properties ----------------------------------------------------------------------------

    @property
    def kinds(self) -> dict[str, Kind]:
        """Each tracked field and its kind, in the order they came (a copy)."""
        return dict(self._kinds)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments, as JSON values."""
        return {
            "window": self.window,
            "max_fields": self.max_fields,
            "include": None if self.include is None else list(self.include),
            "exclude": list(self.exclude),
            "types": self.types,
            "correlation": self.correlation,
            "text_min_tokens": self.text_min_tokens,
            "retype_after": self.retype_after,
            "sizes": [
                self.sizes.kll_k,
                self.sizes.hll_lg_k,
                self.sizes.items_lg_max,
                self.sizes.top_per_batch,
            ],
        }

    def take_changes(self) -> list[SchemaChange]:
        """The schema changes recorded since the last call (they are then forgotten)."""
        changes, self.changes = self.changes, []
        return changes

    # -- updates -------------------------------------------------------------------------------

    def update(self, batch: Batch) -> None:
        """Add the events of ``batch`` (every field of every row)."""
        n = len(batch)
        if n == 0:
            return
        segments = self._segments(batch)
        numeric = [name for name in self._correlated()]
        start = 0
        while start < n:
            stop = min(n, start + self.slice_events - self._current.events)
            self._add_rows(batch, segments, numeric, start, stop)
            self._current.events += stop - start
            self.events += stop - start
            if self._current.events >= self.slice_events:
                self._close_slice()
            start = stop
        for name in self._kinds:
            self._watch_missing(name, batch, segments.get(name))

    def _segments(self, batch: Batch) -> dict[str, list[tuple[int, int, Kind, ReadColumn]]]:
        """Each tracked field of ``batch`` read as its kind: the rows of each kind it has
        (one segment, or two when its type changes in this batch)."""
        out: dict[str, list[tuple[int, int, Kind, ReadColumn]]] = {}
        n = len(batch)
        for name, column in batch.columns.items():
            if not self._wanted(name):
                continue
            boolean = name in batch.booleans
            kind = self._kinds.get(name)
            first = 0  # a new field is counted from its first value on
            if kind is None:
                kind = self.types.get(name) or infer_kind(column, boolean, self.text_min_tokens)
                if kind is None:
                    continue
                if len(self._kinds) >= self.max_fields:
                    self._untrack(name)
                    continue
                self._add_field(name, kind)
                read = read_column(column, kind, boolean)
                first = int(np.argmax(~read.missing))
                self._record(name, None, kind, batch, first)
            else:
                read = read_column(column, kind, boolean)
            retype = None if name in self.types else self._watch_kind(name, read, batch)
            if retype is None:
                out[name] = [(first, n, kind, read)]
                continue
            cut, start = retype
            new_kind = infer_kind(column[cut:], boolean, self.text_min_tokens) or kind
            self._retype(name, new_kind, start)
            out[name] = [(cut, n, new_kind, read_column(column, new_kind, boolean))]
        return out

    def _add_rows(
        self,
        batch: Batch,
        segments: Mapping[str, list[tuple[int, int, Kind, ReadColumn]]],
        numeric: list[str],
        start: int,
        stop: int,
    ) -> None:
        """Add rows ``start:stop`` to the slice being filled."""
        fields = self._current.fields
        for name, kind in self._kinds.items():
            parts = segments.get(name)
            if parts is None:  # not in this batch: missing in every row
                sketch = fields.get(name)
                if sketch is None:
                    sketch = fields[name] = FieldSketch(kind, self.sizes)
                sketch.missing += stop - start
                continue
            watch = self._watch[name]
            for a, b, segment_kind, read in parts:
                lo, hi = max(a, start), min(b, stop)
                if lo >= hi:
                    continue
                sketch = fields.get(name)
                if sketch is None or sketch.kind != segment_kind:
                    sketch = fields[name] = FieldSketch(segment_kind, self.sizes)
                watch.batches += 1
                look = not watch.continuous or watch.batches % _RECHECK == 0
                share = sketch.add(read, lo, hi, distinct=look)
                if look:
                    watch.continuous = share > _CONTINUOUS and hi - lo >= 100
        comoments = self._current.comoments
        if comoments is not None and numeric:
            comoments.add_fields([name for name in numeric if name not in comoments.fields])
            values = np.full((stop - start, len(comoments.fields)), np.nan)
            for j, name in enumerate(comoments.fields):
                for a, b, kind, read in segments.get(name, ()):
                    lo, hi = max(a, start), min(b, stop)
                    if lo < hi and kind == "numeric" and read.numbers is not None:
                        values[lo - start : hi - start, j] = read.numbers[lo:hi]
            comoments.add(values)

    def _close_slice(self) -> None:
        self._all_time.merge(self._current)
        self._recent.append(self._current)
        del self._recent[: -(_SLICES - 1)]
        self._current = self._new_view()

    def _correlated(self) -> list[str]:
        if not self.correlation:
            return []
        numeric = [name for name, kind in self._kinds.items() if kind == "numeric"]
        return numeric[:MAX_CORRELATED_FIELDS]

    def _wanted(self, name: str) -> bool:
        known = self._wanted_cache.get(name)
        if known is None:
            if len(self._wanted_cache) >= _WANTED_KEPT:  # a stream of ever new names
                self._wanted_cache.clear()
            known = not _matches(name, self.exclude) and (
                self.include is None or _matches(name, self.include)
            )
            self._wanted_cache[name] = known
        return known

    def _add_field(self, name: str, kind: Kind) -> None:
        self._kinds[name] = kind
        self._watch[name] = _Watch()

    def _untrack(self, name: str) -> None:
        if not self.untracked_fields:
            log.warning(
                "statistics track at most %d fields: new fields such as %r have none "
                "(counted in untracked_fields)",
                self.max_fields,
                name[:100],
            )
        self.untracked_fields += 1

    def _record(
        self, name: str, old: Kind | None, new: Kind | None, batch: Batch, row: int
    ) -> None:
        meta = batch.meta
        self.changes.append(
            SchemaChange(
                name,
                old,
                new,
                str(meta.topics[row]),
                int(meta.partitions[row]),
                int(meta.offsets[row]),
            )
        )

    def _record_at(self, name: str, old: Kind | None, new: Kind | None, at: Coordinates) -> None:
        self.changes.append(SchemaChange(name, old, new, *at))

    # -- schema changes ------------------------------------------------------------------------

    def _watch_kind(
        self, name: str, read: ReadColumn, batch: Batch
    ) -> tuple[int, Coordinates] | None:
        """The row at which ``name``'s run of values of another kind reaches
        ``retype_after`` in this batch, and where the run started; None if it does not."""
        watch = self._watch[name]
        present = np.flatnonzero(~read.missing)
        if not len(present):
            return None
        seq = read.other[present]
        if not seq.any():
            watch.other_run, watch.other_start = 0, None
            return None
        positions = np.arange(len(seq))
        last_other_kind = np.maximum.accumulate(np.where(~seq, positions, -1))
        run = positions - last_other_kind + np.where(last_other_kind < 0, watch.other_run, 0)
        hits = np.flatnonzero(seq & (run >= self.retype_after))

        def run_start(p: int) -> Coordinates:
            if last_other_kind[p] < 0 and watch.other_start is not None:
                return watch.other_start
            return _coordinates(batch, int(present[last_other_kind[p] + 1]))

        if len(hits):
            p = int(hits[0])
            start = run_start(p)
            watch.other_run, watch.other_start = 0, None
            return int(present[p]), start
        if seq[-1]:
            watch.other_start = run_start(len(seq) - 1)
            watch.other_run = int(run[-1])
        else:
            watch.other_run, watch.other_start = 0, None
        return None

    def _retype(self, name: str, kind: Kind, start: Coordinates) -> None:
        """``name`` is of ``kind`` from now on: its statistics start again."""
        old = self._kinds[name]
        self._kinds[name] = kind
        self._record_at(name, old, kind, start)
        log.info("field %r changed type: %s, now %s (from %s)", name, old, kind, start)
        for view in (self._all_time, *self._recent, self._current):
            view.fields.pop(name, None)
            if view.comoments is not None and name in view.comoments.fields:
                view.comoments.reset_field(name)

    def _watch_missing(
        self, name: str, batch: Batch, parts: list[tuple[int, int, Kind, ReadColumn]] | None
    ) -> None:
        """Record ``name`` gone after ``window`` events in a row without it, and back when a
        value comes again."""
        watch = self._watch[name]
        n = len(batch)
        if parts is None:
            present = np.zeros(0, dtype=np.intp)
        elif len(parts) == 1 and parts[0][:2] == (0, n):
            present = np.flatnonzero(~parts[0][3].missing)
        else:  # rows outside the parts: before a new field's first value, or a type change
            missing = np.zeros(n, dtype=bool)
            for a, b, _, read in parts:
                missing[a:b] = read.missing[a:b]
            present = np.flatnonzero(~missing)
        kind = self._kinds[name]
        if not len(present):
            if watch.missing_run == 0:
                watch.missing_start = _coordinates(batch, 0)
            watch.missing_run += n
        else:
            runs = np.diff(present, prepend=-1) - 1  # events without it before each value
            runs[0] += watch.missing_run
            long = np.flatnonzero(runs >= self.window)
            for i in long.tolist():
                if not (i == 0 and watch.gone):
                    first = int(present[i - 1]) + 1 if i else 0
                    start = watch.missing_start if i == 0 and watch.missing_start else None
                    self._record_at(name, kind, None, start or _coordinates(batch, first))
                self._record(name, None, kind, batch, int(present[i]))
            if watch.gone and (not len(long) or long[0] != 0):
                self._record(name, None, kind, batch, int(present[0]))
            watch.gone = False
            trailing = n - 1 - int(present[-1])
            watch.missing_run = trailing
            watch.missing_start = _coordinates(batch, int(present[-1]) + 1) if trailing else None
        if watch.missing_run >= self.window and not watch.gone:
            assert watch.missing_start is not None
            self._record_at(name, kind, None, watch.missing_start)
            watch.gone = True

    # -- views and rows ------------------------------------------------------------------------

    def views(self) -> tuple[View, View]:
        """Fresh copies of the all-time view and of the recent window's."""
        all_time = self._all_time.copy()
        all_time.merge(self._current)
        recent = View(comoments=CoMoments() if self.correlation else None)
        for part in (*self._recent, self._current):
            recent.merge(part)
        return all_time, recent

    def merged_views(self, others: Iterable[StreamStatistics]) -> tuple[View, View]:
        """These views with the other workers' added: the group's statistics."""
        all_time, recent = self.views()
        for other in others:
            theirs_all, theirs_recent = other.views()
            all_time.merge(theirs_all)
            recent.merge(theirs_recent)
        return all_time, recent

    def rows(
        self,
        views: tuple[View, View] | None = None,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        histogram_bins: int = 10,
        top_values: int = 10,
    ) -> list[dict[str, Any]]:
        """One row per field (of ``views``, default this worker's own): its all-time figures,
        then ``window_``-prefixed its recent window's; histograms, top values and
        correlations as JSON-ready lists and dicts."""
        all_time, recent = views or self.views()
        names = list(all_time.fields)
        out = []
        for name in names:
            row: dict[str, Any] = {"field": name, "kind": all_time.fields[name].kind}
            row["events"] = all_time.events
            row.update(
                _figures(all_time, name, quantiles, histogram_bins, top_values, "", row["kind"])
            )
            row["window_events"] = recent.events
            row.update(
                _figures(
                    recent, name, quantiles, histogram_bins, top_values, "window_", row["kind"]
                )
            )
            out.append(row)
        return out

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> bytes:
        """Everything, in the versioned format of this module's docstring."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        spans = []
        for s, view in enumerate((self._all_time, *self._recent, self._current)):
            fields = []
            for f, (name, sketch) in enumerate(view.fields.items()):
                scalars, blobs = sketch.parts()
                fields.append([name, scalars])
                for part, blob in zip("qdt", blobs, strict=True):
                    arrays[f"{s}.{f}.{part}"] = np.frombuffer(blob, dtype=np.uint8)
            correlated = None
            if view.comoments is not None:
                correlated = view.comoments.fields
                for part in ("n", "mean", "m2", "c"):
                    arrays[f"{s}.{part}"] = getattr(view.comoments, part)
            spans.append({"events": view.events, "fields": fields, "correlated": correlated})
        entries, chunks = pack_arrays(arrays, _WHAT)
        header = orjson.dumps(
            {
                "config": self.config(),
                "events": self.events,
                "fields": [[name, kind] for name, kind in self._kinds.items()],
                "watch": {name: asdict(watch) for name, watch in self._watch.items()},
                "untracked": self.untracked_fields,
                "changes": [asdict(change) for change in self.changes],
                "spans": spans,
                "arrays": entries,
            }
        )
        return seal(_MAGIC, STATE_VERSION, header, *chunks)

    @classmethod
    def from_state(cls, blob: bytes) -> StreamStatistics:
        """Rebuild from ``state()`` bytes; ``StateFormatError`` if they are not such a blob."""
        opened = unseal(blob, _MAGIC, STATE_VERSION, _WHAT)
        header = opened.header
        arrays = unpack_arrays(opened.payload, header.get("arrays"), _WHAT)
        try:
            config = header["config"]
            sizes = SketchSizes(*(int(v) for v in config["sizes"]))
            stats = cls(
                window=int(config["window"]),
                max_fields=int(config["max_fields"]),
                include=config["include"],
                exclude=config["exclude"],
                types=config["types"],
                correlation=bool(config["correlation"]),
                text_min_tokens=int(config["text_min_tokens"]),
                retype_after=int(config["retype_after"]),
                sizes=sizes,
            )
            stats.events = int(header["events"])
            stats.untracked_fields = int(header["untracked"])
            for name, kind in header["fields"]:
                if kind not in KINDS or not isinstance(name, str):
                    raise ValueError(f"bad field {[name, kind]!r}")
                stats._add_field(name, kind)
            for name, watch in header["watch"].items():
                stats._watch[name] = _Watch(
                    int(watch["other_run"]),
                    _maybe_coordinates(watch["other_start"]),
                    int(watch["missing_run"]),
                    _maybe_coordinates(watch["missing_start"]),
                    bool(watch["gone"]),
                    bool(watch["continuous"]),
                    int(watch["batches"]),
                )
            stats.changes = [SchemaChange(**change) for change in header["changes"]]
            views = []
            for s, span in enumerate(header["spans"]):
                view = View(int(span["events"]))
                for f, (name, scalars) in enumerate(span["fields"]):
                    blobs = [arrays[f"{s}.{f}.{part}"].tobytes() for part in "qdt"]
                    view.fields[name] = FieldSketch.from_parts(scalars, blobs)
                if span["correlated"] is not None:
                    comoments = CoMoments()
                    comoments.fields = list(span["correlated"])
                    for part in ("n", "mean", "m2", "c"):
                        setattr(comoments, part, arrays[f"{s}.{part}"].astype(np.float64))
                    view.comoments = comoments
                views.append(view)
            if len(views) < 2:
                raise ValueError("fewer than two spans")
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"{_WHAT}: header is invalid: {exc}") from exc
        stats._all_time, *stats._recent, stats._current = views
        return stats


def _figures(
    view: View,
    name: str,
    quantiles: Sequence[float],
    bins: int,
    top: int,
    prefix: str,
    kind: str,
) -> dict[str, Any]:
    """One view's figures of one field, named with ``prefix``."""
    sketch = view.fields.get(name)
    if sketch is not None and sketch.kind != kind:
        sketch = None  # another worker's view of a field that changed kind
    out: dict[str, Any] = {}
    if sketch is None:
        out.update({f"{prefix}{key}": None for key in ("count", "missing", "invalid")})
        out.update({f"{prefix}{key}": None for key in ("distinct_count", "min", "max", "mean")})
        out[f"{prefix}variance"] = None
        out.update({f"{prefix}{quantile_column(q)}": None for q in quantiles})
        out.update({f"{prefix}{key}": None for key in ("histogram", "top_values")})
        out[f"{prefix}correlations"] = None
        return out
    numeric = sketch.kind == "numeric" and sketch.count > 0
    out[f"{prefix}count"] = sketch.count
    out[f"{prefix}missing"] = sketch.missing
    out[f"{prefix}invalid"] = sketch.invalid
    out[f"{prefix}distinct_count"] = sketch.distinct
    out[f"{prefix}min"] = sketch.minimum if numeric else None
    out[f"{prefix}max"] = sketch.maximum if numeric else None
    if sketch.kind == "boolean":
        out[f"{prefix}mean"] = sketch.trues / sketch.count if sketch.count else None
    else:
        out[f"{prefix}mean"] = sketch.mean if numeric else None
    out[f"{prefix}variance"] = sketch.variance
    values = sketch.quantiles(list(quantiles)) if numeric else None
    for i, q in enumerate(quantiles):
        out[f"{prefix}{quantile_column(q)}"] = None if values is None else values[i]
    out[f"{prefix}histogram"] = sketch.histogram(bins) if numeric else None
    out[f"{prefix}top_values"] = [{"value": v, "count": c} for v, c in sketch.top(top)]
    out[f"{prefix}correlations"] = _correlations(view.comoments, name)
    return out


def _correlations(comoments: CoMoments | None, name: str) -> dict[str, float] | None:
    if comoments is None or name not in comoments.fields:
        return None
    i = comoments.fields.index(name)
    row = comoments.correlation()[i]
    return {
        other: round(float(r), 6)
        for other, r in zip(comoments.fields, row.tolist(), strict=True)
        if other != name and math.isfinite(r)
    }


def _coordinates(batch: Batch, row: int) -> Coordinates:
    meta = batch.meta
    return str(meta.topics[row]), int(meta.partitions[row]), int(meta.offsets[row])


def _maybe_coordinates(value: Any) -> Coordinates | None:
    if value is None:
        return None
    topic, partition, offset = value
    return str(topic), int(partition), int(offset)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)
