"""Replay a dataset file (CSV, TSV, JSON Lines or Parquet, gzipped or not) as JSON events.

Rows become JSON objects; missing values become absent fields, and integers stay integers.
``read_events`` reads a file the way ``streamfit produce`` does and says how it read it;
``FileReplaySource`` is a ``Source`` that plays a file at a chosen rate.

What is not given is found out, and said (``EventTable.describe``):

- the format, from the name (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``/``.json``,
  ``.parquet``, each optionally ``.gz``), else from the content (gzip and Parquet by their
  magic bytes; JSON Lines by a leading ``{``; else the delimiter among tab, comma, ``;`` and
  ``|`` that splits the first lines alike);
- whether the first line of a CSV/TSV names the columns: not when one of its cells is a
  number, is a long sentence, or comes back further down its column (a label such as
  ``ham``); yes when a column is numbers below a text cell, and yes otherwise. Without a
  header the columns are named ``column_1``, ``column_2``, ...;
- a row that cannot be read (a CSV/TSV line with more fields than the file has columns, a
  JSON Lines line that is not a JSON object) is not a reason to refuse the file: it goes on
  as it is written, in its place, and a worker sets it aside as a dead letter with its
  reason (``EventTable.set_aside`` and a note say which);
- quotes: a TSV is read without quote handling (a message may start with ``"`` and not end
  with one), unless its quoted fields are all well formed; a CSV with RFC 4180 quoting,
  unless that joins lines that the plain reading keeps apart with the same number of fields.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "rows.csv").write_text("a,b\\n1,x\\n,y\\n")
>>> [chunk for chunk in iter_event_chunks(folder / "rows.csv")]
[[b'{"a":1,"b":"x"}', b'{"b":"y"}']]
>>> _ = (folder / "sms").write_text('ham\\tOk lar\\nspam\\t"Free" entry\\nham\\tSee you\\n')
>>> table = read_events(folder / "sms")
>>> table.events[1], table.header_found
(b'{"column_1":"spam","column_2":"\\\\"Free\\\\" entry"}', False)
>>> src = FileReplaySource(folder / "rows.csv", topic="t")
>>> src.poll(10, 0).offsets.tolist(), src.poll(10, 0)
([0, 1], None)
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from streamfit.batch import Messages, Offsets
from streamfit.errors import StreamError

log = logging.getLogger("streamfit.replay")

__all__ = [
    "EventTable",
    "FileReplaySource",
    "ReadOptions",
    "count_events",
    "frame_to_events",
    "iter_event_chunks",
    "read_events",
    "read_frame",
]

Format = str  # "csv", "tsv", "jsonl" or "parquet"

_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
_SAMPLE_BYTES = 1 << 20
_SAMPLE_ROWS = 2000
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How to read a file; ``None`` everywhere means: find out (see the module docstring)."""

    format: Format | None = None
    header: bool | None = None
    names: list[str] | None = None


@dataclass(slots=True)
class EventTable:
    """A file's rows as JSON events, and how the file was read."""

    path: Path
    events: list[bytes]
    columns: list[str]
    format: Format
    compressed: bool
    header_found: bool | None  # None: not a CSV/TSV
    header_reason: str = ""
    notes: list[str] = field(default_factory=list)
    #: rows that could not be read: (their place among the events, their bytes as written)
    set_aside: list[tuple[int, bytes]] = field(default_factory=list)

    def describe(self) -> str:
        """One paragraph a person reads before the events go out."""
        kind = self.format.upper() if self.format != "jsonl" else "JSON Lines"
        parts = [f"read {self.path.name}: {kind}{', gzipped' if self.compressed else ''}"]
        if self.header_found is not None:
            parts.append(
                f"header line ({self.header_reason})"
                if self.header_found
                else f"no header line ({self.header_reason})"
            )
        shown = ", ".join(self.columns[:8]) + (", ..." if len(self.columns) > 8 else "")
        parts.append(f"{len(self.events):,} rows of {len(self.columns)} columns: {shown}")
        text = "; ".join(parts)
        for note in self.notes:
            text += f"\n  {note}"
        return text


