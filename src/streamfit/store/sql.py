"""``Store``: every table streamfit writes, on SQLite, PostgreSQL and MariaDB/MySQL.

Writes are idempotent: every table has a natural key and every write is an upsert (``ON
CONFLICT DO UPDATE`` on SQLite and PostgreSQL, ``ON DUPLICATE KEY UPDATE`` on MariaDB), so a
replay after a crash rewrites rows instead of duplicating them. A batch of results is one
transaction, written the fastest way each database offers (see ``_bulk``).

Database errors surface as :class:`~streamfit.errors.StoreError`; an unreachable or vanished
server (or a locked SQLite file) as :class:`~streamfit.errors.DatabaseUnavailableError`, whose
``retry_after`` says when to try again. Which is which comes from SQLAlchemy (a connection it
invalidated, a pool timeout) and from the driver's own error codes (PostgreSQL's SQLSTATE,
MySQL's error number, SQLite's result code), never from the text of a message.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import orjson
import sqlalchemy as sa

from streamfit.batch import Batch, DeadLetter, Offsets
from streamfit.errors import DatabaseUnavailableError, StoreError, StreamfitError
from streamfit.limits import MAX_NAME_CHARS, MAX_RESULT_FIELDS
from streamfit.store import _bulk, _parts
from streamfit.store import _values as values
from streamfit.store.tables import (
    FIELD_STATS_JSON,
    RESERVED_COLUMNS,
    TRAINING_METRICS,
    ColumnKind,
    UTCDateTime,
    column_name,
    column_type,
    drift_table,
    field_key,
    field_stats_table,
    fixed_metadata,
    label_join_table,
    model_events_table,
    prediction_column,
    probability_column,
    results_table,
    schema_changes_table,
    training_table,
)

__all__ = ["Checkpoint", "ModelPredictions", "Store"]

log = logging.getLogger(__name__)

Task = Literal["classification", "regression", "anomaly"]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")
_RESULTS_KEY: Final = ("source_topic", "source_partition", "source_offset")
_PREVIEW_CHARS: Final = 1000
#: SQLSTATEs of a PostgreSQL server out of reach (besides class 08, connection exceptions):
#: shutting down, crashed, starting up, no connection slot left.
_PG_UNAVAILABLE: Final = frozenset({"57P01", "57P02", "57P03", "53300"})
#: MySQL/MariaDB error numbers of a server out of reach: cannot connect (2002, 2003), unknown
#: host (2005), gone away or lost (2006, 2013, 2055), too many connections (1040), shutting
#: down (1053), connection killed (1927), disconnected for inactivity (4031); and a table
#: another worker is adding a column to, for the moment (1684).
_MYSQL_UNAVAILABLE: Final = frozenset(
    {2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053, 1927, 4031, 1684}
)
#: SQLite's primary result codes of a database another connection holds (busy, locked).
_SQLITE_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


@dataclass(frozen=True, slots=True)
class ModelPredictions:
    """One model's output for a batch, row for row.

    ``prediction`` holds class labels (classification) or numbers (regression);
    ``probability`` the probability of the predicted class, as a 1-d array, or a 2-d
    (rows x classes) array of which the store keeps each row's largest value. For an anomaly
    detector, ``prediction`` is each event's anomaly score, ``probability`` its
    ``score_quantile`` and ``alarms`` its ``is_anomaly``. ``models`` and ``versions``, when
    given, name per row the model (and its version) that made the prediction, in place of
    ``name`` and ``version`` (A/B serving: each row its arm's model).
    """

    name: str
    version: int
    prediction: npt.NDArray[Any]
    probability: npt.NDArray[Any] | None = None
    alarms: npt.NDArray[np.bool_] | None = None
    models: npt.NDArray[Any] | None = None
    versions: npt.NDArray[np.int64] | None = None
    #: a classifier's probabilities of every class, ``(rows, len(classes))`` (not stored:
    #: what a served prediction is evaluated on when its label comes later)
    scores: npt.NDArray[np.float64] | None = None
    classes: tuple[object, ...] = ()

    def take(self, index: npt.NDArray[np.intp]) -> ModelPredictions:
        """The rows at ``index``."""
        probability = None if self.probability is None else np.asarray(self.probability)[index]
        alarms = None if self.alarms is None else np.asarray(self.alarms)[index]
        scores = None if self.scores is None else self.scores[index]
        return ModelPredictions(
            self.name,
            self.version,
            np.asarray(self.prediction)[index],
            probability,
            alarms,
            None if self.models is None else self.models[index],
            None if self.versions is None else self.versions[index],
            scores,
            self.classes,
        )

    def model_names(self, n: int) -> list[str]:
        """The model of each of ``n`` rows."""
        if self.models is None:
            return [self.name] * n
        return [str(m) for m in self.models.tolist()]

    def model_versions(self, n: int) -> list[int]:
        """The model version of each of ``n`` rows."""
        if self.versions is None:
            return [int(self.version)] * n
        return [int(v) for v in self.versions.tolist()]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a pipeline had done when it last checkpointed."""

    offsets: Offsets
    model_states: dict[str, bytes]
    extra: dict[str, bytes]
    written_at: dt.datetime | None
    emitted: Offsets = field(default_factory=dict)  # outputs written below these offsets


@dataclass(slots=True)
class _Results:
    """What the store knows of one results table, so that a batch needs no schema query."""

    table: sa.Table
    task: Task
    fields: dict[str, tuple[str, ColumnKind]]  # event field -> (column, kind)
    models: set[str] = field(default_factory=set)  # non-champion models with columns
    untracked: set[str] = field(default_factory=set)  # fields without a column (bounded)


class Store:
    """The SQL tables of one pipeline (and the ones it shares), in any supported database.

    ``url`` is a SQLAlchemy URL: ``sqlite:///streamfit.db``, ``sqlite://`` (in memory),
    ``postgresql+psycopg://user:pw@host/db`` or ``mysql+pymysql://user:pw@host/db``
    (MariaDB and MySQL alike). The fixed tables are created at once, the results and training
    tables on their first write.

    Examples
    --------
    >>> import numpy as np
    >>> from streamfit.batch import Batch, Messages
    >>> store = Store("sqlite://", pipeline="demo")
    >>> batch = Batch(
    ...     {"Age": np.array([31.0, np.nan]), "city": np.array(["Oslo", None], dtype=object)},
    ...     Messages.from_values([b"{}", b"{}"], topic="score", keys=[b"a", b"b"]),
    ... )
    >>> champion = ModelPredictions("lr", 3, np.array([1.0, 0.0]), np.array([0.9, 0.8]))
    >>> store.write_results("demo_results", batch, [champion], None, "classification")
    2
    >>> store.write_results("demo_results", batch, [champion], None, "classification")
    2
    >>> store.count("demo_results")
    2
    >>> row = store.read_results("demo_results")[0]
    >>> row["age"], row["city"], row["prediction"], row["probability"], row["event_key"]
    (31, 'Oslo', '1', 0.9, 'a')
    >>> store.field_columns("demo_results")
    {'Age': 'age', 'city': 'city'}
    >>> store.save_checkpoint({("score", 0): 2}, {"lr": b"state"})
    >>> store.load_checkpoint().offsets
    {('score', 0): 2}
    >>> store.close()
    """

    def __init__(
        self,
        url: str,
        pipeline: str,
        *,
        chunk_size: int = 5000,
        connect_timeout: float = 10.0,
        retry_after: float = 5.0,
    ) -> None:
        if not pipeline or len(pipeline) > 100:
            raise StoreError(f"a pipeline name is 1 to 100 characters, got {pipeline!r}")
        self.pipeline = pipeline
        self.chunk_size = max(1, chunk_size)
        self.retry_after = retry_after
        self._lock = threading.RLock()
        self._results: dict[str, _Results] = {}
        self._warned: set[str] = set()  # results tables said to have fields without a column
        self._training: dict[str, sa.Table] = {}
        self._exploration: dict[str, sa.Table] = {}  # field statistics, schema changes, ...
        self._labeled: set[str] = set()  # results tables known to exist (``write_labels``)
        self._fixed = fixed_metadata()
        try:
            self._engine = _make_engine(url, connect_timeout)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise StoreError(f"cannot use database URL: {exc}") from exc
        self._dialect = self._engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql", "mysql", "mariadb"):
            self._engine.dispose()
            raise StoreError(
                "streamfit.store supports SQLite, PostgreSQL and MariaDB/MySQL, "
                f"not {self._dialect}"
            )
        self._bulk = _bulk.BulkWriter(self._engine, self.chunk_size)
        with self._guard(f"creating the tables in {self.display_url}"):
            self._create(self._fixed)

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, for queries of your own."""
        return self._engine

    @property
    def display_url(self) -> str:
        """The database URL with the password masked."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r}, pipeline={self.pipeline!r})"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except StreamfitError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise _translate(exc, action, self.retry_after) from exc

    def _create(self, metadata: sa.MetaData) -> None:
        """CREATE TABLE IF NOT EXISTS, tolerating another worker creating them at once."""
        for attempt in range(5):
            try:
                metadata.create_all(self._engine, checkfirst=True)
                break
            except (
                sa.exc.ProgrammingError,
                sa.exc.IntegrityError,
                sa.exc.OperationalError,
            ) as exc:
                # another worker created a table between our check and our CREATE: look again
                if _is_unavailable(exc) or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        self._add_missing_columns(metadata)
        self._add_missing_indexes(metadata)

    def _add_missing_indexes(self, metadata: sa.MetaData) -> None:
        """Tables made by an older streamfit get the indexes added since."""
        inspector = sa.inspect(self._engine)
        for table in metadata.sorted_tables:
            present = {i["name"] for i in inspector.get_indexes(table.name, schema=table.schema)}
            for index in table.indexes:
                if index.name in present:
                    continue
                try:
                    index.create(self._engine, checkfirst=True)
                except (sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
                    # another worker created it between our look and our CREATE INDEX
                    names = {i["name"] for i in sa.inspect(self._engine).get_indexes(table.name)}
                    if index.name not in names:
                        raise
                    log.debug("index %s appeared meanwhile: %s", index.name, exc)
                    continue
                log.info("added index %s on %s", index.name, table.name)

    def _made_table(
        self, made: dict[str, sa.Table], table: str, define: Callable[[str], sa.Table]
    ) -> sa.Table:
        """Table ``table`` as ``define`` makes it, created in the database the first time
        (``made``: the ones created so far, by name)."""
        definition = made.get(table)
        if definition is None:
            with self._lock:
                self._check_table_name(table)
                definition = define(table)
                self._create(definition.metadata)
                made[table] = definition
        return definition

    def _write_rows(self, table: str, definition: sa.Table, params: list[dict[str, Any]]) -> int:
        """Upsert ``params`` into ``table`` (``_write``); return how many."""
        with self._guard(f"writing {len(params)} rows to {table}"):
            self._write(definition, params)
        return len(params)

    def _read_rows(self, table: str, query: sa.Select[Any]) -> list[dict[str, Any]]:
        """The rows ``query`` reads from ``table``, as dicts ([] while it does not exist)."""
        with self._guard(f"reading {table}"), self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return []
            return [dict(r._mapping) for r in conn.execute(query)]

    def _add_missing_columns(self, metadata: sa.MetaData) -> None:
        """Tables made by an older streamfit get the nullable columns added since."""
        inspector = sa.inspect(self._engine)
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
            for column in table.columns:
                if column.name in present or not column.nullable:
                    continue
                kind = column.type.compile(dialect=self._engine.dialect)
                with self._engine.begin() as conn:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {self._quote(table.name)} "
                        f"ADD COLUMN {self._quote(column.name)} {kind}"
                    )
                log.info("added column %s.%s", table.name, column.name)

    def _quote(self, name: str) -> str:
        return str(self._engine.dialect.identifier_preparer.quote(name))

    def _write(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Upsert ``rows`` (all with the same keys) in one transaction, in chunks."""
        if not rows:
            return
        statement = _bulk.upsert(self._dialect, table, list(rows[0]))
        with self._engine.begin() as conn:
            for start in range(0, len(rows), self.chunk_size):
                conn.execute(statement, rows[start : start + self.chunk_size])

    def _columns(self, conn: sa.Connection, table: str) -> set[str] | None:
        """The lowercase column names of ``table``, or None when there is no such table."""
        inspector = sa.inspect(conn)
        if not inspector.has_table(table):
            return None
        return {str(c["name"]).lower() for c in inspector.get_columns(table)}

    def _add_columns(self, table: str, columns: list[sa.Column[Any]]) -> None:
        """ALTER TABLE ... ADD COLUMN for each of ``columns`` the table does not have yet."""
        with self._engine.connect() as conn:
            have = self._columns(conn, table) or set()
        preparer = self._engine.dialect.identifier_preparer
        for column in columns:
            if column.name.lower() in have:
                continue
            holder = sa.Table(table, sa.MetaData(), column._copy())
            spec = sa.schema.CreateColumn(holder.c[column.name]).compile(
                dialect=self._engine.dialect
            )
            ddl = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {spec}"
            try:
                with self._engine.begin() as conn:
                    conn.exec_driver_sql(ddl)
            except sa.exc.DBAPIError as exc:
                if _is_unavailable(exc):
                    raise
                with self._engine.connect() as conn:  # another worker may have added it
                    if column.name.lower() not in (self._columns(conn, table) or set()):
                        raise
            log.info("added column %s to %s", column.name, table)

    def _check_table_name(self, table: str) -> None:
        if not _TABLE_NAME.match(table) or table in self._fixed.tables:
            raise StoreError(
                f"{table!r} cannot be a results or training table: use letters, digits and '_' "
                f"(at most 60), and none of {sorted(self._fixed.tables)}"
            )

    # -- results --------------------------------------------------------------------------------

    def write_results(
        self,
        table: str,
        batch: Batch,
        predictions: Sequence[ModelPredictions],
        labels: npt.NDArray[Any] | None,
        task: Task,
    ) -> int:
        """Upsert one row per event of ``batch`` into ``table``; return how many rows.

        The event's fields become typed columns (whole numbers ``BIGINT``, until a value with
        a fraction makes the column ``DOUBLE``; other numbers ``DOUBLE``, ``Batch.booleans``
        ``BOOLEAN``, anything else ``TEXT``, non-strings as JSON); a new field adds a column,
        of the type most of its values in this batch have, up to
        ``limits.MAX_RESULT_FIELDS`` fields a table. The first of ``predictions`` (the
        champion) fills ``prediction``, ``probability``, ``model`` and ``model_version``; each
        other model ``prediction__<name>`` and ``probability__<name>``. Classification
        predictions and labels are text (``"1"`` for 1, 1.0 and True), regression ones numbers.
        ``label`` is written only when ``labels`` is given, so a rewrite without labels keeps
        the label already there.

        A row whose columns do not hold its event as it came has the event's payload (its
        original bytes, as text) in ``event_payload``, else NULL: the event had a field
        without a column (past the limit, a name no column is made for, or ``Batch.partial``),
        a value that does not fit its column's type (NULL there), or a string with NUL (stored
        with U+FFFD in its place, as every database can hold it).
        """
        n = len(batch)
        if n == 0:
            return 0
        if not predictions:
            raise StoreError("write_results needs the predictions of at least one model")
        if task not in ("classification", "regression", "anomaly"):
            raise StoreError(f"task is 'classification', 'regression' or 'anomaly', not {task!r}")
        keep = _bulk.last_of_each_offset(batch.meta)
        if keep is not None:  # one statement must not upsert a row twice (PostgreSQL refuses)
            batch = batch.take(keep)
            predictions = [p.take(keep) for p in predictions]
            labels = None if labels is None else np.asarray(labels)[keep]
            n = len(batch)
        with self._guard(f"writing {n} rows to {table}"):
            kinds = {
                name: values.field_kind(column, name in batch.booleans)
                for name, column in batch.columns.items()
            }
            models = [p.name for p in predictions[1:]]
            info = self._results_table(table, task, batch, kinds, models)
            fractions = [
                name
                for name, kind in kinds.items()
                if name in info.fields
                and info.fields[name][1] == "int"
                and not values.fits_integers(batch.columns[name], kind)
            ]
            if fractions:
                info = self._widen(table, task, batch, fractions, kinds, models)
            params = self._result_params(info, batch, kinds, predictions, labels)
            for name, column_values in params.items():
                if len(column_values) != n:
                    raise StoreError(f"{name!r} has {len(column_values)} values for {n} events")
            self._bulk.write(info.table, params)
        return n

    def _widen(
        self,
        table: str,
        task: Task,
        batch: Batch,
        fields: list[str],
        kinds: dict[str, ColumnKind],
        models: list[str],
    ) -> _Results:
        """Integer columns of ``fields`` become DOUBLE: a value with a fraction arrived."""
        registry = self._fixed.tables["result_fields"]
        info = self._results[table]
        with self._lock:
            for name in fields:
                column = info.fields[name][0]
                quoted_table, quoted = self._quote(table), self._quote(column)
                if self._dialect == "postgresql":
                    ddl = f"ALTER TABLE {quoted_table} ALTER COLUMN {quoted} TYPE DOUBLE PRECISION"
                elif self._dialect in ("mysql", "mariadb"):
                    ddl = f"ALTER TABLE {quoted_table} MODIFY COLUMN {quoted} DOUBLE"
                else:
                    ddl = None  # SQLite keeps a fraction in an INTEGER column as it is
                with self._engine.begin() as conn:
                    if ddl is not None:
                        conn.exec_driver_sql(ddl)
                    conn.execute(
                        sa.update(registry)
                        .where(registry.c.table_name == table)
                        .where(registry.c.field_key == field_key(name))
                        .values(kind="float")
                    )
                log.info(
                    "%s.%s: whole numbers until now, a fraction came: now DOUBLE", table, column
                )
            self._results.pop(table, None)
            return self._refresh_results(table, task, batch, kinds, models)

    def _result_params(
        self,
        info: _Results,
        batch: Batch,
        kinds: dict[str, ColumnKind],
        predictions: Sequence[ModelPredictions],
        labels: npt.NDArray[Any] | None,
    ) -> dict[str, list[Any]]:
        n = len(batch)
        outcome = values.float_list if info.task == "regression" else values.outcome_texts
        params: dict[str, list[Any]] = {}
        changed = _Changed(table=info.table.name, rows=batch.partial)
        for name, column in batch.columns.items():
            found = info.fields.get(name)
            if found is None:
                changed.add(values.present(column), "has fields without a column", name)
                continue
            column_name_, kind = found
            converted = values.field_values(column, kinds[name], kind)
            params[column_name_] = converted
            if kinds[name] != kind:
                lost = values.present(column) & values.missing(converted)
                changed.add(lost, "has values that do not fit their column's type", name)
            if kind == "text":
                changed.add(values.nul_rows(column), "has text with NUL (stored as U+FFFD)", name)
        if labels is not None and info.task == "classification":
            changed.add(values.nul_rows(np.asarray(labels)), "has a label with NUL", "label")
        params["event_payload"] = changed.payloads(batch.meta.values)
        champion = predictions[0]
        if info.task == "anomaly":
            params.update(_anomaly_params(champion, n))
        else:
            params["prediction"] = outcome(np.asarray(champion.prediction))
            params["probability"] = _probabilities(champion.probability, n)
        params["model"] = champion.model_names(n)
        params["model_version"] = champion.model_versions(n)
        if labels is not None:
            params["label"] = outcome(np.asarray(labels))
        meta = batch.meta
        params["source_topic"] = meta.topics.tolist()
        params["source_partition"] = meta.partitions.tolist()
        params["source_offset"] = meta.offsets.tolist()
        params["event_key"] = values.key_texts(meta.keys)
        params["event_time"] = self._bulk.times(meta.timestamps)
        params["processed_at"] = [self._bulk.time(_utcnow())] * n
        for other in predictions[1:]:
            if info.task == "anomaly":
                suffix = _model_suffix(other.name)
                for name, value in _anomaly_params(other, n).items():
                    params[f"{name}__{suffix}"[:60]] = value
                continue
            params[prediction_column(other.name)] = outcome(np.asarray(other.prediction))
            params[probability_column(other.name)] = _probabilities(other.probability, n)
        return params

    def _results_table(
        self,
        table: str,
        task: Task,
        batch: Batch,
        kinds: dict[str, ColumnKind],
        models: list[str],
    ) -> _Results:
        """The cached description of ``table``, brought up to date for these fields and models."""
        info = self._results.get(table)
        if (
            info is not None
            and info.task == task
            and all(f in info.fields or f in info.untracked for f in kinds)
            and all(m in info.models for m in models)
        ):
            return info
        with self._lock:
            return self._refresh_results(table, task, batch, kinds, models)

    def _refresh_results(
        self,
        table: str,
        task: Task,
        batch: Batch,
        kinds: dict[str, ColumnKind],
        models: list[str],
    ) -> _Results:
        self._check_table_name(table)
        known = self._results.get(table)
        new = [f for f in kinds if known is None or f not in known.fields]
        evidence = {  # a new field's column type: the type most of its values have
            f: values.column_kind(batch.columns[f], f in batch.booleans) for f in new
        }
        # past the limit, the fields most events of the batch have get the columns left
        frequent = sorted(new, key=lambda f: -int(values.present(batch.columns[f]).sum()))
        fields = self._assign_columns(table, {**kinds, **evidence}, frequent)
        all_models = sorted(set(models) | (known.models if known else set()))
        untracked = {f for f in kinds if f not in fields}
        if known is not None and len(known.untracked) < _UNTRACKED_KEPT:
            untracked |= known.untracked
        if untracked and table not in self._warned:
            self._warned.add(table)
            log.warning(
                "%s: fields such as %r have no column (at most %d fields a table, names of at "
                "most %d characters without control characters); rows that have them keep "
                "the event in event_payload",
                table,
                next(iter(untracked))[:100],
                MAX_RESULT_FIELDS,
                MAX_NAME_CHARS,
            )
        # New tables get the first batch's fields first, in the batch's order.
        ordered = [fields[f] for f in kinds if f in fields]
        ordered += [c for f, c in fields.items() if f not in kinds]
        definition = results_table(table, task, ordered, all_models)
        with self._engine.connect() as conn:
            exists = sa.inspect(conn).has_table(table)
        if not exists:
            self._create(definition.metadata)
        # Also when just created: another worker may have created it first, with its fields.
        self._check_task(table, task)
        self._add_columns(table, list(definition.columns))
        if known is None and exists:  # a table of an earlier run: the indexes added since
            self._add_missing_indexes(definition.metadata)
        self._bulk.forget(table)
        info = _Results(definition, task, fields, set(all_models), untracked)
        self._results[table] = info
        return info

    def _check_task(self, table: str, task: Task) -> None:
        with self._engine.connect() as conn:
            columns = {c["name"].lower(): c["type"] for c in sa.inspect(conn).get_columns(table)}
        if "anomaly_score" in columns or task == "anomaly":
            holds = "anomaly" if "anomaly_score" in columns else "classification or regression"
            if (task == "anomaly") != ("anomaly_score" in columns):
                raise StoreError(
                    f"{table} holds {holds} results; cannot write {task} results to it"
                )
            return
        made_for = columns.get("prediction")
        if made_for is None:
            return
        is_number = isinstance(made_for, sa.Float | sa.Numeric)
        if is_number != (task == "regression"):
            raise StoreError(
                f"{table} holds {'regression' if is_number else 'classification'} results; "
                f"cannot write {task} results to it"
            )

    def _assign_columns(
        self, table: str, kinds: dict[str, ColumnKind], first: Sequence[str] = ()
    ) -> dict[str, tuple[str, ColumnKind]]:
        """Every field's (column, kind) for ``table``, giving new fields their columns.

        The mapping lives in ``result_fields``, so it is the same for every worker and after
        every restart: a field keeps the column it got first. A table has columns for at most
        ``MAX_RESULT_FIELDS`` fields, the first that come (in a batch, those of ``first``
        first, then in its order), and for none whose name is longer than ``MAX_NAME_CHARS``
        or has a control character; the
        others are left out of the mapping. New fields of one batch are named in a fixed
        order (already-clean names first, then by name); the registry is locked while fields
        are added, so that two workers adding fields at once never pass the limit, and a
        unique constraint makes them agree on names (the loser re-reads).
        """
        registry = self._fixed.tables["result_fields"]
        for _attempt in range(10):
            with self._engine.connect() as conn:
                mapping = self._field_mapping(conn, table)
            ranked = [*dict.fromkeys([*(f for f in first if f in kinds), *kinds])]
            missing = [f for f in ranked if f not in mapping and _may_have_column(f)]
            if not missing or len(mapping) >= MAX_RESULT_FIELDS:
                return mapping
            try:
                with self._engine.connect() as conn, self._fields_locked(conn), conn.begin():
                    if self._dialect == "postgresql":
                        conn.exec_driver_sql("LOCK TABLE result_fields IN SHARE ROW EXCLUSIVE MODE")
                    elif self._dialect == "sqlite":  # a write takes the database's write lock
                        conn.exec_driver_sql("UPDATE result_fields SET kind = kind WHERE 1 = 0")
                    mapping = self._field_mapping(conn, table)
                    room = MAX_RESULT_FIELDS - len(mapping)
                    chosen = [f for f in missing if f not in mapping][: max(room, 0)]
                    if not chosen:
                        return mapping
                    taken = {c.lower() for c, _ in mapping.values()} | set(RESERVED_COLUMNS)
                    taken |= self._columns(conn, table) or set()
                    now = _utcnow()
                    new_rows = []
                    for name in sorted(chosen, key=lambda f: (column_name(f, set()) != f, f)):
                        column = column_name(name, taken)
                        taken.add(column)
                        mapping[name] = (column, kinds[name])
                        new_rows.append(
                            {
                                "table_name": table,
                                "field_key": field_key(name),
                                "column_name": column,
                                "field": name,
                                "kind": kinds[name],
                                "created_at": now,
                            }
                        )
                    conn.execute(sa.insert(registry), new_rows)
            except sa.exc.IntegrityError:
                continue  # another worker named some of these fields first: read theirs
            return mapping
        raise StoreError(f"could not agree on column names for {table} with other writers")

    @contextmanager
    def _fields_locked(self, conn: sa.Connection) -> Iterator[None]:
        """On MariaDB, hold off other writers of ``result_fields`` while ``conn`` adds fields
        (InnoDB's range locks would not: two writers deadlock). PostgreSQL and SQLite lock in
        the transaction itself."""
        if self._dialect not in ("mysql", "mariadb"):
            yield
            return
        # one lock per database of the server: MD5 keeps the name within 64 characters
        got = conn.exec_driver_sql(f"SELECT GET_LOCK({_FIELDS_LOCK}, 60)").scalar()
        conn.commit()  # the lock is the session's; the fields' transaction begins after
        if got != 1:
            raise DatabaseUnavailableError("waiting for another writer of result_fields", 1.0)
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT RELEASE_LOCK({_FIELDS_LOCK})")

    def _field_mapping(self, conn: sa.Connection, table: str) -> dict[str, tuple[str, ColumnKind]]:
        registry = self._fixed.tables["result_fields"]
        rows = conn.execute(
            sa.select(registry.c.field, registry.c.column_name, registry.c.kind).where(
                registry.c.table_name == table
            )
        ).all()
        return {r.field: (r.column_name, r.kind) for r in rows}

    def field_columns(self, table: str) -> dict[str, str]:
        """Which column holds each event field of results ``table``."""
        registry = self._fixed.tables["result_fields"]
        with self._guard(f"reading the columns of {table}"), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(registry.c.field, registry.c.column_name)
                .where(registry.c.table_name == table)
                .order_by(registry.c.created_at, registry.c.column_name)
            ).all()
        return {r.field: r.column_name for r in rows}

    def read_results(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows of results ``table`` as dicts, by topic, partition and offset ([] if none).

        Values come back as written, whatever the database: booleans as ``bool`` (not
        MariaDB's 0/1), times as aware UTC datetimes.
        """
        self._check_table_name(table)
        registry = self._fixed.tables["result_fields"]
        with self._guard(f"reading {table}"), self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return []
            kinds = conn.execute(
                sa.select(registry.c.column_name, registry.c.kind).where(
                    registry.c.table_name == table
                )
            ).all()
            typed: list[sa.Column[Any]] = [
                sa.Column(name, UTCDateTime()) for name in ("event_time", "processed_at")
            ]
            typed += [sa.Column(r.column_name, column_type(r.kind)) for r in kinds]
            typed += [  # numbers, not MariaDB's Decimals
                sa.Column(c["name"], sa.Double())
                for c in sa.inspect(conn).get_columns(table)
                if str(c["name"]).startswith(_DOUBLE_OUTPUTS)
            ]
            reflected = sa.Table(table, sa.MetaData(), *typed, autoload_with=conn)
            query = sa.select(reflected).order_by(*[reflected.c[c] for c in _RESULTS_KEY])
            if limit is not None:
                query = query.limit(limit)
            return [dict(r._mapping) for r in conn.execute(query)]

    def write_labels(
        self,
        table: str,
        where: tuple[Sequence[str], npt.NDArray[Any], npt.NDArray[Any]],
        labels: npt.NDArray[Any],
        task: Task,
    ) -> int:
        """Set the ``label`` of the rows of results ``table`` at ``where`` (their topics,
        partitions and offsets): labels that came after their events. Rows not there (not
        written, or no such table yet) are left alone; returns how many labels were given."""
        topics, partitions, offsets = where
        if not len(labels):
            return 0
        texts = (values.float_list if task == "regression" else values.outcome_texts)(
            np.asarray(labels)
        )
        with self._guard(f"writing {len(texts)} labels to {table}"):
            if table not in self._labeled:
                with self._engine.connect() as conn:
                    if not sa.inspect(conn).has_table(table):
                        return 0
                self._labeled.add(table)
            kind: sa.types.TypeEngine[Any] = sa.Double() if task == "regression" else sa.Text()
            t = sa.Table(
                table,
                sa.MetaData(),
                sa.Column("label", kind),
                *[sa.Column(c, sa.BigInteger) for c in _RESULTS_KEY[1:]],
                sa.Column(_RESULTS_KEY[0], sa.Text()),
            )
            statement = (
                sa.update(t)
                .where(
                    t.c.source_topic == sa.bindparam("b_topic"),
                    t.c.source_partition == sa.bindparam("b_partition"),
                    t.c.source_offset == sa.bindparam("b_offset"),
                )
                .values(label=sa.bindparam("b_label"))
            )
            rows = [
                {"b_topic": t_, "b_partition": int(p), "b_offset": int(o), "b_label": label}
                for t_, p, o, label in zip(
                    topics, partitions.tolist(), offsets.tolist(), texts, strict=True
                )
            ]
            with self._engine.begin() as conn:
                for start in range(0, len(rows), self.chunk_size):
                    conn.execute(statement, rows[start : start + self.chunk_size])
        return len(rows)

    def write_label_join(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert label join rows (``tables.label_join_table``) into ``table``."""
        if not rows:
            return 0
        with self._guard(f"writing {len(rows)} rows to {table}"):
            definition = self._made_table(self._exploration, table, label_join_table)
            columns = set(definition.columns.keys())
            now = _utcnow()
            params = []
            for row in rows:
                unknown = set(row) - columns
                if unknown:
                    raise StoreError(f"unknown label join columns {sorted(unknown)}")
                record: dict[str, Any] = dict.fromkeys(columns)
                record.update(
                    {k: _metric(v) if isinstance(v, float) else v for k, v in row.items()}
                )
                record["recorded_at"] = _as_time(row.get("recorded_at")) or now
                params.append(record)
            self._write(definition, params)
        return len(params)

    def read_label_join(self, table: str) -> list[dict[str, Any]]:
        """Rows of label join ``table``, by model, worker and events seen."""
        definition = label_join_table(table)
        query = sa.select(definition).order_by(
            definition.c.model, definition.c.worker, definition.c.events_seen
        )
        return self._read_rows(table, query)

    # -- training -------------------------------------------------------------------------------

    def write_training(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert metric rows into training ``table``, keyed by (model, events_seen).

        Each row has ``model``, ``model_version``, ``events_seen``, optionally ``recorded_at``
        (a datetime or epoch seconds; default now) and any of :data:`TRAINING_METRICS`;
        missing or NaN metrics are NULL. Any other key is an error.
        """
        if not rows:
            return 0
        allowed = {
            "model",
            "worker",
            "model_version",
            "events_seen",
            "recorded_at",
            "role",
            "arm",
            *TRAINING_METRICS,
        }
        params = []
        now = _utcnow()
        for row in rows:
            unknown = set(row) - allowed
            if unknown:
                raise StoreError(
                    f"unknown training columns {sorted(unknown)}; known: {sorted(allowed)}"
                )
            version = row.get("model_version")
            record: dict[str, Any] = {
                "model": str(row["model"]),
                "worker": str(row.get("worker", "0")),
                "model_version": None if version is None else int(version),
                "events_seen": int(row["events_seen"]),
                "recorded_at": _as_time(row.get("recorded_at")) or now,
            }
            for metric in TRAINING_METRICS:
                record[metric] = _metric(row.get(metric))
            record["role"] = row.get("role")
            record["arm"] = row.get("arm")
            params.append(record)
        with self._guard(f"writing {len(params)} rows to {table}"):
            self._write(self._training_table(table), params)
        return len(params)

    def _training_table(self, table: str) -> sa.Table:
        found = self._training.get(table)
        if found is not None:
            return found
        with self._lock:
            self._check_table_name(table)
            definition = training_table(table)
            with self._engine.connect() as conn:
                inspector = sa.inspect(conn)
                exists = inspector.has_table(table)
                key = inspector.get_pk_constraint(table)["constrained_columns"] if exists else []
            if exists:
                if "worker" not in [str(c).lower() for c in key]:
                    log.warning(
                        "%s was made before its worker column: the rows of several workers at "
                        "the same events_seen overwrite each other (rename or drop it to get "
                        "one row per worker)",
                        table,
                    )
                    definition = training_table(table, keyed_by_worker=False)
                self._add_columns(table, list(definition.columns))
            else:
                self._create(definition.metadata)
            self._training[table] = definition
            return definition

    def read_training(self, table: str, model: str | None = None) -> list[dict[str, Any]]:
        """Rows of training ``table`` (of one ``model``), by model, worker and events seen."""
        definition = training_table(table)
        query = sa.select(definition).order_by(
            definition.c.model, definition.c.worker, definition.c.events_seen
        )
        if model is not None:
            query = query.where(definition.c.model == model)
        return self._read_rows(table, query)

    # -- exploration ----------------------------------------------------------------------------

    def write_field_stats(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert field statistics rows into ``table``, keyed by (field, worker, events_seen).

        A row has ``field``, ``events_seen``, optionally ``worker`` (default "0") and
        ``recorded_at`` (a datetime or epoch seconds; default now), and any columns of
        :func:`~streamfit.store.tables.field_stats_table`: the figures, quantiles ``pNN``
        (a column not in the table yet is added) and, as JSON text, ``histogram``,
        ``top_values`` and ``correlations`` (each also ``window_``-prefixed). NaN and
        infinities are NULL. Any other key is an error.
        """
        if not rows:
            return 0
        quantiles = sorted(
            {base for row in rows for key in row if _QUANTILE.match(base := _unwindowed(key))}
        )
        definition = self._field_stats_table(table, quantiles)
        columns = set(definition.columns.keys())
        now = _utcnow()
        params = []
        for row in rows:
            unknown = set(row) - columns
            if unknown:
                raise StoreError(f"unknown field statistics columns {sorted(unknown)}")
            record: dict[str, Any] = dict.fromkeys(columns)
            for key, value in row.items():
                base = _unwindowed(key)
                if base in FIELD_STATS_JSON:
                    record[key] = None if value is None else orjson.dumps(value).decode()
                elif isinstance(value, float):
                    record[key] = _metric(value)
                else:
                    record[key] = value
            record["field"] = field_key(str(row["field"]))
            record["worker"] = str(row.get("worker", "0"))
            record["events_seen"] = int(row["events_seen"])
            record["recorded_at"] = _as_time(row.get("recorded_at")) or now
            params.append(record)
        return self._write_rows(table, definition, params)

    def _field_stats_table(self, table: str, quantiles: list[str]) -> sa.Table:
        found = self._exploration.get(table)
        if found is not None and all(q in found.columns for q in quantiles):
            return found
        with self._lock, self._guard(f"creating {table}"):
            self._check_table_name(table)
            with self._engine.connect() as conn:
                present = self._columns(conn, table)
            known = {c for c in present or () if _QUANTILE.match(c)}
            definition = field_stats_table(table, sorted(known | set(quantiles)))
            if present is None:
                self._create(definition.metadata)
            else:
                self._add_columns(table, list(definition.columns))
            self._exploration[table] = definition
            return definition

    def read_field_stats(
        self, table: str, field: str | None = None, latest: bool = True
    ) -> list[dict[str, Any]]:
        """Rows of field statistics ``table`` (of one ``field``), JSON columns parsed; with
        ``latest``, each field's last snapshot only (the one of most events, of the workers
        that wrote last). Ordered by when each field first came, then time."""
        self._check_table_name(table)
        with self._guard(f"reading {table}"), self._engine.connect() as conn:
            present = self._columns(conn, table)
            if present is None:
                return []
            # read through our own definition: its types mean the same on every database
            # (a reflected DOUBLE is a Decimal on MariaDB)
            reflected = field_stats_table(table, sorted(c for c in present if _QUANTILE.match(c)))
            query = sa.select(reflected)
            if field is not None:
                query = query.where(reflected.c.field == field_key(field))
            query = query.order_by(reflected.c.recorded_at, reflected.c.events_seen)
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            for key in row:
                if _unwindowed(key) in FIELD_STATS_JSON and row[key] is not None:
                    row[key] = orjson.loads(row[key])
        if not latest:
            return rows
        last: dict[str, dict[str, Any]] = {}
        for row in rows:  # in time order: the last one of each field stays
            last[row["field"]] = row
        first_seen = {name: i for i, name in enumerate(dict.fromkeys(r["field"] for r in rows))}
        return sorted(last.values(), key=lambda r: first_seen[r["field"]])

    def write_schema_changes(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert schema changes into ``table``: each row ``field``, ``old_type``,
        ``new_type`` (None: appeared, or gone), ``source_topic``, ``source_partition``,
        ``first_offset`` (where it was first seen: the key) and optionally ``worker``."""
        if not rows:
            return 0
        with self._guard(f"creating {table}"):
            definition = self._made_table(self._exploration, table, schema_changes_table)
        now = _utcnow()
        params = [
            {
                "field": field_key(str(row["field"])),
                "source_topic": str(row["source_topic"]),
                "source_partition": int(row["source_partition"]),
                "first_offset": int(row["first_offset"]),
                "old_type": row.get("old_type"),
                "new_type": row.get("new_type"),
                "worker": str(row.get("worker", "0")),
                "recorded_at": now,
            }
            for row in rows
        ]
        return self._write_rows(table, definition, params)

    def read_schema_changes(self, table: str) -> list[dict[str, Any]]:
        """Rows of schema changes ``table``, in the order they were recorded."""
        definition = schema_changes_table(table)
        query = sa.select(definition).order_by(
            definition.c.recorded_at,
            definition.c.source_topic,
            definition.c.source_partition,
            definition.c.first_offset,
        )
        return self._read_rows(table, query)

    # -- dead letters ---------------------------------------------------------------------------

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Upsert rejected events into ``dead_letters``, under this store's pipeline."""
        if not letters:
            return 0
        now = _utcnow()
        times = values.event_times(np.array([d.timestamp_ms for d in letters], dtype=np.int64))
        rows = [
            {
                "pipeline": self.pipeline,
                "source_topic": d.topic,
                "source_partition": d.partition,
                "source_offset": d.offset,
                "event_key": d.key,
                "payload": d.value if d.value is None else d.value[: _parts.PART_BYTES],
                "preview": _preview(d.value),
                "reason": _dead_letter_reason(d),
                "event_time": time,
                "recorded_at": now,
            }
            for d, time in zip(letters, times, strict=True)
        ]
        with self._guard(f"writing {len(rows)} dead letters"):
            self._write(self._fixed.tables["dead_letters"], rows)
        return len(rows)

    def read_dead_letters(self) -> list[DeadLetter]:
        """This pipeline's dead letters, by topic, partition and offset."""
        t = self._fixed.tables["dead_letters"]
        query = (
            sa.select(t)
            .where(t.c.pipeline == self.pipeline)
            .order_by(t.c.source_topic, t.c.source_partition, t.c.source_offset)
        )
        with self._guard("reading dead letters"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            DeadLetter(
                topic=r.source_topic,
                partition=r.source_partition,
                offset=r.source_offset,
                key=r.event_key,
                value=r.payload,
                timestamp_ms=_epoch_ms(r.event_time),
                reason=r.reason,
            )
            for r in rows
        ]

    # -- models ---------------------------------------------------------------------------------

    def save_model(
        self,
        name: str,
        version: int,
        kind: str,
        state: bytes,
        *,
        worker: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a model's state as (this pipeline, ``name``, ``version``), with the
        ``worker`` that saved it and its ``metrics`` at that version; upsert. A state past
        ``_parts.PART_BYTES`` is stored in parts (``store._parts``)."""
        now = _utcnow()
        rows = [
            {
                "pipeline": self.pipeline,
                "name": row_name,
                "version": int(version),
                "kind": kind,
                "state": blob,
                "saved_at": now,
                "worker": worker,
                "metrics": None if metrics is None else _json_text(metrics),
            }
            for row_name, blob in _parts.split(name, bytes(state))
        ]
        with self._guard(f"saving model {name} v{version}"):
            self._write(self._fixed.tables["models"], rows)

    def load_model(self, name: str, version: int | None = None) -> tuple[int, str, bytes] | None:
        """(version, kind, state) of ``version`` of ``name`` (by default its highest saved
        version), or None. A pruned version's state is empty."""
        t = self._fixed.tables["models"]
        query = sa.select(t.c.version, t.c.kind, t.c.state).where(
            t.c.pipeline == self.pipeline, t.c.name == name
        )
        if version is None:
            query = query.order_by(t.c.version.desc()).limit(1)
        else:
            query = query.where(t.c.version == int(version))
        with self._guard(f"loading model {name}"), self._engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            stored = {name: bytes(row.state)}
            names = _parts.part_names(name, stored[name])
            if names:
                parts = sa.select(t.c.name, t.c.state).where(
                    t.c.pipeline == self.pipeline, t.c.version == row.version, t.c.name.in_(names)
                )
                stored |= {str(r.name): bytes(r.state) for r in conn.execute(parts)}
        return int(row.version), str(row.kind), _parts.joined(stored)[name]

    def model_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """This pipeline's saved model versions (of ``name``), without their states: name,
        version, kind, worker, saved_at, metrics (a dict), state_bytes (0 once pruned); by
        name and version."""
        t = self._fixed.tables["models"]
        query = (
            sa.select(
                t.c.name,
                t.c.version,
                t.c.kind,
                t.c.worker,
                t.c.saved_at,
                t.c.metrics,
                sa.func.length(t.c.state).label("state_bytes"),
            )
            .where(
                t.c.pipeline == self.pipeline,
                sa.not_(t.c.name.contains("#part-", autoescape=True)),
            )
            .order_by(t.c.name, t.c.version)
        )
        if name is not None:
            query = query.where(t.c.name == name)
        with self._guard("reading model versions"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "name": str(r.name),
                "version": int(r.version),
                "kind": str(r.kind),
                "worker": r.worker,
                "saved_at": _as_time(r.saved_at),
                "metrics": orjson.loads(r.metrics) if r.metrics else {},
                "state_bytes": int(r.state_bytes or 0),
            }
            for r in rows
        ]

    def prune_model_states(self, name: str, keep: int) -> int:
        """Empty the state of every version of ``name`` but the ``keep`` highest (their
        metrics stay); return how many were emptied."""
        t = self._fixed.tables["models"]
        mine = sa.and_(t.c.pipeline == self.pipeline, t.c.name == name)
        with self._guard(f"pruning model {name}"), self._engine.begin() as conn:
            kept = conn.execute(
                sa.select(t.c.version).where(mine).order_by(t.c.version.desc()).limit(keep)
            ).all()
            if len(kept) < keep:
                return 0
            lowest = min(int(r.version) for r in kept)
            done = conn.execute(
                sa.update(t)
                .where(mine, t.c.version < lowest, sa.func.length(t.c.state) > 0)
                .values(state=b"")
            )
            conn.execute(  # the parts of states stored in parts (store._parts)
                sa.update(t)
                .where(
                    t.c.pipeline == self.pipeline,
                    t.c.name.startswith(f"{name}#part-", autoescape=True),
                    t.c.version < lowest,
                )
                .values(state=b"")
            )
        return int(done.rowcount or 0)

    # -- the operator's commands ------------------------------------------------------------------

    def add_model_command(
        self, command: str, model: str | None = None, version: int | None = None
    ) -> int:
        """Queue an operator's ``command`` (``promote``, ``rollback``) for this pipeline's
        workers; return its id (ids grow in the order of the requests)."""
        t = self._fixed.tables["model_commands"]
        row = {
            "pipeline": self.pipeline,
            "command": command,
            "model": model,
            "version": version,
            "requested_at": _utcnow(),
        }
        with self._guard(f"queueing {command}"), self._engine.begin() as conn:
            key = conn.execute(sa.insert(t).values(row)).inserted_primary_key
        return int(key[0]) if key else 0

    def model_commands(self, after: int = 0) -> list[dict[str, Any]]:
        """This pipeline's commands with an id above ``after``, oldest first."""
        t = self._fixed.tables["model_commands"]
        query = sa.select(t).where(t.c.pipeline == self.pipeline, t.c.id > after).order_by(t.c.id)
        with self._guard("reading model commands"), self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def mark_model_command(self, command_id: int, result: str) -> None:
        """Record that a worker carried out (or refused) command ``command_id``, and how;
        the first worker's word stays."""
        t = self._fixed.tables["model_commands"]
        with self._guard("marking a model command"), self._engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.id == command_id, t.c.applied_at.is_(None))
                .values(applied_at=_utcnow(), result=result)
            )

    # -- model events -----------------------------------------------------------------------------

    def write_model_events(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert lifecycle decisions into ``table``, keyed by (worker, head, seq): each row
        has those, ``events_seen``, ``kind``, ``model`` and any of ``version``, ``champion``,
        ``metric``, ``score``, ``baseline``, ``threshold``, ``detail`` (a dict, stored as
        JSON), ``recorded_at``. No rows: the table is made, nothing written."""
        with self._guard(f"making {table}"):
            definition = self._made_table(self._training, table, model_events_table)
        if not rows:
            return 0
        now = _utcnow()
        params = [
            {
                "worker": str(row["worker"]),
                "head": str(row.get("head", "")),
                "seq": int(row["seq"]),
                "events_seen": int(row["events_seen"]),
                "kind": str(row["kind"]),
                "model": str(row["model"]),
                "version": row.get("version"),
                "champion": row.get("champion"),
                "metric": row.get("metric"),
                "score": _metric(row.get("score")),
                "baseline": _metric(row.get("baseline")),
                "threshold": _metric(row.get("threshold")),
                "detail": _json_text(row.get("detail") or {}),
                "recorded_at": _as_time(row.get("recorded_at")) or now,
            }
            for row in rows
        ]
        return self._write_rows(table, definition, params)

    def read_model_events(self, table: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Rows of model events ``table`` (of one ``kind``), by worker, head and seq;
        ``detail`` as a dict."""
        definition = model_events_table(table)
        query = sa.select(definition).order_by(
            definition.c.worker, definition.c.head, definition.c.seq
        )
        if kind is not None:
            query = query.where(definition.c.kind == kind)
        rows = self._read_rows(table, query)
        for row in rows:
            row["detail"] = orjson.loads(row["detail"]) if row["detail"] else {}
        return rows

    # -- drift alarms -----------------------------------------------------------------------------

    def write_drift(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert drift alarms into ``table``, keyed by (worker, seq): the columns of
        ``tables.drift_table``, ``event_time`` as milliseconds since the epoch (or None)."""
        if not rows:
            return 0
        definition = self._made_table(self._training, table, drift_table)
        now = _utcnow()
        params = [
            {
                **{column: row.get(column) for column in _DRIFT_VALUES},
                "worker": str(row["worker"]),
                "seq": int(row["seq"]),
                "statistic": _metric(row.get("statistic")),
                "mean_before": _metric(row.get("mean_before")),
                "event_time": None
                if row.get("event_time") is None
                else dt.datetime.fromtimestamp(int(row["event_time"]) / 1000, dt.UTC),
                "recorded_at": now,
            }
            for row in rows
        ]
        return self._write_rows(table, definition, params)

    def read_drift(self, table: str) -> list[dict[str, Any]]:
        """Rows of drift table ``table``, by worker and seq."""
        definition = drift_table(table)
        query = sa.select(definition).order_by(definition.c.worker, definition.c.seq)
        return self._read_rows(table, query)

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(
        self,
        offsets: Offsets,
        model_states: Mapping[str, bytes],
        extra: Mapping[str, bytes] | None = None,
        emitted: Offsets | None = None,
    ) -> None:
        """Write offsets and states in ONE transaction: all of it lands, or none of it.

        ``offsets`` are where learning resumes; ``emitted`` (default: the same) where outputs
        resume, at or past ``offsets``. Rows are upserted per (topic, partition) and per state
        name; those not named here are kept (another worker's partitions, say).
        """
        now = _utcnow()
        emitted = emitted or {}
        offset_rows = [
            {
                "pipeline": self.pipeline,
                "source_topic": topic,
                "source_partition": int(partition),
                "next_offset": int(offset),
                "emitted_offset": int(emitted.get((topic, partition), offset)),
                "written_at": now,
            }
            for (topic, partition), offset in offsets.items()
        ]
        state_rows = [
            {"pipeline": self.pipeline, "slot": slot, "name": row_name, "state": blob}
            | {"written_at": now}
            for slot, states in (("model", model_states), ("extra", extra or {}))
            for name, state in states.items()
            for row_name, blob in _parts.split(name, bytes(state))
        ]
        checkpoints = self._fixed.tables["checkpoints"]
        states_table = self._fixed.tables["checkpoint_states"]
        with self._guard("saving a checkpoint"), self._engine.begin() as conn:
            if offset_rows:
                statement = _bulk.upsert(self._dialect, checkpoints, list(offset_rows[0]))
                conn.execute(statement, offset_rows)
            if state_rows:
                statement = _bulk.upsert(self._dialect, states_table, list(state_rows[0]))
                conn.execute(statement, state_rows)

    def load_states(
        self, *, suffix: str, exclude_prefix: str, slot: Literal["model", "extra"] = "model"
    ) -> dict[str, bytes]:
        """Checkpointed states of ``slot`` (models, or the other states: ``extra``) whose name
        ends with ``suffix`` and does not start with ``exclude_prefix`` (other workers' copies
        of one model or component state), without the rest."""
        states = self._fixed.tables["checkpoint_states"]
        query = sa.select(states.c.name, states.c.state).where(
            states.c.pipeline == self.pipeline,
            states.c.slot == slot,
            states.c.name.endswith(suffix, autoescape=True),
            sa.not_(states.c.name.startswith(exclude_prefix, autoescape=True)),
        )
        with self._guard("loading model states"), self._engine.connect() as conn:
            found = {str(r.name): bytes(r.state) for r in conn.execute(query)}
            names = [p for name, blob in found.items() for p in _parts.part_names(name, blob)]
            if names:
                parts = sa.select(states.c.name, states.c.state).where(
                    states.c.pipeline == self.pipeline,
                    states.c.slot == slot,
                    states.c.name.in_(names),
                )
                found |= {str(r.name): bytes(r.state) for r in conn.execute(parts)}
        return _parts.joined(found)

    def delete_checkpoint(self) -> None:
        """Forget this pipeline's progress and state (the next run starts from scratch)."""
        checkpoints = self._fixed.tables["checkpoints"]
        states = self._fixed.tables["checkpoint_states"]
        with self._guard("deleting the checkpoint"), self._engine.begin() as conn:
            conn.execute(sa.delete(checkpoints).where(checkpoints.c.pipeline == self.pipeline))
            conn.execute(sa.delete(states).where(states.c.pipeline == self.pipeline))

    def load_checkpoint(self) -> Checkpoint | None:
        """The last checkpoint of this pipeline, or None if it never wrote one."""
        checkpoints = self._fixed.tables["checkpoints"]
        states = self._fixed.tables["checkpoint_states"]
        with self._guard("loading the checkpoint"), self._engine.connect() as conn:
            offset_rows = conn.execute(
                sa.select(checkpoints).where(checkpoints.c.pipeline == self.pipeline)
            ).all()
            state_rows = conn.execute(
                sa.select(states).where(states.c.pipeline == self.pipeline)
            ).all()
        if not offset_rows and not state_rows:
            return None
        offsets: Offsets = {
            (r.source_topic, int(r.source_partition)): int(r.next_offset) for r in offset_rows
        }
        emitted: Offsets = {
            (r.source_topic, int(r.source_partition)): int(
                r.next_offset if r.emitted_offset is None else r.emitted_offset
            )
            for r in offset_rows
        }
        model_states = _parts.joined(
            {r.name: bytes(r.state) for r in state_rows if r.slot == "model"}
        )
        extra = _parts.joined({r.name: bytes(r.state) for r in state_rows if r.slot == "extra"})
        written = [_as_utc(r.written_at) for r in [*offset_rows, *state_rows]]
        return Checkpoint(offsets, model_states, extra, max(written) if written else None, emitted)

    # -- reading --------------------------------------------------------------------------------

    def count(self, table: str) -> int:
        """How many rows ``table`` has (0 if it does not exist yet)."""
        with self._guard(f"counting {table}"), self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            return int(conn.execute(query).scalar_one())


# -- helpers ------------------------------------------------------------------------------------


_FIELDS_LOCK: Final = "CONCAT('streamfit.result_fields.', MD5(DATABASE()))"
_UNTRACKED_KEPT = 10_000  # names of fields without a column remembered per table
_DOUBLE_OUTPUTS = ("probability", "anomaly_score", "score_quantile")  # and their __<model>
_QUANTILE = re.compile(r"^p\d\d(_\d+)?$")  # a quantile column: p01, p50, p99_9
_CONTROL = re.compile(r"[\x00-\x1f]")


#: The drift table's columns written as the row gives them.
_DRIFT_VALUES = (
    "head",
    "watched",
    "name",
    "detector",
    "source_topic",
    "source_partition",
    "source_offset",
    "values_seen",
    "direction",
    "action",
)


def _anomaly_params(predictions: ModelPredictions, n: int) -> dict[str, list[Any]]:
    """A detector's columns: its scores, their quantiles and its alarms."""
    alarms = predictions.alarms
    return {
        "anomaly_score": values.float_list(np.asarray(predictions.prediction)),
        "score_quantile": _probabilities(predictions.probability, n),
        "is_anomaly": [None] * n if alarms is None else np.asarray(alarms, dtype=bool).tolist(),
    }


def _model_suffix(model: str) -> str:
    return prediction_column(model).removeprefix("prediction__")


def _unwindowed(column: str) -> str:
    return column.removeprefix("window_")


def _may_have_column(name: str) -> bool:
    """Whether a field of this name may get a column (see ``streamfit.limits``)."""
    return len(name) <= MAX_NAME_CHARS and not _CONTROL.search(name)


class _Changed:
    """The rows of a batch of results whose columns do not hold the event as it came, and
    why (each reason logged once per table)."""

    _logged: set[tuple[str, str]] = set()

    def __init__(self, table: str, rows: npt.NDArray[np.bool_] | None) -> None:
        self.table = table
        self.rows = None if rows is None or not rows.any() else rows.copy()

    def add(self, rows: npt.NDArray[np.bool_] | None, reason: str, field: str) -> None:
        if rows is None or not rows.any():
            return
        self.rows = rows.copy() if self.rows is None else self.rows | rows
        if (self.table, reason) not in self._logged:
            self._logged.add((self.table, reason))
            log.warning(
                "%s: an event %s (field %r); its row keeps the event in event_payload",
                self.table,
                reason,
                field[:100],
            )

    def payloads(self, originals: list[bytes | None]) -> list[str | None]:
        """``event_payload`` of each row: the original bytes, as text, where needed."""
        if self.rows is None:
            return [None] * len(originals)
        out: list[str | None] = [None] * len(originals)
        for i in np.flatnonzero(self.rows).tolist():
            value = originals[i]
            out[i] = None if value is None else values.clean(value.decode("utf-8", "replace"))
        return out


def _dead_letter_reason(letter: DeadLetter) -> str:
    reason = values.clean(letter.reason)
    if letter.value is not None and len(letter.value) > _parts.PART_BYTES:
        reason += f" (payload cut to its first {_parts.PART_BYTES} of {len(letter.value)} bytes)"
    return reason


def _make_engine(url: str, connect_timeout: float) -> sa.Engine:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30.0})
        in_memory = parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    return sa.create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=5,
        max_overflow=5,
        pool_timeout=30,
        pool_recycle=1800,  # below MariaDB's and proxies' idle timeouts
        pool_pre_ping=True,  # a server restart costs one ping, not one failed batch
    )


