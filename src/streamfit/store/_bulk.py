"""Upserts, and the hot path that writes a batch of results fast on every database.

The statement is compiled once per set of columns, and the values go straight to the driver:
SQLAlchemy's per-row parameter processing costs more than the database does. So values must
already be what the driver takes (see ``BulkWriter.times``). Per database:

- SQLite: ``executemany`` of the ``INSERT ... ON CONFLICT DO UPDATE``, positional tuples.
- PostgreSQL: one array per column, ``INSERT ... SELECT * FROM unnest(%b::type[], ...) ON
  CONFLICT ...``, binary. psycopg's ``executemany`` runs a statement per row, and a long
  multi-row ``VALUES`` list makes it parse every placeholder in Python.
- MariaDB/MySQL with PyMySQL: multi-row ``INSERT ... VALUES (...), (...) ON DUPLICATE KEY
  UPDATE``, the rows rendered as literals by PyMySQL's own escaping (PyMySQL interpolates
  client-side anyway; done a column at a time it is several times cheaper). Other MySQL
  drivers get ``executemany``.

One statement must not upsert the same row twice (PostgreSQL refuses), so callers drop
repeated keys first (:func:`last_of_each_offset`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from streamfit.batch import Messages
from streamfit.errors import StoreError
from streamfit.store import _values as values

__all__ = ["BulkWriter", "last_of_each_offset", "upsert"]

_MYSQL = ("mysql", "mariadb")
_PLACEHOLDER: Final = re.compile(r"%\((\w+)\)s|%s")
_ROW: Final = re.compile(r"\(\s*(?:%\(\w+\)s|%s)(?:\s*,\s*(?:%\(\w+\)s|%s))*\s*\)")
_ROWS: Final = "\x00rows\x00"
_MAX_STATEMENT_CHARS: Final = 2_000_000  # <= 8 MB of UTF-8, below max_allowed_packet (16 MiB)
_Mode = Literal["executemany", "arrays", "literals"]


def upsert(dialect: str, table: sa.Table, columns: Sequence[str]) -> sa.Insert:
    """INSERT of ``columns`` that updates the non-key ones of a row already there.

    Only the columns written are updated: a rewrite leaves the others as they were.
    """
    key = [c.name for c in table.primary_key.columns]
    update = [c for c in columns if c not in key]
    if dialect in _MYSQL:
        mysql_insert = mysql.insert(table)
        new = mysql_insert.inserted
        return mysql_insert.on_duplicate_key_update(
            {c: new[c] for c in update} if update else {key[0]: new[key[0]]}
        )
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    if not update:
        return insert.on_conflict_do_nothing(index_elements=key)
    return insert.on_conflict_do_update(
        index_elements=key, set_={c: insert.excluded[c] for c in update}
    )


@dataclass(frozen=True, slots=True)
class _Statement:
    """An upsert compiled for the driver: SQL, and the columns its parameters are, in order.

    ``mode`` says how values reach it: ``executemany`` (a row per parameter set), ``arrays``
    (each parameter a whole column, for PostgreSQL's ``unnest``) or ``literals`` (rows
    rendered as escaped SQL literals where ``sql`` has ``_ROWS``).
    """

    table: sa.Table
    sql: str
    order: list[str]
    mode: _Mode


class BulkWriter:
    """Writes columns of values as upserts, in one transaction per call."""

    def __init__(self, engine: sa.Engine, chunk_size: int) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.chunk_size = chunk_size
        self._statements: dict[tuple[int, tuple[str, ...]], _Statement] = {}

    def forget(self, table: str) -> None:
        """Drop the statements compiled for ``table`` (its definition changed)."""
        self._statements = {k: v for k, v in self._statements.items() if v.table.name != table}

    def times(self, timestamps_ms: npt.NDArray[np.int64]) -> list[Any]:
        """Epoch milliseconds as the driver takes UTC times (as ``UTCDateTime`` stores them)."""
        if self.dialect != "postgresql":
            return values.event_time_texts(timestamps_ms)  # SQLite's form; MariaDB reads it
        naive = values.event_times(timestamps_ms)
        return [None if t is None else t.replace(tzinfo=dt.UTC) for t in naive]

    def time(self, when: dt.datetime) -> Any:
        """One datetime as the driver takes it."""
        utc = when.astimezone(dt.UTC)
        return utc if self.dialect == "postgresql" else utc.strftime("%Y-%m-%d %H:%M:%S.%f")

    def write(self, table: sa.Table, params: dict[str, list[Any]]) -> None:
        """Upsert ``params`` (column name -> driver-ready values, all as long) into ``table``."""
        statement = self._compiled(table, tuple(params))
        columns = [params[name] for name in statement.order]
        n = len(columns[0]) if columns else 0
        step = self.chunk_size
        with self.engine.begin() as conn:
            if statement.mode == "arrays":
                for start in range(0, n, step):
                    arrays = tuple(c[start : start + step] if n > step else c for c in columns)
                    conn.exec_driver_sql(statement.sql, arrays)
            elif statement.mode == "literals":
                escape = conn.connection.dbapi_connection.escape  # type: ignore[union-attr]
                texts = [_literals(c, escape) for c in columns]
                rows = ["(" + ",".join(row) + ")" for row in zip(*texts, strict=True)]
                head, tail = statement.sql.split(_ROWS)
                for part in _chunks_by_size(rows, step, _MAX_STATEMENT_CHARS):
                    conn.exec_driver_sql(head + ",".join(part) + tail)
            else:
                tuples: list[Any] = list(zip(*columns, strict=True))
                if not self.engine.dialect.positional:
                    tuples = [dict(zip(statement.order, row, strict=True)) for row in tuples]
                for start in range(0, len(tuples), step):
                    conn.exec_driver_sql(statement.sql, tuples[start : start + step])

    def _compiled(self, table: sa.Table, columns: tuple[str, ...]) -> _Statement:
        """The upsert of ``columns`` into ``table`` as driver SQL (cached)."""
        cache_key = (id(table), columns)
        found = self._statements.get(cache_key)
        if found is not None and found.table is table:
            return found
        dialect = self.engine.dialect
        compiled = upsert(self.dialect, table, columns).compile(
            dialect=dialect, column_keys=list(columns)
        )
        sql = compiled.string
        bind_names = {bind.key: name for bind, name in compiled.bind_names.items()}
        if any(bind_names.get(c) != c for c in columns):
            raise StoreError(f"unexpected parameter names in {sql}")
        order = list(compiled.positiontup) if compiled.positiontup else list(columns)
        mode: _Mode = "executemany"
        if self.dialect == "postgresql":
            mode = "arrays"
            quote = dialect.identifier_preparer.quote
            order = list(columns)
            names = ", ".join(quote(c) for c in order)
            types = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in order)
            conflict = sql[sql.index(" ON CONFLICT ") :]
            sql = (
                f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({types}){conflict}"
            )
        elif self.dialect in _MYSQL and dialect.driver == "pymysql":
            mode = "literals"
            sql, order = rows_template(sql, compiled.positiontup)
        statement = _Statement(table, sql, order, mode)
        self._statements[cache_key] = statement
        return statement


def rows_template(sql: str, positional: Sequence[str] | None) -> tuple[str, list[str]]:
    """``INSERT ... VALUES (%(a)s, ...) [AS new] ON DUPLICATE ...`` with ``_ROWS`` in place
    of its one row, and the parameter names of that row, in order (``positional``: the names
    of a ``%s`` row)."""
    values_at = sql.index(" VALUES (") + len(" VALUES ")
    row = _ROW.match(sql, values_at)
    if row is None:
        raise StoreError(f"cannot find the row of {sql}")
    marks = _PLACEHOLDER.findall(row.group())
    order = list(positional)[: len(marks)] if positional else marks
    return (sql[:values_at] + _ROWS + sql[row.end() :]).replace("%%", "%"), order


def last_of_each_offset(meta: Messages) -> npt.NDArray[np.intp] | None:
    """Rows to keep so that each (topic, partition, offset) appears once (its last row), in
    order; None when they already do (the usual case, found without a Python loop)."""
    if len(meta) < 2:
        return None
    _, topic_codes = np.unique(meta.topics.astype(str), return_inverse=True)
    order = np.lexsort((meta.offsets, meta.partitions, topic_codes))  # stable
    same_as_next = (
        (topic_codes[order][1:] == topic_codes[order][:-1])
        & (meta.partitions[order][1:] == meta.partitions[order][:-1])
        & (meta.offsets[order][1:] == meta.offsets[order][:-1])
    )
    if not same_as_next.any():
        return None
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ~same_as_next
    return np.sort(order[last])


def _literals(column: list[Any], escape: Any) -> list[str]:
    """Values as MySQL literals, as PyMySQL renders them, minus its per-value dispatch.

    Strings (and anything unusual) go through PyMySQL's ``Connection.escape``, the function
    its cursors use, so escaping follows the connection's settings (``NO_BACKSLASH_ESCAPES``
    included). Floats get PyMySQL's ``e0`` suffix, which makes them DOUBLE, not DECIMAL.
    """
    sample = next((v for v in column if v is not None), None)
    if type(sample) is float:
        return [
            "NULL"
            if v is None
            else (r if "e" in (r := repr(v)) else r + "e0")
            if type(v) is float
            else escape(v)
            for v in column
        ]
    if type(sample) is int:
        return ["NULL" if v is None else str(v) if type(v) is int else escape(v) for v in column]
    return ["NULL" if v is None else escape(v) for v in column]


def _chunks_by_size(rows: list[str], max_rows: int, max_chars: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for row in rows:
        if chunk and (len(chunk) >= max_rows or size + len(row) > max_chars):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += len(row) + 1
    if chunk:
        yield chunk
