"""The programs the serving suite starts as processes of their own.

``floor PORT``: a bare FastAPI endpoint under uvicorn that reads the request body and returns
a constant, at the path of ``/predict`` (what HTTP, uvicorn and FastAPI cost alone).

``load URL``: an open-loop load generator. Request ``i`` is due at ``start + i / rate``,
whether or not the answers before it came; its latency runs from when it was due (so a
server or a generator that falls behind shows in the latency, instead of slowing the load).
Prints one JSON object: requests, errors, latency quantiles in ms, the rate achieved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response


def floor(port: int) -> None:
    import uvicorn

    app = FastAPI()
    constant = b'{"model":"constant","version":0,"predictions":[{"prediction":1}]}'

    @app.post("/v1/pipelines/{name}/predict")
    async def predict(name: str, request: Request) -> Response:
        await request.body()
        return Response(constant, media_type="application/json")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _load(
    url: str, body: bytes, key: str, rate: float, seconds: float, warmup: float
) -> dict[str, Any]:
    """Open-loop load over ``connections`` keep-alive HTTP/1.1 connections, spoken directly
    over asyncio streams (an HTTP client library's per-request bookkeeping would make the
    generator, not the server, the bottleneck on two cores)."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    request = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nX-API-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = int(rate * (seconds + warmup))
    first_counted = int(rate * warmup)
    due_latency = np.full(total, np.nan)
    send_latency = np.full(total, np.nan)
    status = np.zeros(total, dtype=np.int32)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                i, due = item
                sent = loop.time()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                done = loop.time()
                status[i] = int(head[9:12])
                due_latency[i] = done - due
                send_latency[i] = done - sent
        finally:
            writer.close()

    connections = [asyncio.create_task(connection()) for _ in range(32)]
    start = loop.time() + 0.2
    for i in range(total):
        due = start + i / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((i, due))
    for _ in connections:
        queue.put_nowait(None)
    await asyncio.gather(*connections)
    elapsed = loop.time() - (start + warmup)
    counted = slice(first_counted, total)
    ok = status[counted] == 200
    due_ms = due_latency[counted][ok] * 1e3
    send_ms = send_latency[counted][ok] * 1e3
    requests = total - first_counted

    def q(values: np.ndarray[Any, Any], p: float) -> float | None:
        return round(float(np.quantile(values, p)), 3) if len(values) else None

    return {
        "rate": rate,
        "seconds": seconds,
        "requests": requests,
        "requests_sent": total,  # with the warm-up's
        "errors": int(requests - ok.sum()),
        "achieved_rps": round(float(ok.sum()) / max(elapsed, 1e-9), 1),
        "p50_ms": q(due_ms, 0.5),
        "p90_ms": q(due_ms, 0.9),
        "p99_ms": q(due_ms, 0.99),
        "max_ms": q(due_ms, 1.0),
        "p50_ms_from_send": q(send_ms, 0.5),
        "p99_ms_from_send": q(send_ms, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    floor_parser = commands.add_parser("floor")
    floor_parser.add_argument("port", type=int)
    load_parser = commands.add_parser("load")
    load_parser.add_argument("url")
    load_parser.add_argument("--body", required=True)
    load_parser.add_argument("--key", default="")
    load_parser.add_argument("--rate", type=float, default=500)
    load_parser.add_argument("--seconds", type=float, default=20)
    load_parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args(argv)
    if args.command == "floor":
        floor(args.port)
        return 0
    started = time.monotonic()
    result = asyncio.run(
        _load(args.url, args.body.encode(), args.key, args.rate, args.seconds, args.warmup)
    )
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
