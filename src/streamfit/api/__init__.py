"""The REST API (FastAPI), its Prometheus metrics and the dashboard it serves.

``streamfit serve SPEC...`` serves pipelines from their stores (``sources.StoreSource``);
``streamfit run SPEC --serve PORT`` from the running worker (``sources.LiveSource``). Layout:

================  ==========================================================================
``app``           the FastAPI application: routes, keys, limits, error bodies
``schemas``       the pydantic bodies and responses
``sources``       a pipeline as the API sees it: live from a worker, or from the store
``serving``       the featurizer and models predictions use (copies no other thread changes)
``reads``         the queries over a pipeline's tables
``security``      API keys and their rights
``prometheus``    ``/metrics``
``server``        uvicorn, in the foreground or on a thread beside a worker
================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from streamfit.api.sources import LiveSource, PipelineSource

__all__ = ["LiveServer", "build_app", "serve_live"]


def build_app(sources: Sequence[PipelineSource], api_keys: str | Path | None = None) -> FastAPI:
    """The application over ``sources``, with the keys of the environment and of the key
    file ``api_keys`` (``streamfit.api.security``)."""
    from streamfit.api.app import create_app
    from streamfit.api.security import keyed_reads_from_environment, keys_from_environment

    return create_app(
        sources,
        keys=keys_from_environment(api_keys),
        keyed_reads=keyed_reads_from_environment(),
    )


@dataclass
class LiveServer:
    """The API served from a running worker: its source (give the worker's ``on_batch`` to
    ``source.on_batch``) and its address."""

    source: LiveSource
    url: str


@contextmanager
def serve_live(
    target: Any, address: str, api_keys: str | Path | None = None, broker: Any = None
) -> Iterator[LiveServer]:
    """Serve ``target`` (a ``streamfit.Pipeline``, or a ``Worker`` with its in-process
    ``broker``) on ``address`` (``[HOST:]PORT``) on a thread, until the block ends."""
    from streamfit.api.server import ServerThread, parse_address
    from streamfit.api.sources import LiveSource

    if hasattr(target, "worker"):
        source = LiveSource.of_pipeline(target)
    else:
        send = None
        if broker is not None:

            def send(topic: str, values: list[bytes]) -> int:
                broker.append(topic, values)
                return len(values)

        source = LiveSource(target, broker=broker, send=send)
    host, port = parse_address(address)
    server = ServerThread(build_app([source], api_keys), host, port)
    source.running = True
    try:
        server.start()
        yield LiveServer(source, server.url)
    finally:
        source.running = False
        server.stop()
        source.close()
