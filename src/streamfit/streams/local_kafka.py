"""The local Apache Kafka broker of ``streamfit kafka start``, and where every command finds
a broker.

``start``, ``stop`` and ``status`` drive ``scripts/kafka`` (shipped inside the package as
well), with the broker's files in one directory per user: ``STREAMFIT_KAFKA_DIR``, else
``$XDG_STATE_HOME/streamfit/kafka`` (``~/.local/state/streamfit/kafka``). The broker listens on
127.0.0.1:9092 unless another program holds that port; it then takes a free one and says so.

``find_bootstrap`` answers "which broker?" for every command, in this order:

1. the address given for this run: the spec's ``source.bootstrap_servers``, or a command's
   ``--bootstrap``;
2. the environment variable ``STREAMFIT_KAFKA_BOOTSTRAP``;
3. the broker that ``streamfit kafka start`` runs, when it runs;
4. ``127.0.0.1:9092``.

>>> find_bootstrap("kafka-1:9092", environment=None, directory=None).origin
'given'
>>> found = find_bootstrap(None, environment="10.0.0.5:9092", directory=None)
>>> found.bootstrap, found.origin
('10.0.0.5:9092', 'STREAMFIT_KAFKA_BOOTSTRAP')
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamfit.errors import StreamError

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_PORT",
    "BrokerAddress",
    "LocalBroker",
    "broker_dir",
    "find_bootstrap",
    "jars_fetched",
    "kafka_script",
    "running_bootstrap",
]

DEFAULT_PORT = 9092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_PORT}"

Origin = Literal["given", "STREAMFIT_KAFKA_BOOTSTRAP", "local broker", "default"]

_ORIGIN_TEXT: dict[str, str] = {
    "given": "given for this run",
    "STREAMFIT_KAFKA_BOOTSTRAP": "from STREAMFIT_KAFKA_BOOTSTRAP",
    "local broker": "the local broker of streamfit kafka start",
    "default": "the default: no broker named, and no local broker of streamfit kafka start",
}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A bootstrap address and where it came from (see the module docstring)."""

    bootstrap: str
    origin: Origin

    def describe(self) -> str:
        """``127.0.0.1:9092 (the local broker of streamfit kafka start)``."""
        return f"{self.bootstrap} ({_ORIGIN_TEXT[self.origin]})"


def broker_dir(directory: str | Path | None = None) -> Path:
    """The local broker's directory: ``directory``, else ``STREAMFIT_KAFKA_DIR``, else
    ``$XDG_STATE_HOME/streamfit/kafka``."""
    if directory:
        return Path(directory).expanduser()
    named = os.environ.get("STREAMFIT_KAFKA_DIR", "").strip()
    if named:
        return Path(named).expanduser()
    state = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return Path(state) / "streamfit" / "kafka"


def running_bootstrap(directory: str | Path | None = None) -> str | None:
    """The bootstrap of the local broker in ``directory`` if it runs, else ``None``.

    >>> running_bootstrap("/nonexistent/streamfit-kafka") is None
    True
    """
    where = broker_dir(directory)
    try:
        pid = int((where / "broker.pid").read_text().strip())
        bootstrap = (where / "bootstrap").read_text().strip()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if b"kafka.Kafka" not in command or not bootstrap:
        return None
    return bootstrap


def find_bootstrap(
    given: str | None,
    environment: str | None = None,
    directory: str | Path | None = None,
) -> BrokerAddress:
    """Which broker a command talks to (the order is in the module docstring).

    ``environment`` is ``STREAMFIT_KAFKA_BOOTSTRAP``'s value (read from the process's
    environment when not given); ``directory`` the local broker's (``broker_dir``).
    """
    if given and given.strip():
        return BrokerAddress(given.strip(), "given")
    if environment is None:
        environment = os.environ.get("STREAMFIT_KAFKA_BOOTSTRAP")
    if environment and environment.strip():
        return BrokerAddress(environment.strip(), "STREAMFIT_KAFKA_BOOTSTRAP")
    local = running_bootstrap(directory)
    if local:
        return BrokerAddress(local, "local broker")
    return BrokerAddress(DEFAULT_BOOTSTRAP, "default")


def kafka_script() -> Path:
    """``scripts/kafka``: inside an installed package, else in the source tree."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_kafka" / "kafka", package.parent.parent / "scripts" / "kafka"):
        if candidate.is_file():
            return candidate
    raise StreamError("scripts/kafka is missing from this installation of streamfit")


@dataclass(frozen=True, slots=True)
class LocalBroker:
    """What ``start`` did: where the broker listens, and the port it was asked for."""

    bootstrap: str
    directory: Path
    wanted_port: int | None
    already_running: bool

    @property
    def port(self) -> int:
        return int(self.bootstrap.rpartition(":")[2])

    @property
    def moved(self) -> bool:
        """True when the broker could not have the port it was asked for."""
        return self.wanted_port is not None and self.port != self.wanted_port

    @classmethod
    def start(
        cls,
        port: int | None = DEFAULT_PORT,
        directory: str | Path | None = None,
        *,
        strict: bool = False,
        fresh: bool = False,
        timeout: float = 900.0,
    ) -> LocalBroker:
        """Start the local broker (fetching its jars the first time) or find it running.

        ``port`` is taken when free; if not, another port unless ``strict``.
        """
        where = broker_dir(directory)
        running = running_bootstrap(where)
        if running:
            return cls(running, where, port, already_running=True)
        where.mkdir(parents=True, exist_ok=True)
        args = ["start", "--dir", str(where)]
        if port is not None:
            args += ["--port" if strict else "--prefer-port", str(port)]
        if fresh:
            args.append("--fresh")
        done = _script(args, timeout)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise StreamError(
                f"the local Kafka broker did not start:\n{done.stderr.strip()[-3000:]}"
            )
        return cls(lines[-1].strip(), where, port, already_running=False)

    @staticmethod
    def stop(directory: str | Path | None = None, timeout: float = 120.0) -> bool:
        """Stop the local broker; False if none was running."""
        where = broker_dir(directory)
        was_running = running_bootstrap(where) is not None
        if where.is_dir():
            done = _script(["stop", "--dir", str(where)], timeout)
            if done.returncode != 0:
                raise StreamError(f"stopping the local Kafka broker failed: {done.stderr.strip()}")
        return was_running


def jars_fetched() -> bool:
    """Whether the broker's jars are in the cache already (else ``start`` fetches them)."""
    text = kafka_script().read_text()
    version = re.search(r"^KAFKA_VERSION=(\S+)", text, re.M)
    cache = Path(os.environ.get("STREAMFIT_CACHE") or Path.home() / ".cache" / "streamfit")
    return version is not None and (cache / f"kafka-{version[1]}" / "libs" / ".complete").exists()


def _script(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", str(kafka_script()), *args],  # an installed copy may lose its x bit
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise StreamError(f"scripts/kafka {args[0]} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise StreamError(f"cannot run scripts/kafka: {exc}") from exc
