"""The scale-out suite (``--scale``): one, then two streamfit workers of one consumer group
on a 4-partition topic, with the machine's, the broker's and the workers' CPU sampled, so the
ratio of 2 workers to 1 can be taken apart; see ``bench/README.md``."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    SCENARIO_TIMEOUT,
    Plan,
    child_env,
    fill_topic,
    last_json,
    log,
    new_topic,
    scenario_command,
)


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the process listening on ``bootstrap``'s port on this machine (the
    broker), from ``/proc``; None where that cannot be read (another user's process, not
    Linux, a remote broker)."""
    port = int(bootstrap.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


class CpuSampler(threading.Thread):
    """Every 0.1 s, from ``/proc``: (wall time, CPU seconds the machine spent busy, CPU
    seconds it had in all, seconds stolen by the hypervisor, the broker's CPU seconds),
    so CPU use can be read over any window of a run."""

    def __init__(self, broker: int | None) -> None:
        super().__init__(daemon=True)
        self.broker = broker
        self.samples: list[tuple[float, float, float, float, float]] = []
        self._done = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def run(self) -> None:
        while not self._done.wait(0.1):
            sample = self._sample()
            if sample is not None:
                self.samples.append(sample)

    def stop(self) -> list[tuple[float, float, float, float, float]]:
        self._done.set()
        self.join()
        return self.samples

    def _sample(self) -> tuple[float, float, float, float, float] | None:
        now = time.time()
        try:
            ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            broker = 0.0
            if self.broker is not None:
                stat = Path(f"/proc/{self.broker}/stat").read_text().rsplit(")", 1)[1].split()
                broker = (int(stat[11]) + int(stat[12])) / self._tick  # utime + stime
        except (OSError, ValueError, IndexError):
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        idle, steal = ticks[3] + ticks[4], ticks[7] if len(ticks) > 7 else 0
        total = sum(ticks[:8])
        tick = self._tick
        return (now, (total - idle - steal) / tick, total / tick, steal / tick, broker)


#: The order of the scale runs: each worker count twice, mirrored, so a drift in the shared
#: machine's load over the runs weighs on one and two workers alike; the best run of each counts.
SCALE_ORDER = (1, 2, 2, 1)


def scale_suite(bootstrap: str, plan: Plan, option: bool) -> dict[str, Any]:
    """Time to drain one 4-partition topic with 1, then 2 streamfit workers of one group
    (``SCALE_ORDER``: 1, 2, 2, 1 workers, each run a new group from the topic's start), as
    (b) runs, its predictions to a topic; then the same series again with no predictions
    topic (``no_predictions``), the workers' loop without the broker taking their output.

    The workers start together on the complete topic and each stops once the partitions it
    holds are read to the end, so the group's start-up rebalance is part of the time (events
    read again after a rebalance show as ``replayed``). Each worker has its own SQLite file."""
    partitions = 4
    log(f"scale: producing {plan.scale_events:,} numeric10 events over {partitions} partitions")
    topic = fill_topic(bootstrap, "numeric10", plan.scale_events, partitions=partitions)
    broker = broker_pid(bootstrap)
    out: dict[str, Any] = {"partitions": partitions, "events": plan.scale_events}
    log("scale: (b), predictions to a topic")
    out.update(_scale_series(bootstrap, topic, plan, option, broker, predictions=True))
    log("scale: the same workers without a predictions topic")
    out["no_predictions"] = _scale_series(bootstrap, topic, plan, option, broker, False)
    out["date"] = time.strftime("%Y-%m-%d %H:%M")
    return out


def _scale_series(
    bootstrap: str,
    topic: str,
    plan: Plan,
    option: bool,
    broker: int | None,
    predictions: bool,
) -> dict[str, Any]:
    """The runs of ``SCALE_ORDER``, each worker count's best run, and the ratio of 2 workers
    to 1 with its parts."""
    out: dict[str, Any] = {"predictions_topic": predictions}
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for workers in SCALE_ORDER:
        runs[workers].append(
            _scale_run(bootstrap, topic, workers, plan, option, broker, predictions)
        )
    for workers, done in runs.items():
        measured = [r for r in done if r.get("steady_events_per_second")]
        best = max(measured, key=lambda r: r["steady_events_per_second"]) if measured else done[0]
        out[f"workers_{workers}"] = {
            **best,
            "runs_steady_events_per_second": [r.get("steady_events_per_second") for r in done],
        }
    one, two = out.get("workers_1", {}), out.get("workers_2", {})
    if "events_per_second" in one and "events_per_second" in two:
        out["ratio_drain"] = round(two["events_per_second"] / one["events_per_second"], 3)
    if one.get("steady_events_per_second") and two.get("steady_events_per_second"):
        out["ratio"] = round(two["steady_events_per_second"] / one["steady_events_per_second"], 3)
    cpu_one, cpu_two = one.get("cpu", {}), two.get("cpu", {})
    if cpu_one.get("main_us_per_event") and cpu_two.get("main_us_per_event"):
        # events/s = main-thread CPU share / CPU per event, so the ratio is exactly the product
        out["ratio_parts"] = {
            "main_threads_cpu": round(
                sum(cpu_two["main_core_percent"]) / sum(cpu_one["main_core_percent"]), 3
            ),
            "cost_per_event": round(cpu_two["main_us_per_event"] / cpu_one["main_us_per_event"], 3),
        }
    return out


def _scale_run(
    bootstrap: str,
    topic: str,
    workers: int,
    plan: Plan,
    option: bool,
    broker: int | None,
    predictions: bool,
) -> dict[str, Any]:
    """One drain of ``topic`` by ``workers`` streamfit workers of a new consumer group, with
    the machine's and the broker's CPU sampled alongside; their predictions go to a new topic
    when ``predictions``."""
    group = f"bench-scale-{uuid.uuid4().hex[:8]}"
    log(f"  {workers} worker(s) in group {group} ...")
    extra = ["--group", group, "--drain"]
    if predictions:
        extra += ["--predictions-topic", new_topic(bootstrap, "bench_predictions")]
    extra += ["--score-training"] if option else []
    command = scenario_command("streamfit", bootstrap, topic, plan.scale_events, "numeric10", extra)
    sampler = CpuSampler(broker)
    sampler.start()
    procs = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        for _ in range(workers)
    ]
    try:
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=SCENARIO_TIMEOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"a worker failed: {stderr.strip()[-400:]}")
            results.append(last_json(stdout))
    except (subprocess.SubprocessError, ValueError, RuntimeError) as exc:
        log(f"    FAILED: {exc}")
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        return {"error": str(exc)[-400:]}
    finally:
        machine_samples = sampler.stop()
    starts = [r["wall_start"] for r in results if r.get("wall_start")]
    span = max(r["wall_end"] for r in results) - min(starts)
    handled = sum(r["events"] for r in results)
    steady = steady_rate(results)
    window = steady_window(results)
    cpu = window_cpu(results, machine_samples, window, broker is not None) if window else {}
    for r in results:
        r.pop("timeline", None)
    log(
        f"    {plan.scale_events / span:,.0f} events/s aggregate over the whole drain, "
        f"{steady or 0:,.0f} events/s once assigned (per worker: "
        f"{[r['events'] for r in results]}); CPU once assigned: {cpu}"
    )
    return {
        "events": plan.scale_events,
        "seconds": round(span, 3),
        "events_per_second": round(plan.scale_events / span, 1),
        "steady_events_per_second": steady,
        "replayed": handled - plan.scale_events,
        "per_worker": results,
        "cpu": cpu,
    }


