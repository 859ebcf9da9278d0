"""Field statistics and schema changes on SQLite, PostgreSQL and MariaDB, queried with SQL."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url: str, unique_name: str) -> Iterator[Store]:
    with Store(database_url, unique_name) as s:
        yield s


def test_field_stats_rows_upsert_and_read_back(store: Store, unique_name: str) -> None:
    table = f"{unique_name}_field_stats"
    row = {
        "field": "Temp",
        "kind": "numeric",
        "events_seen": 10,
        "events": 10,
        "count": 9,
        "missing": 1,
        "invalid": 0,
        "distinct_count": 9,
        "min": -1.5,
        "max": float("inf"),  # never a value a database refuses
        "mean": 0.25,
        "variance": float("nan"),
        "p01": -1.5,
        "p50": 0.0,
        "p99_9": 3.0,
        "histogram": {"edges": [-1.5, 3.0], "counts": [9.0]},
        "top_values": [{"value": "héllo \x00", "count": 3}],
        "correlations": {"flow": 0.5},
        "window_events": 10,
        "window_count": 9,
        "window_histogram": None,
    }
    assert store.write_field_stats(table, [row]) == 1
    assert store.write_field_stats(table, [{**row, "mean": 0.5}]) == 1  # a replay upserts
    assert store.write_field_stats(table, [{**row, "events_seen": 20, "p05": 1.0}]) == 1
    rows = store.read_field_stats(table, latest=False)
    assert [(r["events_seen"], r["mean"]) for r in rows] == [(10, 0.5), (20, 0.25)]
    last = store.read_field_stats(table)
    assert len(last) == 1 and last[0]["events_seen"] == 20 and last[0]["p05"] == 1.0
    assert last[0]["max"] is None and last[0]["variance"] is None
    assert last[0]["top_values"] == [{"value": "héllo \x00", "count": 3}]
    assert last[0]["histogram"] == {"edges": [-1.5, 3.0], "counts": [9.0]}
    with store.engine.connect() as conn:  # plain SQL, the same on every database
        found = conn.execute(
            sa.text(f"SELECT field, p50, p99_9, distinct_count FROM {table} ORDER BY events_seen")
        ).all()
    assert [tuple(r) for r in found] == [("Temp", 0.0, 3.0, 9), ("Temp", 0.0, 3.0, 9)]


def test_schema_changes_upsert(store: Store, unique_name: str) -> None:
    table = f"{unique_name}_schema_changes"
    change = {
        "field": "code",
        "old_type": "numeric",
        "new_type": "categorical",
        "source_topic": "Sensors",
        "source_partition": 2,
        "first_offset": 2**40,
    }
    store.write_schema_changes(table, [change, {**change, "source_topic": "sensors"}])
    store.write_schema_changes(table, [change])
    rows = store.read_schema_changes(table)
    assert sorted((r["source_topic"], r["first_offset"], r["new_type"]) for r in rows) == [
        ("Sensors", 2**40, "categorical"),
        ("sensors", 2**40, "categorical"),
    ]


def test_a_pipeline_fills_its_field_stats_table(database_url: str, unique_name: str) -> None:
    broker = MemoryBroker()
    rng = np.random.default_rng(5)
    events = [
        {"pressure": float(x), "valve": ["open", "shut"][i % 2], "fault": i % 10 == 0}
        for i, x in enumerate(rng.normal(100.0, 5.0, size=3000))
    ]
    events[50]["pressure"] = "broken"  # invalid: counted, never sketched
    broker.append("sensors", [orjson.dumps(e) for e in events])
    spec = validate_spec(
        {
            "name": unique_name,
            "topics": {"train": "sensors"},
            "target": "fault",
            "outputs": {"database": database_url},
            "stats": {"window": 1000, "quantiles": [0.5, 0.999]},
        }
    )
    worker = build_worker(spec, broker=broker)
    try:
        worker.run(until=lambda w: w.read.get(("sensors", 0), 0) >= 3000)
        rows = {r["field"]: r for r in worker.store.read_field_stats(f"{unique_name}_field_stats")}
        assert set(rows) == {"pressure", "valve", "fault"}
        pressure = rows["pressure"]
        assert (pressure["count"], pressure["invalid"], pressure["events_seen"]) == (2999, 1, 3000)
        assert 99.0 < pressure["p50"] < 101.0 and pressure["p99_9"] > pressure["p50"]
        assert rows["valve"]["distinct_count"] == 2
        assert rows["fault"]["kind"] == "boolean" and rows["fault"]["mean"] == pytest.approx(0.1)
        changes = worker.store.read_schema_changes(f"{unique_name}_schema_changes")
        assert {(c["field"], c["new_type"]) for c in changes} == {
            ("pressure", "numeric"),
            ("valve", "categorical"),
            ("fault", "boolean"),
        }
    finally:
        worker.close()


def test_anomaly_results_on_every_database(store: Store, unique_name: str) -> None:
    from streamfit.batch import Batch, Messages
    from streamfit.store import ModelPredictions

    table = f"{unique_name}_results"
    batch = Batch(
        {"temp": np.array([20.5, 99.0, np.nan])},
        Messages.from_values([b"{}"] * 3, topic="Sensors", first_offset=7),
    )
    champion = ModelPredictions(
        "histogram",
        4,
        np.array([1.5, 30.25, 2.0]),
        np.array([np.nan, 0.999, 0.5]),
        np.array([False, True, False]),
    )
    other = ModelPredictions(
        "Half Space",
        4,
        np.array([0.1, 0.9, 0.2]),
        np.array([0.1, 0.99, 0.3]),
        np.array([False, True, False]),
    )
    labels = np.array([0, 1, None], dtype=object)
    assert store.write_results(table, batch, [champion, other], labels, "anomaly") == 3
    rows = store.read_results(table)
    assert [r["anomaly_score"] for r in rows] == [1.5, 30.25, 2.0]
    assert [r["score_quantile"] for r in rows] == [None, 0.999, 0.5]
    assert [bool(r["is_anomaly"]) for r in rows] == [False, True, False]
    assert [r["is_anomaly__half_space"] for r in rows][1] in (True, 1)
    assert [r["label"] for r in rows] == ["0", "1", None]
    with pytest.raises(Exception, match="anomaly results"):
        store.write_results(table, batch, [champion], None, "classification")
    with store.engine.connect() as conn:
        top = conn.execute(
            sa.text(f"SELECT source_offset FROM {table} ORDER BY anomaly_score DESC LIMIT 1")
        ).scalar_one()
    assert top == 8
