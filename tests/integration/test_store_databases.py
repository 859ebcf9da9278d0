"""streamfit.store against real databases: SQLite, PostgreSQL and MariaDB (``database_url``).

The same behaviours as the SQLite unit tests, where the databases differ: types, case-
insensitive names (MariaDB), upsert syntax, binary and large values, time zones, NUL bytes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from streamfit.batch import Batch, DeadLetter, Messages
from streamfit.errors import ServiceUnavailableError, StoreError
from streamfit.store import ModelPredictions, Store, _bulk

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url: str, unique_name: str) -> Iterator[Store]:
    with Store(database_url, unique_name) as s:
        yield s


@pytest.fixture
def results(unique_name: str) -> str:
    return f"{unique_name}_results"


def batch(
    columns: dict[str, Any],
    *,
    first_offset: int = 0,
    topic: str = "Events",
    booleans: frozenset[str] = frozenset(),
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
        timestamp_ms=1_700_000_000_123,
    )
    return Batch(arrays, meta, booleans)


def champion(n: int, value: float = 1.0) -> ModelPredictions:
    return ModelPredictions("lr", 2, np.full(n, value), np.full(n, 0.25))


def test_values_come_back_as_written(store: Store, results: str) -> None:
    b = batch(
        {
            "x": np.array([0.1, np.nan, -1e300]),
            "ok": np.array([1.0, 0.0, np.nan]),
            "n": np.array([1, -2, 2**62], dtype=np.int64),
            "city": ["Zürich 🏔", None, "nul\x00byte"],
            "doc": [{"a": [1, 2]}, 3, "it's \\ quoted"],
        },
        booleans=frozenset({"ok"}),
    )
    store.write_results(results, b, [champion(3)], np.array([1.0, 0.0, np.nan]), "classification")
    rows = store.read_results(results)
    assert [r["x"] for r in rows] == [0.1, None, -1e300]
    assert [r["ok"] for r in rows] == [True, False, None]
    assert [r["n"] for r in rows] == [1, -2, 2**62]
    assert [r["city"] for r in rows] == ["Zürich 🏔", None, "nul\ufffdbyte"]
    assert [r["doc"] for r in rows] == ['{"a":[1,2]}', "3", "it's \\ quoted"]
    assert [r["label"] for r in rows] == ["1", "0", None]
    first = rows[0]
    assert (first["prediction"], first["probability"], first["model"], first["model_version"]) == (
        "1",
        0.25,
        "lr",
        2,
    )
    assert first["event_time"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    assert abs((first["processed_at"] - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_whole_numbers_are_integers_until_a_fraction_widens_the_column(
    store: Store, results: str
) -> None:
    """JSON numbers reach the batch as floats: ``id`` and ``wave`` stay integer columns; a
    fraction later makes the column DOUBLE, losing nothing, and the first rows read the same."""
    first = batch({"id": np.array([4500.0, 4501.0]), "wave": np.array([1.0, np.nan])})
    store.write_results(results, first, [champion(2)], None, "classification")
    types = {c["name"]: c["type"] for c in sa.inspect(store.engine).get_columns(results)}
    assert isinstance(types["id"], sa.Integer) and isinstance(types["wave"], sa.Integer)
    later = batch({"id": np.array([4502.0, 4503.0]), "wave": np.array([2.5, 3.0])}, first_offset=2)
    store.write_results(results, later, [champion(2)], None, "classification")
    rows = store.read_results(results)
    assert [r["id"] for r in rows] == [4500, 4501, 4502, 4503]
    assert [r["wave"] for r in rows] == [1, None, 2.5, 3]
    types = {c["name"]: c["type"] for c in sa.inspect(store.engine).get_columns(results)}
    assert isinstance(types["id"], sa.Integer)
    if store.engine.dialect.name != "sqlite":  # SQLite keeps a fraction in any column
        assert isinstance(types["wave"], sa.Float)


def test_replays_upsert_and_topics_are_case_sensitive(store: Store, results: str) -> None:
    b = batch({"x": np.arange(4, dtype=np.float64)})
    store.write_results(results, b, [champion(4, 0.0)], np.ones(4), "classification")
    store.write_results(results, b, [champion(4, 1.0)], None, "classification")
    assert store.count(results) == 4
    rows = store.read_results(results)
    assert {(r["prediction"], r["label"]) for r in rows} == {("1", "1")}
    lower = batch({"x": np.arange(4, dtype=np.float64)}, topic="events")
    store.write_results(results, lower, [champion(4)], None, "classification")
    assert store.count(results) == 8


def test_duplicate_offsets_in_one_batch(store: Store, results: str) -> None:
    b = batch({"x": np.array([1.0, 2.0, 3.0])})
    b.meta.offsets[:] = [7, 7, 8]
    store.write_results(results, b, [champion(3)], None, "classification")
    assert [(r["source_offset"], r["x"]) for r in store.read_results(results)] == [
        (7, 2.0),
        (8, 3.0),
    ]


def test_new_fields_and_names_that_differ_only_in_case(
    database_url: str, unique_name: str, results: str
) -> None:
    with Store(database_url, unique_name) as first, Store(database_url, unique_name) as second:
        first.write_results(
            results, batch({"Age": np.array([1.0])}), [champion(1)], None, "classification"
        )
        b = batch({"age": np.array([2.0]), "Age": np.array([3.0]), "new": ["n"]}, first_offset=1)
        second.write_results(results, b, [champion(1)], None, "classification")
        first.write_results(
            results, batch({"new": ["m"]}, first_offset=2), [champion(1)], None, "classification"
        )
        assert first.field_columns(results) == {"Age": "age", "age": "age_2", "new": "new"}
        rows = first.read_results(results)
    assert [(r["age"], r["age_2"], r["new"]) for r in rows] == [
        (1.0, None, None),
        (3.0, 2.0, "n"),
        (None, None, "m"),
    ]


def test_challengers_and_regression(store: Store, unique_name: str) -> None:
    table = f"{unique_name}_reg"
    b = batch({"x": np.array([1.0, 2.0])})
    models = [
        ModelPredictions("lin", 1, np.array([0.5, np.nan]), None),
        ModelPredictions("Other", 4, np.array([1.5, 2.5]), None),
    ]
    store.write_results(table, b, models, np.array([1.0, 2.0]), "regression")
    rows = store.read_results(table)
    assert [(r["prediction"], r["prediction__other"], r["label"]) for r in rows] == [
        (0.5, 1.5, 1.0),
        (None, 2.5, 2.0),
    ]
    with pytest.raises(StoreError, match="regression"):
        store.write_results(table, b, models, None, "classification")


def test_training_upserts(store: Store, unique_name: str) -> None:
    table = f"{unique_name}_training"
    row = {"model": "lr", "model_version": 1, "events_seen": 100, "f1": 0.5, "recorded_at": 1.5}
    store.write_training(table, [row, {**row, "model": "LR"}])
    store.write_training(table, [{**row, "f1": 0.75, "window_f1": float("nan")}])
    got = store.read_training(table, model="lr")
    assert [(r["events_seen"], r["f1"], r["window_f1"]) for r in got] == [(100, 0.75, None)]
    assert got[0]["recorded_at"] == dt.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=dt.UTC)
    assert store.count(table) == 2


def test_each_worker_keeps_its_own_training_rows(store: Store, unique_name: str) -> None:
    table = f"{unique_name}_training"
    row = {"model": "lr", "model_version": 1, "events_seen": 100, "f1": 0.5}
    store.write_training(table, [{**row, "worker": "0"}, {**row, "worker": "1", "f1": 0.6}])
    got = store.read_training(table, model="lr")
    assert [(r["worker"], r["f1"]) for r in got] == [("0", 0.5), ("1", 0.6)]


def test_a_training_table_from_before_the_worker_column_still_takes_rows(
    store: Store, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = f"{unique_name}_training"
    old = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("model_version", sa.BigInteger),
        sa.Column("events_seen", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("f1", sa.Float),
        sa.PrimaryKeyConstraint("model", "events_seen"),
    )
    old.metadata.create_all(store.engine)
    row = {"model": "lr", "model_version": 1, "events_seen": 100, "f1": 0.5}
    store.write_training(table, [row])
    store.write_training(table, [{**row, "f1": 0.7}])
    got = store.read_training(table, model="lr")
    assert [(r["worker"], r["f1"]) for r in got] == [("0", 0.7)]
    assert "made before its worker column" in caplog.text


def test_dead_letters_keep_the_original_bytes(store: Store) -> None:
    payload = bytes(range(256)) * 1000
    letters = [
        DeadLetter("t", 0, 1, b"\x00k", payload, 1_700_000_000_001, "bad"),
        DeadLetter("t", 0, 2, None, None, -1, "empty"),
    ]
    store.write_dead_letters(letters)
    store.write_dead_letters([DeadLetter("t", 0, 2, None, b"{}", -1, "empty again")])
    assert store.read_dead_letters() == [
        letters[0],
        DeadLetter("t", 0, 2, None, b"{}", -1, "empty again"),
    ]


def test_model_states_of_several_megabytes(store: Store) -> None:
    big = np.random.default_rng(0).bytes(6_000_000)
    store.save_model("lr", 1, "logistic_regression", b"small")
    store.save_model("lr", 2, "logistic_regression", big)
    assert store.load_model("lr") == (2, "logistic_regression", big)
    assert store.load_model("nope") is None


def test_model_versions_commands_and_events(store: Store, unique_name: str) -> None:
    """The lifecycle's tables: versions with metrics and pruned states, the operator's
    commands in order, model events upserted by their number."""
    for version in range(1, 5):
        store.save_model(
            "lr", version, "builtin", b"s%d" % version, worker="0", metrics={"f1": 0.5}
        )
    assert store.prune_model_states("lr", keep=2) == 2
    versions = store.model_versions("lr")
    assert [(v["version"], v["state_bytes"]) for v in versions] == [(1, 0), (2, 0), (3, 2), (4, 2)]
    assert versions[-1]["metrics"] == {"f1": 0.5} and versions[-1]["worker"] == "0"
    assert store.load_model("lr", 3) == (3, "builtin", b"s3")
    first = store.add_model_command("promote", "gbm")
    second = store.add_model_command("rollback", "lr", 3)
    assert second > first
    store.mark_model_command(first, "gbm is the champion")
    store.mark_model_command(first, "a second worker's word")
    commands = store.model_commands()
    assert [(c["command"], c["model"], c["version"]) for c in commands] == [
        ("promote", "gbm", None),
        ("rollback", "lr", 3),
    ]
    assert commands[0]["result"] == "gbm is the champion" and commands[1]["applied_at"] is None
    assert [c["id"] for c in store.model_commands(after=first)] == [second]
    table = f"{unique_name}_model_events"
    row = {"worker": "0", "head": "", "seq": 1, "events_seen": 500, "kind": "gate_rejected"}
    row |= {"model": "lr", "score": 0.2, "threshold": 0.7, "detail": {"held_out": 99}}
    store.write_model_events(table, [row])
    store.write_model_events(table, [row | {"score": float("nan")}])  # a replay upserts
    events = store.read_model_events(table)
    assert len(events) == 1 and events[0]["score"] is None
    assert events[0]["detail"] == {"held_out": 99}


def test_checkpoint_round_trip_and_atomicity(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save_checkpoint({("a", 0): 10, ("A", 0): 11}, {"lr": b"\x00" * 3_000_000}, {"x": b"1"})
    cp = store.load_checkpoint()
    assert cp is not None
    assert cp.offsets == {("a", 0): 10, ("A", 0): 11}
    assert cp.model_states == {"lr": b"\x00" * 3_000_000} and cp.extra == {"x": b"1"}
    assert cp.written_at is not None and cp.written_at.tzinfo is not None

    upsert = _bulk.upsert

    def states_fail(dialect: str, table: sa.Table, columns: Any) -> sa.Insert:
        if table.name == "checkpoint_states":  # the second statement of the transaction fails
            table = sa.Table("no_such_table", sa.MetaData(), *[c._copy() for c in table.columns])
        return upsert(dialect, table, columns)

    monkeypatch.setattr(_bulk, "upsert", states_fail)
    with pytest.raises(StoreError):
        store.save_checkpoint({("a", 0): 99}, {"lr": b"new"})
    monkeypatch.undo()
    cp = store.load_checkpoint()
    assert cp is not None and cp.offsets[("a", 0)] == 10


def test_bulk_write_rate(store: Store, results: str) -> None:
    n = 10_000
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {f"num{i}": rng.normal(size=n) for i in range(9)}
    columns["flag"] = rng.integers(0, 2, n).astype(np.float64)
    columns["cat"] = np.array([f"c{v}" for v in rng.integers(0, 50, n)], dtype=object)
    columns["text"] = np.array(["some words, 'quoted'"] * n, dtype=object)
    b = batch(columns, booleans=frozenset({"flag"}))
    store.write_results(results, b.take(np.arange(1)), [champion(1)], None, "classification")
    rates = []
    for _ in range(2):  # insert, then upsert over the same offsets
        started = time.perf_counter()
        store.write_results(results, b, [champion(n)], np.ones(n), "classification")
        rates.append(n / (time.perf_counter() - started))
    dialect = store.engine.dialect.name
    print(f"\n{dialect}: insert {rates[0]:,.0f} rows/s, upsert {rates[1]:,.0f} rows/s")
    assert store.count(results) == n
    assert min(rates) > 1_000


def test_unreachable_server_is_service_unavailable(database_url: str) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        pytest.skip("SQLite has no server")
    with pytest.raises(ServiceUnavailableError):
        Store(url.set(port=1).render_as_string(hide_password=False), "p", connect_timeout=2)


def test_results_and_dead_letters_are_indexed_by_time_even_in_older_tables(
    database_url: str, store: Store, results: str
) -> None:
    """The API's latest rows come from an index, not a sort of the whole table; tables an
    older streamfit made get the index when a store next opens them."""
    from streamfit.store.tables import results_time_index

    def indexes(table: str) -> dict[str, list[str]]:
        found = sa.inspect(store.engine).get_indexes(table)
        return {str(i["name"]): [str(c) for c in i["column_names"]] for i in found}

    key = ["source_topic", "source_partition", "source_offset"]
    store.write_results(results, batch({"x": [1.0, 2.0]}), [champion(2)], None, "classification")
    assert indexes(results)[results_time_index(results)] == ["processed_at", *key]
    assert indexes("dead_letters")["dead_letters_by_time"] == ["pipeline", "recorded_at", *key]

    with store.engine.begin() as conn:  # as an older streamfit left them
        for table, index in ((results, results_time_index(results)), ("dead_letters", None)):
            name = index or "dead_letters_by_time"
            sa.Index(name, sa.Table(table, sa.MetaData(), autoload_with=conn).c.source_topic).drop(
                conn
            )
    assert results_time_index(results) not in indexes(results)
    with Store(database_url, store.pipeline) as reopened:
        reopened.write_results(
            results, batch({"x": [3.0]}, first_offset=2), [champion(1)], None, "classification"
        )
    assert results_time_index(results) in indexes(results)
    assert "dead_letters_by_time" in indexes("dead_letters")