def read_events(path: str | Path, options: ReadOptions | None = None) -> EventTable:
    """Read ``path`` as ``streamfit produce`` does; see the module docstring."""
    path = Path(path)
    options = options or ReadOptions()
    frame, table = _read(path, options)
    table.events = _in_place(frame_to_events(frame), table.set_aside)
    table.columns = [str(c) for c in frame.columns]
    return table


def _in_place(events: list[bytes], set_aside: list[tuple[int, bytes]]) -> list[bytes]:
    """``events`` with the rows set aside put back at their places.

    >>> _in_place([b"a", b"c"], [(1, b"b"), (3, b"d")])
    [b'a', b'b', b'c', b'd']
    """
    if not set_aside:
        return events
    out: list[bytes] = []
    good = iter(events)
    for place, raw in set_aside:
        out.extend(next(good) for _ in range(place - len(out)))
        out.append(raw)
    out.extend(good)
    return out


def read_frame(path: str | Path, options: ReadOptions | None = None) -> pd.DataFrame:
    """A dataset file as a DataFrame, read as ``read_events`` reads it."""
    return _read(Path(path), options or ReadOptions())[0]


def _read(path: Path, options: ReadOptions) -> tuple[pd.DataFrame, EventTable]:
    try:
        head = _head(path)
    except OSError as exc:
        raise StreamError(f"cannot read {path}: {exc.strerror or exc}") from exc
    compressed = head.raw.startswith(b"\x1f\x8b")
    fmt = options.format or _format_of(path, head.data)
    table = EventTable(path, [], [], fmt, compressed, None)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
        elif fmt == "jsonl":
            frame = _read_json_lines(path, compressed, table)
        elif fmt in ("csv", "tsv"):
            frame = _read_delimited(path, head.data, fmt, compressed, options, table)
        else:
            raise StreamError(f"cannot read {path}: unknown format {fmt!r}")
    except (OSError, ValueError, csv.Error) as exc:
        raise StreamError(f"cannot read {path} as {fmt}: {exc}") from exc
    return frame, table


def _read_json_lines(path: Path, compressed: bool, table: EventTable) -> pd.DataFrame:
    """A JSON Lines file; its lines that are not JSON objects are set aside."""
    try:
        return pd.read_json(
            path,
            lines=True,
            dtype_backend="numpy_nullable",
            compression="gzip" if compressed else None,
        )
    except ValueError:
        pass  # a line is not JSON: read the others, set it aside
    with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    good = []
    for place, line in enumerate(lines):
        try:
            is_object = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            is_object = False
        if is_object:
            good.append(line)
        else:
            table.set_aside.append((place, line))
    _note_set_aside(table, [f"line {place + 1}" for place, _ in table.set_aside], "JSON objects")
    if not good:
        return pd.DataFrame()
    return pd.read_json(io.BytesIO(b"\n".join(good)), lines=True, dtype_backend="numpy_nullable")


def _note_set_aside(table: EventTable, where: list[str], what: str) -> None:
    if where:
        shown = ", ".join(where[:3]) + (", ..." if len(where) > 3 else "")
        table.notes.append(
            f"{len(where):,} {'row is' if len(where) == 1 else 'rows are'} not {what} "
            f"({shown}): they go on as written, and a worker sets them aside as dead letters"
        )


@dataclass(frozen=True, slots=True)
class _Head:
    raw: bytes  # the file's first bytes as stored
    data: bytes  # the same, decompressed


def _head(path: Path) -> _Head:
    with path.open("rb") as fh:
        raw = fh.read(_SAMPLE_BYTES)
    if raw.startswith(b"\x1f\x8b"):
        with gzip.open(path, "rb") as fh:
            return _Head(raw, fh.read(_SAMPLE_BYTES))
    return _Head(raw, raw)


