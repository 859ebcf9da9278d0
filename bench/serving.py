"""``make bench-serving``: single-event ``POST /predict`` latency at a fixed request rate.

A pipeline with the built-in logistic regression learns 50,000 numeric10-shaped events into
SQLite; ``streamfit serve`` (one process) then serves it, and a load generator in a process
of its own (``bench/serving_clients.py load``) sends one event per request at a fixed rate
(open loop: latency runs from when each request was due). The floor, in the same run: a bare
FastAPI endpoint under uvicorn that reads the body and returns a constant, loaded the same way.

Results: ``bench/results/serving.json`` and ``serving.md``, and the table of ``bench/README.md``
between the ``bench-serving:start``/``bench-serving:end`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.common import RESULTS, ROOT, child_env, last_json, log, replace_between

KEY = "bench-serving-key-0123456789"


def _events(n: int, seed: int, labeled: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10))
    weights = np.linspace(-1.5, 1.5, 10)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ weights)))).astype(int)
    out = []
    for i in range(n):
        event: dict[str, Any] = {f"x{j}": round(float(x[i, j]), 5) for j in range(10)}
        if labeled:
            event["y"] = int(y[i])
        out.append(event)
    return out


def _prepare(directory: Path) -> Path:
    from streamfit.pipeline import Pipeline

    spec = {
        "name": "bench_serving",
        "source": {"kind": "memory"},
        "topics": {"train": "train"},
        "target": "y",
        "classes": [0, 1],
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
        "outputs": {"database": f"sqlite:///{directory / 'serving.db'}", "write_results": False},
    }
    with Pipeline(spec) as pipeline:
        pipeline.send("train", _events(50_000, seed=1, labeled=True))
        pipeline.run()
    path = directory / "pipeline.yaml"
    path.write_bytes(orjson.dumps(spec))
    return path


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(command: list[str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    import httpx

    env = {**child_env(), "STREAMFIT_API_KEYS": f"{KEY}:predict"}
    with log_path.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command} exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{command} did not answer within 120 s")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(url: str, body: bytes, rate: float, seconds: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.serving_clients", "load", url]
    command += ["--body", body.decode(), "--key", KEY, "--rate", str(rate)]
    command += ["--seconds", str(seconds)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return last_json(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    body = orjson.dumps({"event": _events(1, seed=7, labeled=False)[0]})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="streamfit-bench-serving-") as tmp:
        directory = Path(tmp)
        log("serving: training the pipeline (50,000 events)")
        spec = _prepare(directory)
        servers = [
            (
                "floor: bare FastAPI endpoint returning a constant",
                [sys.executable, "-m", "bench.serving_clients", "floor"],
            ),
            (
                "streamfit serve: POST /predict, built-in logistic regression",
                [sys.executable, "-m", "streamfit.cli.main", "serve", str(spec), "--port"],
            ),
        ]
        for label, command in servers:
            port = _port()
            proc = _start([*command, str(port)], port, directory / "server.log")
            try:
                url = f"http://127.0.0.1:{port}/v1/pipelines/bench_serving/predict"
                log(f"serving: {label} at {args.rate:.0f} requests/s for {args.seconds:.0f} s")
                load_before, cpu_before = os.getloadavg()[0], _cpu_seconds(proc.pid)
                result = _load(url, body, args.rate, args.seconds)
                result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                cpu = _cpu_seconds(proc.pid) - cpu_before
                result["cpu_ms_per_request"] = round(cpu / result["requests_sent"] * 1e3, 3)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            rows.append({"label": label, **result})
            log(f"serving: {label}: {result}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "rows": rows}
    (RESULTS / "serving.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"One event per `POST /predict`, {args.rate:.0f} requests/s for {args.seconds:.0f} s "
        f"(after a 3 s warm-up), open loop from a separate process; {payload['date']}, "
        f"{payload['cpus']} cores. Load: the 1-minute load average before and after each "
        "server's run (the machine is shared).",
        "",
        "| server | p50 ms | p90 ms | p99 ms | max ms | requests/s | errors "
        "| server CPU ms/request | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        before, after = row["load_average"]
        lines.append(
            f"| {row['label']} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} "
            f"| {row['max_ms']} | {row['achieved_rps']} | {row['errors']} "
            f"| {row['cpu_ms_per_request']} | {before} / {after} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "serving.md").write_text(text)
    if not args.no_readme:
        replace_between(ROOT / "bench" / "README.md", "bench-serving", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
