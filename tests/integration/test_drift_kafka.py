"""Drift on the real broker, with SQLite, PostgreSQL and MariaDB: the drift table fills with
the alarms of a change of concept, and a worker killed with SIGKILL (twice, after the first
alarms) and restarted ends with the same alarms as a run never interrupted, each once.

Kills are triggered by progress (a checkpoint past the change), never by time. The
uninterrupted run is the in-process one over the same events: learning and the detectors
depend on the events' offsets, not on how they were polled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamfit.cli.clickstream import click_events
from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from streamfit.streams.memory import MemoryBroker
from tests.integration.support import produce, start_worker, wait_until, write_spec

pytestmark = pytest.mark.integration

EVENTS, CHANGE = 26_000, 20_000


def spec_of(name: str, database: str, source: dict[str, Any], topic: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "topics": {"train": topic},
        "target": "click",
        "models": [{"name": "lr", "builtin": "logistic_regression"}],
        "drift": {"fields": ["f0", "f3"]},
        "stats": False,
        "outputs": {"database": database},
        "batch": {"max_records": 300, "timeout": 0.2},
        "checkpoint": {"interval_events": 1500, "interval_seconds": 0.5},
    }


def alarms(database: str, name: str) -> list[tuple[Any, ...]]:
    with Store(database, name) as store:
        return [
            (r["seq"], r["watched"], r["name"], r["source_offset"], r["direction"])
            for r in store.read_drift(f"{name}_drift")
        ]


def checkpointed(database: str, name: str) -> int:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
    return sum(checkpoint.offsets.values()) if checkpoint is not None else 0


def test_alarms_survive_sigkill_once_each(
    kafka_bootstrap: str, database_url: str, tmp_path: Path, unique_name: str
) -> None:
    topic = f"{unique_name}_clicks"
    clicks = click_events(EVENTS, shift_at=CHANGE, seed=0)
    broker = MemoryBroker()
    broker.append(topic, clicks.values, clicks.keys)
    calm_db = f"sqlite:///{tmp_path / 'calm.db'}"
    calm = build_worker(
        validate_spec(spec_of("calm", calm_db, {"kind": "memory"}, topic)), broker=broker
    )
    while calm.read.get((topic, 0), 0) < EVENTS:
        calm.step(timeout=0.01)
    calm.finish(drain=False)
    calm.close()
    want = alarms(calm_db, "calm")
    models = [a for a in want if a[1] == "model"]
    assert models and all(offset >= CHANGE for _, _, _, offset, _ in models)
    assert models[0][3] < CHANGE + 2000

    create_topics(kafka_bootstrap, [topic], partitions=1)
    produce(kafka_bootstrap, topic, clicks.values, keys=clicks.keys, partitions=1)
    source = {
        "kind": "kafka",
        "bootstrap_servers": kafka_bootstrap,
        "group_id": f"{topic}_killed",
        "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    }
    spec = write_spec(tmp_path / "killed.json", spec_of("killed", database_url, source, topic))
    log = tmp_path / "killed.log"
    for past in (CHANGE + 1000, CHANGE + 4000):  # after the first alarms, and later again
        worker = start_worker(spec, log, stop_when_idle=None)
        wait_until(
            lambda past=past: checkpointed(database_url, "killed") >= past,
            f"a checkpoint past {past}",
            workers=[worker],
        )  # type: ignore[misc]
        worker.kill()
        assert alarms(database_url, "killed"), "no alarm in the table before the kill"
    start_worker(spec, log).wait()

    got = alarms(database_url, "killed")
    assert got == want
    where = [(watched, name, offset) for _, watched, name, offset, _ in got]
    assert len(set(where)) == len(where), "an alarm written twice"
    assert "drift of model lr (adwin, up)" in log.read_text()
