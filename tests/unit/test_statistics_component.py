"""The statistics component in the worker: every event counted once, across restarts and
workers; a bad stats: spec refused with the path of its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.errors import SpecError
from streamfit.runtime.build import build_worker
from streamfit.runtime.statistics import StatisticsComponent
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.streams.memory import MemoryBroker


def make_spec(db: str, **overrides: Any) -> PipelineSpec:
    data: dict[str, Any] = {
        "name": "st",
        "topics": {"train": "t"},
        "target": "y",
        "outputs": {"database": db},
        "batch": {"max_records": 100, "timeout": 0.01},
        "learning": {"block_events": 512},
        "stats": {"window": 400},
    }
    data.update(overrides)
    return validate_spec(data)


def events(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        orjson.dumps({"x": float(x), "kind": "ab"[i % 2], "y": int(x > 0)})
        for i, x in enumerate(rng.normal(size=n))
    ]


def statistics_of(worker: Any) -> StatisticsComponent:
    found = [c for c in worker.components if isinstance(c, StatisticsComponent)]
    assert len(found) == 1
    return found[0]


def test_events_read_again_after_a_restart_are_counted_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    broker = MemoryBroker()
    broker.append("t", events(1300))
    spec = make_spec(db)
    first = build_worker(spec, broker=broker)
    first.run(until=lambda w: w.read.get(("t", 0), 0) >= 1300, drain=False)
    first.close()  # learning stopped at 1024: a restart reads 1024 to 1300 again
    second = build_worker(spec, broker=broker)
    try:
        assert second.read[("t", 0)] == 1024
        second.run(until=lambda w: w.read.get(("t", 0), 0) >= 1300)
        statistics = statistics_of(second).statistics
        assert statistics.events == 1300
        rows = {r["field"]: r for r in second.store.read_field_stats("st_field_stats")}
        assert rows["x"]["count"] == 1300 and rows["x"]["events_seen"] == 1300
    finally:
        second.close()


def test_two_workers_write_the_statistics_of_both(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    broker = MemoryBroker()
    broker.create_topic("t", partitions=2)
    broker.append("t", events(600, 1), partition=0)
    broker.append("t", events(900, 2), partition=1)
    spec = make_spec(db)
    one = build_worker(spec, broker=broker, worker_id="a")
    two = build_worker(spec, broker=broker, worker_id="b")
    try:
        one.source.seek({("t", 1): 900})  # each worker reads one partition
        two.source.seek({("t", 0): 600})
        one.run(until=lambda w: w.read.get(("t", 0), 0) >= 600)
        two.run(until=lambda w: w.read.get(("t", 1), 0) >= 900)
        one.checkpoint()  # now sees b's last statistics
        rows = {r["field"]: r for r in statistics_of(one).rows()}
        assert rows["x"]["count"] == 1500 and rows["x"]["events"] == 1500
        assert rows["kind"]["top_values"] == [
            {"value": "a", "count": 750},
            {"value": "b", "count": 750},
        ]
    finally:
        one.close()
        two.close()


def test_stats_off_and_bad_stats_specs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    worker = build_worker(make_spec(db, stats=False), broker=MemoryBroker())
    assert not [c for c in worker.components if isinstance(c, StatisticsComponent)]
    worker.close()
    for bad, path in (
        ({"window": 0}, "stats.window"),
        ({"quantiles": [0.5, 2]}, "stats.quantiles"),
        ({"fields": "x"}, "stats.fields"),
        ({"histogram_bins": 1}, "stats.histogram_bins"),
        ({"max_fields": 100_000}, "stats.max_fields"),
        ({"table": "st_results"}, "stats.table"),
        ({"windw": 10}, "stats.windw"),
    ):
        with pytest.raises(SpecError) as caught:
            make_spec(db, stats=bad)
        assert caught.value.path == path


def test_a_schema_that_changes_under_a_running_pipeline(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    rng = np.random.default_rng(3)
    before = [
        {"a": float(x), "b": "xy"[i % 2], "y": int(x > 0)}
        for i, x in enumerate(rng.normal(size=600))
    ]
    after = [  # b is gone, c appears, a comes as words now
        {"a": "high" if x > 0 else "low", "c": float(x), "y": int(x > 0)}
        for x in rng.normal(size=900)
    ]
    broker = MemoryBroker()
    broker.append("t", [orjson.dumps(e) for e in before + after])
    worker = build_worker(make_spec(db, stats={"window": 400}), broker=broker)
    try:
        worker.run(until=lambda w: w.read.get(("t", 0), 0) >= 1500)
        assert worker.stats.dead_letters == 0 and worker.stats.events_trained == 1500
        changes = {
            (r["field"], r["old_type"], r["new_type"], r["first_offset"])
            for r in worker.store.read_schema_changes("st_schema_changes")
        }
        assert changes >= {
            ("c", None, "numeric", 600),  # appeared
            ("b", "categorical", None, 600),  # gone: missing from 400 events in a row
            ("a", "numeric", "categorical", 600),  # retyped: 20 words in a row
        }
        rows = {r["field"]: r for r in worker.store.read_field_stats("st_field_stats")}
        assert rows["a"]["kind"] == "categorical"
        assert {v["value"] for v in rows["a"]["top_values"]} == {"high", "low"}
        assert rows["b"]["window_count"] == 0 and rows["c"]["count"] == 900
        # the models keep a field's first kind: words in a numeric field are invalid there
        assert worker.featurizer.schema["a"] == "numeric"
        assert worker.featurizer.invalid_values["a"] == 900
        assert worker.featurizer.schema["c"] == "numeric"
    finally:
        worker.close()
