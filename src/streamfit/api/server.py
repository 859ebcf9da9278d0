"""Running the application under uvicorn: in the foreground (``streamfit serve``) or on a
thread beside a worker (``streamfit run --serve``, ``streamfit demo --serve``).

On a thread, uvicorn installs no signal handlers (only the main thread may): the command's own
SIGINT/SIGTERM handling stops the worker, then ``ServerThread.stop`` the server.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from streamfit.errors import StreamfitError

__all__ = ["ServerThread", "parse_address", "serve_forever"]

log = logging.getLogger("streamfit.api")


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` as (host, port); the host defaults to loopback.

    >>> parse_address("8000"), parse_address("0.0.0.0:9000"), parse_address("[::1]:80")
    (('127.0.0.1', 8000), ('0.0.0.0', 9000), ('::1', 80))
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise StreamfitError(f"not an address [HOST:]PORT: {text!r}") from None
    if not 0 <= number <= 65535:
        raise StreamfitError(f"not a port: {number}")
    return host, number


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve_forever(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    uvicorn.Server(_config(app, host, port)).run()


class ServerThread:
    """The application served on a daemon thread; ``start`` returns once it listens."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.server = uvicorn.Server(_config(app, host, port))
        self.host = host
        self.thread = threading.Thread(target=self.server.run, name="streamfit-api", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0)."""
        for server in getattr(self.server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    @property
    def url(self) -> str:
        return url_of(self.host, self.port)

    def start(self, timeout: float = 30.0) -> ServerThread:
        _check_free(self.host, self.server.config.port)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise StreamfitError(f"the API could not start on {self.host}")
            if time.monotonic() > deadline:
                raise StreamfitError(f"the API did not start within {timeout:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _check_free(host: str, port: int) -> None:
    """Fail with a clear message when ``port`` is taken (uvicorn would only log it)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StreamfitError(f"cannot serve on {host}:{port}: {exc.strerror}") from exc
