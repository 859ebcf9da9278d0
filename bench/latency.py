"""The latency suite: produce→prediction latency of (b) at a fixed rate below saturation, a
streamfit worker (``bench.scenarios``) between the paced producer and the collector of
``bench.latency_clients``; see ``bench/README.md``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, Plan, child_env, last_json, log, new_topic, scenario_command
from bench.data import DATASETS

#: The latency run's worker settings: small batches that do not wait long, and the model's
#: metrics written to SQLite every 100k events or 5 s (the default, every 1,000 events, is a
#: SQLite transaction every 50 ms at 20k events/s).
LATENCY_BATCH = {"max_records": 2000, "timeout": 0.01}
LATENCY_METRICS_EVERY = 100_000


def latency_run(
    bootstrap: str,
    dataset: str,
    rate: float,
    seconds: float,
    option: bool,
    scenario: str = "streamfit",
) -> dict[str, Any]:
    """Worker, then collector, then the paced producer; see ``bench.latency_clients``.

    The run starts with ``os.sync()``: the earlier scenarios leave hundreds of MB of written
    pages (topics, databases) that the kernel writes back 30 s later, which would otherwise
    fall into this run's 20 s."""
    os.sync()
    n = int(rate * seconds)
    topic = new_topic(bootstrap, f"bench_latency_{dataset}")
    predictions = new_topic(bootstrap, "bench_latency_predictions")
    warmup = new_topic(bootstrap, "bench_latency_warmup")
    unlabeled_every = 0 if option else 2
    expect = n if option else n // unlabeled_every
    roles = ["--score-training"] if option else ["--roles", "both"]
    log(f"  latency of {scenario} on {dataset}: {rate:,.0f} events/s for {seconds:.0f}s ...")
    if scenario == "echo":
        expect, roles = n, []
    worker = subprocess.Popen(
        scenario_command(
            scenario,
            bootstrap,
            topic,
            n,
            dataset,
            [
                "--predictions-topic",
                predictions,
                "--batch",
                str(LATENCY_BATCH["max_records"]),
                "--timeout",
                str(LATENCY_BATCH["timeout"]),
                "--ready",
                *roles,
                "--metrics-every",
                str(LATENCY_METRICS_EVERY),
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=child_env(),
    )
    collector = None
    try:
        _await_ready(worker, "worker")
        collector = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.latency_clients",
                "collect",
                "--bootstrap",
                bootstrap,
                "--topic",
                predictions,
                "--expect",
                str(expect),
                *(
                    [f"--dump={dump}-{dataset}.npy"]
                    if (dump := os.environ.get("BENCH_LATENCY_DUMP"))
                    else []
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        _await_ready(collector, "collector")
        produced = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.latency_clients",
                "produce",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--dataset",
                dataset,
                "--events",
                str(n),
                "--rate",
                str(rate),
                "--unlabeled-every",
                str(unlabeled_every),
                "--warmup-topic",
                warmup,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=child_env(),
            check=True,
        )
        sent = last_json(produced.stdout)
        out, _ = collector.communicate(timeout=seconds + 120)
        measured = last_json(out)
        w_out, _ = worker.communicate(timeout=120)
        worker_result = last_json(w_out)
    except (subprocess.SubprocessError, ValueError, RuntimeError) as exc:
        log(f"    FAILED: {exc}")
        for proc in (worker, collector):
            if proc is not None and proc.poll() is None:
                proc.kill()
        tail = worker.stderr.read()[-500:] if worker.stderr else ""
        return {
            "scenario": scenario,
            "dataset": dataset,
            "rate": rate,
            "seconds": seconds,
            "error": f"{exc} {tail}"[-600:],
        }
    result = {
        "scenario": scenario,
        "dataset": dataset,
        "rate": rate,
        "achieved_rate": sent["rate"],
        "events": n,
        "seconds": seconds,
        "batch": LATENCY_BATCH,
        "metrics_every": LATENCY_METRICS_EVERY,
        "predictions_for": "every event" if option else "the unlabeled half of the events",
        **measured,
        "worker_peak_rss_mb": worker_result.get("peak_rss_mb"),
    }
    e2e, pred = result.get("end_to_end_ms", {}), result.get("to_prediction_ms", {})
    log(
        f"    p50/p99 to prediction {pred.get('p50')}/{pred.get('p99')} ms, "
        f"end to end {e2e.get('p50')}/{e2e.get('p99')} ms ({result['predictions']:,} predictions)"
    )
    return result


def _await_ready(proc: subprocess.Popen[str], what: str, timeout: float = 90) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "READY":
            return
        if not line and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{what} exited: {err.strip()[-400:]}")
    raise RuntimeError(f"{what} not ready after {timeout}s")


def latency_suite(
    bootstrap: str, plan: Plan, option: bool, throughput: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """20k events/s on numeric10 (the target); on mixed30 the same, or half of (b)'s measured
    throughput there when that is lower (a fixed rate must stay below saturation).

    On numeric10 the full run measures streamfit and the no-model floor ``latency_repeat``
    times, alternating, so that drift in the machine's load weighs on both alike; each keeps
    its median run by end-to-end p99, with every run's p99 alongside (``every_run_p99``).
    Before them, a run of the floor (``latency_warmup_seconds``) is not counted (it is
    returned apart): the broker's JIT compiler compiles the code of this traffic (small
    requests at a fixed rate) only when it first sees it, and during the suite's first latency
    run its compiler threads took 45% of a core (2% in the second) on the two cores the
    worker shares with it."""
    out = []
    warmup = None
    if plan.latency_warmup_seconds:
        log("  warm-up (not counted):")
        warmup = latency_run(
            bootstrap, "numeric10", plan.latency_rate, plan.latency_warmup_seconds, option, "echo"
        )
    for dataset in DATASETS:
        rate = plan.latency_rate
        if dataset != "numeric10":
            measured = [
                r.get("events_per_second") or 0
                for r in throughput
                if r["dataset"] == dataset and r["row"] in ("streamfit", "streamfit_scored")
            ]
            if measured and measured[0]:
                rate = min(rate, round(measured[0] / 2, -2))
        if dataset != "numeric10" or plan.quick:
            out.append(latency_run(bootstrap, dataset, rate, plan.latency_seconds, option))
            continue
        runs: dict[str, list[dict[str, Any]]] = {"streamfit": [], "echo": []}
        for _ in range(plan.latency_repeat):
            for scenario, kept in runs.items():
                kept.append(
                    latency_run(bootstrap, dataset, rate, plan.latency_seconds, option, scenario)
                )
        out += [median_run(kept) for kept in runs.values()]
    return out, warmup


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median end-to-end p99 (the higher middle one of an even count; a
    failed run counts as the worst), with every run's p99 in ``every_run_p99``.

    >>> runs = [{"end_to_end_ms": {"p99": v}} for v in (80.0, 40.0, 300.0)]
    >>> median_run(runs)["end_to_end_ms"], median_run(runs)["every_run_p99"]
    ({'p99': 80.0}, [80.0, 40.0, 300.0])
    """
    p99s = [r.get("end_to_end_ms", {}).get("p99") for r in runs]
    order = sorted(range(len(runs)), key=lambda i: math.inf if p99s[i] is None else float(p99s[i]))
    return {**runs[order[len(runs) // 2]], "every_run_p99": p99s}