def _format_of(path: Path, data: bytes) -> Format:
    name = path.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if data.startswith(b"PAR1"):
        return "parquet"
    if data.lstrip()[:1] == b"{":
        return "jsonl"
    text = _decode(data)
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        raise StreamError(f"cannot read {path}: it is empty")
    for sep, fmt in (("\t", "tsv"), (",", "csv"), (";", "csv"), ("|", "csv")):
        counts = {line.count(sep) for line in lines[:-1] or lines}
        if len(counts) == 1 and counts != {0}:
            return fmt
    raise StreamError(
        f"cannot tell the format of {path}: name it .csv, .tsv, .jsonl or .parquet, "
        "or pass --format"
    )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4:  # a character cut at the end of the sample
            return data[: exc.start].decode("utf-8")
        return data.decode("latin-1")


def _separator(data: bytes, fmt: Format) -> str:
    if fmt == "tsv":
        return "\t"
    lines = [line for line in _decode(data).splitlines()[:50] if line.strip()]
    for sep in (",", ";", "|"):
        counts = {line.count(sep) for line in lines[:-1] or lines}
        if len(counts) == 1 and counts != {0}:
            return sep
    return ","


def _read_delimited(
    path: Path,
    data: bytes,
    fmt: Format,
    compressed: bool,
    options: ReadOptions,
    table: EventTable,
) -> pd.DataFrame:
    sep = _separator(data, fmt)
    rows = _sample_rows(data, sep)
    if options.names:
        header, table.header_reason = False, "column names given"
    elif options.header is not None:
        header, table.header_reason = options.header, "as told"
    else:
        header, table.header_reason = _has_header(rows)
    table.header_found = header
    quoting = _quoting(data, sep, fmt)
    names = options.names
    if not header and names is None and rows:
        names = [f"column_{i + 1}" for i in range(len(rows[0]))]
    kwargs: dict[str, object] = {
        "sep": sep,
        "header": 0 if header else None,
        "names": names,
        "quoting": quoting,
        "compression": "gzip" if compressed else None,
        "dtype_backend": "numpy_nullable",
        "keep_default_na": True,
        "skip_blank_lines": True,
    }
    try:
        frame = _read_csv(path, "utf-8", kwargs, table)
    except UnicodeDecodeError:
        table.set_aside.clear()
        frame = _read_csv(path, "latin-1", kwargs, table)
        table.notes.append("not UTF-8: read as Latin-1")
    if quoting == csv.QUOTE_NONE and fmt == "tsv":
        table.notes.append("quotes are kept as text (a TSV has no quoting)")
    return frame


def _read_csv(
    path: Path, encoding: str, kwargs: dict[str, object], table: EventTable
) -> pd.DataFrame:
    """``pd.read_csv``; lines with more fields than the file has columns are set aside."""
    try:
        return pd.read_csv(path, encoding=encoding, **kwargs)
    except pd.errors.ParserError:
        pass  # a line too wide: find them, read the others, set those aside
    compressed = kwargs["compression"] == "gzip"
    with (
        gzip.open(path, "rt", encoding=encoding, newline="")
        if compressed
        else path.open(encoding=encoding, newline="")
    ) as fh:
        text = fh.read()
    names = kwargs["names"]
    reader = csv.reader(
        io.StringIO(text),
        delimiter=str(kwargs["sep"]),
        quoting=int(kwargs["quoting"]),  # type: ignore[call-overload]
    )
    physical = text.split("\n")  # the lines csv counts in line_num
    width: int | None = len(names) if isinstance(names, list) else None
    skipped: set[int] = set()
    where: list[str] = []
    place = seen = 0
    for record in reader:
        first, seen = seen, reader.line_num
        if not record:
            continue
        if width is None:  # the header line, or the first row of a file without one
            width = len(record)
            if kwargs["header"] == 0:
                continue
        if len(record) > width:
            lines = range(first, seen)
            skipped.update(lines)
            raw = "\n".join(physical[i].rstrip("\r") for i in lines if i < len(physical))
            table.set_aside.append((place, raw.encode("utf-8")))
            where.append(f"line {first + 1}: {len(record)} fields, {width} columns")
        place += 1
    _note_set_aside(table, where, "rows of the file's columns")
    return pd.read_csv(path, encoding=encoding, skiprows=skipped, **kwargs)


