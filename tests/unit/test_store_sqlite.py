"""streamfit.store on SQLite (a temporary file): tables, types, upserts, names, checkpoints."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import streamfit.store
from streamfit.batch import Batch, DeadLetter, Messages
from streamfit.errors import DatabaseUnavailableError, ServiceUnavailableError, StoreError
from streamfit.store import TRAINING_METRICS, ModelPredictions, Store, column_name
from streamfit.store._values import field_values, outcome_texts

RESULTS = "p_results"
TRAINING = "p_training"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store(url, "p") as s:
        yield s


def batch(
    columns: dict[str, Any],
    *,
    first_offset: int = 0,
    topic: str = "events",
    booleans: frozenset[str] = frozenset(),
    timestamp_ms: int = 1_700_000_000_123,
) -> Batch:
    arrays = {
        name: v if isinstance(v, np.ndarray) else np.array(v, dtype=object)
        for name, v in columns.items()
    }
    n = len(next(iter(arrays.values())))
    meta = Messages.from_values(
        [b"{}"] * n,
        topic=topic,
        first_offset=first_offset,
        keys=[f"k{i}".encode() for i in range(n)],
        timestamp_ms=timestamp_ms,
    )
    return Batch(arrays, meta, booleans)


def champion(n: int, value: float = 1.0, name: str = "lr") -> ModelPredictions:
    return ModelPredictions(name, 7, np.full(n, value), np.full(n, 0.75))


def column_types(store: Store, table: str) -> dict[str, sa.types.TypeEngine[Any]]:
    return {c["name"]: c["type"] for c in sa.inspect(store.engine).get_columns(table)}


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(streamfit.store).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(streamfit.store.__all__)


def test_sqlite_runs_in_wal_mode(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_fixed_tables_exist_from_the_start(store: Store) -> None:
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"dead_letters", "models", "checkpoints", "checkpoint_states"} <= tables


# -- results: types ------------------------------------------------------------------------------


def test_fields_become_typed_columns(store: Store) -> None:
    b = batch(
        {
            "x": np.array([1.5, np.nan, np.inf]),
            "ok": np.array([1.0, 0.0, np.nan]),
            "n": np.array([1, 2, 2**40], dtype=np.int64),
            "city": ["Oslo", None, "Zürich 🏔"],
            "extra": [{"a": [1, 2]}, 3, True],
        },
        booleans=frozenset({"ok"}),
    )
    assert store.write_results(RESULTS, b, [champion(3)], None, "classification") == 3
    types = column_types(store, RESULTS)
    assert isinstance(types["x"], sa.Float)
    assert isinstance(types["ok"], sa.Boolean)
    assert isinstance(types["n"], sa.BigInteger)
    assert isinstance(types["city"], sa.Text)
    assert isinstance(types["prediction"], sa.Text)
    rows = store.read_results(RESULTS)
    assert [r["x"] for r in rows] == [1.5, None, None]  # NaN and inf are NULL
    assert [r["ok"] for r in rows] == [True, False, None]
    assert [r["n"] for r in rows] == [1, 2, 2**40]
    assert [r["city"] for r in rows] == ["Oslo", None, "Zürich 🏔"]
    assert [r["extra"] for r in rows] == ['{"a":[1,2]}', "3", "true"]
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql(f"SELECT typeof(x), typeof(ok) FROM {RESULTS}").first()
    assert tuple(stored or ()) == ("real", "integer")


def test_fixed_columns_describe_the_event_and_the_model(store: Store) -> None:
    b = batch({"x": np.array([1.0, 2.0])}, topic="score", first_offset=41)
    b.meta.keys[1] = b"\xff\x00bad"
    store.write_results(RESULTS, b, [champion(2)], np.array([1.0, np.nan]), "classification")
    first, second = store.read_results(RESULTS)
    assert first["prediction"] == "1" and first["probability"] == 0.75
    assert first["model"] == "lr" and first["model_version"] == 7
    assert first["label"] == "1" and second["label"] is None
    assert (first["source_topic"], first["source_partition"], first["source_offset"]) == (
        "score",
        0,
        41,
    )
    assert first["event_key"] == "k0" and second["event_key"] == "\ufffd\ufffdbad"
    assert first["event_time"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    assert abs((first["processed_at"] - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_class_labels_read_the_same_whatever_their_python_type(store: Store) -> None:
    assert outcome_texts(np.array([1.0, 0.0, 2.5, np.nan])) == ["1", "0", "2.5", None]
    assert outcome_texts(np.array([1, 0])) == ["1", "0"]
    assert outcome_texts(np.array([True, False])) == ["1", "0"]
    assert outcome_texts(np.array([np.int64(1), True, 1.0, "yes", None], dtype=object)) == [
        "1",
        "1",
        "1",
        "yes",
        None,
    ]
    b = batch({"x": np.array([1.0, 2.0])})
    preds = ModelPredictions("lr", 1, np.array([True, False]), None)
    store.write_results(RESULTS, b, [preds], np.array([1.0, 0.0]), "classification")
    rows = store.read_results(RESULTS)
    assert [(r["prediction"], r["label"], r["probability"]) for r in rows] == [
        ("1", "1", None),
        ("0", "0", None),
    ]


def test_object_columns_convert_each_distinct_value_as_each_row_would() -> None:
    """Labels and text columns convert each distinct value once; values that compare equal
    but read differently (``True`` and ``1``, ``0.0`` and ``-0.0``, ``10**19`` and ``1e19``)
    still read as they would one by one."""
    from streamfit.store import _values

    cases = [
        [1, 2, 1, None, 2],
        ["yes", "no", "yes", None, "a\x00b"],
        [True, 1, 1.0, 0, False, None],
        [0.0, -0.0, 0.0],
        [10**19, 1e19, 10**19],
        [np.int64(1), 1, np.float64(2.0), "2"],
        [{"a": 1}, [1, 2], {"a": 1}, None],
    ]
    for values in cases:
        column = np.empty(len(values), dtype=object)
        column[:] = values
        assert outcome_texts(column) == [_values._outcome_text(v) for v in values]
        assert field_values(column, "text", "text") == [_values._text(v) for v in values]


def test_regression_results_are_numbers(store: Store) -> None:
    b = batch({"x": np.array([1.0, 2.0])})
    preds = ModelPredictions("lin", 1, np.array([0.25, np.nan]), None)
    store.write_results(RESULTS, b, [preds], np.array([0.5, 1.5]), "regression")
    assert isinstance(column_types(store, RESULTS)["prediction"], sa.Float)
    rows = store.read_results(RESULTS)
    assert [(r["prediction"], r["label"]) for r in rows] == [(0.25, 0.5), (None, 1.5)]
    with pytest.raises(StoreError, match="regression"):
        store.write_results(RESULTS, b, [preds], None, "classification")


def test_every_model_gets_its_columns_and_the_first_is_the_champion(store: Store) -> None:
    b = batch({"x": np.array([1.0, 2.0])})
    models = [
        ModelPredictions("lr", 3, np.array(["a", "b"], dtype=object), np.array([0.9, 0.6])),
        ModelPredictions(
            "Tree", 5, np.array(["b", "b"], dtype=object), np.array([[0.2, 0.8], [0.4, 0.6]])
        ),
    ]
    store.write_results(RESULTS, b, models, None, "classification")
    row = store.read_results(RESULTS)[0]
    assert (row["prediction"], row["probability"], row["model"], row["model_version"]) == (
        "a",
        0.9,
        "lr",
        3,
    )
    assert row["prediction__tree"] == "b" and row["probability__tree"] == 0.8
    assert streamfit.store.prediction_column("Tree") == "prediction__tree"


# -- results: upserts ----------------------------------------------------------------------------


def test_replaying_a_batch_updates_rows_instead_of_adding_them(store: Store) -> None:
    b = batch({"x": np.arange(5, dtype=np.float64)})
    store.write_results(RESULTS, b, [champion(5, 0.0)], np.ones(5), "classification")
    store.write_results(RESULTS, b, [champion(5, 1.0)], np.ones(5), "classification")
    assert store.count(RESULTS) == 5
    assert {r["prediction"] for r in store.read_results(RESULTS)} == {"1"}
    other_partition = batch({"x": np.arange(5, dtype=np.float64)}, topic="other")
    store.write_results(RESULTS, other_partition, [champion(5)], None, "classification")
    assert store.count(RESULTS) == 10


def test_a_rewrite_without_labels_keeps_the_known_label(store: Store) -> None:
    b = batch({"x": np.array([1.0, 2.0])})
    store.write_results(RESULTS, b, [champion(2, 0.0)], np.array([1.0, 0.0]), "classification")
    store.write_results(RESULTS, b, [champion(2, 1.0)], None, "classification")
    rows = store.read_results(RESULTS)
    assert [(r["prediction"], r["label"]) for r in rows] == [("1", "1"), ("1", "0")]


def test_the_same_offset_twice_in_one_batch_keeps_the_last(store: Store) -> None:
    b = batch({"x": np.array([1.0, 2.0, 3.0])})
    b.meta.offsets[:] = [5, 6, 5]
    preds = ModelPredictions("lr", 1, np.array([0.0, 0.0, 1.0]), None)
    assert store.write_results(RESULTS, b, [preds], None, "classification") == 2
    rows = store.read_results(RESULTS)
    assert [(r["source_offset"], r["x"], r["prediction"]) for r in rows] == [
        (5, 3.0, "1"),
        (6, 2.0, "0"),
    ]


# -- results: schema evolution and names ---------------------------------------------------------


def test_a_new_field_adds_a_column(store: Store) -> None:
    store.write_results(
        RESULTS, batch({"x": np.array([1.0])}), [champion(1)], None, "classification"
    )
    later = batch({"x": np.array([2.0]), "y": ["new"]}, first_offset=1)
    store.write_results(RESULTS, later, [champion(1)], None, "classification")
    assert "y" in column_types(store, RESULTS)
    rows = store.read_results(RESULTS)
    assert [(r["x"], r["y"]) for r in rows] == [(1.0, None), (2.0, "new")]


def test_known_fields_cost_no_schema_query(store: Store) -> None:
    b = batch({"x": np.array([1.0]), "y": ["a"]})
    store.write_results(RESULTS, b, [champion(1)], None, "classification")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.write_results(RESULTS, b, [champion(1)], None, "classification")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO p_results")


def test_field_names_become_safe_lowercase_columns(store: Store) -> None:
    long_name = "a very long field name " * 5
    b = batch(
        {
            "Age": np.array([30.0]),
            "age": np.array([31.0]),
            "label": ["field"],
            "prediction__lr": ["x"],
            "2nd place (%)": np.array([2.0]),
            "prénom": ["Zoë"],
            long_name: np.array([1.0]),
            "": ["empty"],
        }
    )
    store.write_results(RESULTS, b, [champion(1)], np.array([0.0]), "classification")
    mapping = store.field_columns(RESULTS)
    assert mapping["age"] == "age"  # a clean name keeps its name...
    assert mapping["Age"] == "age_2"  # ...and wins over a name that only becomes it
    assert mapping["label"] == "field_label"
    assert mapping["prediction__lr"] == "field_prediction__lr"
    assert mapping["2nd place (%)"] == "field_2nd_place_"
    assert mapping["prénom"] == "prenom"
    assert mapping[""] == "field"
    assert len(mapping[long_name]) == 60 and mapping[long_name].startswith("a_very_long")
    row = store.read_results(RESULTS)[0]
    assert (row["age"], row["age_2"], row["field_label"], row["label"]) == (
        31.0,
        30.0,
        "field",
        "0",
    )


def test_the_field_to_column_mapping_is_stable_across_writers(url: str) -> None:
    with Store(url, "p") as first, Store(url, "p") as second:
        first.write_results(
            RESULTS, batch({"Age": np.array([1.0])}), [champion(1)], None, "classification"
        )
        # A second worker, with nothing cached, sees 'Age' already holds 'age'.
        b = batch({"age": np.array([2.0]), "Age": np.array([3.0])}, first_offset=1)
        second.write_results(RESULTS, b, [champion(1)], None, "classification")
        # The first worker learns of 'age' from the registry, not by naming it again.
        first.write_results(
            RESULTS,
            batch({"age": np.array([4.0])}, first_offset=2),
            [champion(1)],
            None,
            "classification",
        )
        assert first.field_columns(RESULTS) == {"Age": "age", "age": "age_2"}
        rows = first.read_results(RESULTS)
    assert [(r["age"], r["age_2"]) for r in rows] == [(1.0, None), (3.0, 2.0), (None, 4.0)]


def test_column_name_rules() -> None:
    assert column_name("userId", set()) == "userid"
    assert column_name("x", {"x", "x_2"}) == "x_3"
    assert column_name("processed_at", set()) == "field_processed_at"
    assert len(column_name("z" * 100, {"z" * 60})) == 60


def test_a_field_that_changes_type_is_converted_to_its_column_type(store: Store) -> None:
    store.write_results(
        RESULTS, batch({"x": np.array([1.0]), "s": ["a"]}), [champion(1)], None, "classification"
    )
    drifted = batch({"x": ["2.5", "n/a"], "s": np.array([3.0, np.nan])}, first_offset=1)
    store.write_results(RESULTS, drifted, [champion(2)], None, "classification")
    rows = store.read_results(RESULTS)
    assert [(r["x"], r["s"]) for r in rows] == [(1.0, "a"), (2.5, "3"), (None, None)]
    assert field_values(np.array([1.0, 0.0, np.nan]), "bool", "text") == ["true", "false", None]
    assert field_values(np.array(["yes", "0", "?"], dtype=object), "text", "bool") == [
        True,
        False,
        None,
    ]


def test_bad_table_names_are_refused(store: Store) -> None:
    for name in ("models", "1st", "a; DROP TABLE x", "x" * 61):
        with pytest.raises(StoreError):
            store.write_results(
                name, batch({"x": np.array([1.0])}), [champion(1)], None, "classification"
            )


def test_writing_10k_rows_of_12_fields(store: Store) -> None:
    """A large write in one call (its speed is measured by ``make bench``, not here)."""
    n = 10_000
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"num{i}": rng.normal(size=n) for i in range(9)}
    columns["flag"] = rng.integers(0, 2, n).astype(np.float64)
    columns["cat"] = np.array([f"c{v}" for v in rng.integers(0, 50, n)], dtype=object)
    columns["text"] = np.array(["some words"] * n, dtype=object)
    b = batch(columns, booleans=frozenset({"flag"}))
    store.write_results(RESULTS, b.take(np.arange(1)), [champion(1)], None, "classification")
    store.write_results(RESULTS, b, [champion(n)], np.ones(n), "classification")
    assert store.count(RESULTS) == n
    rows = store.read_results(RESULTS)
    assert sorted({r["cat"] for r in rows}) == sorted(set(columns["cat"].tolist()))


# -- training --------------------------------------------------------------------------------


def test_training_rows_upsert_by_model_and_events_seen(store: Store) -> None:
    assert store.read_training(TRAINING) == []
    rows: list[dict[str, Any]] = [
        {"model": "lr", "model_version": 1, "events_seen": 100, "accuracy": 0.5, "recorded_at": 0},
        {"model": "lr", "model_version": 2, "events_seen": 200, "accuracy": np.float64(0.6)},
        {"model": "nb", "model_version": 1, "events_seen": 100, "window_f1": float("nan")},
    ]
    assert store.write_training(TRAINING, rows) == 3
    store.write_training(TRAINING, [{**rows[1], "accuracy": 0.7, "roc_auc": 0.8}])
    assert store.count(TRAINING) == 3
    lr = store.read_training(TRAINING, model="lr")
    assert [(r["events_seen"], r["accuracy"]) for r in lr] == [(100, 0.5), (200, 0.7)]
    assert lr[1]["roc_auc"] == 0.8 and lr[1]["f1"] is None
    assert lr[0]["recorded_at"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert store.read_training(TRAINING, model="nb")[0]["window_f1"] is None
    assert set(TRAINING_METRICS) <= set(column_types(store, TRAINING))


def test_unknown_training_columns_are_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="kappa"):
        store.write_training(TRAINING, [{"model": "lr", "events_seen": 1, "kappa": 0.1}])


# -- dead letters ----------------------------------------------------------------------------


def test_dead_letters_round_trip_and_upsert(url: str, store: Store) -> None:
    letters = [
        DeadLetter("t", 0, 5, b"key", b"\x00\xffnot json", 1_700_000_000_001, "bad JSON"),
        DeadLetter("t", 1, 5, None, None, -1, "empty"),
    ]
    assert store.write_dead_letters(letters) == 2
    store.write_dead_letters(
        [DeadLetter("t", 0, 5, b"key", b"\x00\xffnot json", 1_700_000_000_001, "still bad")]
    )
    with Store(url, "other") as other:
        other.write_dead_letters(letters[:1])
        assert len(other.read_dead_letters()) == 1
    back = store.read_dead_letters()
    assert back == [
        DeadLetter("t", 0, 5, b"key", b"\x00\xffnot json", 1_700_000_000_001, "still bad"),
        letters[1],
    ]
    with store.engine.connect() as conn:
        preview = conn.exec_driver_sql(
            "SELECT preview FROM dead_letters WHERE pipeline = 'p' AND source_partition = 0"
        ).scalar()
    assert preview == "\ufffd\ufffdnot json"


# -- models and checkpoints ------------------------------------------------------------------


def test_models_save_and_load_the_latest_version(store: Store) -> None:
    assert store.load_model("lr") is None
    big = bytes(range(256)) * 20_000  # 5 MB
    store.save_model("lr", 1, "logistic_regression", b"one")
    store.save_model("lr", 2, "logistic_regression", big)
    store.save_model("lr", 1, "logistic_regression", b"one again")
    assert store.load_model("lr") == (2, "logistic_regression", big)


def test_checkpoint_round_trip(store: Store) -> None:
    assert store.load_checkpoint() is None
    before = dt.datetime.now(dt.UTC)
    store.save_checkpoint({("a", 0): 10, ("a", 1): 20}, {"lr": b"s1"}, {"stats": b"x"})
    store.save_checkpoint({("a", 0): 15}, {"lr": b"s2", "nb": b"n"})
    cp = store.load_checkpoint()
    assert cp is not None
    assert cp.offsets == {("a", 0): 15, ("a", 1): 20}
    assert cp.model_states == {"lr": b"s2", "nb": b"n"}
    assert cp.extra == {"stats": b"x"}
    assert cp.written_at is not None and cp.written_at >= before - dt.timedelta(seconds=1)


def test_checkpoint_is_one_transaction(store: Store) -> None:
    store.save_checkpoint({("a", 0): 10}, {"lr": b"old"})
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_states BEFORE INSERT ON checkpoint_states "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(StoreError, match="disk full"):
        store.save_checkpoint({("a", 0): 99}, {"lr": b"new", "nb": b"new"})
    cp = store.load_checkpoint()
    assert cp is not None and cp.offsets == {("a", 0): 10} and cp.model_states == {"lr": b"old"}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["mysql+pymysql://u:p@127.0.0.1:1/db", "postgresql+psycopg://u:p@127.0.0.1:1/db"]
)
def test_a_server_that_refuses_connections_is_database_unavailable(url: str) -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        Store(url, "p", connect_timeout=2, retry_after=3)
    assert isinstance(caught.value, StoreError) and isinstance(
        caught.value, ServiceUnavailableError
    )
    assert caught.value.retry_after == 3


def test_a_locked_sqlite_file_is_database_unavailable(url: str) -> None:
    with Store(url, "p") as store, store.engine.connect() as holder:
        holder.exec_driver_sql("BEGIN IMMEDIATE")  # another process is writing
        blocked = Store(url, "p")
        sa.event.listen(
            blocked.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout = 50")
        )
        blocked.engine.dispose()
        try:
            with pytest.raises(DatabaseUnavailableError, match="locked") as caught:
                blocked.save_model("lr", 1, "k", b"s")
            assert caught.value.retry_after <= 1.0
        finally:
            holder.rollback()
            blocked.close()


def test_database_errors_are_store_errors(store: Store) -> None:
    with pytest.raises(StoreError):
        Store("nosuchdb://x", "p")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE models")
    with pytest.raises(StoreError, match="models"):
        store.save_model("lr", 1, "k", b"s")
    assert store.count("nothing_here") == 0


@pytest.mark.parametrize("mariadb", [True, False])
def test_mysql_rows_are_spliced_into_both_upsert_syntaxes(mariadb: bool) -> None:
    from sqlalchemy.dialects import mysql

    from streamfit.store._bulk import _ROWS, rows_template
    from streamfit.store.tables import results_table

    table = results_table("t", "classification", [("age", "float")], [])
    dialect = mysql.pymysql.dialect(paramstyle="pyformat")
    dialect.is_mariadb = mariadb
    dialect._requires_alias_for_on_duplicate_key = not mariadb  # MySQL 8.0.20+: AS new
    insert = mysql.insert(table)
    upsert = insert.on_duplicate_key_update({"age": insert.inserted.age})
    columns = ["prediction", "age", "source_topic", "source_partition", "source_offset"]
    sql, order = rows_template(upsert.compile(dialect=dialect, column_keys=columns).string, None)
    assert order == ["age", "prediction", "source_topic", "source_partition", "source_offset"]
    head, tail = sql.split(_ROWS)
    assert head.endswith(" VALUES ") and "%" not in sql
    assert tail == (
        " AS new ON DUPLICATE KEY UPDATE age = new.age"
        if not mariadb
        else " ON DUPLICATE KEY UPDATE age = VALUES(age)"
    )
