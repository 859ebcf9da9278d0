"""Fixtures shared by every test: real services, unique names.

Services come from the environment when it names them, else (Kafka only) are started here:

- ``STREAMFIT_TEST_KAFKA``: bootstrap of an existing broker. Unset: ``scripts/kafka`` fetches
  the broker's jars (once, cached) and starts a throwaway single-node broker for the session.
- ``STREAMFIT_TEST_POSTGRES``, ``STREAMFIT_TEST_MYSQL``: SQLAlchemy URLs, e.g.
  ``postgresql+psycopg://streamfit:streamfit@127.0.0.1:5432/streamfit`` and
  ``mysql+pymysql://streamfit:streamfit@127.0.0.1:3306/streamfit`` (``.ci/run`` starts both).

A missing service skips the tests that need it, except under CI (env ``CI`` set), where it fails
them. Tests that use ``kafka_bootstrap``, ``postgres_url`` or ``mysql_url`` are marked
``integration`` automatically (``pytest -m "not integration"`` runs the fast ones only).

``database_url`` runs a test once per database (SQLite, PostgreSQL, MySQL/MariaDB), each time in
a schema of its own that is dropped afterwards, so table names need not be unique.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"

_SERVICE_FIXTURES = frozenset({"kafka_bootstrap", "kafka_topic", "postgres_url", "mysql_url"})


def in_ci() -> bool:
    """True when running under CI (env ``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def service_missing(message: str) -> NoReturn:
    """Skip the test locally; fail it in CI, where every service must be there."""
    if in_ci():
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------------------------ names


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A fresh name usable as a topic, consumer group, pipeline, table or schema name.

    Lower case letters, digits and ``_``, at most 36 characters: ``sf_<test name>_<8 hex>``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:24].rstrip("_")
    return f"sf_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _reap_worker_processes() -> Iterator[None]:
    """No worker process a test started outlives it, whatever the test's outcome."""
    yield
    from tests.integration.support import reap_workers

    reap_workers()


# ------------------------------------------------------------------------------------ Kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker, for the whole session."""
    existing = os.environ.get("STREAMFIT_TEST_KAFKA", "").strip()
    if existing:
        yield existing
        return
    if shutil.which("java") is None or shutil.which("mvn") is None:
        service_missing("no Kafka broker: set STREAMFIT_TEST_KAFKA, or install java and mvn")
    directory = tmp_path_factory.mktemp("kafka")
    _run_kafka_script("fetch", timeout=900)
    started = _run_kafka_script("start", "--dir", str(directory), timeout=240)
    bootstrap = started.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        _run_kafka_script("stop", "--dir", str(directory), timeout=120)


def _run_kafka_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            [str(KAFKA_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/kafka {' '.join(args)} timed out after {timeout}s: {exc.stderr!r}")
    if done.returncode != 0:
        pytest.fail(
            f"scripts/kafka {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return done


@pytest.fixture
def kafka_topic(kafka_bootstrap: str, unique_name: str) -> Iterator[str]:
    """A new single-partition topic (named like ``unique_name``), deleted afterwards."""
    from streamfit.streams.kafka import create_topics, delete_topics

    create_topics(kafka_bootstrap, [unique_name], partitions=1)
    yield unique_name
    delete_topics(kafka_bootstrap, [unique_name])


# -------------------------------------------------------------------------------- databases


def _server_url(variable: str, what: str) -> str:
    url = os.environ.get(variable, "").strip()
    if not url:
        service_missing(f"no {what}: set {variable} to its SQLAlchemy URL")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a real PostgreSQL database (``STREAMFIT_TEST_POSTGRES``)."""
    return _server_url("STREAMFIT_TEST_POSTGRES", "PostgreSQL server")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """SQLAlchemy URL of a real MySQL/MariaDB database (``STREAMFIT_TEST_MYSQL``)."""
    return _server_url("STREAMFIT_TEST_MYSQL", "MySQL/MariaDB server")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.integration),
        pytest.param("mysql", marks=pytest.mark.integration),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database, once for each of SQLite, PostgreSQL and MySQL.

    The server databases get a schema of their own (PostgreSQL: a schema first on the
    ``search_path``; MySQL: a database), dropped after the test.
    """
    kind: str = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'streamfit.db'}"
        return
    url = request.getfixturevalue(f"{kind}_url")
    yield from _isolated(kind, url, unique_name)


def _isolated(kind: str, url: str, schema: str) -> Iterator[str]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    base = sa.make_url(url)
    engine = sa.create_engine(base, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE `{schema}`"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"cannot reach the {kind} server at {base!r}: {exc}", pytrace=False)
    if kind == "postgres":
        options = base.query.get("options", "")
        isolated = base.update_query_dict({"options": f"{options} -csearch_path={schema}".strip()})
    else:
        isolated = base.set(database=schema)
    try:
        yield isolated.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            if kind == "postgres":
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{schema}`"))
        engine.dispose()
