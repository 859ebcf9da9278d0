"""Table definitions and column names: what the store creates, in every database.

Fixed tables (one set per database, shared by every pipeline, keyed by ``pipeline``):

==================  ===========================================================================
``dead_letters``    events that could not be used: original key and payload bytes, a text
                    preview, the reason; unique (pipeline, source_topic, source_partition,
                    source_offset)
``models``          the model registry: (pipeline, name, version) -> kind, state bytes, the
                    worker that saved it, its metrics then (JSON)
``model_commands``  the operator's requests to running workers (promote, rollback), in order
``checkpoints``     progress: (pipeline, source_topic, source_partition) -> next_offset
                    (learned up to) and emitted_offset (outputs written up to)
``checkpoint_states``  the state blobs saved with those offsets: (pipeline, slot, name)
``result_fields``   how each event field of a results table maps to a column
==================  ===========================================================================

Per-pipeline tables, named by the caller: ``<pipeline>_results`` (one row per scored event,
primary key (source_topic, source_partition, source_offset)), ``<pipeline>_training`` (a
time series of metrics, primary key (model, worker, events_seen)) and
``<pipeline>_model_events`` (the lifecycle's decisions, primary key (worker, head, seq)) and
``<pipeline>_drift`` (drift alarms, primary key (worker, seq)).

Types are chosen to mean the same thing everywhere:

- whole numbers are ``BIGINT`` (a column becomes ``DOUBLE`` when a fraction comes), other
  numbers ``DOUBLE`` (``sa.Double``: ``double precision`` on PostgreSQL, ``DOUBLE`` on
  MariaDB; ``sa.Float`` would be single precision there), booleans ``BOOLEAN`` (``TINYINT(1)``
  on MariaDB), text ``TEXT`` (``MEDIUMTEXT`` on MariaDB: ``TEXT`` stops at 64 KiB);
- bytes are ``LargeBinary`` (``bytea``; ``LONGBLOB`` on MariaDB, whose ``BLOB`` stops at 64 KiB);
- times are UTC: ``timestamp with time zone`` on PostgreSQL, ``DATETIME(6)`` on MariaDB (plain
  ``DATETIME`` drops the milliseconds), ISO text on SQLite; read back as aware UTC datetimes;
- key strings (topics, pipeline and model names) compare case-sensitively on MariaDB too
  (``utf8mb4_bin``): Kafka topics ``Events`` and ``events`` are different topics.

Event fields become lowercase SQL identifiers (see :func:`column_name`), so that analysts
never need to quote them and MariaDB's case-insensitive column names cannot collide.

>>> column_name("Age", taken=set())
'age'
>>> column_name("Age", taken={"age"})
'age_2'
>>> column_name("label", taken=set())
'field_label'
>>> column_name("2nd place (%)", taken=set())
'field_2nd_place_'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "FIELD_STATS_FIGURES",
    "FIELD_STATS_JSON",
    "LABEL_JOIN_COUNTS",
    "LABEL_JOIN_FIGURES",
    "MAX_IDENTIFIER",
    "RESERVED_COLUMNS",
    "SCORE_QUANTILE_COLUMNS",
    "TRAINING_METRICS",
    "ColumnKind",
    "UTCDateTime",
    "column_name",
    "column_type",
    "drift_table",
    "field_key",
    "field_stats_table",
    "fixed_metadata",
    "label_join_table",
    "model_events_table",
    "prediction_column",
    "probability_column",
    "results_table",
    "schema_changes_table",
    "training_table",
]

#: Longest column name the store makes (PostgreSQL allows 63, MariaDB 64).
MAX_IDENTIFIER: Final = 60

_MYSQL = ("mysql", "mariadb")

ColumnKind = Literal["float", "bool", "int", "text"]


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A UTC point in time: takes naive (meaning UTC) or aware datetimes, returns aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            return when.replace(tzinfo=dt.UTC)
        return when.astimezone(dt.UTC)


def _key_string(length: int) -> sa.types.TypeEngine[str]:
    """A short string used in keys, compared byte for byte on MariaDB as elsewhere."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL
    )


