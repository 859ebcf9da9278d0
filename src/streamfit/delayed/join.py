"""The join of labels to the events they are for, by key, in the order they are handed in.

``LabelJoin`` holds the events that wait for their label (in a ``KeptArena``), the labels that
came before their event (*early* labels), and the keys already labeled. It is handed blocks of
events (``deposit``) and blocks of labels (``labels``) in one order, and answers each with the
pairs it completed (``Matches``, the events' kept rows and served predictions with their
labels, in the order they completed). Nothing in it depends on time or on how the stream was
polled: the same blocks in the same order give the same matches and the same state.

Rules, per key:

- an event waits for its label at most ``ttl`` (events: as many more events deposited;
  seconds: until an event or label stamped that much later is handed in); then it stops
  waiting (``events_expired``), and a label that comes for it later is *late*: a dead letter;
- a label whose event has not come waits for it as long, then is a dead letter (*unmatched*);
- a second label for a key (its event labeled already, or another label waiting) is counted
  (``labels_duplicate``) and ignored;
- a second event with the key of one still waiting replaces it (``events_superseded``);
- past ``max_waiting`` waiting events the oldest stop waiting (``events_evicted``); past as
  many early labels the oldest are dead letters; the keys labeled are remembered for
  duplicates while their event's ttl runs, at most ``max_waiting`` of them.

>>> import numpy as np
>>> from streamfit.batch import Messages
>>> from streamfit.features.featurizer import KeptRows
>>> def kept(n):
...     return KeptRows(np.zeros((n, 0)), np.zeros((n, 0)),
...                     (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0),
...                      np.zeros(0, np.intp)))
>>> join = LabelJoin(["m"], regression=True, ttl_events=100)
>>> events = Messages.from_values([b"{}"] * 2, topic="events")
>>> served = {"m": (np.array([[0.5], [1.5]]), [])}
>>> join.deposit([b"a", b"b"], kept(2), served, events).labels
[]
>>> labels = Messages.from_values([b"{}"] * 2, topic="labels")
>>> matches = join.labels([b"b", b"c"], [2.0, 3.0], labels)
>>> matches.labels, matches.offsets.tolist(), matches.served["m"][0].tolist()
([2.0], [1], [[1.5]])
>>> join.counters["labels_waiting"], join.counters["events_waiting"]
(1, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.batch import DeadLetter, Messages
from streamfit.delayed.arena import KeptArena, Served
from streamfit.errors import StateFormatError
from streamfit.features.featurizer import KeptRows
from streamfit.store.tables import LABEL_JOIN_COUNTS

__all__ = ["COUNTERS", "LabelJoin", "Matches"]

#: What a join counts (``LabelJoin.counters``): the first two are how many wait now; the
#: label-join rows of the store have a column each.
COUNTERS = LABEL_JOIN_COUNTS

_MAGIC = b"SFLJ"
_VERSION = 1
_WHAT = "label join state"
#: payloads of early labels kept for their dead letter, at most (past it: none kept)
MAX_KEPT_PAYLOAD = 64 * 1024


@dataclass(slots=True)
class _Early:
    """A label that came before its event."""

    label: object
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    clock: int  # the join's event clock when it came
    payload: bytes | None


@dataclass(slots=True)
class Matches:
    """Events paired with their labels, in the order they were paired.

    ``kept``: the events' kept rows; ``served``: each model's served predictions for them;
    ``keys``, ``topics``/``partitions``/``offsets``, ``timestamps``: the events' keys, where
    they came from (their results rows) and their timestamps;
    ``delay_events``: how many events were deposited between an event and its label (negative
    when the label came first); ``delay_ms``: the label's timestamp less the event's.
    """

    kept: KeptRows
    served: dict[str, Served]
    labels: list[object]
    keys: list[bytes]
    topics: list[str]
    partitions: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.int64]
    delay_events: npt.NDArray[np.int64]
    delay_ms: npt.NDArray[np.int64]
    unmatched: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


class LabelJoin:
    """Waiting events and early labels, matched by key (see the module docstring).

    ``ttl_events`` or ``ttl_ms`` (one of them) bounds how long either waits; ``max_waiting``
    how many of each wait at most. ``models``: the models whose served predictions are kept;
    ``regression``: whether they serve values rather than probabilities.
    """

    def __init__(
        self,
        models: Sequence[str],
        regression: bool = False,
        ttl_events: int | None = None,
        ttl_ms: int | None = None,
        max_waiting: int = 1_000_000,
    ) -> None:
        if (ttl_events is None) == (ttl_ms is None):
            raise ValueError("give ttl_events or ttl_ms")
        self.ttl_events = ttl_events
        self.ttl_ms = ttl_ms
        self.max_waiting = max_waiting
        self.arena = KeptArena(models, regression)
        self._keys: dict[bytes, int] = {}  # waiting event's key -> its slot
        self._slot_keys: list[bytes | None] = []  # per slot, its key (None: freed)
        self._early: OrderedDict[bytes, _Early] = OrderedDict()
        # keys labeled (or whose event stopped waiting), remembered a ttl from then: (clock
        # and latest timestamp then, whether it stopped waiting)
        self._done: OrderedDict[bytes, tuple[int, int, bool]] = OrderedDict()
        self.clock = 0  # events deposited with a key
        self.clock_ms = 0  # the latest timestamp handed in
        self._counts = dict.fromkeys(COUNTERS[2:], 0)
        self.delay_events_sum = 0
        self.delay_ms_sum = 0

    @property
    def counters(self) -> dict[str, int]:
        """Every counter of ``COUNTERS``."""
        return {
            "events_waiting": len(self.arena),
            "labels_waiting": len(self._early),
            **self._counts,
        }

    # -- events

    def deposit(
        self,
        keys: Sequence[bytes | None],
        kept: KeptRows,
        served: Mapping[str, Served],
        meta: Messages,
    ) -> Matches:
        """Events of one block (one partition, in offset order) start waiting for their
        labels; those whose label came first are paired at once."""
        present = np.array([k is not None for k in keys], dtype=bool)
        self._counts["events_without_key"] += int(np.count_nonzero(~present))
        index = np.flatnonzero(present)
        paired: list[tuple[int, _Early]] = []
        if len(index):
            clocks = self.clock + np.arange(1, len(index) + 1, dtype=np.int64)
            self.clock += len(index)
            topic = meta.single_topic() or str(meta.topics[0])
            slots = self.arena.add(
                _take(kept, index),
                {m: (proba[index], classes) for m, (proba, classes) in served.items()},
                topic=topic,
                partitions=meta.partitions[index],
                offsets=meta.offsets[index],
                timestamps=meta.timestamps[index],
                clocks=clocks,
            )
            self._slot_keys += [None] * (self.arena.used - len(self._slot_keys))
            for slot, row in zip(slots.tolist(), index.tolist(), strict=True):
                key = keys[row]
                assert key is not None
                old = self._keys.get(key)
                if old is not None:
                    self._counts["events_superseded"] += 1
                    self._release(np.array([old], dtype=np.intp))
                self._keys[key] = slot
                self._slot_keys[slot] = key
                self._done.pop(key, None)  # a key used again is a new event
                early = self._early.pop(key, None)
                if early is not None:
                    paired.append((slot, early))
            self.clock_ms = max(self.clock_ms, int(meta.timestamps.max()))
        matches = self._pair(
            [slot for slot, _ in paired],
            [early.label for _, early in paired],
            label_clocks=[early.clock for _, early in paired],
            label_ms=[early.timestamp_ms for _, early in paired],
        )
        matches.unmatched = self._expire()
        return matches

    # -- labels

    def labels(self, keys: Sequence[bytes], labels: Sequence[object], meta: Messages) -> Matches:
        """Labels of one block (one partition, in offset order): each pairs with its event
        if it waits, else waits for it (or is a duplicate, or late)."""
        slots: list[int] = []
        paired: set[int] = set()
        paired_labels: list[object] = []
        label_ms: list[int] = []
        late: list[DeadLetter] = []
        for row, (key, label) in enumerate(zip(keys, labels, strict=True)):
            slot = self._keys.get(key)
            if slot is not None and slot not in paired:
                slots.append(slot)
                paired.add(slot)
                paired_labels.append(label)
                label_ms.append(int(meta.timestamps[row]))
                continue
            done = self._done.get(key)
            if done is not None and done[2]:
                late.append(DeadLetter.from_row(meta, row, self._late_reason(key)))
                self._counts["labels_unmatched"] += 1
            elif slot is not None or done is not None or key in self._early:
                self._counts["labels_duplicate"] += 1
            else:
                payload = meta.values[row]
                self._early[key] = _Early(
                    label,
                    str(meta.topics[row]),
                    int(meta.partitions[row]),
                    int(meta.offsets[row]),
                    int(meta.timestamps[row]),
                    self.clock,
                    payload if payload is None or len(payload) <= MAX_KEPT_PAYLOAD else None,
                )
        if len(meta):
            self.clock_ms = max(self.clock_ms, int(meta.timestamps.max()))
        matches = self._pair(
            slots, paired_labels, label_clocks=[self.clock] * len(slots), label_ms=label_ms
        )
        matches.unmatched = late + self._expire()
        return matches

    # -- pairing and waiting

    def _pair(
        self,
        slots: list[int],
        labels: list[object],
        *,
        label_clocks: list[int],
        label_ms: list[int],
    ) -> Matches:
        index = np.array(slots, dtype=np.intp)
        arena = self.arena
        matches = Matches(
            kept=arena.rows(index),
            served={m: arena.served(m, index) for m in arena.models},
            labels=list(labels),
            keys=[self._slot_keys[slot] or b"" for slot in slots],
            topics=arena.topic_of(index),
            partitions=arena.partition[index].copy(),
            offsets=arena.offset[index].copy(),
            timestamps=arena.timestamp[index].copy(),
            delay_events=np.asarray(label_clocks, dtype=np.int64) - arena.clock[index],
            delay_ms=np.asarray(label_ms, dtype=np.int64) - arena.timestamp[index],
        )
        for slot in slots:
            key = self._slot_keys[slot]
            assert key is not None
            self._done[key] = (self.clock, self.clock_ms, False)  # remembered a ttl from now
            self._done.move_to_end(key)
        self._release(index)
        self._counts["labels_matched"] += len(slots)
        self.delay_events_sum += int(matches.delay_events.sum())
        self.delay_ms_sum += int(matches.delay_ms.sum())
        return matches

    def _release(self, slots: npt.NDArray[np.intp]) -> None:
        for slot in slots.tolist():
            key = self._slot_keys[slot]
            if key is not None and self._keys.get(key) == slot:
                del self._keys[key]
            self._slot_keys[slot] = None
        self.arena.free(slots)

    def _expired(self, clock: int, timestamp_ms: int) -> bool:
        if self.ttl_events is not None:
            return self.clock - clock > self.ttl_events
        assert self.ttl_ms is not None
        return self.clock_ms - timestamp_ms > self.ttl_ms

    def _expire(self) -> list[DeadLetter]:
        """Events and labels past the ttl (or past ``max_waiting``) stop waiting; the labels
        become dead letters, returned."""
        arena = self.arena
        while (slot := arena.oldest()) is not None:
            over = len(arena) > self.max_waiting
            if not over and not self._expired(int(arena.clock[slot]), int(arena.timestamp[slot])):
                break
            self._counts["events_evicted" if over else "events_expired"] += 1
            key = self._slot_keys[slot]
            assert key is not None
            self._done[key] = (self.clock, self.clock_ms, True)
            self._done.move_to_end(key)
            self._release(np.array([slot], dtype=np.intp))
        letters: list[DeadLetter] = []
        while self._early:
            key, early = next(iter(self._early.items()))
            over = len(self._early) > self.max_waiting
            if not over and not self._expired(early.clock, early.timestamp_ms):
                break
            del self._early[key]
            self._counts["labels_unmatched"] += 1
            reason = (
                f"label without an event: more than {self.max_waiting:,} labels waited for "
                "their events (labels.max_waiting)"
                if over
                else f"label without an event: no event with key {_shown(key)} came within "
                f"{self._ttl_text()} (labels.ttl)"
            )
            letters.append(
                DeadLetter(
                    early.topic,
                    early.partition,
                    early.offset,
                    key,
                    early.payload,
                    early.timestamp_ms,
                    reason,
                )
            )
        while self._done:
            key, (clock, timestamp, _) = next(iter(self._done.items()))
            if len(self._done) <= self.max_waiting and not self._expired(clock, timestamp):
                break
            del self._done[key]
        moved = arena.compact()
        if moved is not None:
            self._remap(moved)
        return letters

    def _remap(self, moved: npt.NDArray[np.intp]) -> None:
        kept = np.flatnonzero(moved >= 0)
        keys = [self._slot_keys[i] for i in kept.tolist()]
        self._slot_keys = keys
        self._keys = {key: slot for slot, key in enumerate(keys) if key is not None}

    def _late_reason(self, key: bytes) -> str:
        return (
            f"label came after its event stopped waiting: the event with key {_shown(key)} "
            f"waited {self._ttl_text()} (labels.ttl) or was evicted (labels.max_waiting)"
        )

    def _ttl_text(self) -> str:
        if self.ttl_events is not None:
            return f"{self.ttl_events:,} events"
        assert self.ttl_ms is not None
        return f"{self.ttl_ms / 1000:g} s"

    # -- state

    def state(self) -> bytes:
        """Everything the join holds, in a versioned envelope (``SFLJ``, version 1): a JSON
        header and arrays (the arena's live slots in order, keys, early labels, keys done)."""
        arrays = {f"arena_{k}": v for k, v in self.arena.arrays().items()}
        live = self.arena.live()
        keys = [self._slot_keys[i] for i in live.tolist()]
        arrays |= _bytes_arrays("keys", [k or b"" for k in keys])
        early = list(self._early.items())
        arrays |= _bytes_arrays("early_keys", [k for k, _ in early])
        arrays |= _bytes_arrays("early_payloads", [e.payload or b"" for _, e in early])
        arrays["early_has_payload"] = np.array([e.payload is not None for _, e in early], bool)
        arrays["early_numbers"] = np.array(
            [[e.partition, e.offset, e.timestamp_ms, e.clock] for _, e in early], dtype=np.int64
        ).reshape(-1, 4)
        arrays |= _bytes_arrays(
            "early_labels", [orjson.dumps([e.label, e.topic]) for _, e in early]
        )
        done = list(self._done.items())
        arrays |= _bytes_arrays("done_keys", [k for k, _ in done])
        arrays["done_numbers"] = np.array(
            [[c, t, int(x)] for _, (c, t, x) in done], dtype=np.int64
        ).reshape(-1, 3)
        entries, chunks = pack_arrays(arrays, _WHAT)
        header = {
            "ttl_events": self.ttl_events,
            "ttl_ms": self.ttl_ms,
            "max_waiting": self.max_waiting,
            "models": self.arena.models,
            "regression": self.arena.regression,
            "clock": self.clock,
            "clock_ms": self.clock_ms,
            "counts": self._counts,
            "delay_sums": [self.delay_events_sum, self.delay_ms_sum],
            "arena": self.arena.header(),
            "arrays": entries,
        }
        return seal(_MAGIC, _VERSION, orjson.dumps(header, option=orjson.OPT_SORT_KEYS), *chunks)

    @classmethod
    def from_state(cls, blob: bytes) -> LabelJoin:
        """The join ``state()`` wrote; ``StateFormatError`` if the blob is unreadable."""
        opened = unseal(blob, _MAGIC, _VERSION, _WHAT)
        header = opened.header
        arrays = unpack_arrays(opened.payload, header.get("arrays"), _WHAT)
        try:
            join = cls(
                header["models"],
                bool(header["regression"]),
                header["ttl_events"],
                header["ttl_ms"],
                int(header["max_waiting"]),
            )
            join.arena = KeptArena.restore(
                join.arena.models,
                join.arena.regression,
                header["arena"],
                {k.removeprefix("arena_"): v for k, v in arrays.items() if k.startswith("arena_")},
            )
            keys = _bytes_list(arrays, "keys")
            join._slot_keys = list(keys)
            join._keys = {key: slot for slot, key in enumerate(keys)}
            labels = [orjson.loads(b) for b in _bytes_list(arrays, "early_labels")]
            payloads = _bytes_list(arrays, "early_payloads")
            for key, (label, topic), numbers, payload, has in zip(
                _bytes_list(arrays, "early_keys"),
                labels,
                arrays["early_numbers"].tolist(),
                payloads,
                arrays["early_has_payload"].tolist(),
                strict=True,
            ):
                partition, offset, timestamp, clock = numbers
                join._early[key] = _Early(
                    label, topic, partition, offset, timestamp, clock, payload if has else None
                )
            for key, (clock, timestamp, expired) in zip(
                _bytes_list(arrays, "done_keys"), arrays["done_numbers"].tolist(), strict=True
            ):
                join._done[key] = (clock, timestamp, bool(expired))
            join.clock = int(header["clock"])
            join.clock_ms = int(header["clock_ms"])
            join._counts.update({k: int(header["counts"][k]) for k in join._counts})
            join.delay_events_sum, join.delay_ms_sum = map(int, header["delay_sums"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFormatError(f"{_WHAT}: {exc!r}") from exc
        return join


def _take(kept: KeptRows, index: npt.NDArray[np.intp]) -> KeptRows:
    """The rows ``index`` (increasing) of ``kept``."""
    if len(index) == len(kept):
        return kept
    rows, cols, data, groups = kept.hashed
    position = np.full(len(kept), -1, dtype=np.intp)
    position[index] = np.arange(len(index))
    new = position[rows]
    keep = new >= 0
    hashed = (new[keep], cols[keep], data[keep], groups[keep])
    return KeptRows(kept.numbers[index], kept.flags[index], hashed)


def _bytes_arrays(name: str, values: list[bytes]) -> dict[str, npt.NDArray[Any]]:
    return {
        name: np.frombuffer(b"".join(values), dtype=np.uint8),
        f"{name}_lengths": np.array([len(v) for v in values], dtype=np.int64),
    }


def _bytes_list(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> list[bytes]:
    data = arrays[name].tobytes()
    lengths = arrays[f"{name}_lengths"].tolist()
    if sum(lengths) != len(data):
        raise ValueError(f"{name}: lengths do not add up")
    out = []
    start = 0
    for length in lengths:
        out.append(data[start : start + length])
        start += length
    return out


def _shown(key: bytes) -> str:
    text = key.decode("utf-8", "replace")
    return repr(text if len(text) <= 100 else text[:100] + "...")
