"""The API's queries over a pipeline's tables (SQLAlchemy Core, every database alike).

Every table and column name comes from the spec or from the store's own definitions; values
from a request (a model name, times, a limit, a cursor) are bound parameters only. Nothing of
a request's text is ever part of the SQL.

Pages of results and dead letters are ordered by when they were written, then by where they
came from (topic, partition, offset), so that a cursor (``after``: the last row a client
has) names one place in that order and the next page starts right after it; ``start`` names
the place before the first row.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from streamfit.errors import StreamfitError
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.store.tables import (
    RESERVED_COLUMNS,
    TRAINING_METRICS,
    column_type,
    fixed_metadata,
    results_table,
    training_table,
)

__all__ = [
    "BadCursorError",
    "Page",
    "dead_letters_page",
    "latest_metrics",
    "metrics_series",
    "model_event_counts",
    "results_page",
]

_FIXED = fixed_metadata()
_ANOMALY_NUMBERS = ("anomaly_score", "score_quantile")
#: the cursor before the first row
START = "start"
_KEY = ("source_topic", "source_partition", "source_offset")


class BadCursorError(StreamfitError):
    """A cursor (``after``) that this API did not make."""


@dataclass(frozen=True, slots=True)
class Page:
    """Rows in the order written, and the cursor to ask for the ones after them."""

    rows: list[dict[str, Any]]
    next: str | None


# -- training metrics ---------------------------------------------------------------------------


def _training(store: Store, spec: PipelineSpec) -> sa.Table | None:
    name = spec.outputs.training_table_name(spec.name)
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(name):
            return None
    return training_table(name)


def metrics_series(
    store: Store,
    spec: PipelineSpec,
    model: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Rows of the training table, oldest first: of ``model`` (all by default), recorded at
    or after ``since`` and before ``until``; the last ``limit`` of them."""
    table = _training(store, spec)
    if table is None:
        return []
    query = sa.select(table)
    if model is not None:
        query = query.where(table.c.model == model)
    if since is not None:
        query = query.where(table.c.recorded_at >= since)
    if until is not None:
        query = query.where(table.c.recorded_at < until)
    query = query.order_by(
        table.c.recorded_at.desc(), table.c.model, table.c.worker, table.c.events_seen.desc()
    ).limit(limit)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    rows.reverse()
    return rows