def _text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)


def _blob() -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)


def _double() -> sa.types.TypeEngine[float]:
    return sa.Double()


_TOPIC = 255  # Kafka topic names are at most 249 characters
_NAME = 100  # pipeline and model names (the spec allows 41)
_TABLE = 64


def column_type(kind: ColumnKind) -> sa.types.TypeEngine[Any]:
    """The SQL type of an event-field column of ``kind``."""
    if kind == "float":
        return _double()
    if kind == "bool":
        return sa.Boolean(create_constraint=False)
    if kind == "int":
        return sa.BigInteger()
    return _text()


def fixed_metadata() -> sa.MetaData:
    """The tables every store creates, shared by all pipelines of a database."""
    md = sa.MetaData()
    sa.Table(
        "dead_letters",
        md,
        sa.Column("pipeline", _key_string(_NAME), primary_key=True),
        sa.Column("source_topic", _key_string(_TOPIC), primary_key=True),
        sa.Column("source_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_key", _blob()),
        sa.Column("payload", _blob()),
        sa.Column("preview", _text()),
        sa.Column("reason", _text(), nullable=False),
        sa.Column("event_time", UTCDateTime()),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        # the API's latest dead letters of a pipeline, and its pages after a cursor
        sa.Index(
            "dead_letters_by_time",
            "pipeline",
            "recorded_at",
            "source_topic",
            "source_partition",
            "source_offset",
        ),
    )
    sa.Table(
        "models",
        md,
        sa.Column("pipeline", _key_string(_NAME), primary_key=True),
        sa.Column("name", _key_string(_NAME), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(_NAME), nullable=False),
        sa.Column("state", _blob(), nullable=False),  # empty once pruned
        sa.Column("saved_at", UTCDateTime(), nullable=False),
        sa.Column("worker", _key_string(_NAME), nullable=True),
        sa.Column("metrics", _text(), nullable=True),  # JSON: the metrics at this version
    )
    sa.Table(
        "model_commands",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline", _key_string(_NAME), nullable=False),
        sa.Column("command", sa.String(16), nullable=False),  # promote | rollback
        sa.Column("model", _key_string(_NAME), nullable=True),
        sa.Column("version", sa.BigInteger, nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("result", _text(), nullable=True),
    )
    sa.Table(
        "checkpoints",
        md,
        sa.Column("pipeline", _key_string(_NAME), primary_key=True),
        sa.Column("source_topic", _key_string(_TOPIC), primary_key=True),
        sa.Column("source_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        # outputs (predictions, results, dead letters) were written for offsets below this
        sa.Column("emitted_offset", sa.BigInteger, nullable=True),
        sa.Column("written_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        "checkpoint_states",
        md,
        sa.Column("pipeline", _key_string(_NAME), primary_key=True),
        sa.Column("slot", _key_string(16), primary_key=True),  # "model" or "extra"
        sa.Column("name", _key_string(_TOPIC), primary_key=True),
        sa.Column("state", _blob(), nullable=False),
        sa.Column("written_at", UTCDateTime(), nullable=False),
    )
    sa.Table(
        "result_fields",
        md,
        sa.Column("table_name", _key_string(_TABLE), primary_key=True),
        sa.Column("field_key", _key_string(_TOPIC), primary_key=True),
        sa.Column("column_name", sa.String(_TABLE), nullable=False),
        sa.Column("field", _text(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        # Case-insensitive on MariaDB, as its column names are: 'age' and 'AGE' clash there.
        sa.UniqueConstraint("table_name", "column_name", name="uq_result_fields_column"),
    )
    return md


# -- results ------------------------------------------------------------------------------------

#: Columns of every results table, in table order after the event fields (an anomaly
#: detector's table has ``anomaly_score``, ``score_quantile`` and ``is_anomaly`` instead of
#: ``prediction`` and ``probability``).
RESERVED_COLUMNS: Final = (
    "prediction",
    "probability",
    "anomaly_score",
    "score_quantile",
    "is_anomaly",
    "model",
    "model_version",
    "label",
    "source_topic",
    "source_partition",
    "source_offset",
    "event_key",
    "event_time",
    "processed_at",
    "event_payload",
)
_RESERVED_PREFIXES: Final = (
    "prediction__",
    "probability__",
    "anomaly_score__",
    "score_quantile__",
    "is_anomaly__",
)
#: The columns of an anomaly detector's results, each also ``<column>__<model>`` for the
#: models after the first.
ANOMALY_COLUMNS: Final = ("anomaly_score", "score_quantile", "is_anomaly")
_INVALID = re.compile(r"[^a-z0-9_]+")


def _canonical(field: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", field).encode("ascii", "ignore").decode("ascii")
    return _INVALID.sub("_", ascii_name.lower())


def column_name(field: str, taken: set[str]) -> str:
    """The column for event field ``field``, given the column names already ``taken``.

    The name is the field lowercased, with accents dropped and any run of other characters
    replaced by ``_``, cut to 60 characters. A name that is a reserved column (``label``), that
    starts with a reserved prefix (``prediction__``, ``probability__``) or with a digit gets
    the prefix ``field_``; an empty one becomes ``field``. A name already ``taken`` gets the
    first free suffix ``_2``, ``_3``... ``taken`` must hold lowercase names.
    """
    base = _canonical(field)
    if (
        not base
        or base[0].isdigit()
        or base in RESERVED_COLUMNS
        or base.startswith(_RESERVED_PREFIXES)
    ):
        base = f"field_{base}" if base else "field"
    base = base[:MAX_IDENTIFIER]
    name, n = base, 2
    while name in taken:
        suffix = f"_{n}"
        name = base[: MAX_IDENTIFIER - len(suffix)] + suffix
        n += 1
    return name


def field_key(field: str) -> str:
    """A bounded-length key for a field name (names past 200 characters are hashed)."""
    if len(field) <= 200:
        return field
    return field[:150] + "#" + hashlib.sha256(field.encode("utf-8", "surrogatepass")).hexdigest()


def prediction_column(model: str) -> str:
    """The results column with the predictions of a non-champion model."""
    return ("prediction__" + _canonical(model))[:MAX_IDENTIFIER]


def probability_column(model: str) -> str:
    """The results column with the probabilities of a non-champion model."""
    return ("probability__" + _canonical(model))[:MAX_IDENTIFIER]


def _outcome_type(task: str) -> sa.types.TypeEngine[Any]:
    return _double() if task == "regression" else _text()


def results_table(
    name: str,
    task: str,
    fields: list[tuple[str, ColumnKind]],
    models: list[str],
) -> sa.Table:
    """A results table: the event-field columns, the fixed columns, then model columns.

    ``fields`` lists (column name, kind); ``models`` the names of non-champion models.
    """
    outcome = _outcome_type(task)
    columns: list[sa.Column[Any]] = [sa.Column(c, column_type(k)) for c, k in fields]
    if task == "anomaly":
        columns += _anomaly_columns("")
    else:
        columns += [sa.Column("prediction", outcome), sa.Column("probability", _double())]
    columns += [
        sa.Column("model", sa.String(_NAME)),
        sa.Column("model_version", sa.BigInteger),
        sa.Column("label", outcome),
        sa.Column("source_topic", _key_string(_TOPIC), primary_key=True),
        sa.Column("source_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_key", _text()),
        sa.Column("event_time", UTCDateTime()),
        sa.Column("processed_at", UTCDateTime()),
        # the event's original JSON where its columns do not hold it as it came, else NULL
        sa.Column("event_payload", _text()),
    ]
    for model in models:
        if task == "anomaly":
            columns += _anomaly_columns(prediction_column(model).removeprefix("prediction"))
            continue
        columns.append(sa.Column(prediction_column(model), _outcome_type(task)))
        columns.append(sa.Column(probability_column(model), _double()))
    # the API's latest results (and its pages after a cursor) in write order, without a
    # sort of the whole table
    by_time = sa.Index(
        results_time_index(name),
        "processed_at",
        "source_topic",
        "source_partition",
        "source_offset",
    )
    return sa.Table(name, sa.MetaData(), *columns, by_time)


def results_time_index(table: str) -> str:
    """The name of a results table's index by ``processed_at`` (unique in a schema).

    >>> results_time_index("clicks_results")
    'clicks_results_by_time'
    >>> len(results_time_index("r" * 60)) <= MAX_IDENTIFIER
    True
    """
    name = f"{table}_by_time"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"{table[: MAX_IDENTIFIER - 17]}_{digest}_by_time"


def _anomaly_columns(suffix: str) -> list[sa.Column[Any]]:
    """``anomaly_score``, ``score_quantile``, ``is_anomaly``, each with ``suffix``."""
    return [
        sa.Column(f"anomaly_score{suffix}"[:MAX_IDENTIFIER], _double()),
        sa.Column(f"score_quantile{suffix}"[:MAX_IDENTIFIER], _double()),
        sa.Column(f"is_anomaly{suffix}"[:MAX_IDENTIFIER], sa.Boolean(create_constraint=False)),
    ]


# -- training -----------------------------------------------------------------------------------

_METRICS: Final = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "roc_auc",
    "mae",
    "rmse",
    "r2",
    "average_precision",
    "alarm_rate",
)
#: An anomaly detector's recent scores' quantiles, in its training table.
SCORE_QUANTILE_COLUMNS: Final = ("score_p50", "score_p90", "score_p99", "score_p99_9")
#: Metric columns of a training table: each metric, cumulative and over the last window,
#: and (anomaly detectors) the recent scores' quantiles.
TRAINING_METRICS: Final = _METRICS + tuple(f"window_{m}" for m in _METRICS) + SCORE_QUANTILE_COLUMNS


def training_table(name: str, keyed_by_worker: bool = True) -> sa.Table:
    """A training table: one row per (model, worker, events_seen), every metric nullable.

    ``keyed_by_worker=False`` describes a table made before the ``worker`` column: its key is
    (model, events_seen), and the column is an ordinary one added to it.
    """
    key = ("model", "worker", "events_seen") if keyed_by_worker else ("model", "events_seen")
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("model", _key_string(_NAME), nullable=False),
        sa.Column("worker", _key_string(_NAME), nullable=keyed_by_worker is False),
        sa.Column("model_version", sa.BigInteger),
        sa.Column("events_seen", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        *[sa.Column(m, _double()) for m in TRAINING_METRICS],
        # champion or challenger; "arm" for an A/B arm's figures on the events it served
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("arm", _key_string(_NAME), nullable=True),
        sa.PrimaryKeyConstraint(*key),
    )


# -- delayed labels -----------------------------------------------------------------------------

#: The counts of a label join row (``streamfit.delayed.join.COUNTERS``), then its delays.
LABEL_JOIN_COUNTS: Final = (
    "events_waiting",
    "labels_waiting",
    "labels_matched",
    "labels_duplicate",
    "labels_unmatched",
    "events_expired",
    "events_evicted",
    "events_superseded",
    "events_without_key",
)
#: The figures of a label join row: mean delays, and each model's test-then-train figures at
#: the moment each label was learned (``learned_<metric>``; the training table has those of
#: the served predictions).
LABEL_JOIN_FIGURES: Final = (
    "mean_delay_events",
    "mean_delay_seconds",
    "learned_accuracy",
    "learned_f1",
    "learned_log_loss",
    "learned_roc_auc",
    "learned_mae",
    "learned_rmse",
)


def label_join_table(name: str) -> sa.Table:
    """A label join table: one row per (model, worker, events_seen), how the pairing of
    labels with their events goes (``LABEL_JOIN_COUNTS``, ``LABEL_JOIN_FIGURES``)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("model", _key_string(_NAME), nullable=False),
        sa.Column("worker", _key_string(_NAME), nullable=False),
        sa.Column("events_seen", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        *[sa.Column(c, sa.BigInteger) for c in LABEL_JOIN_COUNTS],
        *[sa.Column(c, _double()) for c in LABEL_JOIN_FIGURES],
        sa.PrimaryKeyConstraint("model", "worker", "events_seen"),
    )


# -- exploration --------------------------------------------------------------------------------

#: Figures of a field statistics row, after its key: each comes over all time and, prefixed
#: ``window_``, over the recent window; quantile columns (``p01``...) follow the numbers.
FIELD_STATS_FIGURES: Final = (
    ("count", "int"),
    ("missing", "int"),
    ("invalid", "int"),
    ("distinct_count", "int"),
    ("min", "float"),
    ("max", "float"),
    ("mean", "float"),
    ("variance", "float"),
)
#: The JSON text columns of a field statistics row (each also ``window_``-prefixed).
FIELD_STATS_JSON: Final = ("histogram", "top_values", "correlations")


def field_stats_table(name: str, quantiles: list[str]) -> sa.Table:
    """A field statistics table: one row per (field, worker, events_seen), a snapshot.

    ``events_seen`` counts the events the writing worker's statistics had seen (the key: a
    replay rewrites its rows), ``events`` those the figures are of (the group's, when
    workers merge theirs); ``quantiles`` names the quantile columns (``p01``, ``p50``...).
    """
    columns: list[sa.Column[Any]] = [
        sa.Column("field", _key_string(_TOPIC), nullable=False),
        sa.Column("worker", _key_string(_NAME), nullable=False),
        sa.Column("events_seen", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(16)),
    ]
    for prefix in ("", "window_"):
        columns.append(sa.Column(f"{prefix}events", sa.BigInteger))
        for figure, kind in FIELD_STATS_FIGURES:
            columns.append(sa.Column(f"{prefix}{figure}", column_type(kind)))  # type: ignore[arg-type]
        columns += [sa.Column(f"{prefix}{q}", _double()) for q in quantiles]
        columns += [sa.Column(f"{prefix}{j}", _text()) for j in FIELD_STATS_JSON]
    return sa.Table(
        name,
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("field", "worker", "events_seen"),
    )


def schema_changes_table(name: str) -> sa.Table:
    """A schema changes table: one row per change of a field (appeared: ``old_type`` NULL;
    gone: ``new_type`` NULL), keyed by where it was first seen."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("field", _key_string(_TOPIC), primary_key=True),
        sa.Column("source_topic", _key_string(_TOPIC), primary_key=True),
        sa.Column("source_partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_offset", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("old_type", sa.String(16)),
        sa.Column("new_type", sa.String(16)),
        sa.Column("worker", _key_string(_NAME)),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )


def model_events_table(name: str) -> sa.Table:
    """A model events table: one row per lifecycle decision (``streamfit.lifecycle.events``),
    numbered per worker and head, so that a replay rewrites the same rows."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("worker", _key_string(_NAME), primary_key=True),
        sa.Column("head", _key_string(_NAME), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("events_seen", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", _key_string(_NAME), nullable=False),
        sa.Column("version", sa.BigInteger),
        sa.Column("champion", _key_string(_NAME)),
        sa.Column("metric", sa.String(16)),
        sa.Column("score", _double()),
        sa.Column("baseline", _double()),
        sa.Column("threshold", _double()),
        sa.Column("detail", _text()),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )


def drift_table(name: str) -> sa.Table:
    """A drift table: one row per alarm of a drift detector (``streamfit.runtime.drift``),
    numbered per worker, so that a replay rewrites the same rows."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("worker", _key_string(_NAME), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head", _key_string(_NAME), nullable=False),
        sa.Column("watched", sa.String(8), nullable=False),  # model or field
        sa.Column("name", _key_string(_TOPIC), nullable=False),
        sa.Column("detector", sa.String(16), nullable=False),
        sa.Column("source_topic", _key_string(_TOPIC)),
        sa.Column("source_partition", sa.Integer),
        sa.Column("source_offset", sa.BigInteger),
        sa.Column("event_time", UTCDateTime()),
        sa.Column("values_seen", sa.BigInteger, nullable=False),
        sa.Column("statistic", _double()),
        sa.Column("mean_before", _double()),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("action", _text()),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