def steady_window(results: list[dict[str, Any]]) -> tuple[float, float] | None:
    """The wall-clock window in which every worker holds its final partitions: from the last
    assignment change of any worker (plus 0.5 s) to the first worker's last sample; None if
    that leaves less than a second."""
    timelines = [np.array(r.get("timeline") or [], dtype=np.float64) for r in results]
    if any(len(t) < 2 for t in timelines):
        return None
    start = max(
        max(r.get("assigned") or [t[0, 0]]) for r, t in zip(results, timelines, strict=True)
    )
    start += 0.5
    end = min(t[-1, 0] for t in timelines)
    return (start, end) if end - start >= 1.0 else None


def _over(series: np.ndarray, column: int, window: tuple[float, float]) -> float:
    """How much the cumulative ``column`` of a (wall time, ...) series grew over ``window``."""
    start, end = window
    at = np.interp([start, end], series[:, 0], series[:, column])
    return float(at[1] - at[0])


def steady_rate(results: list[dict[str, Any]]) -> float | None:
    """The group's events/s in its ``steady_window``: the sum of the events each worker read
    in that window over its length."""
    window = steady_window(results)
    if window is None:
        return None
    timelines = [np.array(r["timeline"], dtype=np.float64) for r in results]
    read = sum(_over(t, 1, window) for t in timelines)
    return round(read / (window[1] - window[0]), 1)


def window_cpu(
    results: list[dict[str, Any]],
    machine: list[tuple[float, float, float, float, float]],
    window: tuple[float, float],
    broker_known: bool,
) -> dict[str, Any]:
    """Where the CPU went in ``window``: the machine's busy and stolen share of all its
    cores, the broker's and each worker's main thread's and other threads' (librdkafka's)
    share of one core, and the main threads' CPU time per event read."""
    span = window[1] - window[0]
    out: dict[str, Any] = {}
    samples = np.array(machine, dtype=np.float64)
    if len(samples) >= 2 and samples[0, 0] <= window[0] and samples[-1, 0] >= window[1]:
        total = _over(samples, 2, window)
        out["cores"] = os.cpu_count()
        out["machine_busy_percent"] = round(100 * _over(samples, 1, window) / total, 1)
        out["steal_percent"] = round(100 * _over(samples, 3, window) / total, 1)
        if broker_known:
            out["broker_core_percent"] = round(100 * _over(samples, 4, window) / span, 1)
    timelines = [np.array(r["timeline"], dtype=np.float64) for r in results]
    if any(t.shape[1] < 4 for t in timelines):
        return out  # a streamfit whose scenario does not sample CPU
    main = [_over(t, 2, window) for t in timelines]
    process = [_over(t, 3, window) for t in timelines]
    read = sum(_over(t, 1, window) for t in timelines)
    out["main_core_percent"] = [round(100 * m / span, 1) for m in main]
    if all(t.shape[1] >= 5 and not np.isnan(t[:, 4]).any() for t in timelines):
        # the rest of the main thread's time, neither running nor waiting for a CPU, it slept
        # (for messages, for the broker, for the disk)
        out["main_waiting_for_cpu_percent"] = [
            round(100 * _over(t, 4, window) / span, 1) for t in timelines
        ]
    out["other_threads_core_percent"] = [
        round(100 * (p - m) / span, 1) for p, m in zip(process, main, strict=True)
    ]
    out["main_us_per_event"] = round(1e6 * sum(main) / read, 2) if read else None
    return out
