"""Where every command finds its broker: the address given, STREAMFIT_KAFKA_BOOTSTRAP, the
running local broker of `streamfit kafka start`, then 127.0.0.1:9092."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamfit.streams.local_kafka import find_bootstrap, kafka_script, running_bootstrap


@pytest.fixture
def broker_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory as scripts/kafka leaves it, with a live process whose command line is a
    broker's (``kafka.Kafka``)."""
    code = "import time; print('ready', flush=True); time.sleep(120)"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "kafka.Kafka", "server.properties"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"  # running
    (tmp_path / "broker.pid").write_text(f"{process.pid}\n")
    (tmp_path / "bootstrap").write_text("127.0.0.1:24680\n")
    try:
        yield tmp_path
    finally:
        process.kill()
        process.communicate()


def test_the_order_of_the_places_a_broker_is_found(
    broker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFIT_KAFKA_DIR", str(broker_dir))
    monkeypatch.setenv("STREAMFIT_KAFKA_BOOTSTRAP", "10.1.1.1:9092")
    assert find_bootstrap("kafka-1:9092").bootstrap == "kafka-1:9092"
    found = find_bootstrap(None)
    assert (found.bootstrap, found.origin) == ("10.1.1.1:9092", "STREAMFIT_KAFKA_BOOTSTRAP")
    monkeypatch.delenv("STREAMFIT_KAFKA_BOOTSTRAP")
    found = find_bootstrap(None)
    assert (found.bootstrap, found.origin) == ("127.0.0.1:24680", "local broker")
    assert "streamfit kafka start" in found.describe()


def test_a_stopped_or_foreign_process_is_no_broker(broker_dir: Path, tmp_path: Path) -> None:
    assert running_bootstrap(broker_dir) == "127.0.0.1:24680"
    (broker_dir / "broker.pid").write_text("1\n")  # alive, but not a Kafka broker
    assert running_bootstrap(broker_dir) is None
    empty = tmp_path / "none"
    assert running_bootstrap(empty) is None
    found = find_bootstrap(None, environment="", directory=empty)
    assert (found.bootstrap, found.origin) == ("127.0.0.1:9092", "default")


def test_the_script_is_found() -> None:
    assert kafka_script().name == "kafka"
