"""Statistics and anomaly detection on the real broker: two workers' merged statistics are
one worker's, within the sketches' error; the shuttle demo through Kafka."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.cli.main import main
from streamfit.explore import DEFAULT_QUANTILES, StreamStatistics, quantile_column, rank_error
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    WorkerProcess,
    produce,
    start_worker,
    wait_for_assignment,
    write_spec,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4
EVENTS = 40_000


def sensor_events(n: int, seed: int) -> tuple[list[bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    columns = {
        "pressure": rng.normal(100.0, 5.0, size=n).round(3),
        "flow": rng.lognormal(1.0, 1.0, size=n).round(4),
        "level": rng.integers(0, 8, size=n).astype(float),
    }
    sites = np.array(["north", "south", "east"])[rng.integers(0, 3, size=n)]
    events = [
        orjson.dumps(
            {
                "pressure": float(p),
                "flow": float(f),
                "level": int(lv),
                "site": str(s),
                "outlier": int(p > 112),
            }
        )
        for p, f, lv, s in zip(
            columns["pressure"], columns["flow"], columns["level"], sites, strict=True
        )
    ]
    return events, columns


def spec(name: str, bootstrap: str, database: str, topic: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{name}_group",
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": {"score": topic},
        "task": "anomaly",
        "label": "outlier",
        "outputs": {"database": database},
        "batch": {"max_records": 1000, "timeout": 0.1},
        "checkpoint": {"interval_events": 10_000, "interval_seconds": 1.0},
        "stats": {"window": 8_000},
    }


def statistics(database: str, name: str, workers: list[str]) -> list[StreamStatistics]:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
    assert checkpoint is not None
    return [StreamStatistics.from_state(checkpoint.extra[f"{w}/statistics"]) for w in workers]


def test_two_workers_merged_statistics_are_one_worker_s(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topic = f"{unique_name}_sensors"
    create_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    events, columns = sensor_events(EVENTS, 3)
    keys = [str(i).encode() for i in range(EVENTS)]
    feeding = threading.Thread(
        target=produce,
        args=(kafka_bootstrap, topic, events),
        kwargs={"keys": keys, "rate": EVENTS / 6},
    )
    pair_db = f"sqlite:///{tmp_path / 'pair.db'}"
    pair = write_spec(tmp_path / "pair.json", spec("pair", kafka_bootstrap, pair_db, topic))
    workers: list[WorkerProcess] = [
        start_worker(pair, tmp_path / f"{w}.log", w, stop_when_idle=8) for w in ("a", "b")
    ]
    wait_for_assignment(kafka_bootstrap, "pair_group", 2, PARTITIONS, workers)
    feeding.start()
    feeding.join()
    for worker in workers:
        worker.wait(timeout=240)
    solo_db = f"sqlite:///{tmp_path / 'solo.db'}"
    solo = write_spec(tmp_path / "solo.json", spec("solo", kafka_bootstrap, solo_db, topic))
    start_worker(solo, tmp_path / "s.log", "s", stop_when_idle=8).wait(timeout=240)

    a, b = statistics(pair_db, "pair", ["a", "b"])
    assert a.events > 0 and b.events > 0 and a.events + b.events == EVENTS
    (single,) = statistics(solo_db, "solo", ["s"])
    assert single.events == EVENTS
    merged = {r["field"]: r for r in a.rows(a.merged_views([b]))}
    alone = {r["field"]: r for r in single.rows()}
    error = rank_error(200)
    for name, data in columns.items():
        one, two = merged[name], alone[name]
        assert one["count"] == two["count"] == EVENTS
        assert (one["min"], one["max"]) == (two["min"], two["max"]) == (data.min(), data.max())
        assert one["mean"] == pytest.approx(two["mean"], rel=1e-9)
        assert one["variance"] == pytest.approx(two["variance"], rel=1e-6)
        assert one["distinct_count"] == pytest.approx(two["distinct_count"], rel=0.05)
        ordered = np.sort(data)
        for q in DEFAULT_QUANTILES:
            column = quantile_column(q)
            for value in (one[column], two[column]):  # each within the error of numpy's
                below = np.searchsorted(ordered, value, "left") / EVENTS
                at_or_below = np.searchsorted(ordered, value, "right") / EVENTS
                assert below - error <= q <= at_or_below + error, (name, q, value)
    assert merged["site"]["top_values"] == alone["site"]["top_values"]
    assert merged["level"]["top_values"] == alone["level"]["top_values"]
    # what the pair wrote to its table is the group's: every event, by the last writer
    with Store(pair_db, "pair") as store:
        rows = {r["field"]: r for r in store.read_field_stats("pair_field_stats")}
    assert max(r["events"] for r in rows.values()) <= EVENTS
    with Store(pair_db, "pair") as store:
        assert store.count("pair_results") == EVENTS


def test_the_shuttle_demo_through_kafka(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'shuttle.db'}"
    assert main(["demo", "shuttle", "--kafka", kafka_bootstrap, "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["events_scored"] == 49_097
    models = {m["name"]: m["metrics"] for m in summary["models"]}
    assert models["histogram"]["roc_auc"] >= 0.95
