"""A dependency goes away mid-run and comes back: the worker pauses, holds, resumes, loses nothing.

``test_postgres_outage_mid_run`` stops the PostgreSQL server for 30 s while ``streamfit run``
is busy on the real broker, and keeps the stream flowing meanwhile (part of the events are
produced during the outage). The worker must say clearly that it is pausing, must not buffer
the stream in memory while it waits (its RSS is sampled every 0.5 s), must come back by itself
once the server is up again, and the run must end with every score event in the results table
exactly once and every train event learned.

``test_postgres_outage_longer_than_max_poll_interval`` does the same with an outage longer than
the consumer may go without polling (``max.poll.interval.ms``, lowered to 10 s for the test),
so that the group would drop a worker that just waits: it must stay in the group meanwhile and
resume by itself.

``test_broker_outage_under_load`` stops the broker for 20 s and starts it again while events
are produced all along, under ``at_least_once`` and ``exactly_once``, with a consumer group
session (6 s) shorter than the outage, so the group drops the worker meanwhile: it must say
it pauses for the broker, resume by itself, and end with every score event in the results
exactly once, every train event learned, and each prediction seen once by a
``read_committed`` reader under ``exactly_once`` (at least once under ``at_least_once``).

The servers stopped are the tests' own, never the shared ones: a PostgreSQL server made with
``initdb`` in a temporary directory (run as the ``postgres`` user under root), and a broker
started with ``scripts/kafka`` in a temporary directory, restarted on the same port. Where
PostgreSQL or Java is not installed the tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, Message, Producer
from sqlalchemy.pool import NullPool

from streamfit.store import Store
from streamfit.streams.base import OutRecord
from streamfit.streams.kafka import KafkaSink, create_topics, delete_topics

# Produced before the run starts, then during the outage (so the stream never stops).
TRAIN_BEFORE, TRAIN_DURING = 120_000, 30_000
SCORE_BEFORE, SCORE_DURING = 10_000, 5_000
TRAIN_EVENTS, SCORE_EVENTS = TRAIN_BEFORE + TRAIN_DURING, SCORE_BEFORE + SCORE_DURING
RSS_FACTOR, RSS_SLACK_KB = 1.3, 50 * 1024

pytestmark = pytest.mark.integration  # real broker and database servers, of their own

PAUSING = re.compile(r"WARNING streamfit\.worker: .*database unavailable.*pausing and retrying")
BACK = re.compile(r"WARNING streamfit\.worker: (.+): back after ([0-9.]+) s; resuming")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _cannot(message: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


# ------------------------------------------------------------------------- the PostgreSQL server


class PostgresServer:
    """A PostgreSQL server of the test's own (``initdb`` and ``pg_ctl`` from the PostgreSQL
    installed on this machine), on a loopback port and a data directory that survive a stop:
    the shared server is never stopped. Run as the ``postgres`` system user when the tests run
    as root (PostgreSQL refuses to run as root)."""

    def __init__(self, bindir: Path, directory: Path, port: int) -> None:
        self.bindir, self.directory, self.port = bindir, directory, port
        self.data = directory / "data"
        self.url = f"postgresql+psycopg://streamfit@127.0.0.1:{port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_user, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

    def create(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "streamfit",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
            "-c full_page_writes=off -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def wait_ready(self, url: str, timeout: float = 120) -> None:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 2})
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.exec_driver_sql("SELECT 1")
                    return
                except sa.exc.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            engine.dispose()


def _free_port() -> int:
    """A free loopback port below the ephemeral range (none of our connections takes it)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port found")


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module's tests alone (they stop it); skipped (failed in
    CI) where PostgreSQL is not installed."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not installed:
        _cannot("PostgreSQL is not installed here (no /usr/lib/postgresql/*/bin/initdb)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _cannot("no runuser: cannot run PostgreSQL as the postgres user")
    directory = Path(tempfile.mkdtemp(prefix="streamfit-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(installed[-1].parent, directory, _free_port())
    try:
        server.create()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_database(pg_server: PostgresServer, unique_name: str) -> Iterator[str]:
    """The URL of a new database on ``pg_server``, dropped after the test."""
    engine = sa.create_engine(pg_server.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{unique_name}"')
    try:
        yield pg_server.url.rsplit("/", 1)[0] + f"/{unique_name}"
    finally:
        pg_server.wait_ready(pg_server.url)  # whatever the test left it in
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)')
        engine.dispose()


# ------------------------------------------------------------------------------------- helpers


def events(n: int, seed: int, labeled: bool) -> list[bytes]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).round(4)
    y = (X @ np.array([1.0, -1.0, 0.5, 0.0, 2.0]) + rng.normal(size=n) > 0).astype(int)
    colors = rng.choice(["red", "green", "blue", "grey"], n).tolist()
    out = []
    for row, label, color in zip(X.tolist(), y.tolist(), colors, strict=True):
        event: dict[str, Any] = {f"x{i}": v for i, v in enumerate(row)} | {"color": color}
        if labeled:
            event["y"] = label
        out.append(orjson.dumps(event))
    return out


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    sink = KafkaSink(bootstrap, topic)
    sink.write([OutRecord(None, v) for v in values])
    sink.flush(120)
    sink.close()


def write_spec(
    path: Path,
    name: str,
    bootstrap: str,
    database: str,
    topics: dict[str, str],
    source_config: dict[str, Any],
    processing: str = "at_least_once",
    predictions_topic: str | None = None,
) -> None:
    outputs: dict[str, Any] = {"database": database}
    if predictions_topic is not None:
        outputs["predictions_topic"] = predictions_topic
    spec = {
        "name": name,
        "source": {
            "kind": "kafka",
            "bootstrap_servers": bootstrap,
            "group_id": f"{name}_g",
            "config": source_config,
        },
        "topics": topics,
        "target": "y",
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        "evaluation": {"interval_events": 10_000},
        "outputs": outputs,
        "processing": processing,
        "batch": {"max_records": 500, "timeout": 0.2},
        "learning": {"block_events": 1000},
        "checkpoint": {"interval_events": 10_000, "interval_seconds": 1.0},
    }
    path.write_text(orjson.dumps(spec).decode())  # JSON is YAML


def rss_kb(pid: int) -> int | None:
    """The resident set size of process ``pid`` in kB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


def count_rows(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------- tests


def test_postgres_outage_mid_run(
    kafka_bootstrap: str,
    pg_server: PostgresServer,
    pg_database: str,
    tmp_path: Path,
    unique_name: str,
) -> None:
    """PostgreSQL stopped for 30 s mid-run and started again: the run completes with nothing
    lost, and memory stayed bounded meanwhile."""
    run_through_outage(kafka_bootstrap, pg_database, pg_server, tmp_path, unique_name, 30.0, {})


def test_postgres_outage_longer_than_max_poll_interval(
    kafka_bootstrap: str,
    pg_server: PostgresServer,
    pg_database: str,
    tmp_path: Path,
    unique_name: str,
) -> None:
    """The same, with the database down longer than the consumer may go without polling (its
    limit lowered from 5 minutes to 10 s): the worker must stay in its group while it waits
    (``KafkaSource.keepalive``), then resume by itself."""
    config = {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 10_000,
    }
    log = run_through_outage(
        kafka_bootstrap, pg_database, pg_server, tmp_path, unique_name, 20.0, config
    )
    assert "maximum poll interval" not in log, f"the group dropped the worker:\n{log[-4000:]}"


def run_through_outage(
    kafka_bootstrap: str,
    database: str,
    pg_server: PostgresServer,
    tmp_path: Path,
    name: str,
    outage_seconds: float,
    source_config: dict[str, Any],
) -> str:
    """Run a pipeline, stop the server ``outage_seconds`` once results come, check it all;
    return the worker's log."""
    topics = {"train": f"{name}_train", "score": f"{name}_score"}
    create_topics(kafka_bootstrap, list(topics.values()))
    try:
        return _run_through_outage(
            kafka_bootstrap,
            database,
            pg_server,
            tmp_path,
            name,
            topics,
            outage_seconds,
            source_config,
        )
    finally:
        delete_topics(kafka_bootstrap, list(topics.values()))


def _run_through_outage(
    kafka_bootstrap: str,
    database: str,
    pg_server: PostgresServer,
    tmp_path: Path,
    name: str,
    topics: dict[str, str],
    outage_seconds: float,
    source_config: dict[str, Any],
) -> str:
    train = events(TRAIN_EVENTS, 1, labeled=True)
    score = events(SCORE_EVENTS, 2, labeled=False)
    produce(kafka_bootstrap, topics["train"], train[:TRAIN_BEFORE])
    produce(kafka_bootstrap, topics["score"], score[:SCORE_BEFORE])

    spec, log_path = tmp_path / "spec.json", tmp_path / "worker.log"
    write_spec(spec, name, kafka_bootstrap, database, topics, source_config)
    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", "run"]
    with log_path.open("wb") as stderr:
        worker = subprocess.Popen(
            [*command, str(spec), "--stop-when-idle", "8"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

    def log_text() -> str:
        return log_path.read_text(errors="replace")

    results = f"{name}_results"
    stopped_at = restarted_at = 0.0
    rss_before = 0
    samples: list[int] = []
    try:
        # Wait until the worker is well into the stream: some results written.
        deadline = time.monotonic() + 120
        while count_rows(database, results) == 0:
            assert worker.poll() is None, f"the worker ended early:\n{log_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no results after 120 s:\n{log_text()[-4000:]}"
            time.sleep(0.2)
        before = rss_kb(worker.pid)
        assert before is not None, f"the worker ended early:\n{log_text()[-4000:]}"
        rss_before = before

        try:
            pg_server.stop()
            stopped_at = time.monotonic()
            # The stream goes on while the database is down.
            produce(kafka_bootstrap, topics["train"], train[TRAIN_BEFORE:])
            produce(kafka_bootstrap, topics["score"], score[SCORE_BEFORE:])
            while time.monotonic() - stopped_at < outage_seconds:
                rss = rss_kb(worker.pid)
                assert rss is not None and worker.poll() is None, (
                    f"the worker died during the outage:\n{log_text()[-4000:]}"
                )
                samples.append(rss)
                time.sleep(0.5)
        finally:
            pg_server.start()  # never leave the server down, whatever happened
            restarted_at = time.monotonic()
            pg_server.wait_ready(database)

        code = worker.wait(timeout=300)
        exited_at = time.monotonic()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)

    log = log_text()
    assert code == 0, f"the worker exited with {code}:\n{log[-4000:]}"

    pauses = [line for line in log.splitlines() if PAUSING.search(line)]
    backs = [BACK.search(line) for line in log.splitlines()]
    resumed = [(m.group(1), float(m.group(2))) for m in backs if m]
    peak = max(samples)
    print(
        f"\nRSS before the outage {rss_before / 1024:.0f} MB, peak during it "
        f"{peak / 1024:.0f} MB ({len(samples)} samples); "
        f"pauses: {len(pauses)}; resumed: {resumed}; "
        f"exit {exited_at - restarted_at:.1f} s after the restart"
    )
    assert pauses, f"no 'pausing' line in the log:\n{log[-4000:]}"
    assert resumed, f"no 'back after' line in the log:\n{log[-4000:]}"
    assert max(s for _, s in resumed) >= outage_seconds * 0.8, resumed
    assert peak <= RSS_FACTOR * rss_before + RSS_SLACK_KB, (
        f"RSS grew from {rss_before} kB to {peak} kB while the database was down: {samples}"
    )

    with Store(database, name) as store, store.engine.connect() as conn:
        n, distinct, low, high = conn.exec_driver_sql(
            f"SELECT count(*), count(DISTINCT source_offset), min(source_offset), "
            f"max(source_offset) FROM {results}"
        ).one()
        topics_seen = {
            r[0] for r in conn.exec_driver_sql(f"SELECT DISTINCT source_topic FROM {results}")
        }
        learned = conn.exec_driver_sql(
            f"SELECT max(events_seen) FROM {name}_training WHERE model = 'logistic'"
        ).scalar_one()
        checkpoint = store.load_checkpoint()
    assert (n, distinct, low, high) == (SCORE_EVENTS, SCORE_EVENTS, 0, SCORE_EVENTS - 1)
    assert topics_seen == {topics["score"]}
    assert learned == TRAIN_EVENTS
    assert checkpoint is not None
    assert checkpoint.offsets == {
        (topics["train"], 0): TRAIN_EVENTS,
        (topics["score"], 0): SCORE_EVENTS,
    }
    return log


# ------------------------------------------------------------------------ the broker's outage

BROKER_TRAIN, BROKER_SCORE = 60_000, 6_000
#: the stream is produced in this many chunks, one every PRODUCE_SECONDS / CHUNKS seconds
CHUNKS, PRODUCE_SECONDS = 200, 50.0
BROKER_OUTAGE_SECONDS = 20.0
#: the step the outage caught the worker in comes first: polling, flushing outputs, committing
#: the Kafka transaction...; then what it waits for
BROKER_PAUSING = re.compile(
    r"WARNING streamfit\.worker: .*(broker|Kafka).*pausing and retrying until it is back"
)


class OwnBroker:
    """A Kafka broker of the test's own (``scripts/kafka``), stopped and started again on the
    same port and data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bootstrap = ""

    def _script(self, *args: str, timeout: float) -> str:
        done = subprocess.run(
            [str(KAFKA_SCRIPT), *args, "--dir", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"scripts/kafka {args[0]} failed: {done.stderr[-4000:]}")
        return done.stdout.strip()

    def start(self) -> None:
        port = ["--port", self.bootstrap.rsplit(":", 1)[1]] if self.bootstrap else []
        started = self._script("start", *port, timeout=240).splitlines()[-1]
        assert not self.bootstrap or started == self.bootstrap, (started, self.bootstrap)
        self.bootstrap = started

    def stop(self) -> None:
        self._script("stop", timeout=120)


KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka"


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    """A broker for this module's tests alone (they stop it): never the shared one."""
    if shutil.which("java") is None:
        _cannot("no java: cannot start a Kafka broker of the test's own")
    broker = OwnBroker(tmp_path_factory.mktemp("own_kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class PacedProducer(threading.Thread):
    """Produces ``train`` and ``score`` in ``CHUNKS`` interleaved chunks over
    ``PRODUCE_SECONDS``, whatever the broker's state: while it is down the records wait in the
    client (``message.timeout.ms`` 0: no timeout) and go once it is back."""

    def __init__(
        self, bootstrap: str, topics: dict[str, str], train: list[bytes], score: list[bytes]
    ):
        super().__init__(daemon=True)
        self.bootstrap, self.topics, self.train, self.score = bootstrap, topics, train, score
        self.produced = 0
        self.failures: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:
            self.error = exc

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failures.append(err.str())

    def _produce(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "message.timeout.ms": 0,
                "linger.ms": 5,
                "on_delivery": self._delivered,
                "log_level": 0,  # not every failed reconnection while the broker is away
            }
        )
        started = time.monotonic()
        train_step, score_step = len(self.train) // CHUNKS, len(self.score) // CHUNKS
        for chunk in range(CHUNKS):
            ahead = started + chunk * PRODUCE_SECONDS / CHUNKS - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            for role, values, step in (
                ("train", self.train, train_step),
                ("score", self.score, score_step),
            ):
                for value in values[chunk * step : (chunk + 1) * step]:
                    producer.produce(self.topics[role], value)
                self.produced += step
            producer.poll(0)
        remaining = producer.flush(300)
        assert remaining == 0, f"{remaining} events not delivered after 300 s"


def checkpointed(database: str) -> int:
    """How many input events the checkpoints table says were handled (0 before the first)."""
    path = database.removeprefix("sqlite:///")
    if not Path(path).exists():
        return 0
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        try:
            (done,) = conn.execute(
                "SELECT COALESCE(SUM(next_offset), 0) FROM checkpoints"
            ).fetchone()
        except sqlite3.OperationalError:  # the tables are not there yet
            return 0
    return int(done)


def read_committed(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """Every record of ``topic`` a ``read_committed`` consumer sees."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}_reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    idle_since = time.monotonic()
    # past the expected count, wait a while longer for duplicates
    while time.monotonic() - idle_since < 5 or len(out) < expected:
        assert time.monotonic() < deadline, f"{len(out)} of {expected} predictions after 120 s"
        messages = consumer.consume(5000, 1.0)
        if messages:
            idle_since = time.monotonic()
        out.extend(orjson.loads(m.value() or b"") for m in messages if m.error() is None)
    consumer.close()
    return out


@pytest.mark.parametrize("processing", ["at_least_once", "exactly_once"])
def test_broker_outage_under_load(
    own_broker: OwnBroker, tmp_path: Path, unique_name: str, processing: str
) -> None:
    """The broker stopped for 20 s and started again while events flow (they are produced all
    along): the worker says it pauses for the broker, resumes by itself, and ends with every
    score event in the results exactly once and every train event learned; under
    ``exactly_once`` a ``read_committed`` reader sees each prediction once, under
    ``at_least_once`` at least once."""
    bootstrap = own_broker.bootstrap
    topics = {"train": f"{unique_name}_train", "score": f"{unique_name}_score"}
    predictions = f"{unique_name}_out"
    create_topics(bootstrap, [*topics.values(), predictions])
    database = f"sqlite:///{tmp_path / 'outage.db'}"
    spec, log_path = tmp_path / "spec.json", tmp_path / "worker.log"
    # a session shorter than the outage: the group drops the worker meanwhile, and it rejoins
    config = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    write_spec(spec, unique_name, bootstrap, database, topics, config, processing, predictions)
    train = events(BROKER_TRAIN, 3, labeled=True)
    score = events(BROKER_SCORE, 4, labeled=False)
    producer = PacedProducer(bootstrap, topics, train, score)
    producer.start()

    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", "run"]
    with log_path.open("wb") as stderr:
        worker = subprocess.Popen(
            [*command, str(spec)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # a worker that hangs prints where (SIGABRT below) before it is killed
            env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONFAULTHANDLER": "1"},
        )

    def log_text() -> str:
        return log_path.read_text(errors="replace")

    total = BROKER_TRAIN + BROKER_SCORE
    try:
        # the outage starts once the worker has checkpointed a fifth of the stream
        deadline = time.monotonic() + 120
        while checkpointed(database) < total // 5:
            assert worker.poll() is None, f"the worker ended early:\n{log_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no progress in 120 s:\n{log_text()[-4000:]}"
            time.sleep(0.1)
        produced_before = producer.produced
        try:
            own_broker.stop()
            stopped_at = time.monotonic()
            while time.monotonic() - stopped_at < BROKER_OUTAGE_SECONDS:
                assert worker.poll() is None, (
                    f"the worker died during the outage:\n{log_text()[-4000:]}"
                )
                time.sleep(0.5)
        finally:
            own_broker.start()  # never leave it down, whatever happened
        produced_during = producer.produced - produced_before
        producer.join(timeout=360)
        assert not producer.is_alive() and producer.error is None, producer.error
        assert not producer.failures, producer.failures[:5]
        # the worker is done once its checkpoint reaches the end of both topics
        deadline = time.monotonic() + 300
        while checkpointed(database) < total:
            assert worker.poll() is None, f"the worker ended early:\n{log_text()[-6000:]}"
            assert time.monotonic() < deadline, f"stuck short of the end:\n{log_text()[-6000:]}"
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGABRT)
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=30)

    log = log_text()
    assert code == 0, f"the worker exited with {code}:\n{log[-6000:]}"
    assert produced_during > 0, "no events were produced while the broker was down"
    pauses = [line for line in log.splitlines() if BROKER_PAUSING.search(line)]
    resumed = [(m.group(1), float(m.group(2))) for m in map(BACK.search, log.splitlines()) if m]
    print(
        f"\n{processing}: {produced_during} events produced during the outage; "
        f"pauses: {pauses}; resumed: {resumed}"
    )
    assert pauses, f"no 'broker unavailable ... pausing' line in the log:\n{log[-6000:]}"
    assert resumed, f"no 'back after' line in the log:\n{log[-6000:]}"

    name = unique_name
    with Store(database, name) as store, store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT source_topic, source_offset FROM {name}_results").all()
        learned = conn.exec_driver_sql(
            f"SELECT max(events_seen) FROM {name}_training WHERE model = 'logistic'"
        ).scalar_one()
        checkpoint = store.load_checkpoint()
    assert {topic for topic, _ in rows} == {topics["score"]}
    offsets = sorted(offset for _, offset in rows)
    assert offsets == list(range(BROKER_SCORE)), "results lost or duplicated"
    assert learned == BROKER_TRAIN
    assert checkpoint is not None
    assert checkpoint.offsets == {
        (topics["train"], 0): BROKER_TRAIN,
        (topics["score"], 0): BROKER_SCORE,
    }

    if processing == "exactly_once":
        seen = read_committed(bootstrap, predictions, BROKER_SCORE)
        counts = Counter(p["offset"] for p in seen)
        assert sorted(counts) == list(range(BROKER_SCORE)), "predictions lost"
        assert max(counts.values()) == 1, f"{sum(counts.values()) - BROKER_SCORE} duplicates"
    else:
        seen = read_committed(bootstrap, predictions, BROKER_SCORE)
        counts = Counter(p["offset"] for p in seen)
        assert sorted(counts) == list(range(BROKER_SCORE)), "predictions lost"
        print(f"at_least_once: {sum(counts.values()) - BROKER_SCORE} duplicate predictions")