def latest_metrics(store: Store, spec: PipelineSpec) -> list[dict[str, Any]]:
    """Each model's last row of the training table (of the worker that wrote last)."""
    table = _training(store, spec)
    if table is None:
        return []
    last = (
        sa.select(table.c.model, sa.func.max(table.c.recorded_at).label("at"))
        .group_by(table.c.model)
        .subquery()
    )
    query = (
        sa.select(table)
        .join(last, sa.and_(table.c.model == last.c.model, table.c.recorded_at == last.c.at))
        .order_by(table.c.model, table.c.events_seen.desc())
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.setdefault(row["model"], row)
    order = {m.name: i for i, m in enumerate(spec.models)}
    return sorted(latest.values(), key=lambda r: (order.get(r["model"], len(order)), r["model"]))


def metric_values(row: dict[str, Any]) -> dict[str, float]:
    """The metrics of a training row that have a value."""
    return {m: float(row[m]) for m in TRAINING_METRICS if row.get(m) is not None}


# -- model lifecycle ----------------------------------------------------------------------------


def model_event_counts(store: Store, spec: PipelineSpec) -> dict[tuple[str, str], int]:
    """How many lifecycle decisions of each kind each model has (``<pipeline>_model_events``,
    ``streamfit.lifecycle.events``), by (model, kind): for a gate decision, the gated model;
    for a promotion or a rollback, the model that became the champion."""
    from streamfit.runtime.lifecycle import model_events_table as table_name
    from streamfit.store.tables import model_events_table

    name = table_name(spec.name)
    table = model_events_table(name)
    query = sa.select(table.c.model, table.c.kind, sa.func.count()).group_by(
        table.c.model, table.c.kind
    )
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(name):
            return {}
        return {(str(m), str(k)): int(n) for m, k, n in conn.execute(query)}


# -- results --------------------------------------------------------------------------------------


class _ResultsTables:
    """Reflected results tables, each kept a few seconds (new fields add columns)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._cache: dict[tuple[int, str], tuple[float, sa.Table, dict[str, str]]] = {}

    def get(
        self, store: Store, name: str, spec: PipelineSpec
    ) -> tuple[sa.Table, dict[str, str]] | None:
        key = (id(store), name)
        found = self._cache.get(key)
        now = time.monotonic()
        if found is not None and now - found[0] < self.ttl:
            return found[1], found[2]
        registry = _FIXED.tables["result_fields"]
        with store.engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(name):
                return None
            present = {c["name"] for c in inspector.get_columns(name)}
            kinds = conn.execute(
                sa.select(registry.c.column_name, registry.c.field, registry.c.kind).where(
                    registry.c.table_name == name
                )
            ).all()
            # read through the store's own types (a reflected DOUBLE is a Decimal on MariaDB)
            known = results_table(name, spec.task, [], [m.name for m in spec.models[1:]])
            typed: list[sa.Column[Any]] = [
                sa.Column(c.name, c.type, primary_key=c.primary_key)
                for c in known.columns
                if c.name in present
            ]
            typed += [sa.Column(c, sa.Double()) for c in _ANOMALY_NUMBERS if c in present]
            typed += [
                sa.Column(r.column_name, column_type(r.kind))
                for r in kinds
                if r.column_name in present
            ]
            table = sa.Table(name, sa.MetaData(), *typed, autoload_with=conn)
        fields = {r.column_name: r.field for r in kinds}
        self._cache[key] = (now, table, fields)
        return table, fields


_RESULTS = _ResultsTables()


def encode_cursor(row: dict[str, Any], time_column: str) -> str:
    """An opaque cursor for the place of ``row`` in write order."""
    when = row.get(time_column)
    stamp = when.isoformat() if isinstance(when, dt.datetime) else None
    key = [stamp, row["source_topic"], int(row["source_partition"]), int(row["source_offset"])]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime | None, str, int, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, topic, partition, offset = orjson.loads(base64.urlsafe_b64decode(padded))
        when = None if stamp is None else dt.datetime.fromisoformat(stamp)
        if not isinstance(topic, str) or not isinstance(partition, int):
            raise TypeError
        if not isinstance(offset, int):
            raise TypeError
        return when, topic, partition, offset
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadCursorError("'after' is not a cursor this API gave") from exc


def _after(table: sa.Table, time_column: str, cursor: str) -> sa.ColumnElement[bool]:
    """Rows after the cursor's place in (time, topic, partition, offset) order (``start``:
    every row)."""
    if cursor == START:
        return sa.true()
    when, topic, partition, offset = decode_cursor(cursor)
    t, tp, p, o = (table.c[time_column], *[table.c[c] for c in _KEY])
    same_place = sa.or_(
        tp > topic,
        sa.and_(tp == topic, p > partition),
        sa.and_(tp == topic, p == partition, o > offset),
    )
    if when is None:
        return sa.and_(t.is_(None), same_place)
    return sa.or_(t > when, sa.and_(t == when, same_place))


def _page(
    store: Store,
    table: sa.Table,
    time_column: str,
    where: Sequence[sa.ColumnElement[bool]],
    limit: int,
    after: str | None,
) -> Page:
    order = [table.c[time_column], *[table.c[c] for c in _KEY]]
    query = sa.select(table).where(*where)
    if after is not None:
        # the next rows after the cursor, oldest first
        query = query.where(_after(table, time_column, after)).order_by(*order).limit(limit)
        with store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    else:
        # the latest rows, given oldest first
        query = query.order_by(*[c.desc() for c in order]).limit(limit)
        with store.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        rows.reverse()
    if rows:
        cursor: str | None = encode_cursor(rows[-1], time_column)
    else:
        cursor = after
    return Page(rows, cursor)


def results_page(
    store: Store,
    spec: PipelineSpec,
    limit: int = 100,
    after: str | None = None,
    min_quantile: float | None = None,
) -> Page:
    """Rows of the results table: the latest ``limit`` (oldest first), or the next ``limit``
    after the cursor ``after``; with ``min_quantile``, only the events whose anomaly score
    ranks at or above it (``score_quantile``). Each row: the result's columns, and under
    ``fields`` its event's fields that have a value, by their names in the events."""
    found = _RESULTS.get(store, spec.outputs.results_table_name(spec.name), spec)
    if found is None:
        return Page([], after)
    table, fields = found
    where: list[sa.ColumnElement[bool]] = []
    if min_quantile is not None:
        if "score_quantile" not in table.c:
            return Page([], after)
        where.append(table.c.score_quantile >= min_quantile)
    page = _page(store, table, "processed_at", where, limit, after)
    reserved = set(RESERVED_COLUMNS)
    shaped = []
    for row in page.rows:
        out: dict[str, Any] = {"fields": {}, "challengers": {}}
        for column, value in row.items():
            if column in fields:
                if value is not None:  # a column of another event's field
                    out["fields"][fields[column]] = value
            elif column in reserved or column in (*_ANOMALY_NUMBERS, "is_anomaly"):
                out[column] = value
            elif column.startswith("prediction__"):
                out["challengers"].setdefault(column.removeprefix("prediction__"), {})[
                    "prediction"
                ] = value
            elif column.startswith("probability__"):
                out["challengers"].setdefault(column.removeprefix("probability__"), {})[
                    "probability"
                ] = value
            else:
                out[column] = value
        shaped.append(out)
    return Page(shaped, page.next)


def has_anomaly_scores(store: Store, spec: PipelineSpec) -> bool:
    found = _RESULTS.get(store, spec.outputs.results_table_name(spec.name), spec)
    return found is not None and "score_quantile" in found[0].c


# -- dead letters -------------------------------------------------------------------------------


def dead_letters_page(
    store: Store, spec: PipelineSpec, limit: int = 100, after: str | None = None
) -> Page:
    """This pipeline's dead letters: the latest ``limit`` or those after ``after``."""
    table = _FIXED.tables["dead_letters"]
    return _page(store, table, "recorded_at", [table.c.pipeline == spec.name], limit, after)