def _is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is out of reach (or busy), not that a statement failed."""
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return exc.connection_invalidated or (exc.orig is not None and _driver_unavailable(exc.orig))


def _driver_unavailable(orig: BaseException) -> bool:
    """The driver's error codes: SQLite's result code, PostgreSQL's SQLSTATE (none at all on a
    psycopg ``OperationalError`` means the client lost or never had its connection), MySQL's
    error number. The drivers are looked up among the loaded modules: an error from one means
    it is loaded.

    >>> _driver_unavailable(sqlite3.OperationalError("database is locked"))
    False
    """
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_BUSY
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(orig, psycopg.Error):
        state = orig.sqlstate
        if state is None:
            return isinstance(orig, psycopg.OperationalError)
        return state.startswith("08") or state in _PG_UNAVAILABLE
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(orig, pymysql.err.InterfaceError):
        return True  # a connection that is closed or broken
    if pymysql is not None and isinstance(orig, pymysql.err.OperationalError):
        return bool(orig.args) and orig.args[0] in _MYSQL_UNAVAILABLE
    return False


def _translate(exc: sa.exc.SQLAlchemyError, action: str, retry_after: float) -> StreamfitError:
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    detail = f"{type(orig).__name__}: {str(orig).strip()}"
    if len(detail) > 500:
        detail = detail[:500] + "..."
    if _is_unavailable(exc):
        locked = isinstance(orig, sqlite3.Error)  # another writer: try again soon
        wait = min(retry_after, 1.0) if locked else retry_after
        return DatabaseUnavailableError(f"{action}: database unavailable: {detail}", wait)
    return StoreError(f"{action}: {detail}")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _as_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _as_utc(value)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _epoch_ms(value: dt.datetime | None) -> int:
    if value is None:
        return -1
    return (_as_utc(value) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _json_text(value: Mapping[str, Any]) -> str:
    """``value`` as JSON text (NaN and infinities as null; numpy numbers as numbers)."""
    return orjson.dumps(_finite(value), option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _metric(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _probabilities(probability: npt.NDArray[Any] | None, n: int) -> list[float | None]:
    if probability is None:
        return [None] * n
    return values.probability_list(np.asarray(probability))


def _preview(payload: bytes | None) -> str | None:
    if payload is None:
        return None
    text = payload[: _PREVIEW_CHARS * 4].decode("utf-8", "replace")[:_PREVIEW_CHARS]
    return text.replace("\x00", "\ufffd")