def _sample_rows(data: bytes, sep: str) -> list[list[str]]:
    lines = [line for line in _decode(data).splitlines() if line.strip()]
    if len(data) >= _SAMPLE_BYTES and lines:
        lines = lines[:-1]  # the last line of a sample may be cut
    return [line.split(sep) for line in lines[:_SAMPLE_ROWS]]


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))


def _has_header(rows: list[list[str]]) -> tuple[bool, str]:
    """Whether the first row names the columns, and why (see the module docstring)."""
    if len(rows) < 2:
        return True, "a single line"
    first, rest = rows[0], rows[1:]
    cells = [c.strip().strip('"') for c in first]
    for cell in cells:
        if cell and _is_number(cell):
            return False, f"its first line looks like data: {cell!r} is a number"
    for cell in cells:
        if len(cell) > 60 or len(cell.split()) > 5:
            return False, f"its first line looks like data: {_short(cell)!r} is a sentence"
    for i, cell in enumerate(cells):
        below = [row[i].strip().strip('"') for row in rest if len(row) > i]
        if cell and cell in below:
            return False, f"its first line looks like data: {cell!r} comes again in its column"
    for i, cell in enumerate(cells):
        below = [row[i] for row in rest if len(row) > i and row[i].strip()]
        if cell and below and sum(map(_is_number, below)) >= 0.9 * len(below):
            return True, f"{cell!r} heads a column of numbers"
    return True, "its first line looks like names"


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quoting(data: bytes, sep: str, fmt: Format) -> int:
    """QUOTE_NONE for a file whose quotes are text, else RFC 4180 quoting (QUOTE_MINIMAL)."""
    text = _decode(data)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(data) >= _SAMPLE_BYTES and lines:
        lines = lines[:-1]
    quoted = [cell for line in lines for cell in line.split(sep) if cell.startswith('"')]
    if not quoted:
        return csv.QUOTE_MINIMAL
    well_formed = all(len(c) >= 2 and c.endswith('"') for c in quoted)
    if fmt == "tsv" and not well_formed:
        return csv.QUOTE_NONE
    if well_formed:
        return csv.QUOTE_MINIMAL
    # a CSV with stray quotes: RFC quoting would join lines; keep them apart when every line
    # splits into the same number of fields without it
    widths = {len(line.split(sep)) for line in lines}
    joined = len(list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep)))
    if len(widths) == 1 and joined < len(lines):
        return csv.QUOTE_NONE
    return csv.QUOTE_MINIMAL


def frame_to_events(frame: pd.DataFrame) -> list[bytes]:
    """Each row as compact JSON bytes; missing fields (NaN, None, NA) are left out."""
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
    events = read_events(path).events
    for start in range(0, len(events), chunk_size):
        yield events[start : start + chunk_size]


def count_events(path: str | Path) -> int:
    """How many events a file holds."""
    return len(read_events(path).events)


class FileReplaySource:
    """A ``Source`` that plays a file's rows as one partition of ``topic``.

    ``rate`` caps events per second (0 plays as fast as the consumer takes them).
    """

    def __init__(self, path: str | Path, topic: str, rate: float = 0.0) -> None:
        self.topic = topic
        self.rate = rate
        table = read_events(path)
        if table.set_aside:
            log.warning(
                "%s: %d rows could not be read (the first at offset %d); they play as "
                "written, and become dead letters",
                table.path,
                len(table.set_aside),
                table.set_aside[0][0],
            )
        self._events = table.events
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
