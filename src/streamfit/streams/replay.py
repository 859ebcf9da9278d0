"""Replay a dataset file (CSV, JSONL or Parquet, optionally gzipped) as a stream of JSON events.

Rows become JSON objects; missing values become absent fields. ``iter_event_chunks`` yields
encoded events a chunk at a time (what ``streamfit produce`` sends to Kafka) and
``FileReplaySource`` is a ``Source`` that plays a file at a chosen rate.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
>>> _ = path.write_text("a,b\\n1,x\\n,y\\n")
>>> [chunk for chunk in iter_event_chunks(path)]
[[b'{"a":1.0,"b":"x"}', b'{"b":"y"}']]
>>> src = FileReplaySource(path, topic="t")
>>> src.poll(10, 0).offsets.tolist(), src.poll(10, 0)
([0, 1], None)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from streamfit.batch import Messages, Offsets
from streamfit.errors import StreamError

__all__ = ["FileReplaySource", "count_events", "iter_event_chunks", "read_frame"]


def read_frame(path: str | Path) -> pd.DataFrame:
    """A dataset file as a DataFrame (CSV tries UTF-8, then Latin-1)."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return pd.read_json(path, lines=True)
        if name.endswith((".csv", ".tsv", ".txt")):
            sep = "\t" if name.endswith(".tsv") else ","
            try:
                return pd.read_csv(path, sep=sep, low_memory=False)
            except UnicodeDecodeError:
                return pd.read_csv(path, sep=sep, low_memory=False, encoding="latin-1")
    except (OSError, ValueError) as exc:
        raise StreamError(f"cannot read {path}: {exc}") from exc
    raise StreamError(f"cannot replay {path}: expected .csv, .tsv, .jsonl or .parquet")


def frame_to_events(frame: pd.DataFrame) -> list[bytes]:
    """Each row as compact JSON bytes; NaN and None fields are left out."""
    columns = [str(c) for c in frame.columns]
    arrays = [frame[c].to_numpy(dtype=object) for c in frame.columns]
    out: list[bytes] = []
    dumps = orjson.dumps
    for row in zip(*arrays, strict=True):
        event = {
            name: _plain(value)
            for name, value in zip(columns, row, strict=True)
            if value is not None and value is not pd.NA and value == value  # NaN != NaN
        }
        out.append(dumps(event))
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def iter_event_chunks(path: str | Path, chunk_size: int = 10_000) -> Iterator[list[bytes]]:
    """Encoded events of a file, ``chunk_size`` at a time."""
    frame = read_frame(path)
    for start in range(0, len(frame), chunk_size):
        yield frame_to_events(frame.iloc[start : start + chunk_size])


def count_events(path: str | Path) -> int:
    """How many events a file holds."""
    return len(read_frame(path))


class FileReplaySource:
    """A ``Source`` that plays a file's rows as one partition of ``topic``.

    ``rate`` caps events per second (0 plays as fast as the consumer takes them).
    """

    def __init__(self, path: str | Path, topic: str, rate: float = 0.0) -> None:
        self.topic = topic
        self.rate = rate
        self._events = frame_to_events(read_frame(path))
        self._position = 0
        self._started = time.monotonic()

    def poll(self, max_records: int, timeout: float) -> Messages | None:
        available = len(self._events) - self._position
        if available <= 0:
            if timeout > 0:
                time.sleep(min(timeout, 0.05))
            return None
        n = min(max_records, available)
        if self.rate > 0:
            allowed = int((time.monotonic() - self._started) * self.rate) - self._position
            if allowed <= 0:
                time.sleep(min(timeout, (1 - allowed) / self.rate))
                allowed = int((time.monotonic() - self._started) * self.rate) - self._position
            n = min(n, max(allowed, 0))
            if n == 0:
                return None
        first = self._position
        self._position += n
        return Messages.from_values(
            self._events[first : first + n],
            topic=self.topic,
            first_offset=first,
            timestamp_ms=int(time.time() * 1000),
        )

    def commit(self, offsets: Offsets, wait: bool = True) -> None:
        """A file has no consumer group; progress lives in the checkpoint."""

    def seek(self, offsets: Offsets) -> None:
        self._position = offsets.get((self.topic, 0), self._position)

    def at_end(self) -> bool:
        return self._position >= len(self._events)

    def behind(self, read: Offsets) -> set[tuple[str, int]]:
        """Its one partition, while rows are left to play."""
        return set() if self.at_end() else {(self.topic, 0)}

    def close(self) -> None:
        self._events = []
