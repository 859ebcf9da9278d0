"""What the API tests share: a small pipeline run to its end into a database, and the
``streamfit serve`` / ``streamfit run --serve`` processes, waited on by their state."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.integration.support import wait_until, write_spec

WRITE_KEY = "test-writer-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789ab"
READ_ONLY_KEY = "test-reader-key-0123456789"
KEYS = f"{WRITE_KEY}:predict+events,{ADMIN_KEY},{READ_ONLY_KEY}:read"


def rows(n: int, seed: int, labeled: bool = True) -> list[dict[str, Any]]:
    """Events with three numeric fields, a category, and ``y`` from a logistic model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    colors = rng.choice(["red", "green", "blue"], size=n)
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + (colors == "red")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    out = []
    for i in range(n):
        row: dict[str, Any] = {f"x{j}": round(float(x[i, j]), 4) for j in range(3)}
        row["color"] = str(colors[i])
        if labeled:
            row["y"] = int(y[i])
        out.append(row)
    return out


def spec_dict(name: str, database: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "memory"},
        "topics": {"train": f"{name}_train", "score": f"{name}_score"},
        "target": "y",
        "classes": [0, 1],
        "models": [
            {"name": "lr", "builtin": "logistic_regression"},
            {"name": "binned", "builtin": "binned_logistic_regression"},
        ],
        # metrics rows every 200 events only, however slow the machine
        "evaluation": {"window": 200, "interval_events": 200, "interval_seconds": 3600},
        "learning": {"block_events": 100},
        "batch": {"max_records": 100, "timeout": 0.2},
        "outputs": {"database": database},
        **extra,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A ``streamfit`` process serving the API, and a client for it."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


@contextmanager
def streamfit_serving(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``streamfit ARGS`` (a command serving on ``--port``/``--serve``), until /health
    answers; stopped with SIGTERM at the end."""
    port = free_port()
    args = [*args, "--port", str(port)] if args[0] == "serve" else [*args, "--serve", str(port)]
    command = [sys.executable, "-m", "streamfit.cli.main", "--log-level", "INFO", *args]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env={
                **os.environ,
                "PYTHONWARNINGS": "ignore",
                "STREAMFIT_API_KEYS": KEYS,
                **(env or {}),
            },
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, f"streamfit {args[0]} exited\n{server.tail()}"
            try:
                return httpx.get(f"{server.url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, f"streamfit {args[0]} answering on port {port}", timeout=120)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_pipeline_spec(path: Path, spec: dict[str, Any]) -> Path:
    return write_spec(path, spec)
