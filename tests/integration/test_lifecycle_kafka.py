"""The update gate on the real broker: a run killed with SIGKILL and restarted takes the
same gate decisions, with the same scores, as a run never interrupted, and ends with the
same model bytes. ``streamfit models promote`` reaches a running worker through the store.

Kills are triggered by progress (a checkpoint past the block of flipped labels), never by
time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streamfit.cli.clickstream import click_events
from streamfit.cli.main import main
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.integration.support import (
    checkpointed,
    produce,
    sqlite_rows,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

BLOCK, EVENTS = 500, 20_000
FLIPPED = (6_000, 8_000)  # four blocks of flipped labels


def spec_file(path: Path, name: str, bootstrap: str, database: str, topic: str) -> Path:
    spec = {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{topic}_{name}",
            "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        },
        "topics": {"train": topic},
        "target": "click",
        "key": "user",
        "models": [
            {
                "name": "gated",
                "builtin": "logistic_regression",
                "gate": {"metric": "accuracy", "ratio": 0.95, "holdout": 0.3},
            },
            {"name": "plain", "builtin": "logistic_regression"},
        ],
        "outputs": {"database": database},
        "batch": {"max_records": 300, "timeout": 0.2},
        "learning": {"block_events": BLOCK},
        "checkpoint": {"interval_events": 1500, "interval_seconds": 0.5},
    }
    path.write_text(orjson.dumps(spec).decode())
    return path


def decisions(database: str, name: str) -> list[tuple[Any, ...]]:
    return sqlite_rows(
        database,
        f"SELECT seq, events_seen, kind, model, version, score, threshold "
        f"FROM {name}_model_events ORDER BY seq",
    )


def model_bytes(database: str, name: str) -> bytes:
    with Store(database, name) as store:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None
        return checkpoint.model_states["0/model/gated"]


def test_a_replay_after_sigkill_takes_the_same_gate_decisions(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topic = f"{unique_name}_clicks"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    clicks = click_events(EVENTS, mislabeled=FLIPPED, seed=11)
    produce(kafka_bootstrap, topic, clicks.values, keys=clicks.keys, partitions=1)

    calm_db = f"sqlite:///{tmp_path / 'calm.db'}"
    calm = spec_file(tmp_path / "calm.json", "calm", kafka_bootstrap, calm_db, topic)
    start_worker(calm, tmp_path / "calm.log").wait()
    want = decisions(calm_db, "calm")
    rejected = {row[1] for row in want if row[2] == "gate_rejected" and row[3] == "gated"}
    # which rows a block holds out hashes the topic's name, unique to each run: whether each
    # flipped block's held-out rows give it away varies with it; some always do
    flipped_blocks = set(range(FLIPPED[0] + BLOCK, FLIPPED[1] + 1, BLOCK))
    assert rejected & flipped_blocks, ("no flipped block rejected", sorted(rejected))

    killed_db = f"sqlite:///{tmp_path / 'killed.db'}"
    killed = spec_file(tmp_path / "killed.json", "killed", kafka_bootstrap, killed_db, topic)
    for past in (FLIPPED[1] + 500, 14_000):  # killed after the bad blocks, and later again
        worker = start_worker(killed, tmp_path / "killed.log", stop_when_idle=None)
        wait_until(
            lambda past=past: checkpointed(killed_db) >= past,
            f"a checkpoint past {past}",
            workers=[worker],
        )  # type: ignore[misc]
        worker.kill()
    start_worker(killed, tmp_path / "killed.log").wait()

    assert decisions(killed_db, "killed") == want
    assert model_bytes(killed_db, "killed") == model_bytes(calm_db, "calm")


def test_models_promote_reaches_a_running_worker(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"{unique_name}_clicks"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    clicks = click_events(4_000, seed=12)
    produce(kafka_bootstrap, topic, clicks.values, keys=clicks.keys, partitions=1)
    database = f"sqlite:///{tmp_path / 'ops.db'}"
    name = "ops"
    path = spec_file(tmp_path / "ops.json", name, kafka_bootstrap, database, topic)
    worker = start_worker(path, tmp_path / "ops.log", stop_when_idle=None)
    try:
        wait_until(lambda: checkpointed(database) >= 4_000, "the stream read", workers=[worker])
        assert main(["models", "promote", str(path), "plain"]) == 0
        query = "SELECT result FROM model_commands WHERE model = 'plain'"
        result = wait_until(
            lambda: (rows := sqlite_rows(database, query)) and rows[0][0],
            "the worker's answer",
            workers=[worker],
        )
        assert result == "plain is the champion"
        capsys.readouterr()
        assert main(["models", "list", str(path), "--json"]) == 0
        report = orjson.loads(capsys.readouterr().out)
        assert report["champion"] == "plain"
        assert {m["name"]: m["serves"] for m in report["models"]} == {
            "gated": False,
            "plain": True,
        }
        assert all(m["versions"] for m in report["models"])
        assert main(["models", "rollback", str(path)]) == 0
        wait_until(
            lambda: (
                len(
                    sqlite_rows(
                        database, "SELECT 1 FROM model_commands WHERE applied_at IS NOT NULL"
                    )
                )
                == 2
            ),
            "the rollback carried out",
            workers=[worker],
        )
    finally:
        worker.stop()
    with Store(database, name) as store:
        kinds = [e["kind"] for e in store.read_model_events(f"{name}_model_events")]
    assert "operator_promoted" in kinds and "operator_rolled_back" in kinds
