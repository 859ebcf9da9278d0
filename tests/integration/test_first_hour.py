"""A new user's first hour, on a real broker: the local broker of `streamfit kafka start`
found by every command, a score topic created after the worker started, and a bad spec
refused before it joins (and stalls) a consumer group."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.store import Store
from streamfit.streams.kafka import create_topics
from tests.conftest import service_missing
from tests.integration.support import produce, wait_until

STREAMFIT = [sys.executable, "-m", "streamfit.cli.main"]


def streamfit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STREAMFIT, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )


def events(rows: list[dict[str, object]]) -> list[bytes]:
    return [orjson.dumps(row) for row in rows]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program holds."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def test_kafka_start_takes_another_port_loudly_and_every_command_finds_it(
    tmp_path: Path, taken_port: int
) -> None:
    if shutil.which("java") is None:
        service_missing("no java: streamfit kafka start needs Java 17+")
    directory = tmp_path / "kafka"
    env = {"STREAMFIT_KAFKA_DIR": str(directory), "STREAMFIT_KAFKA_BOOTSTRAP": ""}
    started = streamfit("kafka", "start", "--port", str(taken_port), env=env)
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip().splitlines()[-1]
        assert bootstrap.startswith("127.0.0.1:") and bootstrap != f"127.0.0.1:{taken_port}"
        assert f"port {taken_port} is taken by another program" in started.stderr
        assert f"the broker listens on {bootstrap} instead" in started.stderr
        status = streamfit("kafka", "status", env=env)
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        again = streamfit("kafka", "start", "--port", str(taken_port), env=env)
        assert again.stdout.strip() == bootstrap and "already runs" in again.stderr

        data = tmp_path / "rows.tsv"
        data.write_text("".join(f"{i % 2}\tmessage number {i}\n" for i in range(50)))
        produced = streamfit("produce", str(data), "--topic", "first_hour", env=env)
        assert produced.returncode == 0, produced.stderr
        assert "no header line" in produced.stderr
        assert f"produced 50 events to first_hour at {bootstrap} (the local broker" in (
            produced.stderr
        )
        spec = tmp_path / "p.yaml"
        spec.write_text(  # no source: Kafka, at the local broker
            "name: first_hour\ntopics: {train: first_hour}\ntarget: column_1\n"
            f"models: [{{name: lr, builtin: logistic_regression}}]\n"
            f"outputs: {{database: 'sqlite:///{tmp_path / 'p.db'}'}}\n"
        )
        checked = streamfit("check", str(spec), env=env)
        assert checked.returncode == 0, checked.stderr
        assert f"Apache Kafka at {bootstrap} (the local broker" in checked.stdout
        assert "train topic first_hour: 1 partition" in checked.stdout
        ran = streamfit("run", str(spec), "--stop-when-idle", "3", env=env)
        assert ran.returncode == 0, ran.stderr
        assert "first_hour: 50 events in, 50 trained" in ran.stderr
    finally:
        stopped = streamfit("kafka", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert streamfit("kafka", "status", env=env).returncode == 1


def test_a_score_topic_created_after_the_start_is_read_within_seconds(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    """librdkafka's default would see the new topic at its next metadata refresh, up to
    5 minutes later; the deadline below is a fifth of that."""
    train, score = f"{unique_name}_train", f"{unique_name}_score"
    create_topics(kafka_bootstrap, [train])
    produce(kafka_bootstrap, train, events([{"x": i % 5, "y": i % 2} for i in range(200)]))
    spec = validate_spec(
        {
            "name": unique_name,
            "source": {"kind": "kafka", "bootstrap_servers": kafka_bootstrap},
            "topics": {"train": train, "score": score},
            "target": "y",
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "outputs": {"database": f"sqlite:///{tmp_path / 'late.db'}"},
            "batch": {"max_records": 100, "timeout": 0.1},
        }
    )
    worker = build_worker(spec)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: worker.run(stop=stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.stats.events_in >= 200, "the train topic read", 120)
        create_topics(kafka_bootstrap, [score])
        produce(kafka_bootstrap, score, events([{"x": i % 5} for i in range(20)]))
        wait_until(lambda: worker.stats.events_scored >= 20, "the new score topic read", 60)
        with Store(spec.outputs.database or "", unique_name) as store:
            assert store.count(f"{unique_name}_results") == 20
    finally:
        stop.set()
        thread.join(60)
        worker.close()


def test_a_bad_model_is_refused_before_the_worker_joins_its_group(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    topic = f"{unique_name}_events"
    create_topics(kafka_bootstrap, [topic])
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        f"name: {unique_name}\n"
        f"source: {{kind: kafka, bootstrap_servers: '{kafka_bootstrap}', "
        f"group_id: {unique_name}}}\n"
        f"topics: {{train: {topic}}}\ntarget: y\n"
        "models: [{name: tree, river: tree.NoSuchTreeClassifier}]\n"
        f"outputs: {{database: 'sqlite:///{tmp_path / 'bad.db'}'}}\n"
    )
    done = streamfit("run", str(spec))
    assert done.returncode == 2
    assert "streamfit: bad spec: models.0: model 'tree' (river: tree.NoSuchTreeClassifier)" in (
        done.stderr
    )
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    (group,) = admin.describe_consumer_groups([unique_name]).values()
    assert not group.result(timeout=30).members  # it never joined
